#pragma once
// tokenizer.json "decoder", reduced to a per-token plan that both full decode and streaming decode
// run incrementally. Supported shapes (everything else is rejected at load time):
//  - ByteLevel: each token maps back to raw bytes; the concatenation is decoded as lossy UTF-8
//    (one U+FFFD per maximal invalid subpart, like Rust's String::from_utf8_lossy).
//  - Sequence of Replace(String) ..., then optionally ByteFallback, Fuse, Strip(start=N, stop=0)
//    (the SentencePiece/Llama-2 shape): Replace is applied per token; runs of consecutive <0xXX>
//    tokens become their bytes if the run is valid UTF-8, else one U+FFFD per byte token; Strip
//    removes up to N leading `content` characters of the fused text.
//  - no decoder: token strings joined with " " (the Rust crate's fallback).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer/byte_level.hpp"

namespace tessera {

// What one token id contributes to decoded text.
struct DecodePiece {
  enum class Kind : uint8_t { kAbsent, kText, kByte } kind = Kind::kAbsent;
  std::string bytes;  // kText: bytes to append (ByteLevel pieces may be partial UTF-8); kByte: one byte
};

class DecoderPlan {
 public:
  enum class Mode { kByteLevel, kPieces };

  // `config` may be null. Throws tessera::Error naming `file` for unsupported decoders.
  static DecoderPlan from_json(const nlohmann::json& config, const std::string& file);

  DecodePiece piece_for(std::string_view token) const;

  Mode mode() const { return mode_; }
  const std::string& separator() const { return separator_; }
  const std::string& strip_char() const { return strip_char_; }
  int strip_start() const { return strip_start_; }

 private:
  Mode mode_ = Mode::kPieces;
  std::vector<std::pair<std::string, std::string>> replacements_;
  bool byte_fallback_ = false;
  std::string strip_char_;
  int strip_start_ = 0;
  std::string separator_;
  ByteLevelAlphabet alphabet_;
};

}  // namespace tessera
