// The split decode of launch_paged_attention in one launch: the splits' partials are combined by the last split
// block of each (sequence, head chunk), counted on counters in the workspace that every launch must leave at zero.
// Checked against paged_attention_ref at contexts 1 .. 4000 and batch sizes 1, 3 and 8, under the exact context
// bound and the executor's graph bucket (most sequences then use some of the planned splits, short ones a single
// one); then launched again (with programmatic dependent launch) and replayed 3 times from a captured graph, each
// time after poisoning the output and the partials (NaN): every run must give the first run's output bit for bit and
// leave every counter at zero. FP32 runs the CUDA-core kernel, BF16 the tensor-core kernel.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"
#include "tests/kernels_cuda/paged_attention_test_util.hpp"

namespace tessera {
namespace {

using namespace test;

template <class T>
class PagedAttentionSplitCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(PagedAttentionSplitCuda, Types);

constexpr int kMinGraphContext = 512;  // the executor's smallest graph context bucket

int graph_bucket(int context) {
  int bucket = kMinGraphContext;
  while (bucket < context) bucket *= 2;
  return bucket;
}

template <class T>
void expect_same_bits(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(T)), 0) << what << ": output bits differ";
}

template <class T>
void expect_counters_zero(const AttentionProblem<T>& problem, const std::string& what) {
  const std::vector<uint32_t> counters = problem.counters();
  size_t nonzero = 0;
  for (uint32_t c : counters) nonzero += c != 0;
  EXPECT_EQ(nonzero, 0u) << what << ": " << nonzero << " of " << counters.size() << " counters left non-zero";
}

