#pragma once
// Summary statistics of a benchmark run: latency distributions (TTFT, ITL, TPOT, E2E), throughput and goodput
// under service-level objectives. Pure functions over RequestRecords.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tools/bench/request_record.hpp"

namespace tessera::bench {

// Percentile p in [0, 100] of `sorted` (ascending), by linear interpolation between the two closest ranks
// (numpy's default, Hyndman-Fan type 7): with n values x_0 <= ... <= x_{n-1} and h = (n - 1) p / 100,
// the result is x_floor(h) + (h - floor(h)) (x_ceil(h) - x_floor(h)). 0 for an empty vector.
double percentile_sorted(const std::vector<double>& sorted, double p);

struct Distribution {
  int64_t count = 0;
  double mean = 0, min = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;  // all 0 when count == 0
};
Distribution describe(std::vector<double> values);

// Service-level objectives, each optional, in milliseconds. A request meets them when it completed and
// TTFT <= ttft, every one of its ITL gaps <= itl, TPOT <= tpot (requests with >= 2 tokens) and E2E <= e2e.
struct Slo {
  std::optional<double> ttft_ms, itl_ms, tpot_ms, e2e_ms;

  bool empty() const { return !ttft_ms && !itl_ms && !tpot_ms && !e2e_ms; }
  // "ttft=200ms,itl=25ms,e2e=2s" (keys ttft, itl, tpot, e2e; units us, ms, s). Throws tessera::Error on an
  // unknown key, a repeated key or a value without a unit.
  static Slo parse(const std::string& text);
  std::string describe() const;  // e.g. "ttft<=200ms, itl<=25ms"; "none" when empty
};
bool meets_slo(const RequestRecord& record, const Slo& slo);

struct RunSummary {
  int64_t requests = 0;   // sent
  int64_t completed = 0;  // ended with "final"
  int64_t failed = 0;     // ended with "error" (or never ended)
  std::map<std::string, int64_t> errors;  // error code -> count
  double duration_s = 0;  // first send -> last end, over all requests
  // Over completed requests. input_tokens counts the server's prompt_tokens ("accepted"), output_tokens the
  // ids received in "tokens" messages.
  int64_t input_tokens = 0, output_tokens = 0;
  double requests_per_s = 0, output_tokens_per_s = 0, total_tokens_per_s = 0;  // per duration_s
  // With an SLO: requests that met it, per second of duration_s, and their share of all requests sent.
  std::optional<int64_t> good_requests;
  std::optional<double> goodput_requests_per_s, slo_attainment;
  Distribution ttft_ms, itl_ms, tpot_ms, e2e_ms;  // completed requests; itl_ms pools every gap of every request
  Distribution send_lag_ms;                       // open loop / trace: send - scheduled arrival, all requests
};
RunSummary summarize(const std::vector<RequestRecord>& records, const Slo& slo);

}  // namespace tessera::bench
