#include "tools/bench/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/common/error.hpp"
#include "tools/bench/text_util.hpp"

namespace tessera::bench {

double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double h = (static_cast<double>(sorted.size()) - 1) * std::clamp(p, 0.0, 100.0) / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

Distribution describe(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.count = static_cast<int64_t>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  d.min = values.front();
  d.max = values.back();
  d.p50 = percentile_sorted(values, 50);
  d.p90 = percentile_sorted(values, 90);
  d.p95 = percentile_sorted(values, 95);
  d.p99 = percentile_sorted(values, 99);
  return d;
}

Slo Slo::parse(const std::string& text) {
  Slo slo;
  for (std::string_view field : split(text, ',')) {
    field = trim(field);
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos)
      throw Error("--slo: '" + std::string(field) + "' is not KEY=DURATION (e.g. ttft=200ms,itl=25ms,e2e=2s)");
    const std::string key(trim(field.substr(0, eq)));
    const std::string value(trim(field.substr(eq + 1)));
    const std::optional<double> ms = parse_duration_ms(value);
    if (!ms) throw Error("--slo: " + key + "='" + value + "' is not a duration with a unit (us, ms or s), e.g. 200ms");
    std::optional<double>* target = key == "ttft"   ? &slo.ttft_ms
                                    : key == "itl"  ? &slo.itl_ms
                                    : key == "tpot" ? &slo.tpot_ms
                                    : key == "e2e"  ? &slo.e2e_ms
                                                    : nullptr;
    if (!target) throw Error("--slo: unknown key '" + key + "' (known: ttft, itl, tpot, e2e)");
    if (target->has_value()) throw Error("--slo: '" + key + "' is given twice");
    *target = *ms;
  }
  return slo;
}

std::string Slo::describe() const {
  std::string text;
  auto add = [&](const char* name, const std::optional<double>& v) {
    if (!v) return;
    std::string number = std::to_string(*v);
    number.erase(number.find_last_not_of('0') + 1);
    if (number.back() == '.') number.pop_back();
    text += (text.empty() ? "" : ", ") + std::string(name) + "<=" + number + "ms";
  };
  add("ttft", ttft_ms);
  add("itl", itl_ms);
  add("tpot", tpot_ms);
  add("e2e", e2e_ms);
  return text.empty() ? "none" : text;
}

bool meets_slo(const RequestRecord& record, const Slo& slo) {
  if (!record.ok()) return false;
  if (slo.ttft_ms && !(record.ttft_ms() && *record.ttft_ms() <= *slo.ttft_ms)) return false;
  if (slo.itl_ms) {
    for (double gap : record.itl_ms())
      if (gap > *slo.itl_ms) return false;
  }
  if (slo.tpot_ms) {
    if (const auto tpot = record.tpot_ms(); tpot && *tpot > *slo.tpot_ms) return false;
  }
  if (slo.e2e_ms && !(record.e2e_ms() && *record.e2e_ms() <= *slo.e2e_ms)) return false;
  return true;
}

RunSummary summarize(const std::vector<RequestRecord>& records, const Slo& slo) {
  RunSummary s;
  s.requests = static_cast<int64_t>(records.size());
  double first_send = std::numeric_limits<double>::infinity(), last_end = -std::numeric_limits<double>::infinity();
  std::vector<double> ttft, itl, tpot, e2e, lag;
  int64_t good = 0;
  for (const RequestRecord& r : records) {
    first_send = std::min(first_send, r.send_s);
    if (r.end_s) last_end = std::max(last_end, *r.end_s);
    if (const auto l = r.send_lag_ms()) lag.push_back(*l);
    if (!r.ok()) {
      ++s.failed;
      ++s.errors[r.error_code.empty() ? std::string("no_reply") : r.error_code];
      continue;
    }
    ++s.completed;
    s.input_tokens += r.prompt_tokens.value_or(r.plan.input_len);
    s.output_tokens += r.output_tokens();
    if (const auto v = r.ttft_ms()) ttft.push_back(*v);
    if (const auto v = r.tpot_ms()) tpot.push_back(*v);
    if (const auto v = r.e2e_ms()) e2e.push_back(*v);
    const std::vector<double> gaps = r.itl_ms();
    itl.insert(itl.end(), gaps.begin(), gaps.end());
    if (!slo.empty() && meets_slo(r, slo)) ++good;
  }
  s.duration_s = last_end > first_send ? last_end - first_send : 0;
  if (s.duration_s > 0) {
    s.requests_per_s = static_cast<double>(s.completed) / s.duration_s;
    s.output_tokens_per_s = static_cast<double>(s.output_tokens) / s.duration_s;
    s.total_tokens_per_s = static_cast<double>(s.input_tokens + s.output_tokens) / s.duration_s;
  }
  if (!slo.empty()) {
    s.good_requests = good;
    s.goodput_requests_per_s = s.duration_s > 0 ? static_cast<double>(good) / s.duration_s : 0.0;
    s.slo_attainment = s.requests > 0 ? static_cast<double>(good) / static_cast<double>(s.requests) : 0.0;
  }
  s.ttft_ms = describe(std::move(ttft));
  s.itl_ms = describe(std::move(itl));
  s.tpot_ms = describe(std::move(tpot));
  s.e2e_ms = describe(std::move(e2e));
  s.send_lag_ms = describe(std::move(lag));
  return s;
}

}  // namespace tessera::bench
