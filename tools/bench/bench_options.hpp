#pragma once
// Everything a tessera-bench invocation asks for, as parsed and checked by BenchCli.
#include <cstdint>
#include <string>
#include <vector>

#include "tools/bench/statistics.hpp"
#include "tools/bench/workload.hpp"

namespace tessera::bench {

enum class LoadMode {
  ClosedLoop,  // a fixed number of requests in flight; one run per entry of concurrency_levels
  OpenLoop,    // requests sent at gamma-distributed arrival times; one run per entry of request_rates
  Trace,       // requests sent at the times and with the lengths of a JSONL trace
};
const char* load_mode_name(LoadMode mode);  // "closed_loop", "open_loop", "trace"

struct BenchOptions {
  std::string server;  // bus endpoint, e.g. tcp://127.0.0.1:5555
  LoadMode mode = LoadMode::ClosedLoop;
  std::vector<int32_t> concurrency_levels = {1};  // closed loop; several = a sweep
  std::vector<double> request_rates;              // open loop, requests/s; several = a sweep
  double burstiness = 1;                          // gamma shape of the gaps (1 = Poisson)
  int32_t max_concurrency = 0;                    // open loop and trace: cap on requests in flight, 0 = none
  std::string trace_path;
  int64_t num_requests = 100;    // measured requests per run (trace: the first N lines; 0 = all)
  int64_t warmup_requests = 0;   // sent before each run's measured phase, not counted
  WorkloadSpec workload;
  uint64_t seed = 0;             // workload, arrivals, prompts and sampling seeds
  float temperature = 0;
  Slo slo;
  std::string output_dir;        // empty: write no files
  std::string tokenizer_dir;     // empty: prompt ids from [0, vocab_size); else the tokenizer's non-special ids
  double request_timeout_s = 120;  // no server message this long with requests in flight -> the run fails
  bool progress = true;
  std::string label;             // a name for reports; default derived from the load mode
  std::string command_line;      // argv joined, recorded in the JSON
};

}  // namespace tessera::bench
