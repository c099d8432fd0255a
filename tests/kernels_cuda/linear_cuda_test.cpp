// launch_linear_few_rows (decode GEMV) against linear_ref, FP32 and BF16, rows 1..kMaxFewRows, Llama-3.1-8B shapes.
#include "kernels/linear.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera {
namespace {

using namespace test;
using kernels::cuda::kMaxFewRows;
using kernels::cuda::launch_linear_few_rows;
using kernels::cuda::linear_few_rows_split;

template <class T>
class LinearFewRowsCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(LinearFewRowsCuda, Types);

// Uniform values in [-1, 1) as T stores them. A 64-bit LCG rather than std::mt19937: the Llama gate/up weight has
// 117M elements and the test must stay fast.
template <class T>
std::vector<float> stored_values(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float uniform = static_cast<float>(static_cast<int32_t>(state >> 32)) * (1.0f / 2147483648.0f);
    f = to_f32(from_f32<T>(uniform));
  }
  return v;
}

// kMaxFewRows activation rows and one weight matrix, on the host (the values T holds) and on the device.
template <class T>
struct Problem {
  int64_t in, out;
  std::vector<float> x, weight;
  DeviceBuffer<T> d_x, d_weight;
  Problem(int64_t in_features, int64_t out_features, uint64_t seed)
      : in(in_features),
        out(out_features),
        x(stored_values<T>(kMaxFewRows * in_features, seed)),
        weight(stored_values<T>(in_features * out_features, seed + 1)),
        d_x(convert<T>(x)),
        d_weight(convert<T>(weight)) {}

  std::vector<float> expected(int64_t rows, int64_t first_row = 0) const {
    std::vector<float> y(rows * out);
    kernels::linear_ref(x.data() + first_row * in, weight.data(), y.data(), rows, in, out);
    return y;
  }
};

constexpr size_t kGuardBytes = 64;  // poisoned bytes after y that the kernel must leave alone

// Raw output bytes of one launch over x rows [first_row, first_row + rows); fails the test if the launch fails or
// anything past y was written.
template <class T>
std::vector<unsigned char> run_bytes(const Problem<T>& p, int64_t rows, bool y_f32, int64_t first_row = 0) {
  const size_t y_bytes = static_cast<size_t>(rows * p.out) * (y_f32 ? sizeof(float) : sizeof(T));
  DeviceBuffer<unsigned char> d_y(y_bytes + kGuardBytes);
  const cudaError_t launched = launch_linear_few_rows<T>(p.d_x.get() + first_row * p.in, p.d_weight.get(), d_y.get(),
                                                         y_f32, rows, p.in, p.out, nullptr);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  const cudaError_t synced = cudaDeviceSynchronize();
  EXPECT_EQ(synced, cudaSuccess) << cudaGetErrorString(synced);
  std::vector<unsigned char> bytes = d_y.download();
  EXPECT_TRUE(std::all_of(bytes.begin() + y_bytes, bytes.end(), [](unsigned char b) { return b == 0xff; }))
      << "wrote past y (rows " << rows << ", out " << p.out << ")";
  bytes.resize(y_bytes);
  return bytes;
}

template <class T>
std::vector<float> run(const Problem<T>& p, int64_t rows, bool y_f32) {
  const std::vector<unsigned char> bytes = run_bytes(p, rows, y_f32);
  if (y_f32) {
    std::vector<float> y(rows * p.out);
    std::memcpy(y.data(), bytes.data(), bytes.size());
    return y;
  }
  std::vector<T> y(rows * p.out);
  std::memcpy(y.data(), bytes.data(), bytes.size());
  return to_f32(y);
}

template <class T>
void expect_matches(const Problem<T>& p, std::initializer_list<int64_t> row_counts, bool y_f32) {
  for (const int64_t rows : row_counts) {
    const double error = relative_error(run(p, rows, y_f32), p.expected(rows));
    EXPECT_LE(error, tolerance<T>()) << "in " << p.in << ", out " << p.out << ", rows " << rows << ", y_f32 " << y_f32;
  }
}

constexpr std::initializer_list<int64_t> kAllRows = {1, 2, 3, 4, 5, 6, 7, 8};

TYPED_TEST(LinearFewRowsCuda, SmallAndOddShapesMatchCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t in, out;
  };
  // 8 / 24: fewer vectors than a warp; 264 and 1000: not a multiple of 256 (partial tail steps); 4104: full steps
  // then a one-vector tail; odd `out` leaves the last warp with fewer rows than it owns.
  for (const Shape s : {Shape{64, 256}, Shape{8, 5}, Shape{24, 1}, Shape{264, 37}, Shape{1000, 67}, Shape{4104, 130}}) {
    const Problem<T> p(s.in, s.out, static_cast<uint64_t>(s.in * 131 + s.out));
    expect_matches(p, kAllRows, /*y_f32=*/false);
    expect_matches(p, {1, 4, 8}, /*y_f32=*/true);
  }
}

TYPED_TEST(LinearFewRowsCuda, LlamaQkvShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const Problem<T> qkv(4096, 6144, 11);  // Llama-3.1-8B fused QKV: 32*128 + 2*8*128 outputs
  expect_matches(qkv, kAllRows, false);
}

TYPED_TEST(LinearFewRowsCuda, LlamaDownShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const Problem<T> down(14336, 4096, 12);  // down projection: the longest rows
  expect_matches(down, {1, 2, 5, 8}, false);
}

