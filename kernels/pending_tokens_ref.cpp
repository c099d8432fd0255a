#include "kernels/pending_tokens.hpp"

namespace tessera::kernels {

void resolve_pending_tokens_ref(std::span<int32_t> ids, std::span<const int32_t> pending_rows,
                                std::span<const int32_t> sampled) {
  for (size_t t = 0; t < ids.size() && t < pending_rows.size(); ++t) {
    const int32_t row = pending_rows[t];
    if (row < 0) continue;
    const int32_t id = sampled[static_cast<size_t>(row)];
    ids[t] = id < 0 ? 0 : id;
  }
}

}  // namespace tessera::kernels
