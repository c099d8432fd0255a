#include "tools/bench/bench_cli.hpp"

#include <cmath>

#include "core/common/error.hpp"
#include "tools/bench/text_util.hpp"

namespace tessera::bench {

struct BenchCli::Raw {
  BenchOptions options;
  int32_t concurrency = 1;
  double request_rate = 0;
  std::string sweep_concurrency, sweep_rate, slo, input_len = "128", output_len = "128", pattern;
  std::string short_input = "32", long_input = "1024", short_output = "32", long_output = "512";
  bool quiet = false;
  CLI::Option *concurrency_opt = nullptr, *rate_opt = nullptr, *sweep_concurrency_opt = nullptr,
              *sweep_rate_opt = nullptr, *trace_opt = nullptr, *num_requests_opt = nullptr, *burstiness_opt = nullptr,
              *max_concurrency_opt = nullptr;
};

namespace {

// `text` as one shell word (single-quoted when it holds anything but safe characters), so the recorded command
// can be pasted back into a shell.
std::string shell_quote(const std::string& text) {
  const bool safe = !text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                            "0123456789-_./:=,+@%") == std::string::npos;
  if (safe) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

const char* load_mode_name(LoadMode mode) {
  switch (mode) {
    case LoadMode::ClosedLoop: return "closed_loop";
    case LoadMode::OpenLoop: return "open_loop";
    case LoadMode::Trace: return "trace";
  }
  return "?";
}

BenchCli::BenchCli()
    : raw_(std::make_unique<Raw>()),
      app_("tessera-bench: load generator for a Tessera server (bus protocol v1); measures TTFT, ITL, TPOT, E2E, "
           "throughput and goodput on the client with a monotonic clock") {
  Raw& r = *raw_;
  BenchOptions& o = r.options;
  app_.add_option("--server", o.server, "Server endpoint, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/tessera.sock")
      ->required();
  // Load modes (one of them; closed loop at concurrency 1 when none is given).
  r.concurrency_opt = app_.add_option("--concurrency", r.concurrency, "Closed loop: requests kept in flight")
                          ->check(CLI::Range(1, 1 << 20));
  r.rate_opt = app_.add_option("--request-rate", r.request_rate, "Open loop: mean requests per second (Poisson)")
                   ->check(CLI::PositiveNumber);
  r.sweep_concurrency_opt = app_.add_option("--sweep-concurrency", r.sweep_concurrency,
                                            "Closed-loop sweep: one run per concurrency, e.g. 1,2,4,8");
  r.sweep_rate_opt = app_.add_option("--sweep-rate", r.sweep_rate, "Open-loop sweep: one run per rate, e.g. 1,2,4,8");
  r.trace_opt = app_.add_option("--trace", o.trace_path,
                                "Replay a JSONL trace: {\"arrival_s\": S, \"input_len\": N, \"output_len\": M}");
  const std::vector<CLI::Option*> modes = {r.concurrency_opt, r.rate_opt, r.sweep_concurrency_opt, r.sweep_rate_opt,
                                           r.trace_opt};
  for (CLI::Option* a : modes)
    for (CLI::Option* b : modes)
      if (a != b) a->excludes(b);
  CLI::Option* burst = app_.add_option("--burstiness", o.burstiness,
                                       "Open loop: gamma shape of the gaps; 1 = Poisson, <1 burstier, >1 smoother")
                           ->check(CLI::PositiveNumber)->capture_default_str();
  CLI::Option* cap = app_.add_option("--max-concurrency", o.max_concurrency,
                                     "Open loop / trace: cap on requests in flight (0 = none)")
                         ->check(CLI::NonNegativeNumber);
  for (CLI::Option* opt : {burst, cap}) {
    opt->excludes(r.concurrency_opt);
    opt->excludes(r.sweep_concurrency_opt);
  }
  burst->excludes(r.trace_opt);
  r.burstiness_opt = burst;
  r.max_concurrency_opt = cap;
  r.num_requests_opt = app_.add_option("--num-requests", o.num_requests,
                                       "Measured requests per run (trace: replay only the first N lines)")
                           ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))->capture_default_str();
  app_.add_option("--warmup-requests", o.warmup_requests, "Requests sent before each run and left out of every statistic")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))->capture_default_str();
  // Workload.
  CLI::Option* in = app_.add_option("--input-len", r.input_len,
                                    "Prompt tokens: N, uniform:MIN:MAX, normal:MEAN:STD or lognormal:MEAN:STD")
                        ->capture_default_str();
  CLI::Option* out = app_.add_option("--output-len", r.output_len, "Output tokens (exact, ignore_eos), same forms")
                         ->capture_default_str();
  CLI::Option* pattern = app_.add_option("--pattern", r.pattern,
                                         "Query patterns instead of --input-len/--output-len: siso, silo, liso, lilo, "
                                         "or a weighted mix like siso=3,lilo=1");
  in->excludes(pattern);
  out->excludes(pattern);
  for (auto [flag, target, help] : {std::tuple{"--short-input", &r.short_input, "Short prompt length of the patterns"},
                                    std::tuple{"--long-input", &r.long_input, "Long prompt length of the patterns"},
                                    std::tuple{"--short-output", &r.short_output, "Short output length of the patterns"},
                                    std::tuple{"--long-output", &r.long_output, "Long output length of the patterns"}}) {
    app_.add_option(flag, *target, help)->needs(pattern)->capture_default_str();
  }
  for (CLI::Option* opt : {in, out, pattern}) opt->excludes(r.trace_opt);
  app_.add_option("--seed", o.seed, "Seed of lengths, patterns, arrivals, prompt ids and sampling")->capture_default_str();
  app_.add_option("--temperature", o.temperature, "Sampling temperature (0 = greedy)")
      ->check(CLI::Range(0.0f, 1e6f))->capture_default_str();
  app_.add_option("--slo", r.slo, "Service-level objectives for goodput, e.g. ttft=200ms,itl=25ms,tpot=20ms,e2e=2s");
  app_.add_option("--tokenizer", o.tokenizer_dir,
                  "Model folder with tokenizer.json: prompt ids avoid its special tokens (default: any id below the "
                  "server's vocab_size)");
  app_.add_option("--output", o.output_dir, "Folder for bench.json, requests.csv and summary.csv (created)");
  app_.add_option("--label", o.label, "Name of this benchmark in reports");
  app_.add_option("--request-timeout", o.request_timeout_s,
                  "Seconds without any server message, with requests in flight, before the run fails (also the "
                  "longest wait for the server to be ready)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app_.add_flag("--quiet", r.quiet, "No live progress line on stderr");
}

