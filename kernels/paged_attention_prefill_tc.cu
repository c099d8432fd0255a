// BF16 prefill path of paged attention on tensor cores (FlashAttention-2 style, mma.sync m16n8k16 BF16 -> FP32).
//
// Tiling: a block of 4 warps owns 64 query rows, a row being (token, query head of the group) as in the CUDA-core
// kernel, so the heads that share a kv head read each K/V tile once. Each warp owns 16 rows: its Q fragments stay
// in registers, S = Q K^T (16 x 64 keys) and O (16 x head_dim) are FP32 mma accumulators. K and V tiles of 64
// keys are gathered from the paged cache with 16-byte cp.async into shared memory (rows padded by 16 bytes so the
// ldmatrix row addresses fall on distinct banks); V(j) loads while S(j) is computed, K(j+1) while softmax(j) and
// P V(j) run.
//
// Precision: Q K^T multiplies BF16 inputs exactly and accumulates in FP32; the online softmax (max, exp2, row
// sums) is FP32; P is rounded to BF16 (relative error <= 2^-9 per weight) for the P V product, which accumulates
// in FP32; the row sums use the unrounded FP32 P. The output is normalised in FP32 and rounded to BF16 once.
#include "kernels/paged_attention_mma.cuh"
#include "kernels/paged_attention_prefill_tc.cuh"

