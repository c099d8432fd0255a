// BF16 decode path of paged attention on tensor cores, built for memory-level parallelism: decode is a stream over
// the KV cache (every K/V row is read once and used by the few query heads of its GQA group), so the kernel's job
// is to keep enough bytes in flight while the small amount of math runs.
//
// Work split: one block of W warps per (sequence, kv head, chunk of <= 16 query heads of its group, split). The
// block walks its key range [begin, end) in tiles of 16 W keys; tile j's K and V rows are gathered from the paged
// cache (through the block table) into shared memory with 16-byte cp.async.cg, S tiles deep: while tile j is
// computed, tiles j + 1 .. j + S - 1 are in flight. By default W = 4 and S = 3 (2 x 34 KB in flight per block at
// head_dim 128, two blocks per SM); grids of many waves take S = 2 with three blocks per SM, whose extra warps hide
// the math between tiles better than the deeper pipeline does (DecodePlan::large_grid), or, on devices with much
// DRAM bandwidth per SM, W = 2 and S = 2 with six blocks per SM (DecodePlan::two_warp_blocks,
// kernels/attention_tuning.hpp).
// The block-table entries of the tile after next are fetched into registers one iteration ahead, so the address
// computation never waits on a table load.
//
// Math per tile: warp w owns keys [16 w, 16 w + 16) of the tile and keeps its own online-softmax state (no block
// barrier between QK^T, softmax and PV). The query heads are the M = 16 rows of mma.sync m16n8k16 (rows past the
// group's heads are zero and never written out): S = Q K^T (Q fragments stay in registers, K via ldmatrix), base-2
// online softmax in FP32, O += P V (P rounded to BF16 as the A operand, V via ldmatrix.trans). At the end the W
// warps' (max, sum, O) are merged through shared memory, then written as the output (one split), or as the split's
// FP32 partial for the combine kernel (max in base-2 units), or, when the splits run as one thread block cluster
// (small grids on sm_90+), combined with the other splits' partials through distributed shared memory: no combine
// kernel and no workspace round trip on a batch-1 step's critical path.
//
// Precision: as the tensor-core prefill kernel: BF16 products are exact, accumulation FP32, P rounded to BF16
// (relative error <= 2^-9 per weight) for P V only; the row sums use the unrounded FP32 P.
//
// Programmatic dependent launch (launch_paged_attention's contract): before pdl_wait() a block reads its
// sequence's step inputs and block table and starts the copies of the pipeline's first tiles, except the row of
// the new token (position context_len - 1, which the KV write just before may still be writing); after the wait
// it copies that row (when it lies in those tiles), reads q and goes on. At small batches the cache reads of the
// old tokens thus overlap the RoPE / KV-write kernel, and only the new row and q (both in L2) are on the critical
// path.
#include <cooperative_groups.h>

#include "kernels/paged_attention_mma.cuh"

namespace tessera::kernels::cuda::paged {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kKeysPerWarp = 16;                    // one k16 step of P V, two n8 tiles of S
constexpr int kHeadRows = kDecodeTcHeads;           // mma M: query heads per block
constexpr int kPad = 8;                             // bf16 elements (16 bytes) of smem row padding
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kHeadRows == 16, "query heads are the 16 rows of mma.sync m16n8k16");

// Shared-memory layout of one block of W warps, except the pipeline depth (DecodeTcLayout below).
template <int D, int W>
struct DecodeTcTile {
  static constexpr int kWarps = W;
  static constexpr int kThreads = 32 * W;
  static constexpr int kTileKeys = W * kKeysPerWarp;  // keys per pipeline stage
  // K/V tiles: rows of D bf16 padded by 16 bytes, so the 8 row addresses of an ldmatrix fall on distinct banks.
  static constexpr int kStride = D + kPad;
  static constexpr int kTileElems = kTileKeys * kStride;
  static constexpr int kStageElems = 2 * kTileElems;  // K tile, then V tile
  // Epilogue (reuses the pipeline memory): per warp O [16][D + 8] (padding against bank conflicts), max [16] and
  // sum [16], FP32.
  static constexpr int kOStride = D + 8;
  static constexpr size_t kEpilogueFloats = size_t{kWarps} * kHeadRows * kOStride + 2 * kWarps * kHeadRows;
  // Cluster combine (plan.cluster_combine): after the epilogue's floats, the block's merged partial that its
  // cluster peers read: acc [16][D], then max [16] and sum [16].
  static constexpr size_t kPartialFloats = size_t{kHeadRows} * D + 2 * kHeadRows;
  static constexpr size_t kEpilogueBytes = (kEpilogueFloats + kPartialFloats) * sizeof(float);
  // Loader: 16-byte chunks; consecutive threads take consecutive chunks of a row (coalesced 256-byte rows).
  static constexpr int kChunksPerRow = D / 8;
  static constexpr int kRowsPerPass = kThreads / kChunksPerRow;  // W = 4: 8 (D = 128) or 16 (D = 64); W = 2: half
  static constexpr int kCopyRows = kTileKeys / kRowsPerPass;     // rows per thread and tile: 8 (D = 128) or 4
  static_assert(kThreads % kChunksPerRow == 0 && kTileKeys % kRowsPerPass == 0, "loader must tile evenly");
  static_assert(kTileKeys % 64 == 0 || 64 % kTileKeys == 0, "split partitions (64-key quanta) hold whole tiles");
  static_assert(kStride % 8 == 0, "smem rows must stay 16-byte aligned");
};

