#pragma once
// Offline generation of one request on the CPU reference engine, without a server: prefill the prompt, then decode
// token by token, sampling and checking stop conditions after each step. The server's scheduler does the same for
// many requests at once; this class is the single-request path used by `tessera-cli generate --model` and tests.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/model/llama_weights.hpp"
#include "core/sampling/sampling_params.hpp"
#include "core/sampling/stop_checker.hpp"

namespace tessera {

class Tokenizer;

struct GenerationResult {
  std::vector<int32_t> token_ids;  // generated ids, a final stop token included
  std::string text;                // streamed text (stop string excluded); empty without a tokenizer
  FinishReason finish_reason = FinishReason::None;
  std::optional<std::string> stop_string;
  double time_to_first_token_s = 0;  // prefill + first sample, seconds (steady clock)
  double total_s = 0;                // whole generation, seconds
};

class OfflineGenerator {
 public:
  // Called once per generated token with its id and the text that became safe to show (may be empty).
  using TokenCallback = std::function<void(int32_t token_id, std::string_view text)>;

  // `tokenizer` may be null: a checkpoint without tokenizer files still generates from ids (no text).
  // `prefill_chunk_tokens` bounds the tokens of one forward pass over the prompt (chunked prefill).
  OfflineGenerator(std::shared_ptr<const LlamaWeights> weights, std::shared_ptr<const Tokenizer> tokenizer,
                   int32_t block_size = 16, int32_t prefill_chunk_tokens = 512);

  // Validates the prompt and `params` (tessera::Error naming the problem), then generates.
  // Not thread-safe: one generate() at a time per generator.
  GenerationResult generate(std::span<const int32_t> prompt, const SamplingParams& params,
                            const TokenCallback& on_token = {});

  // The ids that end generation unless ignore_eos: config.json's eos_token_id plus the tokenizer's eos token.
  const std::vector<int32_t>& eos_token_ids() const { return eos_ids_; }

 private:
  std::shared_ptr<const LlamaWeights> weights_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  int32_t block_size_;
  int32_t prefill_chunk_tokens_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace tessera
