// launch_rms_norm / launch_add_rms_norm against rms_norm_ref / add_rms_norm_ref, FP32 and BF16.
#include "kernels/rms_norm.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>

namespace tessera {
namespace {

using namespace test;

template <class T>
class RmsNormCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(RmsNormCuda, Types);

struct Shape {
  int64_t rows, dim;
};
// 4096: Llama-3.1-8B hidden; 36: packs for FP32 but not BF16; 37, 1: scalar path; 8: one BF16 pack.
const Shape kShapes[] = {{1, 4096}, {7, 4096}, {3, 37}, {4, 36}, {5, 8}, {33, 128}, {2, 1}, {1, 5120}};
constexpr float kEps = 1e-5f;

TYPED_TEST(RmsNormCuda, MatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const Shape s : kShapes) {
    const std::vector<float> x = rounded<T>(random_vector(s.rows * s.dim, 11, -3.0f, 3.0f));
    const std::vector<float> weight = rounded<T>(random_vector(s.dim, 12, 0.5f, 1.5f));
    std::vector<float> expected(x.size());
    kernels::rms_norm_ref(x.data(), weight.data(), expected.data(), s.rows, s.dim, kEps);

    DeviceBuffer<T> d_x(convert<T>(x)), d_w(convert<T>(weight)), d_out(x.size());
    TESSERA_CUDA_OK(kernels::cuda::launch_rms_norm(d_x.get(), d_w.get(), d_out.get(), s.rows, s.dim, kEps, nullptr));
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    EXPECT_LT(relative_error(to_f32(d_out.download()), expected), tolerance<T>()) << s.rows << "x" << s.dim;

    // In place (out aliases x), as the header allows.
    TESSERA_CUDA_OK(kernels::cuda::launch_rms_norm(d_x.get(), d_w.get(), d_x.get(), s.rows, s.dim, kEps, nullptr));
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    EXPECT_LT(relative_error(to_f32(d_x.download()), expected), tolerance<T>())
        << "in place " << s.rows << "x" << s.dim;
  }
}

TYPED_TEST(RmsNormCuda, UnalignedPointersTakeTheScalarPath) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t rows = 3, dim = 4096;
  const std::vector<float> x = rounded<T>(random_vector(rows * dim, 13, -2.0f, 2.0f));
  const std::vector<float> weight = rounded<T>(random_vector(dim, 14, 0.5f, 1.5f));
  std::vector<float> expected(x.size());
  kernels::rms_norm_ref(x.data(), weight.data(), expected.data(), rows, dim, kEps);

  std::vector<float> shifted(x.size() + 1, 0.0f);  // x at element offset 1: no longer 16-byte aligned
  std::copy(x.begin(), x.end(), shifted.begin() + 1);
  DeviceBuffer<T> d_x(convert<T>(shifted)), d_w(convert<T>(weight)), d_out(x.size() + 1);
  TESSERA_CUDA_OK(
      kernels::cuda::launch_rms_norm(d_x.get() + 1, d_w.get(), d_out.get() + 1, rows, dim, kEps, nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> out = to_f32(d_out.download());
  out.erase(out.begin());
  EXPECT_LT(relative_error(out, expected), tolerance<T>());
}

TYPED_TEST(RmsNormCuda, AddRmsNormMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const Shape s : kShapes) {
    const std::vector<float> residual = rounded<T>(random_vector(s.rows * s.dim, 21, -3.0f, 3.0f));
    const std::vector<float> x = rounded<T>(random_vector(s.rows * s.dim, 22, -1.0f, 1.0f));
    const std::vector<float> weight = rounded<T>(random_vector(s.dim, 23, 0.5f, 1.5f));
    std::vector<float> expected_residual = residual;
    std::vector<float> expected(x.size());
    kernels::add_rms_norm_ref(expected_residual.data(), x.data(), weight.data(), expected.data(), s.rows, s.dim, kEps);

    for (const bool out_aliases_x : {false, true}) {
      DeviceBuffer<T> d_res(convert<T>(residual)), d_x(convert<T>(x)), d_w(convert<T>(weight)), d_out(x.size());
      T* out = out_aliases_x ? d_x.get() : d_out.get();
      TESSERA_CUDA_OK(
          kernels::cuda::launch_add_rms_norm(d_res.get(), d_x.get(), d_w.get(), out, s.rows, s.dim, kEps, nullptr));
      TESSERA_CUDA_OK(cudaDeviceSynchronize());
      // The FP32 sum of the same two values, rounded to T once: bit-identical to the reference's sum rounded.
      EXPECT_EQ(relative_error(to_f32(d_res.download()), rounded<T>(expected_residual)), 0.0)
          << s.rows << "x" << s.dim;
      const std::vector<float> got = to_f32(out_aliases_x ? d_x.download() : d_out.download());
      EXPECT_LT(relative_error(got, expected), tolerance<T>())
          << s.rows << "x" << s.dim << (out_aliases_x ? " out aliases x" : "");
    }
  }
}

// The norm of add_rms_norm reads the residual as stored (rounded to T): it equals rms_norm of the new residual.
TYPED_TEST(RmsNormCuda, AddRmsNormNormalizesTheStoredResidual) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t rows = 5, dim = 4096;
  const std::vector<float> residual = rounded<T>(random_vector(rows * dim, 31, -3.0f, 3.0f));
  const std::vector<float> x = rounded<T>(random_vector(rows * dim, 32, -1.0f, 1.0f));
  const std::vector<float> weight = rounded<T>(random_vector(dim, 33, 0.5f, 1.5f));
  DeviceBuffer<T> d_res(convert<T>(residual)), d_x(convert<T>(x)), d_w(convert<T>(weight));
  DeviceBuffer<T> d_fused(x.size()), d_plain(x.size());
  TESSERA_CUDA_OK(
      kernels::cuda::launch_add_rms_norm(d_res.get(), d_x.get(), d_w.get(), d_fused.get(), rows, dim, kEps, nullptr));
  TESSERA_CUDA_OK(kernels::cuda::launch_rms_norm(d_res.get(), d_w.get(), d_plain.get(), rows, dim, kEps, nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  EXPECT_LT(relative_error(to_f32(d_fused.download()), to_f32(d_plain.download())), 1e-6);
}

TEST(RmsNormCudaArgs, RejectsBadShapesWithoutLaunching) {
  float* none = nullptr;
  EXPECT_EQ(kernels::cuda::launch_rms_norm<float>(none, none, none, 4, 0, kEps, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_rms_norm<float>(none, none, none, -1, 8, kEps, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_add_rms_norm<float>(none, none, none, none, 4, -8, kEps, nullptr),
            cudaErrorInvalidValue);
  // No rows: nothing to do.
  EXPECT_EQ(kernels::cuda::launch_rms_norm<float>(none, none, none, 0, 8, kEps, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace tessera
