#pragma once
// Pipelined decoding: a step planned while the previous one still ran feeds, for some sequences, the token that
// previous step sampled. The host cannot know it when it uploads the step's inputs, so the step itself copies it
// from the previous step's sampled ids (still on the device) into its input ids before the embedding lookup.
#include <cstdint>
#include <span>

namespace tessera::kernels {

// ids[t] = sampled[pending_rows[t]] where pending_rows[t] >= 0, else unchanged. A sampled id < 0 (the sampler's
// mark for non-finite logits; that step reports the error) becomes 0 so the lookup stays in bounds.
// pending_rows must index into `sampled`. Thread-safe (no shared state).
void resolve_pending_tokens_ref(std::span<int32_t> ids, std::span<const int32_t> pending_rows,
                                std::span<const int32_t> sampled);

}  // namespace tessera::kernels

#if TESSERA_WITH_CUDA
#include <cuda_runtime_api.h>

namespace tessera::kernels::cuda {

// Device pointers, same semantics as resolve_pending_tokens_ref over num_tokens entries. Asynchronous on `stream`,
// graph-capturable; returns the launch status.
cudaError_t launch_resolve_pending_tokens(int32_t* ids, const int32_t* pending_rows, const int32_t* sampled,
                                          int64_t num_tokens, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
#endif
