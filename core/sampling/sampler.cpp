#include "core/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
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
  template <typename E>
  bool operator()(const E& a, const E& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
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
  // -inf tokens have probability 0 under every filter: leave them out from the start.
  std::vector<Entry>& entries = out.entries;
  entries.clear();
  bool reordered = false;
  if (top_k_ > 0 && top_k_ <= kHeapTopK) {
    // Small k: one pass keeping a heap of the k best; most tokens cost a single comparison with the worst kept.
    const size_t k = static_cast<size_t>(top_k_);
    for (int32_t id = 0; id < vocab_size_; ++id) {
      Entry e{logits[id], 0.0f, id};
      if (e.logit == -INFINITY) continue;
      if (entries.size() < k) {
        entries.push_back(e);
        std::push_heap(entries.begin(), entries.end(), ByLogitDesc{});  // front = worst kept
      } else if (ByLogitDesc{}(e, entries.front())) {
        std::pop_heap(entries.begin(), entries.end(), ByLogitDesc{});
        entries.back() = e;
        std::push_heap(entries.begin(), entries.end(), ByLogitDesc{});
      }
    }
    reordered = true;
  } else {
    for (int32_t id = 0; id < vocab_size_; ++id)
      if (logits[id] != -INFINITY) entries.push_back({logits[id], 0.0f, id});
  }
  size_t kept = entries.size();
  if (top_k_ > kHeapTopK && static_cast<size_t>(top_k_) < kept) {
    kept = static_cast<size_t>(top_k_);
    std::nth_element(entries.begin(), entries.begin() + kept, entries.end(), ByLogitDesc{});
    reordered = true;
  }
  // Subtracting the max first keeps exp() in (0, 1] for any temperature: no overflow. Dividing (rather than
  // multiplying by 1 / t, which is +inf for subnormal t) keeps the max token at exactly exp(0) = 1.
  double mass = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    entries[i].weight = std::exp((entries[i].logit - max_logit) / temperature_);
    mass += entries[i].weight;
  }

  if (top_p_ < 1.0f) {
    // Weighted quickselect: find the smallest prefix (in ByLogitDesc order) whose mass reaches the threshold
    // without sorting. Invariant: [0, lo) is taken, taken < threshold <= taken + mass of [lo, hi).
    const double threshold = top_p_ * mass * (1.0 - kTopPRelativeSlack);
    // A nucleus token j has more than (1 - top_p) * mass at or after it in rank order, spread over at most
    // `kept` tokens of weight <= w_j, so w_j > (1 - top_p) * mass / kept: lighter tokens can be dropped first.
    // This makes peaked distributions cheap; the (1 - 1e-6) factor keeps float rounding on the safe side.
    const double min_weight = (1.0 - top_p_) * mass / static_cast<double>(kept) * (1.0 - 1e-6);
    auto heavy_end = std::partition(entries.begin(), entries.begin() + kept,
                                    [min_weight](const Entry& e) { return e.weight > min_weight; });
    if (heavy_end != entries.begin()) kept = static_cast<size_t>(heavy_end - entries.begin());
    size_t lo = 0, hi = kept;
    double taken = 0.0;
    while (hi - lo > 1) {
      size_t mid = lo + (hi - lo) / 2;
      std::nth_element(entries.begin() + lo, entries.begin() + mid, entries.begin() + hi, ByLogitDesc{});
      double upper = 0.0;
      for (size_t i = lo; i < mid; ++i) upper += entries[i].weight;
      if (taken + upper >= threshold) {
        hi = mid;
      } else {
        taken += upper;
        lo = mid;
      }
    }
    kept = lo + 1;  // entry `lo` is the one that reaches the threshold
    mass = taken + entries[lo].weight;
    reordered = true;
  }

  if (reordered) restore_id_order(out, kept);
  out.kept = kept;
  out.total = mass;
}

// Puts entries[0, kept) back in id order: sort a small set, bucket a large one through a dense array.
void Sampler::restore_id_order(Candidates& out, size_t kept) const {
  auto begin = out.entries.begin();
  if (kept * 32 < static_cast<size_t>(vocab_size_)) {
    std::sort(begin, begin + kept, [](const Entry& a, const Entry& b) { return a.id < b.id; });
    return;
  }
  out.dense.assign(vocab_size_, -1.0f);  // weights are >= 0, so -1 marks "not kept"
  for (size_t i = 0; i < kept; ++i) out.dense[out.entries[i].id] = out.entries[i].weight;
  size_t next = 0;
  for (int32_t id = 0; id < vocab_size_; ++id)
    if (out.dense[id] >= 0.0f) out.entries[next++] = {0.0f, out.dense[id], id};
}

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t argmax = check_and_argmax(logits);
  if (temperature_ == 0.0f) return argmax;
  select_candidates(logits, logits[argmax], scratch_);
  const double target = next_uniform() * scratch_.total;
  double cum = 0.0;
  int32_t last_possible = argmax;
  for (size_t i = 0; i < scratch_.kept; ++i) {
    const Entry& e = scratch_.entries[i];
    if (e.weight <= 0.0f) continue;
    cum += e.weight;
    last_possible = e.id;
    if (target < cum) return e.id;
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
  for (size_t i = 0; i < candidates.kept; ++i) {
    const Entry& e = candidates.entries[i];
    probs[e.id] = static_cast<float>(e.weight / candidates.total);
  }
  return probs;
}

double Sampler::next_uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

}  // namespace tessera
