#pragma once
// Per-request decoding parameters (the OpenAI / vLLM sampling knobs) and their validation.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace tessera {

struct SamplingParams {
  static constexpr size_t kMaxStopStrings = 16;

  // Logits are divided by `temperature` before the softmax. 0 selects greedy decoding (argmax, ties -> lowest id).
  float temperature = 1.0f;
  // Keep only the `top_k` highest logits. 0 or -1 = off; a value larger than the vocabulary is clamped to it.
  int32_t top_k = -1;
  // Nucleus sampling: keep the smallest set of most probable tokens whose cumulative probability >= top_p.
  // 1 = off. Applied after top-k, on the renormalized top-k distribution (HF / vLLM order).
  float top_p = 1.0f;
  // Same seed (and same logits) -> same tokens. Unset: seeded from std::random_device.
  std::optional<uint64_t> seed;
  // Upper bound on generated tokens (stop tokens included); must be >= 1.
  int32_t max_tokens = 16;
  // Token ids that always end generation (regardless of ignore_eos).
  std::vector<int32_t> stop_token_ids;
  // Generation ends when the decoded text contains one of these; the stop string is not emitted.
  std::vector<std::string> stop;
  // When true, the model's EOS ids do not end generation (only max_tokens, stop ids and stop strings do).
  bool ignore_eos = false;

  // Throws tessera::Error naming the parameter and its allowed range, e.g. "top_p must be in (0, 1] (got 1.5)".
  // `vocab_size` is the number of logits the model produces (bounds for stop_token_ids).
  void validate(int32_t vocab_size) const;

  bool is_greedy() const { return temperature == 0.0f; }

  MSGPACK_DEFINE_MAP(temperature, top_k, top_p, seed, max_tokens, stop_token_ids, stop, ignore_eos)
};

}  // namespace tessera
