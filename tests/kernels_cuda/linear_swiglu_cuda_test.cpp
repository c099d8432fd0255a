// The few-row GEMV's SwiGLU epilogue (FewRowsEpilogue::kSwigluPairs: the gate/up projection over a paired weight
// stores silu(gate) * up, not the pair) against linear_ref + swiglu_ref, and bit for bit against the plain GEMV
// followed by launch_swiglu; also with the RMSNorm fused in front; PDL and the L2-prefetch hint leave results
// unchanged.
#include "kernels/linear.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/swiglu.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera {
namespace {

using namespace test;
using kernels::cuda::FewRowsEpilogue;
using kernels::cuda::kMaxFewRows;
using kernels::cuda::L2Prefetch;
using kernels::cuda::launch_linear_few_rows;
using kernels::cuda::launch_swiglu;

template <class T>
class LinearSwigluCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(LinearSwigluCuda, Types);

// Uniform values in [lo, hi) as T stores them (a 64-bit LCG: the Llama gate/up weight has 117M elements).
template <class T>
std::vector<float> stored_values(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float unit = static_cast<float>(state >> 40) * (1.0f / 16777216.0f);
    f = to_f32(from_f32<T>(lo + (hi - lo) * unit));
  }
  return v;
}

// kMaxFewRows activation rows x [in] and a paired gate/up weight [2 * inter][in] (row 2j = gate j, 2j+1 = up j).
template <class T>
struct GateUpProblem {
  int64_t in, inter;
  std::vector<float> x, weight;
  DeviceBuffer<T> d_x, d_weight;
  GateUpProblem(int64_t in_features, int64_t inter_size, uint64_t seed)
      : in(in_features),
        inter(inter_size),
        x(stored_values<T>(kMaxFewRows * in_features, seed, -1.0f, 1.0f)),
        weight(stored_values<T>(2 * inter_size * in_features, seed + 1, -0.2f, 0.2f)),
        d_x(convert<T>(x)),
        d_weight(convert<T>(weight)) {}

  // linear_ref, the gate and up values rounded to T (as a stored gate/up row), then swiglu_ref per row.
  std::vector<float> expected(int64_t rows) const {
    std::vector<float> pairs(rows * 2 * inter);
    kernels::linear_ref(x.data(), weight.data(), pairs.data(), rows, in, 2 * inter);
    pairs = rounded<T>(pairs);
    std::vector<float> gate(inter), up(inter), act(rows * inter);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < inter; ++j) {
        gate[j] = pairs[(r * inter + j) * 2];
        up[j] = pairs[(r * inter + j) * 2 + 1];
      }
      kernels::swiglu_ref(gate.data(), up.data(), act.data() + r * inter, inter);
    }
    return act;
  }
};

// The epilogue; also checks that nothing is written past the activations.
template <class T>
std::vector<T> fused(const GateUpProblem<T>& p, int64_t rows, const T* x = nullptr, bool pdl = false,
                     L2Prefetch prefetch = {}) {
  const size_t elements = static_cast<size_t>(rows * p.inter);
  DeviceBuffer<T> d_y(elements + 32);
  EXPECT_EQ(cudaMemset(d_y.get(), 0xff, (elements + 32) * sizeof(T)), cudaSuccess);
  const TestStream stream;
  const cudaError_t launched =
      launch_linear_few_rows<T>(x != nullptr ? x : p.d_x.get(), p.d_weight.get(), d_y.get(), false, rows, p.in,
                                2 * p.inter, stream.get(), pdl, prefetch, FewRowsEpilogue::kSwigluPairs);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  EXPECT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
  std::vector<T> all = d_y.download();
  const auto past = reinterpret_cast<const unsigned char*>(all.data() + elements);
  EXPECT_TRUE(std::all_of(past, past + 32 * sizeof(T), [](unsigned char b) { return b == 0xff; })) << "wrote past y";
  all.resize(elements);
  return all;
}

// The plain GEMV into a [rows][2 * inter] buffer, then launch_swiglu over it.
template <class T>
std::vector<T> unfused(const GateUpProblem<T>& p, int64_t rows, const T* x = nullptr) {
  DeviceBuffer<T> d_pairs(rows * 2 * p.inter), d_act(rows * p.inter);
  EXPECT_EQ(launch_linear_few_rows<T>(x != nullptr ? x : p.d_x.get(), p.d_weight.get(), d_pairs.get(), false, rows,
                                      p.in, 2 * p.inter, nullptr),
            cudaSuccess);
  EXPECT_EQ(launch_swiglu<T>(d_pairs.get(), d_act.get(), rows, p.inter, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return d_act.download();
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TYPED_TEST(LinearSwigluCuda, MatchesCpuReferenceAndTheTwoKernelsItReplaces) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t in, inter;
  };
  // in 8: one vector per row; 264 and 1000: partial last chunks; inter 5, 37, 67: groups of 4 rows with a missing
  // pair at the end.
  for (const Shape s : {Shape{8, 5}, Shape{264, 37}, Shape{1000, 67}, Shape{4104, 130}}) {
    const GateUpProblem<T> p(s.in, s.inter, static_cast<uint64_t>(s.in * 7 + s.inter));
    for (int64_t rows = 1; rows <= kMaxFewRows; ++rows) {
      const std::vector<T> got = fused(p, rows);
      EXPECT_LE(relative_error(to_f32(got), p.expected(rows)), tolerance<T>())
          << "in " << s.in << ", inter " << s.inter << ", rows " << rows;
      EXPECT_TRUE(same_bits(got, unfused(p, rows))) << "in " << s.in << ", inter " << s.inter << ", rows " << rows;
    }
  }
}

TYPED_TEST(LinearSwigluCuda, LlamaGateUpShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const GateUpProblem<T> gate_up(4096, 14336, 21);  // Llama-3.1-8B: hidden 4096 -> 2 x intermediate 14336
  for (const int64_t rows : {1, 2, 5, 8}) {
    const std::vector<T> got = fused(gate_up, rows);
    EXPECT_LE(relative_error(to_f32(got), gate_up.expected(rows)), tolerance<T>()) << "rows " << rows;
    EXPECT_TRUE(same_bits(got, unfused(gate_up, rows))) << "rows " << rows;
  }
}

// Each row is bit-identical whatever the row count (8 rows at once vs each alone from an offset x pointer).
TYPED_TEST(LinearSwigluCuda, EachRowIsBitIdenticalWhateverTheRowCount) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const GateUpProblem<T> p(4104, 300, 22);
  const std::vector<T> all = fused(p, kMaxFewRows);
  for (int64_t k = 0; k < kMaxFewRows; ++k) {
    const std::vector<T> alone = fused(p, 1, p.d_x.get() + k * p.in);
    EXPECT_EQ(std::memcmp(alone.data(), all.data() + k * p.inter, p.inter * sizeof(T)), 0) << "row " << k;
  }
}

