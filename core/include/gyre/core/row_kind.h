// The change kind of a row in a changelog: what a retracting window pane (window.h) and, later,
// a dynamic table emit beside each value.
//   +I  kInsert        a new row
//   -U  kUpdateBefore  retracts the row's previous value (an update follows)
//   +U  kUpdateAfter   the row's new value (after a -U)
//   -D  kDelete        the row is gone
#pragma once

#include <cstdint>

namespace gyre {

enum class RowKind : std::uint8_t { kInsert = 0, kUpdateBefore = 1, kUpdateAfter = 2, kDelete = 3 };

// "+I", "-U", "+U", "-D".
constexpr const char* to_string(RowKind k) {
  switch (k) {
    case RowKind::kInsert: return "+I";
    case RowKind::kUpdateBefore: return "-U";
    case RowKind::kUpdateAfter: return "+U";
    case RowKind::kDelete: return "-D";
  }
  return "?";
}
// +1 for a row that adds (+I, +U), -1 for one that takes away (-U, -D).
constexpr int sign(RowKind k) { return k == RowKind::kInsert || k == RowKind::kUpdateAfter ? 1 : -1; }

}  // namespace gyre
