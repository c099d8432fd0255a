#pragma once
// Packs of N consecutive elements moved as one load/store (N * sizeof(T) = 16 bytes gives one 128-bit access),
// and a block-wide sum. Device code only; include from .cu files.
#include <cstdint>

#include "kernels/cuda_common.cuh"

namespace tessera::kernels::cuda {

// Elements per 16-byte access: 4 floats or 8 bf16.
template <class T>
inline constexpr int kPackElems = static_cast<int>(16 / sizeof(T));

// N = 1 degenerates to a plain scalar access; callers pick N = kPackElems<T> only when every pointer they step
// through is 16-byte aligned (see is_aligned16).
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <class T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* base, int64_t pack_index) {
  return reinterpret_cast<const Pack<T, N>*>(base)[pack_index];
}
template <class T, int N>
__device__ __forceinline__ void store_pack(T* base, int64_t pack_index, const Pack<T, N>& p) {
  reinterpret_cast<Pack<T, N>*>(base)[pack_index] = p;
}

inline bool is_aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Sum of `v` over the whole block; blockDim.x must be a multiple of 32 (at most 1024). Every thread gets the
// total. Uses a 33-float shared buffer the caller provides; call at most once per buffer without a barrier between.
__device__ __forceinline__ float block_sum(float v, float* shared33) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int num_warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) shared33[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < num_warps ? shared33[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0) shared33[32] = w;
  }
  __syncthreads();
  return shared33[32];
}

// Threads for a block that processes `items` work items with a strided loop: a multiple of 32 in [32, max_threads].
inline int threads_for(int64_t items, int max_threads) {
  int64_t t = (items + 31) / 32 * 32;
  if (t < 32) t = 32;
  if (t > max_threads) t = max_threads;
  return static_cast<int>(t);
}

}  // namespace tessera::kernels::cuda
