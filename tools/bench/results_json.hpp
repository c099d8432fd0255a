#pragma once
// tessera-bench's JSON document: configuration, server info, and per run the summary, the tool's own load and
// every request's record (with its ITL gaps by token position). tools/bench/report.py renders plots from it.
#include <ostream>

#include <nlohmann/json.hpp>

#include "tools/bench/bench_options.hpp"
#include "tools/bench/bench_run.hpp"

namespace tessera::bench {

// Format version of the document; report.py checks it.
inline constexpr int kResultsFormatVersion = 1;

nlohmann::json distribution_json(const Distribution& d);
nlohmann::json summary_json(const RunSummary& s);
nlohmann::json request_json(const RequestRecord& r, const Slo& slo);
nlohmann::json results_json(const BenchOptions& options, const BenchResult& result);
// Writes results_json()'s document readably but compactly: indented, except that each request record takes one line.
void write_results_json(std::ostream& out, const nlohmann::json& document);

}  // namespace tessera::bench
