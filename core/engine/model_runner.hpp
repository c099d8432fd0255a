#pragma once
// The CPU reference engine: one Llama forward pass over a mixed batch of sequences (prefill, chunked prefill and
// decode together) with a paged KV cache. FP32 math; the oracle for the CUDA engine and the CPU serving backend.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/engine/paged_kv_cache.hpp"
#include "core/model/llama_weights.hpp"
#include "kernels/paged_attention.hpp"

namespace tessera {

// One sequence's work in a forward step.
struct SequenceStep {
  std::span<const int32_t> tokens;  // new tokens this step: whole prompt, a prefill chunk, or 1 decode token
  int32_t num_cached = 0;           // tokens already in the KV cache before this step = position of tokens[0]
  std::span<const int32_t> block_table;  // must cover num_cached + tokens.size() positions
  bool want_logits = true;               // return the logits of the last new token
};

class CpuModelRunner {
 public:
  // Checks every weight tensor's shape against weights->config and the cache shape against the model
  // (layers, kv heads, head_dim). Throws tessera::Error naming the tensor / parameter on a mismatch.
  // `cache` must outlive the runner.
  CpuModelRunner(std::shared_ptr<const LlamaWeights> weights, PagedKvCache& cache);

  // Runs the batch: all new tokens are concatenated into one [T, hidden] activation so each linear layer is one
  // matmul per step; new K/V are written into the cache at positions num_cached ... num_cached + len - 1.
  // `logits` is resized to [n, vocab] (row-major), one row per step with want_logits, in batch order: the logits of
  // that step's last new token.
  // Throws tessera::Error, before touching the cache, on an empty step, a token id out of range, a block table that
  // is too short or names a block outside the cache, or a position >= max_position_embeddings.
  // Threading contract: not thread-safe; one caller at a time (internally OpenMP-parallel).
  void forward(std::span<const SequenceStep> batch, std::vector<float>& logits);

  const LlamaConfig& config() const { return weights_->config; }

 private:
  void validate(std::span<const SequenceStep> batch) const;
  void prepare_batch(std::span<const SequenceStep> batch);
  void ensure_scratch(int64_t num_tokens, int64_t num_logit_rows);
  void run_layer(int layer, int64_t num_tokens);

  std::shared_ptr<const LlamaWeights> weights_;
  PagedKvCache& cache_;
  const float* lm_head_ = nullptr;
  std::vector<float> inv_freq_;

  // Per-step batch description (reused).
  std::vector<int32_t> token_ids_;
  std::vector<int32_t> positions_;
  std::vector<int64_t> slot_mapping_;
  std::vector<kernels::AttentionSequence> attention_sequences_;
  std::vector<int32_t> logit_rows_;

  // Activations, grown to the largest step seen and reused (no allocation per layer).
  std::vector<float> residual_;  // [T, hidden]
  std::vector<float> normed_;    // [T, hidden]
  std::vector<float> q_;         // [T, heads * head_dim]
  std::vector<float> k_;         // [T, kv_heads * head_dim]
  std::vector<float> v_;         // [T, kv_heads * head_dim]
  std::vector<float> attention_; // [T, heads * head_dim]
  std::vector<float> block_out_; // [T, hidden]: o_proj / down_proj output
  std::vector<float> gate_;      // [T, intermediate]
  std::vector<float> up_;        // [T, intermediate]
  std::vector<float> gathered_;  // [n, hidden]
};

}  // namespace tessera
