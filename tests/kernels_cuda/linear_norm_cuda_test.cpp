// launch_linear_few_rows_norm (RMSNorm, after the residual add, fused into the decode GEMV): bit-identical to
// launch_add_rms_norm / launch_rms_norm followed by launch_linear_few_rows (y and the new residual), close to the CPU
// oracle (add_rms_norm_ref, then linear_ref on the T-rounded x), FP32 and BF16, rows 1..8, odd and Llama-3.1-8B
// shapes; with programmatic dependent launch in a two-layer residual ping-pong chain, plain vs PDL vs a captured
// graph replayed with new inputs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/linear.hpp"
#include "kernels/rms_norm.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;
namespace k = kernels::cuda;

template <class T>
class LinearNormCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(LinearNormCuda, Types);

constexpr float kEps = 1e-5f;

template <class T>
std::vector<unsigned char> bytes_of(const DeviceBuffer<T>& b, size_t elements) {
  std::vector<unsigned char> out(elements * sizeof(T));
  cudaMemcpy(out.data(), b.get(), out.size(), cudaMemcpyDeviceToHost);
  return out;
}

// Host values (as T stores them) and device copies of one fused-norm GEMV problem with up to kMaxFewRows rows.
template <class T>
struct NormProblem {
  int64_t in, out;
  std::vector<float> residual, delta, norm_weight, weight;
  DeviceBuffer<T> d_residual, d_delta, d_norm_weight, d_weight;
  NormProblem(int64_t in_features, int64_t out_features, uint32_t seed)
      : in(in_features),
        out(out_features),
        residual(rounded<T>(random_vector(k::kMaxFewRows * in_features, seed, -3.0f, 3.0f))),
        delta(rounded<T>(random_vector(k::kMaxFewRows * in_features, seed + 1, -1.0f, 1.0f))),
        norm_weight(rounded<T>(random_vector(in_features, seed + 2, 0.5f, 1.5f))),
        weight(rounded<T>(random_vector(in_features * out_features, seed + 3, -1.0f, 1.0f))),
        d_residual(convert<T>(residual)),
        d_delta(convert<T>(delta)),
        d_norm_weight(convert<T>(norm_weight)),
        d_weight(convert<T>(weight)) {}

  // The oracle: FP32 add + norm (add_rms_norm_ref; rms_norm_ref without a delta), x rounded to T, linear_ref.
  std::vector<float> expected(int64_t rows, bool with_delta) const {
    std::vector<float> res(residual.begin(), residual.begin() + rows * in), x(rows * in), y(rows * out);
    if (with_delta) {
      kernels::add_rms_norm_ref(res.data(), delta.data(), norm_weight.data(), x.data(), rows, in, kEps);
    } else {
      kernels::rms_norm_ref(res.data(), norm_weight.data(), x.data(), rows, in, kEps);
    }
    x = rounded<T>(x);
    kernels::linear_ref(x.data(), weight.data(), y.data(), rows, in, out);
    return y;
  }
};

struct Outputs {
  std::vector<unsigned char> y, residual;  // raw bytes
};

