// LlamaWeights::load on tiny checkpoints written by the generator library: shapes, values, tied and
// untied embeddings, sharded folders, and the errors for missing tensors and wrong shapes.
#include <gtest/gtest.h>

#include <functional>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/model/llama_tensors.hpp"
#include "core/model/llama_weights.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/model/safetensors.hpp"
#include "tests/model/test_util.hpp"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using test::error_message;
using test::TempDir;

RandomCheckpointResult write_tiny(const fs::path& dir, DType dtype, bool tied, uint64_t shard_bytes = 5'000'000'000) {
  RandomCheckpointOptions options;
  options.config = model_preset("tiny");
  options.config.tie_word_embeddings = tied;
  options.dtype = dtype;
  options.seed = 7;
  options.max_shard_bytes = shard_bytes;
  return write_random_checkpoint(dir, options);
}

// The value the generator must have stored at `index` of `name`, decoded back to FP32.
float expected_value(const std::string& name, int64_t index, LlamaTensorKind kind, DType dtype) {
  const float std_or_noise = kind == LlamaTensorKind::Norm ? kRandomNormNoise : kRandomWeightStd;
  const float v = (kind == LlamaTensorKind::Norm ? 1.0f : 0.0f) +
                  std_or_noise * random_normalish(random_tensor_key(7, name), index);
  return dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(test::read_text(dir / "config.json"));
  edit(j);
  test::write_text(dir / "config.json", j.dump());
}

