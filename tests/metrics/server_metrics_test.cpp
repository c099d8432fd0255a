// Metric values of a real tessera-server are exact: known traffic (requests of known prompt and output lengths,
// ignore_eos + max_tokens making the output length exact; one request per step with --max-num-seqs 1) and then
// /metrics holds exactly the counts, sums and histogram counts derived here from the traffic itself.
// Steps: the scheduler keeps up to two steps in flight (Executor::kMaxStepsInFlight) and never plans a token past
// max_tokens, so requests that end by length take exactly one step per token; a request ended by a stop token or a
// cancel may leave up to two planned steps whose tokens are dropped.
#include <functional>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "bus/client.hpp"
#include "tests/metrics/metrics_server.hpp"

namespace tessera {
namespace {

using namespace std::chrono_literals;
using test::Exposition;

// What the client saw of one request id.
struct Seen {
  int accepted = 0;
  std::vector<int32_t> ids;
  std::optional<bus::FinalMessage> final;
  std::vector<bus::ErrorMessage> errors;
};

class Traffic {
 public:
  explicit Traffic(const std::string& endpoint) : client_(endpoint) {}

  void submit(const std::string& id, int prompt_tokens, int max_tokens, std::vector<int32_t> stop_ids = {},
              std::optional<int64_t> deadline_ms = std::nullopt) {
    bus::SubmitRequest r;
    r.id = id;
    r.prompt_ids = prompt(prompt_tokens);
    r.params.max_tokens = max_tokens;
    r.params.temperature = 0.0f;
    r.params.ignore_eos = true;
    r.params.stop_token_ids = std::move(stop_ids);
    r.deadline_ms = deadline_ms;
    client_.submit(r);
  }
  void cancel(const std::string& id) { client_.cancel(id); }

  // Reads events until `done()` holds; fails the test after 60 s.
  void until(const std::function<bool()>& done, const std::string& what) {
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), end) << "timed out waiting for " << what;
      auto event = client_.next_event(100ms);
      if (!event) continue;
      Seen& s = seen[bus::event_request_id(*event)];
      if (std::holds_alternative<bus::Accepted>(*event)) ++s.accepted;
      if (auto* chunk = std::get_if<bus::TokenChunk>(&*event)) {
        s.ids.insert(s.ids.end(), chunk->ids.begin(), chunk->ids.end());
      }
      if (auto* final = std::get_if<bus::FinalMessage>(&*event)) s.final = *final;
      if (auto* error = std::get_if<bus::ErrorMessage>(&*event)) s.errors.push_back(*error);
    }
  }
  void until_final(const std::vector<std::string>& ids) {
    until([&] {
      for (const std::string& id : ids) {
        if (!seen[id].final) return false;
      }
      return true;
    }, "finals");
  }
  void until_error(const std::string& id) {
    until([&] { return !seen[id].errors.empty(); }, "an error for " + id);
  }

  // Prompt ids: a fixed pattern below the tiny model's special ids.
  static std::vector<int32_t> prompt(int tokens) {
    std::vector<int32_t> ids(static_cast<size_t>(tokens));
    for (int i = 0; i < tokens; ++i) ids[static_cast<size_t>(i)] = (i * 7 + 3) % 500;
    return ids;
  }

  std::map<std::string, Seen> seen;

 private:
  bus::Client client_;
};

// Independent of ServingMetrics: the smallest power of two >= n from `first` to `last`, else "+Inf".
std::string power_of_two_bucket(int64_t n, int64_t first, int64_t last) {
  for (int64_t bound = first; bound <= last; bound *= 2) {
    if (n <= bound) return std::to_string(bound);
  }
  return "+Inf";
}

// Waits until the server is idle: no request running or waiting, KV blocks freed (just after the last final),
// and no step still finishing (a step planned for a request that then ended still runs and is counted).
Exposition idle_scrape(const test::MetricsServer& server) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  double steps = -1;
  while (true) {
    Exposition e = server.scrape();
    const bool idle = e.value("tessera_requests_running") == 0 && e.value("tessera_requests_waiting") == 0 &&
                      e.value("tessera_kv_blocks_used") == 0;
    const double now_steps = e.value("tessera_step_duration_seconds_count");
    if ((idle && now_steps == steps) || std::chrono::steady_clock::now() > end) return e;
    steps = idle ? now_steps : -1;
    std::this_thread::sleep_for(100ms);
  }
}

