#include "core/model/random_checkpoint.hpp"

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "core/model/llama_tensors.hpp"
#include "core/model/safetensors_writer.hpp"
#include "core/model/synthetic_tokenizer.hpp"

namespace tessera {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

LlamaConfig base_config(const char* arch, int vocab, int hidden, int inter, int layers, int heads, int kv_heads) {
  LlamaConfig c;
  c.architecture = arch;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.rms_norm_eps = 1e-5f;
  c.dtype = DType::BF16;
  return c;
}

template <typename Json>  // json or ordered_json (the tokenizer files keep their key order)
void write_json(const fs::path& path, const Json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open '" + path.string() + "'");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error("invalid JSON in '" + path.string() + "': " + e.what());
  }
}

void copy_into(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy '" + from.string() + "' to '" + to.string() + "': " + ec.message());
}

// Token id of a special token named in tokenizer_config.json (a string or {"content": ...}).
std::optional<int> special_token_id(const json& config, const char* key, const std::map<std::string, int>& ids) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  std::string content;
  if (it->is_string()) content = it->get<std::string>();
  else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) content = (*it)["content"];
  const auto found = ids.find(content);
  return found == ids.end() ? std::nullopt : std::optional<int>(found->second);
}

// Copies a real tokenizer and fits the config to it: vocab_size covers every id; bos/eos follow
// tokenizer_config.json when it names them.
std::string copy_tokenizer(const fs::path& file, const fs::path& dir, LlamaConfig& config) {
  const json tokenizer = read_json(file);
  std::map<std::string, int> ids;
  int max_id = -1;
  auto note_id = [&](const std::string& token, const json& id) {
    if (!id.is_number_integer()) throw Error("'" + file.string() + "': token '" + token + "' has a non-integer id");
    ids[token] = id.get<int>();
    max_id = std::max(max_id, id.get<int>());
  };
  if (const auto model = tokenizer.find("model"); model != tokenizer.end() && model->contains("vocab") &&
                                                  (*model)["vocab"].is_object())
    for (const auto& [token, id] : (*model)["vocab"].items()) note_id(token, id);
  if (const auto added = tokenizer.find("added_tokens"); added != tokenizer.end() && added->is_array())
    for (const json& t : *added)
      if (t.contains("content") && t.contains("id")) note_id(t["content"].get<std::string>(), t["id"]);
  if (max_id < 0) throw Error("'" + file.string() + "' holds no model.vocab nor added_tokens");

  std::string note = "copied " + file.string();
  copy_into(file, dir / "tokenizer.json");
  const fs::path tokenizer_config = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(tokenizer_config)) {
    copy_into(tokenizer_config, dir / "tokenizer_config.json");
    const json tc = read_json(tokenizer_config);
    if (const auto bos = special_token_id(tc, "bos_token", ids)) config.bos_token_id = *bos;
    if (const auto eos = special_token_id(tc, "eos_token", ids)) {
      if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), *eos) == config.eos_token_ids.end())
        config.eos_token_ids = {*eos};
    }
    note += " and tokenizer_config.json";
  }
  if (config.vocab_size < max_id + 1) {
    note += "; vocab_size raised from " + std::to_string(config.vocab_size) + " to " + std::to_string(max_id + 1);
    config.vocab_size = max_id + 1;
  }
  return note;
}

// Fills a chunk of a tensor with random values encoded as the spec's dtype.
void fill_random(const TensorSpec& spec, LlamaTensorKind kind, uint64_t key, int64_t first, int64_t count, void* out) {
  const bool norm = kind == LlamaTensorKind::Norm;
  const float scale = norm ? kRandomNormNoise : kRandomWeightStd;
  const float offset = norm ? 1.0f : 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    const float v = offset + scale * random_normalish(key, first + i);
    switch (spec.dtype) {
      case DType::F32: static_cast<float*>(out)[i] = v; break;
      case DType::F16: static_cast<uint16_t*>(out)[i] = f32_to_f16(v); break;
      case DType::BF16: static_cast<uint16_t*>(out)[i] = f32_to_bf16(v); break;
    }
  }
}

}  // namespace

std::vector<std::string> model_preset_names() {
  return {"tiny", "llama-3.1-8b", "llama-2-7b", "tinyllama-1.1b", "mistral-7b"};
}

