#include "core/engine/model_runner.hpp"

#include <cmath>
#include <string>

#include "core/common/error.hpp"
#include "kernels/embedding.hpp"
#include "kernels/kv_cache_write.hpp"
#include "kernels/linear.hpp"
#include "kernels/lm_head.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/rope.hpp"
#include "kernels/swiglu.hpp"

namespace tessera {

namespace {

void check_shape(const HostTensor& t, std::vector<int64_t> expected, const std::string& name) {
  auto to_string = [](const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  };
  if (t.shape != expected) {
    throw Error("CpuModelRunner: tensor " + name + " has shape " + to_string(t.shape) + ", expected " +
                to_string(expected));
  }
  if (t.data == nullptr) throw Error("CpuModelRunner: tensor " + name + " has no data");
}

template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace

CpuModelRunner::CpuModelRunner(std::shared_ptr<const LlamaWeights> weights, PagedKvCache& cache)
    : weights_(std::move(weights)), cache_(cache) {
  if (!weights_) throw Error("CpuModelRunner: weights are null");
  const LlamaConfig& c = weights_->config;
  if (c.hidden_size <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 || c.vocab_size <= 0 ||
      c.intermediate_size <= 0 || c.num_layers < 0 || c.num_heads % c.num_kv_heads != 0) {
    throw Error("CpuModelRunner: inconsistent config (hidden_size, heads, kv heads, head_dim, vocab, intermediate)");
  }
  if (static_cast<int>(weights_->layers.size()) != c.num_layers) {
    throw Error("CpuModelRunner: config has " + std::to_string(c.num_layers) + " layers but weights have " +
                std::to_string(weights_->layers.size()));
  }
  const int64_t hidden = c.hidden_size, q_width = int64_t{c.num_heads} * c.head_dim,
                kv_width = int64_t{c.num_kv_heads} * c.head_dim, inter = c.intermediate_size;
  check_shape(weights_->embed_tokens, {c.vocab_size, hidden}, "embed_tokens");
  check_shape(weights_->final_norm, {hidden}, "final_norm");
  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayerWeights& w = weights_->layers[static_cast<size_t>(l)];
    const std::string p = "layers." + std::to_string(l) + ".";
    check_shape(w.input_norm, {hidden}, p + "input_norm");
    check_shape(w.q_proj, {q_width, hidden}, p + "q_proj");
    check_shape(w.k_proj, {kv_width, hidden}, p + "k_proj");
    check_shape(w.v_proj, {kv_width, hidden}, p + "v_proj");
    check_shape(w.o_proj, {hidden, q_width}, p + "o_proj");
    check_shape(w.post_attn_norm, {hidden}, p + "post_attn_norm");
    check_shape(w.gate_proj, {inter, hidden}, p + "gate_proj");
    check_shape(w.up_proj, {inter, hidden}, p + "up_proj");
    check_shape(w.down_proj, {hidden, inter}, p + "down_proj");
  }
  if (weights_->lm_head.data == nullptr && c.tie_word_embeddings) {
    lm_head_ = weights_->embed_tokens.data;  // tied: the loader may leave lm_head empty
  } else {
    check_shape(weights_->lm_head, {c.vocab_size, hidden}, "lm_head");
    lm_head_ = weights_->lm_head.data;
  }
  const KvCacheShape& s = cache_.shape();
  if (s.num_layers != c.num_layers || s.num_kv_heads != c.num_kv_heads || s.head_dim != c.head_dim) {
    throw Error("CpuModelRunner: KV cache shape (layers " + std::to_string(s.num_layers) + ", kv heads " +
                std::to_string(s.num_kv_heads) + ", head_dim " + std::to_string(s.head_dim) +
                ") does not match the model");
  }
  inv_freq_ = kernels::rope_inv_freq(c);
}

void CpuModelRunner::validate(std::span<const SequenceStep> batch) const {
  const LlamaConfig& c = weights_->config;
  const int block_size = cache_.shape().block_size;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SequenceStep& step = batch[i];
    const std::string where = "forward: batch[" + std::to_string(i) + "]: ";
    if (step.tokens.empty()) throw Error(where + "no new tokens");
    if (step.num_cached < 0) throw Error(where + "num_cached is negative");
    const int64_t end = int64_t{step.num_cached} + static_cast<int64_t>(step.tokens.size());
    if (end > c.max_position_embeddings) {
      throw Error(where + "position " + std::to_string(end - 1) + " exceeds max_position_embeddings " +
                  std::to_string(c.max_position_embeddings));
    }
    const int64_t blocks_needed = (end + block_size - 1) / block_size;
    if (static_cast<int64_t>(step.block_table.size()) < blocks_needed) {
      throw Error(where + "block_table has " + std::to_string(step.block_table.size()) + " blocks, " +
                  std::to_string(blocks_needed) + " needed for " + std::to_string(end) + " positions");
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t block = step.block_table[static_cast<size_t>(b)];
      if (block < 0 || block >= cache_.shape().num_blocks) {
        throw Error(where + "block_table[" + std::to_string(b) + "] = " + std::to_string(block) +
                    " is outside the cache's " + std::to_string(cache_.shape().num_blocks) + " blocks");
      }
    }
    for (size_t t = 0; t < step.tokens.size(); ++t) {
      if (step.tokens[t] < 0 || step.tokens[t] >= c.vocab_size) {
        throw Error(where + "token id " + std::to_string(step.tokens[t]) + " at index " + std::to_string(t) +
                    " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      }
    }
  }
}

void CpuModelRunner::prepare_batch(std::span<const SequenceStep> batch) {
  const int block_size = cache_.shape().block_size;
  token_ids_.clear();
  positions_.clear();
  slot_mapping_.clear();
  attention_sequences_.clear();
  logit_rows_.clear();
  for (const SequenceStep& step : batch) {
    const int64_t start = static_cast<int64_t>(token_ids_.size());
    const int32_t len = static_cast<int32_t>(step.tokens.size());
    for (int32_t j = 0; j < len; ++j) {
      const int32_t p = step.num_cached + j;
      token_ids_.push_back(step.tokens[static_cast<size_t>(j)]);
      positions_.push_back(p);
      slot_mapping_.push_back(int64_t{step.block_table[static_cast<size_t>(p / block_size)]} * block_size +
                              p % block_size);
    }
    attention_sequences_.push_back({start, len, step.num_cached + len, step.block_table.data()});
    if (step.want_logits) logit_rows_.push_back(static_cast<int32_t>(start + len - 1));
  }
}

void CpuModelRunner::ensure_scratch(int64_t t, int64_t n) {
  const LlamaConfig& c = weights_->config;
  const int64_t q_width = int64_t{c.num_heads} * c.head_dim, kv_width = int64_t{c.num_kv_heads} * c.head_dim;
  grow(residual_, t * c.hidden_size);
  grow(normed_, t * c.hidden_size);
  grow(q_, t * q_width);
  grow(k_, t * kv_width);
  grow(v_, t * kv_width);
  grow(attention_, t * q_width);
  grow(block_out_, t * c.hidden_size);
  grow(gate_, t * c.intermediate_size);
  grow(up_, t * c.intermediate_size);
  grow(gathered_, n * c.hidden_size);
}

void CpuModelRunner::run_layer(int layer, int64_t t) {
  using namespace kernels;
  const LlamaConfig& c = weights_->config;
  const LlamaLayerWeights& w = weights_->layers[static_cast<size_t>(layer)];
  const int64_t hidden = c.hidden_size, q_width = int64_t{c.num_heads} * c.head_dim,
                kv_width = int64_t{c.num_kv_heads} * c.head_dim, inter = c.intermediate_size;

  // Attention block: normed_ holds rms_norm(residual) with this layer's input norm.
  linear_ref(normed_.data(), w.q_proj.data, q_.data(), t, hidden, q_width);
  linear_ref(normed_.data(), w.k_proj.data, k_.data(), t, hidden, kv_width);
  linear_ref(normed_.data(), w.v_proj.data, v_.data(), t, hidden, kv_width);
  rope_ref(q_.data(), k_.data(), t, c.num_heads, c.num_kv_heads, c.head_dim, positions_.data(), inv_freq_.data());
  const KvCacheLayout layout = cache_.layout();
  kv_cache_write_ref(k_.data(), v_.data(), t, slot_mapping_.data(), layout, cache_.keys(layer), cache_.values(layer));
  AttentionParams params;
  params.num_heads = c.num_heads;
  params.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  params.sliding_window = c.sliding_window.value_or(0);
  paged_attention_ref(q_.data(), cache_.keys(layer), cache_.values(layer), layout, attention_sequences_, params,
                      attention_.data());
  linear_ref(attention_.data(), w.o_proj.data, block_out_.data(), t, q_width, hidden);
  add_rms_norm_ref(residual_.data(), block_out_.data(), w.post_attn_norm.data, normed_.data(), t, hidden,
                   c.rms_norm_eps);

  // MLP block.
  linear_ref(normed_.data(), w.gate_proj.data, gate_.data(), t, hidden, inter);
  linear_ref(normed_.data(), w.up_proj.data, up_.data(), t, hidden, inter);
  swiglu_ref(gate_.data(), up_.data(), gate_.data(), t * inter);
  linear_ref(gate_.data(), w.down_proj.data, block_out_.data(), t, inter, hidden);
  // Residual add fused with the next norm: the next layer's input norm, or the final norm after the last layer.
  const float* next_norm = layer + 1 < c.num_layers ? weights_->layers[static_cast<size_t>(layer + 1)].input_norm.data
                                                    : weights_->final_norm.data;
  add_rms_norm_ref(residual_.data(), block_out_.data(), next_norm, normed_.data(), t, hidden, c.rms_norm_eps);
}

void CpuModelRunner::forward(std::span<const SequenceStep> batch, std::vector<float>& logits) {
  validate(batch);
  prepare_batch(batch);
  const LlamaConfig& c = weights_->config;
  const int64_t t = static_cast<int64_t>(token_ids_.size());
  const int64_t n = static_cast<int64_t>(logit_rows_.size());
  logits.resize(static_cast<size_t>(n * c.vocab_size));
  if (t == 0) return;
  ensure_scratch(t, n);

  kernels::embedding_ref(weights_->embed_tokens.data, c.vocab_size, c.hidden_size, token_ids_, residual_.data());
  const float* first_norm = c.num_layers > 0 ? weights_->layers[0].input_norm.data : weights_->final_norm.data;
  kernels::rms_norm_ref(residual_.data(), first_norm, normed_.data(), t, c.hidden_size, c.rms_norm_eps);
  for (int layer = 0; layer < c.num_layers; ++layer) run_layer(layer, t);
  // normed_ now holds final_norm(hidden state) for every token.
  if (n > 0) {
    kernels::lm_head_ref(normed_.data(), c.hidden_size, logit_rows_, lm_head_, c.vocab_size, gathered_.data(),
                         logits.data());
  }
}

}  // namespace tessera
