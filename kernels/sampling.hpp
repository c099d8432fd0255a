#pragma once
// Logits processing and sampling on the GPU: greedy, or temperature -> top-k -> top-p -> draw, per row, so that only
// token ids cross to the host. The CPU oracle is tessera::Sampler (core/sampling/sampler.hpp): the kept set
// (top-k ranks by logit, lowest id first among equal logits; top-p is the smallest prefix of that ranking whose mass
// reaches top_p * mass * (1 - Sampler::kTopPRelativeSlack), on the renormalized top-k set) and the draw order
// (first kept token in id order whose running weight exceeds u * total) are the same; only the random numbers differ
// (the Sampler uses a per-request mt19937_64 stream, the GPU a counter-based Philox draw of (seed, offset)).
#include <cstdint>

namespace tessera::kernels {

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): the 4 x 32-bit block for
// `counter` under `key`. constexpr so the same code runs on the host (tests) and in the kernels.
struct Philox4x32 {
  uint32_t v[4];
};
constexpr Philox4x32 philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * counter.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * counter.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    counter = Philox4x32{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// The 64 random bits of a request's draw number `offset` (tokens it has drawn so far) under its `seed`: a pure
// function of (seed, offset), so a draw does not depend on the batch, and a preempted request recomputed from its
// prompt draws the same numbers again.
constexpr uint64_t sampling_random_bits(uint64_t seed, uint64_t offset) {
  const Philox4x32 out = philox4x32_10(
      Philox4x32{{static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32), 0u, 0u}},
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return (static_cast<uint64_t>(out.v[1]) << 32) | out.v[0];
}

// Per-row sampling parameters as the kernel reads them (a device array, one per logits row). The executor fills it
// from validated SamplingParams: temperature <= 0 (or NaN) = greedy; top_k <= 0 or >= vocab = off; top_p >= 1 (or
// NaN) = off.
struct SamplingRow {
  float temperature;
  int32_t top_k;
  float top_p;
  uint64_t seed;
  uint64_t offset;  // how many tokens this request has drawn so far
};

// Kept-token weights are summed as fixed-point integers, weight * 2^kSamplingWeightBits (weights are in [0, 1], the
// max token weighs exactly 1): sums are exact, so every result is independent of thread scheduling. A token
// lighter than 2^-41 of the max token (logit more than ~28 temperatures below it) rounds to weight 0 and is never
// drawn; the CPU Sampler would draw it with probability < 5e-13.
inline constexpr int kSamplingWeightBits = 40;
// Largest vocabulary the fixed-point sums cannot overflow (vocab * 2^40 < 2^63).
inline constexpr int32_t kSamplingMaxVocab = 1 << 23;

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cstddef>

#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Scratch bytes launch_sample needs for this shape: one 16-byte partial per (row, 4096-logit slice) for the greedy
// path, num_rows * ceil(vocab / 4096) * 16 (0 for num_rows <= 0). Allocate it for the most rows any call will use.
size_t sampling_workspace_bytes(int num_rows, int vocab);

// Device pointers. logits: [num_rows][vocab] FP32; rows: [num_rows]; out_ids: [num_rows]; workspace: 16-byte aligned
// (cudaMalloc), at least sampling_workspace_bytes(num_rows, vocab), contents need not be initialized.
// Two kernels. Greedy rows: the argmax is spread over ceil(vocab / 4096) blocks per row, each writing its slice's
// (best logit, lowest id, NaN / +inf / finite seen) to the workspace; the second kernel reduces a row's partials
// (the highest logit, lowest id among equal logits; -0 == +0; independent of block scheduling). Other rows: one
// block per row in the second kernel, several passes over the row (which stays in L2): radix selection over the
// logits' float bit patterns for the k-th largest logit (counts) and for the top-p boundary (fixed-point mass), no
// sort. Any mix of greedy and sampled rows in one call gives each row the id it gets alone.
// A row holding NaN or +inf, or only -inf, is model garbage: its out_id is -1 (the CPU Sampler throws); -inf
// tokens are never drawn. Asynchronous on `stream`, never synchronizes or allocates (graph-capturable); returns the
// launch status (cudaErrorInvalidValue for num_rows < 0, vocab outside [1, kSamplingMaxVocab], or too little or
// misaligned workspace).
// pdl: programmatic dependent launch (kernels/cuda_common.cuh) for both kernels; same results either way.
cudaError_t launch_sample(const float* logits, int num_rows, int vocab, const SamplingRow* rows, int32_t* out_ids,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream, bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
