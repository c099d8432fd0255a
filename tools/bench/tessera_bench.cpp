// tessera-bench: the load generator and serving benchmark of a Tessera server (see README, "Benchmarking").
// Exit codes: 0 the benchmark ran (failed requests are reported, not fatal), 1 runtime failure (server unreachable
// or silent, files not writable), 2 bad command line.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bus/client.hpp"
#include "core/common/error.hpp"
#include "tools/bench/bench_cli.hpp"
#include "tools/bench/bench_run.hpp"
#include "tools/bench/console_report.hpp"
#include "tools/bench/results_csv.hpp"
#include "tools/bench/results_json.hpp"

namespace {

using namespace tessera;
using namespace tessera::bench;
namespace fs = std::filesystem;

// Asks for the server's info until it says ready, for up to `timeout`.
bus::InfoReply wait_until_ready(bus::Client& client, const std::string& endpoint, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_problem = "no reply";
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      bus::InfoReply info = client.info(std::chrono::seconds(2));
      if (info.ready) return info;
      last_problem = "the server is not ready yet";
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } catch (const Error& e) {
      last_problem = e.what();
    }
  }
  throw Error("server " + endpoint + " did not answer ready within " + std::to_string(timeout.count() / 1000) +
              " s (" + last_problem + "); is tessera-server running there?");
}

void write_file(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  std::ofstream out(path);
  if (!out) throw Error("cannot write '" + path.string() + "'");
  write(out);
  out.flush();
  if (!out) throw Error("writing '" + path.string() + "' failed");
}

int run(const BenchOptions& options) {
  if (!options.output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(options.output_dir, ec);
    if (ec) throw Error("cannot create output folder '" + options.output_dir + "': " + ec.message());
  }
  bus::Client client(options.server);
  const bus::InfoReply info = wait_until_ready(
      client, options.server, std::chrono::milliseconds(static_cast<int64_t>(options.request_timeout_s * 1e3)));
  std::fprintf(stderr, "tessera-bench: server %s, model %s, vocab %d, max_model_len %d\n", options.server.c_str(),
               info.model.c_str(), info.vocab_size, info.max_model_len);
  ProgressLine progress(stderr, options.progress);
  BenchObserver observer;
  observer.phase_started = [&](const std::string& label, bool warmup) { progress.start(label, warmup); };
  observer.progress = [&](const PhaseProgress& p) { progress.update(p); };
  observer.run_finished = [&](const RunResult& run) {
    progress.finish();
    print_run_summary(stdout, options, run);
    std::fflush(stdout);
  };
  const BenchResult result = run_benchmark(options, client, info, observer);
  if (result.runs.size() > 1) print_sweep_table(stdout, result);
  if (!options.output_dir.empty()) {
    const fs::path dir(options.output_dir);
    write_file(dir / "bench.json", [&](std::ostream& out) { write_results_json(out, results_json(options, result)); });
    write_file(dir / "requests.csv", [&](std::ostream& out) { write_requests_csv(out, result, options.slo); });
    write_file(dir / "summary.csv", [&](std::ostream& out) { write_summary_csv(out, result); });
    std::printf("\nwrote %s/{bench.json,requests.csv,summary.csv}\n", options.output_dir.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchCli cli;
  BenchOptions options;
  try {
    options = cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 2;  // --help: 0
  } catch (const Error& e) {
    std::fprintf(stderr, "tessera-bench: %s\n", e.what());
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\ntessera-bench: error: %s\n", e.what());
    return 1;
  }
}
