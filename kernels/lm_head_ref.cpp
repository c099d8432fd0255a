#include "kernels/lm_head.hpp"

#include <cstring>

#include "kernels/linear.hpp"

namespace tessera::kernels {

void lm_head_ref(const float* hidden, int64_t hidden_size, std::span<const int32_t> rows, const float* lm_head,
                 int64_t vocab, float* gathered, float* logits) {
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(gathered + i * hidden_size, hidden + static_cast<int64_t>(rows[i]) * hidden_size,
                sizeof(float) * static_cast<size_t>(hidden_size));
  }
  linear_ref(gathered, lm_head, logits, n, hidden_size, vocab);
}

}  // namespace tessera::kernels