template <int D, int S, int W>  // S: pipeline stages, tiles resident (one computed, S - 1 in flight)
struct DecodeTcLayout : DecodeTcTile<D, W> {
  static constexpr size_t kPipelineBytes = size_t{S} * DecodeTcTile<D, W>::kStageElems * sizeof(bf16);
  static constexpr size_t kEpilogueBytes = DecodeTcTile<D, W>::kEpilogueBytes;
  static constexpr size_t kSmemBytes = kPipelineBytes > kEpilogueBytes ? kPipelineBytes : kEpilogueBytes;
};

// Block ids of the rows this thread copies for the tile starting at `tile_start` (0 past `end`: never read).
template <int D, int W>
__device__ __forceinline__ void fetch_block_ids(int (&ids)[DecodeTcTile<D, W>::kCopyRows], const int32_t* table,
                                                int tile_start, int end, int copy_row, int block_size) {
  using L = DecodeTcTile<D, W>;
#pragma unroll
  for (int i = 0; i < L::kCopyRows; ++i) {
    const int position = tile_start + copy_row + i * L::kRowsPerPass;
    ids[i] = position < end ? __ldg(table + position / block_size) : 0;
  }
}

// Starts the copies of the K and V rows of one tile into a stage; rows at or past `end` are zero-filled (their
// V rows meet P = 0, which must not be 0 * garbage). Rows at positions in [deferred, end) are skipped (left for a
// later copy_row_chunk); deferred >= end skips none.
template <int D, int W>
__device__ __forceinline__ void issue_tile(bf16* stage, const Args<bf16>& a,
                                           const int (&ids)[DecodeTcTile<D, W>::kCopyRows], int tile_start, int end,
                                           int deferred, int copy_row, int copy_chunk, int kv_head) {
  using L = DecodeTcTile<D, W>;
#pragma unroll
  for (int i = 0; i < L::kCopyRows; ++i) {
    const int r = copy_row + i * L::kRowsPerPass;
    const int position = tile_start + r;
    if (position >= deferred && position < end) continue;
    const bool valid = position < end;
    int64_t offset = 0;
    if (valid) {
      const int64_t slot = static_cast<int64_t>(ids[i]) * a.block_size + position % a.block_size;
      offset = (slot * a.num_kv_heads + kv_head) * D + copy_chunk * 8;
    }
    const int smem_offset = r * L::kStride + copy_chunk * 8;
    cp_async16(smem_address(stage + smem_offset), a.key_cache + offset, valid);
    cp_async16(smem_address(stage + L::kTileElems + smem_offset), a.value_cache + offset, valid);
  }
}

// Starts the copy of this thread's 16-byte chunk of the K and V rows of `position` (block id `block`) into row
// `row` of a stage.
template <int D, int W>
__device__ __forceinline__ void copy_row_chunk(bf16* stage, const Args<bf16>& a, int block, int position, int row,
                                               int copy_chunk, int kv_head) {
  using L = DecodeTcTile<D, W>;
  const int64_t slot = static_cast<int64_t>(block) * a.block_size + position % a.block_size;
  const int64_t offset = (slot * a.num_kv_heads + kv_head) * D + copy_chunk * 8;
  const int smem_offset = row * L::kStride + copy_chunk * 8;
  cp_async16(smem_address(stage + smem_offset), a.key_cache + offset, true);
  cp_async16(smem_address(stage + L::kTileElems + smem_offset), a.value_cache + offset, true);
}

