#pragma once
// Helpers shared by the protocol's .cpp files (not part of the public API).
#include <string>
#include <string_view>

namespace tessera::bus::detail {

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s);
// A float for error messages ("nan", "inf", "1.500000").
std::string show_number(double v);

}  // namespace tessera::bus::detail
