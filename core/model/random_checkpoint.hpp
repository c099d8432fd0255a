#pragma once
// Generating Llama-family checkpoints with random weights (the library behind `tessera-model make`):
// named architecture presets, deterministic random values, safetensors output and a tokenizer.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model/llama_config.hpp"

namespace tessera {

// Names accepted by model_preset(): "tiny", "llama-3.1-8b", "llama-2-7b", "tinyllama-1.1b", "mistral-7b".
std::vector<std::string> model_preset_names();
// The config.json values of a preset (dtype BF16). Throws tessera::Error naming the preset when unknown.
LlamaConfig model_preset(const std::string& name);

// Deterministic random values: element `index` of the tensor with key random_tensor_key(seed, name) is the
// same whatever thread or order computes it. Values are approximately standard normal (sum of 4 uniforms).
uint64_t random_tensor_key(uint64_t seed, std::string_view tensor_name);
float random_normalish(uint64_t tensor_key, int64_t index);

inline constexpr float kRandomWeightStd = 0.02f;  // linear and embedding weights
inline constexpr float kRandomNormNoise = 0.02f;  // norm weights are 1 + this * noise

struct RandomCheckpointOptions {
  LlamaConfig config;                  // typically model_preset(...), possibly edited
  DType dtype = DType::BF16;           // storage type of every tensor (config.dtype is set to it)
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000;  // split into shards beyond this (HF's "5GB")
  // A tokenizer.json to copy (with tokenizer_config.json beside it, if any). Without it a byte-level BPE
  // tokenizer is synthesized when the vocab is small enough (see synthetic_tokenizer.hpp), else none.
  std::optional<std::filesystem::path> tokenizer_file;
};

struct RandomCheckpointResult {
  LlamaConfig config;  // as written to config.json (vocab/bos/eos possibly adjusted to the tokenizer)
  std::vector<std::filesystem::path> safetensors_files;
  bool tokenizer_written = false;
  std::string tokenizer_note;  // human-readable: what was done about the tokenizer and why
};

// Writes config.json, generation_config.json, *.safetensors (+ index when sharded) and the tokenizer
// files into `dir` (created if needed). Threading: fills tensors with OpenMP threads.
// Throws tessera::Error naming the file / option on failure.
RandomCheckpointResult write_random_checkpoint(const std::filesystem::path& dir, RandomCheckpointOptions options);

}  // namespace tessera
