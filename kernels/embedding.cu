#include "kernels/cuda_common.cuh"
#include "kernels/embedding.hpp"

namespace tessera::kernels::cuda {

namespace {

// One block per token; 16-byte vector copies when the row allows it.
template <class T>
__global__ void embedding_kernel(const T* __restrict__ table, int64_t vocab, int64_t hidden,
                                 const int32_t* __restrict__ ids, T* __restrict__ out) {
  pdl_launch_dependents();
  pdl_wait();  // ids (step inputs or gathered rows) and, for the logits gather, the table come from earlier work
  const int64_t token = blockIdx.x;
  const int32_t id = ids[token];
  T* dst = out + token * hidden;
  if (id < 0 || id >= vocab) {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = from_float<T>(0.0f);
    return;
  }
  const T* src = table + static_cast<int64_t>(id) * hidden;
  constexpr int kPerVec = 16 / sizeof(T);
  if (hidden % kPerVec == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    const int64_t vecs = hidden / kPerVec;
    for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) {
      reinterpret_cast<int4*>(dst)[i] = reinterpret_cast<const int4*>(src)[i];
    }
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
  }
}

}  // namespace

template <class T>
cudaError_t launch_embedding(const T* table, int64_t vocab, int64_t hidden, const int32_t* ids, int64_t num_tokens,
                             T* out, cudaStream_t stream, bool pdl) {
  if (num_tokens <= 0) return cudaSuccess;
  return launch_kernel(pdl, embedding_kernel<T>, static_cast<unsigned>(num_tokens), 128, 0, stream, table, vocab, hidden,
                       ids, out);
}

template cudaError_t launch_embedding<float>(const float*, int64_t, int64_t, const int32_t*, int64_t, float*,
                                             cudaStream_t, bool);
template cudaError_t launch_embedding<__nv_bfloat16>(const __nv_bfloat16*, int64_t, int64_t, const int32_t*, int64_t,
                                                     __nv_bfloat16*, cudaStream_t, bool);

}  // namespace tessera::kernels::cuda
