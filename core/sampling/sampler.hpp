#pragma once
// Turns one row of logits into a token id for one request: greedy, or temperature -> top-k -> top-p -> draw.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/sampling/sampling_params.hpp"

namespace tessera {

// One Sampler per request. It owns the request's RNG, so a request's draws depend only on its seed and its own
// logits, never on which other requests share the batch. Not thread-safe; distinct Samplers are independent.
//
// Logit rules: -inf marks a token as impossible (probability 0). NaN or +inf, or a row whose logits are all -inf,
// means the model produced garbage: sample()/probabilities() throw tessera::Error naming the token id.
class Sampler {
 public:
  // Validates `params` against `vocab_size` (throws tessera::Error); every logits row must hold vocab_size values.
  Sampler(const SamplingParams& params, int32_t vocab_size);

  // Draws one token id in [0, vocab_size). Greedy (temperature 0) returns the argmax, lowest id on ties.
  // Cost: expected O(V) in every mode (top-k and top-p use selection, not a full sort). The draw walks the kept
  // tokens in id order, so it depends only on the kept set and its weights, not on std::nth_element's layout.
  int32_t sample(std::span<const float> logits);

  // The distribution sample() draws from, one probability per token (zeros outside the kept set, sums to 1).
  // Greedy gives a one-hot vector at the argmax. Does not touch the RNG.
  std::vector<float> probabilities(std::span<const float> logits) const;

  // Tokens within this relative distance of the top_p mass count as reaching it, so that an exactly representable
  // boundary (probabilities 0.5 + 0.3 with top_p 0.8) is not lost to float rounding.
  static constexpr double kTopPRelativeSlack = 1e-6;
  // top_k up to this uses a single-pass heap; larger k uses std::nth_element.
  static constexpr int32_t kHeapTopK = 1024;

 private:
  struct Entry {
    float logit;
    float weight;  // exp((logit - max) / temperature), filled for kept entries only
    int32_t id;
  };
  // Candidate tokens; entries[0, kept) survive top-k / top-p, in id order once select_candidates returns.
  struct Candidates {
    std::vector<Entry> entries;
    std::vector<float> dense;  // scratch for re-ordering large kept sets by id
    size_t kept = 0;
    double total = 0.0;  // sum of kept weights
  };

  // Checks the row (size, NaN, +inf, all -inf) and returns the argmax (lowest id on ties).
  int32_t check_and_argmax(std::span<const float> logits) const;
  void select_candidates(std::span<const float> logits, float max_logit, Candidates& out) const;
  void restore_id_order(Candidates& out, size_t kept) const;
  double next_uniform();  // in [0, 1), 53 random bits; independent of the standard library's distributions

  float temperature_;
  int32_t top_k_;  // 0 = off (normalized from -1 / >= vocab)
  float top_p_;
  int32_t vocab_size_;
  std::mt19937_64 rng_;
  Candidates scratch_;  // reused across sample() calls so a 128k vocab does not allocate per token
};

}  // namespace tessera
