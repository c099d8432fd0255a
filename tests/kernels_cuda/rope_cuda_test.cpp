// launch_rope on a fused QKV buffer against rope_ref, FP32 and BF16.
#include "kernels/rope.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>

namespace tessera {
namespace {

using namespace test;

template <class T>
class RopeCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(RopeCuda, Types);

struct HeadShape {
  int num_heads, num_kv_heads, head_dim;
};
// GQA 1/4/8, head_dim 64 and 128 (32/8/128 is Llama-3.1-8B); head_dim 6 has a half (3) no pack divides.
const HeadShape kShapes[] = {{4, 4, 64}, {8, 2, 64}, {32, 8, 128}, {16, 2, 128}, {3, 1, 6}};

RopeScaling llama3_scaling() {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8.0f;
  s.low_freq_factor = 1.0f;
  s.high_freq_factor = 4.0f;
  s.original_max_position_embeddings = 8192;
  return s;
}

std::vector<int32_t> test_positions(int64_t num_tokens, uint32_t seed) {
  // Small, boundary and very large positions (the angle reaches ~1.3e5 rad for the fastest frequency).
  std::vector<int32_t> positions = {0, 1, 131072, 131071, 4095, 8192, 100003, 15, 16, 17};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, 131072);
  while (static_cast<int64_t>(positions.size()) < num_tokens) positions.push_back(dist(rng));
  positions.resize(num_tokens);
  return positions;
}

// Copies heads [first_head, first_head + heads) of every fused row into a contiguous [tokens][heads][head_dim].
std::vector<float> gather(const std::vector<float>& fused, int64_t tokens, int64_t row_stride, int64_t first_elem,
                          int64_t width) {
  std::vector<float> out(tokens * width);
  for (int64_t t = 0; t < tokens; ++t) {
    std::copy_n(fused.begin() + t * row_stride + first_elem, width, out.begin() + t * width);
  }
  return out;
}

TYPED_TEST(RopeCuda, FusedQkvMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const HeadShape h : kShapes) {
    for (const int64_t tokens : {1, 17, 40}) {
      const int64_t q_width = int64_t{h.num_heads} * h.head_dim;
      const int64_t kv_width = int64_t{h.num_kv_heads} * h.head_dim;
      const int64_t row_stride = q_width + 2 * kv_width;
      const std::vector<float> qkv = rounded<T>(random_vector(tokens * row_stride, 41, -2.0f, 2.0f));
      const std::vector<int32_t> positions = test_positions(tokens, 42);
      const std::vector<float> inv_freq =
          h.head_dim == 128 ? kernels::rope_inv_freq(h.head_dim, 500000.0, llama3_scaling())
                            : kernels::rope_inv_freq(h.head_dim, 10000.0, RopeScaling{});

      std::vector<float> q = gather(qkv, tokens, row_stride, 0, q_width);
      std::vector<float> k = gather(qkv, tokens, row_stride, q_width, kv_width);
      kernels::rope_ref(q.data(), k.data(), tokens, h.num_heads, h.num_kv_heads, h.head_dim, positions.data(),
                        inv_freq.data());

      DeviceBuffer<T> d_qkv(convert<T>(qkv));
      DeviceBuffer<int32_t> d_pos(positions);
      DeviceBuffer<float> d_freq(inv_freq);
      TESSERA_CUDA_OK(kernels::cuda::launch_rope(d_qkv.get(), d_qkv.get() + q_width, tokens, row_stride, h.num_heads,
                                                 h.num_kv_heads, h.head_dim, d_pos.get(), d_freq.get(), nullptr));
      TESSERA_CUDA_OK(cudaDeviceSynchronize());
      const std::vector<float> got = to_f32(d_qkv.download());
      const std::string what = std::to_string(h.num_heads) + "/" + std::to_string(h.num_kv_heads) + "/" +
                               std::to_string(h.head_dim) + " tokens " + std::to_string(tokens);
      EXPECT_LT(relative_error(gather(got, tokens, row_stride, 0, q_width), q), tolerance<T>()) << "q " << what;
      EXPECT_LT(relative_error(gather(got, tokens, row_stride, q_width, kv_width), k), tolerance<T>()) << "k " << what;
      // V is untouched, bit for bit.
      EXPECT_EQ(relative_error(gather(got, tokens, row_stride, q_width + kv_width, kv_width),
                               gather(qkv, tokens, row_stride, q_width + kv_width, kv_width)),
                0.0)
          << "v " << what;
    }
  }
}

TYPED_TEST(RopeCuda, QueryOnlyWithoutKeys) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int num_heads = 8, head_dim = 64;
  const int64_t tokens = 5, row_stride = int64_t{num_heads} * head_dim;
  const std::vector<float> q_in = rounded<T>(random_vector(tokens * row_stride, 51, -1.0f, 1.0f));
  const std::vector<int32_t> positions = test_positions(tokens, 52);
  const std::vector<float> inv_freq = kernels::rope_inv_freq(head_dim, 10000.0, RopeScaling{});
  std::vector<float> expected = q_in;
  kernels::rope_ref(expected.data(), nullptr, tokens, num_heads, 0, head_dim, positions.data(), inv_freq.data());

  DeviceBuffer<T> d_q(convert<T>(q_in));
  DeviceBuffer<int32_t> d_pos(positions);
  DeviceBuffer<float> d_freq(inv_freq);
  TESSERA_CUDA_OK(kernels::cuda::launch_rope<T>(d_q.get(), nullptr, tokens, row_stride, num_heads, 0, head_dim,
                                                d_pos.get(), d_freq.get(), nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  EXPECT_LT(relative_error(to_f32(d_q.download()), expected), tolerance<T>());
}

// Position 0 is the identity rotation: cos 0 = 1, sin 0 = 0 exactly.
TYPED_TEST(RopeCuda, PositionZeroIsIdentity) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int num_heads = 32, num_kv_heads = 8, head_dim = 128;
  const int64_t tokens = 3, row_stride = int64_t{num_heads + 2 * num_kv_heads} * head_dim;
  const std::vector<float> qkv = rounded<T>(random_vector(tokens * row_stride, 61));
  const std::vector<int32_t> positions(tokens, 0);
  const std::vector<float> inv_freq = kernels::rope_inv_freq(head_dim, 500000.0, llama3_scaling());
  DeviceBuffer<T> d_qkv(convert<T>(qkv));
  DeviceBuffer<int32_t> d_pos(positions);
  DeviceBuffer<float> d_freq(inv_freq);
  TESSERA_CUDA_OK(kernels::cuda::launch_rope(d_qkv.get(), d_qkv.get() + num_heads * head_dim, tokens, row_stride,
                                             num_heads, num_kv_heads, head_dim, d_pos.get(), d_freq.get(), nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(relative_error(to_f32(d_qkv.download()), qkv), 0.0);
}

TEST(RopeCudaArgs, RejectsBadShapesWithoutLaunching) {
  float* none = nullptr;
  float dummy = 0.0f;
  EXPECT_EQ(kernels::cuda::launch_rope<float>(&dummy, &dummy, 1, 8, 1, 1, 7, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);  // odd head_dim
  EXPECT_EQ(kernels::cuda::launch_rope<float>(&dummy, none, 1, 8, 1, 1, 8, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);  // kv heads without k
  EXPECT_EQ(kernels::cuda::launch_rope<float>(&dummy, &dummy, -1, 8, 1, 1, 8, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_rope<float>(&dummy, &dummy, 0, 8, 1, 1, 8, nullptr, nullptr, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace tessera
