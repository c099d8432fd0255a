// launch_paged_attention against paged_attention_ref, FP32 and BF16: decode (split-K and not), prefill (BF16 on the
// tensor-core kernel), chunked prefill, Llama-3.1-8B prompt sizes, mixed batches, GQA ratios 1/4/6/8/16, head_dim
// 64/128, sliding window, shuffled block tables, q read through a fused QKV row stride. Decode under context-length
// bounds (CUDA graphs), large batches and block sizes: paged_attention_decode_cuda_test.cpp.
#include <utility>
#include <vector>

#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"
#include "tests/kernels_cuda/paged_attention_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

// (num_heads, num_kv_heads): GQA ratios 1, 4, 6 (not a power of two), 8 and 16 (two head chunks of 8 per kv head
// on the CUDA-core decode kernel, one chunk of 16 on the tensor-core one).
const std::vector<std::pair<int, int>> kHeadShapes = {{4, 4}, {8, 2}, {12, 2}, {16, 2}, {32, 2}};

template <class T>
class PagedAttentionCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(PagedAttentionCuda, Types);

TYPED_TEST(PagedAttentionCuda, DecodeBlockBoundaryAndLongContexts) {
  TESSERA_REQUIRE_GPU();
  for (int head_dim : {64, 128}) {
    for (const auto& [heads, kv_heads] : kHeadShapes) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      // Small batch, contexts up to 4097: split-K with sequences that use only some of the splits.
      for (int context : {1, 15, 16, 17, 33, 1000, 4097}) spec.seqs.push_back({1, context});
      check_batch<TypeParam>(spec);
    }
  }
}

TYPED_TEST(PagedAttentionCuda, DecodeBatchOneSplitsLongContext) {
  TESSERA_REQUIRE_GPU();
  for (int context : {1000, 4097}) {
    BatchSpec spec;
    spec.num_heads = 32;  // Llama-3.1-8B attention: 32 heads, 8 kv heads, head_dim 128
    spec.num_kv_heads = 8;
    spec.seqs = {{1, context}};
    // One sequence cannot fill the GPU: the context must be split (the workspace holds the partials).
    EXPECT_GT(kernels::cuda::paged_attention_workspace_bytes(1, context, 32, 8, 128, 0), 0u);
    check_batch<TypeParam>(spec);
  }
}

TYPED_TEST(PagedAttentionCuda, DecodeManyShortContexts) {
  TESSERA_REQUIRE_GPU();
  // Visible ranges of at most one 64-key tile are never split: no workspace needed. (40 sequences fill the GPU
  // unsplit; smaller batches of up to 512 tokens split, so the workspace for up to 40 sequences is not empty.)
  EXPECT_EQ(kernels::cuda::paged_attention_workspace_bytes(40, 64, 32, 8, 128, 0), 0u);
  EXPECT_GT(kernels::cuda::paged_attention_workspace_bytes(40, 512, 32, 8, 128, 0), 0u);
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  for (int s = 0; s < 40; ++s) spec.seqs.push_back({1, 1 + (s * 37) % 300});
  check_batch<TypeParam>(spec);
}

TYPED_TEST(PagedAttentionCuda, PrefillFreshPrompts) {
  TESSERA_REQUIRE_GPU();
  for (int head_dim : {64, 128}) {
    for (const auto& [heads, kv_heads] : kHeadShapes) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      for (int len : {2, 15, 16, 17, 33, 70}) spec.seqs.push_back({len, len});
      check_batch<TypeParam>(spec);
    }
  }
}

TYPED_TEST(PagedAttentionCuda, ChunkedPrefillReadsEarlierBlocks) {
  TESSERA_REQUIRE_GPU();
  for (int head_dim : {64, 128}) {
    BatchSpec spec;
    spec.num_heads = 8;
    spec.num_kv_heads = 2;
    spec.head_dim = head_dim;
    spec.seqs = {{16, 48}, {33, 1000}, {5, 17}, {64, 200}, {2, 4097}};
    check_batch<TypeParam>(spec);
  }
}

// Llama-3.1-8B attention (32 heads, 8 kv heads, head_dim 128) at the sizes that dominate time to first token: a
// 2048-token prompt, and a 512-token chunk over 2048 earlier cached tokens. BF16 takes the tensor-core kernel here
// (many 64-key tiles, the causal diagonal inside tiles, fully visible tiles that skip the mask).
TYPED_TEST(PagedAttentionCuda, PrefillLlama8BLongPrompt) {
  TESSERA_REQUIRE_GPU();
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.fused_qkv = true;
  spec.seqs = {{2048, 2048}};
  check_batch<TypeParam>(spec);
}

TYPED_TEST(PagedAttentionCuda, PrefillLlama8BChunkAndHeadDim64) {
  TESSERA_REQUIRE_GPU();
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.fused_qkv = true;
  spec.seqs = {{512, 2560}};
  check_batch<TypeParam>(spec);
  // head_dim 64 without GQA, tiles that start off the 64-key grid (chunk starts at 570) and a decode row.
  BatchSpec small;
  small.num_heads = 16;
  small.num_kv_heads = 16;
  small.head_dim = 64;
  small.seqs = {{200, 200}, {130, 700}, {1, 300}};
  check_batch<TypeParam>(small);
}