// Programmatic dependent launch and the L2 prefetch hint change timing only: same bits.
TYPED_TEST(LinearSwigluCuda, PdlAndL2PrefetchGiveIdenticalResults) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const GateUpProblem<T> p(1000, 67, 23);
  DeviceBuffer<T> other(1 << 16);  // some other "next weight" to prefetch
  for (const int64_t rows : {1, 2, 3, 8}) {
    const std::vector<T> plain = fused(p, rows);
    const T* own_x = nullptr;  // the problem's x
    EXPECT_TRUE(same_bits(plain, fused(p, rows, own_x, /*pdl=*/true)));
    EXPECT_TRUE(same_bits(plain, fused(p, rows, own_x, true, L2Prefetch{other.get(), other.size() * sizeof(T)})));
  }
}

// The RMSNorm fused in front as well (launch_linear_few_rows_norm with the epilogue) equals add_rms_norm, the plain
// GEMV and launch_swiglu, bit for bit.
TYPED_TEST(LinearSwigluCuda, FusedNormWithTheEpilogueEqualsTheSeparateKernels) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  namespace k = kernels::cuda;
  constexpr float kEps = 1e-5f;
  const int64_t in = 4096, inter = 520;
  const GateUpProblem<T> p(in, inter, 24);
  const DeviceBuffer<T> residual(convert<T>(stored_values<T>(kMaxFewRows * in, 25, -3.0f, 3.0f)));
  const DeviceBuffer<T> delta(convert<T>(stored_values<T>(kMaxFewRows * in, 26, -1.0f, 1.0f)));
  const DeviceBuffer<T> norm_weight(convert<T>(stored_values<T>(in, 27, 0.5f, 1.5f)));
  for (const int64_t rows : {1, 2}) {
    if (!k::linear_few_rows_norm_fits(rows, in, sizeof(T))) GTEST_SKIP() << "the rows do not fit in shared memory";
    DeviceBuffer<T> res_copy(convert<T>(to_f32(residual.download()))), x(rows * in), act(rows * inter);
    DeviceBuffer<T> res_out(rows * in);
    ASSERT_EQ(k::launch_add_rms_norm<T>(res_copy.get(), delta.get(), norm_weight.get(), x.get(), rows, in, kEps,
                                        nullptr),
              cudaSuccess);
    const std::vector<T> separate = unfused(p, rows, x.get());
    ASSERT_EQ(k::launch_linear_few_rows_norm<T>(residual.get(), delta.get(), res_out.get(), norm_weight.get(), kEps,
                                                p.d_weight.get(), act.get(), false, rows, in, 2 * inter, nullptr,
                                                false, {}, FewRowsEpilogue::kSwigluPairs),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_TRUE(same_bits(act.download(), separate)) << "rows " << rows;
    std::vector<T> updated = res_copy.download();
    updated.resize(static_cast<size_t>(rows * in));  // the rows the kernels ran on
    EXPECT_TRUE(same_bits(res_out.download(), updated)) << "rows " << rows;
  }
}

// Argument errors are reported before anything touches the GPU (host addresses, never dereferenced).
TYPED_TEST(LinearSwigluCuda, RejectsUnsupportedArgumentsWithoutLaunching) {
  using T = TypeParam;
  constexpr int64_t kPerVec = 16 / sizeof(T);
  alignas(16) const T x[64] = {};
  alignas(16) const T w[64] = {};
  alignas(16) T y[64] = {};
  auto launch = [&](const T* xp, const T* wp, void* yp, int64_t rows, int64_t in, int64_t out, bool y_f32 = false) {
    return launch_linear_few_rows<T>(xp, wp, yp, y_f32, rows, in, out, nullptr, false, {},
                                     FewRowsEpilogue::kSwigluPairs);
  };
  EXPECT_EQ(launch(x, w, y, 1, kPerVec, 3), cudaErrorInvalidValue) << "odd out: not whole (gate, up) pairs";
  EXPECT_EQ(launch(x, w, y, 1, kPerVec, 4, /*y_f32=*/true), cudaErrorInvalidValue) << "activations are stored as T";
  EXPECT_EQ(launch(x, w, y, 0, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, kMaxFewRows + 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, 1, kPerVec + 1, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x + 1, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w + 1, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(nullptr, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, nullptr, 1, kPerVec, 4), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tessera
