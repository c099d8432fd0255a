#include "core/tokenizer/utf8.hpp"

namespace tessera::utf8 {

SequenceCheck check_sequence(std::string_view bytes, std::size_t pos) {
  const auto b0 = static_cast<unsigned char>(bytes[pos]);
  if (b0 < 0x80) return {1, 0, false};
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 1, false};
  }
  std::size_t have = 1;
  while (have < need) {
    if (pos + have >= bytes.size()) return {0, have, true};
    const auto b = static_cast<unsigned char>(bytes[pos + have]);
    const unsigned char min = have == 1 ? lo : 0x80, max = have == 1 ? hi : 0xBF;
    if (b < min || b > max) return {0, have, false};
    ++have;
  }
  return {need, 0, false};
}

std::size_t append_lossy(std::string_view bytes, bool final, std::string& out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const SequenceCheck c = check_sequence(bytes, pos);
    if (c.valid_len > 0) {
      out.append(bytes.substr(pos, c.valid_len));
      pos += c.valid_len;
    } else if (c.incomplete_prefix && !final) {
      return pos;
    } else {
      out.append(kReplacementChar);
      pos += c.invalid_len;
    }
  }
  return pos;
}

bool is_valid(std::string_view bytes) {
  for (std::size_t pos = 0; pos < bytes.size();) {
    const SequenceCheck c = check_sequence(bytes, pos);
    if (c.valid_len == 0) return false;
    pos += c.valid_len;
  }
  return true;
}

char32_t next_code_point(std::string_view s, std::size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  const std::size_t len = sequence_length(b0);
  char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t i = 1; i < len && pos + i < s.size(); ++i) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  }
  pos += len;
  return cp;
}

void append_code_point(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

}  // namespace tessera::utf8
