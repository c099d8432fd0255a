#include "core/sampling/sampling_params.hpp"

#include <cmath>
#include <sstream>

#include "core/common/error.hpp"

namespace tessera {
namespace {

// Formats a value the way a user wrote it: "-1", "1.5", "nan", "inf" (not std::to_string's "1.500000").
template <typename T>
std::string show(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

[[noreturn]] void reject(const std::string& what, const std::string& got) {
  throw Error(what + " (got " + got + ")");
}

}  // namespace

void SamplingParams::validate(int32_t vocab_size) const {
  if (vocab_size <= 0) reject("vocab_size must be > 0", show(vocab_size));
  if (!std::isfinite(temperature) || temperature < 0.0f)
    reject("temperature must be a finite number >= 0", show(temperature));
  if (top_k < -1) reject("top_k must be >= 1, or 0 / -1 to disable it", show(top_k));
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) reject("top_p must be in (0, 1]", show(top_p));
  if (max_tokens < 1) reject("max_tokens must be >= 1", show(max_tokens));
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    int32_t id = stop_token_ids[i];
    if (id < 0 || id >= vocab_size)
      reject("stop_token_ids[" + show(i) + "] must be in [0, " + show(vocab_size) + ")", show(id));
  }
  if (stop.size() > kMaxStopStrings)
    reject("stop must hold at most " + show(kMaxStopStrings) + " strings", show(stop.size()));
  for (size_t i = 0; i < stop.size(); ++i)
    if (stop[i].empty()) reject("stop[" + show(i) + "] must be a non-empty string", "\"\"");
}

}  // namespace tessera
