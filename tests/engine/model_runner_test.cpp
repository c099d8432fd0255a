// CpuModelRunner: agreement with a naive dense forward pass, and invariance of the logits under chunked prefill,
// token-by-token decoding, batching with other sequences and block placement. Lengths 1, 15, 16, 17, 33 straddle
// the 16-token block boundaries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/common/error.hpp"
#include "core/engine/model_runner.hpp"
#include "tests/engine/tiny_llama.hpp"

namespace tessera {
namespace {

constexpr int kBlockSize = 16;
constexpr int kNumBlocks = 24;

// |a_i - b_i| <= rel * max_j |b_j|: relative to the logit scale, so logits near zero do not need exact agreement.
template <typename B>
void expect_logits_close(std::span<const float> a, const std::vector<B>& b, double rel, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0;
  for (auto x : b) scale = std::max(scale, std::abs(double(x)));
  int failures = 0;
  for (size_t i = 0; i < a.size() && failures < 5; ++i) {
    if (std::abs(a[i] - double(b[i])) > rel * scale) {
      ADD_FAILURE() << what << ": logit " << i << " is " << a[i] << ", expected " << b[i] << " (scale " << scale << ")";
      ++failures;
    }
  }
}

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

std::vector<int32_t> contiguous_table(int first, int n) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

struct Engine {
  std::shared_ptr<LlamaWeights> weights;
  PagedKvCache cache;
  CpuModelRunner runner;

  explicit Engine(const LlamaConfig& config, uint32_t seed = 42)
      : weights(test::random_weights(config, seed)),
        cache(KvCacheShape{config.num_layers, kNumBlocks, kBlockSize, config.num_kv_heads, config.head_dim}),
        runner(weights, cache) {}

