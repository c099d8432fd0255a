#pragma once
// Linear layer / matmul without bias: y = x W^T, with W in Hugging Face's [out_features, in_features] layout.
// This is the hot loop of the CPU engine. A CUDA launcher `cudaError_t launch_linear(..., cudaStream_t)` (cuBLASLt
// or a custom GEMM) will be declared here later.
#include <cstdint>

namespace tessera::kernels {

// x: [rows, in_features]; weight: [out_features, in_features]; y: [rows, out_features] (must not alias x).
// Vectorized dot products (8 lanes along in_features), OpenMP-parallel over 64-output tiles, rows in groups of 3.
// Batch invariant: each output row is bit-identical whatever the other rows are, so a sequence gets the same logits
// alone or inside any batch (served tokens equal offline tokens exactly). FP32 accumulation.
void linear_ref(const float* x, const float* weight, float* y, int64_t rows, int64_t in_features,
                int64_t out_features);

}  // namespace tessera::kernels
