#include "core/tokenizer/pre_tokenizer.hpp"

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"

namespace tessera {

namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  std::size_t begin, end;
  bool is_match;
};

// Covers [0, size) with alternating non-match / match spans, as the Rust crate's find_matches does.
std::vector<Span> to_spans(const std::vector<std::pair<std::size_t, std::size_t>>& matches, std::size_t size,
                           bool invert) {
  std::vector<Span> spans;
  std::size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) spans.push_back({prev, begin, invert});
    spans.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != size) spans.push_back({prev, size, invert});
  return spans;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& config, const std::string& file) {
  PreTokenizer pre;
  if (!config.is_null()) append_steps(config, file, pre.steps_);
  for (const Step& step : pre.steps_) {
    if (step.kind == Step::Kind::kByteLevel) pre.alphabet_ = std::make_shared<const ByteLevelAlphabet>();
  }
  return pre;
}

void PreTokenizer::append_steps(const nlohmann::json& config, const std::string& file, std::vector<Step>& steps) {
  const std::string type = config.value("type", "");
  const std::string where = file + ": pre_tokenizer '" + type + "'";
  if (type == "Sequence") {
    for (const auto& child : config.at("pretokenizers")) append_steps(child, file, steps);
  } else if (type == "Split") {
    Step step{Step::Kind::kSplitRegex, nullptr, {}};
    const auto& pattern = config.at("pattern");
    if (pattern.contains("Regex")) {
      step.regex = std::make_shared<const PcreRegex>(pattern["Regex"].get<std::string>(), where);
    } else if (pattern.contains("String")) {
      step.kind = Step::Kind::kSplitString;
      step.literal = pattern["String"].get<std::string>();
      if (step.literal.empty()) throw Error(where + ": empty String pattern");
    } else {
      throw Error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }
    const std::string behavior = config.value("behavior", "Isolated");
    if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = Behavior::kContiguous;
    else throw Error(where + ": unknown behavior '" + behavior + "'");
    step.invert = config.value("invert", false);
    steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    Step step{Step::Kind::kByteLevel, nullptr, {}};
    step.add_prefix_space = config.value("add_prefix_space", true);
    if (config.value("use_regex", true)) step.regex = std::make_shared<const PcreRegex>(kGpt2Pattern, where);
    steps.push_back(std::move(step));
  } else {
    throw Error(where + " is not supported (supported: Sequence, Split, ByteLevel)");
  }
}

void PreTokenizer::apply(const Step& step, std::string_view piece, std::vector<std::string>& out) const {
  if (step.kind == Step::Kind::kByteLevel) {
    std::string text(piece);
    if (step.add_prefix_space && !text.starts_with(' ')) text.insert(text.begin(), ' ');
    if (!step.regex) {
      out.push_back(alphabet_->encode(text));
      return;
    }
    for (const Span& span : to_spans(step.regex->find_all(text), text.size(), false)) {
      out.push_back(alphabet_->encode(std::string_view(text).substr(span.begin, span.end - span.begin)));
    }
    return;
  }
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  if (step.kind == Step::Kind::kSplitRegex) {
    matches = step.regex->find_all(piece);
  } else {
    for (std::size_t hit, pos = 0; (hit = piece.find(step.literal, pos)) != std::string_view::npos;
         pos = hit + step.literal.size()) {
      matches.emplace_back(hit, hit + step.literal.size());
    }
  }
  // Mirrors NormalizedString::split in the Rust crate.
  std::vector<std::pair<std::size_t, std::size_t>> parts;
  const std::vector<Span> spans = to_spans(matches, piece.size(), step.invert);
  switch (step.behavior) {
    case Behavior::kIsolated:
      for (const Span& s : spans) parts.emplace_back(s.begin, s.end);
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) parts.emplace_back(s.begin, s.end);
      }
      break;
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !parts.empty()) parts.back().second = s.end;
        else parts.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !parts.empty()) parts.back().second = s.end;
        else parts.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !parts.empty()) parts.back().first = it->begin;
        else parts.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  for (const auto& [begin, end] : parts) {
    if (end > begin) out.emplace_back(piece.substr(begin, end - begin));
  }
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string> pieces;
  if (text.empty()) return pieces;
  pieces.emplace_back(text);
  std::vector<std::string> next;
  for (const Step& step : steps_) {
    next.clear();
    for (const std::string& piece : pieces) apply(step, piece, next);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace tessera
