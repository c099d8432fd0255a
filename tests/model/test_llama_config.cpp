// LlamaConfig parsing of real config.json files of each supported family, rope scaling variants,
// round trips through to_json, and error cases (each must name config.json and the key).
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "core/model/llama_config.hpp"
#include "tests/model/test_util.hpp"

namespace tessera {
namespace {

using nlohmann::json;
using test::error_message;

// Published config.json files (abridged only of keys the parser ignores).
const char* kLlama2_7b = R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
  "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "tie_word_embeddings": false, "torch_dtype": "float16", "transformers_version": "4.31.0.dev0",
  "use_cache": true, "vocab_size": 32000})";

const char* kLlama31_8b = R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false,
  "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 128256})";

const char* kLlama32_1b = R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
  "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256})";

const char* kMistral_7b_v01 = R"({"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 32000})";

const char* kMistral_7b_v02 = R"({"architectures": ["MistralForCausalLM"], "attention_dropout": 0.0,
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0, "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "vocab_size": 32000})";

const char* kTinyLlama = R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
  "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 32000})";

LlamaConfig parse(const char* text) { return LlamaConfig::from_json(json::parse(text), "config.json"); }

TEST(LlamaConfig, Llama2) {
  const LlamaConfig c = parse(kLlama2_7b);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 11008);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0);  // absent: transformers' default
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c.dtype, DType::F16);
}

TEST(LlamaConfig, Llama31WithLlama3RopeScaling) {
  const LlamaConfig c = parse(kLlama31_8b);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(c.dtype, DType::BF16);
}

TEST(LlamaConfig, Llama32TiedWithExplicitHeadDim) {
  const LlamaConfig c = parse(kLlama32_1b);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_scaling.factor, 32.0f);
  // head_dim need not be hidden/heads when given.
  json j = json::parse(kLlama32_1b);
  j["head_dim"] = 96;
  EXPECT_EQ(LlamaConfig::from_json(j, "config.json").head_dim, 96);
}

TEST(LlamaConfig, MistralSlidingWindowIntOrNull) {
  const LlamaConfig v1 = parse(kMistral_7b_v01);
  EXPECT_EQ(v1.architecture, "MistralForCausalLM");
  EXPECT_EQ(v1.sliding_window, 4096);
  EXPECT_EQ(v1.num_kv_heads, 8);
  const LlamaConfig v2 = parse(kMistral_7b_v02);
  EXPECT_FALSE(v2.sliding_window.has_value());
  EXPECT_EQ(v2.rope_theta, 1000000.0);
}

TEST(LlamaConfig, TinyLlama) {
  const LlamaConfig c = parse(kTinyLlama);
  EXPECT_EQ(c.num_layers, 22);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 5632);
}

