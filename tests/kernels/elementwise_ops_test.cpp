// Embedding, RMSNorm, fused residual-add + RMSNorm and SwiGLU against naive double-precision versions.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/common/error.hpp"
#include "kernels/embedding.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/swiglu.hpp"
#include "tests/kernels/random_inputs.hpp"

namespace tessera {
namespace {

using test::expect_close;
using test::random_floats;

TEST(EmbeddingRef, CopiesTheRowsOfTheGivenIds) {
  const int64_t vocab = 37, hidden = 13;
  const auto table = random_floats(vocab * hidden, 1);
  const std::vector<int32_t> ids = {5, 0, 36, 5, 17};
  std::vector<float> out(ids.size() * hidden);
  kernels::embedding_ref(table.data(), vocab, hidden, ids, out.data());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t i = 0; i < hidden; ++i) EXPECT_EQ(out[t * hidden + i], table[ids[t] * hidden + i]);
}

TEST(EmbeddingRef, RejectsOutOfRangeIdsWithoutWriting) {
  const int64_t vocab = 10, hidden = 4;
  const auto table = random_floats(vocab * hidden, 2);
  for (int32_t bad : {-1, 10, 1000}) {
    const std::vector<int32_t> ids = {1, bad};
    std::vector<float> out(ids.size() * hidden, 7.0f);
    EXPECT_THROW(kernels::embedding_ref(table.data(), vocab, hidden, ids, out.data()), Error);
    for (float v : out) EXPECT_EQ(v, 7.0f);
  }
}

std::vector<double> naive_rms_norm(const std::vector<float>& x, const std::vector<float>& w, int64_t rows,
                                   int64_t dim, double eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double scale = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = x[r * dim + i] * scale * w[i];
  }
  return out;
}

TEST(RmsNormRef, MatchesNaive) {
  for (auto [rows, dim] : {std::pair<int64_t, int64_t>{1, 7}, {3, 64}, {17, 129}, {33, 1000}}) {
    const auto x = random_floats(rows * dim, 3, -3, 3);
    const auto w = random_floats(dim, 4, 0.5, 1.5);
    std::vector<float> out(rows * dim);
    kernels::rms_norm_ref(x.data(), w.data(), out.data(), rows, dim, 1e-5f);
    expect_close(out, naive_rms_norm(x, w, rows, dim, 1e-5), 1e-5, 1e-6);
  }
}

TEST(RmsNormRef, EpsilonMattersForTinyInputs) {
  const std::vector<float> x(8, 1e-4f), w(8, 1.0f);
  std::vector<float> out(8);
  kernels::rms_norm_ref(x.data(), w.data(), out.data(), 1, 8, 1e-2f);
  expect_close(out, naive_rms_norm(x, w, 1, 8, 1e-2), 1e-5, 1e-9);
  EXPECT_LT(out[0], 0.01f);  // far from the eps-free value 1.0
}

TEST(AddRmsNormRef, UpdatesResidualAndNormalizesTheSum) {
  const int64_t rows = 5, dim = 77;
  auto residual = random_floats(rows * dim, 5, -2, 2);
  const auto x = random_floats(rows * dim, 6, -2, 2);
  const auto w = random_floats(dim, 7, 0.5, 1.5);
  std::vector<float> sum(rows * dim);
  std::vector<double> sum_d(rows * dim);
  for (size_t i = 0; i < sum.size(); ++i) {
    sum[i] = residual[i] + x[i];
    sum_d[i] = double(residual[i]) + x[i];
  }
  std::vector<float> out(rows * dim);
  kernels::add_rms_norm_ref(residual.data(), x.data(), w.data(), out.data(), rows, dim, 1e-6f);
  expect_close(residual, sum_d, 1e-6, 1e-7);
  expect_close(out, naive_rms_norm(sum, w, rows, dim, 1e-6), 1e-5, 1e-6);
}

TEST(SwigluRef, MatchesNaiveIncludingInPlace) {
  for (int64_t n : {1, 9, 100003}) {
    const auto gate = random_floats(n, 8, -8, 8);
    const auto up = random_floats(n, 9, -2, 2);
    std::vector<double> expected(n);
    for (int64_t i = 0; i < n; ++i) expected[i] = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
    std::vector<float> out(n);
    kernels::swiglu_ref(gate.data(), up.data(), out.data(), n);
    expect_close(out, expected, 1e-5, 1e-6);
    auto in_place = gate;
    kernels::swiglu_ref(in_place.data(), up.data(), in_place.data(), n);
    EXPECT_EQ(in_place, out);
  }
}

}  // namespace
}  // namespace tessera
