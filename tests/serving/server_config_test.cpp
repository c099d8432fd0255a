// ServerConfig: TOML parsing (sections, types, unknown keys), command-line precedence, validation, and the example
// config/server.toml staying in sync with the defaults.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/model/llama_config.hpp"
#include "core/serving/server_config.hpp"
#include "tests/common/error_of.hpp"

namespace tessera {
namespace {

using test::error_of;

class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / ("tessera_config_test_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Parses argv through ServerCommandLine the way tessera-server does.
ServerConfig parse_command_line(std::vector<std::string> args) {
  CLI::App app("test");
  ServerCommandLine command_line(app);
  std::vector<const char*> argv{"tessera-server"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return command_line.resolve();
}

TEST(ServerConfigTest, ParsesEverySection) {
  const ServerConfig c = ServerConfig::from_toml(R"(
[server]
model = "/models/tiny"
listen = "tcp://0.0.0.0:6000"
log_level = "debug"
seed = 42
tokenizer_threads = 3
[scheduler]
max_num_batched_tokens = 512
max_num_seqs = 8
max_waiting_requests = 10
max_model_len = 1000
capacity_policy = "guaranteed_no_evict"
[kv_cache]
block_size = 32
memory_gib = 0.5
num_blocks = 77
[limits]
max_frame_bytes = 4096
client_timeout_ms = 100
shutdown_grace_ms = 0
)", "test.toml");
  EXPECT_EQ(c.model, "/models/tiny");
  EXPECT_EQ(c.listen, "tcp://0.0.0.0:6000");
  EXPECT_EQ(c.device, "cpu");  // absent: default
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.seed, std::optional<uint64_t>(42));
  EXPECT_EQ(c.tokenizer_threads, 3);
  EXPECT_EQ(c.max_num_batched_tokens, 512);
  EXPECT_EQ(c.max_num_seqs, 8);
  EXPECT_EQ(c.max_waiting_requests, 10);
  EXPECT_EQ(c.max_model_len, 1000);
  EXPECT_EQ(c.capacity_policy, "guaranteed_no_evict");
  EXPECT_EQ(c.block_size, 32);
  EXPECT_EQ(c.kv_cache_bytes, int64_t{1} << 29);
  EXPECT_EQ(c.kv_cache_blocks, 77);
  EXPECT_EQ(c.max_frame_bytes, 4096);
  EXPECT_EQ(c.client_timeout_ms, 100);
  EXPECT_EQ(c.shutdown_grace_ms, 0);
  EXPECT_NO_THROW(c.validate());
  // to_toml writes the same settings back.
  EXPECT_EQ(ServerConfig::from_toml(c.to_toml(), "roundtrip"), c);
}

TEST(ServerConfigTest, EmptyFileKeepsDefaults) {
  EXPECT_EQ(ServerConfig::from_toml("", "empty.toml"), ServerConfig{});
  const ServerConfig d;
  EXPECT_EQ(d.listen, "tcp://127.0.0.1:5555");
  EXPECT_EQ(d.block_size, 16);
  EXPECT_EQ(d.max_num_batched_tokens, 2048);
  EXPECT_EQ(d.max_num_seqs, 128);
  EXPECT_EQ(d.kv_cache_bytes, int64_t{1} << 30);
  EXPECT_FALSE(d.seed.has_value());
}

TEST(ServerConfigTest, UnknownKeysAreErrorsNamingKeyAndFile) {
  std::string e = error_of([] { ServerConfig::from_toml("[scheduler]\nmax_num_seq = 4\n", "my.toml"); });
  EXPECT_NE(e.find("my.toml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'scheduler.max_num_seq'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'scheduler.max_num_seqs'"), std::string::npos) << e;
  // A real key in the wrong section is still unknown there, with a hint to the right one.
  e = error_of([] { ServerConfig::from_toml("[server]\nblock_size = 8\n", "my.toml"); });
  EXPECT_NE(e.find("unknown key 'server.block_size'"), std::string::npos) << e;
  EXPECT_NE(e.find("kv_cache.block_size"), std::string::npos) << e;
  e = error_of([] { ServerConfig::from_toml("[schedular]\nmax_num_seqs = 4\n", "my.toml"); });
  EXPECT_NE(e.find("'schedular'"), std::string::npos) << e;
  e = error_of([] { ServerConfig::from_toml("max_num_seqs = 4\n", "my.toml"); });
  EXPECT_NE(e.find("must be inside [scheduler]"), std::string::npos) << e;
  e = error_of([] { ServerConfig::from_toml("server = 3\n", "my.toml"); });
  EXPECT_NE(e.find("must be a [section]"), std::string::npos) << e;
}

TEST(ServerConfigTest, WrongTypesAndSyntaxErrors) {
  struct Case {
    std::string toml, expected;
  };
  const std::vector<Case> cases = {
      {"[scheduler]\nmax_num_seqs = \"8\"\n", "scheduler.max_num_seqs must be an integer (got string)"},
      {"[scheduler]\nmax_num_seqs = 8.5\n", "scheduler.max_num_seqs must be an integer (got floating-point)"},
      {"[server]\nlisten = 5555\n", "server.listen must be a string (got integer)"},
      {"[kv_cache]\nmemory_gib = \"1G\"\n", "kv_cache.memory_gib must be a number (GiB)"},
      {"[kv_cache]\nmemory_gib = -1.0\n", "kv_cache.memory_gib must be a positive number of GiB"},
      {"[scheduler]\nmax_num_seqs = 3000000000\n", "scheduler.max_num_seqs is out of range"},
      {"[server]\nseed = -1\n", "server.seed must be >= 0"},
      {"[kv_cache]\nmemory_bytes = 1000\nmemory_gib = 1\n", "both set the KV memory budget"},
      {"[scheduler]\nmax_num_seqs = \n", "TOML syntax error"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of([&] { ServerConfig::from_toml(c.toml, "bad.toml"); });
    EXPECT_NE(e.find(c.expected), std::string::npos) << c.toml << " -> " << e;
    EXPECT_EQ(e.rfind("bad.toml:", 0), 0u) << e;
  }
}

TEST(ServerConfigTest, CommandLineOverridesFileOverridesDefaults) {
  TempDir dir;
  const auto file = dir.write("server.toml", R"(
[server]
model = "models/tiny"
listen = "ipc:///tmp/from-file"
[scheduler]
max_num_seqs = 4
max_num_batched_tokens = 64
[kv_cache]
memory_gib = 2
)");
  const ServerConfig c = parse_command_line({"--config", file.string(), "--max-num-seqs", "9", "--kv-cache-bytes",
                                             "123456", "--seed", "18446744073709551615"});
  EXPECT_EQ(c.max_num_seqs, 9);                 // flag beats file
  EXPECT_EQ(c.max_num_batched_tokens, 64);      // file beats default
  EXPECT_EQ(c.listen, "ipc:///tmp/from-file");  // file
  EXPECT_EQ(c.kv_cache_bytes, 123456);          // bytes flag beats the file's GiB
  EXPECT_EQ(c.seed, std::optional<uint64_t>(UINT64_MAX));
  EXPECT_EQ(c.block_size, 16);                  // default
  // A relative model path in a file is relative to the file.
  EXPECT_EQ(c.model, (dir.path() / "models/tiny").string());

  const ServerConfig flags_only = parse_command_line({"--model", "rel/dir", "--listen", "tcp://127.0.0.1:7000",
                                                      "--kv-cache-gib", "0.25", "--block-size", "8"});
  EXPECT_EQ(flags_only.model, "rel/dir");  // flags keep paths as given (relative to the working directory)
  EXPECT_EQ(flags_only.listen, "tcp://127.0.0.1:7000");
  EXPECT_EQ(flags_only.kv_cache_bytes, int64_t{1} << 28);
  EXPECT_EQ(flags_only.block_size, 8);
  EXPECT_EQ(flags_only.max_num_seqs, 128);
}

TEST(ServerConfigTest, CommandLineErrors) {
  // No model anywhere.
  EXPECT_NE(error_of([] { parse_command_line({}); }).find("no model directory"), std::string::npos);
  // Values are validated after merging.
  EXPECT_NE(error_of([] { parse_command_line({"--model", "m", "--block-size", "24"}); }).find("kv_cache.block_size"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_command_line({"--model", "m", "--max-num-seqs", "4000000000"}); })
                .find("--max-num-seqs is out of range"),
            std::string::npos);
  // CLI11 rejects malformed numbers, unknown flags and both KV budget forms.
  EXPECT_THROW(parse_command_line({"--model", "m", "--max-num-seqs", "many"}), CLI::ParseError);
  EXPECT_THROW(parse_command_line({"--model", "m", "--max-num-seq", "4"}), CLI::ParseError);
  EXPECT_THROW(parse_command_line({"--model", "m", "--kv-cache-gib", "1", "--kv-cache-bytes", "5"}), CLI::ParseError);
  // A missing or broken config file names the file.
  EXPECT_NE(error_of([] { parse_command_line({"--model", "m", "--config", "/nonexistent/x.toml"}); })
                .find("/nonexistent/x.toml"),
            std::string::npos);
  TempDir dir;
  const auto bad = dir.write("bad.toml", "[limits]\nmax_frame_byte = 10\n");
  const std::string e = error_of([&] { parse_command_line({"--config", bad.string(), "--model", "m"}); });
  EXPECT_NE(e.find(bad.string() + ":2: unknown key 'limits.max_frame_byte'"), std::string::npos) << e;
}

TEST(ServerConfigTest, ValidationNamesTheSettingAndRange) {
  auto with = [](auto edit) {
    ServerConfig c;
    c.model = "m";
    edit(c);
    return error_of([&] { c.validate(); });
  };
  EXPECT_EQ(with([](ServerConfig&) {}), "");
  for (int ok : {1, 2, 16, 256}) EXPECT_EQ(with([&](ServerConfig& c) { c.block_size = ok; }), "") << ok;
  for (int bad : {0, -16, 3, 24, 512}) {
    const std::string e = with([&](ServerConfig& c) { c.block_size = bad; });
    EXPECT_NE(e.find("kv_cache.block_size (--block-size) must be a power of two between 1 and 256 (got " +
                     std::to_string(bad) + ")"),
              std::string::npos)
        << e;
  }
  EXPECT_NE(with([](ServerConfig& c) { c.max_num_seqs = 0; })
                .find("scheduler.max_num_seqs (--max-num-seqs) must be >= 1 (got 0)"),
            std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.max_num_batched_tokens = -1; }).find("max_num_batched_tokens"),
            std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.max_waiting_requests = 0; }).find("max_waiting_requests"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.max_model_len = -5; }).find("max_model_len"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.tokenizer_threads = 0; }).find("tokenizer_threads"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.kv_cache_bytes = 0; }).find("kv_cache.memory_bytes"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.kv_cache_blocks = -1; }).find("kv_cache.num_blocks"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.max_frame_bytes = 10; }).find("limits.max_frame_bytes"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.client_timeout_ms = 0; }).find("client_timeout_ms"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.shutdown_grace_ms = -1; }).find("shutdown_grace_ms"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.listen = "localhost:5555"; }).find("server.listen"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.device = "gpu"; }).find("server.device"), std::string::npos);
  EXPECT_EQ(with([](ServerConfig& c) { c.device = "cuda:1"; }), "");
  EXPECT_NE(with([](ServerConfig& c) { c.log_level = "verbose"; }).find("server.log_level"), std::string::npos);
  EXPECT_NE(with([](ServerConfig& c) { c.capacity_policy = "no_evict"; })
                .find("scheduler.capacity_policy (--capacity-policy) must be max_utilization or guaranteed_no_evict"),
            std::string::npos);
  EXPECT_EQ(with([](ServerConfig& c) { c.capacity_policy = "guaranteed_no_evict"; }), "");
}

TEST(ServerConfigTest, MaxModelLenAgainstTheModel) {
  LlamaConfig model;
  model.max_position_embeddings = 2048;
  ServerConfig c;
  EXPECT_EQ(c.effective_max_model_len(model), 2048);
  c.max_model_len = 1000;
  EXPECT_EQ(c.effective_max_model_len(model), 1000);
  c.max_model_len = 4096;
  EXPECT_NE(error_of([&] { c.effective_max_model_len(model); }).find("model's context is 2048"), std::string::npos);
}

// The documented example must parse and hold exactly the defaults (its model line is commented out).
TEST(ServerConfigTest, ExampleConfigHoldsTheDefaults) {
  // TESSERA_FIXTURES_DIR is <repo>/tests/fixtures.
  const std::filesystem::path example =
      std::filesystem::path(TESSERA_FIXTURES_DIR).parent_path().parent_path() / "config" / "server.toml";
  EXPECT_EQ(ServerConfig::from_toml_file(example), ServerConfig{});
}

}  // namespace
}  // namespace tessera
