#include "kernels/kv_cache_write.hpp"

#include <cstring>
#include <string>

#include "core/common/error.hpp"

namespace tessera::kernels {

void kv_cache_write_ref(const float* key, const float* value, int64_t num_tokens, const int64_t* slot_mapping,
                        const KvCacheLayout& layout, float* key_cache, float* value_cache) {
  const int64_t num_slots = layout.num_blocks * layout.block_size;
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (slot_mapping[t] >= num_slots) {
      throw Error("kv_cache_write: slot " + std::to_string(slot_mapping[t]) + " of token " + std::to_string(t) +
                  " is outside the cache (" + std::to_string(num_slots) + " slots)");
    }
  }
  const int64_t width = layout.floats_per_slot();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot < 0) continue;
    std::memcpy(key_cache + slot * width, key + t * width, sizeof(float) * static_cast<size_t>(width));
    std::memcpy(value_cache + slot * width, value + t * width, sizeof(float) * static_cast<size_t>(width));
  }
}

}  // namespace tessera::kernels
