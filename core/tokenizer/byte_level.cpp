#include "core/tokenizer/byte_level.hpp"

#include "core/tokenizer/utf8.hpp"

namespace tessera {

ByteLevelAlphabet::ByteLevelAlphabet() {
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  char32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = printable(b) ? static_cast<char32_t>(b) : next_extra++;
    utf8::append_code_point(cp, byte_to_utf8_[b]);
    code_point_to_byte_[cp] = static_cast<uint8_t>(b);
  }
}

std::string ByteLevelAlphabet::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += byte_to_utf8_[static_cast<unsigned char>(c)];
  return out;
}

std::optional<std::string> ByteLevelAlphabet::decode(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const auto it = code_point_to_byte_.find(utf8::next_code_point(text, pos));
    if (it == code_point_to_byte_.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

}  // namespace tessera