// The unfused kernels: add_rms_norm (or rms_norm) into x, then the GEMV.
template <class T>
Outputs run_unfused(const NormProblem<T>& p, int64_t rows, bool with_delta, bool y_f32) {
  DeviceBuffer<T> residual(convert<T>(p.residual)), x(rows * p.in);
  const size_t y_elements = static_cast<size_t>(rows * p.out);
  DeviceBuffer<float> y(y_elements);  // big enough for T or FP32 outputs
  if (with_delta) {
    EXPECT_EQ(k::launch_add_rms_norm<T>(residual.get(), p.d_delta.get(), p.d_norm_weight.get(), x.get(), rows, p.in,
                                        kEps, nullptr),
              cudaSuccess);
  } else {
    EXPECT_EQ(k::launch_rms_norm<T>(residual.get(), p.d_norm_weight.get(), x.get(), rows, p.in, kEps, nullptr),
              cudaSuccess);
  }
  EXPECT_EQ(k::launch_linear_few_rows<T>(x.get(), p.d_weight.get(), y.get(), y_f32, rows, p.in, p.out, nullptr),
            cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Outputs o;
  o.y = bytes_of(y, y_elements);
  o.y.resize(y_elements * (y_f32 ? sizeof(float) : sizeof(T)));
  o.residual = bytes_of(residual, static_cast<size_t>(rows * p.in));
  return o;
}

// The fused launcher; also checks that the input residual is left alone and nothing is written past y.
template <class T>
Outputs run_fused(const NormProblem<T>& p, int64_t rows, bool with_delta, bool y_f32, bool write_residual) {
  const size_t y_bytes = static_cast<size_t>(rows * p.out) * (y_f32 ? sizeof(float) : sizeof(T));
  constexpr size_t kGuard = 64;
  DeviceBuffer<unsigned char> y(y_bytes + kGuard);
  DeviceBuffer<T> residual_out(rows * p.in);
  const cudaError_t launched = k::launch_linear_few_rows_norm<T>(
      p.d_residual.get(), with_delta ? p.d_delta.get() : nullptr, write_residual ? residual_out.get() : nullptr,
      p.d_norm_weight.get(), kEps, p.d_weight.get(), y.get(), y_f32, rows, p.in, p.out, nullptr);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Outputs o;
  o.y = y.download();
  EXPECT_TRUE(std::all_of(o.y.begin() + y_bytes, o.y.end(), [](unsigned char b) { return b == 0xff; }))
      << "wrote past y";
  o.y.resize(y_bytes);
  if (write_residual) o.residual = bytes_of(residual_out, static_cast<size_t>(rows * p.in));
  EXPECT_TRUE(to_f32(p.d_residual.download()) == p.residual) << "the input residual changed";
  return o;
}

template <class T>
std::vector<float> values(const std::vector<unsigned char>& bytes, bool f32) {
  if (f32) {
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return to_f32(v);
}

// Every row count that fits: fused == unfused bit for bit (y and residual), and y close to the oracle.
template <class T>
void check_problem(const NormProblem<T>& p, std::initializer_list<int64_t> row_counts, bool y_f32) {
  for (const int64_t rows : row_counts) {
    EXPECT_TRUE(k::linear_few_rows_norm_fits(rows, p.in, sizeof(T)));  // (8 FP32 rows of 5120: 160 KB)
    for (const bool with_delta : {true, false}) {
      SCOPED_TRACE("in " + std::to_string(p.in) + ", out " + std::to_string(p.out) + ", rows " +
                   std::to_string(rows) + (with_delta ? ", add" : ", no add") + (y_f32 ? ", FP32 y" : ""));
      const Outputs unfused = run_unfused(p, rows, with_delta, y_f32);
      const Outputs fused = run_fused(p, rows, with_delta, y_f32, /*write_residual=*/true);
      EXPECT_TRUE(fused.y == unfused.y) << "y differs from add_rms_norm + linear_few_rows";
      EXPECT_TRUE(fused.residual == unfused.residual) << "the new residual differs from add_rms_norm's";
      EXPECT_LE(relative_error(values<T>(fused.y, y_f32), p.expected(rows, with_delta)), tolerance<T>());
      const Outputs no_residual = run_fused(p, rows, with_delta, y_f32, /*write_residual=*/false);
      EXPECT_TRUE(no_residual.y == unfused.y);
    }
  }
}

constexpr std::initializer_list<int64_t> kAllRows = {1, 2, 3, 4, 5, 6, 7, 8};

TYPED_TEST(LinearNormCuda, OddShapesMatchUnfusedKernelsAndOracle) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t in, out;
  };
  // Rows of 1 or 2 packs, pack counts that are not multiples of a warp (the norm kernels' block sizes 32 .. 544),
  // several packs per norm thread (5120 FP32), a one-pack tail (4104), an odd `out`.
  for (const Shape s : {Shape{8, 5}, Shape{24, 37}, Shape{264, 130}, Shape{1000, 67}, Shape{4104, 37}, Shape{5120, 64}}) {
    const NormProblem<T> p(s.in, s.out, static_cast<uint32_t>(s.in + 7 * s.out));
    check_problem(p, kAllRows, false);
  }
}

TYPED_TEST(LinearNormCuda, LlamaShapesMatchUnfusedKernelsAndOracle) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const NormProblem<T> qkv(4096, 6144, 41);  // Llama-3.1-8B input norm -> fused QKV (rows split over warps)
  check_problem(qkv, kAllRows, false);
  const NormProblem<T> wide(1024, 16400, 42);  // one warp per row pair, like gate/up and the LM head
  check_problem(wide, {1, 2, 8}, false);
  const NormProblem<T> logits(4096, 1000, 43);  // final norm -> LM head: FP32 logits
  check_problem(logits, {1, 2, 5}, true);
}

