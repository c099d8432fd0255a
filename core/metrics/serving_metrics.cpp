#include "core/metrics/serving_metrics.hpp"

#include <algorithm>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace tessera {

namespace {

// Bucket bounds. Latencies in seconds: ITL resolves GPU decode steps (1 ms steps from 1 to 20 ms), TTFT spans 1 ms
// to 10 minutes; the finer bounds below 1 ms resolve the CPU engine on small models.
const std::vector<double> kTimeToFirstTokenBounds = {
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
    0.5,   0.75,   1.0,   1.5,    2.0,  3.0,   5.0,  7.5,  10.0, 20.0, 30.0,  60.0, 120.0, 300.0, 600.0};
const std::vector<double> kTimeToFirstTokenByLengthBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                             1.0,   2.5,  5.0,   10.0, 30.0, 60.0, 300.0};
const std::vector<double> kInterTokenBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010,
    0.011,  0.012,   0.013,  0.014, 0.015, 0.016, 0.017, 0.018, 0.019, 0.020, 0.025, 0.030, 0.040,
    0.050,  0.075,   0.1,    0.15,  0.2,   0.3,   0.5,   0.75,  1.0,   2.5,   5.0,   10.0};
const std::vector<double> kEndToEndBounds = {0.01, 0.025, 0.05, 0.1,   0.25,  0.5,   1.0,   2.5,
                                             5.0,  10.0,  15.0, 20.0,  30.0,  45.0,  60.0,  90.0,
                                             120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0};
const std::vector<double> kQueueBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5,
                                          5.0,    10.0,    30.0,   60.0,  120.0,  300.0, 600.0};
const std::vector<double> kPrefillBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                            0.5,    1.0,   2.5,    5.0,   10.0, 30.0,  60.0, 120.0, 300.0};
const std::vector<double> kDecodeBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,  0.1,   0.25,  0.5,   1.0,
                                           2.5,   5.0,    10.0,  20.0, 30.0,  60.0,  120.0, 300.0, 600.0, 1800.0};
const std::vector<double> kStepDurationBounds = {
    0.0001, 0.00025, 0.0005, 0.001,  0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010, 0.0125, 0.015,
    0.0175, 0.020,   0.025,  0.030,  0.040, 0.050, 0.075, 0.1,   0.25,  0.5,   1.0,   2.5,   5.0,   10.0};

std::vector<double> powers_of_two(double last) {
  std::vector<double> bounds;
  for (double b = 1; b <= last; b *= 2) bounds.push_back(b);
  return bounds;
}

template <size_t N>
std::string length_bucket(int64_t tokens, const std::array<int32_t, N>& bounds) {
  for (int32_t bound : bounds) {
    if (tokens <= bound) return std::to_string(bound);
  }
  return "+Inf";
}

template <size_t N>
size_t length_bucket_index(int64_t tokens, const std::array<int32_t, N>& bounds) {
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), tokens) - bounds.begin());
}

template <size_t N>
std::vector<std::string> length_bucket_labels(const std::array<int32_t, N>& bounds) {
  std::vector<std::string> labels;
  for (int32_t bound : bounds) labels.push_back(std::to_string(bound));
  labels.push_back("+Inf");
  return labels;
}

double non_negative(double seconds) { return std::max(0.0, seconds); }

}  // namespace

// One histogram family: its name, help, and its series (labels + histogram), all made up front.
struct HistogramFamily {
  std::string name;
  std::string help;
  std::vector<std::vector<prometheus::ClientMetric::Label>> labels;
  std::vector<std::unique_ptr<LockFreeHistogram>> series;

  HistogramFamily(std::string name_, std::string help_, const std::vector<double>& bounds)
      : name(std::move(name_)), help(std::move(help_)) {
    add({}, bounds);
  }
  HistogramFamily(std::string name_, std::string help_) : name(std::move(name_)), help(std::move(help_)) {}
  void add(std::vector<prometheus::ClientMetric::Label> l, const std::vector<double>& bounds) {
    labels.push_back(std::move(l));
    series.push_back(std::make_unique<LockFreeHistogram>(bounds));
  }
  LockFreeHistogram& only() { return *series.front(); }

  prometheus::MetricFamily collect() const {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = prometheus::MetricType::Histogram;
    for (size_t i = 0; i < series.size(); ++i) {
      prometheus::ClientMetric metric;
      metric.label = labels[i];
      metric.histogram = series[i]->snapshot();
      family.metric.push_back(std::move(metric));
    }
    return family;
  }
};

