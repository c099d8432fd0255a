// Decode path of paged attention (one new query token per sequence): grouped-query aware, split along the context
// (flash-decoding) when the launcher asks for more than one split, plus the kernel combining the split partials.
// The CUDA-core kernel here serves FP32 (and BF16 below sm_80); BF16 on sm_80+ takes the pipelined tensor-core
// kernel of paged_attention_decode_tc.cu.
#include <type_traits>

#include "kernels/paged_attention_internal.cuh"

// Compile-time switch: 0 keeps BF16 decode on the CUDA-core kernel below instead of paged_attention_decode_tc.cu.
#ifndef TESSERA_DECODE_TENSOR_CORES
#define TESSERA_DECODE_TENSOR_CORES 1
#endif
// Compile-time switch: 0 always combines the tensor-core kernel's splits with the combine kernel below (no clusters).
#ifndef TESSERA_DECODE_CLUSTER_COMBINE
#define TESSERA_DECODE_CLUSTER_COMBINE 1
#endif

namespace tessera::kernels::cuda::paged {

namespace {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
constexpr int kDecodeTile = 64;  // keys per shared-memory score tile
constexpr int kMaxGroupChunk = 8;

// Lane mapping: a K/V row of D elements is read by D / kVec lanes with one 16-byte load each; a warp covers
// 32 / (D / kVec) rows at once and the block kRows rows.
template <class T, int D>
struct DecodeShape {
  static constexpr int kLanesPerRow = D / kVec<T>;  // 8, 16 or 32
  static_assert(kLanesPerRow <= 32 && 32 % kLanesPerRow == 0, "head_dim / vector width must divide a warp");
  static constexpr int kRowsPerWarp = 32 / kLanesPerRow;
  static constexpr int kRows = kDecodeWarps * kRowsPerWarp;
  static constexpr int kKeysPerThread = kDecodeTile / kRows;
  static_assert(kDecodeTile % kRows == 0, "tile must be a multiple of the rows in flight");
};

// G: query heads handled together (compile-time upper bound; the real count `heads` may be smaller). Each block
// reads every K/V row of its split once and applies it to all `heads` query heads of its kv head.
// Programmatic dependent launch: only the step inputs (lengths, query_start) are read before pdl_wait().
template <class T, int D, int G>
__global__ void __launch_bounds__(kDecodeThreads)
    decode_kernel(Args<T> a, int group_chunks, DecodePlan plan, Partials partials) {
  using Shape = DecodeShape<T, D>;
  constexpr int V = kVec<T>;
  const int seq = blockIdx.y;
  const int query_len = a.query_len[seq];
  const int context = a.context_len[seq];
  const int64_t token = a.query_start[seq];
  pdl_launch_dependents();
  pdl_wait();  // q, the cache and the workspace from here on
  if (query_len != 1) return;
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_head = blockIdx.x / group_chunks;
  const int head0 = kv_head * group + (blockIdx.x % group_chunks) * G;
  const int heads = min(G, kv_head * group + group - head0);

  const int first = first_visible(context - 1, a.sliding_window);
  const int split = blockIdx.z;
  const int begin = first + split * plan.partition;
  const int end = split == plan.num_splits - 1 ? context : min(context, begin + plan.partition);
  if (begin >= end) return;  // this sequence's visible range is shorter than the split grid

  __shared__ float scores[G][kDecodeTile];
  __shared__ float alpha_shared[G];
  __shared__ float run_max[G];
  __shared__ float run_sum[G];
  __shared__ float reduce[kDecodeWarps][G][D];

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int row = warp * Shape::kRowsPerWarp + lane / Shape::kLanesPerRow;  // key row in flight, [0, kRows)
  const int chunk = lane % Shape::kLanesPerRow;                           // 16-byte chunk of the head vector

  float qv[G][V];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g < heads) {
      const T* src = a.q + token * a.q_row_stride + static_cast<int64_t>(head0 + g) * D + chunk * V;
      unpack16<T>(load16(src), qv[g]);
#pragma unroll
      for (int v = 0; v < V; ++v) qv[g][v] *= a.scale;
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) qv[g][v] = 0.0f;
    }
  }
  if (tid < G) {
    run_max[tid] = -CUDART_INF_F;
    run_sum[tid] = 0.0f;
  }
  float acc[G][V];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int v = 0; v < V; ++v) acc[g][v] = 0.0f;

  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  for (int tile = begin; tile < end; tile += kDecodeTile) {
    // Scores: all loads of the tile first (memory-level parallelism), then the dot products.
    uint4 raw[Shape::kKeysPerThread];
#pragma unroll
    for (int i = 0; i < Shape::kKeysPerThread; ++i) {
      const int pos = tile + row + i * Shape::kRows;
      raw[i] = pos < end ? load16(a.key_cache + cache_offset(table, pos, a.block_size, a.num_kv_heads, D, kv_head) +
                                  chunk * V)
                         : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int i = 0; i < Shape::kKeysPerThread; ++i) {
      float k[V];
      unpack16<T>(raw[i], k);
      float dots[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0.0f;
#pragma unroll
        for (int v = 0; v < V; ++v) s += qv[g][v] * k[v];
        dots[g] = s;
      }
#pragma unroll
      for (int offset = Shape::kLanesPerRow / 2; offset > 0; offset >>= 1)
#pragma unroll
        for (int g = 0; g < G; ++g) dots[g] += __shfl_xor_sync(0xffffffffu, dots[g], offset);
      if (chunk == 0) {
        const int key = row + i * Shape::kRows;
        const bool visible = tile + key < end;
#pragma unroll
        for (int g = 0; g < G; ++g) scores[g][key] = visible ? dots[g] : -CUDART_INF_F;
      }
    }
    __syncthreads();

    // Online softmax per query head: one warp per head.
    for (int g = warp; g < heads; g += kDecodeWarps) {
      const float s0 = scores[g][lane];
      const float s1 = scores[g][lane + 32];
      const float old_max = run_max[g];
      const float new_max = fmaxf(old_max, warp_max(fmaxf(s0, s1)));
      const float m = safe_max(new_max);
      const float p0 = expf(s0 - m), p1 = expf(s1 - m);
      scores[g][lane] = p0;
      scores[g][lane + 32] = p1;
      const float tile_sum = warp_sum(p0 + p1);
      if (lane == 0) {
        const float alpha = expf(old_max - m);  // 0 while nothing was visible (old_max = -inf)
        alpha_shared[g] = alpha;
        run_sum[g] = run_sum[g] * alpha + tile_sum;
        run_max[g] = new_max;
      }
    }
    __syncthreads();

    // acc += p * V over this thread's rows of the tile.
#pragma unroll
    for (int i = 0; i < Shape::kKeysPerThread; ++i) {
      const int pos = tile + row + i * Shape::kRows;
      raw[i] = pos < end ? load16(a.value_cache +
                                  cache_offset(table, pos, a.block_size, a.num_kv_heads, D, kv_head) + chunk * V)
                         : make_uint4(0, 0, 0, 0);  // zeros, never garbage (0 * NaN would poison acc)
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float alpha = g < heads ? alpha_shared[g] : 0.0f;
#pragma unroll
      for (int v = 0; v < V; ++v) acc[g][v] *= alpha;
    }
#pragma unroll
    for (int i = 0; i < Shape::kKeysPerThread; ++i) {
      float val[V];
      unpack16<T>(raw[i], val);
      const int key = row + i * Shape::kRows;
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float p = g < heads ? scores[g][key] : 0.0f;
#pragma unroll
        for (int v = 0; v < V; ++v) acc[g][v] += p * val[v];
      }
    }
    __syncthreads();  // scores are overwritten by the next tile
  }

  // Reduce acc over the rows in flight: first within the warp, then across warps through shared memory.
