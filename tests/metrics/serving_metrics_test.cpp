// ServingMetrics as Prometheus sees it: every family in the text exposition from the start (zeros included), and
// exact counts, sums and buckets after recording known values.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "core/metrics/serving_metrics.hpp"
#include "tests/metrics/exposition.hpp"

namespace tessera {
namespace {

using test::Exposition;

Exposition scrape(const ServingMetrics& metrics) {
  return Exposition(prometheus::TextSerializer().Serialize(metrics.Collect()));
}

ServingMetricsOptions options() {
  ServingMetricsOptions o;
  o.model = "tiny";
  o.dtype = "f32";
  o.device = "cpu";
  o.kv_blocks_total = 200;
  o.error_codes = {"overloaded", "internal"};
  return o;
}

TEST(ServingMetricsTest, EveryFamilyIsExposedFromTheStart) {
  ServingMetrics metrics(options());
  const Exposition e = scrape(metrics);
  for (const char* outcome : {"stop", "length", "cancelled", "error", "rejected"}) {
    EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", outcome}}), 0) << outcome;
  }
  EXPECT_EQ(e.count("tessera_requests_total"), 5u);
  EXPECT_EQ(e.value("tessera_errors_total", {{"code", "overloaded"}}), 0);
  EXPECT_EQ(e.value("tessera_errors_total", {{"code", "internal"}}), 0);
  EXPECT_EQ(e.count("tessera_requests_by_length_total"), 10u * 8u);  // 9 ISL bounds + Inf, 7 OSL bounds + Inf
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "+Inf"}, {"osl_bucket", "+Inf"}}), 0);
  EXPECT_EQ(e.value("tessera_model_info", {{"model", "tiny"}, {"dtype", "f32"}, {"device", "cpu"}}), 1);
  EXPECT_EQ(e.value("tessera_kv_blocks_total"), 200);
  for (const char* name : {"tessera_prompt_tokens_total", "tessera_generation_tokens_total",
                           "tessera_preemptions_total", "tessera_requests_running", "tessera_requests_waiting",
                           "tessera_kv_blocks_used", "tessera_kv_cache_usage_ratio", "tessera_kv_blocks_reserved"}) {
    EXPECT_EQ(e.value(name), 0) << name;
  }
  for (const char* histogram :
       {"tessera_time_to_first_token_seconds", "tessera_inter_token_latency_seconds",
        "tessera_e2e_request_latency_seconds", "tessera_request_queue_time_seconds",
        "tessera_request_prefill_time_seconds", "tessera_request_decode_time_seconds", "tessera_request_prompt_tokens",
        "tessera_request_generation_tokens", "tessera_step_duration_seconds", "tessera_step_batch_size",
        "tessera_step_batched_tokens"}) {
    EXPECT_EQ(e.value(std::string(histogram) + "_count"), 0) << histogram;
    EXPECT_EQ(e.value(std::string(histogram) + "_bucket", {{"le", "+Inf"}}), 0) << histogram;
  }
  EXPECT_EQ(e.value("tessera_time_to_first_token_by_input_length_seconds_count", {{"isl_bucket", "128"}}), 0);
}

TEST(ServingMetricsTest, InterTokenBucketsResolveMillisecondSteps) {
  ServingMetrics metrics(options());
  // 1 ms steps from 1 to 20 ms, coarser above; TTFT from 1 ms to 10 minutes.
  for (double gap : {0.0035, 0.0045, 0.0125, 0.0195, 0.0205, 0.25}) metrics.record_inter_token_latency(gap);
  const Exposition e = scrape(metrics);
  auto itl = [&](const char* le) { return e.value("tessera_inter_token_latency_seconds_bucket", {{"le", le}}); };
  EXPECT_EQ(itl("0.003"), 0);
  EXPECT_EQ(itl("0.004"), 1);
  EXPECT_EQ(itl("0.005"), 2);
  EXPECT_EQ(itl("0.012"), 2);
  EXPECT_EQ(itl("0.013"), 3);
  EXPECT_EQ(itl("0.02"), 4);
  EXPECT_EQ(itl("0.025"), 5);
  EXPECT_EQ(itl("+Inf"), 6);
  EXPECT_EQ(e.value("tessera_inter_token_latency_seconds_count"), 6);
  EXPECT_NEAR(e.value("tessera_inter_token_latency_seconds_sum"), 0.0035 + 0.0045 + 0.0125 + 0.0195 + 0.0205 + 0.25,
              1e-12);
  // (prometheus-cpp prints 16 digits: 0.009 appears as le="0.008999999999999999", the same double.)
  const std::vector<double> bounds = e.bucket_bounds("tessera_inter_token_latency_seconds_bucket");
  for (int ms = 1; ms <= 20; ++ms) {
    EXPECT_NE(std::find(bounds.begin(), bounds.end(), ms / 1000.0), bounds.end()) << ms << " ms";
  }
  EXPECT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
  EXPECT_TRUE(std::isinf(bounds.back()));
  EXPECT_TRUE(e.has("tessera_time_to_first_token_seconds_bucket", {{"le", "0.001"}}));
  EXPECT_TRUE(e.has("tessera_time_to_first_token_seconds_bucket", {{"le", "600"}}));
}

TEST(ServingMetricsTest, LengthBucketsArePowersOfTwoWithInf) {
  EXPECT_EQ(ServingMetrics::input_length_bucket(1), "128");
  EXPECT_EQ(ServingMetrics::input_length_bucket(128), "128");
  EXPECT_EQ(ServingMetrics::input_length_bucket(129), "256");
  EXPECT_EQ(ServingMetrics::input_length_bucket(32768), "32768");
  EXPECT_EQ(ServingMetrics::input_length_bucket(32769), "+Inf");
  EXPECT_EQ(ServingMetrics::output_length_bucket(0), "64");
  EXPECT_EQ(ServingMetrics::output_length_bucket(65), "128");
  EXPECT_EQ(ServingMetrics::output_length_bucket(4096), "4096");
  EXPECT_EQ(ServingMetrics::output_length_bucket(4097), "+Inf");
}

