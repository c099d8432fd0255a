#pragma once
// RoPE and the KV-cache write of new tokens in one kernel: the composition of launch_rope (kernels/rope.hpp) on a
// fused QKV buffer and launch_kv_cache_write (kernels/kv_cache_write.hpp) of its rotated keys and its values, bit
// for bit. One launch instead of two in the decode path; the CPU oracle is rope_ref followed by kv_cache_write_ref.
#include <cstdint>

#include "kernels/kv_cache_write.hpp"

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers, T = float or __nv_bfloat16, FP32 math. Token t's q heads start at q + t * row_stride, its k heads
// at k + t * row_stride and its v heads at v + t * row_stride (e.g. the fused QKV row, row_stride =
// (num_heads + 2 * num_kv_heads) * head_dim); num_kv_heads and head_dim come from `layout`.
// In place: q and k rotated exactly as launch_rope does (positions: [num_tokens] int32; inv_freq: [head_dim / 2]).
// Cache: the rotated k and the unchanged v of token t go to slot slot_mapping[t] (int64) of key_cache / value_cache
// (layout as kv_cache_write.hpp); a negative slot (padding) or one beyond the cache skips the cache write (the
// rotation still happens). Asynchronous on `stream`; cudaErrorInvalidValue for negative counts, a malformed layout,
// an odd head_dim or one > 1024, row_stride < num_kv_heads * head_dim, or a null pointer. pdl: programmatic
// dependent launch (kernels/cuda_common.cuh); same results either way.
template <class T>
cudaError_t launch_rope_kv_write(T* q, T* k, const T* v, int64_t num_tokens, int64_t row_stride, int num_heads,
                                 const int32_t* positions, const float* inv_freq, const int64_t* slot_mapping,
                                 KvCacheLayout layout, T* key_cache, T* value_cache, cudaStream_t stream,
                                 bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
