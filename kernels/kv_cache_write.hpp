#pragma once
// Writes the K/V vectors of new tokens into the paged KV cache of one layer.
// Paged layout (shared with the GPU): K and V each [num_blocks][block_size][num_kv_heads][head_dim] FP32;
// a sequence's token at position p lives in block block_table[p / block_size], slot p % block_size, i.e. at
// flat slot index block_table[p / block_size] * block_size + p % block_size.
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

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers, T = float or __nv_bfloat16; the caches use the layout above with T elements. Token t's key and
// value vectors start at key + t * row_stride and value + t * row_stride (row_stride >= num_kv_heads * head_dim,
// e.g. the fused QKV row). slot_mapping: [num_tokens] int64; a negative slot skips the token, a slot beyond the
// cache is skipped too (the executor validates plans; the kernel never writes out of bounds).
// Asynchronous on `stream`; cudaErrorInvalidValue for a malformed layout or row_stride.
// pdl: programmatic dependent launch (kernels/cuda_common.cuh); same results either way.
template <class T>
cudaError_t launch_kv_cache_write(const T* key, const T* value, int64_t num_tokens, int64_t row_stride,
                                  const int64_t* slot_mapping, KvCacheLayout layout, T* key_cache, T* value_cache,
                                  cudaStream_t stream, bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
