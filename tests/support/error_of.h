// The message of the gyre::Error that `f` throws, or "(no error)": for tests that check what a
// user reads.
#pragma once

#include <functional>
#include <string>

#include "gyre/core/error.h"

namespace testenv {
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gyre::Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace testenv
