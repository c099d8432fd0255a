#include "core/model/llama_weights.hpp"

#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "core/common/error.hpp"
#include "core/model/llama_tensors.hpp"
#include "core/model/safetensors.hpp"

namespace tessera {

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

HostTensor to_host_tensor(const TensorView& view) {
  HostTensor t;
  t.shape = view.shape;
  const int64_t n = view.numel();
  if (view.dtype == DType::F32 && reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0) {
    t.data = reinterpret_cast<const float*>(view.data);  // zero-copy: the map already holds FP32
    t.owner = view.mapping;
    return t;
  }
  auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
  float* dst = values->data();
  const std::byte* src = view.data;
  // Elements are read with memcpy: safetensors gives no alignment guarantee for 2-byte types either.
  switch (view.dtype) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case DType::F16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    case DType::BF16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      break;
  }
  t.data = dst;
  t.owner = std::move(values);
  return t;
}

LlamaWeights LlamaWeights::load(const std::filesystem::path& dir) {
  LlamaWeights w;
  w.config = LlamaConfig::load(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);

  std::map<std::string, HostTensor> loaded;
  for (const LlamaTensorInfo& info : llama_tensor_layout(w.config)) {
    if (!checkpoint.contains(info.name))
      throw Error("tensor '" + info.name + "' is missing from checkpoint folder '" + dir.string() + "'" +
                  (info.name == "lm_head.weight" ? " (config.json says tie_word_embeddings is false)" : ""));
    const TensorView view = checkpoint.tensor(info.name);
    if (view.shape != info.shape)
      throw Error("tensor '" + info.name + "' in '" + view.file.string() + "' has shape " + shape_string(view.shape) +
                  ", but config.json implies " + shape_string(info.shape));
    loaded.emplace(info.name, to_host_tensor(view));
  }

  auto take = [&](const std::string& name) { return std::move(loaded.at(name)); };
  w.embed_tokens = take("model.embed_tokens.weight");
  w.layers.resize(static_cast<size_t>(w.config.num_layers));
  for (int i = 0; i < w.config.num_layers; ++i) {
    LlamaLayerWeights& l = w.layers[static_cast<size_t>(i)];
    l.input_norm = take(llama_layer_tensor_name(i, "input_layernorm.weight"));
    l.q_proj = take(llama_layer_tensor_name(i, "self_attn.q_proj.weight"));
    l.k_proj = take(llama_layer_tensor_name(i, "self_attn.k_proj.weight"));
    l.v_proj = take(llama_layer_tensor_name(i, "self_attn.v_proj.weight"));
    l.o_proj = take(llama_layer_tensor_name(i, "self_attn.o_proj.weight"));
    l.post_attn_norm = take(llama_layer_tensor_name(i, "post_attention_layernorm.weight"));
    l.gate_proj = take(llama_layer_tensor_name(i, "mlp.gate_proj.weight"));
    l.up_proj = take(llama_layer_tensor_name(i, "mlp.up_proj.weight"));
    l.down_proj = take(llama_layer_tensor_name(i, "mlp.down_proj.weight"));
  }
  w.final_norm = take("model.norm.weight");
  // Tied: lm_head is embed_tokens (as in transformers, a stored lm_head.weight is then ignored).
  w.lm_head = w.config.tie_word_embeddings ? w.embed_tokens : take("lm_head.weight");
  return w;
}

}  // namespace tessera