#pragma unroll
  for (int offset = Shape::kLanesPerRow; offset < 32; offset <<= 1)
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int v = 0; v < V; ++v) acc[g][v] += __shfl_xor_sync(0xffffffffu, acc[g][v], offset);
  if (lane < Shape::kLanesPerRow) {
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int v = 0; v < V; ++v) reduce[warp][g][chunk * V + v] = acc[g][v];
  }
  __syncthreads();

  for (int idx = tid; idx < heads * D; idx += kDecodeThreads) {
    const int g = idx / D;
    const int d = idx % D;
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) total += reduce[w][g][d];
    const int head = head0 + g;
    if (plan.num_splits == 1) {
      a.out[token * a.num_heads * D + static_cast<int64_t>(head) * D + d] = from_float<T>(total / run_sum[g]);
    } else {
      const int64_t part = (static_cast<int64_t>(seq) * a.num_heads + head) * plan.num_splits + split;
      partials.acc[part * D + d] = total;
      if (d == 0) {
        partials.max[part] = run_max[g];
        partials.sum[part] = run_sum[g];
      }
    }
  }
}

constexpr int kCombineThreads = 128;  // >= head_dim: one output element per thread
constexpr int kCombinePrefetch = 8;   // splits whose accumulators each thread loads before the maxima arrive

