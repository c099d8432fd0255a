#include "core/model/llama_config.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"

namespace tessera {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Reads the keys of one config.json object; every message names the source file and the key.
class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(source_ + ": key '" + key + "' " + what);
  }
  // Absent and null both count as "not given".
  const json* find(const std::string& key) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  static bool is_integral(const json& v) {
    return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  }
  int get_int(const json& v, const std::string& key) const {
    if (!is_integral(v)) fail(key, "must be an integer, got " + v.dump());
    const double d = v.get<double>();
    if (d < -2147483648.0 || d > 2147483647.0) fail(key, "is out of range: " + v.dump());
    return static_cast<int>(v.get<int64_t>());
  }
  int required_positive_int(const std::string& key) const {
    const json* v = find(key);
    if (v == nullptr) fail(key, "is missing");
    const int value = get_int(*v, key);
    if (value <= 0) fail(key, "must be positive, got " + std::to_string(value));
    return value;
  }
  int optional_positive_int(const std::string& key, int fallback) const {
    const json* v = find(key);
    return v == nullptr ? fallback : positive(get_int(*v, key), key);
  }
  int positive(int value, const std::string& key) const {
    if (value <= 0) fail(key, "must be positive, got " + std::to_string(value));
    return value;
  }
  double optional_number(const std::string& key, double fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) fail(key, "must be a number, got " + v->dump());
    return v->get<double>();
  }
  bool optional_bool(const std::string& key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(key, "must be true or false, got " + v->dump());
    return v->get<bool>();
  }

 private:
  const json& j_;
  const std::string& source_;
};

RopeScaling parse_rope_scaling(const json& j, const std::string& source) {
  RopeScaling rs;
  if (!j.is_object()) throw Error(source + ": key 'rope_scaling' must be an object or null, got " + j.dump());
  const ConfigReader r(j, source);
  std::string key = "rope_scaling.rope_type";
  const json* type = r.find("rope_type");
  if (type == nullptr) {
    key = "rope_scaling.type";
    type = r.find("type");
  }
  if (type == nullptr) throw Error(source + ": key 'rope_scaling.rope_type' is missing");
  if (!type->is_string()) throw Error(source + ": key '" + key + "' must be a string, got " + type->dump());
  const std::string name = type->get<std::string>();
  if (name == "default") return rs;
  if (name != "linear" && name != "llama3")
    throw Error(source + ": key '" + key + "' has unsupported value '" + name + "' (supported: default, linear, llama3)");

  auto number = [&](const char* field) {
    const json* v = r.find(field);
    const std::string full = std::string("rope_scaling.") + field;
    if (v == nullptr) throw Error(source + ": key '" + full + "' is missing");
    if (!v->is_number() || v->get<double>() <= 0) throw Error(source + ": key '" + full + "' must be a positive number");
    return v->get<double>();
  };
  rs.factor = static_cast<float>(number("factor"));
  if (name == "linear") {
    rs.type = RopeScaling::Type::Linear;
    return rs;
  }
  rs.type = RopeScaling::Type::Llama3;
  rs.low_freq_factor = static_cast<float>(number("low_freq_factor"));
  rs.high_freq_factor = static_cast<float>(number("high_freq_factor"));
  const double original = number("original_max_position_embeddings");
  if (std::floor(original) != original)
    throw Error(source + ": key 'rope_scaling.original_max_position_embeddings' must be an integer");
  rs.original_max_position_embeddings = static_cast<int>(original);
  if (rs.high_freq_factor <= rs.low_freq_factor)
    throw Error(source + ": key 'rope_scaling.high_freq_factor' must exceed low_freq_factor");
  return rs;
}

DType parse_dtype(const json& v, const std::string& key, const std::string& source) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "float32") return DType::F32;
    if (s == "float16") return DType::F16;
    if (s == "bfloat16") return DType::BF16;
  }
  throw Error(source + ": key '" + key + "' has unsupported value " + v.dump() + " (float32, float16 or bfloat16)");
}

