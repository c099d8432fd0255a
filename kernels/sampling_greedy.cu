// Kernel 1 of the greedy path (see sampling_greedy.cuh): the argmax of one kGreedySliceLen slice of a greedy row.
#include "kernels/sampling_greedy.cuh"

namespace tessera::kernels::cuda {

namespace {

constexpr int kWarps = kGreedyThreads / 32;
constexpr int kLoadsPerThread = kGreedySliceLen / kGreedyThreads;  // 16 logits
constexpr int kVectorsPerThread = kLoadsPerThread / 4;             // as 4 float4

static_assert(kGreedySliceLen % (4 * kGreedyThreads) == 0, "a slice is whole float4 rounds of the block");

// vectorized: the row pointer of every row is 16-byte aligned (logits aligned and vocab % 4 == 0); slices start at
// multiples of kGreedySliceLen, so they are too. Ids outside the row read as -inf, which changes no result.
__global__ void __launch_bounds__(kGreedyThreads)
    greedy_partials_kernel(const float* __restrict__ logits, int vocab, int num_slices, bool vectorized,
                           const SamplingRow* __restrict__ rows, GreedyPartial* __restrict__ partials) {
  __shared__ float warp_best[kWarps];
  __shared__ int warp_best_id[kWarps];
  __shared__ uint32_t warp_flags[kWarps];
  pdl_launch_dependents();
  pdl_wait();
  const int64_t r = blockIdx.x;
  if (rows[r].temperature > 0.0f) return;  // sampled row: sample_kernel reads the whole row itself
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int begin = static_cast<int>(blockIdx.y) * kGreedySliceLen;
  const int len = min(kGreedySliceLen, vocab - begin);
  const float* slice = logits + r * vocab + begin;

  float best = -INFINITY;
  int best_id = INT_MAX;
  bool garbage = false, finite = false;
  // Each thread visits its ids in increasing order, so keeping the first max keeps the lowest id.
  auto visit = [&](int offset, float x) {
    garbage |= (x != x || x == INFINITY);
    finite |= (x > -INFINITY && x < INFINITY);
    if (x > best) {
      best = x;
      best_id = begin + offset;
    }
  };
  if (vectorized) {
    const float4* vectors = reinterpret_cast<const float4*>(slice);
    const int num_vectors = len / 4;
    float4 v[kVectorsPerThread];
#pragma unroll
    for (int u = 0; u < kVectorsPerThread; ++u) {
      const int c = u * kGreedyThreads + tid;
      v[u] = c < num_vectors ? __ldg(vectors + c) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    }
#pragma unroll
    for (int u = 0; u < kVectorsPerThread; ++u) {
      const int c = u * kGreedyThreads + tid;
      visit(4 * c, v[u].x);
      visit(4 * c + 1, v[u].y);
      visit(4 * c + 2, v[u].z);
      visit(4 * c + 3, v[u].w);
    }
  } else {
    float x[kLoadsPerThread];
#pragma unroll
    for (int u = 0; u < kLoadsPerThread; ++u) {
      const int j = u * kGreedyThreads + tid;
      x[u] = j < len ? slice[j] : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kLoadsPerThread; ++u) visit(u * kGreedyThreads + tid, x[u]);
  }

  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
    if (greedy_better(other, other_id, best, best_id)) {
      best = other;
      best_id = other_id;
    }
  }
  const uint32_t flags = (__any_sync(0xffffffffu, garbage) ? kGreedySawGarbage : 0u) |
                         (__any_sync(0xffffffffu, finite) ? kGreedySawFinite : 0u);
  if (lane == 0) {
    warp_best[warp] = best;
    warp_best_id[warp] = best_id;
    warp_flags[warp] = flags;
  }
  __syncthreads();
  if (tid != 0) return;
  GreedyPartial out{warp_best[0], warp_best_id[0], warp_flags[0], 0u};
  for (int w = 1; w < kWarps; ++w) {
    out.flags |= warp_flags[w];
    if (greedy_better(warp_best[w], warp_best_id[w], out.best, out.best_id)) {
      out.best = warp_best[w];
      out.best_id = warp_best_id[w];
    }
  }
  partials[r * num_slices + blockIdx.y] = out;
}

}  // namespace

cudaError_t launch_greedy_partials(const float* logits, int num_rows, int vocab, const SamplingRow* rows,
                                   GreedyPartial* partials, cudaStream_t stream, bool pdl) {
  const int num_slices = greedy_num_slices(vocab);
  const bool vectorized = vocab % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(num_rows), static_cast<unsigned>(num_slices));
  return launch_kernel(pdl, greedy_partials_kernel, grid, kGreedyThreads, 0, stream, logits, vocab, num_slices,
                       vectorized, rows, partials);
}

}  // namespace tessera::kernels::cuda
