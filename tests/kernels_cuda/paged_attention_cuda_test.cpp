// launch_paged_attention against paged_attention_ref, FP32 and BF16: decode (split-K and not), prefill (BF16 on the
// tensor-core kernel), chunked prefill, Llama-3.1-8B prompt sizes, mixed batches, GQA ratios 1/4/6/8/16, head_dim
// 64/128, sliding window, shuffled block tables, q read through a fused QKV row stride.
#include <algorithm>
#include <numeric>
#include <string>

#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

struct SeqSpec {
  int query_len = 1;
  int context_len = 1;
};

struct BatchSpec {
  std::vector<SeqSpec> seqs;
  int num_heads = 8;
  int num_kv_heads = 2;
  int head_dim = 128;
  int block_size = 16;
  int sliding_window = 0;
  bool fused_qkv = false;  // q rows at the stride of a fused [q | k | v] projection row
  uint32_t seed = 1;
};

std::string describe(const BatchSpec& spec) {
  std::string s = "heads " + std::to_string(spec.num_heads) + "/" + std::to_string(spec.num_kv_heads) + " dim " +
                  std::to_string(spec.head_dim) + " window " + std::to_string(spec.sliding_window) + " seqs";
  for (const SeqSpec& seq : spec.seqs) s += " (" + std::to_string(seq.query_len) + "," + std::to_string(seq.context_len) + ")";
  return s;
}

// Builds random inputs (rounded to T), runs the CPU oracle and the GPU launcher, and checks every sequence's
// output rows against the oracle with tolerance<T>().
template <class T>
void check_batch(const BatchSpec& spec) {
  SCOPED_TRACE(describe(spec));
  const int num_seqs = static_cast<int>(spec.seqs.size());
  const int bs = spec.block_size;
  const int64_t row_width = static_cast<int64_t>(spec.num_heads) * spec.head_dim;
  const int64_t q_stride =
      spec.fused_qkv ? static_cast<int64_t>(spec.num_heads + 2 * spec.num_kv_heads) * spec.head_dim : row_width;

  // Block tables: a random permutation of all cache blocks, so consecutive positions live in scattered blocks.
  int max_blocks_per_seq = 1;
  int64_t total_blocks = 3;  // a few blocks nobody owns
  for (const SeqSpec& seq : spec.seqs) {
    const int blocks = (seq.context_len + bs - 1) / bs;
    max_blocks_per_seq = std::max(max_blocks_per_seq, blocks + 1);
    total_blocks += blocks;
  }
  std::vector<int32_t> block_ids(total_blocks);
  std::iota(block_ids.begin(), block_ids.end(), 0);
  std::shuffle(block_ids.begin(), block_ids.end(), std::mt19937(spec.seed));
  // Unused table entries hold an id far outside the cache: a kernel reading past context_len faults.
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs) * max_blocks_per_seq, 1 << 30);
  std::vector<int32_t> query_start(num_seqs), query_len(num_seqs), context_len(num_seqs);
  std::vector<kernels::AttentionSequence> sequences(num_seqs);
  int64_t next_block = 0;
  int64_t num_tokens = 0;
  int max_query_len = 1, max_context_len = 1;
  for (int s = 0; s < num_seqs; ++s) {
    const SeqSpec& seq = spec.seqs[s];
    const int blocks = (seq.context_len + bs - 1) / bs;
    for (int b = 0; b < blocks; ++b) tables[static_cast<size_t>(s) * max_blocks_per_seq + b] = block_ids[next_block++];
    query_start[s] = static_cast<int32_t>(num_tokens);
    query_len[s] = seq.query_len;
    context_len[s] = seq.context_len;
    sequences[s] = {num_tokens, seq.query_len, seq.context_len, tables.data() + static_cast<size_t>(s) * max_blocks_per_seq};
    num_tokens += seq.query_len;
    max_query_len = std::max(max_query_len, seq.query_len);
    max_context_len = std::max(max_context_len, seq.context_len);
  }

  const kernels::KvCacheLayout layout{total_blocks, bs, spec.num_kv_heads, spec.head_dim};
  const size_t cache_size = static_cast<size_t>(total_blocks) * bs * layout.floats_per_slot();
  const std::vector<float> key_cache = rounded<T>(random_vector(cache_size, spec.seed + 1));
  const std::vector<float> value_cache = rounded<T>(random_vector(cache_size, spec.seed + 2));
  const std::vector<float> q_rows = rounded<T>(random_vector(static_cast<size_t>(num_tokens * q_stride), spec.seed + 3));
  std::vector<float> q_dense(static_cast<size_t>(num_tokens * row_width));
  for (int64_t t = 0; t < num_tokens; ++t)
    std::copy_n(q_rows.begin() + t * q_stride, row_width, q_dense.begin() + t * row_width);

  kernels::AttentionParams params;
  params.num_heads = spec.num_heads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(spec.head_dim));
  params.sliding_window = spec.sliding_window;
  std::vector<float> expected(q_dense.size());
  kernels::paged_attention_ref(q_dense.data(), key_cache.data(), value_cache.data(), layout, sequences, params,
                               expected.data());

  DeviceBuffer<T> d_q(convert<T>(q_rows));
  DeviceBuffer<T> d_key(convert<T>(key_cache));
  DeviceBuffer<T> d_value(convert<T>(value_cache));
  DeviceBuffer<int32_t> d_start(query_start), d_qlen(query_len), d_ctx(context_len), d_tables(tables);
  DeviceBuffer<T> d_out(q_dense.size());
  const size_t ws_bytes = kernels::cuda::paged_attention_workspace_bytes(
      num_seqs, max_context_len, spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.sliding_window);
  DeviceBuffer<uint8_t> d_ws(std::max<size_t>(ws_bytes, 1));
  TESSERA_CUDA_OK(kernels::cuda::launch_paged_attention<T>(
      d_q.get(), q_stride, d_key.get(), d_value.get(), layout, d_start.get(), d_qlen.get(), d_ctx.get(),
      d_tables.get(), max_blocks_per_seq, num_seqs, num_tokens, max_query_len, max_context_len, params, d_out.get(),
      d_ws.get(), ws_bytes, nullptr));
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<float> out = to_f32(d_out.download());

  for (int s = 0; s < num_seqs; ++s) {
    const auto lo = static_cast<size_t>(query_start[s] * row_width);
    const auto hi = lo + static_cast<size_t>(query_len[s] * row_width);
    const std::vector<float> got(out.begin() + lo, out.begin() + hi);
    const std::vector<float> want(expected.begin() + lo, expected.begin() + hi);
    EXPECT_LT(relative_error(got, want), tolerance<T>())
        << "sequence " << s << " (query_len " << query_len[s] << ", context " << context_len[s] << ")";
  }
}

// (num_heads, num_kv_heads): GQA ratios 1, 4, 6 (not a power of two), 8 and 16 (two head chunks per kv head).
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

TYPED_TEST(PagedAttentionCuda, DecodeManyShortContextsDoNotSplit) {
  TESSERA_REQUIRE_GPU();
  // Visible ranges of at most 512 tokens are never split: no workspace needed.
  EXPECT_EQ(kernels::cuda::paged_attention_workspace_bytes(40, 512, 32, 8, 128, 0), 0u);
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
