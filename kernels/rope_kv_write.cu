#include "kernels/rope_kv_write.hpp"
#include "kernels/rope_common.cuh"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// One block per token. The (cos, sin) table is built as rope_kernel builds it; then one strided loop covers the
// rotation work items (N consecutive pair indices of one q or k head, the same arithmetic as rope_kernel, so the
// same bits) and the copies of the value vector (N elements each). Rotated k is stored in place and, when the slot
// is valid, in the key cache.
template <class T, int N>
__global__ void rope_kv_write_kernel(T* q, T* k, const T* v, int64_t row_stride, int num_heads, int num_kv_heads,
                                     int head_dim, const int32_t* __restrict__ positions,
                                     const float* __restrict__ inv_freq, const int64_t* __restrict__ slot_mapping,
                                     int64_t num_slots, T* __restrict__ key_cache, T* __restrict__ value_cache) {
  extern __shared__ float cos_sin[];  // [0, half): cos, [half, 2 * half): sin
  pdl_launch_dependents();
  pdl_wait();
  const int64_t token = blockIdx.x;
  const int half = head_dim / 2;
  const float position = static_cast<float>(positions[token]);
  fill_cos_sin(cos_sin, position, inv_freq, half);
  __syncthreads();

  const int64_t slot = slot_mapping[token];
  const bool cached = slot >= 0 && slot < num_slots;  // padding (negative) or a bad plan: no cache write
  const int64_t width = static_cast<int64_t>(num_kv_heads) * head_dim;
  T* k_dst = key_cache + (cached ? slot : 0) * width;
  T* v_dst = value_cache + (cached ? slot : 0) * width;
  const int packs_per_half = half / N;
  const int rotate_items = (num_heads + num_kv_heads) * packs_per_half;
  const int copy_items = cached ? static_cast<int>(width / N) : 0;
  T* q_row = q + token * row_stride;
  T* k_row = k + token * row_stride;
  const T* v_row = v + token * row_stride;
  for (int w = threadIdx.x; w < rotate_items + copy_items; w += blockDim.x) {
    if (w >= rotate_items) {
      const int p = w - rotate_items;
      store_pack<T, N>(v_dst, p, load_pack<T, N>(v_row, p));
      continue;
    }
    const int head = w / packs_per_half;
    const int i0 = (w % packs_per_half) * N;
    const bool is_key = head >= num_heads;
    const int64_t head_offset = static_cast<int64_t>(is_key ? head - num_heads : head) * head_dim;
    T* x = (is_key ? k_row : q_row) + head_offset;
    Pack<T, N> o1, o2;
    rotate_pack<T, N>(x, half, i0, cos_sin, o1, o2);
    if (is_key && cached) {
      store_pack<T, N>(k_dst + head_offset + i0, 0, o1);
      store_pack<T, N>(k_dst + head_offset + half + i0, 0, o2);
    }
  }
}

constexpr int kMaxThreads = 512;
constexpr int kMaxHeadDim = 1024;  // bounds the shared (cos, sin) table

}  // namespace

template <class T>
cudaError_t launch_rope_kv_write(T* q, T* k, const T* v, int64_t num_tokens, int64_t row_stride, int num_heads,
                                 const int32_t* positions, const float* inv_freq, const int64_t* slot_mapping,
                                 KvCacheLayout layout, T* key_cache, T* value_cache, cudaStream_t stream, bool pdl) {
  const int head_dim = layout.head_dim;
  const int64_t width = layout.floats_per_slot();
  if (num_tokens < 0 || num_tokens > INT32_MAX || num_heads < 0 || layout.num_blocks < 0 || layout.block_size <= 0 ||
      layout.num_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0 || head_dim > kMaxHeadDim ||
      row_stride < width) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens == 0) return cudaSuccess;
  if (q == nullptr || k == nullptr || v == nullptr || positions == nullptr || inv_freq == nullptr ||
      slot_mapping == nullptr || key_cache == nullptr || value_cache == nullptr) {
    return cudaErrorInvalidValue;
  }
  const int64_t num_slots = layout.num_blocks * layout.block_size;
  constexpr int N = kPackElems<T>;
  const int half = head_dim / 2;
  const bool vectorized = half % N == 0 && row_stride % N == 0 && is_aligned16(q) && is_aligned16(k) &&
                          is_aligned16(v) && is_aligned16(key_cache) && is_aligned16(value_cache);
  const size_t shared_bytes = 2 * static_cast<size_t>(half) * sizeof(float);
  const unsigned blocks = static_cast<unsigned>(num_tokens);
  const int64_t heads = int64_t{num_heads} + layout.num_kv_heads;
  if (vectorized) {
    return launch_kernel(pdl, rope_kv_write_kernel<T, N>, blocks,
                         threads_for(heads * (half / N) + width / N, kMaxThreads), shared_bytes, stream, q, k, v,
                         row_stride, num_heads, layout.num_kv_heads, head_dim, positions, inv_freq, slot_mapping,
                         num_slots, key_cache, value_cache);
  }
  return launch_kernel(pdl, rope_kv_write_kernel<T, 1>, blocks, threads_for(heads * half + width, kMaxThreads),
                       shared_bytes, stream, q, k, v, row_stride, num_heads, layout.num_kv_heads, head_dim, positions,
                       inv_freq, slot_mapping, num_slots, key_cache, value_cache);
}

#define TESSERA_INSTANTIATE_ROPE_KV_WRITE(T)                                                                     \
  template cudaError_t launch_rope_kv_write<T>(T*, T*, const T*, int64_t, int64_t, int, const int32_t*,          \
                                               const float*, const int64_t*, KvCacheLayout, T*, T*, cudaStream_t, \
                                               bool);
TESSERA_INSTANTIATE_ROPE_KV_WRITE(float)
TESSERA_INSTANTIATE_ROPE_KV_WRITE(__nv_bfloat16)
#undef TESSERA_INSTANTIATE_ROPE_KV_WRITE

}  // namespace tessera::kernels::cuda
