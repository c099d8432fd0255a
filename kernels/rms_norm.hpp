#pragma once
// RMSNorm (Llama): out = x / sqrt(mean(x^2) + eps) * weight, per row, FP32 accumulation.
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

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers, T = float or __nv_bfloat16, FP32 math. One block per row; 16-byte accesses when dim and the
// pointers allow. Asynchronous on `stream`; returns the launch status (cudaErrorInvalidValue for dim <= 0 or
// rows < 0). x, out: [rows, dim] (may alias); weight: [dim].
// pdl (both launchers): programmatic dependent launch (kernels/cuda_common.cuh); same results either way.
template <class T>
cudaError_t launch_rms_norm(const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps,
                            cudaStream_t stream, bool pdl = false);

// residual += x (added in FP32, stored as T), then out = rms_norm(residual) * weight, where the norm reads the
// residual as stored (rounded to T, as Hugging Face's BF16 models do; for T = float exactly add_rms_norm_ref).
// residual, x, out: [rows, dim]; out may alias x but not residual; x must not alias residual.
template <class T>
cudaError_t launch_add_rms_norm(T* residual, const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps,
                                cudaStream_t stream, bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
