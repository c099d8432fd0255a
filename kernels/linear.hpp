#pragma once
// Linear layer / matmul without bias: y = x W^T, with W in Hugging Face's [out_features, in_features] layout.
// This is the hot loop of the CPU engine. A CUDA launcher `cudaError_t launch_linear(..., cudaStream_t)` (cuBLASLt
// or a custom GEMM) will be declared here later.
#include <cstdint>

namespace tessera::kernels {

// x: [rows, in_features]; weight: [out_features, in_features]; y: [rows, out_features] (must not alias x).
// Up to 3 rows (decode): vectorized dot products, parallel over output features. More rows (prefill): W is packed
// per 16-output x 256-input tile and multiplied with an outer-product micro kernel (6 rows x 16 outputs), cache-blocked
// over in_features and 256-row panels, OpenMP-parallel over (row panel, output tile).
// FP32 accumulation; summation order differs from a naive loop only by rounding.
void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features);

}  // namespace tessera::kernels
