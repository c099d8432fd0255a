#pragma once
// Decides when a request's generation ends and which decoded text may be streamed to the client now.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sampling/sampling_params.hpp"

namespace tessera {

enum class FinishReason {
  None,    // still generating
  Stop,    // EOS (unless ignore_eos), a stop_token_ids entry, or a stop string
  Length,  // max_tokens reached
};

const char* finish_reason_name(FinishReason reason);  // "none", "stop", "length" (OpenAI spelling)

struct StopUpdate {
  FinishReason reason = FinishReason::None;
  std::string text;                       // text safe to emit now (may be empty while a stop prefix is held back)
  std::optional<int32_t> stop_token;      // the EOS / stop token id that ended generation
  std::optional<std::string> stop_string; // the stop string that ended generation
};

// Semantics (as vLLM / OpenAI with include_stop_str_in_output = false):
// - A stop string is never emitted, nor anything after it. Text that could be the start of a stop string is held
//   back until the next tokens either complete the stop string or break the match; a finish releases it.
// - Among stop strings, the one that completes first in the text wins; if several complete at the same byte, the
//   longest (earliest-starting) one truncates.
// - A stop token (EOS, unless ignore_eos; any stop_token_ids entry) ends generation with reason Stop. It counts as a
//   generated token (towards max_tokens and the completion's token ids), but its text delta is not emitted.
// - Generation ends with Length after the max_tokens-th token, unless that token stopped it first.
// Cost per token: O(delta * number of stop strings) via one KMP automaton per stop string; the held-back buffer is
// never longer than the longest stop string, so nothing is O(total text).
// Not thread-safe; one StopChecker per request.
class StopChecker {
 public:
  // `eos_token_ids`: the model's / tokenizer's end-of-sequence ids. `params` should already be validated.
  StopChecker(const SamplingParams& params, std::vector<int32_t> eos_token_ids);

  // Feeds the next generated token and the text it decoded to. Throws tessera::Error if already finished.
  StopUpdate append(int32_t token_id, std::string_view text_delta);

  bool finished() const { return finished_; }
  int32_t num_tokens() const { return num_tokens_; }

 private:
  struct StopPattern {
    std::string text;
    std::vector<size_t> failure;  // KMP: failure[i] = longest proper border of text[0..i]
    size_t matched = 0;           // longest prefix of `text` that is a suffix of the text seen so far
  };

  bool is_stop_token(int32_t token_id) const;
  StopUpdate finish(FinishReason reason, std::string text);

  std::vector<int32_t> stop_ids_;  // EOS ids (unless ignore_eos) and stop_token_ids, sorted and unique
  std::vector<StopPattern> patterns_;
  int32_t max_tokens_;
  int32_t num_tokens_ = 0;
  bool finished_ = false;
  std::string held_;  // decoded text not yet emitted: a suffix that may begin a stop string
};

}  // namespace tessera
