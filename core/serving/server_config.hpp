#pragma once
// Every setting of `tessera-server` in one struct, loaded from a TOML file (config/server.toml documents each key
// with its default) and overridable on the command line: defaults < config file < command-line flags.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace tessera {

struct LlamaConfig;

struct ServerConfig {
  // [server]
  std::string model;                          // checkpoint directory (config.json, *.safetensors, tokenizer)
  std::string listen = "tcp://127.0.0.1:5555";  // ZeroMQ endpoint of the ROUTER socket
  std::string device = "cpu";                 // "cpu", "cuda" or "cuda:N"
  std::string log_level = "info";             // trace, debug, info, warn, error, critical, off
  std::optional<uint64_t> seed;               // draws request seeds the client left out; unset: random
  int32_t tokenizer_threads = 2;              // tokenizer actors (encode, detokenize, stop strings)
  int32_t metrics_port = 9464;                // Prometheus endpoint http://metrics_host:metrics_port/metrics; 0 = off
  std::string metrics_host = "127.0.0.1";     // IPv4 address the metrics endpoint binds (0.0.0.0: every interface)
  // [scheduler]
  int32_t max_num_batched_tokens = 2048;      // new tokens per step over all sequences (chunked prefill budget)
  int32_t max_num_seqs = 128;                 // sequences per step
  int32_t max_waiting_requests = 1024;        // queued requests beyond this are rejected as overloaded
  int32_t max_model_len = 0;                  // prompt + generated tokens per request; 0 = the model's context
  // Admission under KV pressure (scheduler.hpp): "max_utilization" (admit by first chunk, preempt when the cache
  // runs short) or "guaranteed_no_evict" (admit only what fits at max_tokens; never preempt).
  std::string capacity_policy = "max_utilization";
  // [kv_cache]
  int32_t block_size = 16;                    // tokens per KV block
  int64_t kv_cache_bytes = int64_t{1} << 30;  // KV memory budget (CPU: host memory)
  int32_t kv_cache_blocks = 0;                // > 0: exactly this many blocks, ignoring kv_cache_bytes
  double gpu_memory_utilization = 0.90;       // GPU: fraction of device memory Tessera uses; KV gets what is left
  // [limits]
  int64_t max_frame_bytes = int64_t{1} << 20;  // larger client frames are rejected (frame_too_large)
  int32_t client_timeout_ms = 2000;           // a client silent this long (no heartbeat) is dropped
  int32_t shutdown_grace_ms = 5000;           // on SIGINT/SIGTERM: time running requests get to finish

  bool operator==(const ServerConfig&) const = default;

  // Applies the keys of a TOML document on top of this config (keys absent from the document keep their values);
  // on error the config is unchanged. Throws tessera::Error naming `source` (the file), its line and the key on a
  // TOML syntax error, an unknown section or key, a value of the wrong type or out of range, or both
  // kv_cache.memory_bytes and memory_gib. A relative `model` path is resolved against `base_dir` (the file's
  // directory) when that is not empty.
  void merge_toml(std::string_view text, const std::string& source, const std::filesystem::path& base_dir = {});
  // Reads `path` and merges it; throws tessera::Error naming the file if it cannot be read.
  void merge_toml_file(const std::filesystem::path& path);
  // The defaults with a TOML document / file merged.
  static ServerConfig from_toml(std::string_view text, const std::string& source);
  static ServerConfig from_toml_file(const std::filesystem::path& path);

  // Throws tessera::Error naming the setting (TOML key and flag), its allowed range and the value given.
  void validate() const;

  // max_model_len checked against the model: 0 gives the model's max_position_embeddings; a larger value than
  // the model's context is a tessera::Error.
  int32_t effective_max_model_len(const LlamaConfig& model_config) const;

  // The settings as a TOML document (from_toml(to_toml()) gives this config back): for logs and --print-config.
  std::string to_toml() const;
};

// The command line of tessera-server: `--config FILE` plus one flag per setting (e.g. --max-num-seqs N,
// --listen EP, --kv-cache-gib 4). Register on an App before parsing, call resolve() after parsing.
// The object must outlive the parse (CLI11 writes into it).
class ServerCommandLine {
 public:
  explicit ServerCommandLine(CLI::App& app);
  ~ServerCommandLine();
  ServerCommandLine(const ServerCommandLine&) = delete;
  ServerCommandLine& operator=(const ServerCommandLine&) = delete;

  // defaults < the --config file (if given) < the flags given, then validate(). Throws tessera::Error.
  ServerConfig resolve() const;
  // The --config path, if given.
  std::optional<std::filesystem::path> config_file() const;

 private:
  struct Flags;
  std::unique_ptr<Flags> flags_;
};

}  // namespace tessera
