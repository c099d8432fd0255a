// tessera-bench's statistics on synthetic timings, against values worked out by hand.
#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "tools/bench/statistics.hpp"

namespace tessera::bench {
namespace {

RequestRecord record(double send, std::vector<ChunkArrival> chunks, double end, int32_t prompt = 10) {
  RequestRecord r;
  r.send_s = send;
  r.chunks = std::move(chunks);
  r.end_s = end;
  r.prompt_tokens = prompt;
  r.finish_reason = "length";
  return r;
}

TEST(BenchPercentile, LinearInterpolationBetweenClosestRanks) {
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  // h = (n - 1) p / 100 = 9 p / 100
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 50), 5.5);   // h = 4.5: 5 + 0.5 (6 - 5)
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 90), 9.1);   // h = 8.1
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 95), 9.55);  // h = 8.55
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 99), 9.91);  // h = 8.91
  EXPECT_DOUBLE_EQ(percentile_sorted(v, 100), 10);
  EXPECT_DOUBLE_EQ(percentile_sorted({10, 20, 40}, 90), 36);  // h = 1.8: 20 + 0.8 (40 - 20)
  EXPECT_DOUBLE_EQ(percentile_sorted({7}, 99), 7);
  EXPECT_DOUBLE_EQ(percentile_sorted({}, 50), 0);
}

TEST(BenchPercentile, DescribeSortsAndSummarizes) {
  const Distribution d = describe({40, 10, 20});
  EXPECT_EQ(d.count, 3);
  EXPECT_DOUBLE_EQ(d.mean, 70.0 / 3);
  EXPECT_DOUBLE_EQ(d.min, 10);
  EXPECT_DOUBLE_EQ(d.max, 40);
  EXPECT_DOUBLE_EQ(d.p50, 20);
  EXPECT_DOUBLE_EQ(d.p90, 36);
  EXPECT_DOUBLE_EQ(d.p95, 38);    // h = 1.9
  EXPECT_DOUBLE_EQ(d.p99, 39.6);  // h = 1.98
  const Distribution empty = describe({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.p99, 0);
}

TEST(BenchRecord, LatenciesFromOneTokenChunks) {
  // Sent at 1.0 s; tokens at 1.1, 1.15, 1.25 (two tokens), final at 1.3.
  const RequestRecord r = record(1.0, {{1.1, 1}, {1.15, 1}, {1.25, 2}}, 1.3);
  EXPECT_EQ(r.output_tokens(), 4);
  EXPECT_NEAR(*r.ttft_ms(), 100, 1e-9);
  EXPECT_NEAR(*r.e2e_ms(), 300, 1e-9);
  EXPECT_NEAR(*r.tpot_ms(), 50, 1e-9);  // (1.25 - 1.1) / 3
  const std::vector<double> itl = r.itl_ms();
  ASSERT_EQ(itl.size(), 3u);            // positions 1, 2, 3
  EXPECT_NEAR(itl[0], 50, 1e-9);        // 1.15 - 1.1
  EXPECT_NEAR(itl[1], 50, 1e-9);        // (1.25 - 1.15) / 2 ...
  EXPECT_NEAR(itl[2], 50, 1e-9);        // ... for each of the chunk's two tokens
  EXPECT_FALSE(r.send_lag_ms());        // closed loop: no schedule
}

TEST(BenchRecord, TokensInTheFirstChunkGetZeroGaps) {
  RequestRecord r = record(0, {{0.2, 3}, {0.5, 1}}, 0.5);
  EXPECT_EQ(r.itl_ms(), (std::vector<double>{0, 0, 300}));
  EXPECT_NEAR(*r.tpot_ms(), 100, 1e-9);  // 300 ms over 3 gaps: the mean ITL
  r.plan.arrival_s = -0.001;  // scheduled 1 ms before it was sent
  EXPECT_NEAR(*r.send_lag_ms(), 1, 1e-9);
}

TEST(BenchRecord, OneTokenAndFailedRequests) {
  const RequestRecord one = record(0, {{0.01, 1}}, 0.02);
  EXPECT_TRUE(one.itl_ms().empty());
  EXPECT_FALSE(one.tpot_ms());
  RequestRecord failed;
  failed.end_s = 0.1;
  failed.error_code = "overloaded";
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(failed.ttft_ms());
}

class BenchSummaryTest : public ::testing::Test {
 protected:
  // r0: sent 0, tokens 0.1, 0.2, 0.3, final 0.3 -> TTFT 100, ITL {100, 100}, TPOT 100, E2E 300, prompt 10
  // r1: sent 0.1, tokens 0.15, 0.4, final 0.5   -> TTFT 50, ITL {250}, TPOT 250, E2E 400, prompt 20
  // r2: sent 0.2, error "overloaded" at 0.25
  std::vector<RequestRecord> records() const {
    RequestRecord failed;
    failed.send_s = 0.2;
    failed.end_s = 0.25;
    failed.error_code = "overloaded";
    return {record(0, {{0.1, 1}, {0.2, 1}, {0.3, 1}}, 0.3, 10), record(0.1, {{0.15, 1}, {0.4, 1}}, 0.5, 20), failed};
  }
};

TEST_F(BenchSummaryTest, CountsThroughputAndDistributions) {
  const RunSummary s = summarize(records(), Slo{});
  EXPECT_EQ(s.requests, 3);
  EXPECT_EQ(s.completed, 2);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.errors.at("overloaded"), 1);
  EXPECT_NEAR(s.duration_s, 0.5, 1e-12);  // first send 0 -> last end 0.5
  EXPECT_EQ(s.input_tokens, 30);
  EXPECT_EQ(s.output_tokens, 5);
  EXPECT_NEAR(s.requests_per_s, 4, 1e-9);
  EXPECT_NEAR(s.output_tokens_per_s, 10, 1e-9);
  EXPECT_NEAR(s.total_tokens_per_s, 70, 1e-9);
  EXPECT_NEAR(s.ttft_ms.mean, 75, 1e-9);
  EXPECT_NEAR(s.ttft_ms.p90, 95, 1e-9);   // {50, 100}: 50 + 0.9 * 50
  EXPECT_EQ(s.itl_ms.count, 3);
  EXPECT_NEAR(s.itl_ms.mean, 150, 1e-9);  // {100, 100, 250}
  EXPECT_NEAR(s.itl_ms.p50, 100, 1e-9);
  EXPECT_NEAR(s.itl_ms.p90, 220, 1e-9);   // h = 1.8: 100 + 0.8 * 150
  EXPECT_NEAR(s.tpot_ms.mean, 175, 1e-9);
  EXPECT_NEAR(s.e2e_ms.p99, 399, 1e-9);   // {300, 400}: 300 + 0.99 * 100
  EXPECT_FALSE(s.goodput_requests_per_s);
  EXPECT_EQ(s.send_lag_ms.count, 0);
}

