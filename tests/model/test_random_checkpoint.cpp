// The checkpoint generator: presets, deterministic random values, written folder contents, the
// synthesized byte-level BPE tokenizer and copying a given tokenizer.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/model/llama_tensors.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/model/safetensors.hpp"
#include "core/model/synthetic_tokenizer.hpp"
#include "tests/model/test_util.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::error_message;
using test::TempDir;

TEST(Presets, Llama31_8b) {
  const LlamaConfig c = model_preset("llama-3.1-8b");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_FALSE(c.tie_word_embeddings);
  // Published parameter counts of the real models.
  EXPECT_EQ(llama_parameter_count(c), 8'030'261'248);
  EXPECT_EQ(llama_parameter_count(model_preset("llama-2-7b")), 6'738'415'616);
  EXPECT_EQ(llama_parameter_count(model_preset("tinyllama-1.1b")), 1'100'048'384);
  EXPECT_EQ(llama_parameter_count(model_preset("mistral-7b")), 7'241'732'096);
}

TEST(Presets, EveryPresetIsAValidConfigAndUnknownIsAnError) {
  for (const std::string& name : model_preset_names()) {
    const LlamaConfig c = model_preset(name);
    EXPECT_NO_THROW(LlamaConfig::from_json(c.to_json(), name)) << name;
  }
  const LlamaConfig tiny = model_preset("tiny");
  EXPECT_EQ(tiny.vocab_size, 512);
  EXPECT_EQ(tiny.hidden_size, 64);
  EXPECT_EQ(tiny.num_layers, 2);
  EXPECT_EQ(tiny.num_heads, 4);
  EXPECT_EQ(tiny.num_kv_heads, 2);
  EXPECT_EQ(tiny.intermediate_size, 176);
  EXPECT_NE(error_message([] { model_preset("gpt-5"); }).find("'gpt-5'"), std::string::npos);
}

TEST(RandomValues, DeterministicAndRoughlyStandardNormal) {
  const uint64_t key = random_tensor_key(1, "model.norm.weight");
  EXPECT_EQ(random_normalish(key, 12345), random_normalish(key, 12345));
  EXPECT_NE(key, random_tensor_key(2, "model.norm.weight"));
  EXPECT_NE(key, random_tensor_key(1, "model.norm.bias"));
  const int n = 200000;
  double sum = 0, sq = 0, max_abs = 0;
  for (int i = 0; i < n; ++i) {
    const double v = random_normalish(key, i);
    sum += v;
    sq += v * v;
    max_abs = std::max(max_abs, std::abs(v));
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / n), 1.0, 0.01);
  EXPECT_LE(max_abs, 2.0 * std::sqrt(3.0) + 1e-6);  // bounded: sum of 4 uniforms
}

TEST(RandomCheckpoint, WritesConfigWeightsAndTokenizer) {
  TempDir dir;
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.config.num_layers = 3;
  const RandomCheckpointResult result = write_random_checkpoint(dir.path(), options);
  EXPECT_TRUE(result.tokenizer_written);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const LlamaConfig c = LlamaConfig::load(dir.path());
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.dtype, DType::BF16);
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint.tensor_names().size(), llama_tensor_layout(c).size());
  for (const LlamaTensorInfo& info : llama_tensor_layout(c)) EXPECT_EQ(checkpoint.entry(info.name).shape, info.shape);

  // Same seed -> identical bytes; another seed -> different weights.
  TempDir again, other;
  write_random_checkpoint(again.path(), options);
  EXPECT_EQ(test::read_text(dir / "model.safetensors"), test::read_text(again / "model.safetensors"));
  options.seed = 1;
  write_random_checkpoint(other.path(), options);
  EXPECT_NE(test::read_text(dir / "model.safetensors"), test::read_text(other / "model.safetensors"));
}

TEST(SynthesizedTokenizer, ByteLevelCharactersAreGpt2s) {
  EXPECT_EQ(byte_level_char(' '), "\u0120");   // Ġ
  EXPECT_EQ(byte_level_char('\n'), "\u010A");  // Ċ
  EXPECT_EQ(byte_level_char(0), "\u0100");     // Ā
  EXPECT_EQ(byte_level_char('A'), "A");
  EXPECT_EQ(byte_level_char(0xAD), "\u0143");  // the soft hyphen, GPT-2's last remapped byte below 0xFF
}

TEST(SynthesizedTokenizer, TinyVocabularyIsExactAndConsistent) {
  TempDir dir;
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  write_random_checkpoint(dir.path(), options);
  const json tok = json::parse(test::read_text(dir / "tokenizer.json"));
  const json tc = json::parse(test::read_text(dir / "tokenizer_config.json"));
  const LlamaConfig c = LlamaConfig::load(dir.path());

  const json& vocab = tok["model"]["vocab"];
  ASSERT_EQ(vocab.size(), 510u);
  std::set<int> ids;
  for (const auto& [token, id] : vocab.items()) ids.insert(id.get<int>());
  EXPECT_EQ(ids.size(), 510u);
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), 509);
  EXPECT_EQ(vocab["!"], 0);  // GPT-2 byte order, as in Llama 3
  EXPECT_EQ(vocab["\u0120"], 220);
  for (int b = 0; b < 256; ++b) EXPECT_LT(vocab.at(byte_level_char(static_cast<unsigned char>(b))).get<int>(), 256);

  // Every merge joins two vocab tokens into a vocab token.
  ASSERT_EQ(tok["model"]["merges"].size(), 254u);
  for (const json& m : tok["model"]["merges"]) {
    const std::string merge = m;
    const size_t space = merge.find(' ');
    ASSERT_NE(space, std::string::npos) << merge;
    EXPECT_TRUE(vocab.contains(merge.substr(0, space))) << merge;
    EXPECT_TRUE(vocab.contains(merge.substr(space + 1))) << merge;
    EXPECT_TRUE(vocab.contains(merge.substr(0, space) + merge.substr(space + 1))) << merge;
  }
  EXPECT_TRUE(vocab.contains("\u0120the"));  // the most common word of the training text

  // Special tokens at the top ids, agreeing with config.json and tokenizer_config.json.
  ASSERT_EQ(tok["added_tokens"].size(), 2u);
  EXPECT_EQ(tok["added_tokens"][0]["content"], "<|begin_of_text|>");
  EXPECT_EQ(tok["added_tokens"][0]["id"], 510);
  EXPECT_EQ(tok["added_tokens"][1]["content"], "<|end_of_text|>");
  EXPECT_EQ(tok["added_tokens"][1]["id"], 511);
  EXPECT_EQ(c.bos_token_id, 510);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{511});
  EXPECT_EQ(tc["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(tc["eos_token"], "<|end_of_text|>");

  const json& pre = tok["pre_tokenizer"];
  EXPECT_EQ(pre["type"], "Sequence");
  EXPECT_EQ(pre["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(pre["pretokenizers"][0]["pattern"]["Regex"], kLlama3SplitPattern);
  EXPECT_EQ(pre["pretokenizers"][0]["behavior"], "Isolated");
  EXPECT_EQ(pre["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(pre["pretokenizers"][1]["add_prefix_space"], false);
  EXPECT_EQ(pre["pretokenizers"][1]["use_regex"], false);
  EXPECT_EQ(tok["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(tok["post_processor"]["type"], "TemplateProcessing");
  EXPECT_EQ(tok["post_processor"]["special_tokens"]["<|begin_of_text|>"]["ids"], json::array({510}));
  EXPECT_EQ(tok["model"]["type"], "BPE");
}

TEST(SynthesizedTokenizer, OtherSizesAndLimits) {
  const SynthesizedTokenizer small = synthesize_byte_level_bpe(258, 128);
  EXPECT_EQ(small.merge_count, 0);
  EXPECT_EQ(small.bos_token_id, 256);
  const int max = max_synthesized_vocab_size();
  EXPECT_GE(max, 512);  // the tiny preset's vocab
  const SynthesizedTokenizer largest = synthesize_byte_level_bpe(max, 128);
  EXPECT_EQ(largest.tokenizer["model"]["vocab"].size(), static_cast<size_t>(max - 2));
  EXPECT_NE(error_message([&] { synthesize_byte_level_bpe(max + 1, 128); }).find("vocab_size"), std::string::npos);
  EXPECT_NE(error_message([] { synthesize_byte_level_bpe(100, 128); }).find("vocab_size 100"), std::string::npos);
}

TEST(RandomCheckpoint, LargeVocabWithoutTokenizerWritesNone) {
  TempDir dir;
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.config.vocab_size = 20000;
  options.dtype = DType::F16;
  const RandomCheckpointResult result = write_random_checkpoint(dir.path(), options);
  EXPECT_FALSE(result.tokenizer_written);
  EXPECT_FALSE(fs::exists(dir / "tokenizer.json"));
  EXPECT_NE(result.tokenizer_note.find("--tokenizer"), std::string::npos);
}

TEST(RandomCheckpoint, CopiesGivenTokenizerAndFitsVocabAndSpecialIds) {
  TempDir src, dir;
  json tok = {{"model", {{"type", "BPE"}, {"vocab", json::object()}, {"merges", json::array()}}},
              {"added_tokens", json::array()}};
  for (int i = 0; i < 998; ++i) tok["model"]["vocab"][std::to_string(i).insert(0, 1, 't')] = i;
  tok["added_tokens"].push_back({{"id", 998}, {"content", "<s>"}, {"special", true}});
  tok["added_tokens"].push_back({{"id", 999}, {"content", "</s>"}, {"special", true}});
  test::write_text(src / "tokenizer.json", tok.dump());
  test::write_text(src / "tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})");

  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.tokenizer_file = src / "tokenizer.json";
  const RandomCheckpointResult result = write_random_checkpoint(dir.path(), options);
  EXPECT_TRUE(result.tokenizer_written);
  EXPECT_EQ(test::read_text(dir / "tokenizer.json"), tok.dump());
  EXPECT_TRUE(fs::exists(dir / "tokenizer_config.json"));
  const LlamaConfig c = LlamaConfig::load(dir.path());
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.bos_token_id, 998);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{999});
  EXPECT_EQ(Checkpoint::open(dir.path()).entry("lm_head.weight").shape, (std::vector<int64_t>{1000, 64}));
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// With the real Llama 3 tokenizer (fetched by tools/setup) the tiny model's vocab grows to cover it and
// bos/eos follow its tokenizer_config.json.
TEST(RandomCheckpoint, CopiesRealLlama3Tokenizer) {
  const fs::path src = fs::path(TESSERA_FETCHED_DATA_DIR) / "llama3";
  if (!fs::exists(src / "tokenizer.json")) GTEST_SKIP() << "no " << src << " (run tools/setup)";
  const json tok = json::parse(test::read_text(src / "tokenizer.json"));
  const json tc = json::parse(test::read_text(src / "tokenizer_config.json"));
  int max_id = 0;
  std::map<std::string, int> added;
  for (const json& t : tok["added_tokens"]) {
    added[t["content"]] = t["id"];
    max_id = std::max(max_id, t["id"].get<int>());
  }
  auto content = [](const json& v) { return v.is_string() ? v.get<std::string>() : v["content"].get<std::string>(); };

  TempDir dir;
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.config.num_layers = 1;
  options.tokenizer_file = src / "tokenizer.json";
  write_random_checkpoint(dir.path(), options);
  const LlamaConfig c = LlamaConfig::load(dir.path());
  EXPECT_EQ(c.vocab_size, max_id + 1);
  EXPECT_EQ(c.bos_token_id, added.at(content(tc["bos_token"])));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{added.at(content(tc["eos_token"]))});
}

}  // namespace
}  // namespace tessera
