#pragma once
// What a benchmark sends: per request an input length, an output length and the query pattern it came from.
// Lengths come from explicit distributions or from the four query patterns (short/long in × short/long out),
// alone or mixed by weight. Everything is drawn from one seed, so a run is reproducible.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tools/bench/length_distribution.hpp"

namespace tessera::bench {

// One request to send. `arrival_s` is the scheduled send time relative to the phase start (open loop and trace
// replay); nullopt in a closed loop, where a request goes out as soon as a slot is free.
struct RequestPlan {
  int64_t index = 0;        // 0-based position in its phase
  std::string pattern;      // "siso", "silo", "liso", "lilo", "custom" or a trace's label
  int32_t input_len = 1;    // prompt tokens, exact
  int32_t output_len = 1;   // generated tokens, exact (ignore_eos + max_tokens)
  std::optional<double> arrival_s;
};

// The lengths behind the four query patterns.
struct PatternLengths {
  LengthDistribution short_input = LengthDistribution::fixed(32);
  LengthDistribution long_input = LengthDistribution::fixed(1024);
  LengthDistribution short_output = LengthDistribution::fixed(32);
  LengthDistribution long_output = LengthDistribution::fixed(512);
};

// The known pattern names, in plot order: siso, silo, liso, lilo.
const std::vector<std::string>& query_pattern_names();

struct WorkloadSpec {
  // Empty: every request draws from `input` / `output` (pattern "custom"). Otherwise a pattern is drawn per
  // request with probability proportional to its weight, then its lengths from `patterns`.
  std::vector<std::pair<std::string, double>> mix;
  LengthDistribution input = LengthDistribution::fixed(128);
  LengthDistribution output = LengthDistribution::fixed(128);
  PatternLengths patterns;

  // Parses "siso=0.5,lilo=0.5" (weights > 0, relative) or a single name ("lilo" = weight 1). Throws
  // tessera::Error naming `what` for unknown names, duplicates and bad weights.
  static std::vector<std::pair<std::string, double>> parse_mix(const std::string& text, const std::string& what);
  // Longest input + output any request can have (for the check against the server's max_model_len).
  int64_t max_total_length() const;
  std::string describe() const;
};

// `count` requests drawn from `spec` with `seed` (arrival_s unset). Same spec, count and seed -> same plans.
std::vector<RequestPlan> make_requests(const WorkloadSpec& spec, int64_t count, uint64_t seed);

// Prompt token ids: `length` ids drawn uniformly from `vocabulary` (the allowed ids), seeded per request so the
// prompt of request i does not depend on the order requests are sent in. Throws tessera::Error when
// `vocabulary` is empty.
std::vector<int32_t> make_prompt_ids(int32_t length, const std::vector<int32_t>& vocabulary, uint64_t seed,
                                     int64_t request_index);

}  // namespace tessera::bench
