#pragma once
// Token embedding lookup: out[t] = table[ids[t]].
// A CUDA launcher `cudaError_t launch_embedding(..., cudaStream_t)` will be declared beside this later.
#include <cstdint>
#include <span>

namespace tessera::kernels {

// table: [vocab, hidden] row-major; out: [ids.size(), hidden].
// Throws tessera::Error naming the offending token index if any id is outside [0, vocab).
// Validation happens before anything is written. Thread-safe (no shared state).
void embedding_ref(const float* table, int64_t vocab, int64_t hidden, std::span<const int32_t> ids, float* out);

}  // namespace tessera::kernels
