#pragma once
// Everything Tessera measures for Prometheus, recorded with plain values where the facts are known: the ingress
// (errors), the scheduler's step loop (steps, queue time, preemptions), the tokenizer shards (per-token and
// per-request latencies, tokens, outcomes). Live load (running, waiting, KV blocks) is read at scrape time.
//
// Threading: every record_* is thread-safe and never blocks: counters are prometheus-cpp atomics, histograms are
// LockFreeHistogram, and every labelled series is created in the constructor (no map insertion while serving).
// Collect() (the scrape) may run on any thread.
//
// Metric names and meanings are listed in the README's Metrics section; the tests/metrics tests pin them.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "core/metrics/lock_free_histogram.hpp"

namespace tessera {

// How a request ended: a final message (stop, length, cancelled), an error after it was admitted (error), or an
// error instead of admission (rejected: invalid, too long, overloaded, duplicate id, shutting down).
enum class RequestOutcome : uint8_t { Stop, Length, Cancelled, Error, Rejected };
inline constexpr std::array<RequestOutcome, 5> kRequestOutcomes = {
    RequestOutcome::Stop, RequestOutcome::Length, RequestOutcome::Cancelled, RequestOutcome::Error,
    RequestOutcome::Rejected};
const char* request_outcome_name(RequestOutcome outcome);  // "stop", "length", "cancelled", "error", "rejected"

// The server's load at one moment, read at every scrape.
struct LiveLoad {
  int64_t requests_running = 0;
  int64_t requests_waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_reserved = 0;  // the scheduler's reservations under guaranteed_no_evict (else 0)
};

struct ServingMetricsOptions {
  // tessera_model_info{model,dtype,device} = 1.
  std::string model;
  std::string dtype;
  std::string device;
  // The KV cache's capacity in blocks, fixed at start-up. tessera_kv_blocks_total is exposed with the counter type:
  // promtool rejects a `_total` suffix on gauges, and a constant is a valid counter.
  int64_t kv_blocks_total = 0;
  // The error codes whose tessera_errors_total{code} series exist (at 0) from the start, so dashboards and alerts
  // see every code before it first happens. Other codes are still counted (their series is created on first use).
  std::vector<std::string> error_codes;
  // Called at every scrape for the gauges; may be empty (the gauges then stay 0). Must be thread-safe.
  std::function<LiveLoad()> live_load;
};

// A request that ended with a final message (stop, length or cancelled), as the tokenizer shard saw it.
struct FinishedRequest {
  RequestOutcome outcome = RequestOutcome::Stop;
  int32_t prompt_tokens = 0;
  int32_t generation_tokens = 0;
  double e2e_s = 0;                    // arrival -> final
  std::optional<double> prefill_s;     // first scheduled -> first token (when both happened)
  std::optional<double> decode_s;      // first token -> last token (when a token came)
};

class ServingMetrics final : public prometheus::Collectable {
 public:
  // The power-of-two length grid of tessera_requests_by_length_total and of the TTFT-by-input-length histogram:
  // a length falls in the first bucket whose bound is >= it, "+Inf" above the last bound. Not cumulative.
  static constexpr std::array<int32_t, 9> kInputLengthBounds = {128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  static constexpr std::array<int32_t, 7> kOutputLengthBounds = {64, 128, 256, 512, 1024, 2048, 4096};
  static std::string input_length_bucket(int64_t tokens);   // e.g. 130 -> "256", 40000 -> "+Inf"
  static std::string output_length_bucket(int64_t tokens);

  explicit ServingMetrics(ServingMetricsOptions options);
  ~ServingMetrics() override;
  ServingMetrics(const ServingMetrics&) = delete;
  ServingMetrics& operator=(const ServingMetrics&) = delete;

  // --- the scheduler's step loop
  // One engine step: its duration (seconds: the executor's time, see the scheduler actor), sequences in it, tokens
  // it ran.
  void record_step(double duration_s, int64_t batch_size, int64_t batched_tokens);
  // A request scheduled for the first time, `queue_s` after its arrival.
  void record_queue_time(double queue_s);
  void record_preemptions(uint64_t count);

  // --- the tokenizer shards, per token and per request
  // A request's first token, `ttft_s` after arrival; its prompt counts as processed from now on.
  void record_first_token(double ttft_s, int32_t prompt_tokens);
  // The gap between two consecutive tokens of one request (seconds).
  void record_inter_token_latency(double gap_s);
  // Tokens generated (streamed to a client).
  void record_generated_tokens(int64_t count);
  // A request answered with a final: its outcome and every per-request histogram and the length grid.
  void record_finished(const FinishedRequest& request);
  // A request that ended with an error or was rejected (no per-request histograms).
  void record_outcome(RequestOutcome outcome);

  // --- the ingress and the bus: one error message sent to a client, by its wire code (e.g. "overloaded").
  void record_error(std::string_view code);

  // prometheus::Collectable: refreshes the live gauges, then every family.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Histograms;
  prometheus::Counter& counter_for_code(std::string_view code);

  ServingMetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Histograms> histograms_;
  std::array<prometheus::Counter*, kRequestOutcomes.size()> requests_{};
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* generation_tokens_ = nullptr;
  prometheus::Counter* preemptions_ = nullptr;
  prometheus::Family<prometheus::Counter>* errors_family_ = nullptr;
  std::unordered_map<std::string, prometheus::Counter*> errors_;  // fixed after construction
  std::vector<prometheus::Counter*> by_length_;  // [input bucket][output bucket], row-major
  prometheus::Gauge* running_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Gauge* kv_used_ = nullptr;
  prometheus::Gauge* kv_usage_ = nullptr;
  prometheus::Gauge* kv_reserved_ = nullptr;
};

}  // namespace tessera
