#pragma once
// The split-K combine of the decode kernels, done inside the decode kernel by the block that finishes a unit last
// (no separate combine launch). A unit is (sequence, the block's chunk of query heads): its used splits (those that
// reach into the sequence's visible range) each write their FP32 partials to the workspace, count themselves on the
// unit's counter, and the block whose arrival completes the count combines every split's partials into the output.
// The arithmetic and its order are those of the former separate combine kernel (same operations on the same
// values in the same order), so the outputs are that two-kernel path's, bit for bit.
// Device code; include from .cu files only.
#include "kernels/paged_attention_internal.cuh"

namespace tessera::kernels::cuda::paged {

// Splits of the plan a decode sequence with `context` tokens uses: those whose range starts inside its visible
// keys (a split of a plan made for a longer bound may start past them and does nothing).
__device__ __forceinline__ int used_splits(int context, int sliding_window, const DecodePlan& plan) {
  const int span = context - first_visible(context - 1, sliding_window);
  return min(plan.num_splits, (span + plan.partition - 1) / plan.partition);
}

// The output of a unit with a single used split, from that split's merged (max, sum, acc) of one element: what the
// combine computes for one partial (weight exp(max - max), the same fused multiply-adds), without the round trip
// through the workspace.
template <class T, bool kBase2Max>
__device__ __forceinline__ T single_split_output(float max, float sum, float acc) {
  const float weight = kBase2Max ? exp2f(max - max) : expf(max - max);
  const float denominator = __fmaf_rn(weight, sum, 0.0f);
  const float inv = 1.0f / denominator;
  return from_float<T>(__fmaf_rn(weight, acc, 0.0f) * inv);
}

// Called by every thread of a block after its stores of partials (block-uniform). Counts the block on the unit's
// counter; true in the block whose arrival is the `used`-th: every other split's partials are then visible to it
// (read them through L2: __ldcg). atomicInc wraps the counter to 0 with that arrival, so the counter is 0 again for
// the next launch or graph replay.
__device__ __forceinline__ bool arrive_last_split(unsigned* counter, int used) {
  __shared__ bool last;
  __threadfence();  // this thread's partials, device-wide, before the block counts itself
  __syncthreads();
  if (threadIdx.x == 0) last = atomicInc(counter, static_cast<unsigned>(used - 1)) == static_cast<unsigned>(used - 1);
  __syncthreads();
  if (last) __threadfence();  // the other splits' partials are visible from here on
  return last;
}

// Shared floats combine_splits needs for `heads` query heads and up to `num_splits` splits.
__host__ __device__ constexpr size_t combine_shared_floats(int heads, int num_splits) {
  return static_cast<size_t>(heads) * (3 * static_cast<size_t>(num_splits) + 1);
}
// (element, split) accumulators each thread loads at once before their multiply-adds (memory-level parallelism):
// with 4 heads of 128 elements per block and a few splits (Llama-3.1-8B at small batches) all of them.
inline constexpr int kCombineBatch = 16;

// out[g * D + d] for g < heads, d < D: sum_p w_p acc_p / sum_p w_p sum_p over the used splits p in increasing
// order, w_p = exp(max_p - max) (exp2 when kBase2Max), max = the largest max_p; head g's split p is partial
// part0 + g * num_splits + p. Block-uniform, kThreads threads; `shared` holds combine_shared_floats(heads, used).
// The partials were written by other blocks of this kernel: read through L2 (__ldcg), never through L1. The
// thread's first accumulators are loaded together with the maxima and sums (one memory round trip in all at small
// split counts).
template <class T, bool kBase2Max, int kThreads, int D>
__device__ void combine_splits(const Partials& partials, int64_t part0, int num_splits, int used, int heads, T* out,
                               float* shared) {
  const int tid = threadIdx.x;
  const int pairs_per_block = heads * used;
  float* maxima = shared;                      // [heads][used]
  float* weights = maxima + pairs_per_block;   // [heads][used]
  float* sums = weights + pairs_per_block;     // [heads][used]
  float* inverse = sums + pairs_per_block;     // [heads]: 1 / sum_p w_p sum_p

  // This thread's (element, split) pairs in order: its elements tid, tid + kThreads, ..., each with splits
  // 0 .. used - 1. Loaded kCombineBatch at a time; `load_*` is the next pair to load, `use_*` the next to add.
  const int elements = heads * D;
  const int pairs = tid < elements ? (elements - tid + kThreads - 1) / kThreads * used : 0;
  int load_element = tid, load_split = 0;
  float values[kCombineBatch];
  auto load_batch = [&](int f0) {
#pragma unroll
    for (int i = 0; i < kCombineBatch; ++i) {
      if (f0 + i < pairs) {
        const int g = load_element / D;
        const int64_t part = part0 + static_cast<int64_t>(g) * num_splits + load_split;
        values[i] = __ldcg(partials.acc + part * D + load_element % D);
        if (++load_split == used) {
          load_split = 0;
          load_element += kThreads;
        }
      } else {
        values[i] = 0.0f;
      }
    }
  };
  load_batch(0);

  // Weights: w_p = exp(max_p - max) per (head, split). Every used split saw at least one key: its max is finite,
  // and so is the maximum (fmaxf is exact: the order of the reduction does not matter).
  for (int i = tid; i < pairs_per_block; i += kThreads) {
    const int g = i / used;
    const int64_t part = part0 + static_cast<int64_t>(g) * num_splits + i % used;
    maxima[i] = __ldcg(partials.max + part);
    sums[i] = __ldcg(partials.sum + part);
  }
  __syncthreads();
  for (int i = tid; i < pairs_per_block; i += kThreads) {
    const float* head_maxima = maxima + i / used * used;
    float global_max = -CUDART_INF_F;
    for (int p = 0; p < used; ++p) global_max = fmaxf(global_max, head_maxima[p]);
    const float difference = maxima[i] - global_max;
    weights[i] = kBase2Max ? exp2f(difference) : expf(difference);
  }
  __syncthreads();
  for (int g = tid; g < heads; g += kThreads) {
    float denominator = 0.0f;
    for (int p = 0; p < used; ++p) denominator = __fmaf_rn(weights[g * used + p], sums[g * used + p], denominator);
    inverse[g] = 1.0f / denominator;
  }
  __syncthreads();

  int use_element = tid, use_split = 0;
  float total = 0.0f;
  for (int f0 = 0; f0 < pairs; f0 += kCombineBatch) {
    if (f0 > 0) load_batch(f0);
#pragma unroll
    for (int i = 0; i < kCombineBatch; ++i) {
      if (f0 + i < pairs) {
        const int g = use_element / D;
        total = __fmaf_rn(weights[g * used + use_split], values[i], total);
        if (++use_split == used) {
          out[use_element] = from_float<T>(total * inverse[g]);
          total = 0.0f;
          use_split = 0;
          use_element += kThreads;
        }
      }
    }
  }
}

}  // namespace tessera::kernels::cuda::paged
