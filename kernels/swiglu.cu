#include "kernels/swiglu.hpp"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// Grid (rows, column chunks); each thread produces N consecutive outputs of one row from the N (gate, up) pairs
// that precede them in the paired row (two packs of N).
template <class T, int N>
__global__ void swiglu_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t inter) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (p >= inter / N) return;
  const T* pairs = gate_up + row * 2 * inter;
  const Pack<T, N> first = load_pack<T, N>(pairs, 2 * p);
  const Pack<T, N> second = load_pack<T, N>(pairs, 2 * p + 1);
  Pack<T, N> o;
  // silu_mul: shared with the few-row GEMV's SwiGLU epilogue (same values bit for bit).
#pragma unroll
  for (int j = 0; j < N / 2; ++j) {
    o.v[j] = from_float<T>(silu_mul(to_float(first.v[2 * j]), to_float(first.v[2 * j + 1])));
    o.v[N / 2 + j] = from_float<T>(silu_mul(to_float(second.v[2 * j]), to_float(second.v[2 * j + 1])));
  }
  store_pack<T, N>(out + row * inter, p, o);
}

// One output per thread (inter not a multiple of N, or unaligned buffers).
template <class T>
__global__ void swiglu_scalar_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t inter) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= inter) return;
  const T* pair = gate_up + row * 2 * inter + 2 * j;
  out[row * inter + j] = from_float<T>(silu_mul(to_float(pair[0]), to_float(pair[1])));
}

constexpr int kThreads = 128;

}  // namespace

template <class T>
cudaError_t launch_swiglu(const T* gate_up, T* out, int64_t rows, int64_t inter, cudaStream_t stream, bool pdl) {
  if (rows < 0 || rows > INT32_MAX || inter <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  constexpr int N = kPackElems<T>;
  const bool vectorized = inter % N == 0 && is_aligned16(gate_up) && is_aligned16(out);
  const int64_t packs = vectorized ? inter / N : inter;
  const int64_t chunks = (packs + kThreads - 1) / kThreads;
  if (chunks > 65535) return cudaErrorInvalidValue;  // gridDim.y limit: inter up to 8M elements
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(chunks));
  if (vectorized) return launch_kernel(pdl, swiglu_kernel<T, N>, grid, kThreads, 0, stream, gate_up, out, inter);
  return launch_kernel(pdl, swiglu_scalar_kernel<T>, grid, kThreads, 0, stream, gate_up, out, inter);
}

template cudaError_t launch_swiglu<float>(const float*, float*, int64_t, int64_t, cudaStream_t, bool);
template cudaError_t launch_swiglu<__nv_bfloat16>(const __nv_bfloat16*, __nv_bfloat16*, int64_t, int64_t,
                                                  cudaStream_t, bool);

}  // namespace tessera::kernels::cuda
