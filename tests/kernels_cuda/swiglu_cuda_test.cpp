// launch_swiglu on a paired gate/up buffer (gate j, up j alternate) against swiglu_ref, FP32 and BF16.
#include "kernels/swiglu.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>

namespace tessera {
namespace {

using namespace test;

template <class T>
class SwigluCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(SwigluCuda, Types);

// Reference over the paired layout: row r = g0, u0, g1, u1, ... (split into gate and up for swiglu_ref).
std::vector<float> reference(const std::vector<float>& gate_up, int64_t rows, int64_t inter) {
  std::vector<float> out(rows * inter), gate(inter), up(inter);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < inter; ++j) {
      gate[j] = gate_up[(r * inter + j) * 2];
      up[j] = gate_up[(r * inter + j) * 2 + 1];
    }
    kernels::swiglu_ref(gate.data(), up.data(), out.data() + r * inter, inter);
  }
  return out;
}

TYPED_TEST(SwigluCuda, PairedGateUpMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t rows, inter;
  };
  // 14336: Llama-3.1-8B intermediate; 36 packs for FP32 only; 37 and 1: scalar path.
  for (const Shape s : {Shape{1, 14336}, Shape{3, 14336}, Shape{17, 8}, Shape{4, 36}, Shape{5, 37}, Shape{2, 1}}) {
    std::vector<float> gate_up = random_vector(s.rows * 2 * s.inter, 81, -8.0f, 8.0f);
    // Saturated gates: exp(-g) overflows for g = -100 (silu -> -0), vanishes for g = 100 (silu -> g).
    gate_up[0] = -100.0f;                  // gate 0
    if (s.inter > 1) gate_up[2] = 100.0f;  // gate 1
    gate_up = rounded<T>(gate_up);
    const std::vector<float> expected = reference(gate_up, s.rows, s.inter);

    DeviceBuffer<T> d_in(convert<T>(gate_up)), d_out(s.rows * s.inter);
    TESSERA_CUDA_OK(kernels::cuda::launch_swiglu(d_in.get(), d_out.get(), s.rows, s.inter, nullptr));
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    const std::vector<float> got = to_f32(d_out.download());
    EXPECT_LT(relative_error(got, expected), tolerance<T>()) << s.rows << "x" << s.inter;
    EXPECT_EQ(got[0], 0.0f) << "silu(-100) * up";
  }
}

TYPED_TEST(SwigluCuda, UnalignedPointersTakeTheScalarPath) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t rows = 2, inter = 4096;
  const std::vector<float> gate_up = rounded<T>(random_vector(rows * 2 * inter, 82, -6.0f, 6.0f));
  const std::vector<float> expected = reference(gate_up, rows, inter);
  std::vector<float> shifted(gate_up.size() + 1, 0.0f);  // element offset 1: not 16-byte aligned
  std::copy(gate_up.begin(), gate_up.end(), shifted.begin() + 1);
  DeviceBuffer<T> d_in(convert<T>(shifted)), d_out(rows * inter);
  TESSERA_CUDA_OK(kernels::cuda::launch_swiglu(d_in.get() + 1, d_out.get(), rows, inter, nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  EXPECT_LT(relative_error(to_f32(d_out.download()), expected), tolerance<T>());
}

TEST(SwigluCudaArgs, RejectsBadShapesWithoutLaunching) {
  float* none = nullptr;
  EXPECT_EQ(kernels::cuda::launch_swiglu<float>(none, none, 2, 0, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_swiglu<float>(none, none, -1, 8, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_swiglu<float>(none, none, 0, 8, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace tessera