  // Feeds `tokens` starting at position `num_cached` in chunks of the given sizes (the last chunk takes the rest);
  // returns the logits after each chunk.
  std::vector<std::vector<float>> run_chunks(const std::vector<int32_t>& tokens, const std::vector<int32_t>& table,
                                             std::vector<int> chunks, int num_cached = 0) {
    std::vector<std::vector<float>> out;
    size_t done = 0;
    for (size_t c = 0; done < tokens.size(); ++c) {
      const size_t len = c < chunks.size() ? std::min<size_t>(chunks[c], tokens.size() - done) : tokens.size() - done;
      const SequenceStep step{std::span(tokens).subspan(done, len), static_cast<int32_t>(num_cached + done), table};
      std::vector<float> logits;
      runner.forward(std::span(&step, 1), logits);
      out.push_back(std::move(logits));
      done += len;
    }
    return out;
  }
  std::vector<float> run_whole(const std::vector<int32_t>& tokens, const std::vector<int32_t>& table) {
    return run_chunks(tokens, table, {static_cast<int>(tokens.size())}).back();
  }
  std::vector<std::vector<float>> run_token_by_token(const std::vector<int32_t>& tokens,
                                                     const std::vector<int32_t>& table) {
    return run_chunks(tokens, table, std::vector<int>(tokens.size(), 1));
  }
};

void expect_matches_dense(const LlamaConfig& config, const char* what) {
  Engine engine(config);
  for (int n : {1, 15, 16, 17, 33}) {
    SCOPED_TRACE(::testing::Message() << what << ", length " << n);
    const auto tokens = random_tokens(n, config.vocab_size, 1000 + n);
    const auto table = contiguous_table(0, 3);
    const auto dense = test::dense_forward(*engine.weights, tokens);
    expect_logits_close<double>(engine.run_whole(tokens, table), dense.back(), 1e-5, "whole prompt");
    const auto steps = engine.run_token_by_token(tokens, table);
    for (int t = 0; t < n; ++t) expect_logits_close<double>(steps[t], dense[t], 1e-5, "token by token");
  }
}

TEST(CpuModelRunner, MatchesDenseReferenceForward) { expect_matches_dense(test::tiny_config(), "plain llama"); }

TEST(CpuModelRunner, MatchesDenseReferenceWithLlama3RopeScaling) {
  LlamaConfig c = test::tiny_config();
  // head_dim 8, theta 1e4: wavelengths 6.3, 63, 628, 6283; with original context 64 and factors 1/4 that is one
  // kept, one blended and two interpolated frequencies.
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 4.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 64;
  expect_matches_dense(c, "llama3 rope");
}

TEST(CpuModelRunner, MatchesDenseReferenceWithSlidingWindowAndTiedEmbeddings) {
  LlamaConfig c = test::tiny_config();
  c.sliding_window = 5;
  c.tie_word_embeddings = true;
  c.num_kv_heads = 1;  // multi-query
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 2.0f;
  expect_matches_dense(c, "sliding window, tied, MQA, linear rope");
}

TEST(CpuModelRunner, TiedEmbeddingsWorkWhenTheLoaderLeavesLmHeadEmpty) {
  LlamaConfig c = test::tiny_config();
  c.tie_word_embeddings = true;
  auto tied = test::random_weights(c);
  auto without_head = std::make_shared<LlamaWeights>(*tied);
  without_head->lm_head = HostTensor{};
  PagedKvCache cache_a(KvCacheShape{c.num_layers, 4, kBlockSize, c.num_kv_heads, c.head_dim});
  PagedKvCache cache_b(cache_a.shape());
  CpuModelRunner a(tied, cache_a), b(without_head, cache_b);
  const auto tokens = random_tokens(9, c.vocab_size, 5);
  const std::vector<int32_t> table = {0};
  const SequenceStep step{tokens, 0, table};
  std::vector<float> la, lb;
  a.forward(std::span(&step, 1), la);
  b.forward(std::span(&step, 1), lb);
  EXPECT_EQ(la, lb);
}

TEST(CpuModelRunner, ChunkedPrefillAndTokenByTokenMatchWholePrompt) {
  Engine engine(test::tiny_config());
  for (int n : {15, 17, 33}) {
    SCOPED_TRACE(::testing::Message() << "length " << n);
    const auto tokens = random_tokens(n, engine.weights->config.vocab_size, 7 + n);
    const auto table = contiguous_table(0, 3);
    const auto whole = engine.run_whole(tokens, table);
    const auto chunked = engine.run_chunks(tokens, table, {5, 7});
    ASSERT_EQ(chunked.size(), 3u);
    expect_logits_close<float>(chunked.back(), whole, 1e-5, "5 + 7 + rest");
    // Intermediate chunk ends equal the whole-prompt logits of that prefix.
    const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 12);
    expect_logits_close<float>(chunked[1], engine.run_whole(prefix, table), 1e-5, "prefix 5 + 7");
    expect_logits_close<float>(engine.run_token_by_token(tokens, table).back(), whole, 1e-5, "token by token");
    expect_logits_close<float>(engine.run_chunks(tokens, table, {16, 1}).back(), whole, 1e-5, "16 + 1 + rest");
  }
}

TEST(CpuModelRunner, MixedBatchMatchesEachSequenceAlone) {
  const LlamaConfig c = test::tiny_config();
  Engine batched(c), alone(c);
  // Sequence specs: prompt, tokens already cached before the batched step, blocks.
  struct Spec {
    std::vector<int32_t> tokens;
    int cached;
    std::vector<int32_t> table;
    bool want_logits;
  };
  std::vector<Spec> specs = {
      {random_tokens(17, c.vocab_size, 1), 0, {0, 1}, true},           // prefill, crosses a block
      {random_tokens(16, c.vocab_size, 2), 15, {2}, true},             // decode at the end of a block
      {random_tokens(33, c.vocab_size, 3), 16, {3, 4, 5}, true},       // prefill chunk after a full block
      {random_tokens(5, c.vocab_size, 4), 0, {6}, false},              // prefill without logits
      {random_tokens(1, c.vocab_size, 5), 0, {7}, true},               // one-token prompt
      {random_tokens(18, c.vocab_size, 6), 17, {9, 8}, true},          // decode into a second block
  };
  for (Engine* e : {&batched, &alone}) {  // identical cached prefixes in both engines
    for (const Spec& s : specs) {
      if (s.cached > 0) {
        e->run_whole(std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + s.cached), s.table);
      }
    }
  }
  std::vector<SequenceStep> batch;
  for (const Spec& s : specs) {
    batch.push_back({std::span(s.tokens).subspan(s.cached), s.cached, s.table, s.want_logits});
  }
  std::vector<float> logits;
  batched.runner.forward(batch, logits);
  const int vocab = c.vocab_size;
  ASSERT_EQ(logits.size(), 5u * vocab);
  int row = 0;
  for (const SequenceStep& step : batch) {
    std::vector<float> single;
    alone.runner.forward(std::span(&step, 1), single);
    if (!step.want_logits) {
      EXPECT_TRUE(single.empty());
      continue;
    }
    expect_logits_close<float>(std::span(logits).subspan(row * vocab, vocab), single, 1e-5, "batched vs alone");
    ++row;
  }
  // Both engines wrote the same K/V: a follow-up decode step agrees too.
  const std::vector<int32_t> next = {3};
  const SequenceStep follow{next, 17, specs[0].table};
  std::vector<float> a, b;
  batched.runner.forward(std::span(&follow, 1), a);
  alone.runner.forward(std::span(&follow, 1), b);
  expect_logits_close<float>(a, b, 1e-5, "decode after batch");
}

