#pragma once
// Internals shared by the paged-attention CUDA kernels (decode split-K path, prefill paths: tensor-core BF16 and tiled CUDA-core) and their
// launcher (paged_attention.cu). Device code; include from .cu files only.
#include <cstdint>
#include <math_constants.h>

#include "kernels/cuda_common.cuh"

namespace tessera::kernels::cuda::paged {

// Everything a kernel needs about one launch, passed by value (plain ints and pointers, no host structs).
template <class T>
struct Args {
  const T* q = nullptr;          // row t of the queries at q + t * q_row_stride, heads [num_heads][head_dim]
  int64_t q_row_stride = 0;      // elements
  const T* key_cache = nullptr;  // [num_blocks][block_size][num_kv_heads][head_dim]
  const T* value_cache = nullptr;
  int block_size = 0;
  int num_kv_heads = 0;
  int num_heads = 0;
  const int32_t* query_start = nullptr;  // [num_seqs]
  const int32_t* query_len = nullptr;
  const int32_t* context_len = nullptr;
  const int32_t* block_tables = nullptr;  // [num_seqs][max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  float scale = 1.0f;
  int sliding_window = 0;
  T* out = nullptr;  // [num_tokens][num_heads * head_dim]
};

// Split-K (flash-decoding) plan of the decode path: the visible key range of a decode query,
// [first, context_len), is cut into partitions of `partition` tokens; partition p of a sequence is handled by
// blockIdx.z == p. num_splits == 1 writes the output directly, otherwise partials go to the workspace.
// The plan depends on host arguments only (num_seqs, the max_context_len bound, heads), so a launch captured in a
// CUDA graph stays valid for any context lengths up to that bound: a split that starts past a sequence's visible
// range does nothing, and the combine kernel reads only the splits a sequence really used.
struct DecodePlan {
  int num_splits = 1;
  int partition = 0;  // tokens per split (a multiple of the decode key tile); the last split runs to the end
  // The planner allows it (few splits, a small grid); launch_decode keeps it only for the tensor-core kernel on a
  // device with clusters: the splits of one (sequence, kv head) then run as one thread block cluster and combine
  // their partials through distributed shared memory, with no workspace and no combine kernel.
  bool cluster_combine = false;
  // The grid is many waves deep (the planner's kLargeGridWaves): the tensor-core kernel then keeps one K/V tile in
  // flight instead of two and runs kLargeGridBlocksPerSm blocks per SM; the extra warps hide the math between tiles
  // (256 sequences x 1000 tokens: 2.74 vs 2.65 TB/s on an H100, 3.15 vs 2.89 on an H200; session 4 runs 8-9).
  bool large_grid = false;
  // With large_grid: blocks of 2 warps (32-key tiles) at kTwoWarpLargeGridBlocksPerSm per SM instead of 4 warps at
  // kLargeGridBlocksPerSm, for devices with much DRAM bandwidth per SM (kernels/attention_tuning.hpp).
  bool two_warp_blocks = false;
};

inline constexpr int kLargeGridBlocksPerSm = 3;
inline constexpr int kTwoWarpLargeGridBlocksPerSm = 6;  // the same 12 warps per SM as kLargeGridBlocksPerSm x 4

// Most splits combined inside a cluster (the portable cluster size); more splits go through the combine kernel.
inline constexpr int kMaxClusterSplits = 8;

// Workspace layout of the split-K partials (FP32): max and sum [num_seqs][num_heads][num_splits], then
// acc [num_seqs][num_heads][num_splits][head_dim] (unnormalised: sum_k exp(s_k - max) v_k). The CUDA-core decode
// kernel stores max in natural units (scaled scores), the tensor-core one in base-2 units (scores * log2(e)); the
// combine kernel is told which.
struct Partials {
  float* max = nullptr;
  float* sum = nullptr;
  float* acc = nullptr;
};

// 16-byte vector of T converted to FP32 (4 floats or 8 bf16).
template <class T>
inline constexpr int kVec = static_cast<int>(16 / sizeof(T));

template <class T>
__device__ __forceinline__ void unpack16(const uint4& raw, float (&out)[kVec<T>]);
template <>
__device__ __forceinline__ void unpack16<float>(const uint4& raw, float (&out)[4]) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
template <>
__device__ __forceinline__ void unpack16<__nv_bfloat16>(const uint4& raw, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // bf16 -> f32 is a 16-bit shift: low half is element 2i, high half element 2i + 1.
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ uint4 load16(const void* p) { return *reinterpret_cast<const uint4*>(p); }

// Flat element offset of (position, kv_head) in a K or V cache of one sequence (block table row `table`).
__device__ __forceinline__ int64_t cache_offset(const int32_t* table, int position, int block_size, int num_kv_heads,
                                                int head_dim, int kv_head) {
  const int64_t block = table[position / block_size];
  const int64_t slot = block * block_size + position % block_size;
  return (slot * num_kv_heads + kv_head) * head_dim;
}

// First visible key position of a query at `position` (sliding window: keys in (position - window, position]).
__device__ __forceinline__ int first_visible(int position, int sliding_window) {
  return sliding_window > 0 ? max(0, position - sliding_window + 1) : 0;
}

// exp(x - m) that treats a running max of -inf (nothing visible yet) as 0, so masked rows give 0, never NaN.
__device__ __forceinline__ float safe_max(float m) { return m == -CUDART_INF_F ? 0.0f : m; }

// True when the current device has BF16 mma.sync and cp.async (compute capability >= 8.0). Host only, cheap.
// Defined in paged_attention_prefill_tc.cu.
bool bf16_tensor_cores_available();

// True when the current device launches thread block clusters (compute capability >= 9.0). Host only, cheap.
// Defined in paged_attention_decode_tc.cu.
bool cluster_launch_available();

// Query heads one tensor-core decode block serves (the M = 16 rows of mma.sync); larger GQA groups take several
// blocks per kv head. The launcher's split heuristic counts blocks with it.
inline constexpr int kDecodeTcHeads = 16;

// Decode path: one block per (sequence, kv head, group chunk of <= 8 query heads, split). Sequences whose
// query_len != 1 are skipped (the prefill kernel takes them). Defined in paged_attention_decode.cu.
// BF16 on sm_80+ takes the tensor-core kernel (launch_decode_tensor_core) unless built with
// TESSERA_DECODE_TENSOR_CORES=0; FP32 (and older GPUs) the CUDA-core kernel.
// pdl: the decode kernel and the combine launch with programmatic dependent launch (launch_paged_attention's
// contract: step inputs and the cache rows before each decode sequence's last position may be read before
// pdl_wait()).
template <class T>
cudaError_t launch_decode(const Args<T>& args, int head_dim, int num_seqs, const DecodePlan& plan,
                          const Partials& partials, cudaStream_t stream, bool pdl);

// Tensor-core decode kernel (BF16): one block per (sequence, kv head, chunk of <= 16 query heads, split), K/V tiles
// gathered by a multi-stage cp.async pipeline. Partial maxima in base-2 units. Launches the decode kernel only:
// with plan.cluster_combine (requires 2 <= num_splits <= kMaxClusterSplits and cluster_launch_available()) the
// splits of a (sequence, kv head, chunk) form one cluster that writes the combined output, bit-identical to the
// combine kernel's, and `partials` is not used; otherwise the caller launches the combine when num_splits > 1.
// Defined in paged_attention_decode_tc.cu.
cudaError_t launch_decode_tensor_core(const Args<__nv_bfloat16>& args, int head_dim, int num_seqs,
                                      const DecodePlan& plan, const Partials& partials, cudaStream_t stream, bool pdl);

// Prefill path: one block per (tile of 64 (token, head-of-group) rows, kv head, sequence). Sequences whose
// query_len <= 1 are skipped. Defined in paged_attention_prefill.cu.
// tc_blocks_per_sm: occupancy of the BF16 tensor-core kernel (AttentionTuning::prefill_blocks_per_sm, validated by
// the caller).
template <class T>
cudaError_t launch_prefill(const Args<T>& args, int head_dim, int num_seqs, int max_query_len, int tc_blocks_per_sm,
                          cudaStream_t stream);

}  // namespace tessera::kernels::cuda::paged
