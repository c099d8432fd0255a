#pragma once
// The weights of a Llama-family model as FP32 host tensors, the input of the CPU reference engine.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/model/llama_config.hpp"

namespace tessera {

// A read-only FP32 row-major tensor. `owner` keeps the storage alive (a converted copy or a memory map).
struct HostTensor {
  std::vector<int64_t> shape;
  const float* data = nullptr;
  std::shared_ptr<const void> owner;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Linear weights keep Hugging Face's [out_features, in_features] layout.
struct LlamaLayerWeights {
  HostTensor input_norm;      // [hidden]
  HostTensor q_proj;          // [num_heads * head_dim, hidden]
  HostTensor k_proj;          // [num_kv_heads * head_dim, hidden]
  HostTensor v_proj;          // [num_kv_heads * head_dim, hidden]
  HostTensor o_proj;          // [hidden, num_heads * head_dim]
  HostTensor post_attn_norm;  // [hidden]
  HostTensor gate_proj;       // [intermediate, hidden]
  HostTensor up_proj;         // [intermediate, hidden]
  HostTensor down_proj;       // [hidden, intermediate]
};

struct TensorView;  // core/model/safetensors.hpp
// FP32 host view of a raw checkpoint tensor: zero-copy (owner = the memory map) for 4-byte aligned F32,
// otherwise an owned converted copy (F16/BF16 converted with an OpenMP parallel loop).
HostTensor to_host_tensor(const TensorView& view);

struct LlamaWeights {
  LlamaConfig config;
  HostTensor embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  HostTensor final_norm;    // [hidden]
  HostTensor lm_head;       // [vocab, hidden]; shares embed_tokens' storage when embeddings are tied

  // Loads `dir` (config.json + model.safetensors or sharded *.safetensors with model.safetensors.index.json),
  // converting F16/BF16 to FP32. Throws tessera::Error naming the file and tensor on any problem.
  static LlamaWeights load(const std::filesystem::path& dir);
};

}  // namespace tessera