TYPED_TEST(LinearNormCuda, RejectsUnsupportedArgumentsWithoutLaunching) {
  using T = TypeParam;
  constexpr int64_t kPerVec = 16 / sizeof(T);
  alignas(16) const T r[64] = {};
  alignas(16) const T w[64] = {};
  alignas(16) T y[64] = {};
  alignas(16) T out[64] = {};
  auto launch = [&](const T* residual, const T* delta, T* residual_out, const T* norm_weight, int64_t rows,
                    int64_t in) {
    return k::launch_linear_few_rows_norm<T>(residual, delta, residual_out, norm_weight, kEps, w, y, false, rows, in,
                                             4, nullptr);
  };
  EXPECT_EQ(launch(r, r, out, w, 0, kPerVec), cudaErrorInvalidValue);
  EXPECT_EQ(launch(r, r, out, w, k::kMaxFewRows + 1, kPerVec), cudaErrorInvalidValue);
  EXPECT_EQ(launch(r, r, out, w, 1, kPerVec + 1), cudaErrorInvalidValue);
  EXPECT_EQ(launch(nullptr, r, out, w, 1, kPerVec), cudaErrorInvalidValue);
  EXPECT_EQ(launch(r, r, out, nullptr, 1, kPerVec), cudaErrorInvalidValue);
  EXPECT_EQ(launch(r + 1, r, out, w, 1, kPerVec), cudaErrorInvalidValue);  // misaligned residual
  EXPECT_EQ(launch(r, r + 1, out, w, 1, kPerVec), cudaErrorInvalidValue);  // misaligned delta
  EXPECT_EQ(launch(r, r, out + 1, w, 1, kPerVec), cudaErrorInvalidValue);  // misaligned residual_out
  EXPECT_EQ(launch(r, r, out, w + 1, 1, kPerVec), cudaErrorInvalidValue);  // misaligned norm weight
  // Rows that cannot be staged in one block's shared memory (8 x 1M elements).
  EXPECT_FALSE(k::linear_few_rows_norm_fits(8, int64_t{1} << 20, sizeof(T)));
}

// Two decoder-like layers of norm -> GEMV with the residual ping-ponging between two buffers, every launch PDL:
//   delta1 = x0 W0;  y1 = norm(resA + delta1) W1, resB = resA + delta1;
//   delta2 = y1 W2;  y2 = norm(resB + delta2) W1, resA = resB + delta2.
// resA is rewritten by the last kernel after the second one read it (the executor's ping-pong). Buffers are
// poisoned before every run, so a read before pdl_wait() would show.
template <class T>
struct PingPong {
  static constexpr int64_t kHidden = 1024, kOut = 1536;
  int64_t rows;
  DeviceBuffer<T> w0{convert<T>(random_vector(kHidden * kHidden, 51, -0.05f, 0.05f))};
  DeviceBuffer<T> w1{convert<T>(random_vector(kOut * kHidden, 52, -0.05f, 0.05f))};
  DeviceBuffer<T> w2{convert<T>(random_vector(kHidden * kOut, 53, -0.05f, 0.05f))};
  DeviceBuffer<T> norm_w{convert<T>(random_vector(kHidden, 54, 0.5f, 1.5f))};
  DeviceBuffer<T> x0{k::kMaxFewRows * kHidden}, res_init{k::kMaxFewRows * kHidden};  // step inputs
  DeviceBuffer<T> res_a{k::kMaxFewRows * kHidden}, res_b{k::kMaxFewRows * kHidden}, delta1{k::kMaxFewRows * kHidden},
      delta2{k::kMaxFewRows * kHidden}, y1{k::kMaxFewRows * kOut}, y2{k::kMaxFewRows * kOut};

  explicit PingPong(int64_t row_count) : rows(row_count) {}