// The tensor-core prefill kernel compiled for three blocks per SM (AttentionTuning::prefill_blocks_per_sm; registers
// capped at 168) over the shapes of the tests above: fresh prompts at both head dims, chunks reading earlier
// blocks, the Llama-3.1-8B prompt and chunk, and a sliding window.
TYPED_TEST(PagedAttentionCuda, PrefillAtThreeBlocksPerSm) {
  TESSERA_REQUIRE_GPU();
  auto spec_of = [](int heads, int kv_heads, int head_dim, std::vector<SeqSpec> seqs) {
    BatchSpec spec;
    spec.num_heads = heads;
    spec.num_kv_heads = kv_heads;
    spec.head_dim = head_dim;
    spec.seqs = std::move(seqs);
    spec.tuning.prefill_blocks_per_sm = 3;
    return spec;
  };
  for (int head_dim : {64, 128}) {
    check_batch<TypeParam>(spec_of(8, 2, head_dim, {{2, 2}, {15, 15}, {16, 16}, {17, 17}, {33, 33}, {70, 70}}));
    check_batch<TypeParam>(spec_of(8, 2, head_dim, {{16, 48}, {33, 1000}, {5, 17}, {64, 200}, {2, 4097}, {1, 300}}));
  }
  BatchSpec llama = spec_of(32, 8, 128, {{2048, 2048}});
  llama.fused_qkv = true;
  check_batch<TypeParam>(llama);
  llama.seqs = {{512, 2560}, {792, 1000}};
  check_batch<TypeParam>(llama);
  BatchSpec window = spec_of(32, 8, 128, {{1, 1000}, {40, 40}, {70, 900}});
  window.sliding_window = 20;
  check_batch<TypeParam>(window);
  for (int blocks : {0, 1, 4}) {  // occupancies the kernel is not compiled for: rejected, nothing launched
    BatchSpec bad = spec_of(8, 2, 128, {{17, 17}});
    bad.tuning.prefill_blocks_per_sm = blocks;
    EXPECT_EQ(AttentionProblem<TypeParam>(bad).launch(nullptr), cudaErrorInvalidValue) << blocks;
  }
}

TYPED_TEST(PagedAttentionCuda, MixedDecodeAndPrefillWithFusedQkvStride) {
  TESSERA_REQUIRE_GPU();
  for (int head_dim : {64, 128}) {
    BatchSpec spec;
    spec.num_heads = 32;
    spec.num_kv_heads = 8;
    spec.head_dim = head_dim;
    spec.fused_qkv = true;
    spec.seqs = {{1, 1000}, {33, 33}, {1, 1}, {20, 300}, {1, 17}, {1, 4097}, {3, 16}};
    check_batch<TypeParam>(spec);
  }
}

TYPED_TEST(PagedAttentionCuda, SlidingWindow) {
  TESSERA_REQUIRE_GPU();
  for (int window : {20, 600}) {
    BatchSpec spec;
    spec.num_heads = 32;  // Mistral-7B: 32 heads, 8 kv heads, head_dim 128
    spec.num_kv_heads = 8;
    spec.sliding_window = window;
    // Decode with contexts below, at and far beyond the window (600 > 512 splits a range that starts past 0),
    // prefill chunks whose tiles straddle the window edge.
    spec.seqs = {{1, 10}, {1, 20}, {1, 1000}, {1, 4097}, {40, 40}, {70, 900}};
    check_batch<TypeParam>(spec);
  }
}

TYPED_TEST(PagedAttentionCuda, RejectsUnsupportedShapes) {
  using T = TypeParam;
  kernels::KvCacheLayout layout{4, 16, 2, 96};
  kernels::AttentionParams params;
  params.num_heads = 8;
  // Argument errors are caught before anything touches the device, so no GPU is needed.
  EXPECT_EQ(kernels::cuda::launch_paged_attention<T>(nullptr, 8 * 96, nullptr, nullptr, layout, nullptr, nullptr,
                                                     nullptr, nullptr, 1, 1, 1, 1, 1, params, nullptr, nullptr, 0,
                                                     nullptr),
            cudaErrorInvalidValue);
  layout.head_dim = 128;
  params.num_heads = 7;  // not a multiple of 2 kv heads
  EXPECT_EQ(kernels::cuda::launch_paged_attention<T>(nullptr, 7 * 128, nullptr, nullptr, layout, nullptr, nullptr,
                                                     nullptr, nullptr, 1, 1, 1, 1, 1, params, nullptr, nullptr, 0,
                                                     nullptr),
            cudaErrorInvalidValue);
}

TYPED_TEST(PagedAttentionCuda, RejectsTooSmallWorkspaceAndMisalignedStride) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const kernels::KvCacheLayout layout{8, 16, 8, 128};
  kernels::AttentionParams params;
  params.num_heads = 32;
  const int context = 100;
  DeviceBuffer<T> q(32 * 128 + 8), cache(8 * 16 * 8 * 128), out(32 * 128);
  DeviceBuffer<int32_t> meta(16);
  const size_t needed = kernels::cuda::paged_attention_workspace_bytes(1, 8192, 32, 8, 128, 0);
  ASSERT_GT(needed, 0u);
  DeviceBuffer<uint8_t> ws(needed);
  // max_context_len 8192 asks for split-K partials: one byte short is refused.
  EXPECT_EQ(kernels::cuda::launch_paged_attention<T>(q.get(), 32 * 128, cache.get(), cache.get(), layout, meta.get(),
                                                     meta.get(), meta.get(), meta.get(), 8, 1, 1, 1, 8192, params,
                                                     out.get(), ws.get(), needed - 1, nullptr),
            cudaErrorInvalidValue);
  // A q row stride that breaks 16-byte alignment of the rows is refused.
  EXPECT_EQ(kernels::cuda::launch_paged_attention<T>(q.get(), 32 * 128 + 1, cache.get(), cache.get(), layout,
                                                     meta.get(), meta.get(), meta.get(), meta.get(), 8, 1, 1, 1,
                                                     context, params, out.get(), ws.get(), needed, nullptr),
            cudaErrorInvalidValue);
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace tessera
