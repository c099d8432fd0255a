// Prefill path of paged attention (query_len > 1, causal, chunked prefill reading earlier cache blocks):
// flash-attention tiling on CUDA cores. A block owns 64 query rows, a row being (token, query head of the
// group) so all heads sharing a kv head read each K/V tile once; it walks the visible keys in tiles of 64,
// S = Q K^T and O += P V from FP32 shared memory, online softmax in FP32.
//
// Speed expectation: FP32 FMAs from shared memory (~8 shared loads per 64 FMAs) reach perhaps 15-25 TFLOP/s on
// an H100, so this kernel serves FP32 only: BF16 prefill goes to the tensor-core kernel of
// paged_attention_prefill_tc.cu on sm_80+ (unless built with TESSERA_PREFILL_TENSOR_CORES=0, or on older GPUs,
// where BF16 falls back to this kernel). Decode does not use this path.
#include <type_traits>

#include "kernels/paged_attention_prefill_tc.cuh"

namespace tessera::kernels::cuda::paged {

namespace {

constexpr int kRowsPerTile = 64;  // BM: (token, head) query rows per block
constexpr int kKeysPerTile = 64;  // BN
constexpr int kPrefillThreads = 256;
// Thread (ty, tx) in a 16 x 16 grid owns query rows ty * 4 + i (i < 4): score columns tx + 16 j (j < 4) and
// output columns tx * 4 + 64 jj (+0..3).
constexpr int kRowsPerThread = 4;
constexpr int kPad = 4;  // floats of row padding: keeps float4 alignment, spreads rows over banks

template <int D>
struct PrefillSmem {
  static constexpr int kStride = D + kPad;
  static constexpr int kPStride = kKeysPerTile + kPad;
  static constexpr size_t kFloats =
      size_t{kRowsPerTile} * kStride + size_t{kKeysPerTile} * kStride + size_t{kRowsPerTile} * kPStride;
  static constexpr size_t kBytes = kFloats * sizeof(float);
};

template <class T, int D>
struct TileLoad {
  static constexpr int kChunksPerRow = D / kVec<T>;
  static constexpr int kChunks = kKeysPerTile * kChunksPerRow;  // also the Q tile's chunk count (BM == BN)
  static constexpr int kPerThread = kChunks / kPrefillThreads;
  static_assert(kChunks % kPrefillThreads == 0, "tile chunks must spread evenly over the threads");
};

template <class T>
__device__ __forceinline__ void store_floats(float* dst, const uint4& raw, float multiplier) {
  float v[kVec<T>];
  unpack16<T>(raw, v);
#pragma unroll
  for (int i = 0; i < kVec<T>; i += 4) {
    *reinterpret_cast<float4*>(dst + i) =
        make_float4(v[i] * multiplier, v[i + 1] * multiplier, v[i + 2] * multiplier, v[i + 3] * multiplier);
  }
}

__device__ __forceinline__ void store4(float* dst, float a, float b, float c, float d) {
  *reinterpret_cast<float4*>(dst) = make_float4(a, b, c, d);
}
__device__ __forceinline__ void store4(__nv_bfloat16* dst, float a, float b, float c, float d) {
  reinterpret_cast<__nv_bfloat162*>(dst)[0] = __floats2bfloat162_rn(a, b);
  reinterpret_cast<__nv_bfloat162*>(dst)[1] = __floats2bfloat162_rn(c, d);
}

template <class T, int D>
__global__ void __launch_bounds__(kPrefillThreads) prefill_kernel(Args<T> a) {
  using Smem = PrefillSmem<D>;
  using Load = TileLoad<T, D>;
  constexpr int V = kVec<T>;
  constexpr int kOutVecs = D / 64;  // float4 output column groups per thread

  const int seq = blockIdx.z;
  const int query_len = a.query_len[seq];
  if (query_len <= 1) return;  // decode sequences belong to the decode kernel
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_head = blockIdx.y;
  const int row0 = blockIdx.x * kRowsPerTile;  // first (token, head) row of this block
  if (row0 >= query_len * group) return;

  extern __shared__ float4 smem_raw[];
  float* q_tile = reinterpret_cast<float*>(smem_raw);     // [BM][D + pad], pre-scaled
  float* kv_tile = q_tile + kRowsPerTile * Smem::kStride;  // [BN][D + pad], K then V
  float* p_tile = kv_tile + kKeysPerTile * Smem::kStride;  // [BM][BN + pad]

  const int tid = threadIdx.x;
  const int ty = tid / 16;
  const int tx = tid % 16;
  const int context = a.context_len[seq];
  const int first_position = context - query_len;  // position of the sequence's first new token
  const int64_t query_start = a.query_start[seq];

  // Q tile: row r = (token r / group, head r % group); rows past the sequence are zeros (never written out).
#pragma unroll
  for (int n = 0; n < Load::kPerThread; ++n) {
    const int c = tid + n * kPrefillThreads;
    const int r = c / Load::kChunksPerRow;
    const int chunk = c % Load::kChunksPerRow;
    const int row = row0 + r;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (row < query_len * group) {
      const int64_t token = query_start + row / group;
      const int head = kv_head * group + row % group;
      raw = load16(a.q + token * a.q_row_stride + static_cast<int64_t>(head) * D + chunk * V);
    }
    store_floats<T>(q_tile + r * Smem::kStride + chunk * V, raw, a.scale);
  }

  // Query positions of this thread's rows (-1: padding row, sees nothing).
  int row_position[kRowsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int row = row0 + ty * kRowsPerThread + i;
    row_position[i] = row < query_len * group ? first_position + row / group : -1;
  }
  const int last_row = min(row0 + kRowsPerTile, query_len * group) - 1;
  const int lowest_position = first_position + row0 / group;
  const int highest_position = first_position + last_row / group;
  const int key_begin = first_visible(lowest_position, a.sliding_window);
  const int key_end = highest_position + 1;

  float running_max[kRowsPerThread];
  float running_sum[kRowsPerThread];
  float acc[kRowsPerThread][kOutVecs][4];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    running_max[i] = -CUDART_INF_F;
    running_sum[i] = 0.0f;
#pragma unroll
    for (int jj = 0; jj < kOutVecs; ++jj)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][jj][e] = 0.0f;
  }

  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  for (int tile = key_begin; tile < key_end; tile += kKeysPerTile) {
    // Issue all K and V loads of the tile; V waits in registers until K's scores are done.
    uint4 k_raw[Load::kPerThread];
    uint4 v_raw[Load::kPerThread];
#pragma unroll
    for (int n = 0; n < Load::kPerThread; ++n) {
      const int c = tid + n * kPrefillThreads;
      const int position = tile + c / Load::kChunksPerRow;
      k_raw[n] = v_raw[n] = make_uint4(0, 0, 0, 0);
      if (position < key_end) {
        const int64_t offset =
            cache_offset(table, position, a.block_size, a.num_kv_heads, D, kv_head) + (c % Load::kChunksPerRow) * V;
        k_raw[n] = load16(a.key_cache + offset);
        v_raw[n] = load16(a.value_cache + offset);
      }
    }
#pragma unroll
    for (int n = 0; n < Load::kPerThread; ++n) {
      const int c = tid + n * kPrefillThreads;
      store_floats<T>(kv_tile + (c / Load::kChunksPerRow) * Smem::kStride + (c % Load::kChunksPerRow) * V, k_raw[n],
                      1.0f);
    }
    __syncthreads();  // K tile (and, on the first tile, Q tile) ready

    float s[kRowsPerThread][4];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
      float4 qv[kRowsPerThread];
      float4 kv[4];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
        qv[i] = *reinterpret_cast<const float4*>(q_tile + (ty * kRowsPerThread + i) * Smem::kStride + d);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        kv[j] = *reinterpret_cast<const float4*>(kv_tile + (tx + 16 * j) * Smem::kStride + d);
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          s[i][j] += qv[i].x * kv[j].x + qv[i].y * kv[j].y + qv[i].z * kv[j].z + qv[i].w * kv[j].w;
    }

    // Mask, online softmax (the 16 threads of a row are 16 consecutive lanes), P to shared memory.
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int position = row_position[i];
      const int first = first_visible(position, a.sliding_window);
      float tile_max = -CUDART_INF_F;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int key = tile + tx + 16 * j;
        if (key > position || key < first) s[i][j] = -CUDART_INF_F;
        tile_max = fmaxf(tile_max, s[i][j]);
      }
#pragma unroll
      for (int offset = 8; offset > 0; offset >>= 1)
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
      const float new_max = fmaxf(running_max[i], tile_max);
      const float m = safe_max(new_max);
      float tile_sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = expf(s[i][j] - m);
        tile_sum += p;
        p_tile[(ty * kRowsPerThread + i) * Smem::kPStride + tx + 16 * j] = p;
      }
#pragma unroll
      for (int offset = 8; offset > 0; offset >>= 1) tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, offset);
      const float alpha = expf(running_max[i] - m);  // 0 while nothing was visible
      running_sum[i] = running_sum[i] * alpha + tile_sum;
      running_max[i] = new_max;
#pragma unroll
      for (int jj = 0; jj < kOutVecs; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][jj][e] *= alpha;
    }
    __syncthreads();  // all threads done reading K; P complete

#pragma unroll
    for (int n = 0; n < Load::kPerThread; ++n) {
      const int c = tid + n * kPrefillThreads;
      store_floats<T>(kv_tile + (c / Load::kChunksPerRow) * Smem::kStride + (c % Load::kChunksPerRow) * V, v_raw[n],
                      1.0f);
    }
    __syncthreads();  // V tile ready

