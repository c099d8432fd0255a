#pragma once
// Shared device helpers of the CUDA kernels (device code only; include from .cu files).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <utility>

namespace tessera::kernels::cuda {

// Load/store any supported element type as FP32 (all math is FP32).
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

// Sum over a warp (all 32 lanes active).
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__host__ __device__ inline unsigned ceil_div(long long a, long long b) { return static_cast<unsigned>((a + b - 1) / b); }

// silu(g) * u = g / (1 + exp(-g)) * u, the SwiGLU of the Llama MLP. One definition for launch_swiglu and the few-row
// down projection that fuses it, so both produce the same activations bit for bit. Fast exp and division (relative
// error ~1e-6, far below BF16 rounding; the fused GEMV evaluates it once per weight pair it streams, and the
// accurate versions would make that kernel compute bound). An exp overflow (g < -88) gives -0, not NaN.
__device__ __forceinline__ float silu_mul(float g, float u) {
  return __fmul_rn(__fdividef(g, __fadd_rn(1.0f, __expf(-g))), u);
}

// Programmatic dependent launch (sm_90+). A kernel launched with launch_kernel(pdl = true, ...) may start while the
// kernel before it on the stream is still running, as soon as every block of that kernel has called
// pdl_launch_dependents (or exited). Contract for every kernel that can be launched that way:
//  - pdl_wait() before reading anything an earlier kernel wrote and before writing anything an earlier kernel may
//    still read. It returns once every earlier kernel has completed and its writes are visible.
//  - every thread calls pdl_wait() before it exits, even on early-exit paths, so that this kernel completes only
//    after the ones before it (kernels after it rely on that, transitively).
//  - only data no kernel writes (weights) may be read before pdl_wait().
// Both are no-ops for a normal launch and on older architectures.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the next kernel on the stream (if launched with PDL) get scheduled now: its blocks start, do their
// independent prologue and park in pdl_wait(). Says nothing about this kernel's writes.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...) in thread block clusters of `cluster` blocks (sm_90+; a
// cluster of one block is a normal launch; grid must be a multiple of cluster in each dimension), launched with
// programmatic stream serialization when `pdl` (the kernel must follow the pdl_wait contract above). Works inside
// stream capture (the graph gets a programmatic edge). Returns the launch status and clears it from
// cudaGetLastError.
template <class... Params, class... Args>
cudaError_t launch_kernel_clusters(bool pdl, dim3 cluster, void (*kernel)(Params...), dim3 grid, dim3 block,
                                   size_t shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attributes[2];
  unsigned count = 0;
  if (pdl) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attributes[count].id = cudaLaunchAttributeClusterDimension;
    attributes[count].val.clusterDim.x = cluster.x;
    attributes[count].val.clusterDim.y = cluster.y;
    attributes[count].val.clusterDim.z = cluster.z;
    ++count;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = count;
  const cudaError_t launched = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(std::forward<Args>(args))...);
  const cudaError_t last = cudaGetLastError();
  return launched != cudaSuccess ? launched : last;
}

// launch_kernel_clusters without clusters.
template <class... Params, class... Args>
cudaError_t launch_kernel(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                          cudaStream_t stream, Args&&... args) {
  return launch_kernel_clusters(pdl, dim3(1, 1, 1), kernel, grid, block, shared_bytes, stream,
                                std::forward<Args>(args)...);
}

}  // namespace tessera::kernels::cuda
