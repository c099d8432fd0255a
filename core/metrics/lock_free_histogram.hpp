#pragma once
// A Prometheus histogram whose observe() takes no lock: one relaxed atomic counter per bucket and an atomic sum.
// prometheus-cpp's Histogram::Observe locks a mutex; this one is safe to call from the scheduler's step loop.
// A scrape that races an observe() may see the bucket count before the sum (or the reverse) for that one
// observation; the count always equals the sum of the bucket counts.
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <prometheus/client_metric.h>

namespace tessera {

class LockFreeHistogram {
 public:
  // `upper_bounds`: finite, strictly increasing bucket bounds (`le`, inclusive); +Inf is implied. Throws
  // tessera::Error otherwise.
  explicit LockFreeHistogram(std::vector<double> upper_bounds);

  // Counts `value` in the first bucket whose bound is >= value. NaN is ignored. Thread-safe, lock-free.
  void observe(double value) noexcept;

  // Cumulative buckets (+Inf last), count and sum as Prometheus exposes them. Thread-safe.
  prometheus::ClientMetric::Histogram snapshot() const;

  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; size upper_bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

}  // namespace tessera
