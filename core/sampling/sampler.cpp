#include "core/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/common/error.hpp"

namespace tessera {
namespace {

uint64_t seed_from(const std::optional<uint64_t>& seed) {
  if (seed) return *seed;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

// Higher logit first; lowest id first among equal logits (so top-k / top-p sets are deterministic).
struct ByLogitDesc {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

}  // namespace

Sampler::Sampler(const SamplingParams& params, int32_t vocab_size)
    : temperature_(params.temperature),
      top_k_(params.top_k),
      top_p_(params.top_p),
      vocab_size_(vocab_size),
      rng_(seed_from(params.seed)) {
  params.validate(vocab_size);
  if (top_k_ < 0 || top_k_ >= vocab_size_) top_k_ = 0;
}

int32_t Sampler::check_and_argmax(std::span<const float> logits) const {
  if (logits.size() != static_cast<size_t>(vocab_size_))
    throw Error("sampler: logits row has " + std::to_string(logits.size()) + " values, expected vocab_size " +
                std::to_string(vocab_size_));
  int32_t best = 0;
  for (int32_t i = 0; i < vocab_size_; ++i) {
    float v = logits[i];
    if (std::isnan(v) || v == INFINITY)
      throw Error("sampler: logit of token " + std::to_string(i) + " is " + (std::isnan(v) ? "NaN" : "+inf"));
    if (v > logits[best]) best = i;
  }
  if (logits[best] == -INFINITY) throw Error("sampler: all logits are -inf, no token can be sampled");
  return best;
}

void Sampler::select_candidates(std::span<const float> logits, float max_logit, Candidates& out) const {
  const size_t n = logits.size();
  const float inv_t = 1.0f / temperature_;
  out.weights.resize(n);
  out.ids.resize(n);
  std::iota(out.ids.begin(), out.ids.end(), 0);
  // Subtracting the max first keeps exp() in (0, 1] for any temperature: no overflow.
  for (size_t i = 0; i < n; ++i) out.weights[i] = std::exp((logits[i] - max_logit) * inv_t);

  ByLogitDesc by_logit{logits};
  auto ids = out.ids.begin();
  size_t kept = n;
  if (top_k_ > 0) {
    kept = static_cast<size_t>(top_k_);
    std::nth_element(ids, ids + kept, out.ids.end(), by_logit);
    if (top_p_ < 1.0f) std::sort(ids, ids + kept, by_logit);  // top-p walks them in order
  }
  double mass = 0.0;
  for (size_t i = 0; i < kept; ++i) mass += out.weights[out.ids[i]];

  if (top_p_ < 1.0f) {
    const double threshold = top_p_ * mass * (1.0 - kTopPRelativeSlack);
    double cum = 0.0;
    size_t sorted = top_k_ > 0 ? kept : 0;  // [0, sorted) is in descending order
    size_t chunk = std::min<size_t>(kept, 256);
    size_t walked = 0;
    bool reached = false;
    // Sort only as much of the head as the nucleus needs, growing the sorted prefix geometrically.
    while (!reached && walked < kept) {
      if (walked == sorted) {
        size_t end = std::min(kept, sorted + chunk);
        if (end < kept) std::nth_element(ids + sorted, ids + end, ids + kept, by_logit);
        std::sort(ids + sorted, ids + end, by_logit);
        sorted = end;
        chunk *= 4;
      }
      cum += out.weights[out.ids[walked++]];
      reached = cum >= threshold;
    }
    kept = walked;
    mass = cum;
  }
  out.ids.resize(kept);
  out.total = mass;
}

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t argmax = check_and_argmax(logits);
  if (temperature_ == 0.0f) return argmax;
  select_candidates(logits, logits[argmax], scratch_);
  const double target = next_uniform() * scratch_.total;
  double cum = 0.0;
  int32_t last_possible = argmax;
  for (int32_t id : scratch_.ids) {
    float w = scratch_.weights[id];
    if (w <= 0.0f) continue;
    cum += w;
    last_possible = id;
    if (target < cum) return id;
  }
  return last_possible;  // only reachable through rounding of the running sum
}

std::vector<float> Sampler::probabilities(std::span<const float> logits) const {
  const int32_t argmax = check_and_argmax(logits);
  std::vector<float> probs(logits.size(), 0.0f);
  if (temperature_ == 0.0f) {
    probs[argmax] = 1.0f;
    return probs;
  }
  Candidates candidates;
  select_candidates(logits, logits[argmax], candidates);
  for (int32_t id : candidates.ids) probs[id] = static_cast<float>(candidates.weights[id] / candidates.total);
  return probs;
}

double Sampler::next_uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

}  // namespace tessera
