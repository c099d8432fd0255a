// launch_rope_kv_write against the CPU composition rope_ref + kv_cache_write_ref, and bit for bit against
// launch_rope followed by launch_kv_cache_write, FP32 and BF16, with and without programmatic dependent launch.
#include "kernels/kv_cache_write.hpp"
#include "kernels/rope.hpp"
#include "kernels/rope_kv_write.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>

namespace tessera {
namespace {

using namespace test;

template <class T>
class RopeKvWriteCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(RopeKvWriteCuda, Types);

struct Case {
  int num_heads, num_kv_heads, head_dim;
  int64_t num_blocks, tokens;
};
// Block size 16; token counts across block boundaries; GQA 1/4/8 (32/8/128 is Llama-3.1-8B, 1037 tokens fill 65
// blocks); head_dim 6 (3 kv heads: 18-element slots) has a half no 16-byte pack divides: the scalar path.
const Case kCases[] = {{4, 4, 64, 3, 1},      {8, 2, 64, 4, 15},   {8, 1, 64, 4, 16}, {16, 2, 128, 5, 17},
                       {4, 4, 64, 3, 33},     {6, 3, 6, 5, 40},    {32, 8, 128, 2, 1},
                       {32, 8, 128, 70, 1037}};
constexpr int kBlockSize = 16;

RopeScaling llama3_scaling() {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8.0f;
  s.low_freq_factor = 1.0f;
  s.high_freq_factor = 4.0f;
  s.original_max_position_embeddings = 8192;
  return s;
}

std::vector<float> gather(const std::vector<float>& fused, int64_t tokens, int64_t row_stride, int64_t first_elem,
                          int64_t width) {
  std::vector<float> out(tokens * width);
  for (int64_t t = 0; t < tokens; ++t) {
    std::copy_n(fused.begin() + t * row_stride + first_elem, width, out.begin() + t * width);
  }
  return out;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// One case's inputs on the host: the fused QKV rows, positions, slots (shuffled, token 1 padding, token 2 beyond
// the cache), the caches' initial contents and inv_freq.
struct Inputs {
  kernels::KvCacheLayout layout;
  int64_t q_width, kv_width, row_stride, num_slots;
  std::vector<float> qkv, key_cache0, value_cache0, inv_freq;
  std::vector<int32_t> positions;
  std::vector<int64_t> slots, ref_slots;  // ref_slots: -1 where the kernel skips (the CPU reference would throw)
};

template <class T>
Inputs make_inputs(const Case& c) {
  Inputs in;
  in.layout = kernels::KvCacheLayout{c.num_blocks, kBlockSize, c.num_kv_heads, c.head_dim};
  in.q_width = int64_t{c.num_heads} * c.head_dim;
  in.kv_width = in.layout.floats_per_slot();
  in.row_stride = in.q_width + 2 * in.kv_width;
  in.num_slots = c.num_blocks * kBlockSize;
  in.qkv = rounded<T>(random_vector(c.tokens * in.row_stride, 91, -2.0f, 2.0f));
  in.key_cache0 = rounded<T>(random_vector(in.num_slots * in.kv_width, 92));
  in.value_cache0 = rounded<T>(random_vector(in.num_slots * in.kv_width, 93));
  in.inv_freq = c.head_dim == 128 ? kernels::rope_inv_freq(c.head_dim, 500000.0, llama3_scaling())
                                  : kernels::rope_inv_freq(c.head_dim, 10000.0, RopeScaling{});
  std::mt19937 rng(94);
  std::uniform_int_distribution<int32_t> position(0, 131072);
  for (int64_t t = 0; t < c.tokens; ++t) in.positions.push_back(t < 3 ? static_cast<int32_t>(t * 8191) : position(rng));
  in.slots.resize(in.num_slots);
  std::iota(in.slots.begin(), in.slots.end(), 0);
  std::shuffle(in.slots.begin(), in.slots.end(), std::mt19937(95));
  in.slots.resize(c.tokens);
  in.ref_slots = in.slots;
  if (c.tokens > 1) in.slots[1] = in.ref_slots[1] = -1;
  if (c.tokens > 2) {
    in.slots[2] = in.num_slots + 3;
    in.ref_slots[2] = -1;
  }
  return in;
}

// Device state of one run: the QKV buffer and both caches after it.
template <class T>
struct Outputs {
  std::vector<T> qkv, key_cache, value_cache;
};

// fused = launch_rope_kv_write, else launch_rope then launch_kv_cache_write.
template <class T>
Outputs<T> run(const Case& c, const Inputs& in, bool fused, bool pdl) {
  DeviceBuffer<T> d_qkv(convert<T>(in.qkv)), d_kc(convert<T>(in.key_cache0)), d_vc(convert<T>(in.value_cache0));
  DeviceBuffer<int32_t> d_pos(in.positions);
  DeviceBuffer<int64_t> d_slots(in.slots);
  DeviceBuffer<float> d_freq(in.inv_freq);
  const TestStream stream;
  T* q = d_qkv.get();
  T* k = q + in.q_width;
  T* v = k + in.kv_width;
  if (fused) {
    EXPECT_EQ(kernels::cuda::launch_rope_kv_write<T>(q, k, v, c.tokens, in.row_stride, c.num_heads, d_pos.get(),
                                                     d_freq.get(), d_slots.get(), in.layout, d_kc.get(), d_vc.get(),
                                                     stream.get(), pdl),
              cudaSuccess);
  } else {
    EXPECT_EQ(kernels::cuda::launch_rope<T>(q, k, c.tokens, in.row_stride, c.num_heads, c.num_kv_heads, c.head_dim,
                                            d_pos.get(), d_freq.get(), stream.get()),
              cudaSuccess);
    EXPECT_EQ(kernels::cuda::launch_kv_cache_write<T>(k, v, c.tokens, in.row_stride, d_slots.get(), in.layout,
                                                      d_kc.get(), d_vc.get(), stream.get()),
              cudaSuccess);
  }
  EXPECT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
  return Outputs<T>{d_qkv.download(), d_kc.download(), d_vc.download()};
}

TYPED_TEST(RopeKvWriteCuda, MatchesCpuCompositionAndTheTwoKernelsItReplaces) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const Case c : kCases) {
    const Inputs in = make_inputs<T>(c);
    // CPU oracle: rope_ref on q and k, then kv_cache_write_ref of the rotated k (rounded to T, as stored) and v.
    std::vector<float> q = gather(in.qkv, c.tokens, in.row_stride, 0, in.q_width);
    std::vector<float> k = gather(in.qkv, c.tokens, in.row_stride, in.q_width, in.kv_width);
    const std::vector<float> v = gather(in.qkv, c.tokens, in.row_stride, in.q_width + in.kv_width, in.kv_width);
    kernels::rope_ref(q.data(), k.data(), c.tokens, c.num_heads, c.num_kv_heads, c.head_dim, in.positions.data(),
                      in.inv_freq.data());
    std::vector<float> key_expected = in.key_cache0, value_expected = in.value_cache0;
    const std::vector<float> k_stored = rounded<T>(k);
    kernels::kv_cache_write_ref(k_stored.data(), v.data(), c.tokens, in.ref_slots.data(), in.layout,
                                key_expected.data(), value_expected.data());

    const Outputs<T> fused = run<T>(c, in, true, false);
    const std::string what = std::to_string(c.num_heads) + "/" + std::to_string(c.num_kv_heads) + "/" +
                             std::to_string(c.head_dim) + " tokens " + std::to_string(c.tokens);
    const std::vector<float> got = to_f32(fused.qkv);
    EXPECT_LT(relative_error(gather(got, c.tokens, in.row_stride, 0, in.q_width), q), tolerance<T>()) << "q " << what;
    EXPECT_LT(relative_error(gather(got, c.tokens, in.row_stride, in.q_width, in.kv_width), k), tolerance<T>())
        << "k " << what;
    EXPECT_EQ(relative_error(gather(got, c.tokens, in.row_stride, in.q_width + in.kv_width, in.kv_width), v), 0.0)
        << "v untouched " << what;
    EXPECT_LT(relative_error(to_f32(fused.key_cache), key_expected), tolerance<T>()) << "key cache " << what;
    EXPECT_EQ(relative_error(to_f32(fused.value_cache), value_expected), 0.0) << "value cache " << what;

    // Bit for bit the two kernels it replaces, with or without PDL.
    const Outputs<T> separate = run<T>(c, in, false, false);
    const Outputs<T> fused_pdl = run<T>(c, in, true, true);
    for (const Outputs<T>* o : {&separate, &fused_pdl}) {
      EXPECT_TRUE(same_bits(o->qkv, fused.qkv)) << what;
      EXPECT_TRUE(same_bits(o->key_cache, fused.key_cache)) << what;
      EXPECT_TRUE(same_bits(o->value_cache, fused.value_cache)) << what;
    }
  }
}

TEST(RopeKvWriteCudaArgs, RejectsBadArgumentsWithoutLaunching) {
  float dummy[4] = {};
  const int32_t pos[1] = {0};
  const int64_t slot[1] = {0};
  const kernels::KvCacheLayout layout{4, 16, 2, 8};  // 16 elements per slot
  auto launch = [&](int64_t tokens, int64_t row_stride, kernels::KvCacheLayout l, float* k) {
    return kernels::cuda::launch_rope_kv_write<float>(dummy, k, dummy, tokens, row_stride, 2, pos, dummy, slot, l,
                                                      dummy, dummy, nullptr);
  };
  kernels::KvCacheLayout odd = layout;
  odd.head_dim = 7;
  kernels::KvCacheLayout no_block_size = layout;
  no_block_size.block_size = 0;
  kernels::KvCacheLayout huge_head = layout;
  huge_head.head_dim = 2048;
  EXPECT_EQ(launch(1, 48, odd, dummy), cudaErrorInvalidValue);
  EXPECT_EQ(launch(1, 48, no_block_size, dummy), cudaErrorInvalidValue);
  EXPECT_EQ(launch(1, 48, huge_head, dummy), cudaErrorInvalidValue);
  EXPECT_EQ(launch(1, 15, layout, dummy), cudaErrorInvalidValue);  // row_stride shorter than a slot
  EXPECT_EQ(launch(-1, 48, layout, dummy), cudaErrorInvalidValue);
  EXPECT_EQ(launch(1, 48, layout, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch(0, 48, layout, dummy), cudaSuccess);
}

}  // namespace
}  // namespace tessera
