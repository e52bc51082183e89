// Inside Nexmark: CSV fields of the event file and the query results. Not installed.
#pragma once

#include <cstdint>
#include <string>

namespace gyre::nexmark::detail {

void add_int(std::string& out, std::int64_t v);
void add_str(std::string& out, const char* s);  // up to its NUL (at most 256 bytes)
// One CSV field: an integer, or a NUL-terminated string (the records' fixed-size char arrays).
inline void add_field(std::string& out, std::int64_t v) { add_int(out, v); }
inline void add_field(std::string& out, const char* s) { add_str(out, s); }
// The fields, comma-separated, appended to out: add_fields(l, r.start, r.end, r.auction).
template <class First, class... Rest>
void add_fields(std::string& out, const First& first, const Rest&... rest) {
  add_field(out, first);
  ((out += ',', add_field(out, rest)), ...);
}

}  // namespace gyre::nexmark::detail