TEST(ServerMetricsTest, KnownTrafficGivesExactCountsSumsAndHistograms) {
  const test::TinyModel model("metrics_exact");
  const test::MetricsServer server =
      test::start_metrics_server(model.dir(), "metrics_exact", {"--max-num-seqs", "1", "--kv-cache-blocks", "256"});
  Traffic traffic(server.process->endpoint());

  // Nothing yet: every series exists at zero.
  Exposition e = server.scrape();
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 0);
  EXPECT_EQ(e.count("tessera_errors_total"), 13u);  // one per bus error code
  const test::Labels model_labels = {{"model", model.dir().filename().string()}, {"dtype", "f32"}, {"device", "cpu"}};
  EXPECT_EQ(e.value("tessera_model_info", model_labels), 1);
  EXPECT_EQ(e.value("tessera_kv_blocks_total"), 256);

  // Phase 1: six requests that end by length, then one that stops on its first token.
  struct Spec {
    std::string id;
    int prompt;
    int max_tokens;
  };
  const std::vector<Spec> specs = {{"L0", 3, 4},   {"L1", 17, 1}, {"L2", 130, 9},
                                   {"L3", 300, 2}, {"L4", 1, 70}, {"L5", 64, 16}};
  for (const Spec& s : specs) traffic.submit(s.id, s.prompt, s.max_tokens);
  std::vector<std::string> ids;
  for (const Spec& s : specs) ids.push_back(s.id);
  traffic.until_final(ids);
  int64_t length_tokens = 0, length_batched_tokens = 0;
  for (const Spec& s : specs) {
    const Seen& seen = traffic.seen[s.id];
    ASSERT_EQ(seen.final->finish_reason, bus::FinishReason::Length) << s.id;
    ASSERT_EQ(seen.final->usage.completion_tokens, s.max_tokens) << s.id;
    ASSERT_EQ(seen.ids.size(), static_cast<size_t>(s.max_tokens)) << s.id;
    length_tokens += s.max_tokens;
    length_batched_tokens += s.prompt + s.max_tokens - 1;  // the prefill, then one decode token per further token
  }
  e = idle_scrape(server);
  // One sequence per step, a step per generated token.
  EXPECT_EQ(e.value("tessera_step_duration_seconds_count"), length_tokens);
  EXPECT_EQ(e.value("tessera_step_batch_size_count"), length_tokens);
  EXPECT_EQ(e.value("tessera_step_batch_size_sum"), length_tokens);
  EXPECT_EQ(e.value("tessera_step_batch_size_bucket", {{"le", "1"}}), length_tokens);
  EXPECT_EQ(e.value("tessera_step_batched_tokens_sum"), length_batched_tokens);
  double steps_before = e.value("tessera_step_duration_seconds_count");
  double batched_before = e.value("tessera_step_batched_tokens_sum");

  traffic.submit("S", 3, 8, {traffic.seen["L0"].ids.at(0)});  // L0's prompt: greedy, so its first token again
  traffic.until_final({"S"});
  ASSERT_EQ(traffic.seen["S"].final->finish_reason, bus::FinishReason::Stop);
  ASSERT_EQ(traffic.seen["S"].final->usage.completion_tokens, 1);

  struct Done {
    int prompt, generated;
  };
  std::vector<Done> done;
  for (const Spec& s : specs) done.push_back({s.prompt, s.max_tokens});
  done.push_back({3, 1});
  int64_t prompt_sum = 0, generated_sum = 0, itl_count = 0;
  std::map<std::pair<std::string, std::string>, int> grid;
  std::map<std::string, int> ttft_by_isl;
  for (const Done& d : done) {
    prompt_sum += d.prompt;
    generated_sum += d.generated;
    itl_count += d.generated - 1;
    ++grid[{power_of_two_bucket(d.prompt, 128, 32768), power_of_two_bucket(d.generated, 64, 4096)}];
    ++ttft_by_isl[power_of_two_bucket(d.prompt, 128, 32768)];
  }
  const double n = static_cast<double>(done.size());

  e = idle_scrape(server);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 6);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "stop"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "cancelled"}}), 0);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "error"}}), 0);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "rejected"}}), 0);
  EXPECT_EQ(e.value("tessera_prompt_tokens_total"), prompt_sum);
  EXPECT_EQ(e.value("tessera_generation_tokens_total"), generated_sum);
  for (const char* per_request : {"tessera_time_to_first_token_seconds", "tessera_e2e_request_latency_seconds",
                                  "tessera_request_queue_time_seconds", "tessera_request_prefill_time_seconds",
                                  "tessera_request_decode_time_seconds", "tessera_request_prompt_tokens",
                                  "tessera_request_generation_tokens"}) {
    EXPECT_EQ(e.value(std::string(per_request) + "_count"), n) << per_request;
  }
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_count"), itl_count);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_sum"), prompt_sum);
  EXPECT_EQ(e.value("tessera_request_generation_tokens_sum"), generated_sum);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_bucket", {{"le", "128"}}), 5);  // 3, 17, 1, 64, 3
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_bucket", {{"le", "256"}}), 6);  // + 130
  EXPECT_EQ(e.value("tessera_request_generation_tokens_bucket", {{"le", "16"}}), 6);  // all but 70
  // S: its prefill, and at most one more step planned (two in flight) before its stop token came back.
  const double s_steps = e.value("tessera_step_duration_seconds_count") - steps_before;
  EXPECT_GE(s_steps, 1);
  EXPECT_LE(s_steps, 2);
  EXPECT_EQ(e.value("tessera_step_batched_tokens_sum") - batched_before, 3 + s_steps - 1);
  EXPECT_EQ(e.value("tessera_step_batch_size_sum"), e.value("tessera_step_batch_size_count"));
  int grid_total = 0;
  for (const auto& [cell, count] : grid) {
    EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", cell.first}, {"osl_bucket", cell.second}}),
              count)
        << cell.first << " x " << cell.second;
    grid_total += count;
  }
  EXPECT_EQ(grid_total, 7);
  for (const auto& [isl, count] : ttft_by_isl) {
    EXPECT_EQ(e.value("tessera_time_to_first_token_by_input_length_seconds_count", {{"isl_bucket", isl}}), count)
        << isl;
  }
  EXPECT_EQ(e.value("tessera_requests_running"), 0);
  EXPECT_EQ(e.value("tessera_kv_blocks_used"), 0);
  EXPECT_EQ(e.value("tessera_kv_cache_usage_ratio"), 0);
  steps_before = e.value("tessera_step_duration_seconds_count");
  batched_before = e.value("tessera_step_batched_tokens_sum");
  const double itl_before = e.value("tessera_inter_token_latency_seconds_count");

  // Phase 2: a long request X runs (the only sequence slot); a second submit with X's id is rejected; D waits
  // behind X until its 30 ms deadline ends it with an error; X is cancelled; a too-long request is rejected; an
  // unknown cancel and a malformed frame are answered with errors.
  traffic.submit("x", 8, 2000);
  traffic.until([&] { return !traffic.seen["x"].ids.empty(); }, "x's first token");
  traffic.submit("x", 4, 2);
  traffic.until_error("x");
  EXPECT_EQ(traffic.seen["x"].errors.at(0).code, bus::ErrorCode::DuplicateRequestId);
  traffic.submit("d", 5, 10, {}, 30);
  traffic.until_error("d");
  EXPECT_EQ(traffic.seen["d"].errors.at(0).code, bus::ErrorCode::DeadlineExceeded);
  EXPECT_TRUE(traffic.seen["d"].ids.empty());
  ASSERT_FALSE(traffic.seen["x"].final) << "x ended before it was cancelled";
  traffic.cancel("x");
  traffic.until_final({"x"});
  ASSERT_EQ(traffic.seen["x"].final->finish_reason, bus::FinishReason::Cancelled);
  const int k = traffic.seen["x"].final->usage.completion_tokens;
  ASSERT_EQ(traffic.seen["x"].ids.size(), static_cast<size_t>(k));
  traffic.submit("t", 10, 2039);  // 10 + 2039 > max_model_len 2048
  traffic.until_error("t");
  EXPECT_EQ(traffic.seen["t"].errors.at(0).code, bus::ErrorCode::PromptTooLong);
  traffic.cancel("nope");
  traffic.until_error("nope");
  EXPECT_EQ(traffic.seen["nope"].errors.at(0).code, bus::ErrorCode::UnknownRequestId);
  {
    zmq::context_t context;
    zmq::socket_t raw(context, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.set(zmq::sockopt::rcvtimeo, 10000);
    raw.connect(server.process->endpoint());
    raw.send(zmq::str_buffer("\xc1"), zmq::send_flags::none);  // 0xc1: never used in msgpack
    zmq::message_t reply;
    ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none));
  }

  e = idle_scrape(server);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 6);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "stop"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "cancelled"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "error"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "rejected"}}), 2);  // duplicate id, too long
  const std::map<std::string, int> errors = {{"duplicate_request_id", 1}, {"deadline_exceeded", 1},
                                             {"prompt_too_long", 1},      {"unknown_request_id", 1},
                                             {"malformed", 1}};
  for (const char* code : {"malformed", "unsupported_version", "unknown_type", "invalid_request", "invalid_parameter",
                           "prompt_too_long", "duplicate_request_id", "unknown_request_id", "overloaded",
                           "frame_too_large", "deadline_exceeded", "internal", "shutting_down"}) {
    const auto it = errors.find(code);
    EXPECT_EQ(e.value("tessera_errors_total", {{"code", code}}), it == errors.end() ? 0 : it->second) << code;
  }
  EXPECT_EQ(e.value("tessera_prompt_tokens_total"), prompt_sum + 8);  // d never got a token
  EXPECT_EQ(e.value("tessera_generation_tokens_total"), generated_sum + k);
  EXPECT_EQ(e.value("tessera_time_to_first_token_seconds_count"), n + 1);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_count"), itl_before + k - 1);
  EXPECT_EQ(e.value("tessera_e2e_request_latency_seconds_count"), n + 1);   // x's cancelled final; not d's error
  EXPECT_EQ(e.value("tessera_request_queue_time_seconds_count"), n + 1);    // d was never scheduled
  EXPECT_EQ(e.value("tessera_request_generation_tokens_sum"), generated_sum + k);
  const std::string x_osl = power_of_two_bucket(k, 64, 4096);
  const test::Labels x_cell = {{"isl_bucket", "128"}, {"osl_bucket", x_osl}};
  const int x_cell_before = grid[{"128", x_osl}];
  EXPECT_EQ(e.value("tessera_requests_by_length_total", x_cell), x_cell_before + 1);
  // x's steps: one per token it got, plus at most the two in flight when the cancel came.
  const double x_steps = e.value("tessera_step_duration_seconds_count") - steps_before;
  EXPECT_GE(x_steps, k);
  EXPECT_LE(x_steps, k + 2);
  EXPECT_EQ(e.value("tessera_step_batched_tokens_sum") - batched_before, 8 + x_steps - 1);
  EXPECT_EQ(e.value("tessera_requests_running"), 0);
  EXPECT_EQ(e.value("tessera_requests_waiting"), 0);
  EXPECT_EQ(e.value("tessera_kv_blocks_used"), 0);
  EXPECT_EQ(server.process->stop(), 0);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Under capacity_policy guaranteed_no_evict, tessera_kv_blocks_reserved shows the running requests' reservations
