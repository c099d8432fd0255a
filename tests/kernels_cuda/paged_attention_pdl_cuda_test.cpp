// launch_paged_attention with programmatic dependent launch, as the executor's decode step runs it: the step's KV
// write (launch_kv_cache_write, PDL) of each sequence's newest token just before the attention (PDL), and q written
// by the kernel before that. Before every run the newest K/V rows and q are poisoned (NaN) and rewritten by those
// kernels, so an attention kernel that read them before its pdl_wait() would produce NaN. Checked: the oracle,
// bit equality with plain launches, small batches at short contexts (split into one-tile partitions) under
// CUDA-graph context bounds, and a captured chain replayed with new device-side context lengths.
#include <cstring>
#include <string>

#include "kernels/embedding.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/paged_attention.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"
#include "tests/kernels_cuda/paged_attention_test_util.hpp"

namespace tessera {
namespace {

using namespace test;
namespace k = kernels::cuda;

template <class T>
class PagedAttentionPdlCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(PagedAttentionPdlCuda, Types);

// The kernels around the attention launch, over an AttentionProblem of decode sequences: q rows copied in by
// launch_embedding (from a table of the problem's q rows), each sequence's newest K/V row written by
// launch_kv_cache_write (from copies of the problem's cache rows), then the attention.
template <class T>
class DecodeChain {
 public:
  explicit DecodeChain(AttentionProblem<T>& problem)
      : problem_(problem),
        row_width_(problem.layout().floats_per_slot()),
        q_table_(convert<T>(problem.q_rows())),
        q_ids_(identity(problem.num_tokens())),
        keys_(static_cast<size_t>(problem.num_tokens()) * row_width_),
        values_(static_cast<size_t>(problem.num_tokens()) * row_width_),
        slots_(static_cast<size_t>(problem.num_tokens())) {}

  // Uploads the rows and slots of the newest tokens under the problem's current context lengths (decode only:
  // sequence s is token s). Synchronous.
  void prepare() {
    slots_host_ = problem_.newest_slots();
    std::vector<float> keys(static_cast<size_t>(problem_.num_tokens()) * row_width_, 0.0f), values(keys.size(), 0.0f);
    for (size_t s = 0; s < slots_host_.size(); ++s) {
      if (slots_host_[s] < 0) continue;
      std::copy_n(problem_.key_cache().begin() + slots_host_[s] * row_width_, row_width_, keys.begin() + s * row_width_);
      std::copy_n(problem_.value_cache().begin() + slots_host_[s] * row_width_, row_width_,
                  values.begin() + s * row_width_);
    }
    keys_.upload(convert<T>(keys));
    values_.upload(convert<T>(values));
    slots_.upload(slots_host_);
  }

  // NaN into q, the newest K/V rows and the output (synchronous, legacy stream).
  void poison() const {
    cudaMemset(problem_.device_q(), 0xff, problem_.q_rows().size() * sizeof(T));
    for (int64_t slot : slots_host_) {
      if (slot < 0) continue;
      cudaMemset(problem_.device_key_cache() + slot * row_width_, 0xff, row_width_ * sizeof(T));
      cudaMemset(problem_.device_value_cache() + slot * row_width_, 0xff, row_width_ * sizeof(T));
    }
    problem_.poison_output();
  }

  // q copy (launched normally, the chain's first kernel), KV write and attention (PDL when `pdl`).
  cudaError_t run(cudaStream_t stream, bool pdl) const {
    cudaError_t e = k::launch_embedding<T>(q_table_.get(), problem_.num_tokens(), problem_.q_stride(), q_ids_.get(),
                                           problem_.num_tokens(), problem_.device_q(), stream, false);
    if (e == cudaSuccess) {
      e = k::launch_kv_cache_write<T>(keys_.get(), values_.get(), problem_.num_tokens(), row_width_, slots_.get(),
                                      problem_.layout(), problem_.device_key_cache(), problem_.device_value_cache(),
                                      stream, pdl);
    }
    if (e == cudaSuccess) e = problem_.launch(stream, pdl);
    return e;
  }

 private:
  static std::vector<int32_t> identity(int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(i);
    return ids;
  }

