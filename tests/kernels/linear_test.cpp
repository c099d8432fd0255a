// linear_ref (y = x W^T) and lm_head_ref against naive double-precision matmuls, over shapes that hit every
// register-block remainder, the in_features chunking and the single-row (decode) path.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/linear.hpp"
#include "kernels/lm_head.hpp"
#include "tests/kernels/random_inputs.hpp"

namespace tessera {
namespace {

using test::expect_close;
using test::random_floats;

std::vector<double> naive_linear(const std::vector<float>& x, const std::vector<float>& w, int64_t rows,
                                 int64_t in, int64_t out) {
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t k = 0; k < in; ++k) s += double(x[r * in + k]) * w[o * in + k];
      y[r * out + o] = s;
    }
  return y;
}

struct LinearShape {
  int64_t rows, in, out;
};

class LinearRefShapes : public ::testing::TestWithParam<LinearShape> {};

TEST_P(LinearRefShapes, MatchesNaive) {
  const auto [rows, in, out] = GetParam();
  const auto x = random_floats(rows * in, 11);
  const auto w = random_floats(out * in, 12);
  std::vector<float> y(rows * out, 123.0f);  // stale contents must be overwritten
  kernels::linear_ref(x.data(), w.data(), y.data(), rows, in, out);
  // Sums of `in` products of magnitude <= 1: allow FP32 rounding growing like sqrt(in).
  expect_close(y, naive_linear(x, w, rows, in, out), 1e-5, 2e-6 * in);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearRefShapes,
                         ::testing::Values(LinearShape{1, 1, 1}, LinearShape{1, 7, 5}, LinearShape{1, 300, 131},
                                           LinearShape{2, 9, 3}, LinearShape{3, 17, 7}, LinearShape{4, 8, 4},
                                           LinearShape{5, 33, 10}, LinearShape{15, 64, 65},
                                           LinearShape{17, 257, 67}, LinearShape{33, 513, 130},
                                           LinearShape{70, 100, 129}, LinearShape{300, 20, 17}));

// A row's output must not depend on the other rows of the batch, bit for bit: served requests then get exactly the
// tokens they get alone (greedy near-ties included).
TEST(LinearRef, BatchInvariantBitForBit) {
  const int64_t in = 203, out = 131;
  const auto w = random_floats(out * in, 21);
  for (int64_t rows : {2, 3, 4, 7, 64}) {
    const auto x = random_floats(rows * in, 22 + static_cast<uint32_t>(rows));
    std::vector<float> batched(rows * out);
    kernels::linear_ref(x.data(), w.data(), batched.data(), rows, in, out);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> alone(out);
      kernels::linear_ref(x.data() + r * in, w.data(), alone.data(), 1, in, out);
      for (int64_t o = 0; o < out; ++o) {
        ASSERT_EQ(alone[o], batched[r * out + o]) << "rows " << rows << " row " << r << " output " << o;
      }
    }
  }
}

TEST(LmHeadRef, GathersRowsThenProjects) {
  const int64_t tokens = 9, hidden = 37, vocab = 53;
  const auto h = random_floats(tokens * hidden, 13);
  const auto w = random_floats(vocab * hidden, 14);
  const std::vector<int32_t> rows = {8, 0, 3};
  std::vector<float> gathered(rows.size() * hidden), logits(rows.size() * vocab);
  kernels::lm_head_ref(h.data(), hidden, rows, w.data(), vocab, gathered.data(), logits.data());
  const auto all = naive_linear(h, w, tokens, hidden, vocab);
  std::vector<double> expected;
  for (int32_t r : rows) expected.insert(expected.end(), all.begin() + r * vocab, all.begin() + (r + 1) * vocab);
  expect_close(logits, expected, 1e-5, 1e-5);
}

}  // namespace
}  // namespace tessera
