#pragma once
// Tessera's error type: every user-facing failure (bad file, bad parameter, bad input) is thrown as
// tessera::Error with a message that names the offending file, tensor or parameter.
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace tessera
