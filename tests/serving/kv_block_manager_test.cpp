#include "core/serving/kv_block_manager.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/common/error.hpp"

namespace tessera {
namespace {

ScheduledSequence seq(uint64_t id, int32_t num_tokens, int32_t num_cached, int32_t new_blocks) {
  ScheduledSequence s;
  s.seq_id = id;
  s.tokens.assign(num_tokens, 7);
  s.num_cached = num_cached;
  s.new_blocks = new_blocks;
  return s;
}

TEST(KvBlockManager, RejectsNonPositiveSizes) {
  EXPECT_THROW(KvBlockManager(0, 16), Error);
  EXPECT_THROW(KvBlockManager(4, 0), Error);
}

TEST(KvBlockManager, AllocateFillsTablesWithDistinctBlocks) {
  KvBlockManager kv(8, 4);
  StepPlan plan;
  plan.sequences = {seq(1, 9, 0, 3), seq(2, 4, 0, 1)};  // 9 positions -> 3 blocks of 4; 4 -> 1
  ASSERT_TRUE(kv.can_allocate(plan));
  kv.allocate(plan);
  EXPECT_EQ(plan.sequences[0].block_table.size(), 3u);
  EXPECT_EQ(plan.sequences[1].block_table.size(), 1u);
  std::set<int32_t> all(plan.sequences[0].block_table.begin(), plan.sequences[0].block_table.end());
  all.insert(plan.sequences[1].block_table.begin(), plan.sequences[1].block_table.end());
  EXPECT_EQ(all.size(), 4u);
  for (int32_t b : all) EXPECT_EQ(kv.ref_count(b), 1);
  EXPECT_EQ(kv.num_free_blocks(), 4);
  EXPECT_EQ(kv.num_used_blocks(), 4);
  EXPECT_DOUBLE_EQ(kv.usage(), 0.5);
  EXPECT_EQ(kv.block_table(1), plan.sequences[0].block_table);

  // The next step appends to the existing table: 3 blocks hold 12 positions, 13 need a 4th.
  StepPlan next;
  next.sequences = {seq(1, 4, 9, 1)};
  kv.allocate(next);
  ASSERT_EQ(next.sequences[0].block_table.size(), 4u);
  EXPECT_TRUE(std::equal(plan.sequences[0].block_table.begin(), plan.sequences[0].block_table.end(),
                         next.sequences[0].block_table.begin()));
}

TEST(KvBlockManager, AllOrNothingWhenBlocksRunOut) {
  KvBlockManager kv(4, 4);
  StepPlan plan;
  plan.sequences = {seq(1, 8, 0, 2), seq(2, 12, 0, 3)};  // 5 blocks > 4
  EXPECT_FALSE(kv.can_allocate(plan));
  EXPECT_THROW(kv.allocate(plan), Error);
  EXPECT_EQ(kv.num_free_blocks(), 4);
  EXPECT_EQ(kv.num_sequences(), 0);
  EXPECT_TRUE(plan.sequences[0].block_table.empty());
}

TEST(KvBlockManager, ReleasesAreFreedBeforeAllocations) {
  KvBlockManager kv(4, 4);
  StepPlan first;
  first.sequences = {seq(1, 16, 0, 4)};
  kv.allocate(first);
  EXPECT_EQ(kv.num_free_blocks(), 0);

  StepPlan second;
  second.release_kv = {1};
  second.sequences = {seq(2, 8, 0, 2)};
  ASSERT_TRUE(kv.can_allocate(second));
  kv.allocate(second);
  EXPECT_EQ(kv.num_free_blocks(), 2);
  EXPECT_TRUE(kv.block_table(1).empty());

  // A released sequence scheduled again in the same plan starts from an empty table.
  StepPlan third;
  third.release_kv = {2};
  third.sequences = {seq(2, 12, 0, 3)};
  kv.allocate(third);
  EXPECT_EQ(third.sequences[0].block_table.size(), 3u);
  EXPECT_EQ(kv.num_free_blocks(), 1);
}

TEST(KvBlockManager, RejectsMalformedPlans) {
  KvBlockManager kv(8, 4);
  StepPlan too_few;
  too_few.sequences = {seq(1, 5, 0, 1)};  // 5 positions do not fit in 1 block of 4
  EXPECT_FALSE(kv.can_allocate(too_few));
  EXPECT_THROW(kv.allocate(too_few), Error);

  StepPlan twice;
  twice.sequences = {seq(1, 1, 0, 1), seq(1, 1, 0, 1)};
  EXPECT_THROW(kv.allocate(twice), Error);

  StepPlan negative;
  negative.sequences = {seq(1, 1, 0, -1)};
  EXPECT_THROW(kv.allocate(negative), Error);
  EXPECT_EQ(kv.num_free_blocks(), 8);
}

TEST(KvBlockManager, FreeReturnsBlocksAndIgnoresUnknownIds) {
  KvBlockManager kv(3, 2);
  StepPlan plan;
  plan.sequences = {seq(5, 6, 0, 3)};
  kv.allocate(plan);
  kv.free(99);
  EXPECT_EQ(kv.num_free_blocks(), 0);
  kv.free(5);
  kv.free(5);
  EXPECT_EQ(kv.num_free_blocks(), 3);
  for (int b = 0; b < 3; ++b) EXPECT_EQ(kv.ref_count(b), 0);
  EXPECT_THROW(kv.ref_count(3), Error);
}

TEST(KvBlockManager, BlocksForBudget) {
  EXPECT_EQ(KvBlockManager::num_blocks_for_budget(1000, 10'500), 10);
  EXPECT_EQ(KvBlockManager::num_blocks_for_budget(1, int64_t{1} << 40), INT32_MAX);
  EXPECT_THROW(KvBlockManager::num_blocks_for_budget(1000, 999), Error);
  EXPECT_THROW(KvBlockManager::num_blocks_for_budget(0, 1000), Error);
}

}  // namespace
}  // namespace tessera
