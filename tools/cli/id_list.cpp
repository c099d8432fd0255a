#include "tools/cli/id_list.hpp"

#include <cctype>
#include <charconv>

#include "core/common/error.hpp"

namespace tessera::cli {

std::vector<int32_t> parse_id_list(std::string_view text, const std::string& what) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  if (!text.empty() && text.front() == '[') {
    if (text.back() != ']') throw Error(what + ": '[' without a closing ']'");
    text = text.substr(1, text.size() - 2);
  }
  std::vector<int32_t> ids;
  size_t i = 0;
  bool expect_number = true;  // after a comma a number must follow
  while (i < text.size()) {
    const char c = text[i];
    if (is_space(c)) {
      ++i;
    } else if (c == ',') {
      if (expect_number) throw Error(what + ": empty entry in the id list");
      expect_number = true;
      ++i;
    } else {
      int64_t value = 0;
      auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
      if (ec != std::errc() || end == text.data() + i) {
        throw Error(what + ": '" + std::string(text.substr(i, 16)) + "' is not a token id");
      }
      if (value < 0 || value > INT32_MAX) throw Error(what + ": token id " + std::to_string(value) + " out of range");
      ids.push_back(static_cast<int32_t>(value));
      i = static_cast<size_t>(end - text.data());
      expect_number = false;
    }
  }
  if (expect_number && !ids.empty()) throw Error(what + ": trailing comma in the id list");
  return ids;
}

static std::string join(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

std::string format_json_array(const std::vector<int32_t>& ids) { return "[" + join(ids) + "]"; }
std::string format_comma_list(const std::vector<int32_t>& ids) { return join(ids); }

}  // namespace tessera::cli
