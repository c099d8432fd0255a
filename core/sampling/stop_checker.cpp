#include "core/sampling/stop_checker.hpp"

#include <algorithm>

#include "core/common/error.hpp"

namespace tessera {
namespace {

std::vector<size_t> kmp_failure(const std::string& pattern) {
  std::vector<size_t> failure(pattern.size(), 0);
  size_t k = 0;
  for (size_t i = 1; i < pattern.size(); ++i) {
    while (k > 0 && pattern[i] != pattern[k]) k = failure[k - 1];
    if (pattern[i] == pattern[k]) ++k;
    failure[i] = k;
  }
  return failure;
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
  }
  return "?";
}

StopChecker::StopChecker(const SamplingParams& params, std::vector<int32_t> eos_token_ids)
    : max_tokens_(params.max_tokens) {
  if (!params.ignore_eos) stop_ids_ = std::move(eos_token_ids);
  stop_ids_.insert(stop_ids_.end(), params.stop_token_ids.begin(), params.stop_token_ids.end());
  std::sort(stop_ids_.begin(), stop_ids_.end());
  stop_ids_.erase(std::unique(stop_ids_.begin(), stop_ids_.end()), stop_ids_.end());
  for (const std::string& s : params.stop) {
    if (s.empty()) throw Error("stop strings must be non-empty");
    patterns_.push_back({s, kmp_failure(s), 0});
  }
}

bool StopChecker::is_stop_token(int32_t token_id) const {
  return std::binary_search(stop_ids_.begin(), stop_ids_.end(), token_id);
}

StopUpdate StopChecker::finish(FinishReason reason, std::string text) {
  finished_ = true;
  held_.clear();
  StopUpdate update;
  update.reason = reason;
  update.text = std::move(text);
  return update;
}

StopUpdate StopChecker::append(int32_t token_id, std::string_view text_delta) {
  if (finished_) throw Error("StopChecker::append called after generation finished");
  ++num_tokens_;
  if (is_stop_token(token_id)) {
    StopUpdate update = finish(FinishReason::Stop, std::move(held_));
    update.stop_token = token_id;
    return update;
  }

  const size_t delta_start = held_.size();
  held_.append(text_delta);
  // Feed the new bytes to every automaton; the first byte that completes any pattern ends generation.
  for (size_t pos = delta_start; pos < held_.size(); ++pos) {
    const StopPattern* winner = nullptr;
    for (StopPattern& p : patterns_) {
      size_t k = p.matched;
      while (k > 0 && held_[pos] != p.text[k]) k = p.failure[k - 1];
      if (held_[pos] == p.text[k]) ++k;
      p.matched = k;
      if (k == p.text.size() && (!winner || p.text.size() > winner->text.size())) winner = &p;
    }
    if (winner) {
      // The match started inside held_: everything before it was emitted only because it could not start a match.
      size_t match_start = pos + 1 - winner->text.size();
      StopUpdate update = finish(FinishReason::Stop, held_.substr(0, match_start));
      update.stop_string = winner->text;
      return update;
    }
  }

  if (num_tokens_ >= max_tokens_) return finish(FinishReason::Length, std::move(held_));

  // Hold back the longest suffix that is still a (proper) prefix of some stop string.
  size_t hold = 0;
  for (const StopPattern& p : patterns_) hold = std::max(hold, p.matched);
  StopUpdate update;
  update.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return update;
}

}  // namespace tessera
