#pragma once
// Device code shared by the RoPE kernels (kernels/rope.cu, kernels/rope_kv_write.cu).
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

// The block's threads fill cos_sin[0, half) with cos and cos_sin[half, 2 * half) with sin of position * inv_freq[i].
// The angle is rounded to FP32 like the CPU reference's product, then sin/cos are taken in double and rounded once,
// so both kernels rotate with the reference's exact values. The caller synchronizes the block before reading.
__device__ __forceinline__ void fill_cos_sin(float* cos_sin, float position, const float* __restrict__ inv_freq,
                                             int half) {
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(position, inv_freq[i]);
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    cos_sin[i] = static_cast<float>(c);
    cos_sin[half + i] = static_cast<float>(s);
  }
}

// Rotates the N pair indices i0 .. i0 + N - 1 of one head x (pairs (i, i + half)) in place and returns the rotated
// halves in o1 / o2 (for a copy into the KV cache). Products and sums rounded separately (no FMA), like the reference.
template <class T, int N>
__device__ __forceinline__ void rotate_pack(T* x, int half, int i0, const float* cos_sin, Pack<T, N>& o1,
                                            Pack<T, N>& o2) {
  const Pack<T, N> x1 = load_pack<T, N>(x + i0, 0);
  const Pack<T, N> x2 = load_pack<T, N>(x + half + i0, 0);
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const float c = cos_sin[i0 + j];
    const float s = cos_sin[half + i0 + j];
    const float a = to_float(x1.v[j]);
    const float b = to_float(x2.v[j]);
    o1.v[j] = from_float<T>(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    o2.v[j] = from_float<T>(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
  }
  store_pack<T, N>(x + i0, 0, o1);
  store_pack<T, N>(x + half + i0, 0, o2);
}

}  // namespace tessera::kernels::cuda
