// Statistical tests: draw 100k tokens with a fixed seed and compare frequencies with an independently computed
// distribution, allowing 5 binomial standard deviations per token (false-failure odds ~1e-6 per token).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "core/sampling/sampler.hpp"

namespace tessera {
namespace {

constexpr int kDraws = 100000;

// Probabilities 0.05 0.25 0.10 0.30 0.20 0.10 at temperature 1 (ids deliberately not in probability order).
const std::vector<double> kBase = {0.05, 0.25, 0.10, 0.30, 0.20, 0.10};

std::vector<float> base_logits() {
  std::vector<float> logits;
  for (double p : kBase) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// Straightforward reference: softmax(log p / t), full sort, keep top_k, keep the smallest prefix reaching top_p.
std::vector<double> reference(double temperature, int top_k, double top_p) {
  std::vector<double> w;
  for (double p : kBase) w.push_back(std::pow(p, 1.0 / temperature));
  std::vector<int> order(w.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return w[a] > w[b]; });
  size_t kept = top_k > 0 ? std::min<size_t>(top_k, w.size()) : w.size();
  double mass = 0;
  for (size_t i = 0; i < kept; ++i) mass += w[order[i]];
  double cum = 0;
  size_t nucleus = 0;
  while (nucleus < kept && cum < top_p * mass * (1 - 1e-9)) cum += w[order[nucleus++]];
  std::vector<double> out(w.size(), 0.0);
  for (size_t i = 0; i < nucleus; ++i) out[order[i]] = w[order[i]] / cum;
  return out;
}

void expect_frequencies(float temperature, int32_t top_k, float top_p, const std::vector<double>& expected) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_k = top_k;
  params.top_p = top_p;
  params.seed = 20240601;
  Sampler sampler(params, static_cast<int32_t>(kBase.size()));
  std::vector<float> logits = base_logits();
  std::vector<int> counts(kBase.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[sampler.sample(logits)];
  for (size_t id = 0; id < kBase.size(); ++id) {
    double p = expected[id];
    if (p == 0.0) {
      EXPECT_EQ(counts[id], 0) << "token " << id << " is outside the kept set but was drawn";
      continue;
    }
    double mean = kDraws * p;
    double sigma = std::sqrt(kDraws * p * (1 - p));
    EXPECT_NEAR(counts[id], mean, 5 * sigma)
        << "token " << id << " t=" << temperature << " top_k=" << top_k << " top_p=" << top_p;
  }
}

TEST(SamplerDistribution, TemperatureOne) {
  expect_frequencies(1.0f, -1, 1.0f, kBase);
}

TEST(SamplerDistribution, TemperatureHalfSharpens) {
  // p^2 normalized: the square of each probability over sum of squares (0.2 total).
  std::vector<double> expected;
  double sum_sq = 0;
  for (double p : kBase) sum_sq += p * p;
  for (double p : kBase) expected.push_back(p * p / sum_sq);
  expect_frequencies(0.5f, -1, 1.0f, expected);
}

TEST(SamplerDistribution, TemperatureTwoFlattens) {
  expect_frequencies(2.0f, -1, 1.0f, reference(2.0, -1, 1.0));
}

TEST(SamplerDistribution, TopKNeverDrawsOutsideTopK) {
  // Top 3 of {0.30 (id 3), 0.25 (id 1), 0.20 (id 4)}: renormalized by 0.75.
  std::vector<double> expected = {0, 0.25 / 0.75, 0, 0.30 / 0.75, 0.20 / 0.75, 0};
  expect_frequencies(1.0f, 3, 1.0f, expected);
}

TEST(SamplerDistribution, TopPDrawsFromExactNucleus) {
  // Sorted: 0.30, 0.25, 0.20, ... ; 0.30 + 0.25 = 0.55 < 0.6 <= 0.75 -> nucleus {3, 1, 4}.
  std::vector<double> expected = {0, 0.25 / 0.75, 0, 0.30 / 0.75, 0.20 / 0.75, 0};
  expect_frequencies(1.0f, -1, 0.6f, expected);
  std::vector<double> ref = reference(1.0, -1, 0.6);  // the reference agrees with the hand computation
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(ref[i], expected[i], 1e-12);
}

TEST(SamplerDistribution, TemperatureTopKTopPCombined) {
  std::vector<double> expected = reference(0.7, 4, 0.8);
  EXPECT_EQ(std::count_if(expected.begin(), expected.end(), [](double p) { return p > 0; }), 3);
  expect_frequencies(0.7f, 4, 0.8f, expected);
}

}  // namespace
}  // namespace tessera
