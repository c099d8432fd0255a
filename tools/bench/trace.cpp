#include "tools/bench/trace.hpp"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "tools/bench/text_util.hpp"

namespace tessera::bench {

namespace {

int32_t read_length(const nlohmann::json& line, const char* key, const std::string& where) {
  if (!line.contains(key)) throw Error(where + ": missing \"" + key + "\"");
  const nlohmann::json& v = line.at(key);
  if (!v.is_number_integer()) throw Error(where + ": \"" + key + "\" must be an integer (got " + v.dump() + ")");
  const int64_t n = v.get<int64_t>();
  if (n < 1 || n > kMaxLength)
    throw Error(where + ": \"" + key + "\" = " + std::to_string(n) + " is outside [1, " + std::to_string(kMaxLength) + "]");
  return static_cast<int32_t>(n);
}

}  // namespace

std::vector<RequestPlan> parse_trace(std::istream& in, const std::string& name) {
  std::vector<RequestPlan> plans;
  std::string text;
  double previous = 0;
  for (int64_t line_number = 1; std::getline(in, text); ++line_number) {
    if (trim(text).empty() || trim(text) == "\r") continue;
    const std::string where = name + " line " + std::to_string(line_number);
    nlohmann::json line;
    try {
      line = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!line.is_object()) throw Error(where + ": expected a JSON object like {\"arrival_s\": 0.5, \"input_len\": 128, \"output_len\": 64}");
    for (const auto& [key, value] : line.items())
      if (key != "arrival_s" && key != "input_len" && key != "output_len" && key != "pattern")
        throw Error(where + ": unknown key \"" + key + "\" (allowed: arrival_s, input_len, output_len, pattern)");
    if (!line.contains("arrival_s")) throw Error(where + ": missing \"arrival_s\"");
    const nlohmann::json& t = line.at("arrival_s");
    if (!t.is_number()) throw Error(where + ": \"arrival_s\" must be a number of seconds (got " + t.dump() + ")");
    const double arrival = t.get<double>();
    if (!std::isfinite(arrival) || arrival < 0) throw Error(where + ": \"arrival_s\" must be >= 0 (got " + t.dump() + ")");
    if (arrival < previous)
      throw Error(where + ": \"arrival_s\" " + t.dump() + " is earlier than the previous line's " + std::to_string(previous) +
                  " (a trace must be in arrival order)");
    previous = arrival;
    RequestPlan plan;
    plan.index = static_cast<int64_t>(plans.size());
    plan.input_len = read_length(line, "input_len", where);
    plan.output_len = read_length(line, "output_len", where);
    plan.arrival_s = arrival;
    plan.pattern = "trace";
    if (line.contains("pattern")) {
      if (!line.at("pattern").is_string() || line.at("pattern").get<std::string>().empty())
        throw Error(where + ": \"pattern\" must be a non-empty string");
      plan.pattern = line.at("pattern").get<std::string>();
    }
    plans.push_back(std::move(plan));
  }
  if (plans.empty()) throw Error(name + ": the trace holds no requests");
  return plans;
}

std::vector<RequestPlan> load_trace(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open trace file '" + path.string() + "'");
  return parse_trace(in, path.string());
}

}  // namespace tessera::bench
