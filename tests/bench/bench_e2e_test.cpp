// tessera-bench end to end: the real executable against a live tessera-server on the tiny model, its output files
// checked against the server's own Prometheus counters, and the report script rendering them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/server_process.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;

const std::string kBin = TESSERA_BIN_DIR;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

size_t count_lines(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(address.sin_port);
}

// GET http://127.0.0.1:PORT/metrics, parsed: "name{labels}" -> value (comments and HTTP headers skipped).
std::map<std::string, double> scrape_metrics(int port) {
  std::map<std::string, double> series;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return series;
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return series;
  }
  std::string response;
  char buffer[8192];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, static_cast<size_t>(n));
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  std::istringstream lines(body == std::string::npos ? std::string() : response.substr(body + 4));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    series[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return series;
}

struct ServerCounters {
  std::map<std::string, double> requests_by_outcome;  // tessera_requests_total{outcome="..."}
  double prompt_tokens = 0, generation_tokens = 0;
};
ServerCounters server_counters(int port) {
  ServerCounters c;
  for (const auto& [name, value] : scrape_metrics(port)) {
    const std::string prefix = "tessera_requests_total{outcome=\"";
    if (name.rfind(prefix, 0) == 0) c.requests_by_outcome[name.substr(prefix.size(), name.find('"', prefix.size()) - prefix.size())] = value;
    if (name == "tessera_prompt_tokens_total") c.prompt_tokens = value;
    if (name == "tessera_generation_tokens_total") c.generation_tokens = value;
  }
  return c;
}

class BenchE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("tessera_bench_e2e_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    const CommandResult made =
        run_command(kBin + "/tessera-model make --preset tiny --out " + (*dir_ / "model").string() + " --seed 3");
    ASSERT_EQ(made.exit_code, 0) << made.output;
    const std::string endpoint = "ipc://" + (*dir_ / "server.sock").string();
    metrics_port_ = free_port();
    ASSERT_GT(metrics_port_, 0);
    server_ = new test::ServerProcess({kBin + "/tessera-server", "--model", (*dir_ / "model").string(), "--listen",
                                      endpoint, "--log-level", "warn", "--metrics-port",
                                      std::to_string(metrics_port_)});
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string bench(const std::string& args) {
    return kBin + "/tessera-bench --server " + server_->endpoint() + " " + args;
  }

  static fs::path* dir_;
  static test::ServerProcess* server_;
  static int metrics_port_;
};
fs::path* BenchE2ETest::dir_ = nullptr;
test::ServerProcess* BenchE2ETest::server_ = nullptr;
int BenchE2ETest::metrics_port_ = -1;

