// Checked by the real thing: Debian's Prometheus scrapes a tessera-server that serves traffic; promtool accepts
// the exposition and the alert rules; every PromQL expression of every panel of dashboards/tessera.json returns
// data through Prometheus's HTTP API; the alert rules evaluate without errors. Also: the dashboard JSON has what
// a Grafana import needs (schema version, the data source as a template variable).
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bus/client.hpp"
#include "tests/metrics/child_process.hpp"
#include "tests/metrics/metrics_server.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const fs::path kSource = TESSERA_SOURCE_DIR;
const fs::path kPrometheus = "/usr/bin/prometheus";
const fs::path kPromtool = "/usr/bin/promtool";
const char* const kSetupHint = " not found: run tools/setup (it installs Debian's prometheus and promtool)";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// One PromQL expression of the dashboard, with where it comes from.
struct PanelQuery {
  std::string panel;
  std::string ref_id;
  std::string expr;
  bool instant = false;
};

void collect_queries(const json& panels, std::vector<PanelQuery>& out) {
  for (const json& panel : panels) {
    if (panel.contains("panels")) collect_queries(panel["panels"], out);  // a row's panels
    if (!panel.contains("targets")) continue;
    for (const json& target : panel["targets"]) {
      out.push_back({panel.value("title", "?"), target.value("refId", "?"), target.value("expr", ""),
                     target.value("instant", false)});
    }
  }
}

