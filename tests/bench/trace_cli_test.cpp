// Trace files (good and bad) and tessera-bench's command-line checks.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "tools/bench/bench_cli.hpp"
#include "tools/bench/trace.hpp"

namespace tessera::bench {
namespace {

std::vector<RequestPlan> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_trace(in, "t.jsonl");
}

std::string trace_error(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(BenchTrace, ReadsRequestsInOrder) {
  const std::vector<RequestPlan> plans = parse(
      "{\"arrival_s\": 0, \"input_len\": 5, \"output_len\": 3}\n"
      "\n"
      "{\"arrival_s\": 0.25, \"input_len\": 50, \"output_len\": 30, \"pattern\": \"chat\"}\r\n"
      "{\"output_len\": 2, \"input_len\": 7, \"arrival_s\": 0.25}");
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_EQ(plans[0].index, 0);
  EXPECT_EQ(*plans[0].arrival_s, 0);
  EXPECT_EQ(plans[0].pattern, "trace");
  EXPECT_EQ(plans[1].input_len, 50);
  EXPECT_EQ(plans[1].output_len, 30);
  EXPECT_EQ(plans[1].pattern, "chat");
  EXPECT_EQ(*plans[1].arrival_s, 0.25);
  EXPECT_EQ(plans[2].index, 2);
  EXPECT_EQ(plans[2].input_len, 7);
}

TEST(BenchTrace, BadLinesNameTheLineAndTheProblem) {
  const std::string ok = "{\"arrival_s\": 0, \"input_len\": 5, \"output_len\": 3}\n";
  struct Case {
    std::string text, expected;
  };
  for (const Case& c : std::vector<Case>{
           {ok + "{\"arrival_s\": 1, \"input_len\": 5\n", "t.jsonl line 2: not valid JSON"},
           {ok + "[1, 2, 3]\n", "t.jsonl line 2: expected a JSON object"},
           {ok + "{\"arrival_s\": 1, \"input_len\": 5}\n", "t.jsonl line 2: missing \"output_len\""},
           {ok + "{\"input_len\": 5, \"output_len\": 3}\n", "t.jsonl line 2: missing \"arrival_s\""},
           {ok + "{\"arrival_s\": \"soon\", \"input_len\": 5, \"output_len\": 3}\n", "line 2: \"arrival_s\" must be a number"},
           {ok + "{\"arrival_s\": 1, \"input_len\": \"5\", \"output_len\": 3}\n", "line 2: \"input_len\" must be an integer"},
           {ok + "{\"arrival_s\": 1, \"input_len\": 5.5, \"output_len\": 3}\n", "line 2: \"input_len\" must be an integer"},
           {ok + "{\"arrival_s\": 1, \"input_len\": 5, \"output_len\": 0}\n", "line 2: \"output_len\" = 0 is outside"},
           {ok + "{\"arrival_s\": -1, \"input_len\": 5, \"output_len\": 3}\n", "line 2: \"arrival_s\" must be >= 0"},
           {ok + "{\"arrival_s\": 1, \"input_len\": 5, \"output_len\": 3, \"ouput_len\": 3}\n", "line 2: unknown key \"ouput_len\""},
           {ok + "{\"arrival_s\": 1, \"input_len\": 5, \"output_len\": 3, \"pattern\": 4}\n", "line 2: \"pattern\" must be"},
           {"{\"arrival_s\": 2, \"input_len\": 5, \"output_len\": 3}\n\n{\"arrival_s\": 1, \"input_len\": 5, \"output_len\": 3}",
            "t.jsonl line 3: \"arrival_s\" 1 is earlier than the previous line's"},
           {"\n\n", "t.jsonl: the trace holds no requests"},
       }) {
    const std::string message = trace_error(c.text);
    EXPECT_NE(message.find(c.expected), std::string::npos) << "got: " << message << "\nexpected: " << c.expected;
  }
}

TEST(BenchTrace, MissingFile) {
  try {
    load_trace("/nonexistent/trace.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open trace file '/nonexistent/trace.jsonl'"), std::string::npos);
  }
}

BenchOptions parse_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "tessera-bench");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  BenchCli cli;
  return cli.parse(static_cast<int>(argv.size()), argv.data());
}

