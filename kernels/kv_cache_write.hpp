#pragma once
// Writes the K/V vectors of new tokens into the paged KV cache of one layer.
// Paged layout (shared with the GPU): K and V each [num_blocks][block_size][num_kv_heads][head_dim] FP32;
// a sequence's token at position p lives in block block_table[p / block_size], slot p % block_size, i.e. at
// flat slot index block_table[p / block_size] * block_size + p % block_size.
// A CUDA launcher `cudaError_t launch_kv_cache_write(..., cudaStream_t)` will be declared here later.
#include <cstdint>

namespace tessera::kernels {

struct KvCacheLayout {
  int64_t num_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int64_t floats_per_slot() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }
};

// key, value: [num_tokens, num_kv_heads, head_dim]; slot_mapping: [num_tokens] flat slot indices
// (block * block_size + offset); a negative slot skips the token (padding).
// Throws tessera::Error if a slot is >= num_blocks * block_size (checked before writing).
void kv_cache_write_ref(const float* key, const float* value, int64_t num_tokens, const int64_t* slot_mapping,
                        const KvCacheLayout& layout, float* key_cache, float* value_cache);

}  // namespace tessera::kernels
