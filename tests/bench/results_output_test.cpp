// tessera-bench's files: the JSON document (parsed back) and the CSV files (quoting, one row per request / run).
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tools/bench/results_csv.hpp"
#include "tools/bench/results_json.hpp"

namespace tessera::bench {
namespace {

BenchResult two_requests() {
  RequestRecord ok;
  ok.id = "r0-0";
  ok.plan.pattern = "siso";
  ok.plan.input_len = 4;
  ok.plan.output_len = 2;
  ok.send_s = 0;
  ok.prompt_tokens = 4;
  ok.chunks = {{0.1, 1}, {0.3, 1}};
  ok.end_s = 0.3;
  ok.finish_reason = "length";
  ok.usage_completion_tokens = 2;
  RequestRecord failed;
  failed.id = "r0-1";
  failed.plan.pattern = "a,\"b\"";
  failed.send_s = 0.1;
  failed.end_s = 0.2;
  failed.error_code = "overloaded";
  failed.error_message = "queue full";
  RunResult run;
  run.label = "concurrency=2";
  run.concurrency = 2;
  run.phase.records = {ok, failed};
  run.summary = summarize(run.phase.records, Slo::parse("ttft=150ms"));
  BenchResult result;
  result.server.model = "m";
  result.runs = {run};
  return result;
}

size_t count(const std::string& text, char c) { return static_cast<size_t>(std::count(text.begin(), text.end(), c)); }

TEST(BenchResultsOutput, JsonRoundTripsWithOneLinePerRequest) {
  BenchOptions options;
  options.slo = Slo::parse("ttft=150ms");
  std::ostringstream out;
  write_results_json(out, results_json(options, two_requests()));
  const nlohmann::json doc = nlohmann::json::parse(out.str());
  EXPECT_EQ(doc.at("format_version"), kResultsFormatVersion);
  EXPECT_EQ(doc.at("config").at("slo").at("ttft_ms"), 150.0);
  const nlohmann::json& run = doc.at("runs")[0];
  EXPECT_EQ(run.at("concurrency"), 2);
  EXPECT_EQ(run.at("summary").at("good_requests"), 1);
  EXPECT_EQ(run.at("summary").at("errors").at("overloaded"), 1);
  const nlohmann::json& ok = run.at("requests")[0];
  EXPECT_EQ(ok.at("ttft_ms"), 100.0);
  EXPECT_EQ(ok.at("itl_ms"), nlohmann::json::array({200.0}));
  EXPECT_EQ(ok.at("slo_met"), true);
  const nlohmann::json& failed = run.at("requests")[1];
  EXPECT_TRUE(failed.at("ttft_ms").is_null());
  EXPECT_EQ(failed.at("error"), "overloaded");
  EXPECT_EQ(failed.at("slo_met"), false);
  // Each request record is on a line of its own.
  std::istringstream lines(out.str());
  std::string line;
  int request_lines = 0;
  while (std::getline(lines, line)) request_lines += line.find("\"id\":\"r0-") != std::string::npos;
  EXPECT_EQ(request_lines, 2);
}

TEST(BenchResultsOutput, CsvQuotesAndCountsRows) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
  std::ostringstream requests, summary;
  write_requests_csv(requests, two_requests(), Slo::parse("ttft=150ms"));
  EXPECT_EQ(count(requests.str(), '\n'), 3u);  // header + 2
  EXPECT_NE(requests.str().find("0,concurrency=2,r0-0,siso,4,2,4,2,,0,100,200,300,200,200,length,,1\n"),
            std::string::npos) << requests.str();
  EXPECT_NE(requests.str().find("\"a,\"\"b\"\"\""), std::string::npos);
  write_summary_csv(summary, two_requests());
  std::istringstream rows(summary.str());
  std::string header, row;
  std::getline(rows, header);
  std::getline(rows, row);
  EXPECT_EQ(count(header, ','), count(row, ','));
  EXPECT_EQ(count(header, ','), 31u);  // 12 columns + 4 metrics x 5 statistics, minus one
}

}  // namespace
}  // namespace tessera::bench
