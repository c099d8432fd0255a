#pragma once
// Causal grouped-query attention of new query tokens over a paged KV cache (see kv_cache_write.hpp for the layout).
// Several sequences are batched "varlen" style: their new query tokens are concatenated into one [T, ...] array.
// The CUDA launcher (below, under TESSERA_WITH_CUDA) computes the same thing on the GPU.
#include <cstdint>
#include <span>

#include "kernels/kv_cache_write.hpp"

namespace tessera::kernels {

// One sequence of the batch. Its query tokens are rows [query_start, query_start + query_len) of q/out and sit at
// positions context_len - query_len ... context_len - 1. Cache positions 0 .. context_len - 1 (including the new
// tokens, written beforehand) are found through block_table.
struct AttentionSequence {
  int64_t query_start = 0;
  int32_t query_len = 0;
  int32_t context_len = 0;
  const int32_t* block_table = nullptr;  // >= ceil(context_len / block_size) entries
};

struct AttentionParams {
  int num_heads = 0;       // query heads; query head h reads kv head h / (num_heads / num_kv_heads)
  float scale = 1.0f;      // softmax scale, normally 1/sqrt(head_dim)
  int sliding_window = 0;  // > 0: a query at position p sees keys at positions in (p - sliding_window, p]
};

// q, out: [T, num_heads, head_dim]. Each query at position p attends to cached positions <= p (and inside the
// sliding window). FP32 online softmax. Parallel over (token, head) pairs (OpenMP).
// Inputs are trusted (validated by the caller): block ids must lie in [0, layout.num_blocks).
void paged_attention_ref(const float* q, const float* key_cache, const float* value_cache, const KvCacheLayout& layout,
                         std::span<const AttentionSequence> sequences, const AttentionParams& params, float* out);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/attention_tuning.hpp"

namespace tessera::kernels::cuda {

// Scratch bytes launch_paged_attention needs (split-K partials of the decode path) for ANY launch on the current
// device with num_seqs <= max_num_seqs and max_context_len <= the given one (same heads / window); 0 when no
// split is ever needed. Host only, cheap (queries the current device's SM count, which steers the split count).
size_t paged_attention_workspace_bytes(int max_num_seqs, int max_context_len, int num_heads, int num_kv_heads,
                                       int head_dim, int sliding_window);

// Paged attention of a varlen batch on the GPU; same semantics as paged_attention_ref (new tokens' K/V are in the
// cache already). Device pointers; T = float or __nv_bfloat16 for q, the caches and out.
//   q: query row of token t at q + t * q_row_stride, heads [num_heads][head_dim] (q_row_stride >= num_heads *
//      head_dim, e.g. the fused QKV row). out: [num_tokens][num_heads * head_dim], dense.
//   query_start, query_len, context_len: [num_seqs] int32; block_tables: [num_seqs][max_blocks_per_seq] int32.
//   max_query_len, max_context_len: host-side upper bounds of the device arrays' values (they size the grids; a
//      too small max_query_len leaves rows unwritten). Sequences with query_len 0 are skipped. Grids and the split
//      plan depend only on the host arguments (num_seqs, max_query_len, max_context_len, heads), so a launch
//      captured in a CUDA graph with a bound (e.g. the next power of two) is correct for any device-side lengths
//      within it; max_blocks_per_seq is only the block-table row stride.
// Paths: sequences with query_len == 1 take the decode kernel (one block per (sequence, kv head) that reads each
//   K/V row once for all query heads of the group; BF16 on sm_80+: tensor cores fed by a 3-stage cp.async
//   pipeline, P rounded to BF16 for P V; the context is split (flash-decoding) into partitions of whole 64-key
//   tiles when the grid would not fill the GPU (small batches, contexts above one tile), with a small combine
//   kernel over the FP32 partials in `workspace`, or, for BF16 on sm_90+ with at most 8 splits and a grid of at
//   most one block per SM, combined inside thread block clusters without the workspace). Sequences
//   with query_len > 1 take the flash-attention prefill kernel (BF16 on sm_80+: tensor cores, mma.sync with P in BF16;
//   FP32: tiled CUDA cores); a mixed batch launches both kernels on `stream` (each skips the other's sequences), so
//   decode rows never pay for prefill tiles.
// Requirements (else cudaErrorInvalidValue, nothing launched): head_dim 64 or 128, num_heads a multiple of
//   num_kv_heads, q / caches / out 16-byte aligned and q_row_stride a multiple of 16 / sizeof(T) elements,
//   num_seqs <= 65535, workspace_bytes >= paged_attention_workspace_bytes(num_seqs, max_context_len, ...).
// Block ids and lengths are trusted (the executor validates plans). Asynchronous on `stream`, never synchronizes,
// allocates nothing; returns the launch status.
// pdl: the decode kernel (and its split combine) launch with programmatic dependent launch (kernels/cuda_common.cuh):
//   they start while the kernel before them (the step's KV write) finishes, and let the kernel after them start its
//   prologue early. Before their pdl_wait() they read, besides nothing written by earlier kernels, two things the
//   caller must guarantee no kernel of the stream's current PDL chain writes: the step inputs (query_start,
//   query_len, context_len, block_tables: copied before the chain's first normally launched kernel) and, of each
//   decode sequence, the K/V rows at positions below context_len - 1 (earlier steps' tokens; only the new token at
//   context_len - 1 may be written just before). q, the new token's K/V row, the workspace and out are touched
//   after the wait. The prefill kernel launches normally. Same results with or without.
// tuning (attention_tuning.hpp): launch shapes of the BF16 tensor-core kernels. large_grid_blocks: the decode
//   kernel's block shape for grids many waves deep (large batches; kAuto decides by the current device's DRAM
//   bandwidth per SM); prefill_blocks_per_sm: 2 or 3 (else cudaErrorInvalidValue). Same results (up to FP32 summation
//   order inside a block) with any choice.
template <class T>
cudaError_t launch_paged_attention(const T* q, int64_t q_row_stride, const T* key_cache, const T* value_cache,
                                   KvCacheLayout layout, const int32_t* query_start, const int32_t* query_len,
                                   const int32_t* context_len, const int32_t* block_tables, int max_blocks_per_seq,
                                   int num_seqs, int64_t num_tokens, int max_query_len, int max_context_len,
                                   AttentionParams params, T* out, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream, bool pdl = false,
                                   AttentionTuning tuning = {});

}  // namespace tessera::kernels::cuda
#endif
