#pragma once
// Thin RAII wrapper over a PCRE2 pattern compiled with PCRE2_UTF | PCRE2_UCP (and JIT when available),
// used for pre-tokenizer Split patterns and Replace normalizers. Immutable after construction and
// safe to use from several threads at once (match data is allocated per call).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

class PcreRegex {
 public:
  // Throws tessera::Error mentioning `context` when the pattern does not compile.
  PcreRegex(std::string_view pattern, const std::string& context);

  // All non-overlapping matches in `text` as [begin, end) byte offsets. `text` must be valid UTF-8
  // (checked by the caller once, so PCRE2 skips its own per-call check).
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string context_;
};

}  // namespace tessera