// The whole check for one problem: oracle, a second launch (PDL), 3 replays of a captured graph.
template <class T>
void check_split_runs(const BatchSpec& spec) {
  SCOPED_TRACE(describe(spec));
  AttentionProblem<T> problem(spec);
  TestStream stream(false);  // non-blocking (capture): synchronize the device after legacy-stream memsets
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  TESSERA_CUDA_OK(problem.launch(stream.get()));
  TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
  problem.expect_matches_reference();
  expect_counters_zero(problem, "first launch");
  const std::vector<T> first = problem.output();

  problem.poison_output();
  problem.poison_partials();
  TESSERA_CUDA_OK(cudaDeviceSynchronize());
  TESSERA_CUDA_OK(problem.launch(stream.get(), true));
  TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
  expect_same_bits(problem.output(), first, "second launch");
  expect_counters_zero(problem, "second launch");

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  TESSERA_CUDA_OK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  const cudaError_t launched = problem.launch(stream.get());
  const cudaError_t captured = cudaStreamEndCapture(stream.get(), &graph);
  EXPECT_EQ(launched, cudaSuccess) << cudaGetErrorString(launched);
  ASSERT_EQ(captured, cudaSuccess) << cudaGetErrorString(captured);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 3; ++replay) {
    const std::string what = "graph replay " + std::to_string(replay);
    problem.poison_output();
    problem.poison_partials();
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    TESSERA_CUDA_OK(cudaGraphLaunch(exec, stream.get()));
    TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
    expect_same_bits(problem.output(), first, what);
    expect_counters_zero(problem, what);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// Batch sizes 1, 3, 8 at one context (sequence s at context - 5 s, at least 1: neighbouring lengths, so the
// sequences of a batch may use different numbers of splits), under the exact bound and the graph bucket.
template <class T>
void check_context(int context, int num_heads, int num_kv_heads, int head_dim) {
  for (int batch : {1, 3, 8}) {
    for (int bound : {context, graph_bucket(context)}) {
      BatchSpec spec;
      spec.num_heads = num_heads;
      spec.num_kv_heads = num_kv_heads;
      spec.head_dim = head_dim;
      spec.max_context_bound = bound;
      spec.seed = static_cast<uint32_t>(context * 16 + batch);
      for (int s = 0; s < batch; ++s) spec.seqs.push_back({1, std::max(1, context - 5 * s)});
      // Under the bucket (> one 64-key tile) small batches are split.
      if (bound > 64) {
        EXPECT_GT(kernels::cuda::paged_attention_workspace_counter_bytes(batch, bound, num_heads, num_kv_heads,
                                                                         head_dim, 0),
                  0u);
      }
      check_split_runs<T>(spec);
    }
  }
}

// GQA ratio 4 as Llama-3.1-8B (16 query heads over 4 kv heads, so the large contexts stay quick to build).
TYPED_TEST(PagedAttentionSplitCuda, ShortContexts) {
  TESSERA_REQUIRE_GPU();
  for (int context : {1, 16, 17}) check_context<TypeParam>(context, 16, 4, 128);
}

TYPED_TEST(PagedAttentionSplitCuda, MediumContexts) {
  TESSERA_REQUIRE_GPU();
  for (int context : {130, 513}) check_context<TypeParam>(context, 16, 4, 128);
}

TYPED_TEST(PagedAttentionSplitCuda, LongContext) {
  TESSERA_REQUIRE_GPU();
  check_context<TypeParam>(4000, 16, 4, 128);
}

// The measured decode step: Llama-3.1-8B attention at batch 1, 130 tokens, under the executor's 512 bucket.
TYPED_TEST(PagedAttentionSplitCuda, Llama8BBatchOne) {
  TESSERA_REQUIRE_GPU();
  for (int context : {130, 129, 64, 65}) {
    BatchSpec spec;
    spec.num_heads = 32;
    spec.num_kv_heads = 8;
    spec.fused_qkv = true;
    spec.max_context_bound = 512;
    spec.seqs = {{1, context}};
    check_split_runs<TypeParam>(spec);
  }
}

// Head chunks other than one per kv head: GQA 1, 8 (the CUDA-core kernel's largest chunk) and 32 (two
// tensor-core chunks per kv head, each with its own counter), head_dim 64, a sliding window, a padding slot.
TYPED_TEST(PagedAttentionSplitCuda, OtherHeadShapesAndWindow) {
  TESSERA_REQUIRE_GPU();
  const std::vector<std::pair<int, int>> shapes = {{8, 8}, {32, 4}, {64, 2}};
  for (const auto& [heads, kv_heads] : shapes) {
    for (int head_dim : {64, 128}) {
      for (int window : {0, 300}) {
        BatchSpec spec;
        spec.num_heads = heads;
        spec.num_kv_heads = kv_heads;
        spec.head_dim = head_dim;
        spec.sliding_window = window;
        spec.max_context_bound = 2048;
        spec.seqs = {{1, 1000}, {0, 0}, {1, 17}, {1, 130}};
        check_split_runs<TypeParam>(spec);
      }
    }
  }
}

// The counter area is one fixed range at the workspace's start, whatever the batch and context bound of the launch
// (so zeroing it once serves every launch sized within the workspace), and it is absent when nothing splits.
TEST(PagedAttentionSplitWorkspace, CounterAreaIsFixedAndInsideTheWorkspace) {
  TESSERA_REQUIRE_GPU();
  namespace k = kernels::cuda;
  EXPECT_EQ(k::paged_attention_workspace_counter_bytes(8, 64, 32, 8, 128, 0), 0u);  // one tile: never split
  const size_t counters = k::paged_attention_workspace_counter_bytes(1, 512, 32, 8, 128, 0);
  ASSERT_GT(counters, 0u);
  EXPECT_EQ(counters % 16, 0u);
  for (const auto& [seqs, bound] : std::vector<std::pair<int, int>>{{1, 131072}, {3, 4096}, {64, 512}, {256, 8192}}) {
    EXPECT_EQ(k::paged_attention_workspace_counter_bytes(seqs, bound, 32, 8, 128, 0), counters)
        << seqs << " sequences, bound " << bound;
    EXPECT_GT(k::paged_attention_workspace_bytes(seqs, bound, 32, 8, 128, 0), counters);
  }
}

}  // namespace
}  // namespace tessera
