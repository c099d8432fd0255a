// LtGemm (core/cuda/lt_gemm.hpp), the CUDA executor's cuBLASLt GEMM for more than kMaxFewRows rows, against the CPU
// reference linear_ref: BF16 and F32 inputs, outputs in the input type or FP32, odd shapes, operands offset from
// their allocation (less than 256-byte alignment), the plan cache, and a first call made inside a stream capture.
#include "core/cuda/lt_gemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "kernels/linear.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;
using cuda::lt_pointer_alignment;
using cuda::LtGemm;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // the executor's
constexpr size_t kGuardBytes = 64;                    // poisoned bytes after y that must stay untouched
constexpr int64_t kMaxRows = 257;

const void* address(uintptr_t a) { return reinterpret_cast<const void*>(a); }

TEST(LtGemmAlignment, IsTheLargestPowerOfTwoUpTo256DividingTheAddress) {
  EXPECT_EQ(lt_pointer_alignment(address(0x7f0000001000)), 256u);
  EXPECT_EQ(lt_pointer_alignment(address(0x100)), 256u);
  EXPECT_EQ(lt_pointer_alignment(address(0x1080)), 128u);
  EXPECT_EQ(lt_pointer_alignment(address(0x1010)), 16u);
  EXPECT_EQ(lt_pointer_alignment(address(0x1018)), 8u);
  EXPECT_EQ(lt_pointer_alignment(address(0x1002)), 2u);
  EXPECT_EQ(lt_pointer_alignment(address(0x1001)), 1u);
  EXPECT_EQ(lt_pointer_alignment(nullptr), 256u);
}

template <class T>
DType dtype_of() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