TEST_F(BenchE2ETest, SimplestRunSendsExactlyWhatWasAsked) {
  const fs::path out = *dir_ / "simple";
  ServerCounters before = server_counters(metrics_port_);
  const CommandResult r =
      run_command(bench("--concurrency 8 --num-requests 40 --input-len 16 --output-len 8 --output " + out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("40 sent, 40 completed, 0 failed"), std::string::npos) << r.output;
  const nlohmann::json doc = read_json(out / "bench.json");
  ASSERT_EQ(doc.at("runs").size(), 1u);
  const nlohmann::json& run = doc.at("runs")[0];
  const nlohmann::json& s = run.at("summary");
  EXPECT_EQ(s.at("requests"), 40);
  EXPECT_EQ(s.at("completed"), 40);
  EXPECT_EQ(s.at("failed"), 0);
  EXPECT_EQ(s.at("input_tokens"), 40 * 16);
  EXPECT_EQ(s.at("output_tokens"), 40 * 8);
  EXPECT_EQ(s.at("ttft_ms").at("count"), 40);
  EXPECT_EQ(s.at("itl_ms").at("count"), 40 * 7);
  EXPECT_EQ(run.at("client").at("max_in_flight"), 8);
  ASSERT_EQ(run.at("requests").size(), 40u);
  for (const nlohmann::json& req : run.at("requests")) {
    EXPECT_EQ(req.at("prompt_tokens"), 16);             // the server's count, from "accepted"
    EXPECT_EQ(req.at("output_tokens"), 8);              // ids received in "tokens" messages
    EXPECT_EQ(req.at("usage_completion_tokens"), 8);    // the server's count, from "final"
    EXPECT_EQ(req.at("finish_reason"), "length");
    EXPECT_EQ(req.at("itl_ms").size(), 7u);
    EXPECT_LE(req.at("ttft_ms").get<double>(), req.at("e2e_ms").get<double>());
  }
  EXPECT_EQ(count_lines(out / "requests.csv"), 41u);  // header + 40
  EXPECT_EQ(count_lines(out / "summary.csv"), 2u);

  // The server's own counters saw the same: 40 requests ending by length, 40 x 16 prompt and 40 x 8 generated
  // tokens. Its counters may trail the last final message by a moment: poll briefly until they settle.
  ServerCounters after;
  for (int attempt = 0; attempt < 50; ++attempt) {
    after = server_counters(metrics_port_);
    if (after.requests_by_outcome["length"] - before.requests_by_outcome["length"] >= 40 &&
        after.generation_tokens - before.generation_tokens >= 320)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(after.requests_by_outcome.empty()) << "no tessera_requests_total on port " << metrics_port_;
  for (const auto& [outcome, value] : after.requests_by_outcome) {
    const double delta = value - before.requests_by_outcome[outcome];
    EXPECT_EQ(delta, outcome == "length" ? s.at("completed").get<double>() : 0.0) << outcome;
  }
  EXPECT_EQ(after.requests_by_outcome["length"] - before.requests_by_outcome["length"], 40);
  EXPECT_EQ(after.prompt_tokens - before.prompt_tokens, s.at("input_tokens").get<double>());
  EXPECT_EQ(after.generation_tokens - before.generation_tokens, s.at("output_tokens").get<double>());
}

TEST_F(BenchE2ETest, TraceReplayKeepsEachLinesLengths) {
  const fs::path out = *dir_ / "trace";
  fs::create_directories(out);
  const std::vector<std::pair<int, int>> lengths = {{5, 3}, {40, 12}, {1, 1}, {100, 6}, {17, 20}};
  {
    std::ofstream trace(out / "trace.jsonl");
    for (size_t i = 0; i < lengths.size(); ++i)
      trace << "{\"arrival_s\": " << 0.01 * static_cast<double>(i) << ", \"input_len\": " << lengths[i].first
            << ", \"output_len\": " << lengths[i].second << "}\n";
  }
  const CommandResult r = run_command(bench("--trace " + (out / "trace.jsonl").string() + " --quiet --output " + out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json doc = read_json(out / "bench.json");
  const nlohmann::json& reqs = doc.at("runs")[0].at("requests");
  ASSERT_EQ(reqs.size(), lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    EXPECT_EQ(reqs[i].at("prompt_tokens"), lengths[i].first);
    EXPECT_EQ(reqs[i].at("output_tokens"), lengths[i].second);
    EXPECT_GE(reqs[i].at("send_s").get<double>(), reqs[i].at("scheduled_s").get<double>());
  }
}

TEST_F(BenchE2ETest, OpenLoopRateSweepWithPatternsWarmupAndSloRendersAReport) {
  const fs::path out = *dir_ / "sweep";
  const CommandResult r = run_command(
      bench("--sweep-rate 200,400 --burstiness 0.5 --num-requests 16 --warmup-requests 3 --pattern siso=1,lilo=1 "
            "--short-input 8 --long-input uniform:48:64 --short-output 4 --long-output 16 --slo ttft=10s,e2e=20s "
            "--seed 5 --quiet --output " + out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json doc = read_json(out / "bench.json");
  ASSERT_EQ(doc.at("runs").size(), 2u);
  for (const nlohmann::json& run : doc.at("runs")) {
    EXPECT_EQ(run.at("summary").at("completed"), 16);
    EXPECT_EQ(run.at("summary").at("good_requests"), 16);
    EXPECT_EQ(run.at("warmup_requests"), 3);
    for (const nlohmann::json& req : run.at("requests")) {
      const bool short_in = req.at("pattern") == "siso";
      EXPECT_TRUE(req.at("pattern") == "siso" || req.at("pattern") == "lilo");
      EXPECT_EQ(req.at("output_tokens"), short_in ? 4 : 16);
      EXPECT_EQ(req.at("prompt_tokens"), req.at("input_len"));
      if (short_in) {
        EXPECT_EQ(req.at("input_len"), 8);
      } else {
        EXPECT_TRUE(req.at("input_len") >= 48 && req.at("input_len") <= 64);
      }
    }
  }
  EXPECT_EQ(count_lines(out / "requests.csv"), 33u);
  const CommandResult report = run_command("/usr/bin/python3 " + std::string(TESSERA_SOURCE_DIR) +
                                           "/tools/bench/report.py " + (out / "bench.json").string() + " --out " +
                                           (out / "report").string());
  ASSERT_EQ(report.exit_code, 0) << report.output;
  for (const char* file : {"index.md", "ttft_vs_input_len.png", "itl_vs_position.png", "e2e_by_pattern.png",
                           "isl_osl_hist2d.png", "pareto_throughput_latency.png"})
    EXPECT_GT(fs::file_size(out / "report" / file), 100u) << file;
  std::ifstream index(out / "report" / "index.md");
  std::stringstream text;
  text << index.rdbuf();
  EXPECT_NE(text.str().find("| rate=400/s | 16 / 16 |"), std::string::npos) << text.str();
}

TEST_F(BenchE2ETest, CommandLineAndConnectionErrorsExitCleanly) {
  CommandResult r = run_command(kBin + "/tessera-bench --server x --concurrency 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--concurrency"), std::string::npos) << r.output;
  r = run_command(kBin + "/tessera-bench --server x --input-len uniform:9:3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--input-len: uniform minimum 9 is above the maximum 3"), std::string::npos) << r.output;
  r = run_command(kBin + "/tessera-bench --server ipc://" + (*dir_ / "nobody.sock").string() + " --request-timeout 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("did not answer ready within 1 s"), std::string::npos) << r.output;
  r = run_command(bench("--input-len 2000 --output-len 100 --num-requests 1"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("more than the server's max_model_len 2048"), std::string::npos) << r.output;
  r = run_command(bench("--trace /nonexistent.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot open trace file"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
