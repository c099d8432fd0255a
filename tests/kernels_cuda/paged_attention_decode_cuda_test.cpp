// Decode path of launch_paged_attention (query_len == 1) against paged_attention_ref, FP32 (CUDA-core kernel) and
// BF16 (tensor-core pipelined kernel on sm_80+): max_context_len as an upper bound far above the real contexts
// (the CUDA-graph buckets: splits past a sequence's range must be ignored), mixed short and long sequences, a large
// batch, sliding windows, GQA ratios 1 to 32, block sizes 1 to 32, and a captured graph replayed with new
// device-side context lengths.
#include <tuple>

#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"
#include "tests/kernels_cuda/paged_attention_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

// Block-boundary and tile-boundary (64-key tiles) context lengths, one of them past 4096.
const std::vector<int> kBoundaryContexts = {1, 15, 16, 17, 33, 1000, 4097};

template <class T>
class PagedAttentionDecodeCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(PagedAttentionDecodeCuda, Types);

TYPED_TEST(PagedAttentionDecodeCuda, ContextBoundFarAboveRealContexts) {
  TESSERA_REQUIRE_GPU();
  // (num_heads, num_kv_heads): GQA ratios 1, 4 (Llama-3.1-8B) and 8.
  for (const auto& [heads, kv_heads] : std::vector<std::pair<int, int>>{{8, 8}, {32, 8}, {32, 4}}) {
    for (int head_dim : {64, 128}) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      spec.max_context_bound = 8192;  // the power-of-two bucket above 4097
      spec.table_slack = 400;         // block-table rows longer than any sequence needs
      for (int context : kBoundaryContexts) spec.seqs.push_back({1, context});
      // The bound, not the real lengths, plans the grid: it is split, and most sequences use only the first split.
      EXPECT_GT(kernels::cuda::paged_attention_workspace_bytes(7, 8192, heads, kv_heads, head_dim, 0), 0u);
      check_batch<TypeParam>(spec);
    }
  }
}

TYPED_TEST(PagedAttentionDecodeCuda, SingleSequenceUnderLargeBound) {
  TESSERA_REQUIRE_GPU();
  for (int context : {1, 17, 300, 2500}) {
    BatchSpec spec;
    spec.num_heads = 32;
    spec.num_kv_heads = 8;
    spec.max_context_bound = 16384;  // dozens of splits, all but a few empty for this sequence
    spec.seqs = {{1, context}};
    check_batch<TypeParam>(spec);
  }
}

// The executor's small-batch decode steps. Under a graph bucket of 512, one or two sequences get 8 splits of 64 keys,
// which the BF16 tensor-core kernel combines inside thread block clusters (sm_90+: a grid of at most one block per
// SM); three sequences (24 x 8 blocks) and the bucket of 1024 (16 splits) take the combine kernel. Contexts cover one
// used split, tile edges, and every split used.
TYPED_TEST(PagedAttentionDecodeCuda, SplitsAtSmallBatchesUnderExecutorBuckets) {
  TESSERA_REQUIRE_GPU();
  for (int bound : {512, 1024}) {
    auto spec_of = [bound](std::vector<SeqSpec> seqs) {
      BatchSpec spec;
      spec.num_heads = 32;  // Llama-3.1-8B attention
      spec.num_kv_heads = 8;
      spec.fused_qkv = true;
      spec.max_context_bound = bound;
      spec.seqs = std::move(seqs);
      return spec;
    };
    for (int context : {1, 64, 65, 130, 300, bound}) check_batch<TypeParam>(spec_of({{1, context}}));
    check_batch<TypeParam>(spec_of({{1, 65}, {1, bound}}));
    check_batch<TypeParam>(spec_of({{1, 17}, {1, 200}, {1, bound}}));
  }
}

TYPED_TEST(PagedAttentionDecodeCuda, LargeBatchOfMixedLengths) {
  TESSERA_REQUIRE_GPU();
  // Llama-3.1-8B attention, 130 sequences (about four waves of blocks, no split) of lengths 1 .. 160 and two
  // longer ones, under the bucket of the longest. (Lengths stay short: the host builds and rounds the whole cache.)
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.fused_qkv = true;
  spec.max_context_bound = 8192;
  for (int s = 0; s < 128; ++s) spec.seqs.push_back({1, 1 + (s * 37) % 160});
  spec.seqs.push_back({1, 1000});
  spec.seqs.push_back({1, 17});
  check_batch<TypeParam>(spec);
}

