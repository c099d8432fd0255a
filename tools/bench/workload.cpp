#include "tools/bench/workload.hpp"

#include <algorithm>
#include <cmath>

#include "core/common/error.hpp"
#include "tools/bench/text_util.hpp"

namespace tessera::bench {

namespace {

// SplitMix64 finalizer: turns (seed, index) into well-mixed, independent generator seeds.
uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::pair<const LengthDistribution*, const LengthDistribution*> pattern_lengths(const PatternLengths& p,
                                                                                const std::string& name) {
  if (name == "siso") return {&p.short_input, &p.short_output};
  if (name == "silo") return {&p.short_input, &p.long_output};
  if (name == "liso") return {&p.long_input, &p.short_output};
  return {&p.long_input, &p.long_output};  // "lilo"; names are checked by parse_mix
}

}  // namespace

const std::vector<std::string>& query_pattern_names() {
  static const std::vector<std::string> names = {"siso", "silo", "liso", "lilo"};
  return names;
}

std::vector<std::pair<std::string, double>> WorkloadSpec::parse_mix(const std::string& text, const std::string& what) {
  std::vector<std::pair<std::string, double>> mix;
  for (std::string_view field : split(text, ',')) {
    field = trim(field);
    const size_t eq = field.find('=');
    const std::string name(trim(field.substr(0, eq)));
    double weight = 1;
    if (eq != std::string_view::npos) {
      const std::optional<double> w = parse_double(trim(field.substr(eq + 1)));
      if (!w || !std::isfinite(*w) || *w <= 0)
        throw Error(what + ": weight '" + std::string(field.substr(eq + 1)) + "' of '" + name + "' must be a positive number");
      weight = *w;
    }
    const auto& names = query_pattern_names();
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw Error(what + ": unknown query pattern '" + name + "' (known: siso, silo, liso, lilo)");
    for (const auto& [seen, unused] : mix)
      if (seen == name) throw Error(what + ": pattern '" + name + "' is given twice");
    mix.emplace_back(name, weight);
  }
  return mix;
}

int64_t WorkloadSpec::max_total_length() const {
  if (mix.empty()) return int64_t{input.max_length()} + output.max_length();
  int64_t longest = 0;
  for (const auto& [name, weight] : mix) {
    const auto [in, out] = pattern_lengths(patterns, name);
    longest = std::max(longest, int64_t{in->max_length()} + out->max_length());
  }
  return longest;
}

std::string WorkloadSpec::describe() const {
  if (mix.empty()) return "input " + input.describe() + ", output " + output.describe();
  std::string text;
  for (const auto& [name, weight] : mix) {
    const auto [in, out] = pattern_lengths(patterns, name);
    text += (text.empty() ? "" : "; ") + name + " (weight " + std::to_string(weight).substr(0, 4) + "): input " +
            in->describe() + ", output " + out->describe();
  }
  return text;
}

std::vector<RequestPlan> make_requests(const WorkloadSpec& spec, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(mix_seed(seed));
  std::vector<double> weights;
  for (const auto& [name, weight] : spec.mix) weights.push_back(weight);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::vector<RequestPlan> plans;
  plans.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) {
    RequestPlan plan;
    plan.index = i;
    if (spec.mix.empty()) {
      plan.pattern = "custom";
      plan.input_len = spec.input.sample(rng);
      plan.output_len = spec.output.sample(rng);
    } else {
      plan.pattern = spec.mix[pick(rng)].first;
      const auto [in, out] = pattern_lengths(spec.patterns, plan.pattern);
      plan.input_len = in->sample(rng);
      plan.output_len = out->sample(rng);
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

std::vector<int32_t> make_prompt_ids(int32_t length, const std::vector<int32_t>& vocabulary, uint64_t seed,
                                     int64_t request_index) {
  if (vocabulary.empty()) throw Error("no token ids to build prompts from");
  std::mt19937_64 rng(mix_seed(seed ^ mix_seed(static_cast<uint64_t>(request_index))));
  std::uniform_int_distribution<size_t> pick(0, vocabulary.size() - 1);
  std::vector<int32_t> ids(static_cast<size_t>(std::max(length, 0)));
  for (int32_t& id : ids) id = vocabulary[pick(rng)];
  return ids;
}

}  // namespace tessera::bench
