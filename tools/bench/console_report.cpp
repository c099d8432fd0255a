#include "tools/bench/console_report.hpp"

#include <unistd.h>

namespace tessera::bench {

ProgressLine::ProgressLine(std::FILE* out, bool enabled)
    : out_(out), enabled_(enabled), terminal_(isatty(fileno(out)) == 1) {}

void ProgressLine::start(const std::string& label, bool warmup) {
  finish();
  label_ = warmup ? label + " warm-up" : label;
  last_written_s_ = -1e9;
}

void ProgressLine::update(const PhaseProgress& p) {
  if (!enabled_) return;
  const bool last = p.completed + p.failed == p.total;
  if (!terminal_ && !last && p.elapsed_s - last_written_s_ < 5.0) return;
  last_written_s_ = p.elapsed_s;
  const double tok_s = p.elapsed_s > 0 ? static_cast<double>(p.output_tokens) / p.elapsed_s : 0.0;
  std::fprintf(out_, "%s[%s] %lld/%lld done, %lld in flight, %lld failed, %.1f s, %.0f out tok/s%s",
               terminal_ ? "\r\033[K" : "", label_.c_str(), static_cast<long long>(p.completed + p.failed),
               static_cast<long long>(p.total), static_cast<long long>(p.in_flight), static_cast<long long>(p.failed),
               p.elapsed_s, tok_s, terminal_ ? "" : "\n");
  open_ = terminal_;
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (open_) std::fputc('\n', out_);
  open_ = false;
}

void print_run_summary(std::FILE* out, const BenchOptions& options, const RunResult& run) {
  const RunSummary& s = run.summary;
  const ClientLoad& c = run.phase.client;
  std::fprintf(out, "\n== tessera-bench: %s, %s ==\n", options.label.c_str(), run.label.c_str());
  std::fprintf(out, "%-12s %lld sent, %lld completed, %lld failed", "requests", static_cast<long long>(s.requests),
               static_cast<long long>(s.completed), static_cast<long long>(s.failed));
  for (const auto& [code, count] : s.errors) std::fprintf(out, " (%s: %lld)", code.c_str(), static_cast<long long>(count));
  std::fprintf(out, "\n%-12s %.3f s (first submit to last reply)\n", "duration", s.duration_s);
  std::fprintf(out, "%-12s %lld input + %lld output tokens\n", "tokens", static_cast<long long>(s.input_tokens),
               static_cast<long long>(s.output_tokens));
  std::fprintf(out, "%-12s %.2f req/s, %.1f output tok/s, %.1f total tok/s\n", "throughput", s.requests_per_s,
               s.output_tokens_per_s, s.total_tokens_per_s);
  if (s.goodput_requests_per_s)
    std::fprintf(out, "%-12s %.2f req/s (%.1f %% of requests meet %s)\n", "goodput", *s.goodput_requests_per_s,
                 100.0 * s.slo_attainment.value_or(0), options.slo.describe().c_str());
  std::fprintf(out, "%-12s %.3f s CPU (%.1f %% of one core), event loop busy %.1f %%, %lld messages\n", "client",
               c.cpu_s, c.wall_s > 0 ? 100.0 * c.cpu_s / c.wall_s : 0.0, c.wall_s > 0 ? 100.0 * c.busy_s / c.wall_s : 0.0,
               static_cast<long long>(c.messages));
  std::fprintf(out, "%-12s %10s %10s %10s %10s %10s %10s\n", "latency ms", "mean", "p50", "p90", "p95", "p99", "max");
  auto row = [&](const char* name, const Distribution& d) {
    std::fprintf(out, "  %-10s %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f\n", name, d.mean, d.p50, d.p90, d.p95, d.p99,
                 d.max);
  };
  row("TTFT", s.ttft_ms);
  row("ITL", s.itl_ms);
  row("TPOT", s.tpot_ms);
  row("E2E", s.e2e_ms);
  if (s.send_lag_ms.count > 0) row("send lag", s.send_lag_ms);
}

void print_sweep_table(std::FILE* out, const BenchResult& result) {
  std::fprintf(out, "\n%-18s %8s %10s %9s %9s %9s %9s %9s %9s %9s\n", "run", "req/s", "out tok/s", "TTFT p50",
               "TTFT p99", "ITL p50", "ITL p99", "E2E p50", "E2E p99", "goodput");
  for (const RunResult& run : result.runs) {
    const RunSummary& s = run.summary;
    char goodput[32] = "-";
    if (s.goodput_requests_per_s) std::snprintf(goodput, sizeof goodput, "%.2f", *s.goodput_requests_per_s);
    std::fprintf(out, "%-18s %8.2f %10.1f %9.2f %9.2f %9.3f %9.3f %9.1f %9.1f %9s\n", run.label.c_str(),
                 s.requests_per_s, s.output_tokens_per_s, s.ttft_ms.p50, s.ttft_ms.p99, s.itl_ms.p50, s.itl_ms.p99,
                 s.e2e_ms.p50, s.e2e_ms.p99, goodput);
  }
}

}  // namespace tessera::bench