BenchCli::~BenchCli() = default;

int BenchCli::exit(const CLI::ParseError& error) { return app_.exit(error); }

BenchOptions BenchCli::parse(int argc, const char* const* argv) {
  app_.parse(argc, argv);
  Raw& r = *raw_;
  BenchOptions o = r.options;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + shell_quote(argv[i]);
  o.progress = !r.quiet;
  if (*r.rate_opt || *r.sweep_rate_opt) {
    o.mode = LoadMode::OpenLoop;
    o.request_rates = *r.rate_opt ? std::vector<double>{r.request_rate} : parse_positive_list(r.sweep_rate, "--sweep-rate");
  } else if (*r.trace_opt) {
    o.mode = LoadMode::Trace;
    if (!*r.num_requests_opt) o.num_requests = 0;  // the whole trace
  } else {
    o.mode = LoadMode::ClosedLoop;
    if (*r.burstiness_opt || *r.max_concurrency_opt)
      throw Error(std::string(*r.burstiness_opt ? "--burstiness" : "--max-concurrency") +
                  " applies to an open loop (--request-rate, --sweep-rate)" +
                  (*r.burstiness_opt ? "" : " or a trace (--trace)") + "; a closed loop is set by --concurrency");
    o.concurrency_levels = {r.concurrency};
    if (*r.sweep_concurrency_opt) {
      o.concurrency_levels.clear();
      for (double level : parse_positive_list(r.sweep_concurrency, "--sweep-concurrency")) {
        if (level != std::floor(level) || level > (1 << 20))
          throw Error("--sweep-concurrency: " + std::to_string(level) + " is not a whole number of requests in [1, 1048576]");
        o.concurrency_levels.push_back(static_cast<int32_t>(level));
      }
    }
  }
  if (!r.pattern.empty()) {
    o.workload.mix = WorkloadSpec::parse_mix(r.pattern, "--pattern");
    o.workload.patterns.short_input = LengthDistribution::parse(r.short_input, "--short-input");
    o.workload.patterns.long_input = LengthDistribution::parse(r.long_input, "--long-input");
    o.workload.patterns.short_output = LengthDistribution::parse(r.short_output, "--short-output");
    o.workload.patterns.long_output = LengthDistribution::parse(r.long_output, "--long-output");
  } else {
    o.workload.input = LengthDistribution::parse(r.input_len, "--input-len");
    o.workload.output = LengthDistribution::parse(r.output_len, "--output-len");
  }
  if (!r.slo.empty()) o.slo = Slo::parse(r.slo);
  if (o.label.empty()) {
    o.label = o.mode == LoadMode::Trace ? "trace " + o.trace_path
              : o.mode == LoadMode::OpenLoop ? (o.request_rates.size() > 1 ? "rate sweep" : "open loop")
              : (o.concurrency_levels.size() > 1 ? "concurrency sweep" : "closed loop");
  }
  return o;
}

}  // namespace tessera::bench