TEST_F(BenchSummaryTest, GoodputCountsRequestsMeetingEverySlo) {
  auto good = [&](const std::string& slo) { return *summarize(records(), Slo::parse(slo)).good_requests; };
  EXPECT_EQ(good("ttft=80ms"), 1);             // r1 only (r0 has 100 ms)
  EXPECT_EQ(good("itl=200ms"), 1);             // r0 only (r1 has a 250 ms gap)
  EXPECT_EQ(good("ttft=120ms,itl=200ms"), 1);  // r0
  EXPECT_EQ(good("ttft=80ms,itl=200ms"), 0);
  EXPECT_EQ(good("e2e=350ms"), 1);
  EXPECT_EQ(good("tpot=250ms"), 2);
  EXPECT_EQ(good("e2e=1s"), 2);                // the failed request never counts
  const RunSummary s = summarize(records(), Slo::parse("ttft=80ms"));
  EXPECT_NEAR(*s.goodput_requests_per_s, 2, 1e-9);  // 1 request / 0.5 s
  EXPECT_NEAR(*s.slo_attainment, 1.0 / 3, 1e-12);
}

TEST(BenchSlo, ParsesUnitsAndRejectsMistakes) {
  const Slo slo = Slo::parse("ttft=200ms, itl=25ms,e2e=2s,tpot=500us");
  EXPECT_DOUBLE_EQ(*slo.ttft_ms, 200);
  EXPECT_DOUBLE_EQ(*slo.itl_ms, 25);
  EXPECT_DOUBLE_EQ(*slo.e2e_ms, 2000);
  EXPECT_DOUBLE_EQ(*slo.tpot_ms, 0.5);
  EXPECT_EQ(Slo::parse("ttft=1.5s").describe(), "ttft<=1500ms");
  EXPECT_EQ(Slo{}.describe(), "none");
  auto message = [](const std::string& text) {
    try {
      Slo::parse(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("ttft=200").find("unit"), std::string::npos);
  EXPECT_NE(message("latency=2ms").find("unknown key 'latency'"), std::string::npos);
  EXPECT_NE(message("ttft=1ms,ttft=2ms").find("twice"), std::string::npos);
  EXPECT_NE(message("ttft").find("KEY=DURATION"), std::string::npos);
  EXPECT_NE(message("itl=-5ms").find("duration"), std::string::npos);
}

}  // namespace
}  // namespace tessera::bench