struct ServingMetrics::Histograms {
  HistogramFamily ttft{"tessera_time_to_first_token_seconds",
                       "Time from a request's arrival to its first generated token.", kTimeToFirstTokenBounds};
  HistogramFamily ttft_by_input{
      "tessera_time_to_first_token_by_input_length_seconds",
      "Time to first token by prompt length: isl_bucket is the smallest power-of-two bound (128 .. 32768 tokens, "
      "else +Inf) that is >= the prompt length; not cumulative."};
  HistogramFamily itl{"tessera_inter_token_latency_seconds",
                      "Time between two consecutive generated tokens of one request.", kInterTokenBounds};
  HistogramFamily e2e{"tessera_e2e_request_latency_seconds",
                      "Time from a request's arrival to its final message (requests ended by stop, length or "
                      "cancel).",
                      kEndToEndBounds};
  HistogramFamily queue{"tessera_request_queue_time_seconds",
                        "Time from a request's arrival until the scheduler first runs it.", kQueueBounds};
  HistogramFamily prefill{"tessera_request_prefill_time_seconds",
                          "Time from a request's first scheduling to its first token.", kPrefillBounds};
  HistogramFamily decode{"tessera_request_decode_time_seconds",
                         "Time from a request's first token to its last token.", kDecodeBounds};
  HistogramFamily prompt_tokens{"tessera_request_prompt_tokens", "Prompt length of finished requests, in tokens.",
                                powers_of_two(131072)};
  HistogramFamily generation_tokens{"tessera_request_generation_tokens",
                                    "Generated tokens of finished requests.", powers_of_two(32768)};
  HistogramFamily step_duration{"tessera_step_duration_seconds",
                                "Duration of one engine step: the executor's wall time for it (else plan sent to "
                                "result received).",
                                kStepDurationBounds};
  HistogramFamily batch_size{"tessera_step_batch_size", "Sequences in one engine step.", powers_of_two(1024)};
  HistogramFamily batched_tokens{"tessera_step_batched_tokens",
                                 "Tokens one engine step runs (prompt chunks plus decodes).", powers_of_two(65536)};

  Histograms() {
    for (const std::string& bucket : length_bucket_labels(kInputLengthBounds)) {
      ttft_by_input.add({{"isl_bucket", bucket}}, kTimeToFirstTokenByLengthBounds);
    }
  }
  std::vector<const HistogramFamily*> all() const {
    return {&ttft, &ttft_by_input, &itl, &e2e, &queue, &prefill, &decode, &prompt_tokens, &generation_tokens,
            &step_duration, &batch_size, &batched_tokens};
  }
};

const char* request_outcome_name(RequestOutcome outcome) {
  switch (outcome) {
    case RequestOutcome::Stop: return "stop";
    case RequestOutcome::Length: return "length";
    case RequestOutcome::Cancelled: return "cancelled";
    case RequestOutcome::Error: return "error";
    case RequestOutcome::Rejected: return "rejected";
  }
  return "error";
}

std::string ServingMetrics::input_length_bucket(int64_t tokens) { return length_bucket(tokens, kInputLengthBounds); }
std::string ServingMetrics::output_length_bucket(int64_t tokens) {
  return length_bucket(tokens, kOutputLengthBounds);
}