TYPED_TEST(LinearFewRowsCuda, LlamaOutputProjectionShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const Problem<T> o_proj(4096, 4096, 16);  // attention output projection: the fewest outputs
  expect_matches(o_proj, {1, 8}, false);
}

// The few-output Llama shapes split each row over several warps; the wide ones do not. (The split only changes
// speed and the summation order; the reference tests above cover both kinds.)
TYPED_TEST(LinearFewRowsCuda, FewOutputShapesSplitRowsOverWarps) {
  using T = TypeParam;
  constexpr int64_t kBytes = sizeof(T);
  EXPECT_GT(linear_few_rows_split(4096, 6144, kBytes), 1);   // QKV
  EXPECT_GT(linear_few_rows_split(4096, 4096, kBytes), 1);   // O
  EXPECT_GT(linear_few_rows_split(14336, 4096, kBytes), 1);  // down
  EXPECT_EQ(linear_few_rows_split(4096, 2 * 14336, kBytes), 1);  // gate|up
  EXPECT_EQ(linear_few_rows_split(4096, 128256, kBytes), 1);     // LM head
  EXPECT_EQ(linear_few_rows_split(64, 256, kBytes), 1);          // rows too short to share
  for (const int64_t in : {int64_t{8}, int64_t{4104}, int64_t{14336}}) {
    for (const int64_t out : {int64_t{1}, int64_t{300}, int64_t{6144}, int64_t{16400}}) {
      const int split = linear_few_rows_split(in, out, kBytes);
      EXPECT_TRUE(split == 1 || split == 2 || split == 4) << "in " << in << ", out " << out;
    }
  }
}

TYPED_TEST(LinearFewRowsCuda, LlamaGateUpShapeMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const Problem<T> gate_up(4096, 2 * 14336, 13);  // fused gate|up
  expect_matches(gate_up, {1, 5}, false);
}

// FP32 logits over the Llama-3 vocabulary (the largest grid). A short `in` keeps the host side fast; the long rows
// are covered above.
TYPED_TEST(LinearFewRowsCuda, LmHeadFp32LogitsMatchCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const Problem<T> lm_head(512, 128256, 14);
  expect_matches(lm_head, {1, 3}, /*y_f32=*/true);
}

// A row's result must not depend on the rows launched with it (served tokens equal offline tokens): row k of an
// 8-row launch equals, bit for bit, a 1-row launch of x row k (which also runs from an offset x pointer).
// Covers a shape whose rows are split over warps (4104 x 300, with a tail step) and one that is not (1000 x 16400).
TYPED_TEST(LinearFewRowsCuda, EachRowIsBitIdenticalWhateverTheRowCount) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t in, out;
  };
  ASSERT_GT(linear_few_rows_split(4104, 300, sizeof(T)), 1);
  ASSERT_EQ(linear_few_rows_split(1000, 16400, sizeof(T)), 1);
  for (const Shape s : {Shape{4104, 300}, Shape{1000, 16400}}) {
    const Problem<T> p(s.in, s.out, 15);
    for (const bool y_f32 : {false, true}) {
      const std::vector<unsigned char> all = run_bytes(p, kMaxFewRows, y_f32);
      const size_t row_bytes = static_cast<size_t>(p.out) * (y_f32 ? sizeof(float) : sizeof(T));
      ASSERT_EQ(all.size(), row_bytes * kMaxFewRows);
      for (int64_t k = 0; k < kMaxFewRows; ++k) {
        const std::vector<unsigned char> alone = run_bytes(p, 1, y_f32, k);
        ASSERT_EQ(alone.size(), row_bytes);
        EXPECT_EQ(std::memcmp(alone.data(), all.data() + k * row_bytes, row_bytes), 0)
            << "out " << p.out << ", row " << k << ", y_f32 " << y_f32;
      }
      // Rows 2..4 as a 3-row launch (another kernel instantiation) agree too.
      const std::vector<unsigned char> three = run_bytes(p, 3, y_f32, 2);
      EXPECT_EQ(std::memcmp(three.data(), all.data() + 2 * row_bytes, 3 * row_bytes), 0)
          << "out " << p.out << ", y_f32 " << y_f32;
    }
  }
}

// Argument errors are reported before anything touches the GPU, so these run without one. The pointers are host
// addresses that the launcher never dereferences.
TYPED_TEST(LinearFewRowsCuda, RejectsUnsupportedArgumentsWithoutLaunching) {
  using T = TypeParam;
  constexpr int64_t kPerVec = 16 / sizeof(T);
  alignas(16) const T x[64] = {};
  alignas(16) const T w[64] = {};
  alignas(16) T y[64] = {};
  auto launch = [&](const T* xp, const T* wp, void* yp, int64_t rows, int64_t in, int64_t out) {
    return launch_linear_few_rows<T>(xp, wp, yp, false, rows, in, out, nullptr);
  };
  EXPECT_EQ(launch(x, w, y, 0, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, -1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, kMaxFewRows + 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, 1, kPerVec + 2, 4), cudaErrorInvalidValue);  // in not a whole number of 16-byte vectors
  EXPECT_EQ(launch(x, w, y, 1, 0, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, y, 1, kPerVec, 0), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x + 1, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);  // misaligned x
  EXPECT_EQ(launch(x, w + 1, y, 1, kPerVec, 4), cudaErrorInvalidValue);  // misaligned weight
  EXPECT_EQ(launch(nullptr, w, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, nullptr, y, 1, kPerVec, 4), cudaErrorInvalidValue);
  EXPECT_EQ(launch(x, w, nullptr, 1, kPerVec, 4), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tessera
