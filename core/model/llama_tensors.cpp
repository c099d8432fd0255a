#include "core/model/llama_tensors.hpp"

namespace tessera {

std::string llama_layer_tensor_name(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::vector<LlamaTensorInfo> llama_tensor_layout(const LlamaConfig& c) {
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_out = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  const int64_t inter = c.intermediate_size;
  using K = LlamaTensorKind;

  std::vector<LlamaTensorInfo> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, hidden}, K::Embedding});
  for (int i = 0; i < c.num_layers; ++i) {
    auto add = [&](const char* suffix, std::vector<int64_t> shape, K kind) {
      out.push_back({llama_layer_tensor_name(i, suffix), std::move(shape), kind});
    };
    add("input_layernorm.weight", {hidden}, K::Norm);
    add("self_attn.q_proj.weight", {q_out, hidden}, K::Linear);
    add("self_attn.k_proj.weight", {kv_out, hidden}, K::Linear);
    add("self_attn.v_proj.weight", {kv_out, hidden}, K::Linear);
    add("self_attn.o_proj.weight", {hidden, q_out}, K::Linear);
    add("post_attention_layernorm.weight", {hidden}, K::Norm);
    add("mlp.gate_proj.weight", {inter, hidden}, K::Linear);
    add("mlp.up_proj.weight", {inter, hidden}, K::Linear);
    add("mlp.down_proj.weight", {hidden, inter}, K::Linear);
  }
  out.push_back({"model.norm.weight", {hidden}, K::Norm});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, hidden}, K::Linear});
  return out;
}

int64_t llama_parameter_count(const LlamaConfig& config) {
  int64_t total = 0;
  for (const LlamaTensorInfo& t : llama_tensor_layout(config)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace tessera