namespace tessera::kernels::cuda::paged {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kTcRows = 64;  // query rows per block: 4 warps x 16
constexpr int kTcKeys = 64;  // keys per K/V tile
constexpr int kTcThreads = 128;
constexpr int kTcPad = 8;  // bf16 elements (16 bytes) of row padding

template <int D>
struct TcLayout {
  static constexpr int kStride = D + kTcPad;  // elements between smem rows (a multiple of 8: 16-byte aligned rows)
  static constexpr int kTileElems = kTcKeys * kStride;
  static constexpr size_t kSmemBytes = size_t{3} * kTileElems * sizeof(bf16);  // Q, K, V tiles
  static constexpr int kChunksPerRow = D / 8;                                   // 16-byte chunks
  static constexpr int kChunksPerThread = kTcKeys * kChunksPerRow / kTcThreads;
  static_assert(kTcRows == kTcKeys, "Q and K/V tiles share the loader");
  static_assert(kTcKeys * kChunksPerRow % kTcThreads == 0, "tile chunks must spread evenly over the threads");
};

// Gathers keys [start, start + 64) of one kv head from the paged cache into a padded smem tile; positions at or
// past `end` are zero-filled (never read from the cache: their block-table entries may be garbage).
template <int D>
__device__ __forceinline__ void load_kv_tile(bf16* tile, const bf16* cache, const int32_t* table, int start, int end,
                                             int block_size, int num_kv_heads, int kv_head) {
  using L = TcLayout<D>;
#pragma unroll
  for (int n = 0; n < L::kChunksPerThread; ++n) {
    const int c = threadIdx.x + n * kTcThreads;
    const int r = c / L::kChunksPerRow;
    const int chunk = c % L::kChunksPerRow;
    const int position = start + r;
    const bool valid = position < end;
    const bf16* src = cache;
    if (valid) src = cache + cache_offset(table, position, block_size, num_kv_heads, D, kv_head) + chunk * 8;
    cp_async16(smem_address(tile + r * L::kStride + chunk * 8), src, valid);
  }
}

// B: blocks per SM the registers must allow (2: 238 registers at D = 128; 3: capped at 168, no spills).
template <int D, int B>
__global__ void __launch_bounds__(kTcThreads, B) prefill_tc_kernel(Args<bf16> a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // BF16 mma.sync and cp.async need sm_80; the launcher never picks this kernel below that
#else
  using L = TcLayout<D>;
  constexpr int kDSteps = D / 16;         // k-steps of S = Q K^T
  constexpr int kKeyTiles = kTcKeys / 8;  // n-tiles of S
  constexpr int kOutTiles = D / 8;        // n-tiles of O

  const int seq = blockIdx.z;
  const int query_len = a.query_len[seq];
  if (query_len <= 1) return;  // decode sequences belong to the decode kernel
  const int group = a.num_heads / a.num_kv_heads;
  const int rows_total = query_len * group;
  const int kv_head = blockIdx.y;
  // Latest rows (the most keys under the causal mask) first, so the longest blocks do not trail the grid.
  const int row0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kTcRows;
  if (row0 >= rows_total) return;

  extern __shared__ uint4 tc_smem[];
  bf16* q_tile = reinterpret_cast<bf16*>(tc_smem);
  bf16* k_tile = q_tile + L::kTileElems;
  bf16* v_tile = k_tile + L::kTileElems;

  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int quad_row = lane / 4;  // fragment row (and row + 8) of this lane
  const int quad_col = lane % 4;  // fragment column pair 2 * quad_col
  const int context = a.context_len[seq];
  const int first_position = context - query_len;  // position of the sequence's first new token
  const int64_t query_start = a.query_start[seq];
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;

  // Q tile (row r = (token r / group, head r % group)); rows past the sequence are zeros, never written out.
#pragma unroll
  for (int n = 0; n < L::kChunksPerThread; ++n) {
    const int c = threadIdx.x + n * kTcThreads;
    const int r = c / L::kChunksPerRow;
    const int chunk = c % L::kChunksPerRow;
    const int row = row0 + r;
    const bool valid = row < rows_total;
    const bf16* src = a.q;
    if (valid) {
      const int64_t token = query_start + row / group;
      const int head = kv_head * group + row % group;
      src = a.q + token * a.q_row_stride + static_cast<int64_t>(head) * D + chunk * 8;
    }
    cp_async16(smem_address(q_tile + r * L::kStride + chunk * 8), src, valid);
  }

  const int last_row = min(row0 + kTcRows, rows_total) - 1;
  const int lowest_position = first_position + row0 / group;
  const int highest_position = first_position + last_row / group;
  const int key_begin = first_visible(lowest_position, a.sliding_window);
  const int key_end = highest_position + 1;
  const int num_tiles = (key_end - key_begin + kTcKeys - 1) / kTcKeys;
  // Keys below this are outside the window of the block's last row: tiles starting there need the mask.
  const int window_edge = a.sliding_window > 0 ? first_visible(highest_position, a.sliding_window) : 0;

  // Positions of this lane's two rows (h = 0: warp row quad_row, h = 1: quad_row + 8); -1: padding, sees nothing.
  int row_position[2];
  int row_first[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = row0 + warp * 16 + quad_row + 8 * h;
    row_position[h] = row < rows_total ? first_position + row / group : -1;
    row_first[h] = first_visible(row_position[h], a.sliding_window);
  }

  load_kv_tile<D>(k_tile, a.key_cache, table, key_begin, key_end, a.block_size, a.num_kv_heads, kv_head);
  cp_async_commit();  // group: Q tile + K(0)

  const float scale_log2 = a.scale * 1.4426950408889634f;  // softmax in base 2: exp(x) = exp2(x * log2(e))
  uint32_t q_frag[kDSteps][4];
  float o[kOutTiles][4];
#pragma unroll
  for (int dt = 0; dt < kOutTiles; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.0f;
  float row_max[2] = {-CUDART_INF_F, -CUDART_INF_F};  // running max of the scaled (base-2) scores
  float row_sum[2] = {0.0f, 0.0f};                    // this lane's share of the row sums (quad-reduced at the end)

  // ldmatrix lane addresses: A (Q) fragments take matrices (rows 0-7 | 8-15) x (cols 0-7 | 8-15) in a0..a3
  // order; K (non-transposed) gives b0/b1 of two 8-key n-tiles; V (transposed) b0/b1 of two 8-column n-tiles.
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int a_col = (lane >> 4) * 8;
  const int k_row = (lane & 7) + (lane >> 4) * 8;
  const int k_col = ((lane >> 3) & 1) * 8;
  const int v_row = (lane & 7) + ((lane >> 3) & 1) * 8;
  const int v_col = (lane >> 4) * 8;

  for (int j = 0; j < num_tiles; ++j) {
    const int start = key_begin + j * kTcKeys;
    load_kv_tile<D>(v_tile, a.value_cache, table, start, key_end, a.block_size, a.num_kv_heads, kv_head);
    cp_async_commit();
    cp_async_wait<1>();  // Q (first tile) and K(j) landed; V(j) may be in flight
    __syncthreads();

    if (j == 0) {
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks)
        ldmatrix_x4(q_frag[ks], smem_address(q_tile + (warp * 16 + a_row) * L::kStride + ks * 16 + a_col));
    }

    float s[kKeyTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) {
#pragma unroll
      for (int np = 0; np < kKeyTiles / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, smem_address(k_tile + (np * 16 + k_row) * L::kStride + ks * 16 + k_col));
        mma_bf16(s[2 * np], q_frag[ks], b[0], b[1]);
        mma_bf16(s[2 * np + 1], q_frag[ks], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with K(j)
    if (j + 1 < num_tiles)
      load_kv_tile<D>(k_tile, a.key_cache, table, start + kTcKeys, key_end, a.block_size, a.num_kv_heads, kv_head);
    cp_async_commit();  // possibly empty: keeps the group count uniform for the waits

    // Online softmax in base 2. Element e of n-tile nt is (row quad_row + 8 * (e / 2), key start + nt * 8 +
    // 2 * quad_col + e % 2). Tiles wholly visible to every row of the block skip the mask.
    const bool needs_mask = start + kTcKeys - 1 > lowest_position || start < window_edge;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] *= scale_log2;
        if (needs_mask) {
          const int key = start + nt * 8 + 2 * quad_col + (e & 1);
          const int h = e >> 1;
          if (key > row_position[h] || key < row_first[h]) s[nt][e] = -CUDART_INF_F;
        }
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float tile_max = -CUDART_INF_F;
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) tile_max = fmaxf(tile_max, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[h], tile_max);
      const float m = safe_max(new_max);
      const float alpha = exp2f(row_max[h] - m);  // 0 while nothing was visible
      row_max[h] = new_max;
      float tile_sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
        s[nt][2 * h] = exp2f(s[nt][2 * h] - m);
        s[nt][2 * h + 1] = exp2f(s[nt][2 * h + 1] - m);
        tile_sum += s[nt][2 * h] + s[nt][2 * h + 1];
      }
      row_sum[h] = row_sum[h] * alpha + tile_sum;
#pragma unroll
      for (int dt = 0; dt < kOutTiles; ++dt) {
        o[dt][2 * h] *= alpha;
        o[dt][2 * h + 1] *= alpha;
      }
    }

