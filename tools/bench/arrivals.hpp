#pragma once
// Open-loop arrival times: a Poisson process at a given request rate, made burstier or smoother with gamma-
// distributed gaps.
#include <cstdint>
#include <vector>

#include "tools/bench/workload.hpp"

namespace tessera::bench {

struct ArrivalProcess {
  double rate_per_s = 1;  // mean requests per second, > 0
  // Shape k of the gamma distribution of the gaps (mean 1/rate, coefficient of variation 1/sqrt(k)).
  // 1 = Poisson (exponential gaps); < 1 burstier; > 1 more regular.
  double burstiness = 1;
};

// Send times in seconds for `count` requests: the first at 0, each next one a gamma-distributed gap later.
// Same process, count and seed -> same times. Throws tessera::Error for a rate or burstiness that is not a
// positive finite number.
std::vector<double> arrival_times(const ArrivalProcess& process, int64_t count, uint64_t seed);

// Sets plans[i].arrival_s = times[i] (sizes must match).
void schedule(std::vector<RequestPlan>& plans, const std::vector<double>& times);

}  // namespace tessera::bench
