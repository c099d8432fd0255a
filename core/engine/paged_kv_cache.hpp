#pragma once
// The paged KV cache memory of the CPU engine, and a minimal block allocator for offline generation.
// Layout per layer (shared with the GPU kernels): K and V each [num_blocks][block_size][num_kv_heads][head_dim] FP32.
// A sequence's token at position p lives in block block_table[p / block_size], slot p % block_size.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/kv_cache_write.hpp"

namespace tessera {

struct LlamaConfig;

struct KvCacheShape {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;

  // The shape for `config` holding as many blocks as fit in `memory_budget_bytes`.
  // Throws tessera::Error if not even one block fits or block_size <= 0.
  static KvCacheShape for_budget(const LlamaConfig& config, int block_size, int64_t memory_budget_bytes);
};

class PagedKvCache {
 public:
  // Allocates (uninitialized) memory for the whole cache. Throws tessera::Error on a non-positive dimension.
  explicit PagedKvCache(const KvCacheShape& shape);

  // Bytes of one block across all layers, K and V: num_layers * 2 * block_size * num_kv_heads * head_dim * 4.
  static int64_t bytes_per_block(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  kernels::KvCacheLayout layout() const;
  // [num_blocks][block_size][num_kv_heads][head_dim] of layer `layer` (0 <= layer < num_layers, unchecked).
  float* keys(int layer) { return data_.get() + layer_offset(layer); }
  float* values(int layer) { return data_.get() + layer_offset(layer) + floats_per_layer_tensor(); }
  const float* keys(int layer) const { return data_.get() + layer_offset(layer); }
  const float* values(int layer) const { return data_.get() + layer_offset(layer) + floats_per_layer_tensor(); }

 private:
  int64_t floats_per_layer_tensor() const;
  int64_t layer_offset(int layer) const { return 2 * floats_per_layer_tensor() * layer; }

  KvCacheShape shape_;
  std::unique_ptr<float[]> data_;
};

// Free-list allocator of cache block ids [0, num_blocks), enough for offline generation; the scheduler's KV block
// manager (prefix sharing, eviction) replaces it later. Not thread-safe.
class SimpleBlockAllocator {
 public:
  explicit SimpleBlockAllocator(int num_blocks);

  int num_free() const { return static_cast<int>(free_.size()); }
  int num_blocks() const { return static_cast<int>(allocated_.size()); }
  bool can_allocate(int n) const { return n >= 0 && n <= num_free(); }
  // All n blocks or none: throws tessera::Error if !can_allocate(n).
  std::vector<int32_t> allocate(int n);
  // Returns blocks to the free list. Throws tessera::Error (and frees nothing) on an id out of range or not allocated.
  void free(std::span<const int32_t> blocks);

 private:
  std::vector<int32_t> free_;   // a stack; allocation pops from the back
  std::vector<bool> allocated_;
};

}  // namespace tessera