TEST(LlamaWeights, LoadsUntiedTinyBf16) {
  TempDir dir;
  write_tiny(dir.path(), DType::BF16, false);
  const LlamaWeights w = LlamaWeights::load(dir.path());
  EXPECT_EQ(w.config.num_layers, 2);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.embed_tokens.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(w.lm_head.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_NE(w.lm_head.data, w.embed_tokens.data);
  EXPECT_EQ(w.final_norm.shape, std::vector<int64_t>{64});
  const LlamaLayerWeights& l = w.layers[1];
  EXPECT_EQ(l.q_proj.shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(l.k_proj.shape, (std::vector<int64_t>{32, 64}));  // 2 kv heads x 16
  EXPECT_EQ(l.v_proj.shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(l.o_proj.shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(l.gate_proj.shape, (std::vector<int64_t>{176, 64}));
  EXPECT_EQ(l.up_proj.shape, (std::vector<int64_t>{176, 64}));
  EXPECT_EQ(l.down_proj.shape, (std::vector<int64_t>{64, 176}));
  EXPECT_EQ(l.input_norm.shape, std::vector<int64_t>{64});

  // Values are the generator's, through BF16.
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{4095}, int64_t{176 * 64 - 1}})
    EXPECT_EQ(l.down_proj.data[i], expected_value("model.layers.1.mlp.down_proj.weight", i, LlamaTensorKind::Linear,
                                                  DType::BF16));
  EXPECT_EQ(w.final_norm.data[3], expected_value("model.norm.weight", 3, LlamaTensorKind::Norm, DType::BF16));
  EXPECT_EQ(w.lm_head.data[100], expected_value("lm_head.weight", 100, LlamaTensorKind::Linear, DType::BF16));
  // Norm weights sit near 1, linear weights near 0 with std ~0.02.
  double norm_sum = 0, sq = 0;
  for (int64_t i = 0; i < 64; ++i) norm_sum += l.post_attn_norm.data[i];
  for (int64_t i = 0; i < w.embed_tokens.numel(); ++i) sq += double(w.embed_tokens.data[i]) * w.embed_tokens.data[i];
  EXPECT_NEAR(norm_sum / 64, 1.0, 0.02);
  EXPECT_NEAR(std::sqrt(sq / w.embed_tokens.numel()), 0.02, 0.002);
}

TEST(LlamaWeights, F32IsZeroCopyAndMatchesBf16Rounding) {
  TempDir f32_dir, bf16_dir;
  write_tiny(f32_dir.path(), DType::F32, false);
  write_tiny(bf16_dir.path(), DType::BF16, false);
  const LlamaWeights f32 = LlamaWeights::load(f32_dir.path());
  const LlamaWeights bf16 = LlamaWeights::load(bf16_dir.path());
  // Zero-copy: the tensor sits in a map of the file, at the same offset within its page as in another map.
  const Checkpoint checkpoint = Checkpoint::open(f32_dir.path());
  const auto page_offset = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 4096; };
  EXPECT_EQ(page_offset(f32.layers[0].q_proj.data),
            page_offset(checkpoint.tensor("model.layers.0.self_attn.q_proj.weight").data));
  for (int64_t i = 0; i < f32.layers[0].q_proj.numel(); ++i) {
    ASSERT_EQ(f32.layers[0].q_proj.data[i], expected_value("model.layers.0.self_attn.q_proj.weight", i,
                                                           LlamaTensorKind::Linear, DType::F32));
    ASSERT_EQ(bf16.layers[0].q_proj.data[i], bf16_to_f32(f32_to_bf16(f32.layers[0].q_proj.data[i])));
  }
}

TEST(LlamaWeights, TiedEmbeddingsShareStorage) {
  TempDir dir;
  write_tiny(dir.path(), DType::BF16, true);
  EXPECT_FALSE(Checkpoint::open(dir.path()).contains("lm_head.weight"));
  const LlamaWeights w = LlamaWeights::load(dir.path());
  EXPECT_TRUE(w.config.tie_word_embeddings);
  EXPECT_EQ(w.lm_head.data, w.embed_tokens.data);
  EXPECT_EQ(w.lm_head.shape, w.embed_tokens.shape);
}

TEST(LlamaWeights, ShardedFolderLoadsTheSameValues) {
  TempDir single_dir, sharded_dir;
  write_tiny(single_dir.path(), DType::F16, false);
  const auto sharded = write_tiny(sharded_dir.path(), DType::F16, false, 40'000);
  EXPECT_GT(sharded.safetensors_files.size(), 3u);
  EXPECT_TRUE(fs::exists(sharded_dir / "model.safetensors.index.json"));
  const LlamaWeights a = LlamaWeights::load(single_dir.path());
  const LlamaWeights b = LlamaWeights::load(sharded_dir.path());
  for (int64_t i = 0; i < a.lm_head.numel(); ++i) ASSERT_EQ(a.lm_head.data[i], b.lm_head.data[i]);
  for (int64_t i = 0; i < a.layers[1].up_proj.numel(); ++i) ASSERT_EQ(a.layers[1].up_proj.data[i], b.layers[1].up_proj.data[i]);
}

TEST(LlamaWeightsErrors, MissingLmHeadWhenUntied) {
  TempDir dir;
  write_tiny(dir.path(), DType::BF16, true);
  edit_config(dir.path(), [](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
  const std::string msg = error_message([&] { LlamaWeights::load(dir.path()); });
  EXPECT_NE(msg.find("'lm_head.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

TEST(LlamaWeightsErrors, MissingLayerTensor) {
  TempDir dir;
  write_tiny(dir.path(), DType::BF16, false);
  edit_config(dir.path(), [](nlohmann::json& j) { j["num_hidden_layers"] = 3; });
  const std::string msg = error_message([&] { LlamaWeights::load(dir.path()); });
  EXPECT_NE(msg.find("'model.layers.2.input_layernorm.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

TEST(LlamaWeightsErrors, WrongShape) {
  TempDir dir;
  write_tiny(dir.path(), DType::BF16, false);
  edit_config(dir.path(), [](nlohmann::json& j) { j["intermediate_size"] = 180; });
  const std::string msg = error_message([&] { LlamaWeights::load(dir.path()); });
  EXPECT_NE(msg.find("'model.layers.0.mlp.gate_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find((dir / "model.safetensors").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("[176, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[180, 64]"), std::string::npos) << msg;
}

TEST(LlamaWeightsErrors, MissingConfigOrWeights) {
  TempDir dir;
  EXPECT_NE(error_message([&] { LlamaWeights::load(dir.path()); }).find("config.json"), std::string::npos);
  write_tiny(dir.path(), DType::BF16, false);
  fs::remove(dir / "model.safetensors");
  const std::string msg = error_message([&] { LlamaWeights::load(dir.path()); });
  EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
}

}  // namespace
}  // namespace tessera
