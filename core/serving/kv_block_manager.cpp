#include "core/serving/kv_block_manager.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <unordered_set>

#include "core/common/error.hpp"

namespace tessera {

KvBlockManager::KvBlockManager(int num_blocks, int block_size) : block_size_(block_size) {
  if (num_blocks < 1) throw Error("KvBlockManager: num_blocks must be >= 1 (got " + std::to_string(num_blocks) + ")");
  if (block_size < 1) throw Error("KvBlockManager: block_size must be >= 1 (got " + std::to_string(block_size) + ")");
  ref_counts_.assign(num_blocks, 0);
  free_list_.reserve(num_blocks);
  // Reversed so that block 0 is handed out first (easier to read in logs and tests).
  for (int b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

int KvBlockManager::num_blocks_for_budget(int64_t bytes_per_block, int64_t budget_bytes) {
  if (bytes_per_block <= 0) {
    throw Error("KV cache: bytes per block must be > 0 (got " + std::to_string(bytes_per_block) + ")");
  }
  int64_t blocks = budget_bytes > 0 ? budget_bytes / bytes_per_block : 0;
  if (blocks < 1) {
    throw Error("KV cache: a memory budget of " + std::to_string(budget_bytes) + " bytes holds no block of " +
                std::to_string(bytes_per_block) + " bytes");
  }
  return static_cast<int>(std::min<int64_t>(blocks, std::numeric_limits<int32_t>::max()));
}

std::string KvBlockManager::check(const StepPlan& plan) const {
  std::unordered_set<uint64_t> released(plan.release_kv.begin(), plan.release_kv.end());
  int64_t available = num_free_blocks();
  for (uint64_t id : released) {
    auto it = tables_.find(id);
    if (it == tables_.end()) continue;
    for (int32_t b : it->second) {
      if (ref_counts_[b] == 1) ++available;
    }
  }
  std::unordered_set<uint64_t> seen;
  int64_t wanted = 0;
  for (const ScheduledSequence& seq : plan.sequences) {
    const std::string name = "sequence " + std::to_string(seq.seq_id);
    if (!seen.insert(seq.seq_id).second) return name + " is scheduled twice in step " + std::to_string(plan.step_id);
    if (seq.new_blocks < 0 || seq.num_cached < 0) return name + " has a negative new_blocks or num_cached";
    int64_t held = 0;
    if (!released.count(seq.seq_id)) {
      auto it = tables_.find(seq.seq_id);
      if (it != tables_.end()) held = static_cast<int64_t>(it->second.size());
    }
    const int64_t positions = static_cast<int64_t>(seq.num_cached) + static_cast<int64_t>(seq.tokens.size());
    const int64_t capacity = (held + seq.new_blocks) * block_size_;
    if (capacity < positions) {
      return name + " needs " + std::to_string(positions) + " KV positions but would hold " +
             std::to_string(held + seq.new_blocks) + " blocks of " + std::to_string(block_size_);
    }
    wanted += seq.new_blocks;
  }
  if (wanted > available) {
    return "step " + std::to_string(plan.step_id) + " needs " + std::to_string(wanted) + " new KV blocks but only " +
           std::to_string(available) + " are free";
  }
  return {};
}

bool KvBlockManager::can_allocate(const StepPlan& plan) const { return check(plan).empty(); }

void KvBlockManager::allocate(StepPlan& plan) {
  if (std::string why = check(plan); !why.empty()) throw Error("KvBlockManager: " + why);
  for (uint64_t id : plan.release_kv) free(id);
  for (ScheduledSequence& seq : plan.sequences) {
    std::vector<int32_t>& table = tables_[seq.seq_id];
    for (int32_t i = 0; i < seq.new_blocks; ++i) {
      int32_t block = free_list_.back();
      free_list_.pop_back();
      ref_counts_[block] = 1;
      table.push_back(block);
    }
    seq.block_table = table;
  }
}

void KvBlockManager::free(uint64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  for (int32_t b : it->second) {
    if (--ref_counts_[b] == 0) free_list_.push_back(b);
  }
  tables_.erase(it);
}

std::vector<int32_t> KvBlockManager::block_table(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? std::vector<int32_t>{} : it->second;
}

int KvBlockManager::ref_count(int32_t block) const {
  if (block < 0 || block >= num_blocks()) {
    throw Error("KvBlockManager: block id " + std::to_string(block) + " outside [0, " + std::to_string(num_blocks()) +
                ")");
  }
  return ref_counts_[block];
}

}  // namespace tessera
