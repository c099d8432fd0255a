// launch_linear_few_rows_swiglu (down projection with SiLU x up fused in) against swiglu_ref + linear_ref, and bit for
// bit against launch_swiglu followed by launch_linear_few_rows; PDL and the L2-prefetch hint leave results unchanged.
#include "kernels/linear.hpp"
#include "kernels/swiglu.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera {
namespace {

using namespace test;
using kernels::cuda::kMaxFewRows;
using kernels::cuda::L2Prefetch;
using kernels::cuda::launch_linear_few_rows;
using kernels::cuda::launch_linear_few_rows_swiglu;
using kernels::cuda::launch_swiglu;

template <class T>
class LinearSwigluCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(LinearSwigluCuda, Types);

// Uniform values in [lo, hi) as T stores them (a 64-bit LCG: the Llama down weight has 59M elements).
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

// kMaxFewRows gate|up rows ([2 * inter] each) and a down weight [out][inter], on the host and on the device.
template <class T>
struct DownProblem {
  int64_t inter, out;
  std::vector<float> gate_up, weight;
  DeviceBuffer<T> d_gate_up, d_weight;
  DownProblem(int64_t inter_size, int64_t out_features, uint64_t seed)
      : inter(inter_size),
        out(out_features),
        gate_up(stored_values<T>(kMaxFewRows * 2 * inter_size, seed, -6.0f, 6.0f)),
        weight(stored_values<T>(inter_size * out_features, seed + 1, -1.0f, 1.0f)),
        d_gate_up(convert<T>(gate_up)),
        d_weight(convert<T>(weight)) {}

  // swiglu_ref per row, the activations rounded to T (as the GPU stores / uses them), then linear_ref.
  std::vector<float> expected(int64_t rows) const {
    std::vector<float> act(rows * inter);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = gate_up.data() + r * 2 * inter;
      kernels::swiglu_ref(row, row + inter, act.data() + r * inter, inter);
    }
    act = rounded<T>(act);
    std::vector<float> y(rows * out);
    kernels::linear_ref(act.data(), weight.data(), y.data(), rows, inter, out);
    return y;
  }
};

template <class T>
std::vector<T> fused(const DownProblem<T>& p, int64_t rows, bool pdl = false, L2Prefetch prefetch = {}) {
  DeviceBuffer<T> d_y(rows * p.out);
  const TestStream stream;
  const cudaError_t launched = launch_linear_few_rows_swiglu<T>(p.d_gate_up.get(), p.d_weight.get(), d_y.get(), false,
                                                                rows, p.inter, p.out, stream.get(), pdl, prefetch);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  EXPECT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
  return d_y.download();
}

// launch_swiglu into a buffer, then launch_linear_few_rows over it.
template <class T>
std::vector<T> unfused(const DownProblem<T>& p, int64_t rows) {
  DeviceBuffer<T> d_act(rows * p.inter), d_y(rows * p.out);
  EXPECT_EQ(launch_swiglu<T>(p.d_gate_up.get(), d_act.get(), rows, p.inter, nullptr), cudaSuccess);
  EXPECT_EQ(launch_linear_few_rows<T>(d_act.get(), p.d_weight.get(), d_y.get(), false, rows, p.inter, p.out, nullptr),
            cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return d_y.download();
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TYPED_TEST(LinearSwigluCuda, MatchesCpuReferenceAndTheTwoKernelsItReplaces) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t inter, out;
  };
  // 8: one vector per row; 264 and 1000: partial last chunks; 37 and 130 outputs: a last group with missing rows.
  for (const Shape s : {Shape{8, 5}, Shape{264, 37}, Shape{1000, 67}, Shape{4104, 130}}) {
    const DownProblem<T> p(s.inter, s.out, static_cast<uint64_t>(s.inter * 7 + s.out));
    for (int64_t rows = 1; rows <= kMaxFewRows; ++rows) {
      const std::vector<T> got = fused(p, rows);
      EXPECT_LE(relative_error(to_f32(got), p.expected(rows)), tolerance<T>())
          << "inter " << s.inter << ", out " << s.out << ", rows " << rows;
      EXPECT_TRUE(same_bits(got, unfused(p, rows))) << "inter " << s.inter << ", out " << s.out << ", rows " << rows;
    }
  }
}

