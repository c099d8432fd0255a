#include "tools/bench/text_util.hpp"

#include <cmath>
#include <cstdlib>
#include <string>

#include "core/common/error.hpp"

namespace tessera::bench {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

std::string_view trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  const size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

std::optional<double> parse_double(std::string_view text) {
  if (text.empty() || text.front() == ' ' || text.front() == '+') return std::nullopt;
  const std::string copy(text);  // strtod needs a terminated string (the program keeps the "C" locale)
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_duration_ms(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double to_ms;
  };
  // "ms" and "us" before "s", so that "200ms" is not read as "200m" seconds.
  for (const Unit unit : {Unit{"ms", 1.0}, Unit{"us", 1e-3}, Unit{"s", 1e3}}) {
    if (text.size() > unit.suffix.size() && text.ends_with(unit.suffix)) {
      const std::optional<double> value = parse_double(text.substr(0, text.size() - unit.suffix.size()));
      if (!value || !std::isfinite(*value) || *value < 0) return std::nullopt;
      return *value * unit.to_ms;
    }
  }
  return std::nullopt;
}

std::vector<double> parse_positive_list(std::string_view text, const std::string& what) {
  std::vector<double> values;
  for (std::string_view field : split(text, ',')) {
    field = trim(field);
    const std::optional<double> value = parse_double(field);
    if (!value || !std::isfinite(*value) || *value <= 0)
      throw Error(what + ": '" + std::string(field) + "' is not a positive number (expected a list like 1,2,4)");
    values.push_back(*value);
  }
  return values;
}

}  // namespace tessera::bench
