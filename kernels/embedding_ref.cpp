#include "kernels/embedding.hpp"

#include <cstring>
#include <string>

#include "core/common/error.hpp"

namespace tessera::kernels {

void embedding_ref(const float* table, int64_t vocab, int64_t hidden, std::span<const int32_t> ids, float* out) {
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) {
      throw Error("embedding: token id " + std::to_string(ids[t]) + " at index " + std::to_string(t) +
                  " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  for (size_t t = 0; t < ids.size(); ++t) {
    std::memcpy(out + static_cast<int64_t>(t) * hidden, table + static_cast<int64_t>(ids[t]) * hidden,
                sizeof(float) * static_cast<size_t>(hidden));
  }
}

}  // namespace tessera::kernels