TYPED_TEST(LinearSwigluCuda, LlamaDownShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const DownProblem<T> down(14336, 4096, 21);  // Llama-3.1-8B: intermediate 14336 -> hidden 4096
  for (const int64_t rows : {1, 2, 5, 8}) {
    const std::vector<T> got = fused(down, rows);
    EXPECT_LE(relative_error(to_f32(got), down.expected(rows)), tolerance<T>()) << "rows " << rows;
    EXPECT_TRUE(same_bits(got, unfused(down, rows))) << "rows " << rows;
  }
}

// Each row is bit-identical whatever the row count (8 rows at once vs each alone from an offset gate|up pointer).
TYPED_TEST(LinearSwigluCuda, EachRowIsBitIdenticalWhateverTheRowCount) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const DownProblem<T> p(4104, 300, 22);
  const std::vector<T> all = fused(p, kMaxFewRows);
  for (int64_t k = 0; k < kMaxFewRows; ++k) {
    DeviceBuffer<T> d_y(p.out);
    ASSERT_EQ(launch_linear_few_rows_swiglu<T>(p.d_gate_up.get() + k * 2 * p.inter, p.d_weight.get(), d_y.get(), false,
                                               1, p.inter, p.out, nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<T> alone = d_y.download();
    EXPECT_EQ(std::memcmp(alone.data(), all.data() + k * p.out, p.out * sizeof(T)), 0) << "row " << k;
  }
}

// Programmatic dependent launch and the L2 prefetch hint change timing only: same bits, also for FP32 logits.
TYPED_TEST(LinearSwigluCuda, PdlAndL2PrefetchGiveIdenticalResults) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const DownProblem<T> p(1000, 67, 23);
  DeviceBuffer<T> other(1 << 16);  // some other "next weight" to prefetch
  for (const int64_t rows : {1, 2, 3, 8}) {
    const std::vector<T> plain = fused(p, rows);
    EXPECT_TRUE(same_bits(plain, fused(p, rows, /*pdl=*/true)));
    EXPECT_TRUE(same_bits(plain, fused(p, rows, true, L2Prefetch{other.get(), other.size() * sizeof(T)})));
    // Misaligned or ragged ranges are a hint: dropped or rounded, never an error.
    EXPECT_TRUE(same_bits(plain, fused(p, rows, false, L2Prefetch{other.get() + 1, 100})));
    EXPECT_TRUE(same_bits(plain, fused(p, rows, false, L2Prefetch{other.get(), 17})));
  }
  // The plain GEMV with FP32 output, every row count.
  const std::vector<float> x = stored_values<T>(kMaxFewRows * 1000, 24, -1.0f, 1.0f);
  DeviceBuffer<T> d_x(convert<T>(x));
  for (int64_t rows = 1; rows <= kMaxFewRows; ++rows) {
    std::vector<float> results[3];
    for (int variant = 0; variant < 3; ++variant) {
      DeviceBuffer<float> d_y(rows * p.out);
      const TestStream stream;
      const L2Prefetch prefetch = variant == 2 ? L2Prefetch{other.get(), 4096} : L2Prefetch{};
      ASSERT_EQ(launch_linear_few_rows<T>(d_x.get(), p.d_weight.get(), d_y.get(), true, rows, 1000, p.out,
                                          stream.get(), variant > 0, prefetch),
                cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
      results[variant] = d_y.download();
    }
    EXPECT_TRUE(same_bits(results[0], results[1])) << "rows " << rows;
    EXPECT_TRUE(same_bits(results[0], results[2])) << "rows " << rows;
  }
}

// Argument errors are reported before anything touches the GPU (host addresses, never dereferenced).
TYPED_TEST(LinearSwigluCuda, RejectsUnsupportedArgumentsWithoutLaunching) {
  using T = TypeParam;
  constexpr int64_t kPerVec = 16 / sizeof(T);
  alignas(16) const T gu[64] = {};
  alignas(16) const T w[64] = {};
  alignas(16) T y[64] = {};
  auto launch = [&](const T* gp, const T* wp, void* yp, int64_t rows, int64_t inter, int64_t out) {
    return launch_linear_few_rows_swiglu<T>(gp, wp, yp, false, rows, inter, out, nullptr);
  };
  EXPECT_EQ(launch(gu, w, y, 0, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu, w, y, kMaxFewRows + 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu, w, y, 1, kPerVec + 1, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu, w, y, 1, kPerVec, 0), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu + 1, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu, w + 1, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(nullptr, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(gu, w, nullptr, 1, kPerVec, 4), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tessera
