#pragma once
// The plain structs of one engine step: the scheduler plans a StepPlan, the KV-block manager fills its block tables,
// an executor runs it and answers with a StepResult. Only these cross the scheduler / KV / executor boundaries; each
// is a CAF message (actors/caf_types.hpp) and packs with msgpack (MSGPACK_DEFINE_MAP), so an executor can later live
// in another process behind the bus.
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace tessera {

// What the executor needs to sample one request's tokens; the seed is always set (the scheduler draws one when the
// client gave none) so that a request's draws do not depend on the batch or on preemption.
struct SamplingSpec {
  float temperature = 1.0f;
  int32_t top_k = -1;
  float top_p = 1.0f;
  uint64_t seed = 0;
  MSGPACK_DEFINE_MAP(temperature, top_k, top_p, seed)
};

struct ScheduledSequence {
  uint64_t seq_id = 0;              // the scheduler's id of the request
  std::vector<int32_t> tokens;      // new tokens to run: a prompt (chunk), a recompute chunk, or one decode token
  int32_t num_cached = 0;           // tokens already in the KV cache = position of tokens[0]
  int32_t new_blocks = 0;           // blocks the KV manager appends to this sequence's table before the step
  std::vector<int32_t> block_table; // filled by the KV manager: covers num_cached + tokens.size() positions
  bool sample = false;              // true when the step reaches the end of the known tokens: sample the next one
  SamplingSpec sampling;
  // Pipelined decode: tokens = {one placeholder}; the real input is the token this sequence samples in the step
  // submitted just before this one (still running when this plan was made). The executor fills it in.
  bool token_pending = false;
  MSGPACK_DEFINE_MAP(seq_id, tokens, num_cached, new_blocks, block_table, sample, sampling, token_pending)
};

struct StepPlan {
  uint64_t step_id = 0;
  std::vector<ScheduledSequence> sequences;
  // Sequences whose KV blocks are freed before this step's allocations (finished, cancelled, failed, preempted).
  std::vector<uint64_t> release_kv;
  // Sequences that are gone for good (finished, cancelled, failed): the executor drops their sampler state.
  // A preempted sequence is in release_kv but not here: it keeps its RNG so its output does not change.
  std::vector<uint64_t> release_state;
  MSGPACK_DEFINE_MAP(step_id, sequences, release_kv, release_state)
};

struct SampledToken {
  uint64_t seq_id = 0;
  int32_t token = 0;
  MSGPACK_DEFINE_MAP(seq_id, token)
};

struct StepResult {
  uint64_t step_id = 0;
  std::vector<SampledToken> tokens;  // one per sequence with sample = true, in plan order
  std::string error;                 // non-empty: the step failed and produced no tokens
  double execute_seconds = 0;        // executor wall time of the step
  bool fatal = false;                // the executor is unusable from now on (e.g. a sticky CUDA error): stop serving
  MSGPACK_DEFINE_MAP(step_id, tokens, error, execute_seconds, fatal)
};

}  // namespace tessera