  void set_inputs(uint32_t seed) {  // synchronous
    x0.upload(convert<T>(random_vector(k::kMaxFewRows * kHidden, seed, -1.0f, 1.0f)));
    res_init.upload(convert<T>(random_vector(k::kMaxFewRows * kHidden, seed + 1, -2.0f, 2.0f)));
  }
  cudaError_t reset(cudaStream_t s) const {  // poison, and resA = the initial residual
    for (const DeviceBuffer<T>* b : {&res_b, &delta1, &delta2, &y1, &y2}) {
      const cudaError_t e = cudaMemsetAsync(b->get(), 0xff, b->size() * sizeof(T), s);
      if (e != cudaSuccess) return e;
    }
    return cudaMemcpyAsync(res_a.get(), res_init.get(), res_init.size() * sizeof(T), cudaMemcpyDeviceToDevice, s);
  }
  cudaError_t run(cudaStream_t s, bool pdl) const {
    cudaError_t e = k::launch_linear_few_rows<T>(x0.get(), w0.get(), delta1.get(), false, rows, kHidden, kHidden, s, pdl);
    if (e == cudaSuccess)
      e = k::launch_linear_few_rows_norm<T>(res_a.get(), delta1.get(), res_b.get(), norm_w.get(), kEps, w1.get(),
                                            y1.get(), false, rows, kHidden, kOut, s, pdl);
    if (e == cudaSuccess)
      e = k::launch_linear_few_rows<T>(y1.get(), w2.get(), delta2.get(), false, rows, kOut, kHidden, s, pdl);
    if (e == cudaSuccess)
      e = k::launch_linear_few_rows_norm<T>(res_b.get(), delta2.get(), res_a.get(), norm_w.get(), kEps, w1.get(),
                                            y2.get(), false, rows, kHidden, kOut, s, pdl);
    return e;
  }
  // The same two layers with the unfused kernels (in place residual, separate norm output).
  cudaError_t run_unfused(cudaStream_t s, DeviceBuffer<T>& x) const {
    cudaError_t e = k::launch_linear_few_rows<T>(x0.get(), w0.get(), delta1.get(), false, rows, kHidden, kHidden, s);
    if (e == cudaSuccess)
      e = k::launch_add_rms_norm<T>(res_a.get(), delta1.get(), norm_w.get(), x.get(), rows, kHidden, kEps, s);
    if (e == cudaSuccess) e = k::launch_linear_few_rows<T>(x.get(), w1.get(), y1.get(), false, rows, kHidden, kOut, s);
    if (e == cudaSuccess)
      e = k::launch_linear_few_rows<T>(y1.get(), w2.get(), delta2.get(), false, rows, kOut, kHidden, s);
    if (e == cudaSuccess)
      e = k::launch_add_rms_norm<T>(res_a.get(), delta2.get(), norm_w.get(), x.get(), rows, kHidden, kEps, s);
    if (e == cudaSuccess) e = k::launch_linear_few_rows<T>(x.get(), w1.get(), y2.get(), false, rows, kHidden, kOut, s);
    return e;
  }
  // y1, y2 and the final residual (resA), rows in use.
  std::vector<std::vector<unsigned char>> snapshot() const {
    return {bytes_of(y1, rows * kOut), bytes_of(y2, rows * kOut), bytes_of(res_a, rows * kHidden)};
  }
};

TYPED_TEST(LinearNormCuda, PdlPingPongChainMatchesPlainAndUnfused) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const TestStream stream;
  for (const int64_t rows : {int64_t{1}, int64_t{2}, int64_t{3}}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    PingPong<T> chain(rows);
    chain.set_inputs(61);
    DeviceBuffer<T> x(k::kMaxFewRows * PingPong<T>::kHidden);
    ASSERT_EQ(chain.reset(stream.get()), cudaSuccess);
    ASSERT_EQ(chain.run_unfused(stream.get(), x), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    const auto unfused = chain.snapshot();
    ASSERT_EQ(chain.reset(stream.get()), cudaSuccess);
    ASSERT_EQ(chain.run(stream.get(), false), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    const auto plain = chain.snapshot();
    EXPECT_TRUE(plain == unfused) << "fused chain differs from the unfused kernels";
    for (int repeat = 0; repeat < 3; ++repeat) {
      ASSERT_EQ(chain.reset(stream.get()), cudaSuccess);
      ASSERT_EQ(chain.run(stream.get(), true), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
      EXPECT_TRUE(chain.snapshot() == plain) << "PDL run " << repeat;
    }
  }
}

TYPED_TEST(LinearNormCuda, CapturedPdlChainReplaysWithNewInputs) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const TestStream stream(/*blocking=*/false);
  PingPong<T> chain(2);
  std::vector<std::vector<std::vector<unsigned char>>> expected;
  for (const uint32_t seed : {71u, 81u}) {
    chain.set_inputs(seed);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ASSERT_EQ(chain.reset(stream.get()), cudaSuccess);
    ASSERT_EQ(chain.run(stream.get(), false), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    expected.push_back(chain.snapshot());
  }
  ASSERT_FALSE(expected[0] == expected[1]);

  const CapturedGraph graph(stream.get(), [&] {
    const cudaError_t reset = chain.reset(stream.get());
    const cudaError_t recorded = chain.run(stream.get(), true);
    return reset != cudaSuccess ? reset : recorded;
  });
  ASSERT_TRUE(graph.ok());
  for (int replay = 0; replay < 4; ++replay) {
    const int which = replay % 2;
    chain.set_inputs(which == 0 ? 71u : 81u);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the uploads ran on the legacy stream
    ASSERT_EQ(graph.launch(stream.get()), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    EXPECT_TRUE(chain.snapshot() == expected[which]) << "replay " << replay;
  }
}

}  // namespace
}  // namespace tessera