// FP32 values written as their shortest decimal (1e-05, not 9.999999747378752e-06).
double tidy(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(v));
  return std::strtod(buf, nullptr);
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
  }
  return "float32";
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": config is not a JSON object");
  const ConfigReader r(j, source);
  LlamaConfig c;

  if (const json* archs = r.find("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      r.fail("architectures", "must be a non-empty list of strings");
    c.architecture = (*archs)[0].get<std::string>();
  } else if (const json* model_type = r.find("model_type"); model_type && model_type->is_string()) {
    const std::string type = model_type->get<std::string>();
    c.architecture = type == "llama" ? "LlamaForCausalLM" : type == "mistral" ? "MistralForCausalLM" : type;
  } else {
    r.fail("architectures", "is missing (and no model_type)");
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM")
    r.fail("architectures", "names unsupported architecture '" + c.architecture +
                                "' (supported: LlamaForCausalLM, MistralForCausalLM)");

  c.vocab_size = r.required_positive_int("vocab_size");
  c.hidden_size = r.required_positive_int("hidden_size");
  c.intermediate_size = r.required_positive_int("intermediate_size");
  c.num_layers = r.required_positive_int("num_hidden_layers");
  c.num_heads = r.required_positive_int("num_attention_heads");
  c.num_kv_heads = r.optional_positive_int("num_key_value_heads", c.num_heads);
  if (r.find("head_dim") != nullptr) {
    c.head_dim = r.optional_positive_int("head_dim", 0);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      r.fail("num_attention_heads", "(" + std::to_string(c.num_heads) + ") does not divide hidden_size (" +
                                        std::to_string(c.hidden_size) + ")");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_kv_heads) + ") does not divide num_attention_heads (" +
                                      std::to_string(c.num_heads) + ")");

  // Defaults below are those of transformers' LlamaConfig for keys a config.json omits.
  c.rms_norm_eps = static_cast<float>(r.optional_number("rms_norm_eps", 1e-6));
  if (c.rms_norm_eps <= 0) r.fail("rms_norm_eps", "must be positive");
  c.rope_theta = r.optional_number("rope_theta", 10000.0);
  if (c.rope_theta <= 0) r.fail("rope_theta", "must be positive");
  if (const json* rs = r.find("rope_scaling")) c.rope_scaling = parse_rope_scaling(*rs, source);
  // transformers 5 writes `rope_parameters` ({rope_theta, rope_type, scaling fields}) instead of the two keys above.
  if (const json* rp = r.find("rope_parameters"); rp != nullptr && !rp->is_null()) {
    if (!rp->is_object()) r.fail("rope_parameters", "must be an object, got " + rp->dump());
    const ConfigReader params(*rp, source);
    c.rope_theta = params.optional_number("rope_theta", c.rope_theta);
    if (c.rope_theta <= 0) r.fail("rope_parameters.rope_theta", "must be positive");
    if (rp->contains("rope_type") || rp->contains("type")) c.rope_scaling = parse_rope_scaling(*rp, source);
  }
  c.max_position_embeddings = r.optional_positive_int("max_position_embeddings", 2048);
  if (const json* sw = r.find("sliding_window")) c.sliding_window = r.positive(r.get_int(*sw, "sliding_window"), "sliding_window");
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);

  if (const json* bos = r.find("bos_token_id")) c.bos_token_id = r.get_int(*bos, "bos_token_id");
  if (const json* eos = r.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const json& id : *eos) c.eos_token_ids.push_back(r.get_int(id, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(r.get_int(*eos, "eos_token_id"));
    }
  }
  if (const json* dt = r.find("torch_dtype")) {
    c.dtype = parse_dtype(*dt, "torch_dtype", source);
  } else if (const json* dt2 = r.find("dtype")) {
    c.dtype = parse_dtype(*dt2, "dtype", source);
  }

  // Features the engine does not implement must not be silently ignored.
  if (r.optional_bool("attention_bias", false)) r.fail("attention_bias", "is true; biased attention is unsupported");
  if (r.optional_bool("mlp_bias", false)) r.fail("mlp_bias", "is true; biased MLP is unsupported");
  if (const json* act = r.find("hidden_act"); act && *act != "silu")
    r.fail("hidden_act", "is " + act->dump() + "; only silu is supported");
  return c;
}

LlamaConfig LlamaConfig::load(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  std::ifstream in(path);
  if (!in) throw Error("cannot open '" + path.string() + "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error("invalid JSON in '" + path.string() + "': " + e.what());
  }
  return from_json(j, path.string());
}

json LlamaConfig::to_json() const {
  json j;
  j["architectures"] = {architecture};
  j["model_type"] = architecture == "MistralForCausalLM" ? "mistral" : "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = tidy(rms_norm_eps);
  j["rope_theta"] = rope_theta;
  switch (rope_scaling.type) {
    case RopeScaling::Type::None:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Type::Linear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", tidy(rope_scaling.factor)}};
      break;
    case RopeScaling::Type::Llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", tidy(rope_scaling.factor)},
                           {"low_freq_factor", tidy(rope_scaling.low_freq_factor)},
                           {"high_freq_factor", tidy(rope_scaling.high_freq_factor)},
                           {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  if (sliding_window) j["sliding_window"] = *sliding_window;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  j["torch_dtype"] = torch_dtype_name(dtype);
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  return j;
}

}  // namespace tessera
