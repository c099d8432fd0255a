#pragma once
// The greedy path of launch_sample, spread over many blocks (private to sampling.cu and sampling_greedy.cu; device
// code, include from .cu files). One SM cannot stream a 128k-vocab row (500 KB) quickly, so the argmax of a greedy
// row is split in two kernels:
//   1. launch_greedy_partials: grid (num_rows, num_slices); the block of (row, slice) scans kGreedySliceLen logits
//      and writes a GreedyPartial (its best logit, the lowest id holding it, whether it saw NaN / +inf or a finite
//      logit) to the workspace. Blocks of rows that are not greedy exit at once.
//   2. sample_kernel (sampling.cu), one block per row: a greedy row's block reduces the row's partials with
//      greedy_reduce_partials; other rows take the full sampling path.
// The (value, id) order "larger logit first, lower id among equal logits" is total, so the reduction's result does
// not depend on which block finished first or on the order partials are combined.
#include <climits>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/sampling.hpp"

namespace tessera::kernels::cuda {

// Logits per block of the partials kernel: 256 threads, 16 logits (four 16-byte loads in flight) each. A 128256
// row is 32 blocks; at most kSamplingMaxVocab / kGreedySliceLen = 2048 slices (within gridDim.y's 65535).
inline constexpr int kGreedySliceLen = 4096;
inline constexpr int kGreedyThreads = 256;

inline constexpr uint32_t kGreedySawGarbage = 1u;  // NaN or +inf in the slice
inline constexpr uint32_t kGreedySawFinite = 2u;   // at least one finite logit in the slice

// One slice's result. best = -inf and best_id = INT_MAX when the slice holds no logit above -inf.
struct alignas(16) GreedyPartial {
  float best;
  int32_t best_id;
  uint32_t flags;
  uint32_t unused;
};

inline int greedy_num_slices(int vocab) { return (vocab + kGreedySliceLen - 1) / kGreedySliceLen; }

// Launches kernel 1 over every row (greedy rows write partials[row * num_slices + slice]; others write nothing).
// Asynchronous; returns the launch status. pdl as in launch_kernel.
cudaError_t launch_greedy_partials(const float* logits, int num_rows, int vocab, const SamplingRow* rows,
                                   GreedyPartial* partials, cudaStream_t stream, bool pdl);

// (x, id) comes before (best, best_id): larger logit, or the same logit (-0 == +0) at a lower id. NaN never does.
__device__ __forceinline__ bool greedy_better(float x, int id, float best, int best_id) {
  return x > best || (x == best && id < best_id);
}

// Run by one whole warp (all 32 lanes): the greedy id of a row from its partials, -1 for a row holding NaN or +inf,
// or only -inf. Every lane returns the result.
__device__ __forceinline__ int greedy_reduce_partials(const GreedyPartial* partials, int num_slices) {
  float best = -INFINITY;
  int best_id = INT_MAX;
  uint32_t flags = 0;
  for (int s = static_cast<int>(threadIdx.x & 31); s < num_slices; s += 32) {
    const GreedyPartial p = partials[s];
    flags |= p.flags;
    if (greedy_better(p.best, p.best_id, best, best_id)) {
      best = p.best;
      best_id = p.best_id;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
    flags |= __shfl_xor_sync(0xffffffffu, flags, offset);
    if (greedy_better(other, other_id, best, best_id)) {
      best = other;
      best_id = other_id;
    }
  }
  const bool garbage = (flags & kGreedySawGarbage) != 0 || (flags & kGreedySawFinite) == 0;
  return garbage ? -1 : best_id;
}

}  // namespace tessera::kernels::cuda