TEST(BenchCliTest, TheSimplestRun) {
  const BenchOptions o = parse_cli({"--server", "tcp://127.0.0.1:5555", "--concurrency", "8", "--num-requests", "40",
                                    "--input-len", "16", "--output-len", "8", "--output", "/tmp/x"});
  EXPECT_EQ(o.server, "tcp://127.0.0.1:5555");
  EXPECT_EQ(o.mode, LoadMode::ClosedLoop);
  EXPECT_EQ(o.concurrency_levels, std::vector<int32_t>{8});
  EXPECT_EQ(o.num_requests, 40);
  EXPECT_EQ(o.warmup_requests, 0);  // exactly 40 requests reach the server
  EXPECT_TRUE(o.workload.mix.empty());
  EXPECT_EQ(o.workload.input.describe(), "16");
  EXPECT_EQ(o.workload.output.describe(), "8");
  EXPECT_EQ(o.output_dir, "/tmp/x");
  EXPECT_TRUE(o.slo.empty());
  EXPECT_NE(o.command_line.find("--concurrency 8"), std::string::npos);
  EXPECT_EQ(parse_cli({"--server", "s", "--label", "it's a test"}).command_line,
            "tessera-bench --server s --label 'it'\\''s a test'");  // pastes back into a shell
}

TEST(BenchCliTest, LoadModes) {
  BenchOptions o = parse_cli({"--server", "s", "--request-rate", "2.5", "--burstiness", "0.5", "--max-concurrency", "4"});
  EXPECT_EQ(o.mode, LoadMode::OpenLoop);
  EXPECT_EQ(o.request_rates, std::vector<double>{2.5});
  EXPECT_EQ(o.burstiness, 0.5);
  EXPECT_EQ(o.max_concurrency, 4);
  o = parse_cli({"--server", "s", "--sweep-rate", "1, 2,4"});
  EXPECT_EQ(o.request_rates, (std::vector<double>{1, 2, 4}));
  o = parse_cli({"--server", "s", "--sweep-concurrency", "1,2,4,8"});
  EXPECT_EQ(o.mode, LoadMode::ClosedLoop);
  EXPECT_EQ(o.concurrency_levels, (std::vector<int32_t>{1, 2, 4, 8}));
  o = parse_cli({"--server", "s", "--trace", "t.jsonl"});
  EXPECT_EQ(o.mode, LoadMode::Trace);
  EXPECT_EQ(o.num_requests, 0);  // the whole trace
  o = parse_cli({"--server", "s"});
  EXPECT_EQ(o.concurrency_levels, std::vector<int32_t>{1});
  o = parse_cli({"--server", "s", "--pattern", "siso=1,lilo=3", "--long-input", "uniform:500:700", "--slo",
                 "ttft=200ms,itl=25ms"});
  ASSERT_EQ(o.workload.mix.size(), 2u);
  EXPECT_EQ(o.workload.mix[1], (std::pair<std::string, double>{"lilo", 3}));
  EXPECT_EQ(o.workload.patterns.long_input.describe(), "uniform:500:700");
  EXPECT_EQ(*o.slo.itl_ms, 25);
}

TEST(BenchCliTest, ConflictsAndRangesAreCommandLineErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {"--concurrency", "8"},                                         // no --server
      {"--server", "s", "--concurrency", "0"},
      {"--server", "s", "--concurrency", "4", "--request-rate", "2"},
      {"--server", "s", "--trace", "t", "--sweep-rate", "1,2"},
      {"--server", "s", "--concurrency", "4", "--burstiness", "2"},   // burstiness needs open loop
      {"--server", "s", "--request-rate", "0"},
      {"--server", "s", "--request-rate", "2", "--burstiness", "-1"},
      {"--server", "s", "--pattern", "siso", "--input-len", "5"},
      {"--server", "s", "--short-input", "5"},                        // needs --pattern
      {"--server", "s", "--trace", "t", "--input-len", "5"},
      {"--server", "s", "--num-requests", "0"},
      {"--server", "s", "--warmup-requests", "-1"},
      {"--server", "s", "--bogus"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_THROW(parse_cli(args), CLI::ParseError) << joined;
  }
}

TEST(BenchCliTest, BadValuesNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {{"--server", "s", "--input-len", "lots"}, "--input-len: "},
           {{"--server", "s", "--output-len", "uniform:9:3"}, "--output-len: "},
           {{"--server", "s", "--pattern", "sisx"}, "--pattern: unknown query pattern 'sisx'"},
           {{"--server", "s", "--pattern", "lilo", "--long-output", "0"}, "--long-output: "},
           {{"--server", "s", "--slo", "ttft=200"}, "--slo: "},
           {{"--server", "s", "--sweep-concurrency", "1,2.5"}, "--sweep-concurrency: "},
           {{"--server", "s", "--sweep-rate", "1,,2"}, "--sweep-rate: "},
           {{"--server", "s", "--burstiness", "2"}, "--burstiness applies to an open loop"},
           {{"--server", "s", "--max-concurrency", "4"}, "--max-concurrency applies to an open loop"},
       }) {
    try {
      parse_cli(c.args);
      ADD_FAILURE() << "accepted " << c.args.back();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tessera::bench