// One block per (head, sequence): out = sum_p w_p acc_p / sum_p w_p sum_p with w_p = exp(max_p - max) (exp2 when
// the partial maxima are in base-2 units), summed over p in increasing order. Only the splits the sequence's
// visible range reaches are read: the grid is planned for the max_context_len bound, shorter sequences leave the
// later splits untouched. The maxima, sums and the first kCombinePrefetch accumulators are loaded together (one
// memory round trip at small split counts). Programmatic dependent launch: only the step inputs are read before
// pdl_wait(). Dynamic shared memory: 2 * num_splits floats (the weights, then the sums).
template <class T>
__global__ void __launch_bounds__(kCombineThreads)
    combine_kernel(Args<T> a, int head_dim, DecodePlan plan, Partials partials, bool base2_max) {
  extern __shared__ float combine_smem[];
  float* weights = combine_smem;
  float* sums = combine_smem + plan.num_splits;
  __shared__ float warp_maxima[kCombineThreads / 32];
  const int head = blockIdx.x;
  const int seq = blockIdx.y;
  const int query_len = a.query_len[seq];
  const int context = a.context_len[seq];
  const int64_t token = a.query_start[seq];
  pdl_launch_dependents();
  pdl_wait();  // the partials from here on
  if (query_len != 1) return;
  const int span = context - first_visible(context - 1, a.sliding_window);
  const int used = min(plan.num_splits, (span + plan.partition - 1) / plan.partition);
  const int64_t part0 = (static_cast<int64_t>(seq) * a.num_heads + head) * plan.num_splits;
  const int tid = threadIdx.x;

  float acc_first[kCombinePrefetch];  // splits 0 .. kCombinePrefetch - 1 of element d = tid
#pragma unroll
  for (int p = 0; p < kCombinePrefetch; ++p)
    acc_first[p] = p < used && tid < head_dim ? partials.acc[(part0 + p) * head_dim + tid] : 0.0f;
  const bool has_first = tid < used;
  const float first_max = has_first ? partials.max[part0 + tid] : -CUDART_INF_F;
  const float first_sum = has_first ? partials.sum[part0 + tid] : 0.0f;

  float local_max = first_max;
  for (int p = tid + kCombineThreads; p < used; p += kCombineThreads) local_max = fmaxf(local_max, partials.max[part0 + p]);
  local_max = warp_max(local_max);
  if (tid % 32 == 0) warp_maxima[tid / 32] = local_max;
  __syncthreads();
  float global_max = warp_maxima[0];
#pragma unroll
  for (int w = 1; w < kCombineThreads / 32; ++w) global_max = fmaxf(global_max, warp_maxima[w]);
  // Every used split saw at least one key: its max is finite, and so is global_max.
  auto weight = [&](float split_max) {
    const float difference = split_max - global_max;
    return base2_max ? exp2f(difference) : expf(difference);
  };
  if (has_first) {
    weights[tid] = weight(first_max);
    sums[tid] = first_sum;
  }
  for (int p = tid + kCombineThreads; p < used; p += kCombineThreads) {
    weights[p] = weight(partials.max[part0 + p]);
    sums[p] = partials.sum[part0 + p];
  }
  __syncthreads();
  float denominator = 0.0f;
  for (int p = 0; p < used; ++p) denominator = __fmaf_rn(weights[p], sums[p], denominator);
  const float inv = 1.0f / denominator;
  for (int d = tid; d < head_dim; d += kCombineThreads) {
    float total = 0.0f;
    int p = 0;
    if (d == tid) {  // the prefetched splits
#pragma unroll
      for (int k = 0; k < kCombinePrefetch; ++k)
        if (k < used) total = __fmaf_rn(weights[k], acc_first[k], total);
      p = min(used, kCombinePrefetch);
    }
    for (; p < used; ++p) total = __fmaf_rn(weights[p], partials.acc[(part0 + p) * head_dim + d], total);
    a.out[token * a.num_heads * head_dim + static_cast<int64_t>(head) * head_dim + d] = from_float<T>(total * inv);
  }
}