LlamaConfig model_preset(const std::string& name) {
  if (name == "tiny") {
    LlamaConfig c = base_config("LlamaForCausalLM", 512, 64, 176, 2, 4, 2);
    c.max_position_embeddings = 2048;
    c.bos_token_id = 510;  // the synthesized tokenizer's specials sit at the top ids
    c.eos_token_ids = {511};
    return c;
  }
  if (name == "llama-3.1-8b") {
    LlamaConfig c = base_config("LlamaForCausalLM", 128256, 4096, 14336, 32, 32, 8);
    c.rope_theta = 500000.0;
    c.rope_scaling = {RopeScaling::Type::Llama3, 8.0f, 1.0f, 4.0f, 8192};
    c.max_position_embeddings = 131072;
    c.bos_token_id = 128000;
    c.eos_token_ids = {128001, 128008, 128009};
    return c;
  }
  if (name == "llama-2-7b") {
    LlamaConfig c = base_config("LlamaForCausalLM", 32000, 4096, 11008, 32, 32, 32);
    c.max_position_embeddings = 4096;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  if (name == "tinyllama-1.1b") {
    LlamaConfig c = base_config("LlamaForCausalLM", 32000, 2048, 5632, 22, 32, 4);
    c.max_position_embeddings = 2048;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  if (name == "mistral-7b") {  // v0.1
    LlamaConfig c = base_config("MistralForCausalLM", 32000, 4096, 14336, 32, 32, 8);
    c.max_position_embeddings = 32768;
    c.sliding_window = 4096;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  std::string known;
  for (const std::string& n : model_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown preset '" + name + "' (known: " + known + ")");
}

uint64_t random_tensor_key(uint64_t seed, std::string_view tensor_name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char ch : tensor_name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
  return splitmix64(h ^ splitmix64(seed));
}

float random_normalish(uint64_t tensor_key, int64_t index) {
  const uint64_t bits = splitmix64(tensor_key + static_cast<uint64_t>(index) * 0xD1B54A32D192ED03ull);
  // Irwin-Hall with 4 uniforms of 16 bits: mean 2, variance 4/12, rescaled to mean 0, variance 1.
  const float sum = static_cast<float>((bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48));
  constexpr float kInv = 1.0f / 65536.0f;
  constexpr float kSqrt3 = 1.7320508f;
  return (sum * kInv - 2.0f) * kSqrt3;
}

RandomCheckpointResult write_random_checkpoint(const fs::path& dir, RandomCheckpointOptions options) {
  RandomCheckpointResult result;
  LlamaConfig& config = options.config;
  config.dtype = options.dtype;
  // Validate through the same parser that will read config.json back.
  (void)LlamaConfig::from_json(config.to_json(), "generated config for '" + dir.string() + "'");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create folder '" + dir.string() + "': " + ec.message());

  if (options.tokenizer_file) {
    result.tokenizer_note = copy_tokenizer(*options.tokenizer_file, dir, config);
    result.tokenizer_written = true;
  } else if (config.vocab_size <= max_synthesized_vocab_size()) {
    const SynthesizedTokenizer tok = synthesize_byte_level_bpe(config.vocab_size, config.max_position_embeddings);
    write_json(dir / "tokenizer.json", tok.tokenizer);
    write_json(dir / "tokenizer_config.json", tok.tokenizer_config);
    config.bos_token_id = tok.bos_token_id;
    config.eos_token_ids = {tok.eos_token_id};
    result.tokenizer_written = true;
    result.tokenizer_note = "synthesized byte-level BPE tokenizer (" + std::to_string(tok.merge_count) + " merges)";
  } else {
    for (const char* stale : {"tokenizer.json", "tokenizer_config.json"}) fs::remove(dir / stale, ec);
    result.tokenizer_note = "no tokenizer written: vocab_size " + std::to_string(config.vocab_size) +
                            " is too large to synthesize one; pass --tokenizer";
  }

  std::vector<TensorSpec> specs;
  std::map<std::string, std::pair<LlamaTensorKind, uint64_t>> kind_and_key;
  for (const LlamaTensorInfo& info : llama_tensor_layout(config)) {
    specs.push_back({info.name, options.dtype, info.shape});
    kind_and_key[info.name] = {info.kind, random_tensor_key(options.seed, info.name)};
  }
  const TensorFiller filler = [&kind_and_key](const TensorSpec& spec, int64_t first, int64_t count, void* out) {
    const auto& [kind, key] = kind_and_key.at(spec.name);
    fill_random(spec, kind, key, first, count, out);
  };
  result.safetensors_files = write_safetensors_checkpoint(dir, specs, filler, options.max_shard_bytes);

  write_json(dir / "config.json", config.to_json());
  json generation = {{"_from_model_config", true}};
  if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) generation["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) generation["eos_token_id"] = config.eos_token_ids;
  write_json(dir / "generation_config.json", generation);
  result.config = config;
  return result;
}

}  // namespace tessera