template <class T>
void upload_at(DeviceBuffer<unsigned char>& buffer, size_t offset, const std::vector<float>& values) {
  const std::vector<T> stored = convert<T>(values);
  ASSERT_EQ(cudaMemcpy(buffer.get() + offset, stored.data(), stored.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
}

// kMaxRows activation rows and an out x in weight as T stores them, on the host and on the device (x `x_offset`
// bytes into its allocation); a product over the first `rows` rows uses a prefix of them. The expectations: linear_ref
// and, per element, sum_k |x_rk w_ck| (what bounds the summation error of any order).
template <class T>
struct Operands {
  int64_t in, out;
  size_t x_offset;
  std::vector<float> x, w, expected;
  std::vector<double> magnitude;
  DeviceBuffer<unsigned char> d_x, d_w;

  Operands(int64_t in_features, int64_t out_features, uint32_t seed, size_t x_offset_bytes = 0)
      : in(in_features),
        out(out_features),
        x_offset(x_offset_bytes),
        x(rounded<T>(random_vector(kMaxRows * in_features, seed))),
        w(rounded<T>(random_vector(out_features * in_features, seed + 1))),
        expected(kMaxRows * out_features),
        magnitude(kMaxRows * out_features),
        d_x(x_offset_bytes + x.size() * sizeof(T)),
        d_w(w.size() * sizeof(T)) {
    upload_at<T>(d_x, x_offset, x);
    upload_at<T>(d_w, 0, w);
    kernels::linear_ref(x.data(), w.data(), expected.data(), kMaxRows, in, out);
    for (int64_t r = 0; r < kMaxRows; ++r) {
      for (int64_t c = 0; c < out; ++c) {
        double sum = 0;
        for (int64_t k = 0; k < in; ++k) sum += std::fabs(double(x[r * in + k]) * w[c * in + k]);
        magnitude[r * out + c] = sum;
      }
    }
  }
  const void* x_device() const { return d_x.get() + x_offset; }
  const void* w_device() const { return d_w.get(); }
};

size_t y_element_bytes(bool y_f32, size_t t_bytes) { return y_f32 ? 4 : t_bytes; }

// One enqueue_linear into a fresh poisoned buffer (y `y_offset` bytes into it), synchronized; the buffer's bytes.
struct Output {
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  std::vector<unsigned char> bytes;  // y_offset poison, y, kGuardBytes poison
};

template <class T>
Output run(LtGemm& lt, const Operands<T>& op, int64_t rows, bool y_f32, cudaStream_t stream, size_t y_offset = 0) {
  const size_t y_bytes = static_cast<size_t>(rows * op.out) * y_element_bytes(y_f32, sizeof(T));
  DeviceBuffer<unsigned char> d_y(y_offset + y_bytes + kGuardBytes);
  // The poison memset ran on the legacy stream, which a non-blocking `stream` does not wait for.
  const cudaError_t poisoned = cudaDeviceSynchronize();
  EXPECT_EQ(poisoned, cudaSuccess) << cudaGetErrorString(poisoned);
  Output result;
  result.status = lt.enqueue_linear(op.x_device(), op.w_device(), d_y.get() + y_offset, rows, op.in, op.out, y_f32,
                                    dtype_of<T>(), stream);
  const cudaError_t synced = cudaStreamSynchronize(stream);
  EXPECT_EQ(synced, cudaSuccess) << cudaGetErrorString(synced);
  result.bytes = d_y.download();
  return result;
}

bool all_poison(const std::vector<unsigned char>& bytes, size_t begin, size_t end) {
  return std::all_of(bytes.begin() + static_cast<ptrdiff_t>(begin), bytes.begin() + static_cast<ptrdiff_t>(end),
                     [](unsigned char b) { return b == 0xff; });
}

// y (inside `bytes` at y_offset) against the reference: nothing written outside y; the norm-wise relative error
// within FP32 accumulation in another order (1e-5 for FP32 inputs: strict FP32, TF32 would be ~1e-3; 1e-4 for BF16
// inputs, whose exact products tensor cores may sum with truncation) or within the BF16 output rounding (2^-9 per
// element); and every element within |ref| * (2^-8 for BF16 output) + in * 2^-21 * sum_k |x w| (twice the worst
// case of two FP32 summations of `in` terms, one of them truncating).
template <class T>
void expect_product(const Operands<T>& op, int64_t rows, bool y_f32, const std::vector<unsigned char>& bytes,
                    size_t y_offset, const std::string& what) {
  const size_t n = static_cast<size_t>(rows * op.out);
  const size_t y_bytes = n * y_element_bytes(y_f32, sizeof(T));
  ASSERT_EQ(bytes.size(), y_offset + y_bytes + kGuardBytes) << what;
  EXPECT_TRUE(all_poison(bytes, 0, y_offset)) << what << ": wrote before y";
  EXPECT_TRUE(all_poison(bytes, y_offset + y_bytes, bytes.size())) << what << ": wrote past y";
  std::vector<float> y(n);
  if (y_f32) {
    std::memcpy(y.data(), bytes.data() + y_offset, y_bytes);
  } else {
    std::vector<T> stored(n);
    std::memcpy(stored.data(), bytes.data() + y_offset, y_bytes);
    y = to_f32(stored);
  }
  const std::vector<float> expected(op.expected.begin(), op.expected.begin() + static_cast<ptrdiff_t>(n));
  const bool bf16_out = !y_f32 && !std::is_same_v<T, float>;
  const double norm_tolerance = bf16_out ? 4e-3 : std::is_same_v<T, float> ? 1e-5 : 1e-4;
  EXPECT_LE(relative_error(y, expected), norm_tolerance) << what;
  const double out_rel = bf16_out ? std::ldexp(1.0, -8) : 0.0, sum_rel = double(op.in) * std::ldexp(1.0, -21);
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double bound = out_rel * std::fabs(expected[i]) + sum_rel * op.magnitude[i];
    if (!(std::fabs(double(y[i]) - expected[i]) <= bound)) {
      if (bad++ == 0) first_bad = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": first at row " << first_bad / op.out << " column " << first_bad % op.out << ": "
                     << y[first_bad] << " vs " << expected[first_bad];
}

std::string describe(int64_t rows, int64_t in, int64_t out, bool y_f32) {
  return "rows " + std::to_string(rows) + ", in " + std::to_string(in) + ", out " + std::to_string(out) +
         (y_f32 ? ", FP32 output" : "");
}

template <class T>
class LtGemmCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(LtGemmCuda, Types);

TYPED_TEST(LtGemmCuda, MatchesCpuReferenceForRowCountsAndShapes) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);
  LtGemm lt(workspace.get(), kWorkspaceBytes);
  TestStream stream;
  struct Shape {
    int64_t in, out;
  };
  // Leading dimensions that are whole 16-byte vectors must work (the executor's shapes); others (36 or 520 inputs,
  // 19, 37 or 130 outputs: rows of 8- or 4-byte multiples) either work or are reported, writing nothing.
  for (const Shape s : {Shape{64, 256}, Shape{2048, 512}, Shape{1000, 130}, Shape{520, 37}, Shape{36, 19}}) {
    const Operands<T> op(s.in, s.out, static_cast<uint32_t>(s.in * 7 + s.out));
    for (const bool y_f32 : {false, true}) {
      const bool whole_vectors = s.in * sizeof(T) % 16 == 0 && s.out * y_element_bytes(y_f32, sizeof(T)) % 16 == 0;
      for (const int64_t rows : {9, 17, 64, 257}) {
        const std::string what = describe(rows, s.in, s.out, y_f32);
        const Output y = run(lt, op, rows, y_f32, stream.get());
        if (y.status != CUBLAS_STATUS_SUCCESS && !whole_vectors) {
          std::cout << "[   NOTE   ] cuBLASLt reported status " << y.status << " for " << what << "\n";
          EXPECT_TRUE(all_poison(y.bytes, 0, y.bytes.size())) << what << ": a reported failure wrote y";
          continue;
        }
        ASSERT_EQ(y.status, CUBLAS_STATUS_SUCCESS) << what;
        expect_product(op, rows, y_f32, y.bytes, 0, what);
      }
    }
  }
}

TYPED_TEST(LtGemmCuda, CachedPlanGivesTheSameBitsAgain) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);
  LtGemm lt(workspace.get(), kWorkspaceBytes);
  TestStream stream;
  const Operands<T> op(512, 384, 3);
  const Output first = run(lt, op, 64, false, stream.get());
  ASSERT_EQ(first.status, CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lt.cached_plans(), 1u);
  const Output again = run(lt, op, 64, false, stream.get());
  ASSERT_EQ(again.status, CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lt.cached_plans(), 1u) << "the second call made a new plan";
  EXPECT_EQ(again.bytes, first.bytes);
  expect_product(op, 64, false, again.bytes, 0, "cached");
  // Another row count or output type is another plan.
  ASSERT_EQ(run(lt, op, 65, false, stream.get()).status, CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(run(lt, op, 64, true, stream.get()).status, CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lt.cached_plans(), 3u);
}

