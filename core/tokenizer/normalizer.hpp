#pragma once
// tokenizer.json "normalizer": the supported subset of Hugging Face normalizers (Sequence, Prepend,
// Replace with a String or Regex pattern, Strip). Anything else is rejected at load time.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer/pcre_regex.hpp"

namespace tessera {

class Normalizer {
 public:
  // `config` may be null (identity). Throws tessera::Error naming `file` for unsupported types.
  static Normalizer from_json(const nlohmann::json& config, const std::string& file);

  // `text` must be valid UTF-8.
  std::string normalize(std::string_view text) const;
  bool is_identity() const { return steps_.empty(); }

 private:
  struct Step {
    enum class Kind { kPrepend, kReplaceString, kReplaceRegex, kStrip } kind;
    std::string text;     // Prepend: prefix; ReplaceString: the literal pattern
    std::string content;  // Replace: replacement
    std::shared_ptr<const PcreRegex> regex;
    bool strip_left = false, strip_right = false;
  };
  static void append_steps(const nlohmann::json& config, const std::string& file, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

}  // namespace tessera
