#include "kernels/swiglu.hpp"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// Grid (rows, column chunks); each thread produces N consecutive outputs of one row.
template <class T, int N>
__global__ void swiglu_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t inter) {
  const int64_t row = blockIdx.x;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (p >= inter / N) return;
  const T* gate = gate_up + row * 2 * inter;
  const Pack<T, N> g = load_pack<T, N>(gate, p);
  const Pack<T, N> u = load_pack<T, N>(gate + inter, p);
  Pack<T, N> o;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const float gf = to_float(g.v[j]);
    // Same operation order as swiglu_ref; accurate expf and IEEE division (an overflowing exp gives -0, not NaN).
    o.v[j] = from_float<T>(__fmul_rn(__fdiv_rn(gf, __fadd_rn(1.0f, expf(-gf))), to_float(u.v[j])));
  }
  store_pack<T, N>(out + row * inter, p, o);
}

constexpr int kThreads = 128;

}  // namespace

template <class T>
cudaError_t launch_swiglu(const T* gate_up, T* out, int64_t rows, int64_t inter, cudaStream_t stream) {
  if (rows < 0 || rows > INT32_MAX || inter <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  constexpr int N = kPackElems<T>;
  const bool vectorized = inter % N == 0 && is_aligned16(gate_up) && is_aligned16(out);
  const int64_t packs = vectorized ? inter / N : inter;
  const int64_t chunks = (packs + kThreads - 1) / kThreads;
  if (chunks > 65535) return cudaErrorInvalidValue;  // gridDim.y limit: inter up to 8M elements
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(chunks));
  if (vectorized) {
    swiglu_kernel<T, N><<<grid, kThreads, 0, stream>>>(gate_up, out, inter);
  } else {
    swiglu_kernel<T, 1><<<grid, kThreads, 0, stream>>>(gate_up, out, inter);
  }
  return cudaGetLastError();
}

template cudaError_t launch_swiglu<float>(const float*, float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_swiglu<__nv_bfloat16>(const __nv_bfloat16*, __nv_bfloat16*, int64_t, int64_t,
                                                  cudaStream_t);

}  // namespace tessera::kernels::cuda