// The Grafana variables the dashboard uses, replaced by what Grafana would send: the instance variable's "All"
// value, a rate window covering several 500 ms scrapes, a range covering the whole test.
std::string substitute(const std::string& expr) {
  const std::vector<std::pair<std::string, std::string>> variables = {
      {"$__rate_interval", "5s"}, {"$__interval", "1s"}, {"$__range", "60s"}, {"$instance", ".*"}};
  std::string out;
  for (size_t i = 0; i < expr.size();) {
    bool replaced = false;
    for (const auto& [name, value] : variables) {
      if (expr.compare(i, name.size(), name) == 0) {
        out += value;
        i += name.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += expr[i++];
  }
  return out;
}

TEST(DashboardTest, JsonHasWhatAGrafanaImportNeeds) {
  const json dashboard = read_json(kSource / "dashboards" / "tessera.json");
  ASSERT_TRUE(dashboard.contains("schemaVersion"));
  EXPECT_GE(dashboard["schemaVersion"].get<int>(), 36);
  EXPECT_FALSE(dashboard.value("title", "").empty());
  EXPECT_FALSE(dashboard.value("uid", "").empty());
  // The data source is a template variable of type datasource, and every panel and target uses it.
  bool has_datasource_variable = false;
  for (const json& variable : dashboard["templating"]["list"]) {
    if (variable["type"] == "datasource" && variable["name"] == "datasource" && variable["query"] == "prometheus") {
      has_datasource_variable = true;
    }
  }
  EXPECT_TRUE(has_datasource_variable);
  std::set<int> ids;
  std::vector<const json*> panels;
  for (const json& panel : dashboard["panels"]) {
    panels.push_back(&panel);
    if (panel.contains("panels")) {
      for (const json& inner : panel["panels"]) panels.push_back(&inner);
    }
  }
  for (const json* panel : panels) {
    const std::string title = panel->value("title", "?");
    EXPECT_TRUE(ids.insert(panel->at("id").get<int>()).second) << "duplicate panel id in " << title;
    EXPECT_TRUE(panel->contains("gridPos")) << title;
    if ((*panel)["type"] == "row") continue;
    EXPECT_EQ((*panel)["datasource"]["uid"], "${datasource}") << title;
    ASSERT_TRUE(panel->contains("targets")) << title;
    EXPECT_FALSE((*panel)["targets"].empty()) << title;
    for (const json& target : (*panel)["targets"]) {
      EXPECT_EQ(target["datasource"]["uid"], "${datasource}") << title;
      EXPECT_FALSE(target.value("expr", "").empty()) << title;
      EXPECT_FALSE(target.value("refId", "").empty()) << title;
    }
  }
  std::vector<PanelQuery> queries;
  collect_queries(dashboard["panels"], queries);
  for (const PanelQuery& q : queries) {
    EXPECT_EQ(substitute(q.expr).find('$'), std::string::npos) << q.panel << ": unknown variable in " << q.expr;
  }
  // The panels the issue asks for.
  std::set<std::string> titles;
  for (const json* panel : panels) titles.insert(panel->value("title", ""));
  for (const char* wanted : {"Time to first token", "Inter-token latency", "End-to-end request latency", "Queue time",
                             "Tokens per second", "Running and waiting requests", "KV cache usage", "Batch size",
                             "Preemptions per second", "Errors per second by code", "Requests by input x output length",
                             "Mean time to first token by input length"}) {
    EXPECT_TRUE(titles.count(wanted)) << wanted;
  }
}

TEST(DashboardTest, PromtoolAcceptsTheRulesConfigAndRuleTests) {
  ASSERT_TRUE(fs::exists(kPromtool)) << kPromtool << kSetupHint;
  const std::string promtool = kPromtool.string();
  const auto rules = test::run_command(promtool + " check rules " + (kSource / "dashboards" / "alerts.yml").string());
  EXPECT_EQ(rules.exit_code, 0) << rules.output;
  EXPECT_NE(rules.output.find("SUCCESS: 7 rules found"), std::string::npos) << rules.output;
  const auto config =
      test::run_command(promtool + " check config " + (kSource / "dashboards" / "prometheus.yml").string());
  EXPECT_EQ(config.exit_code, 0) << config.output;
  const auto unit = test::run_command("cd " + (kSource / "tests" / "metrics").string() + " && " + promtool +
                                      " test rules alerts_test.yml");
  EXPECT_EQ(unit.exit_code, 0) << unit.output;
}

// "w<wave>_<suffix>" (appended: GCC 12 warns falsely about "literal" + std::string).
std::string wave_id(int wave, const std::string& suffix) {
  std::string id = "w";
  id += std::to_string(wave);
  id += "_";
  id += suffix;
  return id;
}

// Requests of several prompt lengths in waves (and one rejected request per wave) until stopped.
class BackgroundTraffic {
 public:
  explicit BackgroundTraffic(const std::string& endpoint) : thread_([this, endpoint] { run(endpoint); }) {}
  ~BackgroundTraffic() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t finished() const { return finished_; }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  void run(const std::string& endpoint) {
    try {
      bus::Client client(endpoint);
      std::mt19937 rng(1);
      for (int wave = 0; !stop_; ++wave) {
        std::set<std::string> open;
        for (int prompt : {5, 40, 150, 300}) {
          bus::SubmitRequest r;
          r.id = wave_id(wave, std::to_string(prompt));
          r.prompt_ids = std::vector<int32_t>(static_cast<size_t>(prompt), 42);
          r.params.max_tokens = 4 + static_cast<int32_t>(rng() % 20);
          r.params.temperature = 0.8f;
          r.params.seed = rng();
          r.params.ignore_eos = true;
          client.submit(r);
          open.insert(r.id);
        }
        bus::SubmitRequest too_long;
        too_long.id = wave_id(wave, "too_long");
        too_long.prompt_ids = std::vector<int32_t>(10, 42);
        too_long.params.max_tokens = 4000;
        client.submit(too_long);
        open.insert(too_long.id);
        const auto end = std::chrono::steady_clock::now() + 30s;
        while (!open.empty() && std::chrono::steady_clock::now() < end) {
          auto event = client.next_event(100ms);
          if (!event) continue;
          if (std::holds_alternative<bus::FinalMessage>(*event) || std::holds_alternative<bus::ErrorMessage>(*event)) {
            open.erase(bus::event_request_id(*event));
            ++finished_;
          }
        }
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      error_ = e.what();
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int64_t> finished_{0};
  mutable std::mutex mutex_;
  std::string error_;
  std::thread thread_;
};

// Prometheus on a free loopback port with a temporary config and storage, scraping `target_port` every 500 ms and
// evaluating dashboards/alerts.yml.
class PrometheusServer {
 public:
  PrometheusServer(int target_port, const fs::path& dir) {
    fs::create_directories(dir);
    std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n"
                                          << "rule_files:\n  - " << (kSource / "dashboards" / "alerts.yml").string()
                                          << "\nscrape_configs:\n  - job_name: tessera\n    static_configs:\n"
                                          << "      - targets: [\"127.0.0.1:" << target_port << "\"]\n";
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = test::free_tcp_port();
      process_ = std::make_unique<test::ChildProcess>(
          std::vector<std::string>{kPrometheus.string(), "--config.file=" + (dir / "prometheus.yml").string(),
                                   "--storage.tsdb.path=" + (dir / "data").string(),
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
          (dir / "prometheus.log").string());
      const auto end = std::chrono::steady_clock::now() + 20s;
      while (process_->running() && std::chrono::steady_clock::now() < end) {
        try {
          if (test::http_get(port_, "/-/ready").status == 200) return;
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(50ms);
      }
      process_->stop(SIGKILL);
    }
    throw std::runtime_error("prometheus did not start: " + process_->log());
  }

  // GET /api/v1/<path>; the decoded JSON reply (status "success" or "error").
  json api(const std::string& path) const {
    const test::HttpResponse response = test::http_get(port_, "/api/v1/" + path);
    return json::parse(response.body);
  }
  json query(const std::string& promql) const { return api("query?query=" + test::url_encode(promql)); }

  std::string log() const { return process_->log(); }
  void stop() { process_->stop(); }

 private:
  int port_ = 0;
  std::unique_ptr<test::ChildProcess> process_;
};

// A temporary folder, removed with everything in it when the test ends.
class TempDir {
 public:
  explicit TempDir(fs::path path) : path_(std::move(path)) { fs::create_directories(path_); }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Whether a query reply holds at least one sample with a finite value.
bool has_finite_sample(const json& reply) {
  const json& data = reply["data"];
  for (const json& series : data["result"]) {
    if (series.contains("value") && std::isfinite(std::stod(series["value"][1].get<std::string>()))) return true;
    if (series.contains("values")) {
      for (const json& point : series["values"]) {
        if (std::isfinite(std::stod(point[1].get<std::string>()))) return true;
      }
    }
  }
  return false;
}

TEST(PrometheusTest, ScrapesTesseraAndAnswersEveryDashboardQuery) {
  ASSERT_TRUE(fs::exists(kPrometheus)) << kPrometheus << kSetupHint;
  ASSERT_TRUE(fs::exists(kPromtool)) << kPromtool << kSetupHint;
  const TempDir temp(fs::temp_directory_path() / ("tessera_prometheus_" + std::to_string(getpid())));
  const fs::path& dir = temp.path();
  const test::TinyModel model("prometheus");
  test::MetricsServer server = test::start_metrics_server(model.dir(), "prometheus");
  BackgroundTraffic traffic(server.process->endpoint());
  PrometheusServer prometheus(server.metrics_port, dir / "prometheus");

  // Enough scrapes while traffic flows for rate() over the 5 s window: 3 samples (1 s) after the first request.
  // (Prometheus 2.42 starts scraping about 5 s after start-up: its service discovery sends targets every 5 s.)
  const auto end = std::chrono::steady_clock::now() + 30s;
  double samples = 0;
  while (std::chrono::steady_clock::now() < end) {
    const json reply = prometheus.query("count_over_time((tessera_generation_tokens_total > 0)[1m:500ms])");
    if (reply["status"] == "success" && !reply["data"]["result"].empty()) {
      samples = std::stod(reply["data"]["result"][0]["value"][1].get<std::string>());
      if (samples >= 3) break;
    }
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_GE(samples, 3) << "Prometheus did not scrape Tessera under load; its log:\n" << prometheus.log();
  ASSERT_EQ(traffic.error(), "");

  // promtool check metrics: no problems in the exposition.
  const test::HttpResponse exposition = test::http_get(server.metrics_port, "/metrics");
  ASSERT_EQ(exposition.status, 200);
  std::ofstream(dir / "metrics.txt") << exposition.body;
  const auto lint = test::run_command(kPromtool.string() + " check metrics < " + (dir / "metrics.txt").string());
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
  EXPECT_EQ(lint.output, "") << "promtool check metrics found problems";

  // Every dashboard query returns data (a range query like a graph panel, or instant for instant targets).
  std::vector<PanelQuery> queries;
  collect_queries(read_json(kSource / "dashboards" / "tessera.json")["panels"], queries);
  ASSERT_GE(queries.size(), 20u);
  const auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const PanelQuery& q : queries) {
    const std::string promql = substitute(q.expr);
    const json reply =
        q.instant ? prometheus.query(promql)
                  : prometheus.api("query_range?query=" + test::url_encode(promql) + "&start=" +
                                   std::to_string(now - 10) + "&end=" + std::to_string(now) + "&step=1");
    ASSERT_TRUE(reply.contains("status")) << q.panel;
    EXPECT_EQ(reply["status"], "success")
        << "panel '" << q.panel << "' (" << q.ref_id << "): " << reply.value("error", "") << "\n  " << promql;
    if (reply["status"] != "success") continue;
    EXPECT_FALSE(reply["data"]["result"].empty()) << "panel '" << q.panel << "' (" << q.ref_id << ") is empty\n  "
                                                  << promql;
    EXPECT_TRUE(has_finite_sample(reply)) << "panel '" << q.panel << "' (" << q.ref_id << ") has no number\n  "
                                          << promql;
  }
  // The instance variable's values (label_values(tessera_model_info, instance)).
  const json instances = prometheus.api("label/instance/values?match[]=tessera_model_info");
  EXPECT_EQ(instances["status"], "success");
  EXPECT_FALSE(instances["data"].empty());

  // The alert rules are loaded and evaluate without errors.
  std::map<std::string, std::string> unhealthy;
  const auto rules_end = std::chrono::steady_clock::now() + 10s;
  do {
    unhealthy.clear();
    const json rules = prometheus.api("rules");
    size_t count = 0;
    for (const json& group : rules["data"]["groups"]) {
      for (const json& rule : group["rules"]) {
        ++count;
        if (rule["health"] != "ok") unhealthy[rule["name"]] = rule.value("lastError", rule.value("health", ""));
      }
    }
    if (count != 7) unhealthy["(rule count)"] = std::to_string(count) + " rules loaded, expected 7";
    if (unhealthy.empty()) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < rules_end);
  for (const auto& [name, why] : unhealthy) ADD_FAILURE() << "alert rule " << name << ": " << why;

  traffic.stop();
  EXPECT_EQ(traffic.error(), "");
  EXPECT_GT(traffic.finished(), 0);
  prometheus.stop();
  // The server is killed at the end (a graceful stop with metrics is tested by ServerMetricsTest).
}

}  // namespace
}  // namespace tessera
