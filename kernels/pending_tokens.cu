#include "kernels/pending_tokens.hpp"

namespace tessera::kernels::cuda {

namespace {

__global__ void resolve_pending_tokens_kernel(int32_t* __restrict__ ids, const int32_t* __restrict__ pending_rows,
                                              const int32_t* __restrict__ sampled, int64_t num_tokens) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= num_tokens) return;
  const int32_t row = pending_rows[t];
  if (row < 0) return;
  const int32_t id = sampled[row];
  ids[t] = id < 0 ? 0 : id;
}

}  // namespace

cudaError_t launch_resolve_pending_tokens(int32_t* ids, const int32_t* pending_rows, const int32_t* sampled,
                                          int64_t num_tokens, cudaStream_t stream) {
  if (num_tokens < 0 || (num_tokens > 0 && (!ids || !pending_rows || !sampled))) return cudaErrorInvalidValue;
  if (num_tokens == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((num_tokens + kThreads - 1) / kThreads);
  resolve_pending_tokens_kernel<<<blocks, kThreads, 0, stream>>>(ids, pending_rows, sampled, num_tokens);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda
