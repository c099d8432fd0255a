#include "kernels/kv_cache_write.hpp"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// One block per token: copies its num_kv_heads * head_dim key and value elements into the cache slot.
template <class T, int N>
__global__ void kv_cache_write_kernel(const T* __restrict__ key, const T* __restrict__ value, int64_t row_stride,
                                      const int64_t* __restrict__ slot_mapping, int64_t num_slots, int64_t width,
                                      T* __restrict__ key_cache, T* __restrict__ value_cache) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t token = blockIdx.x;
  const int64_t slot = slot_mapping[token];
  if (slot < 0 || slot >= num_slots) return;  // padding (negative), or a bad plan: never write out of bounds
  const T* k_src = key + token * row_stride;
  const T* v_src = value + token * row_stride;
  T* k_dst = key_cache + slot * width;
  T* v_dst = value_cache + slot * width;
  const int64_t packs = width / N;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    store_pack<T, N>(k_dst, p, load_pack<T, N>(k_src, p));
    store_pack<T, N>(v_dst, p, load_pack<T, N>(v_src, p));
  }
}

constexpr int kMaxThreads = 256;

}  // namespace

template <class T>
cudaError_t launch_kv_cache_write(const T* key, const T* value, int64_t num_tokens, int64_t row_stride,
                                  const int64_t* slot_mapping, KvCacheLayout layout, T* key_cache, T* value_cache,
                                  cudaStream_t stream, bool pdl) {
  const int64_t width = layout.floats_per_slot();
  if (num_tokens < 0 || num_tokens > INT32_MAX || layout.num_blocks < 0 || layout.block_size <= 0 ||
      layout.num_kv_heads <= 0 || layout.head_dim <= 0 || row_stride < width) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens == 0) return cudaSuccess;
  const int64_t num_slots = layout.num_blocks * layout.block_size;
  constexpr int N = kPackElems<T>;
  const bool vectorized = width % N == 0 && row_stride % N == 0 && is_aligned16(key) && is_aligned16(value) &&
                          is_aligned16(key_cache) && is_aligned16(value_cache);
  const unsigned blocks = static_cast<unsigned>(num_tokens);
  if (vectorized) {
    return launch_kernel(pdl, kv_cache_write_kernel<T, N>, blocks, threads_for(width / N, kMaxThreads), 0, stream,
                         key, value, row_stride, slot_mapping, num_slots, width, key_cache, value_cache);
  }
  return launch_kernel(pdl, kv_cache_write_kernel<T, 1>, blocks, threads_for(width, kMaxThreads), 0, stream, key,
                       value, row_stride, slot_mapping, num_slots, width, key_cache, value_cache);
}

template cudaError_t launch_kv_cache_write<float>(const float*, const float*, int64_t, int64_t, const int64_t*,
                                                  KvCacheLayout, float*, float*, cudaStream_t, bool);
template cudaError_t launch_kv_cache_write<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, int64_t,
                                                          int64_t, const int64_t*, KvCacheLayout, __nv_bfloat16*,
                                                          __nv_bfloat16*, cudaStream_t, bool);

}  // namespace tessera::kernels::cuda
