#pragma once
// Checks a StepPlan against what an executor holds before it touches device or cache memory: every executor (CPU
// or CUDA) runs the same checks, so a bad plan is a clear step error, never an out-of-bounds access.
#include <cstdint>
#include <string>

#include "core/serving/step.hpp"

namespace tessera {

struct PlanLimits {
  int32_t vocab_size = 0;
  int32_t max_position_embeddings = 0;
  int32_t block_size = 0;
  int32_t num_blocks = 0;
};

// Throws tessera::Error naming the sequence: scheduled twice, both scheduled and released, no tokens, negative
// num_cached, a token_pending sequence that is not a one-token sampling decode, a token outside the vocabulary, positions beyond the context, a block table too short for its
// positions or naming a block outside the cache.
void validate_plan(const StepPlan& plan, const PlanLimits& limits);

std::string sequence_name(uint64_t seq_id);  // "sequence N", for messages

}  // namespace tessera
