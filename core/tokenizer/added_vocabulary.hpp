#pragma once
// tokenizer.json "added_tokens": tokens matched verbatim in the input before the model runs.
// Matching follows the Rust crate's AddedVocabulary: leftmost-longest, non-overlapping; tokens with
// normalized=false are matched in the raw text, tokens with normalized=true in each normalized segment
// (their content normalized the same way); lstrip/rstrip swallow adjacent Unicode whitespace and
// single_word requires non-word characters (approximated as ASCII/non-ASCII letters and digits) around
// the match. Immutable after construction; thread-safe.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/string_map.hpp"

namespace tessera {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A piece of text that is either an added token (`token_id` set) or plain text to be tokenized.
struct TextSegment {
  std::optional<int32_t> token_id;
  std::string_view text;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the string matched for `tokens[i]` (its content, normalized when relevant).
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);

  // Appends the segments of `text` (in order, covering all of it except whitespace swallowed by
  // lstrip/rstrip) to `out`. Segments' text views point into `text`.
  void split(std::string_view text, std::vector<TextSegment>& out) const;
  bool empty() const { return by_pattern_.empty(); }

 private:
  struct Entry {
    int32_t id;
    bool single_word, lstrip, rstrip;
  };
  StringMap<Entry> by_pattern_;
  std::vector<std::size_t> lengths_desc_;  // distinct pattern lengths, longest first
  std::array<bool, 256> first_byte_{};
};

}  // namespace tessera
