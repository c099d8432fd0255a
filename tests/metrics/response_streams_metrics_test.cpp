// What a tokenizer shard records, with made-up clock values (ResponseStreams is clock-free): TTFT at the first
// token, every inter-token gap, tokens, and at the end the outcome, e2e, prefill and decode time and the lengths.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "actors/response_streams.hpp"
#include "tests/metrics/exposition.hpp"

namespace tessera {
namespace {

using test::Exposition;

class ResponseStreamsMetricsTest : public ::testing::Test {
 protected:
  ResponseStreamsMetricsTest()
      : metrics_(std::make_shared<ServingMetrics>(ServingMetricsOptions{})),
        streams_(nullptr, ModelLimits{512, 512, {511}}, metrics_) {}

  // Opens and admits a prompt_ids request that arrived at t = 100 s.
  void start(uint64_t seq, int prompt_tokens, int max_tokens = 8) {
    IncomingRequest r;
    r.seq_id = seq;
    std::string id = "r";  // (appending: GCC 12 warns falsely about "literal" + std::string)
    id += std::to_string(seq);
    r.address = ClientAddress{"client", id};
    r.prompt_ids.assign(static_cast<size_t>(prompt_tokens), 7);
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    r.arrival_s = 100.0;
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams_.open(r)));
    ASSERT_TRUE(streams_.admitted(AdmissionResult{seq, true, "", ""}));
  }

  void step(uint64_t seq, std::vector<int32_t> tokens, double now_s, SequenceOutcome outcome = SequenceOutcome::None,
            std::string error_code = "") {
    SequenceProgress p;
    p.seq_id = seq;
    p.tokens = std::move(tokens);
    p.outcome = static_cast<uint8_t>(outcome);
    p.error_code = std::move(error_code);
    p.queue_s = 0.25;  // scheduled at t = 100.25
    streams_.progress(p, now_s);
  }

  Exposition scrape() const { return Exposition(prometheus::TextSerializer().Serialize(metrics_->Collect())); }

  std::shared_ptr<ServingMetrics> metrics_;
  ResponseStreams streams_;
};

TEST_F(ResponseStreamsMetricsTest, ATokenStreamGivesTtftEveryGapAndTheRequestTimings) {
  start(1, 5, 3);
  step(1, {10}, 100.5);                            // TTFT 0.5 s
  step(1, {11}, 100.5155);                         // gap 15.5 ms
  step(1, {12}, 100.598, SequenceOutcome::Length);  // gap 82.5 ms; final
  const Exposition e = scrape();
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 1);
  EXPECT_EQ(e.value("tessera_time_to_first_token_seconds_count"), 1);
  EXPECT_NEAR(e.value("tessera_time_to_first_token_seconds_sum"), 0.5, 1e-9);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_count"), 2);
  EXPECT_NEAR(e.value("tessera_inter_token_latency_seconds_sum"), 0.098, 1e-9);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_bucket", {{"le", "0.015"}}), 0);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_bucket", {{"le", "0.016"}}), 1);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_bucket", {{"le", "0.075"}}), 1);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_bucket", {{"le", "0.1"}}), 2);
  EXPECT_NEAR(e.value("tessera_e2e_request_latency_seconds_sum"), 0.598, 1e-9);
  EXPECT_NEAR(e.value("tessera_request_prefill_time_seconds_sum"), 0.25, 1e-9);  // 100.25 -> 100.5
  EXPECT_NEAR(e.value("tessera_request_decode_time_seconds_sum"), 0.098, 1e-9);  // 100.5 -> 100.598
  EXPECT_EQ(e.value("tessera_prompt_tokens_total"), 5);
  EXPECT_EQ(e.value("tessera_generation_tokens_total"), 3);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_sum"), 5);
  EXPECT_EQ(e.value("tessera_request_generation_tokens_sum"), 3);
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "128"}, {"osl_bucket", "64"}}), 1);
}

TEST_F(ResponseStreamsMetricsTest, EveryRequestEndsInExactlyOneOutcome) {
  // rejected at open: prompt + max_tokens over max_model_len (512)
  IncomingRequest too_long;
  too_long.seq_id = 2;
  too_long.address = ClientAddress{"client", "r2"};
  too_long.prompt_ids.assign(500, 7);
  too_long.params.max_tokens = 20;
  EXPECT_TRUE(std::holds_alternative<bus::ErrorMessage>(streams_.open(too_long)));
  // rejected by the scheduler
  too_long.seq_id = 3;
  too_long.params.max_tokens = 2;
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(streams_.open(too_long)));
  streams_.admitted(AdmissionResult{3, false, "overloaded", "full"});
  // an error after one token (e.g. its deadline)
  start(4, 9);
  step(4, {10}, 100.3);
  step(4, {}, 100.4, SequenceOutcome::Error, "deadline_exceeded");
  // cancelled before any token
  start(5, 20);
  step(5, {}, 100.6, SequenceOutcome::Cancelled);
  // ended by shutdown
  start(6, 3);
  streams_.fail(6, bus::ErrorCode::ShuttingDown, "bye");
  // a stop token after two tokens
  start(7, 130);
  step(7, {10}, 100.7);
  step(7, {11}, 100.8, SequenceOutcome::Stop);
  // news for ended requests changes nothing
  step(4, {12}, 101.0);
  step(5, {12}, 101.0);

  const Exposition e = scrape();
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "rejected"}}), 2);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "error"}}), 2);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "cancelled"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "stop"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 0);
  EXPECT_EQ(e.value("tessera_time_to_first_token_seconds_count"), 2);  // requests 4 and 7
  EXPECT_EQ(e.value("tessera_prompt_tokens_total"), 9 + 130);
  EXPECT_EQ(e.value("tessera_generation_tokens_total"), 1 + 2);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_count"), 1);
  // Per-request histograms count requests answered with a final: 5 (cancelled) and 7 (stop).
  EXPECT_EQ(e.value("tessera_e2e_request_latency_seconds_count"), 2);
  EXPECT_EQ(e.value("tessera_request_prefill_time_seconds_count"), 1);  // 5 never got a token
  EXPECT_EQ(e.value("tessera_request_decode_time_seconds_count"), 1);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_sum"), 20 + 130);
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "128"}, {"osl_bucket", "64"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "256"}, {"osl_bucket", "64"}}), 1);
}

}  // namespace
}  // namespace tessera
