#pragma once
// The message of the tessera::Error that `f` throws, or "" when it throws none (other exceptions propagate), for
// tests that check what a user is told.
#include <functional>
#include <string>

#include "core/common/error.hpp"

namespace tessera::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace tessera::test
