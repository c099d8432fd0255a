#pragma once
// The Hugging Face tensor names and shapes of a Llama-family checkpoint, derived from its config.
// Shared by the CPU loader, the checkpoint generator and (later) the GPU loader.
#include <cstdint>
#include <string>
#include <vector>

#include "core/model/llama_config.hpp"

namespace tessera {

enum class LlamaTensorKind { Embedding, Norm, Linear };

struct LlamaTensorInfo {
  std::string name;            // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // Hugging Face layout, linears [out_features, in_features]
  LlamaTensorKind kind = LlamaTensorKind::Linear;
};

std::string llama_layer_tensor_name(int layer, const std::string& suffix);

// Every tensor of the model in checkpoint order: embed_tokens, per layer (input_layernorm, q/k/v/o_proj,
// post_attention_layernorm, gate/up/down_proj), model.norm, then lm_head unless embeddings are tied.
std::vector<LlamaTensorInfo> llama_tensor_layout(const LlamaConfig& config);

// Parameter count of the layout above (tied embeddings counted once).
int64_t llama_parameter_count(const LlamaConfig& config);

}  // namespace tessera
