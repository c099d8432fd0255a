#include "core/tokenizer/normalizer.hpp"

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "core/tokenizer/utf8.hpp"

namespace tessera {

Normalizer Normalizer::from_json(const nlohmann::json& config, const std::string& file) {
  Normalizer normalizer;
  if (!config.is_null()) append_steps(config, file, normalizer.steps_);
  return normalizer;
}

void Normalizer::append_steps(const nlohmann::json& config, const std::string& file, std::vector<Step>& steps) {
  const std::string type = config.value("type", "");
  const std::string where = file + ": normalizer '" + type + "'";
  if (type == "Sequence") {
    for (const auto& child : config.at("normalizers")) append_steps(child, file, steps);
  } else if (type == "Prepend") {
    steps.push_back(Step{Step::Kind::kPrepend, config.at("prepend").get<std::string>(), {}, nullptr});
  } else if (type == "Replace") {
    const auto& pattern = config.at("pattern");
    const std::string content = config.at("content").get<std::string>();
    if (pattern.contains("String")) {
      const std::string literal = pattern["String"].get<std::string>();
      if (literal.empty()) throw Error(where + ": empty String pattern");
      steps.push_back(Step{Step::Kind::kReplaceString, literal, content, nullptr});
    } else if (pattern.contains("Regex")) {
      auto regex = std::make_shared<const PcreRegex>(pattern["Regex"].get<std::string>(), where);
      steps.push_back(Step{Step::Kind::kReplaceRegex, {}, content, std::move(regex)});
    } else {
      throw Error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }
  } else if (type == "Strip") {
    Step step{Step::Kind::kStrip, {}, {}, nullptr};
    step.strip_left = config.value("strip_left", false);
    step.strip_right = config.value("strip_right", false);
    steps.push_back(std::move(step));
  } else {
    throw Error(where + " is not supported (supported: Sequence, Prepend, Replace, Strip)");
  }
}

namespace {

std::string strip_whitespace(std::string_view text, bool left, bool right) {
  std::size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end) {
      std::size_t pos = begin;
      if (!utf8::is_whitespace(utf8::next_code_point(text, pos))) break;
      begin = pos;
    }
  }
  if (right) {
    while (end > begin) {
      std::size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      std::size_t pos = start;
      if (!utf8::is_whitespace(utf8::next_code_point(text, pos))) break;
      end = start;
    }
  }
  return std::string(text.substr(begin, end - begin));
}

}  // namespace

std::string Normalizer::normalize(std::string_view text) const {
  std::string current(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::Kind::kPrepend:
        // HF prepends only to non-empty strings.
        if (!current.empty()) current.insert(0, step.text);
        break;
      case Step::Kind::kReplaceString: {
        std::string out;
        out.reserve(current.size());
        std::size_t pos = 0;
        for (std::size_t hit; (hit = current.find(step.text, pos)) != std::string::npos; pos = hit + step.text.size()) {
          out.append(current, pos, hit - pos);
          out += step.content;
        }
        out.append(current, pos, std::string::npos);
        current = std::move(out);
        break;
      }
      case Step::Kind::kReplaceRegex: {
        std::string out;
        std::size_t pos = 0;
        for (const auto& [begin, end] : step.regex->find_all(current)) {
          out.append(current, pos, begin - pos);
          out += step.content;
          pos = end;
        }
        out.append(current, pos, std::string::npos);
        current = std::move(out);
        break;
      }
      case Step::Kind::kStrip:
        current = strip_whitespace(current, step.strip_left, step.strip_right);
        break;
    }
  }
  return current;
}

}  // namespace tessera
