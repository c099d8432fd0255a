#pragma once
// Token embedding lookup: out[t] = table[ids[t]].
#include <cstdint>
#include <span>

namespace tessera::kernels {

// table: [vocab, hidden] row-major; out: [ids.size(), hidden].
// Throws tessera::Error naming the offending token index if any id is outside [0, vocab).
// Validation happens before anything is written. Thread-safe (no shared state).
void embedding_ref(const float* table, int64_t vocab, int64_t hidden, std::span<const int32_t> ids, float* out);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers. T = float or __nv_bfloat16. ids must be valid (the executor validates plans on the host); an
// out-of-range id writes zeros instead of reading out of bounds. Asynchronous on `stream`; returns the launch status.
// Also the executor's gather of the rows to sample (table = the normed activations). pdl: programmatic dependent
// launch (kernels/cuda_common.cuh); same results either way.
template <class T>
cudaError_t launch_embedding(const T* table, int64_t vocab, int64_t hidden, const int32_t* ids, int64_t num_tokens,
                             T* out, cudaStream_t stream, bool pdl = false);

}  // namespace tessera::kernels::cuda
#endif
