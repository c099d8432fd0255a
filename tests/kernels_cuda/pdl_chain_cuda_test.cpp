// Programmatic dependent launch across a chain shaped like a decoder layer plus the LM head and sampling, using every
// launcher with a `pdl` flag: launched with PDL it gives the same bits as launched normally, also when the chain is
// captured into a CUDA graph and replayed with new step inputs. Intermediate buffers are poisoned (NaN) before every
// run, so a kernel that read its input before the previous kernel finished would show up as a mismatch.
#include <cstring>
#include <string>

#include "kernels/embedding.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/linear.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/rope.hpp"
#include "kernels/rope_kv_write.hpp"
#include "kernels/sampling.hpp"
#include "kernels/swiglu.hpp"
#include "tests/kernels_cuda/cuda_test_util.hpp"

namespace tessera {
namespace {

using namespace test;
namespace k = kernels::cuda;

template <class T>
class PdlChainCuda : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(PdlChainCuda, Types);

constexpr int64_t kHidden = 1024, kHeads = 8, kKvHeads = 2, kHeadDim = 128, kInter = 2816, kVocab = 8192;
constexpr int64_t kQOut = kHeads * kHeadDim, kKvOut = kKvHeads * kHeadDim, kQkvOut = kQOut + 2 * kKvOut;
constexpr int kBlockSize = 16, kNumBlocks = 4;
constexpr int64_t kMaxRows = 3;
constexpr float kEps = 1e-5f;

// Step inputs of up to kMaxRows tokens; `variant` changes every one of them.
struct StepInputs {
  std::vector<int32_t> ids, positions, logit_rows;
  std::vector<int64_t> slots;
  std::vector<kernels::SamplingRow> sampling;
  explicit StepInputs(int variant) {
    for (int r = 0; r < kMaxRows; ++r) {
      ids.push_back(static_cast<int32_t>((r * 2711 + variant * 977 + 5) % kVocab));
      positions.push_back(5 + 17 * r + variant);
      logit_rows.push_back(static_cast<int32_t>(kMaxRows - 1 - r));
      slots.push_back(3 + 19 * r + variant);
    }
    sampling = {{0.0f, 0, 1.0f, 11u + variant, 0}, {0.8f, 40, 0.9f, 12u + variant, 3}, {1.0f, 0, 1.0f, 13, 1u + variant}};
  }
};

template <class T>
struct Chain {
  kernels::KvCacheLayout layout{kNumBlocks, kBlockSize, static_cast<int>(kKvHeads), static_cast<int>(kHeadDim)};
  int64_t rows;
  // Weights (small values keep activations moderate).
  DeviceBuffer<T> embed{convert<T>(random_vector(kVocab * kHidden, 1, -0.5f, 0.5f))};
  DeviceBuffer<T> norm_w{convert<T>(random_vector(kHidden, 2, 0.5f, 1.5f))};
  DeviceBuffer<T> qkv_w{convert<T>(random_vector(kQkvOut * kHidden, 3, -0.1f, 0.1f))};
  DeviceBuffer<T> o_w{convert<T>(random_vector(kHidden * kQkvOut, 4, -0.1f, 0.1f))};
  DeviceBuffer<T> gate_up_w{convert<T>(random_vector(2 * kInter * kHidden, 5, -0.1f, 0.1f))};
  DeviceBuffer<T> down_w{convert<T>(random_vector(kHidden * kInter, 6, -0.1f, 0.1f))};
  DeviceBuffer<T> lm_head{convert<T>(random_vector(kVocab * kHidden, 7, -0.1f, 0.1f))};
  DeviceBuffer<float> inv_freq{kernels::rope_inv_freq(static_cast<int>(kHeadDim), 500000.0, RopeScaling{})};
  // Step inputs.
  DeviceBuffer<int32_t> ids{kMaxRows}, positions{kMaxRows}, logit_rows{kMaxRows};
  DeviceBuffer<int64_t> slots{kMaxRows};
  DeviceBuffer<kernels::SamplingRow> sampling{kMaxRows};
  // Activations and caches (poisoned before each run); the second qkv / cache set takes rope + kv_cache_write.
  DeviceBuffer<T> res{kMaxRows * kHidden}, nrm{kMaxRows * kHidden}, qkv{kMaxRows * kQkvOut}, qkv2{kMaxRows * kQkvOut},
      out{kMaxRows * kHidden}, gate_up{kMaxRows * 2 * kInter}, act{kMaxRows * kInter}, act_fused{kMaxRows * kInter},
      gathered{kMaxRows * kHidden};
  DeviceBuffer<T> k_cache{kNumBlocks * kBlockSize * kKvOut}, v_cache{kNumBlocks * kBlockSize * kKvOut},
      k_cache2{kNumBlocks * kBlockSize * kKvOut}, v_cache2{kNumBlocks * kBlockSize * kKvOut};
  DeviceBuffer<float> logits{kMaxRows * kVocab};
  DeviceBuffer<int32_t> sampled{kMaxRows};
  DeviceBuffer<char> sample_ws{k::sampling_workspace_bytes(static_cast<int>(kMaxRows), static_cast<int>(kVocab))};

  explicit Chain(int64_t row_count) : rows(row_count) {}

  void set_inputs(const StepInputs& in) {  // synchronous copies
    ids.upload(in.ids);
    positions.upload(in.positions);
    logit_rows.upload(in.logit_rows);
    slots.upload(in.slots);
    sampling.upload(in.sampling);
  }

  template <class B>
  static cudaError_t poison_one(const B& b, cudaStream_t s) {
    return cudaMemsetAsync(b.get(), 0xff, b.size() * sizeof(*b.get()), s);
  }
  cudaError_t poison(cudaStream_t s) const {
    cudaError_t e = cudaSuccess;
    for (const DeviceBuffer<T>* b : {&res, &nrm, &qkv, &qkv2, &out, &gate_up, &act, &act_fused, &gathered, &k_cache,
                                     &v_cache, &k_cache2, &v_cache2}) {
      if (e == cudaSuccess) e = poison_one(*b, s);
    }
    if (e == cudaSuccess) e = poison_one(logits, s);
    if (e == cudaSuccess) e = poison_one(sampled, s);
    if (e == cudaSuccess) e = poison_one(sample_ws, s);
    return e;
  }

  // The chain; returns the first launch error.
  cudaError_t run(cudaStream_t s, bool pdl) const {
    cudaError_t e = cudaSuccess;
    auto step = [&](cudaError_t status) {
      if (e == cudaSuccess) e = status;
    };
    step(k::launch_embedding<T>(embed.get(), kVocab, kHidden, ids.get(), rows, res.get(), s, pdl));
    step(k::launch_rms_norm<T>(res.get(), norm_w.get(), nrm.get(), rows, kHidden, kEps, s, pdl));
    step(k::launch_linear_few_rows<T>(nrm.get(), qkv_w.get(), qkv.get(), false, rows, kHidden, kQkvOut, s, pdl,
                                      k::L2Prefetch{o_w.get(), o_w.size() * sizeof(T)}));
    step(k::launch_rope_kv_write<T>(qkv.get(), qkv.get() + kQOut, qkv.get() + kQOut + kKvOut, rows, kQkvOut, kHeads,
                                    positions.get(), inv_freq.get(), slots.get(), layout, k_cache.get(), v_cache.get(),
                                    s, pdl));
    step(k::launch_linear_few_rows<T>(nrm.get(), qkv_w.get(), qkv2.get(), false, rows, kHidden, kQkvOut, s, pdl));
    step(k::launch_rope<T>(qkv2.get(), qkv2.get() + kQOut, rows, kQkvOut, kHeads, kKvHeads, kHeadDim, positions.get(),
                           inv_freq.get(), s, pdl));
    step(k::launch_kv_cache_write<T>(qkv2.get() + kQOut, qkv2.get() + kQOut + kKvOut, rows, kQkvOut, slots.get(),
                                     layout, k_cache2.get(), v_cache2.get(), s, pdl));
    // "O projection" over the whole rotated QKV row (consumes the fused kernel's output).
    step(k::launch_linear_few_rows<T>(qkv.get(), o_w.get(), out.get(), false, rows, kQkvOut, kHidden, s, pdl));
    step(k::launch_add_rms_norm<T>(res.get(), out.get(), norm_w.get(), nrm.get(), rows, kHidden, kEps, s, pdl));
    step(k::launch_linear_few_rows<T>(nrm.get(), gate_up_w.get(), gate_up.get(), false, rows, kHidden, 2 * kInter, s,
                                      pdl));
    step(k::launch_swiglu<T>(gate_up.get(), act.get(), rows, kInter, s, pdl));
    step(k::launch_linear_few_rows<T>(nrm.get(), gate_up_w.get(), act_fused.get(), false, rows, kHidden, 2 * kInter, s,
                                      pdl, {}, k::FewRowsEpilogue::kSwigluPairs));
    step(k::launch_linear_few_rows<T>(act_fused.get(), down_w.get(), out.get(), false, rows, kInter, kHidden, s, pdl));
    step(k::launch_add_rms_norm<T>(res.get(), out.get(), norm_w.get(), nrm.get(), rows, kHidden, kEps, s, pdl));
    step(k::launch_embedding<T>(nrm.get(), rows, kHidden, logit_rows.get(), rows, gathered.get(), s, pdl));
    step(k::launch_linear_few_rows<T>(gathered.get(), lm_head.get(), logits.get(), true, rows, kHidden, kVocab, s,
                                      pdl));
    step(k::launch_sample(logits.get(), static_cast<int>(rows), static_cast<int>(kVocab), sampling.get(),
                          sampled.get(), sample_ws.get(), sample_ws.size(), s, pdl));
    return e;
  }

