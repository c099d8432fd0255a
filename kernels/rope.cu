#include "kernels/rope.hpp"
#include "kernels/rope_common.cuh"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// One block per token. The block first evaluates the head_dim/2 (cos, sin) pairs once into shared memory (angle
// position * inv_freq in FP32, cos/sin in double and rounded, as rope_ref: accurate for positions up to 128K and
// beyond), then rotates every q and k head of the token; a thread handles N consecutive pair indices of one head.
// Products and sums are rounded separately (no FMA contraction), like the reference.
template <class T, int N>
__global__ void rope_kernel(T* q, T* k, int64_t row_stride, int num_heads, int num_kv_heads, int head_dim,
                            const int32_t* __restrict__ positions, const float* __restrict__ inv_freq) {
  extern __shared__ float cos_sin[];  // [0, half): cos, [half, 2 * half): sin
  pdl_launch_dependents();
  pdl_wait();
  const int64_t token = blockIdx.x;
  const int half = head_dim / 2;
  const float position = static_cast<float>(positions[token]);
  fill_cos_sin(cos_sin, position, inv_freq, half);
  __syncthreads();

  const int packs_per_half = half / N;
  const int total_packs = (num_heads + num_kv_heads) * packs_per_half;
  T* q_row = q + token * row_stride;
  T* k_row = k ? k + token * row_stride : nullptr;
  for (int w = threadIdx.x; w < total_packs; w += blockDim.x) {
    const int head = w / packs_per_half;
    const int i0 = (w % packs_per_half) * N;
    T* x = head < num_heads ? q_row + static_cast<int64_t>(head) * head_dim
                            : k_row + static_cast<int64_t>(head - num_heads) * head_dim;
    Pack<T, N> o1, o2;
    rotate_pack<T, N>(x, half, i0, cos_sin, o1, o2);
  }
}

constexpr int kMaxThreads = 512;
constexpr int kMaxHeadDim = 1024;  // bounds the shared (cos, sin) table

}  // namespace

template <class T>
cudaError_t launch_rope(T* q, T* k, int64_t num_tokens, int64_t row_stride, int num_heads, int num_kv_heads,
                        int head_dim, const int32_t* positions, const float* inv_freq, cudaStream_t stream, bool pdl) {
  if (num_tokens < 0 || num_tokens > INT32_MAX || head_dim <= 0 || head_dim % 2 != 0 || head_dim > kMaxHeadDim ||
      num_heads < 0 || num_kv_heads < 0 || (k == nullptr && num_kv_heads > 0)) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens == 0 || num_heads + num_kv_heads == 0) return cudaSuccess;
  constexpr int N = kPackElems<T>;
  const int half = head_dim / 2;
  const bool vectorized = half % N == 0 && row_stride % N == 0 && is_aligned16(q) && (k == nullptr || is_aligned16(k));
  const size_t shared_bytes = 2 * static_cast<size_t>(half) * sizeof(float);
  const unsigned blocks = static_cast<unsigned>(num_tokens);
  const int64_t heads = num_heads + num_kv_heads;
  if (vectorized) {
    return launch_kernel(pdl, rope_kernel<T, N>, blocks, threads_for(heads * (half / N), kMaxThreads), shared_bytes,
                         stream, q, k, row_stride, num_heads, num_kv_heads, head_dim, positions, inv_freq);
  }
  return launch_kernel(pdl, rope_kernel<T, 1>, blocks, threads_for(heads * half, kMaxThreads), shared_bytes, stream, q,
                       k, row_stride, num_heads, num_kv_heads, head_dim, positions, inv_freq);
}

template cudaError_t launch_rope<float>(float*, float*, int64_t, int64_t, int, int, int, const int32_t*, const float*,
                                        cudaStream_t, bool);
template cudaError_t launch_rope<__nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, int64_t, int64_t, int, int, int,
                                                const int32_t*, const float*, cudaStream_t, bool);

}  // namespace tessera::kernels::cuda
