#pragma once
// Shared helpers of the kernel tests: seeded random inputs and a relative/absolute closeness check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace tessera::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// |actual - expected| <= atol + rtol * |expected| element-wise; reports the first few failures.
inline void expect_close(const std::vector<float>& actual, const std::vector<double>& expected, double rtol,
                         double atol) {
  ASSERT_EQ(actual.size(), expected.size());
  int failures = 0;
  for (size_t i = 0; i < actual.size() && failures < 5; ++i) {
    if (!(std::abs(actual[i] - expected[i]) <= atol + rtol * std::abs(expected[i]))) {
      ADD_FAILURE() << "element " << i << ": got " << actual[i] << ", expected " << expected[i];
      ++failures;
    }
  }
}

}  // namespace tessera::test
