// LockFreeHistogram: Prometheus bucket semantics (inclusive upper bounds, cumulative counts, +Inf), exact counts
// under concurrent observers, and no lock on observe().
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/metrics/lock_free_histogram.hpp"

namespace tessera {
namespace {

TEST(LockFreeHistogramTest, BucketsAreInclusiveCumulativeAndEndWithInf) {
  LockFreeHistogram h({1.0, 2.0, 4.0});
  for (double v : {0.5, 1.0, 1.5, 4.0, 5.0, -1.0}) h.observe(v);
  h.observe(std::nan(""));  // ignored
  const auto s = h.snapshot();
  ASSERT_EQ(s.bucket.size(), 4u);
  // le=1: 0.5, 1.0, -1.0; le=2: + 1.5; le=4: + 4.0; +Inf: + 5.0
  EXPECT_EQ(s.bucket[0].cumulative_count, 3u);
  EXPECT_EQ(s.bucket[1].cumulative_count, 4u);
  EXPECT_EQ(s.bucket[2].cumulative_count, 5u);
  EXPECT_EQ(s.bucket[3].cumulative_count, 6u);
  EXPECT_EQ(s.bucket[0].upper_bound, 1.0);
  EXPECT_TRUE(std::isinf(s.bucket[3].upper_bound));
  EXPECT_EQ(s.sample_count, 6u);
  EXPECT_DOUBLE_EQ(s.sample_sum, 0.5 + 1.0 + 1.5 + 4.0 + 5.0 - 1.0);
}

TEST(LockFreeHistogramTest, RejectsBoundsThatAreNotStrictlyIncreasing) {
  EXPECT_THROW(LockFreeHistogram({1.0, 1.0}), Error);
  EXPECT_THROW(LockFreeHistogram({2.0, 1.0}), Error);
  EXPECT_THROW(LockFreeHistogram({1.0, INFINITY}), Error);
  EXPECT_NO_THROW(LockFreeHistogram({}));
}

TEST(LockFreeHistogramTest, ConcurrentObserversLoseNothingAndTakeNoLock) {
  static_assert(std::atomic<double>::is_always_lock_free);
  static_assert(std::atomic<uint64_t>::is_always_lock_free);
  LockFreeHistogram h({0.5, 1.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.observe(t % 2 == 0 ? 1.0 : 2.0);
    });
  }
  for (auto& thread : threads) thread.join();
  const auto s = h.snapshot();
  EXPECT_EQ(s.sample_count, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.bucket[0].cumulative_count, 0u);
  EXPECT_EQ(s.bucket[1].cumulative_count, uint64_t{kThreads / 2} * kPerThread);  // the 1.0s
  EXPECT_EQ(s.sample_sum, (kThreads / 2) * kPerThread * 1.0 + (kThreads / 2) * kPerThread * 2.0);  // exact integers
}

}  // namespace
}  // namespace tessera
