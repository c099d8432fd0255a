#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/sampling/sampler.hpp"

namespace tessera {
namespace {

SamplingParams make_params(float temperature, int32_t top_k = -1, float top_p = 1.0f,
                           std::optional<uint64_t> seed = 1234) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = seed;
  return p;
}

// Independent reference: softmax(logits / t) in double.
std::vector<double> softmax(const std::vector<float>& logits, double t) {
  double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> out(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += out[i] = std::exp((logits[i] - max) / t);
  for (double& v : out) v /= sum;
  return out;
}

std::vector<int32_t> draw(Sampler& sampler, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(sampler.sample(logits));
  return out;
}

TEST(Sampler, GreedyPicksArgmax) {
  std::vector<float> logits = {0.1f, -2.0f, 3.5f, 3.25f, -INFINITY};
  Sampler sampler(make_params(0.0f), 5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(sampler.sample(logits), 2);
  std::vector<float> probs = sampler.probabilities(logits);
  EXPECT_EQ(probs, (std::vector<float>{0, 0, 1, 0, 0}));
}

TEST(Sampler, GreedyTiesGoToLowestId) {
  std::vector<float> logits = {1.0f, 7.0f, 3.0f, 7.0f, 7.0f};
  Sampler sampler(make_params(0.0f), 5);
  EXPECT_EQ(sampler.sample(logits), 1);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferent) {
  std::vector<float> logits(1000, 0.0f);  // uniform: 1000 choices per draw
  Sampler a(make_params(1.0f, -1, 1.0f, 42), 1000);
  Sampler b(make_params(1.0f, -1, 1.0f, 42), 1000);
  Sampler c(make_params(1.0f, -1, 1.0f, 43), 1000);
  std::vector<int32_t> seq_a = draw(a, logits, 50);
  EXPECT_EQ(seq_a, draw(b, logits, 50));
  EXPECT_NE(seq_a, draw(c, logits, 50));
  // Unseeded samplers draw from std::random_device: two of them agreeing on 50 uniform draws out of 1000
  // would be a broken entropy source.
  Sampler d(make_params(1.0f, -1, 1.0f, std::nullopt), 1000);
  Sampler e(make_params(1.0f, -1, 1.0f, std::nullopt), 1000);
  EXPECT_NE(draw(d, logits, 50), draw(e, logits, 50));
}

TEST(Sampler, DrawsDoNotDependOnOtherRequests) {
  std::vector<float> logits(64);
  std::iota(logits.begin(), logits.end(), 0.0f);
  for (float& v : logits) v = std::sin(v);
  Sampler alone(make_params(1.0f, -1, 1.0f, 7), 64);
  std::vector<int32_t> expected = draw(alone, logits, 100);

  // Same request interleaved with other requests (different params, same logits) as in a batch.
  Sampler mine(make_params(1.0f, -1, 1.0f, 7), 64);
  Sampler other1(make_params(0.7f, 5, 1.0f, 7), 64);
  Sampler other2(make_params(1.3f, -1, 0.5f, std::nullopt), 64);
  std::vector<int32_t> got;
  for (int i = 0; i < 100; ++i) {
    other1.sample(logits);
    got.push_back(mine.sample(logits));
    other2.sample(logits);
  }
  EXPECT_EQ(got, expected);
}

TEST(Sampler, ProbabilitiesMatchHandComputedSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f};
  for (double t : {0.5, 1.0, 2.0}) {
    Sampler sampler(make_params(static_cast<float>(t)), 5);
    std::vector<float> probs = sampler.probabilities(logits);
    std::vector<double> expected = softmax(logits, t);
    for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(probs[i], expected[i], 1e-6) << "t=" << t << " i=" << i;
  }
  // Plain numbers: logits ln(1), ln(2), ln(3), ln(4) at t=1 give 0.1, 0.2, 0.3, 0.4.
  std::vector<float> log_counts = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  Sampler sampler(make_params(1.0f), 4);
  std::vector<float> probs = sampler.probabilities(log_counts);
  EXPECT_NEAR(probs[0], 0.1, 1e-6);
  EXPECT_NEAR(probs[1], 0.2, 1e-6);
  EXPECT_NEAR(probs[2], 0.3, 1e-6);
  EXPECT_NEAR(probs[3], 0.4, 1e-6);
}

TEST(Sampler, TinyTemperatureApproachesGreedyWithoutNaN) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
  for (float t : {1e-6f, 1e-40f, std::numeric_limits<float>::denorm_min()}) {
    Sampler sampler(make_params(t), 4);
    std::vector<float> probs = sampler.probabilities(logits);
    EXPECT_EQ(probs, (std::vector<float>{0.0f, 0.5f, 0.5f, 0.0f})) << "t=" << t;
    int32_t id = sampler.sample(logits);
    EXPECT_TRUE(id == 1 || id == 2) << id;
  }
}

TEST(Sampler, TopKRenormalizesOverKeptTokens) {
  // Probabilities 0.1 0.2 0.3 0.4; top-2 keeps {3, 2} -> 3/7, 4/7.
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  Sampler sampler(make_params(1.0f, 2), 4);
  std::vector<float> probs = sampler.probabilities(logits);
  EXPECT_EQ(probs[0], 0.0f);
  EXPECT_EQ(probs[1], 0.0f);
  EXPECT_NEAR(probs[2], 3.0 / 7.0, 1e-6);
  EXPECT_NEAR(probs[3], 4.0 / 7.0, 1e-6);
  // top_k >= vocab is "off".
  Sampler wide(make_params(1.0f, 99), 4);
  EXPECT_NEAR(wide.probabilities(logits)[0], 0.1, 1e-6);
}

TEST(Sampler, TopKTiesKeepLowestIds) {
  std::vector<float> logits = {1.0f, 5.0f, 5.0f, 5.0f, 0.0f};
  Sampler sampler(make_params(1.0f, 2), 5);
  std::vector<float> probs = sampler.probabilities(logits);
  EXPECT_NEAR(probs[1], 0.5, 1e-6);
  EXPECT_NEAR(probs[2], 0.5, 1e-6);
  EXPECT_EQ(probs[3], 0.0f);
}

TEST(Sampler, TopPKeepsExactNucleus) {
  // Probabilities 0.1 0.2 0.3 0.4.
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  struct Case {
    float top_p;
    std::vector<double> expected;
  };
  std::vector<Case> cases = {
      {0.3f, {0, 0, 0, 1}},                       // 0.4 >= 0.3 alone
      {0.4f, {0, 0, 0, 1}},                       // exactly the boundary: 0.4 reaches it
      {0.5f, {0, 0, 3.0 / 7, 4.0 / 7}},           // 0.4 < 0.5 <= 0.7
      {0.7f, {0, 0, 3.0 / 7, 4.0 / 7}},           // boundary again
      {0.75f, {0, 2.0 / 9, 3.0 / 9, 4.0 / 9}},    // needs 0.9
      {0.95f, {0.1, 0.2, 0.3, 0.4}},              // needs everything
  };
  for (const Case& c : cases) {
    Sampler sampler(make_params(1.0f, -1, c.top_p), 4);
    std::vector<float> probs = sampler.probabilities(logits);
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(probs[i], c.expected[i], 1e-6) << "top_p=" << c.top_p << " i=" << i;
  }
}

TEST(Sampler, TinyTopPKeepsAtLeastOneToken) {
  std::vector<float> logits = {0.0f, 0.0f, 0.0f};
  Sampler sampler(make_params(1.0f, -1, 1e-6f), 3);
  std::vector<float> probs = sampler.probabilities(logits);
  EXPECT_EQ(probs, (std::vector<float>{1, 0, 0}));  // equal logits: lowest id first
  EXPECT_EQ(sampler.sample(logits), 0);
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  std::vector<float> logits = {-INFINITY, 0.0f, -INFINITY, 0.0f};
  Sampler sampler(make_params(1.0f, 3), 4);  // top-k keeps one -inf token, which must still have probability 0
  EXPECT_EQ(sampler.probabilities(logits)[0] + sampler.probabilities(logits)[2], 0.0f);
  for (int i = 0; i < 2000; ++i) {
    int32_t id = sampler.sample(logits);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
}

TEST(Sampler, BadLogitsThrowNamingTheToken) {
  Sampler sampler(make_params(1.0f), 4);
  auto message = [&](std::vector<float> logits) -> std::string {
    try {
      sampler.sample(logits);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message({0, std::numeric_limits<float>::quiet_NaN(), 0, 0}).find("token 1 is NaN"), std::string::npos);
  EXPECT_NE(message({0, 0, INFINITY, 0}).find("token 2 is +inf"), std::string::npos);
  EXPECT_NE(message({-INFINITY, -INFINITY, -INFINITY, -INFINITY}).find("all logits are -inf"), std::string::npos);
  EXPECT_NE(message({0, 0, 0}).find("expected vocab_size 4"), std::string::npos);
  Sampler greedy(make_params(0.0f), 2);
  EXPECT_THROW(greedy.sample(std::vector<float>{std::numeric_limits<float>::quiet_NaN(), 0}), Error);
}

TEST(Sampler, ConstructorValidatesParams) {
  EXPECT_THROW(Sampler(make_params(-1.0f), 10), Error);
  EXPECT_THROW(Sampler(make_params(1.0f, -1, 2.0f), 10), Error);
}

// A Llama-3-sized row: the partial-sort paths must pick exactly the set a full sort defines.
TEST(Sampler, LargeVocabularyMatchesFullSortReference) {
  const int32_t vocab = 128256;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(vocab);
  for (float& v : logits) v = normal(gen);

  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  std::vector<double> p = softmax(logits, 0.8);

  // Reference nucleus for top_p = 0.9 over the full distribution.
  double cum = 0;
  size_t nucleus = 0;
  while (cum < 0.9 * (1 - 1e-6)) cum += p[order[nucleus++]];

  Sampler sampler(make_params(0.8f, -1, 0.9f), vocab);
  std::vector<float> probs = sampler.probabilities(logits);
  size_t nonzero = std::count_if(probs.begin(), probs.end(), [](float v) { return v > 0; });
  EXPECT_EQ(nonzero, nucleus);
  for (size_t i = 0; i < nucleus; ++i) EXPECT_NEAR(probs[order[i]], p[order[i]] / cum, 1e-6);
  for (int i = 0; i < 200; ++i) {
    int32_t id = sampler.sample(logits);
    EXPECT_GT(probs[id], 0.0f) << "token " << id << " outside the nucleus";
  }

  // Both top-k strategies (heap for small k, nth_element above Sampler::kHeapTopK) keep exactly the k best.
  for (int32_t k : {50, 5000}) {
    Sampler top_k(make_params(0.8f, k), vocab);
    std::vector<float> k_probs = top_k.probabilities(logits);
    for (int32_t i = 0; i < k; ++i) ASSERT_GT(k_probs[order[i]], 0.0f) << "k=" << k << " rank " << i;
    EXPECT_EQ(std::count_if(k_probs.begin(), k_probs.end(), [](float v) { return v > 0; }), k);
  }
}

TEST(Sampler, LargeTopKTiesKeepLowestIds) {
  std::vector<float> logits(3000, 1.0f);
  Sampler sampler(make_params(1.0f, 2000), 3000);  // above kHeapTopK: the nth_element path
  std::vector<float> probs = sampler.probabilities(logits);
  for (int i = 0; i < 3000; ++i) {
    if (i < 2000)
      ASSERT_NEAR(probs[i], 1.0 / 2000, 1e-9) << i;
    else
      ASSERT_EQ(probs[i], 0.0f) << i;
  }
}

}  // namespace
}  // namespace tessera