// Row slices of activation buffers: x and y 16 bytes into their allocations. cuBLASLt must be told (the plan is keyed
// on the alignment) or it may pick a kernel that assumes 256 bytes.
TYPED_TEST(LtGemmCuda, OperandsAlignedTo16BytesOnlyMatchCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);
  LtGemm lt(workspace.get(), kWorkspaceBytes);
  TestStream stream;
  const Operands<T> aligned(512, 384, 5), offset(512, 384, 5, /*x_offset_bytes=*/16);
  ASSERT_EQ(lt_pointer_alignment(offset.x_device()), 16u);
  for (const int64_t rows : {17, 257}) {
    ASSERT_EQ(run(lt, aligned, rows, false, stream.get()).status, CUBLAS_STATUS_SUCCESS);
    const size_t plans = lt.cached_plans();
    for (const bool y_f32 : {false, true}) {
      const std::string what = describe(rows, 512, 384, y_f32) + ", x and y at +16 bytes";
      const Output y = run(lt, offset, rows, y_f32, stream.get(), /*y_offset=*/16);
      ASSERT_EQ(y.status, CUBLAS_STATUS_SUCCESS) << what;
      expect_product(offset, rows, y_f32, y.bytes, 16, what);
    }
    EXPECT_EQ(lt.cached_plans(), plans + 2) << "the alignment is not part of the plan key";
  }
}

// The executor captures decode steps into CUDA graphs, so a shape's first call (descriptors, heuristic query) may come
// during a capture: it must neither synchronize nor allocate. The replayed graph gives the eager call's bits.
TYPED_TEST(LtGemmCuda, FirstCallInsideStreamCaptureReplaysAsGraph) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);
  LtGemm lt(workspace.get(), kWorkspaceBytes);
  TestStream stream(/*blocking=*/false);
  const Operands<T> op(1000, 256, 9);
  const int64_t rows = 64;
  const size_t y_bytes = static_cast<size_t>(rows * op.out) * sizeof(T);
  DeviceBuffer<unsigned char> d_y(y_bytes + kGuardBytes);
  TESSERA_CUDA_OK(cudaDeviceSynchronize());  // uploads and poison (legacy stream) before the non-blocking stream
  cublasStatus_t status = CUBLAS_STATUS_NOT_INITIALIZED;
  const CapturedGraph graph(stream.get(), [&] {
    status = lt.enqueue_linear(op.x_device(), op.w_device(), d_y.get(), rows, op.in, op.out, false, dtype_of<T>(),
                               stream.get());
    return status == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
  });
  ASSERT_EQ(status, CUBLAS_STATUS_SUCCESS);
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(lt.cached_plans(), 1u);
  EXPECT_TRUE(all_poison(d_y.download(), 0, y_bytes + kGuardBytes)) << "capturing ran the matmul";
  TESSERA_CUDA_OK(graph.launch(stream.get()));
  TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
  const std::vector<unsigned char> replayed = d_y.download();
  expect_product(op, rows, false, replayed, 0, "graph replay");
  const Output eager = run(lt, op, rows, false, stream.get());
  ASSERT_EQ(eager.status, CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lt.cached_plans(), 1u);
  EXPECT_EQ(eager.bytes, replayed);
}

TEST(LtGemmCudaArguments, BadArgumentsAreReportedWithoutAPlan) {
  TESSERA_REQUIRE_GPU();
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);
  LtGemm lt(workspace.get(), kWorkspaceBytes);
  DeviceBuffer<float> x(16 * 16), w(16 * 16), y(16 * 16);
  EXPECT_EQ(lt.enqueue_linear(x.get(), w.get(), y.get(), 0, 16, 16, false, DType::F32, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(lt.enqueue_linear(x.get(), w.get(), y.get(), 16, 0, 16, false, DType::F32, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(lt.enqueue_linear(nullptr, w.get(), y.get(), 16, 16, 16, false, DType::F32, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(lt.enqueue_linear(x.get(), w.get(), y.get(), 16, 16, 16, false, DType::F16, nullptr),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(lt.cached_plans(), 0u);
  const std::vector<float> untouched = y.download();
  EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](float v) { return std::isnan(v); }));
}

}  // namespace
}  // namespace tessera
