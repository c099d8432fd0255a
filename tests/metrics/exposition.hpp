#pragma once
// A small reader of the Prometheus text exposition format for tests: every sample line "name{k="v",...} value"
// becomes one entry keyed by the name and its labels (sorted by label name), so tests look samples up exactly.
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::test {

using Labels = std::map<std::string, std::string>;

class Exposition {
 public:
  explicit Exposition(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      size_t i = 0;
      while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
      const std::string name = line.substr(0, i);
      Labels labels;
      if (i < line.size() && line[i] == '{') {
        ++i;
        while (i < line.size() && line[i] != '}') {
          const size_t eq = line.find('=', i);
          if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') throw bad(line);
          const std::string key = line.substr(i, eq - i);
          std::string value;
          size_t j = eq + 2;
          for (; j < line.size() && line[j] != '"'; ++j) {
            if (line[j] == '\\' && j + 1 < line.size()) ++j;
            value += line[j];
          }
          if (j >= line.size()) throw bad(line);
          labels[key] = value;
          i = j + 1;
          if (i < line.size() && line[i] == ',') ++i;
        }
        ++i;  // '}'
      }
      std::istringstream rest(line.substr(std::min(i, line.size())));
      std::string value;
      if (!(rest >> value)) throw bad(line);
      const std::string k = key(name, labels);
      if (samples_.emplace(k, std::stod(value)).second) order_.push_back(k);
    }
  }

  bool has(const std::string& name, const Labels& labels = {}) const { return samples_.count(key(name, labels)) != 0; }

  // The sample's value; throws std::out_of_range naming the series when it is absent.
  double value(const std::string& name, const Labels& labels = {}) const {
    auto it = samples_.find(key(name, labels));
    if (it == samples_.end()) throw std::out_of_range("no sample " + key(name, labels));
    return it->second;
  }

  // The `le` bounds of a histogram's buckets (`name` ends in _bucket), in exposition order, parsed as numbers.
  std::vector<double> bucket_bounds(const std::string& name) const {
    std::vector<double> bounds;
    for (const std::string& k : order_) {
      const std::string prefix = name + "{le=\"";
      if (k.rfind(prefix, 0) == 0) bounds.push_back(std::stod(k.substr(prefix.size())));
    }
    return bounds;
  }

  // Series of one metric name (any labels).
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& [k, v] : samples_) {
      if (k == name || k.rfind(name + "{", 0) == 0) ++n;
    }
    return n;
  }

  static std::string key(const std::string& name, const Labels& labels) {
    std::string k = name;
    if (!labels.empty()) {
      k += "{";
      for (const auto& [n, v] : labels) k += n + "=\"" + v + "\",";
      k.back() = '}';
    }
    return k;
  }

 private:
  static std::runtime_error bad(const std::string& line) { return std::runtime_error("bad exposition line: " + line); }
  std::map<std::string, double> samples_;
  std::vector<std::string> order_;  // keys in exposition order
};

}  // namespace tessera::test