// The end of a block under plan.cluster_combine: the blocks of one cluster are the splits of one (sequence, kv head,
// head chunk), cluster rank = split (cluster dims (1, 1, num_splits)). Each block's merged partial sits in its own
// shared memory at `partial` (DecodeTcTile::kPartialFloats; blocks of empty splits have none and are never read).
// The cluster's blocks share the heads x D outputs and each combines one over the splits the sequence's visible
// range reaches, with the same float operations in the same order as combine_kernel (paged_attention_decode.cu),
// so the output is bit-identical to the partials-in-workspace path. Every block of the cluster must call it.
template <int D, int W>
__device__ __forceinline__ void combine_in_cluster(const Args<bf16>& a, const DecodePlan& plan, float* partial,
                                                   int span, int heads, int head0, int64_t token) {
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // (release / acquire) every split's partial is in its block's shared memory
  const int used = min(plan.num_splits, (span + plan.partition - 1) / plan.partition);
  const int rank = static_cast<int>(cluster.block_rank());
  constexpr int kThreads = DecodeTcTile<D, W>::kThreads;
  for (int idx = rank * kThreads + static_cast<int>(threadIdx.x); idx < heads * D; idx += kThreads * plan.num_splits) {
    const int g = idx / D;
    const int d = idx % D;
    float maxima[kMaxClusterSplits], sums[kMaxClusterSplits], accs[kMaxClusterSplits];
#pragma unroll
    for (int p = 0; p < kMaxClusterSplits; ++p) {  // all remote loads first: one round trip
      if (p < used) {
        const float* peer = cluster.map_shared_rank(partial, p);
        accs[p] = peer[g * D + d];
        maxima[p] = peer[kHeadRows * D + g];
        sums[p] = peer[kHeadRows * D + kHeadRows + g];
      }
    }
    // Every used split saw at least one key: its max is finite, and so is global_max.
    float global_max = -CUDART_INF_F;
#pragma unroll
    for (int p = 0; p < kMaxClusterSplits; ++p)
      if (p < used) global_max = fmaxf(global_max, maxima[p]);
    float weights[kMaxClusterSplits];
    float denominator = 0.0f;
#pragma unroll
    for (int p = 0; p < kMaxClusterSplits; ++p) {
      if (p < used) {
        weights[p] = exp2f(maxima[p] - global_max);
        denominator = __fmaf_rn(weights[p], sums[p], denominator);
      }
    }
    const float inv = 1.0f / denominator;
    float total = 0.0f;
#pragma unroll
    for (int p = 0; p < kMaxClusterSplits; ++p)
      if (p < used) total = __fmaf_rn(weights[p], accs[p], total);
    a.out[token * a.num_heads * D + static_cast<int64_t>(head0 + g) * D + d] = __float2bfloat16(total * inv);
  }
  cluster.sync();  // no block leaves (its shared memory) while a peer still reads it
}

// D: head_dim; S: pipeline stages; W: warps per block; B: blocks per SM the registers must allow.
template <int D, int S, int W, int B>
__global__ void __launch_bounds__(32 * W, B)
    decode_tc_kernel(Args<bf16> a, int group_chunks, DecodePlan plan, Partials partials) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // BF16 mma.sync and cp.async need sm_80; the launcher never picks this kernel below that
