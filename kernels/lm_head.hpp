#pragma once
// The model's output stage for the tokens that need logits: gather their (already final-normed) hidden rows and
// project them onto the vocabulary, producing FP32 logits. On the CPU everything is FP32 already; the CUDA
// launcher `cudaError_t launch_lm_head(..., cudaStream_t)` (added later) will also convert BF16/F16 logits to float.
// The final RMSNorm itself is rms_norm.hpp / add_rms_norm (fused with the last residual add).
#include <cstdint>
#include <span>

namespace tessera::kernels {

// hidden: [T, hidden_size]; rows: indices into hidden (each in [0, T), trusted); lm_head: [vocab, hidden_size];
// gathered: scratch [rows.size(), hidden_size]; logits: [rows.size(), vocab].
void lm_head_ref(const float* hidden, int64_t hidden_size, std::span<const int32_t> rows, const float* lm_head,
                 int64_t vocab, float* gathered, float* logits);

}  // namespace tessera::kernels
