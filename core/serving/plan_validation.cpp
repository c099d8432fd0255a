#include "core/serving/plan_validation.hpp"

#include <unordered_set>

#include "core/common/error.hpp"

namespace tessera {

std::string sequence_name(uint64_t seq_id) { return "sequence " + std::to_string(seq_id); }

void validate_plan(const StepPlan& plan, const PlanLimits& limits) {
  const int64_t block_size = limits.block_size;
  const std::unordered_set<uint64_t> released(plan.release_state.begin(), plan.release_state.end());
  std::unordered_set<uint64_t> seen;
  for (const ScheduledSequence& seq : plan.sequences) {
    const std::string name = sequence_name(seq.seq_id);
    if (!seen.insert(seq.seq_id).second) throw Error(name + " is scheduled twice in one step");
    if (released.count(seq.seq_id)) throw Error(name + " is both scheduled and in release_state");
    if (seq.tokens.empty()) throw Error(name + " has no tokens to run");
    if (seq.token_pending && (seq.tokens.size() != 1 || !seq.sample)) {
      throw Error(name + ": a pending-token decode must have exactly one (placeholder) token and sample");
    }
    if (seq.num_cached < 0) {
      throw Error(name + ": num_cached must be >= 0 (got " + std::to_string(seq.num_cached) + ")");
    }
    for (int32_t id : seq.tokens) {
      if (id < 0 || id >= limits.vocab_size) {
        throw Error(name + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                    std::to_string(limits.vocab_size) + ")");
      }
    }
    const int64_t end = int64_t{seq.num_cached} + static_cast<int64_t>(seq.tokens.size());
    if (end > limits.max_position_embeddings) {
      throw Error(name + ": positions up to " + std::to_string(end) + " exceed the model's context of " +
                  std::to_string(limits.max_position_embeddings) + " tokens");
    }
    const int64_t needed_blocks = (end + block_size - 1) / block_size;
    if (static_cast<int64_t>(seq.block_table.size()) < needed_blocks) {
      throw Error(name + ": block table has " + std::to_string(seq.block_table.size()) + " blocks, " +
                  std::to_string(needed_blocks) + " needed for " + std::to_string(end) + " positions");
    }
    for (int32_t block : seq.block_table) {
      if (block < 0 || block >= limits.num_blocks) {
        throw Error(name + ": block id " + std::to_string(block) + " is outside the KV cache [0, " +
                    std::to_string(limits.num_blocks) + ")");
      }
    }
  }
}

}  // namespace tessera
