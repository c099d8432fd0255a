#pragma once
// A whole benchmark: one run per sweep level (or one run), each a warm-up phase whose records are dropped and a
// measured phase, summarized.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bus/client.hpp"
#include "tools/bench/bench_options.hpp"
#include "tools/bench/load_generator.hpp"
#include "tools/bench/statistics.hpp"

namespace tessera::bench {

struct RunResult {
  std::string label;                   // "concurrency=8", "rate=4/s", "trace"
  std::optional<int32_t> concurrency;  // closed loop
  std::optional<double> request_rate;  // open loop, requests/s
  int64_t warmup_requests = 0;         // sent before the measured phase
  PhaseResult phase;                   // the measured phase
  RunSummary summary;
};

struct BenchResult {
  bus::InfoReply server;
  std::string started_at;  // local wall-clock time, ISO 8601 (for the record only; never used for latencies)
  std::vector<RunResult> runs;
};

// The ids prompts are drawn from: [0, vocab_size) of the server, or, with options.tokenizer_dir, those of that
// tokenizer that are not special tokens (and below the server's vocab_size). Throws tessera::Error when none is left.
std::vector<int32_t> prompt_vocabulary(const BenchOptions& options, const bus::InfoReply& server);

// The measured plans of every run (warm-up excluded), for checks before anything is sent.
// Throws tessera::Error when a request needs more than the server's max_model_len (prompt + output tokens).
void check_fits(const std::vector<RequestPlan>& plans, const bus::InfoReply& server, const std::string& what);

// Callbacks for live output: a run starts (label), progress of its current phase (warm-up or measured).
struct BenchObserver {
  std::function<void(const std::string& label, bool warmup)> phase_started;
  std::function<void(const PhaseProgress&)> progress;
  std::function<void(const RunResult&)> run_finished;
};

// Runs everything in `options` against `client`; `server` is the info reply it gave. Throws tessera::Error like
// run_phase, and for plans the server cannot serve exactly (see check_fits) before sending any of them.
BenchResult run_benchmark(const BenchOptions& options, bus::Client& client, const bus::InfoReply& server,
                          const BenchObserver& observer = {});

}  // namespace tessera::bench
