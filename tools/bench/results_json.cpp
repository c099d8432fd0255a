#include "tools/bench/results_json.hpp"

#include <cmath>

namespace tessera::bench {

namespace {

// Milliseconds to the microsecond, seconds to the microsecond: keeps the file small and readable.
double round6(double seconds) { return std::round(seconds * 1e6) / 1e6; }
double round3(double ms) { return std::round(ms * 1e3) / 1e3; }

nlohmann::json optional_ms(const std::optional<double>& v) { return v ? nlohmann::json(round3(*v)) : nlohmann::json(); }

nlohmann::json length_json(const LengthDistribution& d) { return d.describe(); }

nlohmann::json slo_json(const Slo& slo) {
  return {{"ttft_ms", slo.ttft_ms ? nlohmann::json(*slo.ttft_ms) : nlohmann::json()},
          {"itl_ms", slo.itl_ms ? nlohmann::json(*slo.itl_ms) : nlohmann::json()},
          {"tpot_ms", slo.tpot_ms ? nlohmann::json(*slo.tpot_ms) : nlohmann::json()},
          {"e2e_ms", slo.e2e_ms ? nlohmann::json(*slo.e2e_ms) : nlohmann::json()}};
}

nlohmann::json config_json(const BenchOptions& o) {
  nlohmann::json mix = nlohmann::json::object();
  for (const auto& [name, weight] : o.workload.mix) mix[name] = weight;
  return {{"mode", load_mode_name(o.mode)},
          {"concurrency_levels", o.mode == LoadMode::ClosedLoop ? nlohmann::json(o.concurrency_levels) : nlohmann::json()},
          {"request_rates", o.mode == LoadMode::OpenLoop ? nlohmann::json(o.request_rates) : nlohmann::json()},
          {"burstiness", o.mode == LoadMode::OpenLoop ? nlohmann::json(o.burstiness) : nlohmann::json()},
          {"max_concurrency", o.max_concurrency},
          {"trace", o.trace_path.empty() ? nlohmann::json() : nlohmann::json(o.trace_path)},
          {"num_requests", o.num_requests},
          {"warmup_requests", o.warmup_requests},
          {"workload", o.mode == LoadMode::Trace ? nlohmann::json("trace") : nlohmann::json(o.workload.describe())},
          {"input_len", o.workload.mix.empty() ? length_json(o.workload.input) : nlohmann::json()},
          {"output_len", o.workload.mix.empty() ? length_json(o.workload.output) : nlohmann::json()},
          {"pattern_mix", mix},
          {"pattern_lengths",
           {{"short_input", length_json(o.workload.patterns.short_input)},
            {"long_input", length_json(o.workload.patterns.long_input)},
            {"short_output", length_json(o.workload.patterns.short_output)},
            {"long_output", length_json(o.workload.patterns.long_output)}}},
          {"seed", o.seed},
          {"temperature", o.temperature},
          {"slo", slo_json(o.slo)},
          {"tokenizer", o.tokenizer_dir.empty() ? nlohmann::json() : nlohmann::json(o.tokenizer_dir)}};
}

nlohmann::json client_json(const ClientLoad& c) {
  return {{"wall_s", round6(c.wall_s)},
          {"cpu_s", round6(c.cpu_s)},
          {"cpu_share", c.wall_s > 0 ? c.cpu_s / c.wall_s : 0.0},
          {"busy_s", round6(c.busy_s)},
          {"loop_utilization", c.wall_s > 0 ? c.busy_s / c.wall_s : 0.0},
          {"messages", c.messages},
          {"messages_per_s", c.wall_s > 0 ? static_cast<double>(c.messages) / c.wall_s : 0.0},
          {"max_in_flight", c.max_in_flight_seen}};
}

}  // namespace

nlohmann::json distribution_json(const Distribution& d) {
  return {{"count", d.count}, {"mean", round3(d.mean)}, {"min", round3(d.min)}, {"p50", round3(d.p50)},
          {"p90", round3(d.p90)}, {"p95", round3(d.p95)}, {"p99", round3(d.p99)}, {"max", round3(d.max)}};
}

nlohmann::json summary_json(const RunSummary& s) {
  auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  return {{"requests", s.requests},
          {"completed", s.completed},
          {"failed", s.failed},
          {"errors", s.errors},
          {"duration_s", round6(s.duration_s)},
          {"input_tokens", s.input_tokens},
          {"output_tokens", s.output_tokens},
          {"requests_per_s", s.requests_per_s},
          {"output_tokens_per_s", s.output_tokens_per_s},
          {"total_tokens_per_s", s.total_tokens_per_s},
          {"good_requests", opt(s.good_requests)},
          {"goodput_requests_per_s", opt(s.goodput_requests_per_s)},
          {"slo_attainment", opt(s.slo_attainment)},
          {"ttft_ms", distribution_json(s.ttft_ms)},
          {"itl_ms", distribution_json(s.itl_ms)},
          {"tpot_ms", distribution_json(s.tpot_ms)},
          {"e2e_ms", distribution_json(s.e2e_ms)},
          {"send_lag_ms", distribution_json(s.send_lag_ms)}};
}

nlohmann::json request_json(const RequestRecord& r, const Slo& slo) {
  std::vector<double> itl = r.itl_ms();
  for (double& gap : itl) gap = round3(gap);
  return {{"id", r.id},
          {"pattern", r.plan.pattern},
          {"input_len", r.plan.input_len},
          {"output_len", r.plan.output_len},
          {"prompt_tokens", r.prompt_tokens ? nlohmann::json(*r.prompt_tokens) : nlohmann::json()},
          {"output_tokens", r.output_tokens()},
          {"usage_completion_tokens", r.usage_completion_tokens ? nlohmann::json(*r.usage_completion_tokens) : nlohmann::json()},
          {"scheduled_s", r.plan.arrival_s ? nlohmann::json(round6(*r.plan.arrival_s)) : nlohmann::json()},
          {"send_s", round6(r.send_s)},
          {"end_s", r.end_s ? nlohmann::json(round6(*r.end_s)) : nlohmann::json()},
          {"ttft_ms", optional_ms(r.ttft_ms())},
          {"tpot_ms", optional_ms(r.tpot_ms())},
          {"e2e_ms", optional_ms(r.e2e_ms())},
          {"chunks", r.chunks.size()},
          {"finish_reason", r.finish_reason.empty() ? nlohmann::json() : nlohmann::json(r.finish_reason)},
          {"error", r.error_code.empty() ? nlohmann::json() : nlohmann::json(r.error_code)},
          {"error_message", r.error_message.empty() ? nlohmann::json() : nlohmann::json(r.error_message)},
          {"slo_met", slo.empty() ? nlohmann::json() : nlohmann::json(meets_slo(r, slo))},
          {"itl_ms", itl}};
}

nlohmann::json results_json(const BenchOptions& options, const BenchResult& result) {
  const bus::InfoReply& s = result.server;
  nlohmann::json runs = nlohmann::json::array();
  for (const RunResult& run : result.runs) {
    nlohmann::json requests = nlohmann::json::array();
    for (const RequestRecord& r : run.phase.records) requests.push_back(request_json(r, options.slo));
    runs.push_back({{"label", run.label},
                    {"concurrency", run.concurrency ? nlohmann::json(*run.concurrency) : nlohmann::json()},
                    {"request_rate", run.request_rate ? nlohmann::json(*run.request_rate) : nlohmann::json()},
                    {"warmup_requests", run.warmup_requests},
                    {"summary", summary_json(run.summary)},
                    {"client", client_json(run.phase.client)},
                    {"requests", std::move(requests)}});
  }
  return {{"tool", "tessera-bench"},
          {"format_version", kResultsFormatVersion},
          {"label", options.label},
          {"command", options.command_line},
          {"started_at", result.started_at},
          {"server",
           {{"endpoint", options.server}, {"model", s.model}, {"vocab_size", s.vocab_size},
            {"max_model_len", s.max_model_len}, {"kv_capacity_tokens", s.kv_capacity_tokens},
            {"block_size", s.block_size}, {"max_num_seqs", s.max_num_seqs}}},
          {"config", config_json(options)},
          {"definitions",
           {{"clock", "client side, std::chrono::steady_clock; times in seconds since the start of each phase"},
            {"percentile", "linear interpolation between closest ranks (numpy default)"},
            {"ttft", "first tokens message read - submit"},
            {"e2e", "final message read - submit"},
            {"tpot", "(last tokens message - first) / (output tokens - 1)"},
            {"itl", "per output token position p >= 1: a message arriving dt after the previous one with n tokens "
                    "gives each of its tokens dt/n; tokens arriving with the first token get 0"},
            {"throughput", "completed requests' tokens / (last end - first submit)"},
            {"goodput", "requests meeting every SLO / (last end - first submit); itl SLO = every gap of the request"}}},
          {"runs", std::move(runs)}};
}

void write_results_json(std::ostream& out, const nlohmann::json& document) {
  // Each level: the keys indented, values pretty-printed; "requests" arrays one compact record per line.
  auto write_object = [&](const nlohmann::json& object, const std::string& indent, auto&& self) -> void {
    out << "{";
    bool first = true;
    for (const auto& [key, value] : object.items()) {
      out << (first ? "\n" : ",\n") << indent << " " << nlohmann::json(key).dump() << ": ";
      first = false;
      if (key == "runs" && value.is_array()) {
        out << "[";
        for (size_t i = 0; i < value.size(); ++i) {
          out << (i ? ",\n" : "\n") << indent << "  ";
          self(value[i], indent + "  ", self);
        }
        out << "\n" << indent << " ]";
      } else if (key == "requests" && value.is_array()) {
        out << "[";
        for (size_t i = 0; i < value.size(); ++i) out << (i ? ",\n" : "\n") << indent << "  " << value[i].dump();
        out << "\n" << indent << " ]";
      } else {
        out << value.dump();
      }
    }
    out << "\n" << indent << "}";
  };
  write_object(document, "", write_object);
  out << "\n";
}

}  // namespace tessera::bench