#else
  using L = DecodeTcLayout<D, S, W>;
  constexpr int kStages = S;
  constexpr int kWarps = W;
  constexpr int kThreads = L::kThreads;
  constexpr int kTileKeys = L::kTileKeys;
  constexpr int kDSteps = D / 16;   // k-steps of S = Q K^T
  constexpr int kOutTiles = D / 8;  // n-tiles of O

  const int seq = blockIdx.y;
  // All per-sequence metadata loads issued together (one memory latency, not three in a row). Step inputs: no
  // kernel of the chain writes them, so they are read before pdl_wait().
  const int query_len = a.query_len[seq];
  const int context = a.context_len[seq];
  const int64_t token = a.query_start[seq];
  if (query_len != 1) {      // prefill sequences (and query_len 0 padding) are not ours
    pdl_launch_dependents();  // nothing to load first
    pdl_wait();               // (every thread waits before exiting: see cuda_common.cuh)
    return;
  }
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_head = static_cast<int>(blockIdx.x) / group_chunks;
  const int head0 = kv_head * group + (static_cast<int>(blockIdx.x) % group_chunks) * kHeadRows;
  const int heads = min(kHeadRows, kv_head * group + group - head0);

  const int first = first_visible(context - 1, a.sliding_window);
  const int split = blockIdx.z;
  const int begin = first + split * plan.partition;
  const int end = split == plan.num_splits - 1 ? context : min(context, begin + plan.partition);
  extern __shared__ uint4 decode_tc_smem[];  // 16-byte aligned
  float* cluster_partial = reinterpret_cast<float*>(decode_tc_smem) + L::kEpilogueFloats;
  if (begin >= end) {  // a split past this sequence's visible range: the combine never reads it
    pdl_launch_dependents();
    pdl_wait();
    if (plan.cluster_combine) combine_in_cluster<D, W>(a, plan, cluster_partial, context - first, heads, head0, token);
    return;
  }
  const int num_tiles = (end - begin + kTileKeys - 1) / kTileKeys;
  const int fresh = context - 1;  // the new token: its K/V row may still be in the making before pdl_wait()

  bf16* stages = reinterpret_cast<bf16*>(decode_tc_smem);

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int quad_row = lane / 4;  // fragment rows quad_row and quad_row + 8 (query heads head0 + row)
  const int quad_col = lane % 4;  // fragment column pair 2 * quad_col
  const int copy_row = tid / L::kChunksPerRow;
  const int copy_chunk = tid % L::kChunksPerRow;
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;

  // Pipeline prologue: tiles 0 .. kStages - 2 in flight (without the new token's row), block ids of tile
  // kStages - 1 in registers. All of it before pdl_wait(): old cache rows and block tables only.
  int ids[L::kCopyRows];
  fetch_block_ids<D, W>(ids, table, begin, end, copy_row, a.block_size);
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < num_tiles)
      issue_tile<D, W>(stages + t * L::kStageElems, a, ids, begin + t * kTileKeys, end, fresh, copy_row, copy_chunk,
                    kv_head);
    cp_async_commit();  // possibly empty: keeps the group count uniform for the waits
    fetch_block_ids<D, W>(ids, table, begin + (t + 1) * kTileKeys, end, copy_row, a.block_size);
  }
  // The new token's row, when the prologue skipped it: its tile and row, and this thread's part in copying it.
  // (fresh = end - 1 in the split that holds it, the last one; later tiles are issued after the wait anyway.)
  const int fresh_tile = (fresh - begin) / kTileKeys;
  const int fresh_row = fresh - begin - fresh_tile * kTileKeys;
  const bool copies_fresh = fresh >= begin && fresh < end && fresh_tile < kStages - 1 &&
                            fresh_row % L::kRowsPerPass == copy_row;
  const int fresh_block = copies_fresh ? __ldg(table + fresh / a.block_size) : 0;
  pdl_launch_dependents();  // after this block's own loads are under way
  pdl_wait();               // q, the new token's K/V row, the workspace and out from here on
  if (copies_fresh) {
    copy_row_chunk<D, W>(stages + fresh_tile * L::kStageElems, a, fresh_block, fresh, fresh_row, copy_chunk, kv_head);
    cp_async_commit();
  }

  // Q fragments (A operand, rows = query heads): a0/a2 row quad_row, a1/a3 row quad_row + 8; columns
  // 2 * quad_col (+ 8) of each 16-wide k-step. Rows past the block's heads are zero.
  uint32_t q_frag[kDSteps][4];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = quad_row + 8 * h;
    const bool valid = row < heads;
    const bf16* q_row = a.q + token * a.q_row_stride + static_cast<int64_t>(valid ? head0 + row : 0) * D + 2 * quad_col;
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) {
      q_frag[ks][h] = valid ? *reinterpret_cast<const uint32_t*>(q_row + ks * 16) : 0u;
      q_frag[ks][2 + h] = valid ? *reinterpret_cast<const uint32_t*>(q_row + ks * 16 + 8) : 0u;
    }
  }
  // The new row's copy (issued before the q loads, so the two round trips overlap) and, with it, this thread's
  // copies of the prologue tiles; the loop's barrier publishes them.
  if (copies_fresh) cp_async_wait<0>();

  const float scale_log2 = a.scale * kLog2e;  // softmax in base 2: exp(x) = exp2(x * log2(e))
  float o[kOutTiles][4];
