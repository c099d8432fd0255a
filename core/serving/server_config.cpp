#include "core/serving/server_config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <fstream>
#include <sstream>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include "core/common/error.hpp"
#include "core/model/llama_config.hpp"
#include "core/serving/scheduler.hpp"

namespace tessera {

namespace {

// How a setting's value is written in TOML and on the command line.
enum class Kind {
  Int32,   // TOML integer, range-checked to int32
  Int64,   // TOML integer
  String,  // TOML string
  Path,    // TOML string; relative paths in a file are relative to the file
  Seed,    // TOML integer >= 0; unset by default
  Gib,     // TOML float or integer, in GiB (2^30 bytes), stored as bytes
  Fraction,  // TOML float or integer in (0, 1]
};

using Field = std::variant<int32_t ServerConfig::*, int64_t ServerConfig::*, std::string ServerConfig::*,
                           std::optional<uint64_t> ServerConfig::*, double ServerConfig::*>;

struct Setting {
  std::string_view section;
  std::string_view key;
  std::string_view flag;
  std::string_view help;
  Kind kind;
  Field field;
};

// The one list of settings: TOML keys, flags, help and the struct member each one sets.
constexpr std::array kSettings = {
    Setting{"server", "model", "--model", "Model directory (config.json, *.safetensors, tokenizer files)", Kind::Path,
            &ServerConfig::model},
    Setting{"server", "listen", "--listen", "ZeroMQ endpoint to bind, e.g. tcp://0.0.0.0:5555", Kind::String,
            &ServerConfig::listen},
    Setting{"server", "device", "--device", "Executor device: cpu", Kind::String, &ServerConfig::device},
    Setting{"server", "log_level", "--log-level", "trace, debug, info, warn, error, critical or off", Kind::String,
            &ServerConfig::log_level},
    Setting{"server", "seed", "--seed", "Seed for the seeds of requests that give none (default: random)", Kind::Seed,
            &ServerConfig::seed},
    Setting{"server", "tokenizer_threads", "--tokenizer-threads", "Tokenizer actors", Kind::Int32,
            &ServerConfig::tokenizer_threads},
    Setting{"server", "metrics_port", "--metrics-port",
            "Port of the Prometheus endpoint http://HOST:PORT/metrics (0 turns it off)", Kind::Int32,
            &ServerConfig::metrics_port},
    Setting{"server", "metrics_host", "--metrics-host",
            "IPv4 address the metrics endpoint binds (0.0.0.0 for every interface)", Kind::String,
            &ServerConfig::metrics_host},
    Setting{"scheduler", "max_num_batched_tokens", "--max-num-batched-tokens", "New tokens per step (all sequences)",
            Kind::Int32, &ServerConfig::max_num_batched_tokens},
    Setting{"scheduler", "max_num_seqs", "--max-num-seqs", "Sequences per step", Kind::Int32,
            &ServerConfig::max_num_seqs},
    Setting{"scheduler", "max_waiting_requests", "--max-waiting-requests",
            "Waiting requests before new ones are rejected as overloaded", Kind::Int32,
            &ServerConfig::max_waiting_requests},
    Setting{"scheduler", "max_model_len", "--max-model-len", "Tokens per request (prompt + output); 0 = model's",
            Kind::Int32, &ServerConfig::max_model_len},
    Setting{"scheduler", "capacity_policy", "--capacity-policy",
            "max_utilization (admit by first chunk, preempt when KV runs short) or guaranteed_no_evict (admit only "
            "what fits at max_tokens, never preempt)",
            Kind::String, &ServerConfig::capacity_policy},
    Setting{"kv_cache", "block_size", "--block-size", "Tokens per KV block (power of two <= 256)", Kind::Int32,
            &ServerConfig::block_size},
    Setting{"kv_cache", "memory_bytes", "--kv-cache-bytes", "KV cache memory budget in bytes", Kind::Int64,
            &ServerConfig::kv_cache_bytes},
    Setting{"kv_cache", "memory_gib", "--kv-cache-gib", "KV cache memory budget in GiB (alternative to bytes)",
            Kind::Gib, &ServerConfig::kv_cache_bytes},
    Setting{"kv_cache", "num_blocks", "--kv-cache-blocks", "Exact number of KV blocks (0 = from the memory budget)",
            Kind::Int32, &ServerConfig::kv_cache_blocks},
    Setting{"kv_cache", "gpu_memory_utilization", "--gpu-memory-utilization",
            "GPU: fraction of the device memory for weights, activations and KV (KV gets the rest)", Kind::Fraction,
            &ServerConfig::gpu_memory_utilization},
    Setting{"limits", "max_frame_bytes", "--max-frame-bytes", "Largest accepted client message in bytes",
            Kind::Int64, &ServerConfig::max_frame_bytes},
    Setting{"limits", "client_timeout_ms", "--client-timeout-ms", "Drop clients silent for this long (ms)",
            Kind::Int32, &ServerConfig::client_timeout_ms},
    Setting{"limits", "shutdown_grace_ms", "--shutdown-grace-ms",
            "Time running requests get to finish on shutdown (ms)", Kind::Int32, &ServerConfig::shutdown_grace_ms},
};
constexpr std::array<std::string_view, 4> kSections = {"server", "scheduler", "kv_cache", "limits"};

const Setting& setting(std::string_view section, std::string_view key) {
  for (const Setting& s : kSettings) {
    if (s.section == section && s.key == key) return s;
  }
  throw Error("internal: no setting " + std::string(section) + "." + std::string(key));
}

// "scheduler.max_num_seqs (--max-num-seqs)": how errors name a setting.
std::string name_of(std::string_view section, std::string_view key) {
  const Setting& s = setting(section, key);
  return std::string(s.section) + "." + std::string(s.key) + " (" + std::string(s.flag) + ")";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'scheduler.max_num_seqs'?)" for a key in the wrong section or a near miss; else "".
std::string suggestion(std::string_view section, std::string_view key) {
  const Setting* best = nullptr;
  size_t best_distance = 3;  // suggest only close matches
  for (const Setting& s : kSettings) {
    const size_t d = edit_distance(key, s.key) + (s.section == section ? 0 : 1);
    if (d < best_distance) {
      best = &s;
      best_distance = d;
    }
  }
  if (!best) return "";
  return " (did you mean '" + std::string(best->section) + "." + std::string(best->key) + "'?)";
}

std::string where(const std::string& source, const toml::source_region& region) {
  return source + ":" + std::to_string(region.begin.line) + ": ";
}

std::string toml_type_name(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  return out.str();
}

// Sets one setting from its TOML value; type and range errors name the file, line and key.
void apply_toml_value(const Setting& s, const toml::node& node, const std::string& source,
                      const std::filesystem::path& base_dir, ServerConfig& config) {
  const std::string name = std::string(s.section) + "." + std::string(s.key);
  const std::string at = where(source, node.source());
  auto wrong_type = [&](const char* expected) {
    return Error(at + name + " must be " + expected + " (got " + toml_type_name(node) + ")");
  };
  switch (s.kind) {
    case Kind::Int32:
    case Kind::Int64:
    case Kind::Seed: {
      const auto* value = node.as_integer();
      if (!value) throw wrong_type("an integer");
      const int64_t v = value->get();
      if (s.kind == Kind::Int32) {
        if (v < INT32_MIN || v > INT32_MAX) throw Error(at + name + " is out of range (got " + std::to_string(v) + ")");
        config.*std::get<int32_t ServerConfig::*>(s.field) = static_cast<int32_t>(v);
      } else if (s.kind == Kind::Int64) {
        config.*std::get<int64_t ServerConfig::*>(s.field) = v;
      } else {
        if (v < 0) throw Error(at + name + " must be >= 0 (got " + std::to_string(v) + ")");
        config.*std::get<std::optional<uint64_t> ServerConfig::*>(s.field) = static_cast<uint64_t>(v);
      }
      return;
    }
    case Kind::String:
    case Kind::Path: {
      const auto* value = node.as_string();
      if (!value) throw wrong_type("a string");
      std::string text = value->get();
      if (s.kind == Kind::Path && !text.empty() && std::filesystem::path(text).is_relative() && !base_dir.empty()) {
        text = (base_dir / text).lexically_normal().string();
      }
      config.*std::get<std::string ServerConfig::*>(s.field) = std::move(text);
      return;
    }
    case Kind::Gib: {
      double gib;
      if (const auto* f = node.as_floating_point()) {
        gib = f->get();
      } else if (const auto* i = node.as_integer()) {
        gib = static_cast<double>(i->get());
      } else {
        throw wrong_type("a number (GiB)");
      }
      const double bytes = gib * double(int64_t{1} << 30);
      if (!std::isfinite(bytes) || bytes < 1.0 || bytes > 9.0e18) {
        throw Error(at + name + " must be a positive number of GiB (got " + std::to_string(gib) + ")");
      }
      config.*std::get<int64_t ServerConfig::*>(s.field) = static_cast<int64_t>(std::llround(bytes));
      return;
    }
    case Kind::Fraction: {
      double v;
      if (const auto* f = node.as_floating_point()) {
        v = f->get();
      } else if (const auto* i = node.as_integer()) {
        v = static_cast<double>(i->get());
      } else {
        throw wrong_type("a number in (0, 1]");
      }
      config.*std::get<double ServerConfig::*>(s.field) = v;  // range checked by validate()
      return;
    }
  }
}

void apply_toml_section(std::string_view section, const toml::table& table, const std::string& source,
                        const std::filesystem::path& base_dir, ServerConfig& config) {
  for (auto&& [key, node] : table) {
    const Setting* found = nullptr;
    for (const Setting& s : kSettings) {
      if (s.section == section && s.key == key.str()) found = &s;
    }
    if (!found) {
      throw Error(where(source, key.source()) + "unknown key '" + std::string(section) + "." + std::string(key.str()) +
                  "'" + suggestion(section, key.str()));
    }
    apply_toml_value(*found, node, source, base_dir, config);
  }
  if (table.contains("memory_bytes") && table.contains("memory_gib")) {
    throw Error(where(source, table.get("memory_gib")->source()) +
                "kv_cache.memory_bytes and kv_cache.memory_gib both set the KV memory budget: keep one");
  }
}

void check_range(bool ok, std::string_view section, std::string_view key, const std::string& rule,
                 const std::string& got) {
  if (!ok) throw Error(name_of(section, key) + " must be " + rule + " (got " + got + ")");
}

// A setting's default as --help shows it; empty for settings without a plain default.
std::string default_text(const Setting& s, const ServerConfig& defaults) {
  switch (s.kind) {
    case Kind::Int32: return std::to_string(defaults.*std::get<int32_t ServerConfig::*>(s.field));
    case Kind::Int64: return std::to_string(defaults.*std::get<int64_t ServerConfig::*>(s.field));
    case Kind::String: return defaults.*std::get<std::string ServerConfig::*>(s.field);
    case Kind::Fraction: return std::to_string(defaults.*std::get<double ServerConfig::*>(s.field));
    case Kind::Path:
    case Kind::Seed:
    case Kind::Gib: return "";
  }
  return "";
}

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

bool valid_device(const std::string& device) {
  if (device == "cpu" || device == "cuda") return true;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 8) return false;
  return std::all_of(device.begin() + 5, device.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_ipv4(const std::string& host) {
  in_addr address{};
  return inet_pton(AF_INET, host.c_str(), &address) == 1;
}

bool valid_endpoint(const std::string& endpoint) {
  for (std::string_view scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (endpoint.size() > scheme.size() && endpoint.compare(0, scheme.size(), scheme) == 0) return true;
  }
  return false;
}

}  // namespace

void ServerConfig::merge_toml(std::string_view text, const std::string& source,
                              const std::filesystem::path& base_dir) {
  ServerConfig merged = *this;
  toml::table document;
  try {
    document = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw Error(where(source, e.source()) + "TOML syntax error: " + std::string(e.description()));
  }
  for (auto&& [key, node] : document) {
    const bool is_section = std::find(kSections.begin(), kSections.end(), key.str()) != kSections.end();
    if (!is_section) {
      // A known key written above every section header (or a misspelt section).
      for (const Setting& s : kSettings) {
        if (s.key == key.str()) {
          throw Error(where(source, key.source()) + "key '" + std::string(key.str()) + "' must be inside [" +
                      std::string(s.section) + "]");
        }
      }
      throw Error(where(source, key.source()) + "unknown section or key '" + std::string(key.str()) +
                  "' (sections: [server], [scheduler], [kv_cache], [limits])");
    }
    const toml::table* table = node.as_table();
    if (!table) throw Error(where(source, key.source()) + "'" + std::string(key.str()) + "' must be a [section]");
    apply_toml_section(key.str(), *table, source, base_dir, merged);
  }
  *this = std::move(merged);
}

void ServerConfig::merge_toml_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read config file " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error("cannot read config file " + path.string());
  merge_toml(text.str(), path.string(), path.parent_path());
}

ServerConfig ServerConfig::from_toml(std::string_view text, const std::string& source) {
  ServerConfig config;
  config.merge_toml(text, source);
  return config;
}

ServerConfig ServerConfig::from_toml_file(const std::filesystem::path& path) {
  ServerConfig config;
  config.merge_toml_file(path);
  return config;
}

void ServerConfig::validate() const {
  if (model.empty()) throw Error("no model directory given: use --model DIR or model = \"DIR\" in [server]");
  check_range(valid_endpoint(listen), "server", "listen",
              "a ZeroMQ endpoint tcp://HOST:PORT, ipc://PATH or inproc://NAME", "'" + listen + "'");
  check_range(valid_device(device), "server", "device", "cpu, cuda or cuda:N", "'" + device + "'");
  const std::array<std::string_view, 7> levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  check_range(std::find(levels.begin(), levels.end(), log_level) != levels.end(), "server", "log_level",
              "one of trace, debug, info, warn, error, critical, off", "'" + log_level + "'");
  check_range(tokenizer_threads >= 1 && tokenizer_threads <= 256, "server", "tokenizer_threads",
              "between 1 and 256", std::to_string(tokenizer_threads));
  check_range(metrics_port >= 0 && metrics_port <= 65535, "server", "metrics_port", "between 0 (off) and 65535",
              std::to_string(metrics_port));
  check_range(valid_ipv4(metrics_host), "server", "metrics_host", "an IPv4 address such as 127.0.0.1 or 0.0.0.0",
              "'" + metrics_host + "'");
  check_range(max_num_batched_tokens >= 1, "scheduler", "max_num_batched_tokens", ">= 1",
              std::to_string(max_num_batched_tokens));
  check_range(max_num_seqs >= 1, "scheduler", "max_num_seqs", ">= 1", std::to_string(max_num_seqs));
  check_range(max_waiting_requests >= 1, "scheduler", "max_waiting_requests", ">= 1",
              std::to_string(max_waiting_requests));
  check_range(max_model_len >= 0, "scheduler", "max_model_len", ">= 0 (0 = the model's context)",
              std::to_string(max_model_len));
  check_range(parse_capacity_policy(capacity_policy).has_value(), "scheduler", "capacity_policy",
              "max_utilization or guaranteed_no_evict", "'" + capacity_policy + "'");
  check_range(is_power_of_two(block_size) && block_size <= 256, "kv_cache", "block_size",
              "a power of two between 1 and 256", std::to_string(block_size));
  check_range(kv_cache_bytes >= 1, "kv_cache", "memory_bytes", ">= 1", std::to_string(kv_cache_bytes));
  check_range(kv_cache_blocks >= 0, "kv_cache", "num_blocks", ">= 0 (0 = from the memory budget)",
              std::to_string(kv_cache_blocks));
  check_range(gpu_memory_utilization > 0 && gpu_memory_utilization <= 1, "kv_cache", "gpu_memory_utilization",
              "in (0, 1]", std::to_string(gpu_memory_utilization));
  check_range(max_frame_bytes >= 1024 && max_frame_bytes <= (int64_t{1} << 30), "limits", "max_frame_bytes",
              "between 1024 and 1073741824", std::to_string(max_frame_bytes));
  check_range(client_timeout_ms >= 1, "limits", "client_timeout_ms", ">= 1", std::to_string(client_timeout_ms));
  check_range(shutdown_grace_ms >= 0, "limits", "shutdown_grace_ms", ">= 0", std::to_string(shutdown_grace_ms));
}

int32_t ServerConfig::effective_max_model_len(const LlamaConfig& model_config) const {
  if (max_model_len == 0) return model_config.max_position_embeddings;
  if (max_model_len > model_config.max_position_embeddings) {
    throw Error(name_of("scheduler", "max_model_len") + " is " + std::to_string(max_model_len) +
                " but the model's context is " + std::to_string(model_config.max_position_embeddings) + " tokens");
  }
  return max_model_len;
}

std::string ServerConfig::to_toml() const {
  toml::table document;
  for (std::string_view section : kSections) document.insert(section, toml::table{});
  for (const Setting& s : kSettings) {
    toml::table& table = *document.get_as<toml::table>(s.section);
    switch (s.kind) {
      case Kind::Int32: table.insert(s.key, int64_t{this->*std::get<int32_t ServerConfig::*>(s.field)}); break;
      case Kind::Int64: table.insert(s.key, this->*std::get<int64_t ServerConfig::*>(s.field)); break;
      case Kind::String:
      case Kind::Path: table.insert(s.key, this->*std::get<std::string ServerConfig::*>(s.field)); break;
      case Kind::Seed:
        // TOML integers are signed 64-bit: a larger seed cannot be written (the command line accepts it).
        if (seed && *seed <= uint64_t{INT64_MAX}) table.insert(s.key, static_cast<int64_t>(*seed));
        break;
      case Kind::Gib: break;  // memory_bytes already carries the budget
      case Kind::Fraction: table.insert(s.key, this->*std::get<double ServerConfig::*>(s.field)); break;
    }
  }
  std::ostringstream out;
  out << document << "\n";
  return out.str();
}

// One flag's storage: CLI11 writes the parsed value here; count() > 0 says the flag was given.
struct ServerCommandLine::Flags {
  struct Value {
    CLI::Option* option = nullptr;
    int64_t integer = 0;
    uint64_t unsigned_integer = 0;
    double number = 0;
    std::string text;
  };
  std::string config_path;
  CLI::Option* config_option = nullptr;
  std::array<Value, kSettings.size()> values;  // parallel to kSettings; never reallocated
};

ServerCommandLine::ServerCommandLine(CLI::App& app) : flags_(std::make_unique<Flags>()) {
  flags_->config_option = app.add_option("--config", flags_->config_path,
                                         "TOML config file (see config/server.toml); flags override it");
  const ServerConfig defaults;
  for (size_t i = 0; i < kSettings.size(); ++i) {
    const Setting& s = kSettings[i];
    Flags::Value& v = flags_->values[i];
    std::string help(s.help);
    if (const std::string shown = default_text(s, defaults); !shown.empty()) help += " [default: " + shown + "]";
    const std::string flag(s.flag);
    switch (s.kind) {
      case Kind::Int32:
      case Kind::Int64: v.option = app.add_option(flag, v.integer, help); break;
      case Kind::String:
      case Kind::Path: v.option = app.add_option(flag, v.text, help); break;
      case Kind::Seed: v.option = app.add_option(flag, v.unsigned_integer, help); break;
      case Kind::Gib:
      case Kind::Fraction: v.option = app.add_option(flag, v.number, help); break;
    }
  }
  flags_->values[&setting("kv_cache", "memory_gib") - kSettings.data()].option->excludes(
      flags_->values[&setting("kv_cache", "memory_bytes") - kSettings.data()].option);
}

ServerCommandLine::~ServerCommandLine() = default;

std::optional<std::filesystem::path> ServerCommandLine::config_file() const {
  if (flags_->config_option->count() == 0) return std::nullopt;
  return std::filesystem::path(flags_->config_path);
}

ServerConfig ServerCommandLine::resolve() const {
  ServerConfig config;
  if (const auto file = config_file()) config.merge_toml_file(*file);
  for (size_t i = 0; i < kSettings.size(); ++i) {
    const Setting& s = kSettings[i];
    const Flags::Value& v = flags_->values[i];
    if (v.option->count() == 0) continue;
    const std::string flag(s.flag);
    switch (s.kind) {
      case Kind::Int32:
        if (v.integer < INT32_MIN || v.integer > INT32_MAX) {
          throw Error(flag + " is out of range (got " + std::to_string(v.integer) + ")");
        }
        config.*std::get<int32_t ServerConfig::*>(s.field) = static_cast<int32_t>(v.integer);
        break;
      case Kind::Int64: config.*std::get<int64_t ServerConfig::*>(s.field) = v.integer; break;
      case Kind::String:
      case Kind::Path: config.*std::get<std::string ServerConfig::*>(s.field) = v.text; break;
      case Kind::Seed: config.*std::get<std::optional<uint64_t> ServerConfig::*>(s.field) = v.unsigned_integer; break;
      case Kind::Gib: {
        const double bytes = v.number * double(int64_t{1} << 30);
        if (!std::isfinite(bytes) || bytes < 1.0 || bytes > 9.0e18) {
          throw Error(flag + " must be a positive number of GiB (got " + std::to_string(v.number) + ")");
        }
        config.*std::get<int64_t ServerConfig::*>(s.field) = static_cast<int64_t>(std::llround(bytes));
        break;
      }
      case Kind::Fraction: config.*std::get<double ServerConfig::*>(s.field) = v.number; break;
    }
  }
  config.validate();
  return config;
}

}  // namespace tessera
