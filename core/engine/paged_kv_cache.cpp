#include "core/engine/paged_kv_cache.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include "core/common/error.hpp"
#include "core/model/llama_config.hpp"

namespace tessera {

namespace {

void require_positive(int value, const char* name) {
  if (value <= 0) throw Error(std::string("KV cache: ") + name + " must be positive, got " + std::to_string(value));
}

void validate(const KvCacheShape& s) {
  require_positive(s.num_layers, "num_layers");
  require_positive(s.num_blocks, "num_blocks");
  require_positive(s.block_size, "block_size");
  require_positive(s.num_kv_heads, "num_kv_heads");
  require_positive(s.head_dim, "head_dim");
}

}  // namespace

KvCacheShape KvCacheShape::for_budget(const LlamaConfig& config, int block_size, int64_t memory_budget_bytes) {
  KvCacheShape shape{config.num_layers, 1, block_size, config.num_kv_heads, config.head_dim};
  validate(shape);
  const int64_t per_block = PagedKvCache::bytes_per_block(shape);
  const int64_t blocks = memory_budget_bytes / per_block;
  if (blocks < 1) {
    throw Error("KV cache: memory budget of " + std::to_string(memory_budget_bytes) + " bytes is smaller than one block (" +
                std::to_string(per_block) + " bytes)");
  }
  shape.num_blocks = static_cast<int>(std::min<int64_t>(blocks, INT32_MAX));
  return shape;
}

int64_t PagedKvCache::bytes_per_block(const KvCacheShape& s) {
  return int64_t{s.num_layers} * 2 * s.block_size * s.num_kv_heads * s.head_dim * int64_t{sizeof(float)};
}

PagedKvCache::PagedKvCache(const KvCacheShape& shape) : shape_(shape) {
  validate(shape_);
  data_ = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(2 * floats_per_layer_tensor() * shape_.num_layers));
}

int64_t PagedKvCache::floats_per_layer_tensor() const {
  return int64_t{shape_.num_blocks} * shape_.block_size * shape_.num_kv_heads * shape_.head_dim;
}

kernels::KvCacheLayout PagedKvCache::layout() const {
  return {shape_.num_blocks, shape_.block_size, shape_.num_kv_heads, shape_.head_dim};
}

SimpleBlockAllocator::SimpleBlockAllocator(int num_blocks) {
  if (num_blocks < 0) throw Error("block allocator: num_blocks must be >= 0, got " + std::to_string(num_blocks));
  allocated_.assign(static_cast<size_t>(num_blocks), false);
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
}

std::vector<int32_t> SimpleBlockAllocator::allocate(int n) {
  if (!can_allocate(n)) {
    throw Error("block allocator: cannot allocate " + std::to_string(n) + " blocks, " + std::to_string(num_free()) +
                " free");
  }
  std::vector<int32_t> blocks(free_.end() - n, free_.end());
  std::reverse(blocks.begin(), blocks.end());
  free_.resize(free_.size() - static_cast<size_t>(n));
  for (int32_t b : blocks) allocated_[static_cast<size_t>(b)] = true;
  return blocks;
}

void SimpleBlockAllocator::free(std::span<const int32_t> blocks) {
  std::vector<bool> seen(allocated_.size(), false);
  for (int32_t b : blocks) {
    if (b < 0 || b >= num_blocks() || !allocated_[static_cast<size_t>(b)] || seen[static_cast<size_t>(b)]) {
      throw Error("block allocator: block " + std::to_string(b) + " is out of range or not allocated");
    }
    seen[static_cast<size_t>(b)] = true;
  }
  for (int32_t b : blocks) {
    allocated_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
}

}  // namespace tessera
