#include "tools/bench/request_record.hpp"

#include <algorithm>

namespace tessera::bench {

int32_t RequestRecord::output_tokens() const {
  int32_t total = 0;
  for (const ChunkArrival& c : chunks) total += c.tokens;
  return total;
}

std::optional<double> RequestRecord::ttft_ms() const {
  if (chunks.empty()) return std::nullopt;
  return (chunks.front().time_s - send_s) * 1e3;
}

std::optional<double> RequestRecord::e2e_ms() const {
  if (!end_s) return std::nullopt;
  return (*end_s - send_s) * 1e3;
}

std::optional<double> RequestRecord::tpot_ms() const {
  const int32_t n = output_tokens();
  if (n < 2) return std::nullopt;
  return (chunks.back().time_s - chunks.front().time_s) * 1e3 / (n - 1);
}

std::vector<double> RequestRecord::itl_ms() const {
  std::vector<double> gaps;
  if (chunks.empty()) return gaps;
  gaps.reserve(static_cast<size_t>(std::max(output_tokens() - 1, 0)));
  // Tokens delivered with token 0.
  for (int32_t i = 1; i < chunks.front().tokens; ++i) gaps.push_back(0.0);
  for (size_t k = 1; k < chunks.size(); ++k) {
    const double share = (chunks[k].time_s - chunks[k - 1].time_s) * 1e3 / chunks[k].tokens;
    for (int32_t i = 0; i < chunks[k].tokens; ++i) gaps.push_back(share);
  }
  return gaps;
}

std::optional<double> RequestRecord::send_lag_ms() const {
  if (!plan.arrival_s) return std::nullopt;
  return std::max(0.0, (send_s - *plan.arrival_s) * 1e3);
}

}  // namespace tessera::bench