// Grids many waves deep (on an H100, at least 4 x 3 x 132 blocks) take the tensor-core kernel's two-stage pipeline
// in either block shape (4 warps x 3 blocks per SM, or 2 warps x 6, whichever the device would pick): 256 sequences
// of Llama-3.1-8B attention (2048 blocks) and of 8 kv heads at head_dim 64. Contexts end inside and on the edges of
// both tile sizes (32 and 64 keys).
TYPED_TEST(PagedAttentionDecodeCuda, ManyWavesOfBlocks) {
  TESSERA_REQUIRE_GPU();
  using kernels::LargeGridBlocks;
  for (LargeGridBlocks blocks : {LargeGridBlocks::kFourWarps, LargeGridBlocks::kTwoWarps, LargeGridBlocks::kAuto}) {
    for (const auto& [heads, kv_heads, head_dim] : std::vector<std::tuple<int, int, int>>{{32, 8, 128}, {8, 8, 64}}) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      spec.max_context_bound = 2048;
      spec.tuning.large_grid_blocks = blocks;
      for (int s = 0; s < 250; ++s) spec.seqs.push_back({1, 1 + (s * 53) % 300});
      for (int context : {31, 32, 33, 1000, 2048, 65}) spec.seqs.push_back({1, context});
      check_batch<TypeParam>(spec);
    }
  }
}

TYPED_TEST(PagedAttentionDecodeCuda, SlidingWindowUnderBound) {
  TESSERA_REQUIRE_GPU();
  for (int window : {64, 100, 600}) {
    BatchSpec spec;
    spec.num_heads = 32;  // Mistral-7B: 32 heads, 8 kv heads, head_dim 128
    spec.num_kv_heads = 8;
    spec.sliding_window = window;
    spec.max_context_bound = 8192;
    // Ranges that start inside a block and inside a 64-key tile (700 - 600 = 100, 4097 - 64 = 4033).
    spec.seqs = {{1, 1}, {1, 50}, {1, 64}, {1, 65}, {1, 100}, {1, 101}, {1, 700}, {1, 4097}};
    check_batch<TypeParam>(spec);
  }
  BatchSpec small;
  small.num_heads = 8;
  small.num_kv_heads = 2;
  small.head_dim = 64;
  small.sliding_window = 300;
  small.seqs = {{1, 299}, {1, 300}, {1, 301}, {1, 2049}};
  check_batch<TypeParam>(small);
}

TYPED_TEST(PagedAttentionDecodeCuda, BlockSizesOtherThanSixteen) {
  TESSERA_REQUIRE_GPU();
  for (int block_size : {1, 5, 8, 32}) {
    BatchSpec spec;
    spec.num_heads = 16;
    spec.num_kv_heads = 4;
    spec.block_size = block_size;
    // Tile edges (64, 128) and a partial last block for every block size.
    spec.seqs = {{1, 1}, {1, 63}, {1, 64}, {1, 65}, {1, 127}, {1, 129}, {1, 700}};
    check_batch<TypeParam>(spec);
  }
}

TYPED_TEST(PagedAttentionDecodeCuda, LargeGqaGroupsSpanSeveralHeadChunks) {
  TESSERA_REQUIRE_GPU();
  // Ratios 16 (one tensor-core chunk), 24 (a chunk of 16 and one of 8) and 32 (two chunks).
  for (const auto& [heads, kv_heads] : std::vector<std::pair<int, int>>{{16, 1}, {48, 2}, {64, 2}}) {
    for (int head_dim : {64, 128}) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      spec.seqs = {{1, 1}, {1, 17}, {1, 1000}, {1, 4097}};
      check_batch<TypeParam>(spec);
    }
  }
}

// A decode step captured once for a (batch, context bucket) must serve every later step whose lengths fit the
// bucket: replay the same graph after changing the device-side context lengths, including a padding slot
// (query_len 0) that is skipped.
TYPED_TEST(PagedAttentionDecodeCuda, CapturedGraphFollowsDeviceContextLengths) {
  TESSERA_REQUIRE_GPU();
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.max_context_bound = 8192;
  spec.seqs = {{1, 4097}, {1, 1000}, {1, 33}, {1, 17}, {1, 16}, {1, 1}, {1, 2000}, {0, 0}};
  AttentionProblem<TypeParam> problem(spec);

  cudaStream_t stream = nullptr;
  TESSERA_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  problem.set_context_lengths({1, 999, 33, 5, 16, 1, 1500, 0});
  TESSERA_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const cudaError_t launched = problem.launch(stream);
  const cudaError_t captured = cudaStreamEndCapture(stream, &graph);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  ASSERT_EQ(captured, cudaSuccess) << cudaGetErrorString(captured);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  const std::vector<std::vector<int32_t>> steps = {{1, 999, 33, 5, 16, 1, 1500, 0}, {4097, 1, 17, 17, 3, 1, 2000, 0},
                                                   {64, 65, 1, 16, 15, 1, 129, 0}};
  for (const std::vector<int32_t>& lengths : steps) {
    SCOPED_TRACE("replay with context " + std::to_string(lengths[0]) + ", " + std::to_string(lengths[1]) + ", ...");
    problem.set_context_lengths(lengths);
    problem.poison_output();
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    TESSERA_CUDA_OK(cudaGraphLaunch(exec, stream));
    TESSERA_CUDA_OK(cudaStreamSynchronize(stream));
    problem.expect_matches_reference();
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace tessera