  // Every output of the chain, as raw bytes per buffer (rows in use only where rows < kMaxRows matters).
  std::vector<std::vector<unsigned char>> snapshot() const {
    std::vector<std::vector<unsigned char>> all;
    auto add = [&](const auto& b) {
      std::vector<unsigned char> bytes(b.size() * sizeof(*b.get()));
      cudaMemcpy(bytes.data(), b.get(), bytes.size(), cudaMemcpyDeviceToHost);
      all.push_back(std::move(bytes));
    };
    for (const DeviceBuffer<T>* b : {&res, &nrm, &qkv, &qkv2, &out, &gate_up, &act, &act_fused, &gathered, &k_cache,
                                     &v_cache, &k_cache2, &v_cache2}) {
      add(*b);
    }
    add(logits);
    add(sampled);
    return all;
  }
};

const char* const kBufferNames[] = {"res",     "nrm",     "qkv",      "qkv2",     "out",    "gate_up", "act",  "act_fused",
                                    "gathered", "k_cache", "v_cache", "k_cache2", "v_cache2", "logits", "sampled"};

void expect_same(const std::vector<std::vector<unsigned char>>& a, const std::vector<std::vector<unsigned char>>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i] == b[i]) << kBufferNames[i] << " differs: " << what;
}

// Plain (non-PDL) run on `in`, synchronized.
template <class T>
std::vector<std::vector<unsigned char>> plain_run(Chain<T>& chain, const StepInputs& in, cudaStream_t s) {
  chain.set_inputs(in);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the input copies ran on the legacy stream
  EXPECT_EQ(chain.poison(s), cudaSuccess);
  EXPECT_EQ(chain.run(s, false), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  return chain.snapshot();
}

// The chain's own consistency: the fused kernels equal the ones they replace, and sampling saw finite logits.
template <class T>
void expect_consistent(const std::vector<std::vector<unsigned char>>& snap, int64_t rows, const std::string& what) {
  EXPECT_TRUE(snap[2] == snap[3]) << "rope_kv_write vs rope: " << what;
  EXPECT_TRUE(snap[9] == snap[11] && snap[10] == snap[12]) << "caches: " << what;
  const size_t used = static_cast<size_t>(rows * kInter) * sizeof(T);
  EXPECT_EQ(std::memcmp(snap[6].data(), snap[7].data(), used), 0) << "SwiGLU epilogue vs launch_swiglu: " << what;
  std::vector<int32_t> ids(kMaxRows);
  std::memcpy(ids.data(), snap[14].data(), ids.size() * 4);
  for (int64_t r = 0; r < rows; ++r) EXPECT_TRUE(ids[r] >= 0 && ids[r] < kVocab) << "row " << r << ": " << what;
}

TYPED_TEST(PdlChainCuda, PdlLaunchesGiveTheSameBitsAsPlainLaunches) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const TestStream stream;
  for (const int64_t rows : {int64_t{1}, kMaxRows}) {
    Chain<T> chain(rows);
    const StepInputs in(0);
    const auto plain = plain_run(chain, in, stream.get());
    expect_consistent<T>(plain, rows, "plain");
    for (int repeat = 0; repeat < 3; ++repeat) {
      ASSERT_EQ(chain.poison(stream.get()), cudaSuccess);
      ASSERT_EQ(chain.run(stream.get(), true), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
      expect_same(plain, chain.snapshot(), "rows " + std::to_string(rows) + ", PDL run " + std::to_string(repeat));
    }
  }
}

// The chain with PDL captured into a graph (programmatic edges), replayed with new step inputs.
TYPED_TEST(PdlChainCuda, CapturedPdlChainReplaysWithNewInputs) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const TestStream stream(/*blocking=*/false);  // captured: no implicit ties to the legacy stream
  const int64_t rows = kMaxRows;
  Chain<T> chain(rows);
  const StepInputs first(0), second(1);
  const auto expected_first = plain_run(chain, first, stream.get());
  const auto expected_second = plain_run(chain, second, stream.get());
  ASSERT_FALSE(expected_first == expected_second);  // the inputs matter

  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const CapturedGraph graph(stream.get(), [&] { return chain.run(stream.get(), true); });
  ASSERT_TRUE(graph.ok());

  for (int replay = 0; replay < 4; ++replay) {
    const bool use_second = replay % 2 == 1;
    chain.set_inputs(use_second ? second : first);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the input copies ran on the legacy stream
    ASSERT_EQ(chain.poison(stream.get()), cudaSuccess);
    ASSERT_EQ(graph.launch(stream.get()), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream.get()), cudaSuccess);
    const auto got = chain.snapshot();
    expect_same(use_second ? expected_second : expected_first, got, "graph replay " + std::to_string(replay));
    expect_consistent<T>(got, rows, "graph replay " + std::to_string(replay));
  }
}

}  // namespace
}  // namespace tessera
