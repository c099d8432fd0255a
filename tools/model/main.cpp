// tessera-model: make random Llama-family checkpoints (`make`) and describe checkpoints (`info`).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "core/common/error.hpp"
#include "core/model/llama_tensors.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/model/safetensors.hpp"

namespace {

using tessera::DType;

const char* rope_name(tessera::RopeScaling::Type t) {
  switch (t) {
    case tessera::RopeScaling::Type::None: return "none";
    case tessera::RopeScaling::Type::Linear: return "linear";
    case tessera::RopeScaling::Type::Llama3: return "llama3";
  }
  return "?";
}

void print_info(const std::filesystem::path& dir) {
  const tessera::LlamaConfig c = tessera::LlamaConfig::load(dir);
  const tessera::Checkpoint checkpoint = tessera::Checkpoint::open(dir);
  std::map<std::string, int64_t> params_by_dtype;
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const std::string& name : checkpoint.tensor_names()) {
    const tessera::TensorEntry& e = checkpoint.entry(name);
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    params += n;
    params_by_dtype[e.dtype] += n;
    bytes += e.end - e.begin;
  }
  std::printf("%s\n", dir.c_str());
  std::printf("  architecture       %s\n", c.architecture.c_str());
  std::printf("  layers             %d\n", c.num_layers);
  std::printf("  hidden / inter     %d / %d\n", c.hidden_size, c.intermediate_size);
  std::printf("  heads / kv / dim   %d / %d / %d\n", c.num_heads, c.num_kv_heads, c.head_dim);
  std::printf("  vocab              %d%s\n", c.vocab_size, c.tie_word_embeddings ? " (tied embeddings)" : "");
  std::printf("  rope               theta %g, scaling %s (factor %g)\n", c.rope_theta, rope_name(c.rope_scaling.type),
              c.rope_scaling.factor);
  std::printf("  max positions      %d%s\n", c.max_position_embeddings,
              c.sliding_window ? (", sliding window " + std::to_string(*c.sliding_window)).c_str() : "");
  std::printf("  config dtype       %s\n", tessera::dtype_name(c.dtype));
  std::printf("  files              %zu safetensors, %.3f GB of tensor data\n", checkpoint.files().size(), bytes / 1e9);
  std::printf("  parameters         %lld stored (config implies %lld)\n", static_cast<long long>(params),
              static_cast<long long>(tessera::llama_parameter_count(c)));
  for (const auto& [dtype, n] : params_by_dtype)
    std::printf("    %-6s           %lld\n", dtype.c_str(), static_cast<long long>(n));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tessera-model: make and inspect Llama-family safetensors checkpoints"};
  app.require_subcommand(1);

  CLI::App* make = app.add_subcommand("make", "write a checkpoint with random weights");
  std::string preset, dtype = "bf16", tokenizer;
  std::filesystem::path out;
  uint64_t seed = 0;
  int layers = 0;
  double shard_gb = 5.0;
  bool tied = false;
  std::string preset_help = "architecture preset:";
  for (const std::string& n : tessera::model_preset_names()) preset_help += " " + n;
  make->add_option("--preset", preset, preset_help)->required();
  make->add_option("--out", out, "output folder")->required();
  make->add_option("--dtype", dtype, "tensor storage type")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  make->add_option("--seed", seed, "random seed");
  make->add_option("--tokenizer", tokenizer, "tokenizer.json to copy (tokenizer_config.json beside it too)")
      ->check(CLI::ExistingFile);
  make->add_option("--layers", layers, "override the number of layers")->check(CLI::PositiveNumber);
  make->add_option("--shard-size-gb", shard_gb, "maximum shard size in GB (1e9 bytes)")->check(CLI::PositiveNumber);
  make->add_flag("--tied", tied, "tie lm_head to embed_tokens (no lm_head.weight)");

  CLI::App* info = app.add_subcommand("info", "print a checkpoint's config summary and parameter count");
  std::filesystem::path info_dir;
  info->add_option("dir", info_dir, "checkpoint folder")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (*info) {
      print_info(info_dir);
      return 0;
    }
    tessera::RandomCheckpointOptions options;
    options.config = tessera::model_preset(preset);
    if (layers > 0) options.config.num_layers = layers;
    if (tied) options.config.tie_word_embeddings = true;
    options.dtype = dtype == "f32" ? DType::F32 : dtype == "f16" ? DType::F16 : DType::BF16;
    options.seed = seed;
    options.max_shard_bytes = static_cast<uint64_t>(shard_gb * 1e9);
    if (!tokenizer.empty()) options.tokenizer_file = tokenizer;

    const auto start = std::chrono::steady_clock::now();
    const tessera::RandomCheckpointResult result = tessera::write_random_checkpoint(out, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s: %zu safetensors file(s), %lld parameters, %s, in %.1f s\n", out.c_str(),
                result.safetensors_files.size(), static_cast<long long>(tessera::llama_parameter_count(result.config)),
                tessera::dtype_name(options.dtype), seconds);
    std::printf("tokenizer: %s\n", result.tokenizer_note.c_str());
  } catch (const std::exception& e) {  // tessera::Error, or a filesystem error outside our checks
    std::fprintf(stderr, "tessera-model: %s\n", e.what());
    return 1;
  }
  return 0;
}