#pragma unroll
  for (int dt = 0; dt < kOutTiles; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.0f;
  float row_max[2] = {-CUDART_INF_F, -CUDART_INF_F};  // running max of this warp's base-2 scores per row
  float row_sum[2] = {0.0f, 0.0f};                    // this lane's share of the row sums (quad-reduced at the end)

  // ldmatrix lane addresses: K (non-transposed) gives b0/b1 of the warp's two 8-key n-tiles; V (transposed)
  // b0/b1 of two 8-column n-tiles.
  const int k_row = warp * kKeysPerWarp + (lane & 7) + (lane >> 4) * 8;
  const int k_col = ((lane >> 3) & 1) * 8;
  const int v_row = warp * kKeysPerWarp + (lane & 7) + ((lane >> 3) & 1) * 8;
  const int v_col = (lane >> 4) * 8;

  int stage = 0;  // stage of tile j
  for (int j = 0; j < num_tiles; ++j) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile j landed
    __syncthreads();               // everyone's did, and every warp is done with tile j - 1 (its stage is free)
    const int next = j + kStages - 1;
    const int next_stage = stage == 0 ? kStages - 1 : stage - 1;  // (stage + kStages - 1) % kStages
    if (next < num_tiles)
      issue_tile<D, W>(stages + next_stage * L::kStageElems, a, ids, begin + next * kTileKeys, end, end, copy_row,
                    copy_chunk, kv_head);
    cp_async_commit();
    fetch_block_ids<D, W>(ids, table, begin + (next + 1) * kTileKeys, end, copy_row, a.block_size);

    const int warp_start = begin + j * kTileKeys + warp * kKeysPerWarp;
    if (warp_start < end) {  // warp-uniform: the last tile's trailing warps may have no visible key
      const bf16* k_tile = stages + stage * L::kStageElems;
      const bf16* v_tile = k_tile + L::kTileElems;
      float s[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        uint32_t b[4];
        ldmatrix_x4(b, smem_address(k_tile + k_row * L::kStride + ks * 16 + k_col));
        mma_bf16(s[0], q_frag[ks], b[0], b[1]);
        mma_bf16(s[1], q_frag[ks], b[2], b[3]);
      }
      // Element e of n-tile nt: row quad_row + 8 * (e / 2), key warp_start + nt * 8 + 2 * quad_col + e % 2.
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = warp_start + nt * 8 + 2 * quad_col + (e & 1);
          s[nt][e] = key < end ? s[nt][e] * scale_log2 : -CUDART_INF_F;
        }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float tile_max = fmaxf(fmaxf(s[0][2 * h], s[0][2 * h + 1]), fmaxf(s[1][2 * h], s[1][2 * h + 1]));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(row_max[h], tile_max);
        const float m = safe_max(new_max);
        const float alpha = exp2f(row_max[h] - m);  // 0 while nothing was visible
        row_max[h] = new_max;
        float tile_sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
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
      // O += P V: the S accumulators of the two key n-tiles are the A fragment of the warp's k16 step.
      const uint32_t p[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                             pack_bf16(s[1][2], s[1][3])};
#pragma unroll
      for (int dp = 0; dp < kOutTiles / 2; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_address(v_tile + v_row * L::kStride + dp * 16 + v_col));
        mma_bf16(o[2 * dp], p, b[0], b[1]);
        mma_bf16(o[2 * dp + 1], p, b[2], b[3]);
      }
    }
    stage = stage == kStages - 1 ? 0 : stage + 1;
  }
  cp_async_wait<0>();  // only empty groups can remain; the epilogue reuses the pipeline memory
  __syncthreads();     // every warp is done reading its last tile

  // Merge the W warps' states: O [warp][row][d], then max and sum [warp][row].
  float* o_shared = reinterpret_cast<float*>(decode_tc_smem);
  float* max_shared = o_shared + kWarps * kHeadRows * L::kOStride;
  float* sum_shared = max_shared + kWarps * kHeadRows;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = warp * kHeadRows + quad_row + 8 * h;
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt)
      *reinterpret_cast<float2*>(o_shared + row * L::kOStride + dt * 8 + 2 * quad_col) =
          make_float2(o[dt][2 * h], o[dt][2 * h + 1]);
    if (quad_col == 0) {
      max_shared[row] = row_max[h];
      sum_shared[row] = sum;
    }
  }
  __syncthreads();

  for (int idx = tid; idx < heads * D; idx += kThreads) {
    const int g = idx / D;
    const int d = idx % D;
    // Warp 0 saw key `begin`, so the merged max is finite; a warp that saw no key has max -inf, weight 0.
    float merged_max = -CUDART_INF_F;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) merged_max = fmaxf(merged_max, max_shared[w * kHeadRows + g]);
    float total = 0.0f;
    float denominator = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float weight = exp2f(max_shared[w * kHeadRows + g] - merged_max);
      total += weight * o_shared[(w * kHeadRows + g) * L::kOStride + d];
      denominator += weight * sum_shared[w * kHeadRows + g];
    }
    const int head = head0 + g;
    if (plan.num_splits == 1) {
      a.out[token * a.num_heads * D + static_cast<int64_t>(head) * D + d] = __float2bfloat16(total / denominator);
    } else if (plan.cluster_combine) {
      cluster_partial[g * D + d] = total;
      if (d == 0) {
        cluster_partial[kHeadRows * D + g] = merged_max;
        cluster_partial[kHeadRows * D + kHeadRows + g] = denominator;
      }
    } else {
      const int64_t part = (static_cast<int64_t>(seq) * a.num_heads + head) * plan.num_splits + split;
      partials.acc[part * D + d] = total;
      if (d == 0) {
        partials.max[part] = merged_max;
        partials.sum[part] = denominator;
      }
    }
  }
  if (plan.cluster_combine) combine_in_cluster<D, W>(a, plan, cluster_partial, context - first, heads, head0, token);