TEST(CpuModelRunner, ShuffledNonContiguousBlockTablesGiveTheSameLogits) {
  Engine engine(test::tiny_config());
  const auto tokens = random_tokens(40, engine.weights->config.vocab_size, 11);
  const auto reference = engine.run_chunks(tokens, contiguous_table(0, 3), {9, 20});
  for (const std::vector<int32_t>& table : {std::vector<int32_t>{17, 3, 9}, std::vector<int32_t>{23, 22, 4}}) {
    const auto shuffled = engine.run_chunks(tokens, table, {9, 20});
    ASSERT_EQ(shuffled.size(), reference.size());
    for (size_t i = 0; i < shuffled.size(); ++i) expect_logits_close<float>(shuffled[i], reference[i], 1e-6, "shuffled");
  }
}

TEST(CpuModelRunner, EmptyBatchGivesNoLogits) {
  Engine engine(test::tiny_config());
  std::vector<float> logits(5, 1.0f);
  engine.runner.forward({}, logits);
  EXPECT_TRUE(logits.empty());
}

TEST(CpuModelRunner, RejectsInvalidSteps) {
  const LlamaConfig c = test::tiny_config();
  Engine engine(c);
  const std::vector<int32_t> good = {1, 2, 3}, bad_id = {1, c.vocab_size, 3}, negative_id = {-1};
  const std::vector<int32_t> one_block = {0}, out_of_cache = {kNumBlocks}, tables_128 = contiguous_table(0, 9);
  const std::vector<int32_t> empty;
  auto forward = [&](SequenceStep step) {
    std::vector<float> logits;
    engine.runner.forward(std::span(&step, 1), logits);
  };
  EXPECT_NO_THROW(forward({good, 0, one_block}));
  EXPECT_THROW(forward({bad_id, 0, one_block}), Error);
  EXPECT_THROW(forward({negative_id, 0, one_block}), Error);
  EXPECT_THROW(forward({empty, 0, one_block}), Error);
  EXPECT_THROW(forward({good, 14, one_block}), Error);     // positions 14..16 need two blocks
  EXPECT_THROW(forward({good, 0, out_of_cache}), Error);
  EXPECT_THROW(forward({good, -1, one_block}), Error);
  EXPECT_THROW(forward({good, c.max_position_embeddings - 2, tables_128}), Error);  // last position == max
  EXPECT_NO_THROW(forward({good, c.max_position_embeddings - 3, tables_128}));
}

TEST(CpuModelRunner, RejectsMismatchedWeightsAndCache) {
  const LlamaConfig c = test::tiny_config();
  auto weights = test::random_weights(c);
  PagedKvCache cache(KvCacheShape{c.num_layers, 4, kBlockSize, c.num_kv_heads, c.head_dim});
  auto bad = std::make_shared<LlamaWeights>(*weights);
  bad->layers[1].k_proj.shape = {c.hidden_size, c.hidden_size};
  EXPECT_THROW(CpuModelRunner(bad, cache), Error);
  bad = std::make_shared<LlamaWeights>(*weights);
  bad->layers.pop_back();
  EXPECT_THROW(CpuModelRunner(bad, cache), Error);
  bad = std::make_shared<LlamaWeights>(*weights);
  bad->lm_head = HostTensor{};  // not tied: the head is required
  EXPECT_THROW(CpuModelRunner(bad, cache), Error);
  PagedKvCache wrong_cache(KvCacheShape{c.num_layers, 4, kBlockSize, c.num_kv_heads + 1, c.head_dim});
  EXPECT_THROW(CpuModelRunner(weights, wrong_cache), Error);
  EXPECT_NO_THROW(CpuModelRunner(weights, cache));
}

}  // namespace
}  // namespace tessera
