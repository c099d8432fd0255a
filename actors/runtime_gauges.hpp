#pragma once
// Live numbers the scheduler actor publishes for readers on other threads (the ingress's info replies; metrics
// later). Relaxed atomics: each value is exact, a set of them is only roughly simultaneous.
#include <atomic>
#include <cstdint>

namespace tessera {

struct RuntimeGauges {
  std::atomic<int32_t> requests_running{0};
  std::atomic<int32_t> requests_waiting{0};
  std::atomic<int32_t> kv_blocks_used{0};
  std::atomic<int32_t> kv_blocks_total{0};
  std::atomic<int32_t> kv_blocks_reserved{0};  // the scheduler's (capacity policy guaranteed_no_evict)
  std::atomic<uint64_t> preemptions{0};
  std::atomic<uint64_t> steps{0};
  std::atomic<bool> executor_failed{false};  // a fatal step result: the server is stopping
};

}  // namespace tessera
