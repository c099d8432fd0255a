// PagedKvCache sizing/layout and SimpleBlockAllocator semantics.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/common/error.hpp"
#include "core/engine/paged_kv_cache.hpp"
#include "core/model/llama_config.hpp"

namespace tessera {
namespace {

TEST(PagedKvCache, BytesPerBlockCountsKeysAndValuesOfAllLayers) {
  const KvCacheShape shape{3, 10, 16, 2, 8};
  EXPECT_EQ(PagedKvCache::bytes_per_block(shape), 3 * 2 * 16 * 2 * 8 * 4);
}

TEST(PagedKvCache, ShapeForBudgetFitsWholeBlocks) {
  LlamaConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 4;
  c.head_dim = 16;
  const int64_t per_block = 2 * 2 * 16 * 4 * 16 * 4;
  const KvCacheShape shape = KvCacheShape::for_budget(c, 16, 10 * per_block + per_block - 1);
  EXPECT_EQ(shape.num_blocks, 10);
  EXPECT_EQ(shape.num_layers, 2);
  EXPECT_EQ(shape.block_size, 16);
  EXPECT_THROW(KvCacheShape::for_budget(c, 16, per_block - 1), Error);
  EXPECT_THROW(KvCacheShape::for_budget(c, 0, per_block * 4), Error);
}

TEST(PagedKvCache, LayersAndKeyValueRegionsDoNotOverlap) {
  const KvCacheShape shape{2, 3, 4, 2, 5};
  PagedKvCache cache(shape);
  const int64_t n = 3 * 4 * 2 * 5;
  EXPECT_EQ(cache.values(0) - cache.keys(0), n);
  EXPECT_EQ(cache.keys(1) - cache.values(0), n);
  EXPECT_EQ(cache.values(1) - cache.keys(1), n);
  // The whole allocation is writable.
  std::fill(cache.keys(0), cache.keys(0) + 4 * n, 1.0f);
  EXPECT_EQ(cache.values(1)[n - 1], 1.0f);
  EXPECT_EQ(cache.layout().floats_per_slot(), 10);
  EXPECT_THROW(PagedKvCache(KvCacheShape{2, 0, 4, 2, 5}), Error);
}

TEST(SimpleBlockAllocator, AllocatesDistinctBlocksAllOrNothing) {
  SimpleBlockAllocator alloc(5);
  EXPECT_TRUE(alloc.can_allocate(5));
  EXPECT_FALSE(alloc.can_allocate(6));
  const auto a = alloc.allocate(3);
  EXPECT_EQ(alloc.num_free(), 2);
  EXPECT_THROW(alloc.allocate(3), Error);
  EXPECT_EQ(alloc.num_free(), 2);  // nothing taken by the failed call
  const auto b = alloc.allocate(2);
  std::set<int32_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all, (std::set<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(alloc.allocate(0).empty());
}

TEST(SimpleBlockAllocator, FreeReturnsBlocksAndRejectsBadIds) {
  SimpleBlockAllocator alloc(4);
  const auto a = alloc.allocate(4);
  alloc.free(std::vector<int32_t>{a[1], a[3]});
  EXPECT_EQ(alloc.num_free(), 2);
  EXPECT_THROW(alloc.free(std::vector<int32_t>{a[1]}), Error);        // double free
  EXPECT_THROW(alloc.free(std::vector<int32_t>{a[0], 7}), Error);     // out of range
  EXPECT_THROW(alloc.free(std::vector<int32_t>{a[0], a[0]}), Error);  // duplicate within one call
  EXPECT_EQ(alloc.num_free(), 2);  // failed calls free nothing
  const auto again = alloc.allocate(2);
  EXPECT_EQ(std::set<int32_t>(again.begin(), again.end()), (std::set<int32_t>{a[1], a[3]}));
}

}  // namespace
}  // namespace tessera