// (the blocks of prompt + max_tokens) and falls back to 0 when they end; a waiting request reserves nothing.
TEST(ServerMetricsTest, ReservedKvBlocksFollowAdmissionUnderGuaranteedNoEvict) {
  const test::TinyModel model("metrics_reserved");
  const test::MetricsServer server = test::start_metrics_server(
      model.dir(), "metrics_reserved",
      {"--capacity-policy", "guaranteed_no_evict", "--kv-cache-blocks", "100", "--block-size", "16"});
  Traffic traffic(server.process->endpoint());
  EXPECT_EQ(server.scrape().value("tessera_kv_blocks_reserved"), 0);
  // A: 20 + 1500 tokens, at most 1519 cached: 95 of the 100 blocks. B (5 + 100 tokens, 7 blocks) must wait for A.
  traffic.submit("a", 20, 1500);
  traffic.until([&] { return !traffic.seen["a"].ids.empty(); }, "a's first token");
  traffic.submit("b", 5, 100);
  Exposition e = server.scrape();
  EXPECT_EQ(e.value("tessera_kv_blocks_reserved"), 95);
  EXPECT_EQ(e.value("tessera_requests_running"), 1);
  traffic.cancel("a");
  traffic.until_final({"a", "b"});
  EXPECT_EQ(traffic.seen["b"].ids.size(), 100u);
  e = idle_scrape(server);
  EXPECT_EQ(e.value("tessera_kv_blocks_reserved"), 0);
  EXPECT_EQ(e.value("tessera_preemptions_total"), 0);
  EXPECT_EQ(server.process->stop(), 0);
}

// A metrics port in use stops tessera-server at start-up with a clear message and a non-zero exit (no abort).
TEST(ServerMetricsTest, AMetricsPortInUseIsAClearStartUpError) {
  const test::TinyModel model("metrics_busy");
  const test::MetricsServer first = test::start_metrics_server(model.dir(), "metrics_busy");
  const std::string socket = "tessera_metrics_busy2_" + std::to_string(getpid()) + ".sock";
  const std::string endpoint = "ipc://" + (std::filesystem::temp_directory_path() / socket).string();
  const std::string port = std::to_string(first.metrics_port);
  const std::string command = std::string(TESSERA_BIN_DIR) + "/tessera-server --model " + model.dir().string() +
                              " --listen " + endpoint + " --metrics-port " + port + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[1024];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal: " << out;
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("metrics: cannot listen on 127.0.0.1:" + port), std::string::npos) << out;
  EXPECT_NE(out.find("--metrics-port"), std::string::npos) << out;
  EXPECT_EQ(first.scrape().value("tessera_requests_total", {{"outcome", "rejected"}}), 0);  // the first still serves
}

}  // namespace
}  // namespace tessera
