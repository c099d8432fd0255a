#pragma once
// Small string helpers for tessera-bench's option and file parsing. Pure functions.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::bench {

// Splits on `sep`, keeping empty fields ("a,,b" -> {"a", "", "b"}).
std::vector<std::string_view> split(std::string_view text, char sep);
// Without leading and trailing spaces and tabs.
std::string_view trim(std::string_view text);
// The whole of `text` as a number (no spaces, no trailing characters); nullopt otherwise.
std::optional<double> parse_double(std::string_view text);
// A duration with a unit, "200ms", "1.5s", "250us" -> milliseconds; nullopt for anything else (a bare number
// has no unit and is refused, so "200" cannot silently mean seconds).
std::optional<double> parse_duration_ms(std::string_view text);
// Comma-separated positive numbers ("1,2,4.5"); throws tessera::Error naming `what` on an empty list, an empty
// field or a value that is not a positive finite number.
std::vector<double> parse_positive_list(std::string_view text, const std::string& what);

}  // namespace tessera::bench
