#include "core/tokenizer/decoder.hpp"

#include <nlohmann/json.hpp>

#include "core/common/error.hpp"
#include "core/tokenizer/utf8.hpp"

namespace tessera {

DecoderPlan DecoderPlan::from_json(const nlohmann::json& config, const std::string& file) {
  DecoderPlan plan;
  if (config.is_null()) {
    plan.separator_.assign(1, ' ');
    return plan;
  }
  std::vector<nlohmann::json> steps;
  if (config.value("type", "") == "Sequence") {
    for (const auto& child : config.at("decoders")) steps.push_back(child);
  } else {
    steps.push_back(config);
  }
  // Stages must appear in this order: Replace* ByteFallback? Fuse? Strip?
  enum Stage { kReplace, kByteFallback, kFuse, kStrip } stage = kReplace;
  bool fused = false;
  for (const auto& step : steps) {
    const std::string type = step.value("type", "");
    const std::string where = file + ": decoder '" + type + "'";
    if (type == "ByteLevel") {
      if (steps.size() != 1) throw Error(where + " combined with other decoders is not supported");
      plan.mode_ = Mode::kByteLevel;
    } else if (type == "Replace" && stage == kReplace) {
      const auto& pattern = step.at("pattern");
      if (!pattern.contains("String")) throw Error(where + ": only String patterns are supported");
      const std::string from = pattern["String"].get<std::string>();
      if (from.empty()) throw Error(where + ": empty String pattern");
      plan.replacements_.emplace_back(from, step.at("content").get<std::string>());
    } else if (type == "ByteFallback" && stage <= kReplace) {
      plan.byte_fallback_ = true;
      stage = kByteFallback;
    } else if (type == "Fuse" && stage <= kByteFallback) {
      fused = true;
      stage = kFuse;
    } else if (type == "Strip" && stage <= kFuse) {
      const std::string content = step.at("content").get<std::string>();
      const int start = step.value("start", 0), stop = step.value("stop", 0);
      if (stop != 0) throw Error(where + ": stripping from the end (stop > 0) is not supported");
      std::size_t pos = 0;
      if (content.empty() || (utf8::next_code_point(content, pos), pos != content.size())) {
        throw Error(where + ": content must be one character");
      }
      // Strip before Fuse would apply to every token; only the fused form is supported.
      if (start > 0 && !fused) throw Error(where + ": Strip before Fuse is not supported");
      plan.strip_char_ = content;
      plan.strip_start_ = start;
      stage = kStrip;
    } else {
      throw Error(where + " is not supported here (supported: ByteLevel alone, or Replace..., ByteFallback, "
                          "Fuse, Strip(stop=0) in this order)");
    }
  }
  return plan;
}

DecodePiece DecoderPlan::piece_for(std::string_view token) const {
  DecodePiece piece;
  if (mode_ == Mode::kByteLevel) {
    piece.kind = DecodePiece::Kind::kText;
    // A token with a character outside the byte alphabet (e.g. an added token containing a space)
    // contributes its raw UTF-8, as in the Rust crate.
    const auto bytes = alphabet_.decode(token);
    piece.bytes = bytes ? *bytes : std::string(token);
    return piece;
  }
  if (byte_fallback_ && token.size() == 6 && token.starts_with("<0x") && token.ends_with('>')) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(token[3]), lo = hex(token[4]);
    if (hi >= 0 && lo >= 0) {
      piece.kind = DecodePiece::Kind::kByte;
      piece.bytes.push_back(static_cast<char>(hi * 16 + lo));
      return piece;
    }
  }
  piece.kind = DecodePiece::Kind::kText;
  std::string text(token);
  for (const auto& [from, to] : replacements_) {
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
      out.append(text, pos, hit - pos);
      out += to;
    }
    out.append(text, pos, std::string::npos);
    text = std::move(out);
  }
  piece.bytes = std::move(text);
  return piece;
}

}  // namespace tessera
