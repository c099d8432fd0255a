#pragma once
// tessera-bench's console output: the live progress line (stderr) and the summary tables (stdout).
#include <cstdio>
#include <string>

#include "tools/bench/bench_options.hpp"
#include "tools/bench/bench_run.hpp"

namespace tessera::bench {

// One status line per phase. On a terminal it is rewritten in place (carriage return) at every update; otherwise
// (a log file, a pipe) a line is written at most every 5 s, so logs stay short. Not thread-safe.
class ProgressLine {
 public:
  ProgressLine(std::FILE* out, bool enabled);
  void start(const std::string& label, bool warmup);
  void update(const PhaseProgress& p);
  void finish();  // ends the current line

 private:
  std::FILE* out_;
  bool enabled_;
  bool terminal_;
  bool open_ = false;
  double last_written_s_ = -1e9;
  std::string label_;
};

// The summary of one run: counts, duration, throughput, goodput, the tool's own load, latency percentiles.
void print_run_summary(std::FILE* out, const BenchOptions& options, const RunResult& run);
// One row per run (for sweeps): throughput and latency percentiles side by side.
void print_sweep_table(std::FILE* out, const BenchResult& result);

}  // namespace tessera::bench
