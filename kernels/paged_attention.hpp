#pragma once
// Causal grouped-query attention of new query tokens over a paged KV cache (see kv_cache_write.hpp for the layout).
// Several sequences are batched "varlen" style: their new query tokens are concatenated into one [T, ...] array.
// A CUDA launcher `cudaError_t launch_paged_attention(..., cudaStream_t)` will be declared here later.
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