#pragma unroll 2
    for (int k = 0; k < kKeysPerTile; k += 4) {
      float4 p4[kRowsPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
        p4[i] = *reinterpret_cast<const float4*>(p_tile + (ty * kRowsPerThread + i) * Smem::kPStride + k);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
        for (int jj = 0; jj < kOutVecs; ++jj) {
          const float4 v = *reinterpret_cast<const float4*>(kv_tile + (k + kk) * Smem::kStride + tx * 4 + 64 * jj);
#pragma unroll
          for (int i = 0; i < kRowsPerThread; ++i) {
            const float p = kk == 0 ? p4[i].x : kk == 1 ? p4[i].y : kk == 2 ? p4[i].z : p4[i].w;
            acc[i][jj][0] += p * v.x;
            acc[i][jj][1] += p * v.y;
            acc[i][jj][2] += p * v.z;
            acc[i][jj][3] += p * v.w;
          }
        }
      }
    }
    __syncthreads();  // done with V and P before the next tile overwrites them
  }

#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int row = row0 + ty * kRowsPerThread + i;
    if (row >= query_len * group) continue;
    const int64_t token = query_start + row / group;
    const int head = kv_head * group + row % group;
    T* dst = a.out + token * a.num_heads * D + static_cast<int64_t>(head) * D;
    const float inv = 1.0f / running_sum[i];
#pragma unroll
    for (int jj = 0; jj < kOutVecs; ++jj)
      store4(dst + tx * 4 + 64 * jj, acc[i][jj][0] * inv, acc[i][jj][1] * inv, acc[i][jj][2] * inv,
             acc[i][jj][3] * inv);
  }
}

template <class T, int D>
cudaError_t launch_prefill_dim(const Args<T>& args, int num_seqs, int max_query_len, cudaStream_t stream) {
  constexpr size_t bytes = PrefillSmem<D>::kBytes;
  cudaError_t status = cudaFuncSetAttribute(prefill_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes));
  if (status != cudaSuccess) return status;
  const int group = args.num_heads / args.num_kv_heads;
  const int64_t rows = static_cast<int64_t>(max_query_len) * group;
  const dim3 grid(static_cast<unsigned>((rows + kRowsPerTile - 1) / kRowsPerTile),
                  static_cast<unsigned>(args.num_kv_heads), static_cast<unsigned>(num_seqs));
  prefill_kernel<T, D><<<grid, kPrefillThreads, bytes, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t launch_prefill(const Args<T>& args, int head_dim, int num_seqs, int max_query_len, int tc_blocks_per_sm,
                          cudaStream_t stream) {
#if TESSERA_PREFILL_TENSOR_CORES
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (bf16_tensor_cores_available())
      return launch_prefill_tensor_core(args, head_dim, num_seqs, max_query_len, tc_blocks_per_sm, stream);
  }
#endif
  return head_dim == 64 ? launch_prefill_dim<T, 64>(args, num_seqs, max_query_len, stream)
                        : launch_prefill_dim<T, 128>(args, num_seqs, max_query_len, stream);
}

template cudaError_t launch_prefill<float>(const Args<float>&, int, int, int, int, cudaStream_t);
template cudaError_t launch_prefill<__nv_bfloat16>(const Args<__nv_bfloat16>&, int, int, int, int, cudaStream_t);

}  // namespace tessera::kernels::cuda::paged