    cp_async_wait<1>();  // V(j) landed; K(j + 1) may be in flight
    __syncthreads();

    // O += P V: the S accumulators of key n-tiles (2 ks, 2 ks + 1) are the A fragment of key step ks.
#pragma unroll
    for (int ks = 0; ks < kTcKeys / 16; ++ks) {
      const uint32_t p[4] = {pack_bf16(s[2 * ks][0], s[2 * ks][1]), pack_bf16(s[2 * ks][2], s[2 * ks][3]),
                             pack_bf16(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                             pack_bf16(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kOutTiles / 2; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_address(v_tile + (ks * 16 + v_row) * L::kStride + dp * 16 + v_col));
        mma_bf16(o[2 * dp], p, b[0], b[1]);
        mma_bf16(o[2 * dp + 1], p, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with V(j) before the next tile overwrites it
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = row0 + warp * 16 + quad_row + 8 * h;
    if (row >= rows_total) continue;
    const int64_t token = query_start + row / group;
    const int head = kv_head * group + row % group;
    bf16* dst = a.out + token * a.num_heads * D + static_cast<int64_t>(head) * D + 2 * quad_col;
    const float inv = 1.0f / sum;  // > 0: a row always sees its own key
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt)
      *reinterpret_cast<uint32_t*>(dst + dt * 8) = pack_bf16(o[dt][2 * h] * inv, o[dt][2 * h + 1] * inv);
  }
#endif
}

template <int D, int B>
cudaError_t launch_tc_dim(const Args<bf16>& args, int num_seqs, int max_query_len, cudaStream_t stream) {
  constexpr size_t bytes = TcLayout<D>::kSmemBytes;
  static_assert(B * bytes <= 227 * 1024, "B blocks must fit one SM's shared memory (sm_90: 227 KB)");
  cudaError_t status =
      cudaFuncSetAttribute(prefill_tc_kernel<D, B>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (status != cudaSuccess) return status;
  if constexpr (B > 2) {
    // Shared memory over L1 so that B blocks (B x 52 KB at D = 128) fit: the K/V tiles bypass L1 (cp.async.cg).
    status = cudaFuncSetAttribute(prefill_tc_kernel<D, B>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared);
    if (status != cudaSuccess) return status;
  }
  const int group = args.num_heads / args.num_kv_heads;
  const int64_t rows = static_cast<int64_t>(max_query_len) * group;
  const dim3 grid(static_cast<unsigned>((rows + kTcRows - 1) / kTcRows), static_cast<unsigned>(args.num_kv_heads),
                  static_cast<unsigned>(num_seqs));
  prefill_tc_kernel<D, B><<<grid, kTcThreads, bytes, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

bool bf16_tensor_cores_available() {
  int device = 0;
  int major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  return major >= 8;
}

cudaError_t launch_prefill_tensor_core(const Args<bf16>& args, int head_dim, int num_seqs, int max_query_len,
                                       int blocks_per_sm, cudaStream_t stream) {
  if (blocks_per_sm == 3)
    return head_dim == 64 ? launch_tc_dim<64, 3>(args, num_seqs, max_query_len, stream)
                          : launch_tc_dim<128, 3>(args, num_seqs, max_query_len, stream);
  return head_dim == 64 ? launch_tc_dim<64, 2>(args, num_seqs, max_query_len, stream)
                        : launch_tc_dim<128, 2>(args, num_seqs, max_query_len, stream);
}

}  // namespace tessera::kernels::cuda::paged