TEST(LlamaConfig, DefaultsAndAlternativeKeys) {
  json j = json::parse(kLlama2_7b);
  j.erase("num_key_value_heads");
  j.erase("rms_norm_eps");
  j.erase("tie_word_embeddings");
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";  // newer transformers write "dtype"
  j.erase("architectures");  // model_type alone is enough
  const LlamaConfig c = LlamaConfig::from_json(j, "config.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, DType::BF16);
}

TEST(LlamaConfig, RopeScalingVariants) {
  json j = json::parse(kLlama2_7b);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};  // older key name "type"
  LlamaConfig c = LlamaConfig::from_json(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_EQ(c.rope_scaling.factor, 2.0f);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(LlamaConfig::from_json(j, "config.json").rope_scaling.type, RopeScaling::Type::None);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(LlamaConfig::from_json(j, "config.json").rope_scaling.type, RopeScaling::Type::None);
}

TEST(LlamaConfig, ToJsonRoundTrips) {
  for (const char* text : {kLlama2_7b, kLlama31_8b, kLlama32_1b, kMistral_7b_v01, kMistral_7b_v02, kTinyLlama}) {
    const LlamaConfig a = parse(text);
    const json written = a.to_json();
    const LlamaConfig b = LlamaConfig::from_json(written, "written");
    EXPECT_EQ(written, b.to_json());
    EXPECT_EQ(b.architecture, a.architecture);
    EXPECT_EQ(b.num_kv_heads, a.num_kv_heads);
    EXPECT_EQ(b.head_dim, a.head_dim);
    EXPECT_EQ(b.rms_norm_eps, a.rms_norm_eps);
    EXPECT_EQ(b.rope_scaling.type, a.rope_scaling.type);
    EXPECT_EQ(b.rope_scaling.factor, a.rope_scaling.factor);
    EXPECT_EQ(b.sliding_window, a.sliding_window);
    EXPECT_EQ(b.eos_token_ids, a.eos_token_ids);
    EXPECT_EQ(b.tie_word_embeddings, a.tie_word_embeddings);
    EXPECT_EQ(b.dtype, a.dtype);
  }
  EXPECT_EQ(parse(kLlama2_7b).to_json()["rms_norm_eps"].dump(), "1e-05");
  EXPECT_EQ(parse(kLlama31_8b).to_json()["eos_token_id"], json::parse("[128001, 128008, 128009]"));
}

// Each edit of Llama 2's config must be rejected with a message naming the file and `key`.
void expect_rejected(const std::string& key, const std::function<void(json&)>& edit) {
  json j = json::parse(kLlama2_7b);
  edit(j);
  const std::string msg = error_message([&] { LlamaConfig::from_json(j, "/models/x/config.json"); });
  EXPECT_NE(msg.find("/models/x/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find(key), std::string::npos) << "key '" << key << "' not in: " << msg;
}

TEST(LlamaConfigErrors, NameFileAndKey) {
  expect_rejected("architectures", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  expect_rejected("GPT2LMHeadModel", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  expect_rejected("num_attention_heads", [](json& j) { j["num_attention_heads"] = 30; });
  expect_rejected("num_key_value_heads", [](json& j) { j["num_key_value_heads"] = 5; });
  expect_rejected("rope_scaling.rope_type", [](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; });
  expect_rejected("rope_scaling.type", [](json& j) { j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}}; });
  expect_rejected("rope_scaling.low_freq_factor", [](json& j) {
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
  });
  expect_rejected("rope_scaling.factor", [](json& j) { j["rope_scaling"] = {{"rope_type", "linear"}}; });
  expect_rejected("attention_bias", [](json& j) { j["attention_bias"] = true; });
  expect_rejected("mlp_bias", [](json& j) { j["mlp_bias"] = true; });
  expect_rejected("hidden_size", [](json& j) { j.erase("hidden_size"); });
  expect_rejected("hidden_size", [](json& j) { j["hidden_size"] = "4096"; });
  expect_rejected("vocab_size", [](json& j) { j["vocab_size"] = -5; });
  expect_rejected("intermediate_size", [](json& j) { j["intermediate_size"] = 11008.5; });
  expect_rejected("eos_token_id", [](json& j) { j["eos_token_id"] = {2, "x"}; });
  expect_rejected("torch_dtype", [](json& j) { j["torch_dtype"] = "int8"; });
  expect_rejected("tie_word_embeddings", [](json& j) { j["tie_word_embeddings"] = "yes"; });
  expect_rejected("hidden_act", [](json& j) { j["hidden_act"] = "gelu"; });
  expect_rejected("sliding_window", [](json& j) { j["sliding_window"] = 0; });
}

TEST(LlamaConfigErrors, LoadNamesThePath) {
  test::TempDir dir;
  std::string msg = error_message([&] { LlamaConfig::load(dir.path()); });
  EXPECT_NE(msg.find((dir / "config.json").string()), std::string::npos) << msg;
  test::write_text(dir / "config.json", "{\"vocab_size\": 12,");
  msg = error_message([&] { LlamaConfig::load(dir.path()); });
  EXPECT_NE(msg.find((dir / "config.json").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("JSON"), std::string::npos) << msg;
  test::write_text(dir / "config.json", kTinyLlama);
  EXPECT_EQ(LlamaConfig::load(dir.path()).num_layers, 22);
}

}  // namespace
}  // namespace tessera
