#include "kernels/rms_norm.cuh"
#include "kernels/rms_norm.hpp"
#include "kernels/vector_pack.cuh"

namespace tessera::kernels::cuda {

namespace {

// One block per row. Pass 1 accumulates the sum of squares, pass 2 scales the row: a thread's first pack stays in
// registers between the passes and its norm-weight pack is read before pdl_wait() (no kernel writes weights), so a
// row of at most blockDim.x packs (the launchers' choice up to kMaxThreads packs) costs one dependent round trip to
// memory, not two; further packs are re-read (L1/L2-resident by then). Each thread touches the same packs in both
// passes, so out may alias x.
template <class T, int N>
__global__ void rms_norm_kernel(const T* x, const T* __restrict__ weight, T* out, int64_t dim, float eps) {
  __shared__ float reduce[33];
  pdl_launch_dependents();
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * dim;
  T* out_row = out + row * dim;
  const int64_t packs = dim / N;
  const int64_t first = threadIdx.x;
  Pack<T, N> first_w;
  if (first < packs) first_w = load_pack<T, N>(weight, first);
  pdl_wait();
  Pack<T, N> first_v;
  const float sum_sq = norm::thread_sum_of_squares<T, N>(static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x),
                                                         packs, [&](int64_t p) {
                                                           const Pack<T, N> v = load_pack<T, N>(x_row, p);
                                                           if (p == first) first_v = v;
                                                           return v;
                                                         });
  const float inv_rms = norm::inv_rms(block_sum(sum_sq, reduce), dim, eps);
  for (int64_t p = first; p < packs; p += blockDim.x) {
    const Pack<T, N> v = p == first ? first_v : load_pack<T, N>(x_row, p);
    const Pack<T, N> w = p == first ? first_w : load_pack<T, N>(weight, p);
    Pack<T, N> o;
#pragma unroll
    for (int j = 0; j < N; ++j) o.v[j] = norm::normalize(v.v[j], inv_rms, w.v[j]);
    store_pack<T, N>(out_row, p, o);
  }
}

// residual += x (FP32 add, stored as T); out = rms_norm(stored residual) * weight. The norm reads the residual as
// stored, i.e. rounded to T, like Hugging Face (whose BF16 residual add rounds before the FP32 norm) and so that
// the normalized values and the residual stream the next layer reads are the same numbers. For T = float this is
// exactly add_rms_norm_ref. out may alias x, not residual.
// Like rms_norm_kernel, a thread's first pack of the new residual and of the norm weight stay in registers.
template <class T, int N>
__global__ void add_rms_norm_kernel(T* __restrict__ residual, const T* x, const T* __restrict__ weight, T* out,
                                    int64_t dim, float eps) {
  __shared__ float reduce[33];
  pdl_launch_dependents();
  const int64_t row = blockIdx.x;
  T* res_row = residual + row * dim;
  const T* x_row = x + row * dim;
  T* out_row = out + row * dim;
  const int64_t packs = dim / N;
  const int64_t first = threadIdx.x;
  Pack<T, N> first_w;
  if (first < packs) first_w = load_pack<T, N>(weight, first);
  pdl_wait();
  Pack<T, N> first_s;
  float sum_sq = 0.0f;
  for (int64_t p = first; p < packs; p += blockDim.x) {
    const Pack<T, N> r = load_pack<T, N>(res_row, p);
    const Pack<T, N> a = load_pack<T, N>(x_row, p);
    Pack<T, N> s;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      s.v[j] = norm::add_residual(r.v[j], a.v[j]);
      sum_sq = norm::add_square(sum_sq, to_float(s.v[j]));  // same order as norm::thread_sum_of_squares
    }
    store_pack<T, N>(res_row, p, s);
    if (p == first) first_s = s;
  }
  const float inv_rms = norm::inv_rms(block_sum(sum_sq, reduce), dim, eps);
  for (int64_t p = first; p < packs; p += blockDim.x) {
    const Pack<T, N> r = p == first ? first_s : load_pack<T, N>(res_row, p);  // else this thread's own store of pass 1
    const Pack<T, N> w = p == first ? first_w : load_pack<T, N>(weight, p);
    Pack<T, N> o;
#pragma unroll
    for (int j = 0; j < N; ++j) o.v[j] = norm::normalize(r.v[j], inv_rms, w.v[j]);
    store_pack<T, N>(out_row, p, o);
  }
}

constexpr int kMaxThreads = norm::kMaxThreads;

}  // namespace

template <class T>
cudaError_t launch_rms_norm(const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps,
                            cudaStream_t stream, bool pdl) {
  if (rows < 0 || dim <= 0 || rows > INT32_MAX) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  constexpr int N = kPackElems<T>;
  const bool vectorized = dim % N == 0 && is_aligned16(x) && is_aligned16(weight) && is_aligned16(out);
  const unsigned blocks = static_cast<unsigned>(rows);
  if (vectorized) {
    return launch_kernel(pdl, rms_norm_kernel<T, N>, blocks, threads_for(dim / N, kMaxThreads), 0, stream, x, weight,
                         out, dim, eps);
  }
  return launch_kernel(pdl, rms_norm_kernel<T, 1>, blocks, threads_for(dim, kMaxThreads), 0, stream, x, weight, out,
                       dim, eps);
}

template <class T>
cudaError_t launch_add_rms_norm(T* residual, const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps,
                                cudaStream_t stream, bool pdl) {
  if (rows < 0 || dim <= 0 || rows > INT32_MAX) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  constexpr int N = kPackElems<T>;
  const bool vectorized = dim % N == 0 && is_aligned16(residual) && is_aligned16(x) && is_aligned16(weight) &&
                          is_aligned16(out);
  const unsigned blocks = static_cast<unsigned>(rows);
  if (vectorized) {
    return launch_kernel(pdl, add_rms_norm_kernel<T, N>, blocks, threads_for(dim / N, kMaxThreads), 0, stream,
                         residual, x, weight, out, dim, eps);
  }
  return launch_kernel(pdl, add_rms_norm_kernel<T, 1>, blocks, threads_for(dim, kMaxThreads), 0, stream, residual, x,
                       weight, out, dim, eps);
}

#define TESSERA_INSTANTIATE_RMS_NORM(T)                                                                        \
  template cudaError_t launch_rms_norm<T>(const T*, const T*, T*, int64_t, int64_t, float, cudaStream_t, bool); \
  template cudaError_t launch_add_rms_norm<T>(T*, const T*, const T*, T*, int64_t, int64_t, float, cudaStream_t, bool);
TESSERA_INSTANTIATE_RMS_NORM(float)
TESSERA_INSTANTIATE_RMS_NORM(__nv_bfloat16)
#undef TESSERA_INSTANTIATE_RMS_NORM

}  // namespace tessera::kernels::cuda
