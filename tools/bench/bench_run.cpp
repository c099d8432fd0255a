#include "tools/bench/bench_run.hpp"

#include <chrono>
#include <ctime>
#include <sstream>

#include "core/common/error.hpp"
#include "core/tokenizer/tokenizer.hpp"
#include "tools/bench/arrivals.hpp"
#include "tools/bench/trace.hpp"

namespace tessera::bench {

namespace {

// Warm-up requests draw their lengths and prompts from a stream apart from the measured ones.
constexpr uint64_t kWarmupSeedOffset = 0x77a3c1e5d2b49f01ULL;

std::string now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&t, &local);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S%z", &local);
  return text;
}

std::string format_rate(double rate) {
  std::ostringstream s;
  s << rate;
  return s.str();
}

// Request ids "r3-17": phase letter (w = warm-up, r = measured), run number, then the plan index.
std::string id_prefix(char phase, size_t run) {
  std::string prefix(1, phase);  // (built step by step: GCC 12 warns falsely on "w" + std::to_string(i))
  prefix += std::to_string(run);
  prefix += '-';
  return prefix;
}

// One run's shape: how many in flight, which plans, with which arrival times.
struct RunPlan {
  RunResult result;  // label and level filled in
  std::vector<RequestPlan> warmup, measured;
  int32_t max_in_flight = 0;
};

std::vector<RunPlan> plan_runs(const BenchOptions& o) {
  std::vector<RunPlan> runs;
  const uint64_t warmup_seed = o.seed ^ kWarmupSeedOffset;
  if (o.mode == LoadMode::ClosedLoop) {
    for (int32_t level : o.concurrency_levels) {
      RunPlan run;
      run.result.label = "concurrency=" + std::to_string(level);
      run.result.concurrency = level;
      run.max_in_flight = level;
      run.warmup = make_requests(o.workload, o.warmup_requests, warmup_seed);
      run.measured = make_requests(o.workload, o.num_requests, o.seed);
      runs.push_back(std::move(run));
    }
  } else if (o.mode == LoadMode::OpenLoop) {
    for (double rate : o.request_rates) {
      RunPlan run;
      run.result.label = "rate=" + format_rate(rate) + "/s";
      run.result.request_rate = rate;
      run.max_in_flight = o.max_concurrency;
      const ArrivalProcess process{rate, o.burstiness};
      run.warmup = make_requests(o.workload, o.warmup_requests, warmup_seed);
      schedule(run.warmup, arrival_times(process, o.warmup_requests, warmup_seed));
      run.measured = make_requests(o.workload, o.num_requests, o.seed);
      schedule(run.measured, arrival_times(process, o.num_requests, o.seed));
      runs.push_back(std::move(run));
    }
  } else {
    RunPlan run;
    run.result.label = "trace";
    run.max_in_flight = o.max_concurrency;
    run.measured = load_trace(o.trace_path);
    if (o.num_requests > 0 && static_cast<size_t>(o.num_requests) < run.measured.size())
      run.measured.resize(static_cast<size_t>(o.num_requests));
    // Warm-up: the trace's first lines, at their own times.
    const size_t warm = std::min(run.measured.size(), static_cast<size_t>(o.warmup_requests));
    run.warmup.assign(run.measured.begin(), run.measured.begin() + static_cast<std::ptrdiff_t>(warm));
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace

std::vector<int32_t> prompt_vocabulary(const BenchOptions& options, const bus::InfoReply& server) {
  std::vector<int32_t> ids;
  if (options.tokenizer_dir.empty()) {
    ids.resize(static_cast<size_t>(std::max(server.vocab_size, 0)));
    for (int32_t i = 0; i < server.vocab_size; ++i) ids[static_cast<size_t>(i)] = i;
  } else {
    const std::optional<Tokenizer> tokenizer = Tokenizer::load_dir(options.tokenizer_dir);
    if (!tokenizer) throw Error("--tokenizer: no tokenizer.json in '" + options.tokenizer_dir + "'");
    const int32_t end = std::min(tokenizer->vocab_size(), server.vocab_size);
    for (int32_t i = 0; i < end; ++i)
      if (!tokenizer->is_special(i) && tokenizer->id_to_token(i)) ids.push_back(i);
  }
  if (ids.empty()) throw Error("no token ids to build prompts from (server vocab_size " + std::to_string(server.vocab_size) + ")");
  return ids;
}

void check_fits(const std::vector<RequestPlan>& plans, const bus::InfoReply& server, const std::string& what) {
  for (const RequestPlan& p : plans) {
    if (int64_t{p.input_len} + p.output_len > server.max_model_len)
      throw Error(what + " request " + std::to_string(p.index) + " needs " + std::to_string(p.input_len) +
                  " prompt + " + std::to_string(p.output_len) + " output tokens, more than the server's max_model_len " +
                  std::to_string(server.max_model_len) + " (its output would be cut short); use shorter lengths");
  }
}

BenchResult run_benchmark(const BenchOptions& options, bus::Client& client, const bus::InfoReply& server,
                          const BenchObserver& observer) {
  BenchResult bench;
  bench.server = server;
  bench.started_at = now_iso8601();
  std::vector<RunPlan> runs = plan_runs(options);
  for (const RunPlan& run : runs) {
    check_fits(run.warmup, server, run.result.label + " warm-up");
    check_fits(run.measured, server, run.result.label);
  }
  LoadOptions load;
  load.vocabulary = prompt_vocabulary(options, server);
  load.temperature = options.temperature;
  load.idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(options.request_timeout_s * 1e3));
  for (size_t i = 0; i < runs.size(); ++i) {
    RunPlan& run = runs[i];
    load.max_in_flight = run.max_in_flight;
    if (!run.warmup.empty()) {
      if (observer.phase_started) observer.phase_started(run.result.label, true);
      load.seed = options.seed ^ kWarmupSeedOffset;
      load.id_prefix = id_prefix('w', i);
      run_phase(client, run.warmup, load, observer.progress);
    }
    if (observer.phase_started) observer.phase_started(run.result.label, false);
    load.seed = options.seed;
    load.id_prefix = id_prefix('r', i);
    run.result.warmup_requests = static_cast<int64_t>(run.warmup.size());
    run.result.phase = run_phase(client, run.measured, load, observer.progress);
    run.result.summary = summarize(run.result.phase.records, options.slo);
    if (observer.run_finished) observer.run_finished(run.result);
    bench.runs.push_back(std::move(run.result));
  }
  return bench;
}

}  // namespace tessera::bench
