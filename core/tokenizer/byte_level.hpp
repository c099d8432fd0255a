#pragma once
// GPT-2's reversible byte <-> printable-unicode mapping used by ByteLevel pre-tokenizers and
// decoders: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in order.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tessera {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();

  // Each byte of `bytes` replaced by the UTF-8 encoding of its mapped code point.
  std::string encode(std::string_view bytes) const;
  // Inverse of encode; std::nullopt when some character of `text` is not in the alphabet
  // (HF then falls back to the token's raw UTF-8 bytes).
  std::optional<std::string> decode(std::string_view text) const;

 private:
  std::array<std::string, 256> byte_to_utf8_;
  std::unordered_map<char32_t, uint8_t> code_point_to_byte_;
};

}  // namespace tessera
