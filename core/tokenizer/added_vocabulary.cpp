#include "core/tokenizer/added_vocabulary.hpp"

#include <algorithm>

#include "core/tokenizer/utf8.hpp"

namespace tessera {

namespace {

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return !utf8::is_whitespace(cp);  // approximation of Rust's char::is_alphanumeric beyond ASCII
}

char32_t last_code_point(std::string_view s) {
  std::size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return utf8::next_code_point(s, start);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& pattern = patterns[i];
    if (pattern.empty()) continue;
    // A later duplicate replaces an earlier one, as in the Rust crate's map.
    by_pattern_[pattern] = Entry{tokens[i].id, tokens[i].single_word, tokens[i].lstrip, tokens[i].rstrip};
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    if (std::find(lengths_desc_.begin(), lengths_desc_.end(), pattern.size()) == lengths_desc_.end()) {
      lengths_desc_.push_back(pattern.size());
    }
  }
  std::sort(lengths_desc_.rbegin(), lengths_desc_.rend());
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  std::size_t segment_start = 0;  // start of the pending plain-text segment
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Entry* match = nullptr;
    std::size_t match_len = 0;
    if (first_byte_[static_cast<unsigned char>(text[pos])]) {
      for (const std::size_t len : lengths_desc_) {
        if (len > text.size() - pos) continue;
        const auto it = by_pattern_.find(text.substr(pos, len));
        if (it != by_pattern_.end()) {
          match = &it->second;
          match_len = len;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    std::size_t start = pos, stop = pos + match_len;
    if (match->single_word) {
      const bool space_before = start == 0 || !is_word_char(last_code_point(text.substr(0, start)));
      std::size_t after = stop;
      const bool space_after = stop == text.size() || !is_word_char(utf8::next_code_point(text, after));
      if (!space_before || !space_after) {
        pos = stop;  // the matcher moves past a rejected match, like aho-corasick's find_iter
        continue;
      }
    }
    if (match->lstrip) {
      std::size_t new_start = start;
      while (new_start > segment_start) {
        std::size_t cp_start = new_start - 1;
        while (cp_start > 0 && (static_cast<unsigned char>(text[cp_start]) & 0xC0) == 0x80) --cp_start;
        std::size_t p = cp_start;
        if (!utf8::is_whitespace(utf8::next_code_point(text, p))) break;
        new_start = cp_start;
      }
      start = new_start;
    }
    if (match->rstrip) {
      while (stop < text.size()) {
        std::size_t p = stop;
        if (!utf8::is_whitespace(utf8::next_code_point(text, p))) break;
        stop = p;
      }
    }
    if (segment_start < start) out.push_back({std::nullopt, text.substr(segment_start, start - segment_start)});
    out.push_back({match->id, text.substr(start, stop - start)});
    segment_start = pos = stop;
  }
  if (segment_start < text.size()) out.push_back({std::nullopt, text.substr(segment_start)});
}

}  // namespace tessera
