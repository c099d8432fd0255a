#pragma once
// RMSNorm (Llama): out = x / sqrt(mean(x^2) + eps) * weight, per row, FP32 accumulation.
// CUDA launchers `cudaError_t launch_rms_norm(..., cudaStream_t)` and `launch_add_rms_norm` will be declared here later.
#include <cstdint>

namespace tessera::kernels {

// x, out: [rows, dim] (may alias); weight: [dim]. Parallel over rows (OpenMP).
void rms_norm_ref(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps);

// Fused residual add + RMSNorm, the transformer block boundary:
//   residual += x;  out = rms_norm(residual) * weight.
// residual, x, out: [rows, dim]; out must not alias residual. Parallel over rows (OpenMP).
void add_rms_norm_ref(float* residual, const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
                      float eps);

}  // namespace tessera::kernels
