// JobResult: human summary and JSON.
#include <cmath>
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

// JSON has no infinities or NaN (an aggregator that saw no value is +-inf): null instead.
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o << std::setprecision(17) << v;
  return o.str();
}

}  // namespace

std::string JobResult::summary() const {
  std::ostringstream o;
  o << std::fixed << std::setprecision(3);
  o << "job: " << seconds << " s on " << ranks << " rank(s)" << (cancelled ? ", cancelled" : "");
  if (ranks > 1) o << ", " << wire_bytes << " bytes between ranks";
  o << "\n";
  for (const auto& m : operators) {
    o << "  [" << m.node << "] " << m.name << ": " << m.records_in << " records in, " << m.records_out << " out";
    if (m.records_late > 0) o << ", " << m.records_late << " late";
    if (m.records_dropped > 0) o << ", " << m.records_dropped << " dropped (window closed)";
    o << "\n";
  }
  for (const auto& t : tasks) {
    const double total = t.busy_seconds + t.backpressured_seconds + t.idle_seconds;
    auto pct = [&](double x) { return total > 0 ? 100.0 * x / total : 0.0; };
    o << "  task " << t.task << " (" << t.subtasks << " subtasks) busy " << std::setprecision(0)
      << pct(t.busy_seconds) << "%, back-pressured " << pct(t.backpressured_seconds) << "%, idle "
      << pct(t.idle_seconds) << "%: " << t.name << "\n"
      << std::setprecision(3);
  }
  for (const auto& l : loops) {
    o << "  " << l.kind << " iteration '" << l.name << "': " << l.supersteps << " superstep(s)";
    if (!l.ended_by.empty()) o << ", ended by " << l.ended_by;
    if (l.resumed_from > 0) o << ", resumed from superstep " << l.resumed_from;
    if (l.checkpoints > 0) o << ", " << l.checkpoints << " checkpoint(s)";
    o << "\n";
    for (const auto& st : l.steps) {
      o << "    superstep " << st.superstep << ": " << std::setprecision(6) << st.seconds * 1e3
        << " ms, size " << st.size << ", " << st.exchange_bytes << " bytes exchanged";
      if (ranks > 1) o << " (" << st.wire_bytes << " between ranks)";
      for (const auto& [name, v] : st.aggregators) o << ", " << name << " = " << v;
      o << "\n" << std::setprecision(3);
    }
  }
  return o.str();
}

namespace {

// The fields of one job, as a JSON object (without the braces), each line indented by `in`.
void job_fields(std::ostringstream& o, const JobResult& r, const std::string& in) {
  o << in << "\"seconds\": " << json_number(r.seconds) << ",\n" << in << "\"ranks\": " << r.ranks << ",\n"
    << in << "\"cancelled\": " << (r.cancelled ? "true" : "false") << ",\n" << in << "\"restarts\": " << r.restarts
    << ",\n" << in << "\"wire_bytes\": " << r.wire_bytes << ",\n" << in << "\"operators\": [";
  for (std::size_t i = 0; i < r.operators.size(); ++i) {
    const auto& m = r.operators[i];
    o << (i ? "," : "") << "\n" << in << "  {\"node\": " << m.node << ", \"name\": " << json_string(m.name)
      << ", \"records_in\": " << m.records_in << ", \"records_out\": " << m.records_out;
    if (m.records_late > 0) o << ", \"records_late\": " << m.records_late;
    if (m.records_dropped > 0) o << ", \"records_dropped\": " << m.records_dropped;
    o << ", \"bytes_in\": " << m.bytes_in << ", \"bytes_out\": " << m.bytes_out << "}";
  }
  o << "\n" << in << "],\n" << in << "\"tasks\": [";
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& t = r.tasks[i];
    o << (i ? "," : "") << "\n" << in << "  {\"task\": " << t.task << ", \"name\": " << json_string(t.name)
      << ", \"subtasks\": " << t.subtasks << ", \"busy_seconds\": " << json_number(t.busy_seconds)
      << ", \"backpressured_seconds\": " << json_number(t.backpressured_seconds)
      << ", \"idle_seconds\": " << json_number(t.idle_seconds) << "}";
  }
  o << "\n" << in << "],\n" << in << "\"loops\": [";
  for (std::size_t i = 0; i < r.loops.size(); ++i) {
    const auto& l = r.loops[i];
    o << (i ? "," : "") << "\n" << in << "  {\"name\": " << json_string(l.name) << ", \"kind\": " << json_string(l.kind)
      << ", \"supersteps\": " << l.supersteps << ", \"ended_by\": " << json_string(l.ended_by)
      << ", \"resumed_from\": " << l.resumed_from << ", \"checkpoints\": " << l.checkpoints
      << ", \"checkpoints_skipped\": " << l.checkpoints_skipped << ", \"checkpoints_committed\": "
      << l.checkpoints_committed << ", \"checkpoint_backlog\": " << l.checkpoint_backlog
      << ", \"checkpoint_seconds\": " << json_number(l.checkpoint_seconds) << ", \"steps\": [";
    for (std::size_t j = 0; j < l.steps.size(); ++j) {
      const auto& st = l.steps[j];
      o << (j ? "," : "") << "\n" << in << "    {\"superstep\": " << st.superstep
        << ", \"seconds\": " << json_number(st.seconds) << ", \"size\": " << st.size
        << ", \"exchange_bytes\": " << st.exchange_bytes << ", \"wire_bytes\": " << st.wire_bytes
        << ", \"aggregators\": {";
      for (std::size_t k = 0; k < st.aggregators.size(); ++k)
        o << (k ? ", " : "") << json_string(st.aggregators[k].first) << ": " << json_number(st.aggregators[k].second);
      o << "}}";
    }
    o << "]}";
  }
  o << "\n" << in << "]";
}

void write_file(const std::string& path, const std::string& text) {
  detail::AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace

std::string JobResult::to_json() const {
  std::ostringstream o;
  o << "{\n";
  job_fields(o, *this, "  ");
  o << "\n}\n";
  return o.str();
}

std::string jobs_to_json(const std::vector<NamedJobResult>& jobs) {
  std::ostringstream o;
  o << "{\n  \"jobs\": [";
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    o << (i ? "," : "") << "\n    {\n      \"name\": " << json_string(jobs[i].name) << ",\n";
    job_fields(o, jobs[i].result, "      ");
    o << "\n    }";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

void write_jobs_json(const std::string& path, const std::vector<NamedJobResult>& jobs) {
  write_file(path, jobs_to_json(jobs));
}

void JobResult::write_json(const std::string& path) const { write_file(path, to_json()); }

}  // namespace gyre
