#pragma once
// The executor boundary of the server: something that runs StepPlans (one forward + sampling per step) and
// answers StepResults. The CPU reference executor implements it now; the CUDA executor plugs in later.
#include <cstdint>
#include <string>

#include <msgpack.hpp>

#include "core/serving/step.hpp"

namespace tessera {

// What the server reports about its executor (info requests, logs, metrics).
struct ExecutorInfo {
  std::string device;             // "cpu", later "cuda:0"
  std::string dtype;              // compute / KV cache element type, e.g. "F32"
  std::string model_name;         // the model directory's name (or what the caller passed)
  int32_t num_blocks = 0;         // KV cache blocks
  int32_t block_size = 0;         // tokens per block
  int64_t capacity_tokens = 0;    // num_blocks * block_size: tokens the KV cache holds over all sequences
  int32_t vocab_size = 0;
  int32_t max_position_embeddings = 0;
  MSGPACK_DEFINE_MAP(device, dtype, model_name, num_blocks, block_size, capacity_tokens, vocab_size,
                     max_position_embeddings)
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Runs one step. Never throws: any failure (bad plan, model error) is reported in StepResult::error, in which
  // case no tokens are returned. Threading: one caller at a time.
  virtual StepResult execute(const StepPlan& plan) = 0;

  // Constant over the executor's life; safe to call from the executing thread.
  virtual ExecutorInfo info() const = 0;
};

}  // namespace tessera
