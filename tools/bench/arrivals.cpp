#include "tools/bench/arrivals.hpp"

#include <cmath>
#include <random>
#include <string>

#include "core/common/error.hpp"

namespace tessera::bench {

std::vector<double> arrival_times(const ArrivalProcess& process, int64_t count, uint64_t seed) {
  if (!(process.rate_per_s > 0) || !std::isfinite(process.rate_per_s))
    throw Error("request rate must be a positive number of requests per second (got " +
                std::to_string(process.rate_per_s) + ")");
  if (!(process.burstiness > 0) || !std::isfinite(process.burstiness))
    throw Error("burstiness must be a positive number (got " + std::to_string(process.burstiness) + ")");
  // Gamma(k, θ) has mean kθ; θ = 1 / (rate k) keeps the mean gap at 1 / rate for every shape k.
  std::gamma_distribution<double> gap(process.burstiness, 1.0 / (process.rate_per_s * process.burstiness));
  std::mt19937_64 rng(seed ^ 0x5bd1e995a1b2c3d4ULL);  // a stream apart from the workload's, same seed
  std::vector<double> times;
  times.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  double t = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (i > 0) t += gap(rng);
    times.push_back(t);
  }
  return times;
}

void schedule(std::vector<RequestPlan>& plans, const std::vector<double>& times) {
  if (plans.size() != times.size()) throw Error("schedule: " + std::to_string(plans.size()) + " plans but " +
                                                std::to_string(times.size()) + " times");
  for (size_t i = 0; i < plans.size(); ++i) plans[i].arrival_s = times[i];
}

}  // namespace tessera::bench
