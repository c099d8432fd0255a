#pragma once
// Trace replay input: a JSONL file, one request per line, e.g.
//   {"arrival_s": 0.0, "input_len": 512, "output_len": 128}
//   {"arrival_s": 0.35, "input_len": 40, "output_len": 300, "pattern": "chat"}
// arrival_s: seconds from the start of the replay (number >= 0, never decreasing from line to line);
// input_len / output_len: exact token counts (integers >= 1); pattern: an optional label for the reports
// (default "trace"). Blank lines are skipped; any other key is an error (it catches typos).
#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include "tools/bench/workload.hpp"

namespace tessera::bench {

// Plans with arrival_s set, in file order. Throws tessera::Error "TRACE line N: what is wrong" for a line that is
// not a JSON object, a missing or mistyped field, an out-of-range value, an unknown key or a decreasing time,
// and for a trace with no requests.
std::vector<RequestPlan> parse_trace(std::istream& in, const std::string& name);
std::vector<RequestPlan> load_trace(const std::filesystem::path& path);

}  // namespace tessera::bench
