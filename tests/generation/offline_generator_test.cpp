// Offline generation on a tiny random checkpoint (written by the tessera-model library, with its synthesized
// tokenizer): determinism, stop conditions, streaming callbacks, and input validation.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/random_checkpoint.hpp"
#include "core/tokenizer/tokenizer.hpp"

namespace tessera {
namespace {

class OfflineGeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("tessera_gen_test_" + std::to_string(::getpid())));
    RandomCheckpointOptions options;
    options.config = model_preset("tiny");
    options.dtype = DType::F32;
    options.seed = 3;
    write_random_checkpoint(*dir_, options);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    weights_ = std::make_shared<const LlamaWeights>(LlamaWeights::load(*dir_));
    auto tokenizer = Tokenizer::load_dir(*dir_);
    ASSERT_TRUE(tokenizer.has_value());
    tokenizer_ = std::make_shared<const Tokenizer>(*tokenizer);
  }

  static std::filesystem::path* dir_;
  std::shared_ptr<const LlamaWeights> weights_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};
std::filesystem::path* OfflineGeneratorTest::dir_ = nullptr;

SamplingParams sampled(uint64_t seed, int max_tokens) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.seed = seed;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

TEST_F(OfflineGeneratorTest, SameSeedSameOutputDifferentSeedDifferentOutput) {
  OfflineGenerator generator(weights_, tokenizer_);
  const std::vector<int32_t> prompt = tokenizer_->encode("Once upon a time", true);
  const auto a = generator.generate(prompt, sampled(11, 40));
  const auto b = generator.generate(prompt, sampled(11, 40));
  const auto c = generator.generate(prompt, sampled(12, 40));
  EXPECT_EQ(a.token_ids, b.token_ids);
  EXPECT_EQ(a.text, b.text);
  EXPECT_NE(a.token_ids, c.token_ids);
  EXPECT_EQ(a.token_ids.size(), 40u);
  EXPECT_EQ(a.finish_reason, FinishReason::Length);
}

TEST_F(OfflineGeneratorTest, StreamedTextEqualsDecodedIdsAndChunkSizeDoesNotMatter) {
  const std::vector<int32_t> prompt = tokenizer_->encode("The quick brown fox jumps over the lazy dog", true);
  OfflineGenerator whole(weights_, tokenizer_, 16, 512);
  OfflineGenerator chunked(weights_, tokenizer_, 4, 3);
  std::string streamed;
  std::vector<int32_t> streamed_ids;
  const auto a = whole.generate(prompt, sampled(5, 30), [&](int32_t id, std::string_view text) {
    streamed_ids.push_back(id);
    streamed += text;
  });
  const auto b = chunked.generate(prompt, sampled(5, 30));
  EXPECT_EQ(streamed_ids, a.token_ids);
  EXPECT_EQ(streamed, a.text);
  EXPECT_EQ(a.text, tokenizer_->decode(a.token_ids, true));
  EXPECT_EQ(a.token_ids, b.token_ids);  // chunked prefill and block size change nothing
}

TEST_F(OfflineGeneratorTest, StopStringCutsTextAndEndsGeneration) {
  OfflineGenerator generator(weights_, tokenizer_);
  const std::vector<int32_t> prompt = tokenizer_->encode("Hello", true);
  const auto free_run = generator.generate(prompt, sampled(9, 60));
  const std::string full = tokenizer_->decode(free_run.token_ids, true);
  ASSERT_GE(full.size(), 12u);
  // A stop string taken from the middle of what the model will say.
  const std::string stop = full.substr(8, 3);
  SamplingParams params = sampled(9, 60);
  params.stop = {stop};
  const auto stopped = generator.generate(prompt, params);
  EXPECT_EQ(stopped.finish_reason, FinishReason::Stop);
  ASSERT_TRUE(stopped.stop_string.has_value());
  EXPECT_EQ(*stopped.stop_string, stop);
  EXPECT_EQ(stopped.text, full.substr(0, full.find(stop)));
  EXPECT_LT(stopped.token_ids.size(), free_run.token_ids.size());
}

TEST_F(OfflineGeneratorTest, StopTokenEndsGenerationAndIsReported) {
  OfflineGenerator generator(weights_, tokenizer_);
  const std::vector<int32_t> prompt = tokenizer_->encode("Hello", true);
  const auto free_run = generator.generate(prompt, sampled(21, 30));
  SamplingParams params = sampled(21, 30);
  params.stop_token_ids = {free_run.token_ids[4]};
  const auto stopped = generator.generate(prompt, params);
  EXPECT_EQ(stopped.finish_reason, FinishReason::Stop);
  ASSERT_LE(stopped.token_ids.size(), 5u);
  EXPECT_EQ(stopped.token_ids.back(), free_run.token_ids[4]);
}

TEST_F(OfflineGeneratorTest, EosFromConfigEndsGenerationUnlessIgnored) {
  const std::vector<int32_t> prompt = tokenizer_->encode("Hello", true);
  SamplingParams params = sampled(33, 30);
  const auto free_run = OfflineGenerator(weights_, tokenizer_).generate(prompt, params);
  // The same model whose config.json names the 4th generated token as end-of-sequence.
  LlamaWeights edited = *weights_;
  edited.config.eos_token_ids = {free_run.token_ids[3]};
  OfflineGenerator generator(std::make_shared<const LlamaWeights>(edited), tokenizer_);
  EXPECT_NE(std::find(generator.eos_token_ids().begin(), generator.eos_token_ids().end(), free_run.token_ids[3]),
            generator.eos_token_ids().end());
  params.ignore_eos = false;
  const auto stopped = generator.generate(prompt, params);
  EXPECT_EQ(stopped.finish_reason, FinishReason::Stop);
  ASSERT_LE(stopped.token_ids.size(), 4u);
  EXPECT_EQ(stopped.token_ids.back(), free_run.token_ids[3]);
  params.ignore_eos = true;
  EXPECT_EQ(generator.generate(prompt, params).token_ids, free_run.token_ids);
}

TEST_F(OfflineGeneratorTest, InvalidRequestsAreClearErrors) {
  OfflineGenerator generator(weights_, tokenizer_);
  SamplingParams ok;
  ok.max_tokens = 4;
  EXPECT_THROW(generator.generate({}, ok), Error);
  const std::vector<int32_t> bad_id{1, 2, weights_->config.vocab_size};
  try {
    generator.generate(bad_id, ok);
    FAIL() << "out-of-vocabulary id accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
  SamplingParams too_long = ok;
  too_long.max_tokens = weights_->config.max_position_embeddings;
  try {
    generator.generate(std::vector<int32_t>{1, 2}, too_long);
    FAIL() << "context overflow accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_tokens"), std::string::npos) << e.what();
  }
  SamplingParams bad_temperature = ok;
  bad_temperature.temperature = -1;
  try {
    generator.generate(std::vector<int32_t>{1, 2}, bad_temperature);
    FAIL() << "negative temperature accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("temperature"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
