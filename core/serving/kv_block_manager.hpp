#pragma once
// The KV-cache block pool of the serving engine: which block is free, and each sequence's block table.
// The scheduler decides how many NEW blocks each sequence of a step needs (ScheduledSequence::new_blocks); this
// class applies a whole StepPlan in one call: it frees the plan's release_kv sequences, then allocates all new
// blocks or none, and fills every block_table. Blocks carry reference counts so that later prefix sharing can map
// one block into several tables; today every block has at most one owner.
// Not thread-safe: one owner (the KV-block-manager actor, or a test).
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/serving/step.hpp"

namespace tessera {

class KvBlockManager {
 public:
  // Throws tessera::Error if num_blocks < 1 or block_size < 1.
  KvBlockManager(int num_blocks, int block_size);

  // How many blocks of `bytes_per_block` bytes fit in `budget_bytes`; throws tessera::Error if not even one does
  // (or bytes_per_block <= 0). Capped at INT32_MAX.
  static int num_blocks_for_budget(int64_t bytes_per_block, int64_t budget_bytes);

  // True when allocate(plan) would succeed: the plan is well formed (no duplicate or negative counts, every
  // sequence's table then covers num_cached + tokens.size() positions) and, after freeing release_kv, enough
  // blocks are free for all new_blocks together.
  bool can_allocate(const StepPlan& plan) const;

  // Frees release_kv, then appends new_blocks blocks to each scheduled sequence's table and copies the table into
  // its block_table. All or nothing: throws tessera::Error (and changes nothing) if !can_allocate(plan).
  void allocate(StepPlan& plan);

  // Returns every block of `seq_id` to the pool (when its last reference goes). Unknown ids are a no-op, so a
  // release may name a sequence that never got a block.
  void free(uint64_t seq_id);

  int num_blocks() const { return static_cast<int>(ref_counts_.size()); }
  int block_size() const { return block_size_; }
  int num_free_blocks() const { return static_cast<int>(free_list_.size()); }
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Fraction of blocks in use, in [0, 1].
  double usage() const { return static_cast<double>(num_used_blocks()) / num_blocks(); }
  int num_sequences() const { return static_cast<int>(tables_.size()); }
  // The block table of `seq_id` (empty for an unknown sequence).
  std::vector<int32_t> block_table(uint64_t seq_id) const;
  // References to `block` (0 = free); throws tessera::Error for an id outside [0, num_blocks).
  int ref_count(int32_t block) const;

 private:
  // Empty string when the plan can be applied, else why not.
  std::string check(const StepPlan& plan) const;

  int block_size_;
  std::vector<int32_t> ref_counts_;  // per block id
  std::vector<int32_t> free_list_;   // free block ids; the back is handed out first
  std::unordered_map<uint64_t, std::vector<int32_t>> tables_;
};

}  // namespace tessera
