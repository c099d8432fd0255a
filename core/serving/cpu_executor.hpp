#pragma once
// The CPU serving backend: runs the scheduler's StepPlans on the FP32 reference engine (CpuModelRunner) with a
// paged KV cache of a fixed number of blocks, and samples each request's next token with that request's own
// Sampler, so a request's output depends only on its prompt and seed, never on the batch it shares.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/engine/model_runner.hpp"
#include "core/engine/paged_kv_cache.hpp"
#include "core/model/llama_weights.hpp"
#include "core/sampling/sampler.hpp"
#include "core/serving/executor.hpp"

namespace tessera {

class CpuExecutor final : public Executor {
 public:
  // Allocates the KV cache: num_blocks blocks of block_size tokens for the model's layers and KV heads
  // (num_blocks_for_budget() turns a memory budget into a block count). Throws tessera::Error on null weights or
  // a non-positive num_blocks / block_size. `model_name` only appears in info().
  CpuExecutor(std::shared_ptr<const LlamaWeights> weights, int num_blocks, int block_size,
              std::string model_name = "");

  // Validates the plan (every sequence: tokens present and in the vocabulary, a block table that covers
  // num_cached + tokens.size() positions with block ids inside the cache, positions within the model's context,
  // sampling parameters; no sequence twice), runs one forward pass over all sequences, and samples one token per
  // sequence with sample = true, in plan order. Samplers are created from the SamplingSpec the first time a
  // sequence is seen (later specs of the same seq_id are ignored: a request's sampling never changes) and dropped
  // when the seq_id appears in plan.release_state; release_state is applied before the step, even when it fails.
  // A failed step returns no tokens and leaves every sampler as it was, except after a sampling failure (garbage
  // logits), which fails the step anyway. Never throws. Threading: one caller at a time.
  StepResult execute(const StepPlan& plan) override;

  ExecutorInfo info() const override;

  // Blocks of `block_size` tokens whose KV (FP32) fits in `bytes` for `config`. Throws tessera::Error if not even
  // one block fits or block_size <= 0.
  static int num_blocks_for_budget(const LlamaConfig& config, int block_size, int64_t bytes);

  // Tokens the KV cache holds over all sequences: num_blocks * block_size.
  int64_t capacity_tokens() const;
  // Sequences with live sampler state (tests, metrics).
  size_t num_sampler_states() const { return samplers_.size(); }

 private:
  void validate(const StepPlan& plan) const;
  std::vector<int32_t> run(const StepPlan& plan);

  std::shared_ptr<const LlamaWeights> weights_;
  std::string model_name_;
  PagedKvCache cache_;
  CpuModelRunner runner_;
  std::unordered_map<uint64_t, Sampler> samplers_;
  // The token each sequence sampled in the last step (token_pending inputs of the next one).
  std::unordered_map<uint64_t, int32_t> last_sampled_;
  // Reused per step.
  std::vector<SequenceStep> steps_;
  std::vector<float> logits_;
};

}  // namespace tessera
