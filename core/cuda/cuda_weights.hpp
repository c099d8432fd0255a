#pragma once
// A Llama checkpoint's weights on one GPU, in the compute dtype (BF16 for serving, F32 for exactness tests), with the
// QKV projections fused into one [q + k + v, hidden] matrix and gate/up into one [2 * intermediate, hidden] matrix so
// each takes one GEMM per layer.
#include <filesystem>
#include <vector>

#include "core/cuda/cuda_check.hpp"
#include "core/model/llama_config.hpp"

namespace tessera::cuda {

struct CudaLayerWeights {
  DeviceMemory input_norm;      // [hidden]
  DeviceMemory qkv;             // [(heads + 2 * kv_heads) * head_dim, hidden]
  DeviceMemory o_proj;          // [hidden, heads * head_dim]
  DeviceMemory post_attn_norm;  // [hidden]
  DeviceMemory gate_up;         // [2 * intermediate, hidden]: paired rows, 2j = gate j, 2j + 1 = up j
  DeviceMemory down;            // [hidden, intermediate]
};

struct CudaWeights {
  LlamaConfig config;
  DType dtype = DType::BF16;  // element type of every tensor here (F32 or BF16)
  DeviceMemory embed_tokens;  // [vocab, hidden]
  std::vector<CudaLayerWeights> layers;
  DeviceMemory final_norm;    // [hidden]
  DeviceMemory lm_head_own;   // [vocab, hidden], empty when tied
  const void* lm_head = nullptr;  // lm_head_own or embed_tokens
  size_t total_bytes = 0;

  // Reads config.json and the safetensors files of `dir`, checks every shape, converts to `dtype` on the host where
  // the checkpoint differs, and uploads to the current device. Throws tessera::Error naming the tensor/file.
  static CudaWeights load(const std::filesystem::path& dir, DType dtype);
};

}  // namespace tessera::cuda
