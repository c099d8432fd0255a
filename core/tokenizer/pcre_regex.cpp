#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer/pcre_regex.hpp"

#include <pcre2.h>

#include "core/common/error.hpp"

namespace tessera {

struct PcreRegex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {
std::string pcre_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}
}  // namespace

PcreRegex::PcreRegex(std::string_view pattern, const std::string& context) : context_(context) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  auto code = std::make_shared<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code->code == nullptr) {
    throw Error(context + ": cannot compile regex '" + std::string(pattern) + "' at offset " +
                std::to_string(error_offset) + ": " + pcre_message(error_code));
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  code_ = std::move(code);
}

std::vector<std::pair<std::size_t, std::size_t>> PcreRegex::find_all(std::string_view text) const {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t offset = 0;
  while (offset <= text.size()) {
    // The caller validated the UTF-8 once: without NO_UTF_CHECK every call would rescan the rest of
    // the text, making the split O(n^2).
    const uint32_t options = PCRE2_NO_UTF_CHECK;
    const int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), offset, options, data.get(), nullptr)
                              : pcre2_match(code_->code, subject, text.size(), offset, options, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(context_ + ": regex match failed: " + pcre_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const std::size_t begin = ovector[0], end = ovector[1];
    if (end > begin) matches.emplace_back(begin, end);
    if (end > offset) {
      offset = end;
    } else {
      // Empty match: step over one whole code point so we stay on a UTF-8 boundary.
      if (offset >= text.size()) break;
      const auto lead = static_cast<unsigned char>(text[offset]);
      offset += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    }
  }
  return matches;
}

}  // namespace tessera
