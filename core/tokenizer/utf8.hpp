#pragma once
// UTF-8 helpers shared by the tokenizer: lossy decoding with the same replacement rule as Rust's
// String::from_utf8_lossy (one U+FFFD per maximal invalid subpart), code point iteration and the
// Unicode White_Space test that Hugging Face `tokenizers` uses for added-token lstrip/rstrip.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::utf8 {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length in bytes of the valid UTF-8 sequence starting at bytes[pos], or 0 when the bytes there are
// not a complete valid sequence. `incomplete_prefix` is set when they are a valid but truncated prefix
// (more bytes could complete them); `invalid_len` is the length of the maximal invalid subpart otherwise.
struct SequenceCheck {
  std::size_t valid_len = 0;
  std::size_t invalid_len = 0;
  bool incomplete_prefix = false;
};
SequenceCheck check_sequence(std::string_view bytes, std::size_t pos);

// Appends `bytes` to `out` with every maximal invalid subpart replaced by U+FFFD. When `final` is
// false, a valid-but-incomplete sequence at the very end is left undecoded; the return value is the
// number of input bytes consumed (== bytes.size() when final).
std::size_t append_lossy(std::string_view bytes, bool final, std::string& out);

inline std::string to_valid_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_lossy(bytes, true, out);
  return out;
}

bool is_valid(std::string_view bytes);

// Decodes the code point at s[pos] (s must be valid UTF-8) and advances pos.
char32_t next_code_point(std::string_view s, std::size_t& pos);
void append_code_point(char32_t cp, std::string& out);
// Byte length of the code point whose lead byte is `lead` (valid UTF-8 assumed).
inline std::size_t sequence_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Unicode White_Space property (what Rust's char::is_whitespace tests).
bool is_whitespace(char32_t cp);

}  // namespace tessera::utf8