template <class T, int D, int G>
cudaError_t launch_decode_shape(const Args<T>& args, int num_seqs, const DecodePlan& plan, const Partials& partials,
                                cudaStream_t stream, bool pdl) {
  const int group = args.num_heads / args.num_kv_heads;
  const int group_chunks = (group + G - 1) / G;
  const dim3 grid(static_cast<unsigned>(args.num_kv_heads * group_chunks), static_cast<unsigned>(num_seqs),
                  static_cast<unsigned>(plan.num_splits));
  return launch_kernel(pdl, decode_kernel<T, D, G>, grid, dim3(kDecodeThreads), 0, stream, args, group_chunks, plan,
                       partials);
}

template <class T, int D>
cudaError_t launch_decode_dim(const Args<T>& args, int num_seqs, const DecodePlan& plan, const Partials& partials,
                              cudaStream_t stream, bool pdl) {
  const int group = args.num_heads / args.num_kv_heads;
  if (group <= 1) return launch_decode_shape<T, D, 1>(args, num_seqs, plan, partials, stream, pdl);
  if (group <= 2) return launch_decode_shape<T, D, 2>(args, num_seqs, plan, partials, stream, pdl);
  if (group <= 4) return launch_decode_shape<T, D, 4>(args, num_seqs, plan, partials, stream, pdl);
  return launch_decode_shape<T, D, kMaxGroupChunk>(args, num_seqs, plan, partials, stream, pdl);
}

}  // namespace

template <class T>
cudaError_t launch_decode(const Args<T>& args, int head_dim, int num_seqs, const DecodePlan& plan,
                          const Partials& partials, cudaStream_t stream, bool pdl) {
  cudaError_t status = cudaSuccess;
  bool tensor_cores = false;
#if TESSERA_DECODE_TENSOR_CORES
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    tensor_cores = bf16_tensor_cores_available();
    if (tensor_cores) {
      DecodePlan tc_plan = plan;
      tc_plan.cluster_combine = TESSERA_DECODE_CLUSTER_COMBINE && plan.cluster_combine && plan.num_splits > 1 &&
                                plan.num_splits <= kMaxClusterSplits && cluster_launch_available();
      status = launch_decode_tensor_core(args, head_dim, num_seqs, tc_plan, partials, stream, pdl);
      if (tc_plan.cluster_combine) return status;  // combined inside the clusters
    }
  }
#endif
  if (!tensor_cores) {
    status = head_dim == 64 ? launch_decode_dim<T, 64>(args, num_seqs, plan, partials, stream, pdl)
                            : launch_decode_dim<T, 128>(args, num_seqs, plan, partials, stream, pdl);
  }
  if (status != cudaSuccess || plan.num_splits == 1) return status;
  static_assert(kCombineThreads >= 128, "one thread per output element of a head (head_dim <= 128)");
  const dim3 grid(static_cast<unsigned>(args.num_heads), static_cast<unsigned>(num_seqs));
  return launch_kernel(pdl, combine_kernel<T>, grid, dim3(kCombineThreads), 2 * plan.num_splits * sizeof(float),
                       stream, args, head_dim, plan, partials, tensor_cores);
}

template cudaError_t launch_decode<float>(const Args<float>&, int, int, const DecodePlan&, const Partials&,
                                          cudaStream_t, bool);
template cudaError_t launch_decode<__nv_bfloat16>(const Args<__nv_bfloat16>&, int, int, const DecodePlan&,
                                                  const Partials&, cudaStream_t, bool);

}  // namespace tessera::kernels::cuda::paged
