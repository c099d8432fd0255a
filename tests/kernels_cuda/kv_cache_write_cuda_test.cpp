// launch_kv_cache_write from a fused QKV buffer against kv_cache_write_ref, FP32 and BF16.
#include "kernels/kv_cache_write.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>
#include <numeric>

namespace tessera {
namespace {

using namespace test;

template <class T>
class KvCacheWriteCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(KvCacheWriteCuda, Types);

struct Case {
  int num_heads, num_kv_heads, head_dim;
  int64_t num_blocks, tokens;
};
// Block size 16; token counts across block boundaries; 32/8/128 is Llama-3.1-8B (1037 tokens fill 65 blocks);
// 3 kv heads of head_dim 6 give an 18-element slot no 16-byte pack divides.
const Case kCases[] = {{4, 4, 64, 3, 1},  {8, 2, 64, 4, 15},  {8, 2, 64, 4, 16},     {16, 2, 128, 5, 17},
                       {4, 4, 64, 3, 33}, {6, 3, 6, 5, 40},   {32, 8, 128, 70, 1037}};
constexpr int kBlockSize = 16;

std::vector<float> gather(const std::vector<float>& fused, int64_t tokens, int64_t row_stride, int64_t first_elem,
                          int64_t width) {
  std::vector<float> out(tokens * width);
  for (int64_t t = 0; t < tokens; ++t) {
    std::copy_n(fused.begin() + t * row_stride + first_elem, width, out.begin() + t * width);
  }
  return out;
}

TYPED_TEST(KvCacheWriteCuda, FusedQkvMatchesCpuReference) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const Case c : kCases) {
    const kernels::KvCacheLayout layout{c.num_blocks, kBlockSize, c.num_kv_heads, c.head_dim};
    const int64_t q_width = int64_t{c.num_heads} * c.head_dim;
    const int64_t kv_width = layout.floats_per_slot();
    const int64_t row_stride = q_width + 2 * kv_width;
    const int64_t num_slots = layout.num_blocks * kBlockSize;
    const std::vector<float> qkv = rounded<T>(random_vector(c.tokens * row_stride, 71));

    // Distinct slots in shuffled order; token 1 is padding (-1), token 2 (if any) points past the cache, which
    // the kernel skips (the CPU reference would throw, so it sees -1 there).
    std::vector<int64_t> slots(num_slots);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), std::mt19937(72));
    slots.resize(c.tokens);
    std::vector<int64_t> ref_slots = slots;
    if (c.tokens > 1) slots[1] = ref_slots[1] = -1;
    if (c.tokens > 2) {
      slots[2] = num_slots + 3;
      ref_slots[2] = -1;
    }

    // Caches start with known contents, so untouched slots are checked too.
    const std::vector<float> key_cache0 = rounded<T>(random_vector(num_slots * kv_width, 73));
    const std::vector<float> value_cache0 = rounded<T>(random_vector(num_slots * kv_width, 74));
    std::vector<float> key_expected = key_cache0, value_expected = value_cache0;
    const std::vector<float> key = gather(qkv, c.tokens, row_stride, q_width, kv_width);
    const std::vector<float> value = gather(qkv, c.tokens, row_stride, q_width + kv_width, kv_width);
    kernels::kv_cache_write_ref(key.data(), value.data(), c.tokens, ref_slots.data(), layout, key_expected.data(),
                                value_expected.data());

    DeviceBuffer<T> d_qkv(convert<T>(qkv)), d_kc(convert<T>(key_cache0)), d_vc(convert<T>(value_cache0));
    DeviceBuffer<int64_t> d_slots(slots);
    TESSERA_CUDA_OK(kernels::cuda::launch_kv_cache_write(d_qkv.get() + q_width, d_qkv.get() + q_width + kv_width,
                                                         c.tokens, row_stride, d_slots.get(), layout, d_kc.get(),
                                                         d_vc.get(), nullptr));
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    const std::string what = std::to_string(c.num_kv_heads) + "x" + std::to_string(c.head_dim) + " tokens " +
                             std::to_string(c.tokens);
    EXPECT_EQ(relative_error(to_f32(d_kc.download()), key_expected), 0.0) << "keys " << what;  // a copy is exact
    EXPECT_EQ(relative_error(to_f32(d_vc.download()), value_expected), 0.0) << "values " << what;
  }
}

TEST(KvCacheWriteCudaArgs, RejectsBadLayoutsWithoutLaunching) {
  float* none = nullptr;
  const int64_t* no_slots = nullptr;
  const kernels::KvCacheLayout layout{4, 16, 2, 8};  // 16 elements per slot
  kernels::KvCacheLayout no_block_size = layout;
  no_block_size.block_size = 0;
  EXPECT_EQ(kernels::cuda::launch_kv_cache_write<float>(none, none, 1, 16, no_slots, no_block_size, none, none,
                                                        nullptr),
            cudaErrorInvalidValue);
  // row_stride shorter than a slot
  EXPECT_EQ(kernels::cuda::launch_kv_cache_write<float>(none, none, 1, 15, no_slots, layout, none, none, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::cuda::launch_kv_cache_write<float>(none, none, 0, 16, no_slots, layout, none, none, nullptr),
            cudaSuccess);
}

}  // namespace
}  // namespace tessera
