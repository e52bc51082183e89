// JobResult: human summary and JSON.
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "gyre/core/config.h"
#include "gyre/core/error.h"
#include "gyre/core/text_io.h"

namespace gyre {
namespace {

std::string json_string(const std::string& s) {
  std::ostringstream o;
  o << '"';
  for (const char c : s) {
    switch (c) {
      case '"': o << "\\\""; break;
      case '\\': o << "\\\\"; break;
      case '\n': o << "\\n"; break;
      case '\t': o << "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          o << "\\u" << std::hex << std::setw(4) << std::setfill('0') << static_cast<int>(c) << std::dec;
        } else {
          o << c;
        }
    }
  }
  o << '"';
  return o.str();
}

}  // namespace

std::string JobResult::summary() const {
  std::ostringstream o;
  o << std::fixed << std::setprecision(3);
  o << "job: " << seconds << " s on " << ranks << " rank(s)" << (cancelled ? ", cancelled" : "");
  if (ranks > 1) o << ", " << wire_bytes << " bytes between ranks";
  o << "\n";
  for (const auto& m : operators)
    o << "  [" << m.node << "] " << m.name << ": " << m.records_in << " records in, " << m.records_out
      << " out\n";
  for (const auto& t : tasks) {
    const double total = t.busy_seconds + t.backpressured_seconds + t.idle_seconds;
    auto pct = [&](double x) { return total > 0 ? 100.0 * x / total : 0.0; };
    o << "  task " << t.task << " (" << t.subtasks << " subtasks) busy " << std::setprecision(0)
      << pct(t.busy_seconds) << "%, back-pressured " << pct(t.backpressured_seconds) << "%, idle "
      << pct(t.idle_seconds) << "%: " << t.name << "\n"
      << std::setprecision(3);
  }
  return o.str();
}

std::string JobResult::to_json() const {
  std::ostringstream o;
  o << std::setprecision(9);
  o << "{\n  \"seconds\": " << seconds << ",\n  \"ranks\": " << ranks
    << ",\n  \"cancelled\": " << (cancelled ? "true" : "false") << ",\n  \"wire_bytes\": " << wire_bytes
    << ",\n  \"operators\": [";
  for (std::size_t i = 0; i < operators.size(); ++i) {
    const auto& m = operators[i];
    o << (i ? "," : "") << "\n    {\"node\": " << m.node << ", \"name\": " << json_string(m.name)
      << ", \"records_in\": " << m.records_in << ", \"records_out\": " << m.records_out
      << ", \"bytes_in\": " << m.bytes_in << ", \"bytes_out\": " << m.bytes_out << "}";
  }
  o << "\n  ],\n  \"tasks\": [";
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    o << (i ? "," : "") << "\n    {\"task\": " << t.task << ", \"name\": " << json_string(t.name)
      << ", \"subtasks\": " << t.subtasks << ", \"busy_seconds\": " << t.busy_seconds
      << ", \"backpressured_seconds\": " << t.backpressured_seconds
      << ", \"idle_seconds\": " << t.idle_seconds << "}";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

void JobResult::write_json(const std::string& path) const {
  detail::AtomicFile f(path);
  f.write(to_json());
  f.commit();
}

}  // namespace gyre