#endif
}

template <int D, int S, int W, int B>
cudaError_t launch_tc_dim(const Args<bf16>& args, int num_seqs, const DecodePlan& plan, const Partials& partials,
                          cudaStream_t stream, bool pdl) {
  constexpr size_t bytes = DecodeTcLayout<D, S, W>::kSmemBytes;
  static_assert(B * bytes <= 227 * 1024, "B blocks must fit one SM's shared memory (sm_90: 227 KB)");
  auto* kernel = decode_tc_kernel<D, S, W, B>;
  cudaError_t status =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (status != cudaSuccess) return status;
  // Shared memory over L1: the cache rows bypass L1 (cp.async.cg); at D = 128 B blocks per SM.
  status = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
  if (status != cudaSuccess) return status;
  const int group = args.num_heads / args.num_kv_heads;
  const int group_chunks = (group + kHeadRows - 1) / kHeadRows;
  const dim3 grid(static_cast<unsigned>(args.num_kv_heads * group_chunks), static_cast<unsigned>(num_seqs),
                  static_cast<unsigned>(plan.num_splits));
  const dim3 cluster(1, 1, plan.cluster_combine ? static_cast<unsigned>(plan.num_splits) : 1u);
  return launch_kernel_clusters(pdl, cluster, kernel, grid, dim3(DecodeTcTile<D, W>::kThreads), bytes, stream, args,
                                group_chunks, plan, partials);
}

// The kernel instance of a plan's block shape, for head_dim D.
template <int D>
cudaError_t launch_tc_shape(const Args<bf16>& args, int num_seqs, const DecodePlan& plan, const Partials& partials,
                            cudaStream_t stream, bool pdl) {
  if (!plan.large_grid) return launch_tc_dim<D, 3, 4, 2>(args, num_seqs, plan, partials, stream, pdl);
  if (plan.two_warp_blocks)
    return launch_tc_dim<D, 2, 2, kTwoWarpLargeGridBlocksPerSm>(args, num_seqs, plan, partials, stream, pdl);
  return launch_tc_dim<D, 2, 4, kLargeGridBlocksPerSm>(args, num_seqs, plan, partials, stream, pdl);
}

}  // namespace

bool cluster_launch_available() {
  int device = 0;
  int supported = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&supported, cudaDevAttrClusterLaunch, device) != cudaSuccess) return false;
  return supported != 0;
}

cudaError_t launch_decode_tensor_core(const Args<bf16>& args, int head_dim, int num_seqs, const DecodePlan& plan,
                                      const Partials& partials, cudaStream_t stream, bool pdl) {
  return head_dim == 64 ? launch_tc_shape<64>(args, num_seqs, plan, partials, stream, pdl)
                        : launch_tc_shape<128>(args, num_seqs, plan, partials, stream, pdl);
}

}  // namespace tessera::kernels::cuda::paged
