#pragma once
// The architecture hyper-parameters of a Llama-family checkpoint (Llama 2, Llama 3/3.1, Mistral, TinyLlama),
// read from a Hugging Face `config.json`.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/common/dtype.hpp"

namespace tessera {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3 only
  float high_freq_factor = 4.0f;  // llama3 only
  int original_max_position_embeddings = 8192;  // llama3 only
};

struct LlamaConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM", "MistralForCausalLM"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // grouped-query attention when < num_heads
  int head_dim = 0;      // hidden_size / num_heads unless config.json says otherwise
  float rms_norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int max_position_embeddings = 2048;
  std::optional<int> sliding_window;  // Mistral; attention sees at most this many most recent positions
  bool tie_word_embeddings = false;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;  // config.json's eos_token_id (int or list)
  DType dtype = DType::F32;        // torch_dtype / dtype as stored

  // Throws tessera::Error naming `source` (the file) and the offending key on a missing, mistyped or
  // unsupported value (unknown architecture, unknown rope_scaling type, inconsistent head counts, ...).
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& source);
  // Reads `dir/config.json`.
  static LlamaConfig load(const std::filesystem::path& dir);
  // The config.json representation written by `tessera-model make`.
  nlohmann::json to_json() const;
};

}  // namespace tessera
