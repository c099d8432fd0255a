#pragma once
// Rotary position embedding, Llama "rotate_half" convention: for a head vector x of size d and pair index
// i < d/2 with angle a = position * inv_freq[i]:
//   out[i]       = x[i]       * cos(a) - x[i + d/2] * sin(a)
//   out[i + d/2] = x[i + d/2] * cos(a) + x[i]       * sin(a)
#include <cstdint>
#include <vector>

#include "core/model/llama_config.hpp"

namespace tessera::kernels {

// The head_dim/2 inverse frequencies theta^(-2i/d), adjusted by the config's rope scaling exactly like
// Hugging Face: Linear divides all by `factor`; Llama3 divides low frequencies (wavelength > original_ctx /
// low_freq_factor) by `factor`, keeps high frequencies (wavelength < original_ctx / high_freq_factor) and
// interpolates smoothly between. Computed in double, returned as float.
// Throws tessera::Error on an odd/non-positive head_dim or nonsensical scaling parameters.
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);
std::vector<float> rope_inv_freq(const LlamaConfig& config);

// In place on q: [num_tokens, num_q_heads, head_dim] and k: [num_tokens, num_kv_heads, head_dim]
// (k may be null with num_kv_heads = 0). positions: [num_tokens]; inv_freq: [head_dim / 2].
// The angle is formed in FP32 (position * inv_freq, like HF), cos/sin evaluated accurately.
// Parallel over tokens (OpenMP).
void rope_ref(float* q, float* k, int64_t num_tokens, int num_q_heads, int num_kv_heads, int head_dim,
              const int32_t* positions, const float* inv_freq);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// In place, device pointers, T = float or __nv_bfloat16, FP32 math. Token t's q heads start at q + t * row_stride
// and its k heads at k + t * row_stride (row_stride = elements between tokens, e.g. the fused QKV row
// (num_heads + 2 * num_kv_heads) * head_dim with k = q + num_heads * head_dim); heads are head_dim apart.
// k may be null with num_kv_heads = 0. positions: [num_tokens] int32; inv_freq: [head_dim / 2] (rope_inv_freq).
// Angles as rope_ref: position * inv_freq in FP32, cos/sin accurately (double, rounded to FP32).
// Asynchronous on `stream`; cudaErrorInvalidValue for an odd head_dim, head_dim > 1024 or negative counts.
// pdl: programmatic dependent launch (kernels/cuda_common.cuh); same results either way.
template <class T>
cudaError_t launch_rope(T* q, T* k, int64_t num_tokens, int64_t row_stride, int num_heads, int num_kv_heads,
                        int head_dim, const int32_t* positions, const float* inv_freq, cudaStream_t stream,
                        bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
