// RoPE: inverse frequencies (plain, linear, llama3 scaling) and the rotate_half application.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/common/error.hpp"
#include "kernels/rope.hpp"
#include "tests/kernels/random_inputs.hpp"

namespace tessera {
namespace {

using test::expect_close;
using test::random_floats;

std::vector<double> plain_inv_freq(int dim, double theta) {
  std::vector<double> f;
  for (int i = 0; i < dim; i += 2) f.push_back(std::pow(theta, -double(i) / dim));
  return f;
}

TEST(RopeInvFreq, PlainIsThetaToTheMinusTwoIOverD) {
  const auto f = kernels::rope_inv_freq(64, 10000.0, RopeScaling{});
  ASSERT_EQ(f.size(), 32u);
  expect_close(f, plain_inv_freq(64, 10000.0), 1e-7, 0);
  EXPECT_EQ(f[0], 1.0f);
}

TEST(RopeInvFreq, LinearDividesEveryFrequencyByFactor) {
  RopeScaling s;
  s.type = RopeScaling::Type::Linear;
  s.factor = 4.0f;
  auto expected = plain_inv_freq(16, 10000.0);
  for (double& x : expected) x /= 4.0;
  expect_close(kernels::rope_inv_freq(16, 10000.0, s), expected, 1e-7, 0);
}

// Written from the Hugging Face description of llama3 rope scaling: wavelengths shorter than
// original_ctx / high_freq_factor keep their frequency, wavelengths longer than original_ctx / low_freq_factor are
// interpolated (frequency / factor), and in between the frequency is the blend
// (1 - s) * f / factor + s * f with s = (original_ctx / wavelength - low_freq_factor) / (high - low).
std::vector<double> llama3_inv_freq(int dim, double theta, double factor, double low, double high, double ctx) {
  std::vector<double> out;
  for (double f : plain_inv_freq(dim, theta)) {
    const double wavelength = 2 * std::numbers::pi / f;
    if (wavelength < ctx / high) {
      out.push_back(f);
    } else if (wavelength > ctx / low) {
      out.push_back(f / factor);
    } else {
      const double s = (ctx / wavelength - low) / (high - low);
      out.push_back((1 - s) * f / factor + s * f);
    }
  }
  return out;
}

TEST(RopeInvFreq, Llama3MatchesTheHfDescription) {
  RopeScaling s;  // Llama 3.1 values
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8.0f;
  s.low_freq_factor = 1.0f;
  s.high_freq_factor = 4.0f;
  s.original_max_position_embeddings = 8192;
  const auto f = kernels::rope_inv_freq(128, 500000.0, s);
  const auto expected = llama3_inv_freq(128, 500000.0, 8.0, 1.0, 4.0, 8192.0);
  expect_close(f, expected, 1e-6, 0);
  // All three regimes occur for these parameters, and the result stays strictly decreasing.
  const auto plain = plain_inv_freq(128, 500000.0);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const double ratio = f[i] / plain[i];
    if (std::abs(ratio - 1.0) < 1e-6) {
      ++kept;
    } else if (std::abs(ratio - 1.0 / 8.0) < 1e-6) {
      ++divided;
    } else {
      ++blended;
    }
    if (i > 0) {
      EXPECT_LT(f[i], f[i - 1]);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(RopeInvFreq, RejectsBadParameters) {
  EXPECT_THROW(kernels::rope_inv_freq(15, 10000.0, RopeScaling{}), Error);
  EXPECT_THROW(kernels::rope_inv_freq(0, 10000.0, RopeScaling{}), Error);
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.low_freq_factor = 4.0f;
  s.high_freq_factor = 1.0f;
  EXPECT_THROW(kernels::rope_inv_freq(64, 10000.0, s), Error);
}

// Direct rotate_half formula in double.
std::vector<double> naive_rope(const std::vector<float>& x, int tokens, int heads, int dim,
                               const std::vector<int32_t>& pos, const std::vector<float>& inv_freq) {
  std::vector<double> out(x.size());
  const int half = dim / 2;
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < dim; ++i) {
        const size_t base = (size_t(t) * heads + h) * dim;
        const double angle = double(pos[t]) * inv_freq[i % half];
        const double rotated = i < half ? -double(x[base + i + half]) : double(x[base + i - half]);
        out[base + i] = x[base + i] * std::cos(angle) + rotated * std::sin(angle);
      }
  return out;
}

TEST(RopeRef, MatchesDirectCosSinFormulaForQAndK) {
  const int tokens = 17, q_heads = 6, kv_heads = 2, dim = 16;
  const std::vector<int32_t> pos = {0, 1, 2, 15, 16, 17, 33, 100, 255, 256, 511, 1000, 2047, 5, 5, 9, 4095};
  const auto inv_freq = kernels::rope_inv_freq(dim, 10000.0, RopeScaling{});
  auto q = random_floats(size_t(tokens) * q_heads * dim, 21);
  auto k = random_floats(size_t(tokens) * kv_heads * dim, 22);
  const auto q_expected = naive_rope(q, tokens, q_heads, dim, pos, inv_freq);
  const auto k_expected = naive_rope(k, tokens, kv_heads, dim, pos, inv_freq);
  kernels::rope_ref(q.data(), k.data(), tokens, q_heads, kv_heads, dim, pos.data(), inv_freq.data());
  // The FP32 angle position * inv_freq is off by up to ~position * 2^-24 radians.
  expect_close(q, q_expected, 0, 1e-3);
  expect_close(k, k_expected, 0, 1e-3);
  for (int t = 0; t < 3; ++t) {  // small positions: exact angles
    for (int i = 0; i < q_heads * dim; ++i) EXPECT_NEAR(q[t * q_heads * dim + i], q_expected[t * q_heads * dim + i], 1e-6);
  }
}

TEST(RopeRef, ScoresDependOnlyOnRelativePosition) {
  const int dim = 32;
  const auto inv_freq = kernels::rope_inv_freq(dim, 10000.0, RopeScaling{});
  const auto q0 = random_floats(dim, 23), k0 = random_floats(dim, 24);
  auto score = [&](int32_t pq, int32_t pk) {
    auto q = q0, k = k0;
    kernels::rope_ref(q.data(), nullptr, 1, 1, 0, dim, &pq, inv_freq.data());
    kernels::rope_ref(k.data(), nullptr, 1, 1, 0, dim, &pk, inv_freq.data());
    double s = 0;
    for (int i = 0; i < dim; ++i) s += double(q[i]) * k[i];
    return s;
  };
  EXPECT_NEAR(score(10, 3), score(110, 103), 1e-4);
  EXPECT_NEAR(score(7, 7), score(0, 0), 1e-4);
  EXPECT_GT(std::abs(score(10, 3) - score(10, 9)), 1e-3);  // but it does depend on the distance
}

}  // namespace
}  // namespace tessera