ServingMetrics::ServingMetrics(ServingMetricsOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      histograms_(std::make_unique<Histograms>()) {
  prometheus::Registry& r = *registry_;
  auto& requests = prometheus::BuildCounter()
                       .Name("tessera_requests_total")
                       .Help("Requests by how they ended: stop, length, cancelled (a final message), error (failed "
                             "after admission), rejected (refused before admission).")
                       .Register(r);
  for (RequestOutcome outcome : kRequestOutcomes) {
    requests_[static_cast<size_t>(outcome)] = &requests.Add({{"outcome", request_outcome_name(outcome)}});
  }
  prompt_tokens_ = &prometheus::BuildCounter()
                        .Name("tessera_prompt_tokens_total")
                        .Help("Prompt tokens of requests that got their first token (prefill done).")
                        .Register(r)
                        .Add({});
  generation_tokens_ = &prometheus::BuildCounter()
                            .Name("tessera_generation_tokens_total")
                            .Help("Tokens generated and streamed to clients.")
                            .Register(r)
                            .Add({});
  preemptions_ = &prometheus::BuildCounter()
                      .Name("tessera_preemptions_total")
                      .Help("Running requests preempted (KV blocks freed, recomputed later) for lack of KV blocks.")
                      .Register(r)
                      .Add({});
  errors_family_ = &prometheus::BuildCounter()
                        .Name("tessera_errors_total")
                        .Help("Error messages sent to clients, by error code.")
                        .Register(r);
  for (const std::string& code : options_.error_codes) errors_.emplace(code, &errors_family_->Add({{"code", code}}));
  auto& by_length = prometheus::BuildCounter()
                        .Name("tessera_requests_by_length_total")
                        .Help("Finished requests by prompt length (isl_bucket) and generated length (osl_bucket): "
                              "each is the smallest power-of-two bound >= the length, else +Inf; not cumulative.")
                        .Register(r);
  for (const std::string& isl : length_bucket_labels(kInputLengthBounds)) {
    for (const std::string& osl : length_bucket_labels(kOutputLengthBounds)) {
      by_length_.push_back(&by_length.Add({{"isl_bucket", isl}, {"osl_bucket", osl}}));
    }
  }
  prometheus::BuildCounter()
      .Name("tessera_kv_blocks_total")
      .Help("KV cache blocks (the capacity, fixed at start-up; typed counter because of the _total suffix).")
      .Register(r)
      .Add({})
      .Increment(static_cast<double>(std::max<int64_t>(0, options_.kv_blocks_total)));
  auto gauge = [&](const char* name, const char* help) -> prometheus::Gauge& {
    return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  running_ = &gauge("tessera_requests_running", "Requests being prefilled or decoded.");
  waiting_ = &gauge("tessera_requests_waiting", "Requests waiting to be scheduled (new or preempted).");
  kv_used_ = &gauge("tessera_kv_blocks_used", "KV cache blocks held by requests.");
  kv_usage_ = &gauge("tessera_kv_cache_usage_ratio", "Fraction of the KV cache blocks in use (0 to 1).");
  kv_reserved_ = &gauge("tessera_kv_blocks_reserved",
                        "KV cache blocks the admitted requests may reach at max_tokens (capacity policy "
                        "guaranteed_no_evict; 0 otherwise).");
  prometheus::BuildGauge()
      .Name("tessera_model_info")
      .Help("The served model (always 1).")
      .Register(r)
      .Add({{"model", options_.model}, {"dtype", options_.dtype}, {"device", options_.device}})
      .Set(1);
}

ServingMetrics::~ServingMetrics() = default;

void ServingMetrics::record_step(double duration_s, int64_t batch_size, int64_t batched_tokens) {
  histograms_->step_duration.only().observe(non_negative(duration_s));
  histograms_->batch_size.only().observe(static_cast<double>(batch_size));
  histograms_->batched_tokens.only().observe(static_cast<double>(batched_tokens));
}

void ServingMetrics::record_queue_time(double queue_s) { histograms_->queue.only().observe(non_negative(queue_s)); }

void ServingMetrics::record_preemptions(uint64_t count) {
  if (count > 0) preemptions_->Increment(static_cast<double>(count));
}

void ServingMetrics::record_first_token(double ttft_s, int32_t prompt_tokens) {
  const double ttft = non_negative(ttft_s);
  histograms_->ttft.only().observe(ttft);
  histograms_->ttft_by_input.series[length_bucket_index(prompt_tokens, kInputLengthBounds)]->observe(ttft);
  prompt_tokens_->Increment(prompt_tokens);
}

void ServingMetrics::record_inter_token_latency(double gap_s) { histograms_->itl.only().observe(non_negative(gap_s)); }

void ServingMetrics::record_generated_tokens(int64_t count) {
  if (count > 0) generation_tokens_->Increment(static_cast<double>(count));
}

void ServingMetrics::record_finished(const FinishedRequest& request) {
  record_outcome(request.outcome);
  histograms_->e2e.only().observe(non_negative(request.e2e_s));
  if (request.prefill_s) histograms_->prefill.only().observe(non_negative(*request.prefill_s));
  if (request.decode_s) histograms_->decode.only().observe(non_negative(*request.decode_s));
  histograms_->prompt_tokens.only().observe(request.prompt_tokens);
  histograms_->generation_tokens.only().observe(request.generation_tokens);
  const size_t isl = length_bucket_index(request.prompt_tokens, kInputLengthBounds);
  const size_t osl = length_bucket_index(request.generation_tokens, kOutputLengthBounds);
  by_length_[isl * (kOutputLengthBounds.size() + 1) + osl]->Increment();
}

void ServingMetrics::record_outcome(RequestOutcome outcome) { requests_[static_cast<size_t>(outcome)]->Increment(); }

prometheus::Counter& ServingMetrics::counter_for_code(std::string_view code) {
  auto it = errors_.find(std::string(code));
  if (it != errors_.end()) return *it->second;
  // A code not named at construction: prometheus-cpp's family adds (or finds) the series under its own lock.
  return errors_family_->Add({{"code", std::string(code)}});
}

void ServingMetrics::record_error(std::string_view code) { counter_for_code(code).Increment(); }

std::vector<prometheus::MetricFamily> ServingMetrics::Collect() const {
  if (options_.live_load) {
    const LiveLoad load = options_.live_load();
    running_->Set(static_cast<double>(load.requests_running));
    waiting_->Set(static_cast<double>(load.requests_waiting));
    kv_used_->Set(static_cast<double>(load.kv_blocks_used));
    const int64_t total = options_.kv_blocks_total;
    kv_usage_->Set(total > 0 ? static_cast<double>(load.kv_blocks_used) / static_cast<double>(total) : 0.0);
    kv_reserved_->Set(static_cast<double>(load.kv_blocks_reserved));
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const HistogramFamily* family : histograms_->all()) families.push_back(family->collect());
  return families;
}

}  // namespace tessera
