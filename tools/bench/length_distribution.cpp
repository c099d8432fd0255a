#include "tools/bench/length_distribution.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

#include "core/common/error.hpp"
#include "tools/bench/text_util.hpp"

namespace tessera::bench {

namespace {

double parse_number(std::string_view text, const std::string& what, std::string_view spec) {
  const std::optional<double> value = parse_double(text);
  if (!value || !std::isfinite(*value))
    throw Error(what + ": '" + std::string(text) + "' in '" + std::string(spec) + "' is not a number");
  return *value;
}

int32_t parse_length(std::string_view text, const std::string& what, std::string_view spec) {
  const double value = parse_number(text, what, spec);
  if (value != std::floor(value) || value < 1 || value > kMaxLength)
    throw Error(what + ": '" + std::string(text) + "' in '" + std::string(spec) + "' must be an integer in [1, " +
                std::to_string(kMaxLength) + "]");
  return static_cast<int32_t>(value);
}

int32_t clip_round(double x) {
  if (!(x >= 1)) return 1;  // also NaN
  return static_cast<int32_t>(std::min<double>(std::llround(x), kMaxLength));
}

std::string format_number(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

LengthDistribution LengthDistribution::fixed(int32_t n) {
  if (n < 1 || n > kMaxLength) throw Error("length " + std::to_string(n) + " is outside [1, " + std::to_string(kMaxLength) + "]");
  return LengthDistribution(Kind::Fixed, n, 0);
}

LengthDistribution LengthDistribution::parse(std::string_view spec, const std::string& what) {
  const std::vector<std::string_view> parts = split(spec, ':');
  const std::string usage = " (expected N, fixed:N, uniform:MIN:MAX, normal:MEAN:STD or lognormal:MEAN:STD)";
  if (parts.size() == 1) return LengthDistribution(Kind::Fixed, parse_length(parts[0], what, spec), 0);
  const std::string_view kind = parts[0];
  if (kind == "fixed" && parts.size() == 2) return LengthDistribution(Kind::Fixed, parse_length(parts[1], what, spec), 0);
  if (kind == "uniform" && parts.size() == 3) {
    const int32_t lo = parse_length(parts[1], what, spec), hi = parse_length(parts[2], what, spec);
    if (lo > hi) throw Error(what + ": uniform minimum " + std::to_string(lo) + " is above the maximum " + std::to_string(hi));
    return LengthDistribution(Kind::Uniform, lo, hi);
  }
  if ((kind == "normal" || kind == "lognormal") && parts.size() == 3) {
    const double mean = parse_number(parts[1], what, spec), stddev = parse_number(parts[2], what, spec);
    if (mean < 1 || mean > kMaxLength) throw Error(what + ": mean " + std::string(parts[1]) + " must be in [1, " + std::to_string(kMaxLength) + "]");
    if (stddev < 0) throw Error(what + ": standard deviation " + std::string(parts[2]) + " must be >= 0");
    return LengthDistribution(kind == "normal" ? Kind::Normal : Kind::LogNormal, mean, stddev);
  }
  throw Error(what + ": cannot read length distribution '" + std::string(spec) + "'" + usage);
}

int32_t LengthDistribution::sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::Fixed: return static_cast<int32_t>(a_);
    case Kind::Uniform:
      return std::uniform_int_distribution<int32_t>(static_cast<int32_t>(a_), static_cast<int32_t>(b_))(rng);
    case Kind::Normal:
      if (b_ == 0) return clip_round(a_);
      return clip_round(std::normal_distribution<double>(a_, b_)(rng));
    case Kind::LogNormal: {
      if (b_ == 0) return clip_round(a_);
      // Mean m and standard deviation s of the lognormal -> parameters of the underlying normal.
      const double sigma2 = std::log1p((b_ * b_) / (a_ * a_));
      const double mu = std::log(a_) - 0.5 * sigma2;
      return clip_round(std::lognormal_distribution<double>(mu, std::sqrt(sigma2))(rng));
    }
  }
  return 1;
}

int32_t LengthDistribution::max_length() const {
  switch (kind_) {
    case Kind::Fixed: return static_cast<int32_t>(a_);
    case Kind::Uniform: return static_cast<int32_t>(b_);
    default: return b_ == 0 ? clip_round(a_) : kMaxLength;
  }
}

std::string LengthDistribution::describe() const {
  switch (kind_) {
    case Kind::Fixed: return std::to_string(static_cast<int32_t>(a_));
    case Kind::Uniform: return "uniform:" + std::to_string(static_cast<int32_t>(a_)) + ":" + std::to_string(static_cast<int32_t>(b_));
    case Kind::Normal: return "normal:" + format_number(a_) + ":" + format_number(b_);
    case Kind::LogNormal: return "lognormal:" + format_number(a_) + ":" + format_number(b_);
  }
  return "?";
}

}  // namespace tessera::bench
