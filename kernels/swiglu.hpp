#pragma once
// SwiGLU activation of the Llama MLP: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
#include <cstdint>

namespace tessera::kernels {

// gate, up, out: [n] elementwise; out may alias gate or up. Parallel (OpenMP) for large n.
void swiglu_ref(const float* gate, const float* up, float* out, int64_t n);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers, T = float or __nv_bfloat16, FP32 math (fast exp and division: silu_mul in kernels/cuda_common.cuh,
// relative error ~1e-6; the few-row GEMV's kSwigluPairs epilogue computes the same, kernels/linear.hpp).
// gate_up: [rows][2 * inter] in the CUDA executor's paired layout, element 2j = gate j and 2j+1 = up j (the output
// of the paired gate/up weight, whose rows alternate gate and up); out: [rows][inter], out[r][j] =
// silu(gate_up[r][2j]) * gate_up[r][2j+1] (must not alias gate_up). Asynchronous on `stream`;
// cudaErrorInvalidValue for inter <= 0 or inter > 8M. pdl: programmatic dependent launch (kernels/cuda_common.cuh);
// same results either way.
template <class T>
cudaError_t launch_swiglu(const T* gate_up, T* out, int64_t rows, int64_t inter, cudaStream_t stream,
                          bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