  AttentionProblem<T>& problem_;
  int64_t row_width_;
  DeviceBuffer<T> q_table_;
  DeviceBuffer<int32_t> q_ids_;
  DeviceBuffer<T> keys_, values_;
  DeviceBuffer<int64_t> slots_;
  std::vector<int64_t> slots_host_;
};

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Plain run, then PDL runs: the oracle, and the same bits.
template <class T>
void check_pdl_chain(const BatchSpec& spec) {
  SCOPED_TRACE(describe(spec));
  AttentionProblem<T> problem(spec);
  DecodeChain<T> chain(problem);
  chain.prepare();
  const TestStream stream;
  chain.poison();
  TESSERA_CUDA_OK(chain.run(stream.get(), false));
  TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
  problem.expect_matches_reference();
  const std::vector<T> plain = problem.output();
  for (int repeat = 0; repeat < 3; ++repeat) {
    chain.poison();
    TESSERA_CUDA_OK(chain.run(stream.get(), true));
    TESSERA_CUDA_OK(cudaStreamSynchronize(stream.get()));
    EXPECT_TRUE(same_bits(plain, problem.output())) << "PDL run " << repeat << " differs from the plain run";
  }
}

TYPED_TEST(PagedAttentionPdlCuda, BatchOneShortContextsUnderGraphBounds) {
  TESSERA_REQUIRE_GPU();
  // Llama-3.1-8B attention at batch 1: one-tile splits from 65 keys on; tile edges 64/128, the served context
  // ~130, and the new token in the first, second or a later tile of its split.
  for (int context : {1, 17, 64, 65, 127, 128, 129, 130, 200, 700, 2048}) {
    for (int bound : {0, 512, 2048}) {
      if (bound != 0 && bound < context) continue;
      BatchSpec spec;
      spec.num_heads = 32;
      spec.num_kv_heads = 8;
      spec.fused_qkv = true;
      spec.max_context_bound = bound;
      spec.seqs = {{1, context}};
      check_pdl_chain<TypeParam>(spec);
    }
  }
}

TYPED_TEST(PagedAttentionPdlCuda, SmallBatchesHeadShapesAndWindows) {
  TESSERA_REQUIRE_GPU();
  for (int head_dim : {64, 128}) {
    for (const auto& [heads, kv_heads] : std::vector<std::pair<int, int>>{{8, 8}, {32, 8}, {32, 4}}) {
      BatchSpec spec;
      spec.num_heads = heads;
      spec.num_kv_heads = kv_heads;
      spec.head_dim = head_dim;
      spec.max_context_bound = 1024;
      spec.seqs = {{1, 1}, {1, 66}, {1, 130}, {1, 1000}};
      check_pdl_chain<TypeParam>(spec);
    }
  }
  BatchSpec window;
  window.num_heads = 32;
  window.num_kv_heads = 8;
  window.sliding_window = 100;
  window.max_context_bound = 512;
  window.block_size = 5;
  window.seqs = {{1, 99}, {1, 101}, {1, 300}};
  check_pdl_chain<TypeParam>(window);
}

TYPED_TEST(PagedAttentionPdlCuda, LargeBatchDoesNotSplit) {
  TESSERA_REQUIRE_GPU();
  BatchSpec spec;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.fused_qkv = true;
  spec.max_context_bound = 256;
  for (int s = 0; s < 48; ++s) spec.seqs.push_back({1, 1 + (s * 53) % 200});
  check_pdl_chain<TypeParam>(spec);
}

// A decode step's chain captured once with PDL (programmatic graph edges), replayed with new device-side context
// lengths (new newest slots, new splits in use), as a CUDA graph of the executor is.
TYPED_TEST(PagedAttentionPdlCuda, CapturedChainFollowsNewContextLengths) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  for (const int batch : {1, 3}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    BatchSpec spec;
    spec.num_heads = 32;
    spec.num_kv_heads = 8;
    spec.fused_qkv = true;
    spec.max_context_bound = 2048;
    for (int s = 0; s < batch; ++s) spec.seqs.push_back({1, 2000 - 300 * s});  // what the tables cover
    AttentionProblem<T> problem(spec);
    DecodeChain<T> chain(problem);
    const TestStream stream(/*blocking=*/false);
    cudaGraph_t graph = nullptr;
    TESSERA_CUDA_OK(cudaDeviceSynchronize());
    TESSERA_CUDA_OK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
    const cudaError_t recorded = chain.run(stream.get(), true);
    ASSERT_EQ(cudaStreamEndCapture(stream.get(), &graph), cudaSuccess);
    ASSERT_EQ(recorded, cudaSuccess) << cudaGetErrorString(recorded);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cudaGraphDestroy(graph);

    const std::vector<std::vector<int32_t>> steps = {{130, 1, 64}, {65, 1700, 129}, {1, 700, 1400}, {2000, 128, 1}};
    for (const std::vector<int32_t>& lengths : steps) {
      const std::vector<int32_t> used(lengths.begin(), lengths.begin() + batch);
      SCOPED_TRACE("replay with context " + std::to_string(used[0]));
      problem.set_context_lengths(used);
      chain.prepare();
      chain.poison();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the uploads and poison ran on the legacy stream
      ASSERT_EQ(cudaGraphLaunch(exec, stream.get()), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
      problem.expect_matches_reference();
    }
    cudaGraphExecDestroy(exec);
  }
}

}  // namespace
}  // namespace tessera
