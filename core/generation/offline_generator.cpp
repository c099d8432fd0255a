#include "core/generation/offline_generator.hpp"

#include <algorithm>
#include <chrono>

#include "core/common/error.hpp"
#include "core/engine/model_runner.hpp"
#include "core/engine/paged_kv_cache.hpp"
#include "core/sampling/sampler.hpp"
#include "core/tokenizer/streaming_detokenizer.hpp"
#include "core/tokenizer/tokenizer.hpp"

namespace tessera {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

OfflineGenerator::OfflineGenerator(std::shared_ptr<const LlamaWeights> weights,
                                   std::shared_ptr<const Tokenizer> tokenizer, int32_t block_size,
                                   int32_t prefill_chunk_tokens)
    : weights_(std::move(weights)),
      tokenizer_(std::move(tokenizer)),
      block_size_(block_size),
      prefill_chunk_tokens_(prefill_chunk_tokens) {
  if (!weights_) throw Error("OfflineGenerator: no model weights");
  if (block_size_ <= 0) throw Error("block_size must be > 0 (got " + std::to_string(block_size_) + ")");
  if (prefill_chunk_tokens_ <= 0) {
    throw Error("prefill_chunk_tokens must be > 0 (got " + std::to_string(prefill_chunk_tokens_) + ")");
  }
  eos_ids_ = weights_->config.eos_token_ids;
  if (tokenizer_) {
    for (int32_t id : tokenizer_->eos_ids()) eos_ids_.push_back(id);
  }
  std::sort(eos_ids_.begin(), eos_ids_.end());
  eos_ids_.erase(std::unique(eos_ids_.begin(), eos_ids_.end()), eos_ids_.end());
}

GenerationResult OfflineGenerator::generate(std::span<const int32_t> prompt, const SamplingParams& params,
                                            const TokenCallback& on_token) {
  const LlamaConfig& config = weights_->config;
  if (prompt.empty()) throw Error("prompt must hold at least one token");
  for (int32_t id : prompt) {
    if (id < 0 || id >= config.vocab_size) {
      throw Error("prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(config.vocab_size) + ")");
    }
  }
  params.validate(config.vocab_size);
  const int64_t total_tokens = static_cast<int64_t>(prompt.size()) + params.max_tokens;
  if (total_tokens > config.max_position_embeddings) {
    throw Error("prompt (" + std::to_string(prompt.size()) + " tokens) + max_tokens (" +
                std::to_string(params.max_tokens) + ") exceeds the model's context of " +
                std::to_string(config.max_position_embeddings) + " tokens");
  }

  // The whole request's KV fits in one cache sized for it: blocks for prompt + max_tokens.
  KvCacheShape shape;
  shape.num_layers = config.num_layers;
  shape.num_blocks = static_cast<int>((total_tokens + block_size_ - 1) / block_size_);
  shape.block_size = block_size_;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  PagedKvCache cache(shape);
  SimpleBlockAllocator allocator(shape.num_blocks);
  const std::vector<int32_t> block_table = allocator.allocate(shape.num_blocks);
  CpuModelRunner runner(weights_, cache);

  Sampler sampler(params, config.vocab_size);
  StopChecker stop(params, eos_ids_);
  std::optional<StreamingDetokenizer> detokenizer;
  if (tokenizer_) detokenizer.emplace(*tokenizer_, /*skip_special_tokens=*/true);

  GenerationResult result;
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits;
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());
  int32_t num_cached = 0;
  auto run = [&](std::span<const int32_t> tokens) {
    SequenceStep step{tokens, num_cached, block_table, true};
    runner.forward(std::span<const SequenceStep>(&step, 1), logits);
    num_cached += static_cast<int32_t>(tokens.size());
  };
  // Chunked prefill: the last chunk's logits give the first token.
  while (num_cached < static_cast<int32_t>(prompt.size())) {
    const size_t len = std::min<size_t>(prefill_chunk_tokens_, prompt.size() - num_cached);
    run(std::span<const int32_t>(sequence).subspan(num_cached, len));
  }
  while (true) {
    const int32_t token = sampler.sample(std::span<const float>(logits.data(), config.vocab_size));
    if (result.token_ids.empty()) result.time_to_first_token_s = seconds_since(start);
    result.token_ids.push_back(token);
    sequence.push_back(token);
    const std::string delta = detokenizer ? detokenizer->push(token) : std::string();
    StopUpdate update = stop.append(token, delta);
    std::string text = std::move(update.text);
    // At the end, release what the detokenizer still holds (an incomplete UTF-8 tail), unless a stop string cut
    // the text: nothing after a stop string is shown.
    if (update.reason != FinishReason::None && detokenizer && !update.stop_string) text += detokenizer->finish();
    result.text += text;
    if (on_token) on_token(token, text);
    if (update.reason != FinishReason::None) {
      result.finish_reason = update.reason;
      result.stop_string = update.stop_string;
      break;
    }
    run(std::span<const int32_t>(&sequence.back(), 1));
  }
  result.total_s = seconds_since(start);
  return result;
}

}  // namespace tessera
