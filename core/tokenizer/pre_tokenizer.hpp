#pragma once
// tokenizer.json "pre_tokenizer": the supported subset of Hugging Face pre-tokenizers (Sequence,
// Split with a Regex/String pattern and any behavior, ByteLevel). Splits one normalized segment into
// the words handed to the model. Immutable after loading; thread-safe.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer/byte_level.hpp"
#include "core/tokenizer/pcre_regex.hpp"

namespace tessera {

class PreTokenizer {
 public:
  // `config` may be null (the whole segment is one word). Throws tessera::Error naming `file`.
  static PreTokenizer from_json(const nlohmann::json& config, const std::string& file);

  // Splits valid UTF-8 `text` into words (non-empty, in order).
  std::vector<std::string> split(std::string_view text) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    enum class Kind { kSplitRegex, kSplitString, kByteLevel } kind;
    std::shared_ptr<const PcreRegex> regex;  // kSplitRegex, or kByteLevel with use_regex
    std::string literal;                     // kSplitString
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // kByteLevel
  };
  static void append_steps(const nlohmann::json& config, const std::string& file, std::vector<Step>& steps);
  void apply(const Step& step, std::string_view piece, std::vector<std::string>& out) const;

  std::vector<Step> steps_;
  std::shared_ptr<const ByteLevelAlphabet> alphabet_;
};

}  // namespace tessera
