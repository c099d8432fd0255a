#include "tools/bench/results_csv.hpp"

#include <algorithm>
#include <numeric>
#include <sstream>

namespace tessera::bench {

namespace {

std::string number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

template <class T>
std::string optional_number(const std::optional<T>& v) {
  return v ? number(static_cast<double>(*v)) : std::string();
}

}  // namespace

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

void write_requests_csv(std::ostream& out, const BenchResult& result, const Slo& slo) {
  out << "run,label,id,pattern,input_len,output_len,prompt_tokens,output_tokens,scheduled_s,send_s,ttft_ms,tpot_ms,"
         "e2e_ms,itl_mean_ms,itl_max_ms,finish_reason,error,slo_met\n";
  for (size_t i = 0; i < result.runs.size(); ++i) {
    const RunResult& run = result.runs[i];
    for (const RequestRecord& r : run.phase.records) {
      const std::vector<double> itl = r.itl_ms();
      std::optional<double> itl_mean, itl_max;
      if (!itl.empty()) {
        itl_mean = std::accumulate(itl.begin(), itl.end(), 0.0) / static_cast<double>(itl.size());
        itl_max = *std::max_element(itl.begin(), itl.end());
      }
      out << i << ',' << csv_field(run.label) << ',' << csv_field(r.id) << ',' << csv_field(r.plan.pattern) << ','
          << r.plan.input_len << ',' << r.plan.output_len << ',' << optional_number(r.prompt_tokens) << ','
          << r.output_tokens() << ',' << optional_number(r.plan.arrival_s) << ',' << number(r.send_s) << ','
          << optional_number(r.ttft_ms()) << ',' << optional_number(r.tpot_ms()) << ',' << optional_number(r.e2e_ms())
          << ',' << optional_number(itl_mean) << ',' << optional_number(itl_max) << ',' << csv_field(r.finish_reason)
          << ',' << csv_field(r.error_code) << ',' << (slo.empty() ? "" : meets_slo(r, slo) ? "1" : "0") << '\n';
    }
  }
}

void write_summary_csv(std::ostream& out, const BenchResult& result) {
  out << "run,label,concurrency,request_rate,requests,completed,failed,duration_s,requests_per_s,output_tokens_per_s,"
         "total_tokens_per_s,goodput_requests_per_s";
  for (const char* metric : {"ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"})
    for (const char* stat : {"mean", "p50", "p90", "p95", "p99"}) out << ',' << metric << '_' << stat;
  out << '\n';
  for (size_t i = 0; i < result.runs.size(); ++i) {
    const RunResult& run = result.runs[i];
    const RunSummary& s = run.summary;
    out << i << ',' << csv_field(run.label) << ',' << optional_number(run.concurrency) << ','
        << optional_number(run.request_rate) << ',' << s.requests << ',' << s.completed << ',' << s.failed << ','
        << number(s.duration_s) << ',' << number(s.requests_per_s) << ',' << number(s.output_tokens_per_s) << ','
        << number(s.total_tokens_per_s) << ',' << optional_number(s.goodput_requests_per_s);
    for (const Distribution* d : {&s.ttft_ms, &s.itl_ms, &s.tpot_ms, &s.e2e_ms})
      out << ',' << number(d->mean) << ',' << number(d->p50) << ',' << number(d->p90) << ',' << number(d->p95) << ','
          << number(d->p99);
    out << '\n';
  }
}

}  // namespace tessera::bench
