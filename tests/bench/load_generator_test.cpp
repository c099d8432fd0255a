// The load generator against a fake server on a real bus socket: request counts, exact lengths, the concurrency
// bound, schedules, chunk attribution, error replies, warm-up and a silent server.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "tests/bench/fake_server.hpp"
#include "tools/bench/arrivals.hpp"
#include "tools/bench/bench_run.hpp"
#include "tools/bench/load_generator.hpp"

namespace tessera::bench {
namespace {

namespace fs = std::filesystem;

class LoadGeneratorTest : public ::testing::Test {
 protected:
  std::string endpoint() {
    return "ipc://" + (fs::temp_directory_path() / ("tessera_bench_lg_" + std::to_string(getpid()) + "_" +
                                                    std::to_string(counter_++) + ".sock")).string();
  }
  static LoadOptions options(int32_t max_in_flight) {
    LoadOptions o;
    o.max_in_flight = max_in_flight;
    o.vocabulary = {1, 2, 3, 4, 5};
    o.idle_timeout = std::chrono::milliseconds(5000);
    return o;
  }
  static std::vector<RequestPlan> plans(int count, int32_t input, int32_t output) {
    WorkloadSpec spec;
    spec.input = LengthDistribution::fixed(input);
    spec.output = LengthDistribution::fixed(output);
    return make_requests(spec, count, 1);
  }
  int counter_ = 0;
};

TEST_F(LoadGeneratorTest, ClosedLoopSendsEveryRequestWithExactLengthsAndKeepsTheConcurrency) {
  const std::string ep = endpoint();
  test::FakeBenchServer server(ep, {});
  bus::Client client(ep);
  const PhaseResult result = run_phase(client, plans(20, 16, 5), options(4));
  ASSERT_EQ(result.records.size(), 20u);
  for (const RequestRecord& r : result.records) {
    EXPECT_TRUE(r.ok()) << r.id;
    EXPECT_EQ(r.output_tokens(), 5);
    EXPECT_EQ(*r.prompt_tokens, 16);
    EXPECT_EQ(*r.usage_completion_tokens, 5);
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.itl_ms().size(), 4u);
    EXPECT_LE(*r.ttft_ms(), *r.e2e_ms());
  }
  EXPECT_EQ(result.client.max_in_flight_seen, 4);
  EXPECT_EQ(result.client.messages, 20 * (1 + 5 + 1));  // accepted, 5 tokens, final
  const std::vector<test::FakeBenchServer::Submitted> seen = server.submitted();
  ASSERT_EQ(seen.size(), 20u);
  for (const auto& s : seen) {
    EXPECT_EQ(s.prompt_ids, 16u);
    EXPECT_EQ(s.max_tokens, 5);
    EXPECT_TRUE(s.ignore_eos);
  }
  EXPECT_LE(server.max_live(), 4u);
  EXPECT_EQ(server.tokens_sent(), 100);
}

TEST_F(LoadGeneratorTest, MultiTokenChunksShareTheirGap) {
  const std::string ep = endpoint();
  test::FakeBenchServer::Options fake;
  fake.tokens_per_chunk = 3;
  test::FakeBenchServer server(ep, fake);
  bus::Client client(ep);
  const PhaseResult result = run_phase(client, plans(3, 4, 7), options(3));
  for (const RequestRecord& r : result.records) {
    ASSERT_EQ(r.chunks.size(), 3u);  // 3 + 3 + 1 tokens
    EXPECT_EQ(r.output_tokens(), 7);
    const std::vector<double> itl = r.itl_ms();
    ASSERT_EQ(itl.size(), 6u);
    EXPECT_EQ(itl[0], 0);  // arrived with the first token
    EXPECT_EQ(itl[1], 0);
    EXPECT_DOUBLE_EQ(itl[2], itl[3]);  // the second chunk's gap, shared by its 3 tokens
    EXPECT_DOUBLE_EQ(itl[3], itl[4]);
    EXPECT_NEAR(itl[2] * 3, (r.chunks[1].time_s - r.chunks[0].time_s) * 1e3, 1e-9);
  }
}

TEST_F(LoadGeneratorTest, OpenLoopNeverSendsBeforeTheSchedule) {
  const std::string ep = endpoint();
  test::FakeBenchServer server(ep, {});
  bus::Client client(ep);
  std::vector<RequestPlan> p = plans(15, 8, 2);
  schedule(p, arrival_times({300.0, 1.0}, 15, 4));
  const PhaseResult result = run_phase(client, p, options(0));
  for (const RequestRecord& r : result.records) {
    EXPECT_TRUE(r.ok());
    EXPECT_GE(r.send_s, *r.plan.arrival_s);
    EXPECT_GE(*r.send_lag_ms(), 0);
  }
  EXPECT_EQ(server.submitted().size(), 15u);
}

TEST_F(LoadGeneratorTest, ErrorRepliesEndTheirRequestAndAreCounted) {
  const std::string ep = endpoint();
  test::FakeBenchServer::Options fake;
  fake.reject_every = 3;
  test::FakeBenchServer server(ep, fake);
  bus::Client client(ep);
  const PhaseResult result = run_phase(client, plans(9, 4, 2), options(2));
  const RunSummary s = summarize(result.records, Slo{});
  EXPECT_EQ(s.requests, 9);
  EXPECT_EQ(s.failed, 3);
  EXPECT_EQ(s.completed, 6);
  EXPECT_EQ(s.errors.at("overloaded"), 3);
  EXPECT_EQ(s.output_tokens, 12);
}

TEST_F(LoadGeneratorTest, WarmupRequestsAreSentButNotCounted) {
  const std::string ep = endpoint();
  test::FakeBenchServer server(ep, {});
  bus::Client client(ep);
  BenchOptions o;
  o.server = ep;
  o.concurrency_levels = {2, 3};
  o.num_requests = 10;
  o.warmup_requests = 4;
  o.workload.input = LengthDistribution::fixed(6);
  o.workload.output = LengthDistribution::fixed(3);
  const bus::InfoReply info = client.info(std::chrono::seconds(5));
  const BenchResult result = run_benchmark(o, client, info);
  ASSERT_EQ(result.runs.size(), 2u);
  for (const RunResult& run : result.runs) {
    EXPECT_EQ(run.summary.requests, 10);
    EXPECT_EQ(run.summary.completed, 10);
    EXPECT_EQ(run.summary.output_tokens, 30);
    EXPECT_EQ(run.warmup_requests, 4);
  }
  EXPECT_EQ(result.runs[1].label, "concurrency=3");
  EXPECT_EQ(result.runs[1].phase.client.max_in_flight_seen, 3);
  EXPECT_EQ(server.submitted().size(), 2u * (10 + 4));
  EXPECT_EQ(result.runs[0].phase.records[0].id, "r0-0");
}

TEST_F(LoadGeneratorTest, RequestsTooLongForTheServerAreRefusedBeforeSending) {
  const std::string ep = endpoint();
  test::FakeBenchServer server(ep, {});
  bus::Client client(ep);
  BenchOptions o;
  o.num_requests = 3;
  o.workload.input = LengthDistribution::fixed(4000);
  o.workload.output = LengthDistribution::fixed(100);  // 4100 > the fake's max_model_len 4096
  try {
    run_benchmark(o, client, client.info(std::chrono::seconds(5)));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_model_len 4096"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(server.submitted().empty());
}

TEST_F(LoadGeneratorTest, ASilentServerFailsThePhaseAfterTheIdleTimeout) {
  const std::string ep = endpoint();
  test::FakeBenchServer::Options fake;
  fake.silent = true;
  test::FakeBenchServer server(ep, fake);
  bus::Client client(ep);
  LoadOptions o = options(2);
  o.idle_timeout = std::chrono::milliseconds(300);
  try {
    run_phase(client, plans(2, 4, 2), o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no reply from the server for 300 ms with 2 requests in flight"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera::bench
