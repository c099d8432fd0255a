#pragma once
// Token-length distributions for benchmark workloads: fixed, uniform, normal and lognormal, parsed from a short
// spec string and sampled with a caller-owned seeded generator.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace tessera::bench {

// Largest length a distribution may produce (the protocol's max_tokens / prompt_ids bound).
inline constexpr int32_t kMaxLength = 1 << 20;

class LengthDistribution {
 public:
  enum class Kind { Fixed, Uniform, Normal, LogNormal };

  // Spec grammar (lengths in tokens, all >= 1):
  //   "N" or "fixed:N"        always N
  //   "uniform:MIN:MAX"       integers MIN..MAX, each equally likely
  //   "normal:MEAN:STD"       normal, rounded to the nearest integer and clipped to [1, kMaxLength]
  //   "lognormal:MEAN:STD"    lognormal with this mean and standard deviation in tokens (right-skewed, like real
  //                           prompt and answer lengths), rounded and clipped like normal
  // Throws tessera::Error naming `what` (e.g. "--input-len") for anything else.
  static LengthDistribution parse(std::string_view spec, const std::string& what);
  static LengthDistribution fixed(int32_t n);

  // One length in [1, kMaxLength]. Same generator state -> same length.
  int32_t sample(std::mt19937_64& rng) const;

  Kind kind() const { return kind_; }
  // Fixed: the length; uniform: the bounds; normal / lognormal: mean and standard deviation (before clipping).
  double first() const { return a_; }
  double second() const { return b_; }
  // The largest length sample() can return (kMaxLength for normal / lognormal).
  int32_t max_length() const;
  // The spec in canonical form, e.g. "uniform:16:64".
  std::string describe() const;

 private:
  LengthDistribution(Kind kind, double a, double b) : kind_(kind), a_(a), b_(b) {}
  Kind kind_;
  double a_;
  double b_;
};

}  // namespace tessera::bench
