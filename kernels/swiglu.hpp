#pragma once
// SwiGLU activation of the Llama MLP: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
// A CUDA launcher `cudaError_t launch_swiglu(..., cudaStream_t)` will be declared here later.
#include <cstdint>

namespace tessera::kernels {

// gate, up, out: [n] elementwise; out may alias gate or up. Parallel (OpenMP) for large n.
void swiglu_ref(const float* gate, const float* up, float* out, int64_t n);

}  // namespace tessera::kernels
