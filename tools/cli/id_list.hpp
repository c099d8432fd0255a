#pragma once
// Token id lists on the command line: "1,2,3", "1 2 3" or "[1, 2, 3]" in; "[1,2,3]" or "1,2,3" out.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::cli {

// Throws tessera::Error naming `what` (e.g. "--ids") on anything but integers separated by commas/whitespace,
// optionally inside one pair of brackets, or on ids outside [0, 2^31).
std::vector<int32_t> parse_id_list(std::string_view text, const std::string& what);
std::string format_json_array(const std::vector<int32_t>& ids);
std::string format_comma_list(const std::vector<int32_t>& ids);

}  // namespace tessera::cli
