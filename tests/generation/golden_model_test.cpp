// The CPU engine against HF transformers: logits at every position and greedy continuations of tiny random F32
// checkpoints (tests/fixtures/make_fixtures.py made them with LlamaForCausalLM / MistralForCausalLM on the GPU machine).
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/engine/model_runner.hpp"
#include "core/engine/paged_kv_cache.hpp"
#include "core/generation/offline_generator.hpp"
#include "core/model/llama_weights.hpp"

namespace tessera {
namespace {

const std::string kFixtures = TESSERA_FIXTURES_DIR;

struct GoldenPrompt {
  std::vector<int32_t> prompt;
  std::vector<std::vector<double>> logits;  // [position][vocab]
  std::vector<int32_t> greedy;
};

std::vector<GoldenPrompt> load_golden(const std::string& name) {
  std::ifstream in(kFixtures + "/logits_" + name + ".json");
  if (!in) throw std::runtime_error("missing fixture logits_" + name + ".json");
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<GoldenPrompt> out;
  for (const auto& p : j.at("prompts")) {
    out.push_back({p.at("prompt").get<std::vector<int32_t>>(), p.at("logits").get<std::vector<std::vector<double>>>(),
                   p.at("greedy").get<std::vector<int32_t>>()});
  }
  return out;
}

// ‖a − b‖ / ‖b‖ over one row.
double relative_error(const float* actual, const std::vector<double>& expected) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
    norm += expected[i] * expected[i];
  }
  return std::sqrt(diff / norm);
}

class GoldenModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenModelTest, LogitsMatchTransformersAtEveryPosition) {
  auto weights = std::make_shared<const LlamaWeights>(LlamaWeights::load(kFixtures + "/models/" + GetParam()));
  const int vocab = weights->config.vocab_size;
  for (const GoldenPrompt& golden : load_golden(GetParam())) {
    const int n = static_cast<int>(golden.prompt.size());
    ASSERT_EQ(golden.logits.size(), static_cast<size_t>(n));
    KvCacheShape shape{weights->config.num_layers, (n + 15) / 16 + 1, 16, weights->config.num_kv_heads,
                       weights->config.head_dim};
    std::vector<int32_t> blocks(shape.num_blocks);
    for (int b = 0; b < shape.num_blocks; ++b) blocks[b] = shape.num_blocks - 1 - b;  // non-contiguous on purpose

    // Whole prompt in one prefill: the last position's logits.
    {
      PagedKvCache cache(shape);
      CpuModelRunner runner(weights, cache);
      std::vector<float> logits;
      SequenceStep step{golden.prompt, 0, blocks, true};
      runner.forward(std::span<const SequenceStep>(&step, 1), logits);
      ASSERT_EQ(logits.size(), static_cast<size_t>(vocab));
      EXPECT_LT(relative_error(logits.data(), golden.logits.back()), 1e-4) << "prefill of " << n << " tokens";
    }
    // Token by token (decode steps): every position's logits.
    PagedKvCache cache(shape);
    CpuModelRunner runner(weights, cache);
    std::vector<float> logits;
    for (int pos = 0; pos < n; ++pos) {
      SequenceStep step{std::span<const int32_t>(&golden.prompt[pos], 1), pos, blocks, true};
      runner.forward(std::span<const SequenceStep>(&step, 1), logits);
      const double err = relative_error(logits.data(), golden.logits[pos]);
      EXPECT_LT(err, 1e-4) << "position " << pos << " of a " << n << "-token prompt";
      for (int v = 0; v < vocab; ++v) {
        ASSERT_NEAR(logits[v], golden.logits[pos][v], 1e-4 * (1 + std::fabs(golden.logits[pos][v])))
            << "position " << pos << " token " << v;
      }
    }
  }
}

TEST_P(GoldenModelTest, GreedyGenerationMatchesTransformers) {
  auto weights = std::make_shared<const LlamaWeights>(LlamaWeights::load(kFixtures + "/models/" + GetParam()));
  OfflineGenerator generator(weights, nullptr, /*block_size=*/16, /*prefill_chunk_tokens=*/5);
  for (const GoldenPrompt& golden : load_golden(GetParam())) {
    SamplingParams params;
    params.temperature = 0;
    params.max_tokens = static_cast<int32_t>(golden.greedy.size());
    params.ignore_eos = true;  // the fixture forced exactly 24 new tokens
    const GenerationResult result = generator.generate(golden.prompt, params);
    EXPECT_EQ(result.token_ids, golden.greedy) << "prompt of " << golden.prompt.size() << " tokens";
    EXPECT_EQ(result.finish_reason, FinishReason::Length);
  }
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, GoldenModelTest,
                         ::testing::Values("gqa_untied", "mha_tied", "llama3_rope", "mistral_window"));

}  // namespace
}  // namespace tessera
