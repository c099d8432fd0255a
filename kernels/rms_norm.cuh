#pragma once
// RMSNorm arithmetic shared by the norm kernels (rms_norm.cu) and the few-row GEMV that normalizes its own input
// (launch_linear_few_rows_norm, linear.cu): one definition of every float operation and of the reduction order, so
// the fused GEMV reproduces launch_add_rms_norm / launch_rms_norm bit for bit. Device code; include from .cu files.
#include <cstdint>

#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda::norm {

// Threads per row of the vectorized norm kernels: one 16-byte pack each, at most this many (a strided loop beyond).
inline constexpr int kMaxThreads = 1024;

// sum + f * f, one rounding (what `sum += f * f` compiles to, written out so no compiler choice is involved).
__device__ __forceinline__ float add_square(float sum, float f) { return __fmaf_rn(f, f, sum); }

// The residual stream after an add: residual + delta in FP32, stored as T.
template <class T>
__device__ __forceinline__ T add_residual(T residual, T delta) {
  return from_float<T>(to_float(residual) + to_float(delta));
}

// 1 / sqrt(mean square + eps) of a row of `dim` elements whose squares sum to `sum_sq`.
__device__ __forceinline__ float inv_rms(float sum_sq, int64_t dim, float eps) {
  return 1.0f / sqrtf(sum_sq / static_cast<float>(dim) + eps);
}

// One normalized element, (s * inv_rms) * weight, stored as T.
template <class T>
__device__ __forceinline__ T normalize(T s, float inv, T weight) {
  return from_float<T>(to_float(s) * inv * to_float(weight));
}

// The vectorized norm kernels' sum of squares of a row of `packs` packs (N elements each), seen from one thread of
// a block of `threads` threads: thread t adds the squares of packs t, t + threads, ... in order, elements of a pack
// in order. `pack(p)` returns pack p.
template <class T, int N, class PackAt>
__device__ __forceinline__ float thread_sum_of_squares(int thread, int threads, int64_t packs, PackAt&& pack) {
  float sum = 0.0f;
  for (int64_t p = thread; p < packs; p += threads) {
    const Pack<T, N> v = pack(p);
#pragma unroll
    for (int j = 0; j < N; ++j) sum = add_square(sum, to_float(v.v[j]));
  }
  return sum;
}

}  // namespace tessera::kernels::cuda::norm
