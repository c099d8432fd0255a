#pragma once
// Device code shared by the RoPE kernels (kernels/rope.cu, kernels/rope_kv_write.cu).

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

}  // namespace tessera::kernels::cuda