TEST(ServingMetricsTest, RequestsTokensAndStepsAddUpExactly) {
  ServingMetrics metrics(options());
  metrics.record_first_token(0.02, 300);
  metrics.record_first_token(0.5, 100);
  metrics.record_generated_tokens(70);
  metrics.record_generated_tokens(0);
  FinishedRequest a{RequestOutcome::Length, 300, 64, 1.25, 0.015, 1.2};
  FinishedRequest b{RequestOutcome::Cancelled, 100, 6, 0.75, std::nullopt, std::nullopt};
  metrics.record_finished(a);
  metrics.record_finished(b);
  metrics.record_outcome(RequestOutcome::Rejected);
  metrics.record_outcome(RequestOutcome::Error);
  metrics.record_queue_time(0.003);
  metrics.record_step(0.004, 3, 40);
  metrics.record_step(0.006, 1, 1);
  metrics.record_preemptions(0);
  metrics.record_preemptions(2);
  metrics.record_error("overloaded");
  metrics.record_error("overloaded");
  metrics.record_error("something_new");  // not named up front: still counted

  const Exposition e = scrape(metrics);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "length"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "cancelled"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "rejected"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "error"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_total", {{"outcome", "stop"}}), 0);
  EXPECT_EQ(e.value("tessera_prompt_tokens_total"), 400);
  EXPECT_EQ(e.value("tessera_generation_tokens_total"), 70);
  EXPECT_EQ(e.value("tessera_time_to_first_token_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(e.value("tessera_time_to_first_token_seconds_sum"), 0.52);
  EXPECT_EQ(e.value("tessera_time_to_first_token_seconds_bucket", {{"le", "0.02"}}), 1);
  EXPECT_EQ(e.value("tessera_time_to_first_token_by_input_length_seconds_count", {{"isl_bucket", "512"}}), 1);
  EXPECT_EQ(e.value("tessera_time_to_first_token_by_input_length_seconds_count", {{"isl_bucket", "128"}}), 1);
  EXPECT_EQ(e.value("tessera_time_to_first_token_by_input_length_seconds_count", {{"isl_bucket", "256"}}), 0);
  EXPECT_EQ(e.value("tessera_e2e_request_latency_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(e.value("tessera_e2e_request_latency_seconds_sum"), 2.0);
  EXPECT_EQ(e.value("tessera_request_prefill_time_seconds_count"), 1);  // b had no token
  EXPECT_DOUBLE_EQ(e.value("tessera_request_prefill_time_seconds_sum"), 0.015);
  EXPECT_EQ(e.value("tessera_request_decode_time_seconds_count"), 1);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_sum"), 400);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_bucket", {{"le", "256"}}), 1);
  EXPECT_EQ(e.value("tessera_request_prompt_tokens_bucket", {{"le", "512"}}), 2);
  EXPECT_EQ(e.value("tessera_request_generation_tokens_sum"), 70);
  EXPECT_EQ(e.value("tessera_request_generation_tokens_bucket", {{"le", "8"}}), 1);
  EXPECT_EQ(e.value("tessera_request_generation_tokens_bucket", {{"le", "64"}}), 2);
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "512"}, {"osl_bucket", "64"}}), 1);
  EXPECT_EQ(e.value("tessera_requests_by_length_total", {{"isl_bucket", "128"}, {"osl_bucket", "64"}}), 1);
  EXPECT_EQ(e.value("tessera_request_queue_time_seconds_count"), 1);
  EXPECT_EQ(e.value("tessera_step_duration_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(e.value("tessera_step_duration_seconds_sum"), 0.01);
  EXPECT_EQ(e.value("tessera_step_batch_size_sum"), 4);
  EXPECT_EQ(e.value("tessera_step_batch_size_bucket", {{"le", "2"}}), 1);
  EXPECT_EQ(e.value("tessera_step_batch_size_bucket", {{"le", "4"}}), 2);
  EXPECT_EQ(e.value("tessera_step_batched_tokens_sum"), 41);
  EXPECT_EQ(e.value("tessera_step_batched_tokens_bucket", {{"le", "32"}}), 1);
  EXPECT_EQ(e.value("tessera_preemptions_total"), 2);
  EXPECT_EQ(e.value("tessera_errors_total", {{"code", "overloaded"}}), 2);
  EXPECT_EQ(e.value("tessera_errors_total", {{"code", "something_new"}}), 1);
  EXPECT_EQ(e.value("tessera_errors_total", {{"code", "internal"}}), 0);
}

TEST(ServingMetricsTest, LiveLoadIsReadAtEveryScrape) {
  int calls = 0;
  ServingMetricsOptions o = options();
  o.live_load = [&calls] {
    ++calls;
    return LiveLoad{3, 2, 50, 120};
  };
  ServingMetrics metrics(std::move(o));
  const Exposition e = scrape(metrics);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(e.value("tessera_requests_running"), 3);
  EXPECT_EQ(e.value("tessera_requests_waiting"), 2);
  EXPECT_EQ(e.value("tessera_kv_blocks_used"), 50);
  EXPECT_EQ(e.value("tessera_kv_blocks_total"), 200);
  EXPECT_DOUBLE_EQ(e.value("tessera_kv_cache_usage_ratio"), 0.25);
  EXPECT_EQ(e.value("tessera_kv_blocks_reserved"), 120);
}

}  // namespace
}  // namespace tessera
