// The non-template parts of window.h: assigner checks and the trigger tree's evaluation.
#include "gyre/core/window.h"

#include <algorithm>
#include <string>

#include "gyre/core/error.h"

namespace gyre {

const char* to_string(Timing t) {
  switch (t) {
    case Timing::kEarly: return "EARLY";
    case Timing::kOnTime: return "ON_TIME";
    case Timing::kLate: return "LATE";
  }
  return "?";
}

void WindowAssigner::check() const {
  switch (kind) {
    case Kind::kTumbling:
      if (size <= 0) throw PlanError("TumblingWindows: size must be > 0");
      break;
    case Kind::kSliding:
      if (size <= 0 || slide <= 0) throw PlanError("SlidingWindows: size and slide must be > 0");
      break;
    case Kind::kSession:
      if (gap <= 0) throw PlanError("SessionWindows: gap must be > 0");
      break;
    case Kind::kGlobal: break;
  }
}

std::string WindowAssigner::describe() const {
  switch (kind) {
    case Kind::kTumbling: return "tumbling(" + std::to_string(size) + ", offset " + std::to_string(offset) + ")";
    case Kind::kSliding:
      return "sliding(" + std::to_string(size) + " every " + std::to_string(slide) + ", offset " +
             std::to_string(offset) + ")";
    case Kind::kSession: return "session(gap " + std::to_string(gap) + ")";
    case Kind::kGlobal: return "global";
  }
  return "?";
}

// ---------------------------------------------------------------- trigger construction

using detail::TriggerContext;
using detail::TriggerNode;
using detail::TriggerOp;
using detail::TriggerState;

namespace {
constexpr std::int64_t kHasEarly = 1;
constexpr std::int64_t kHasLate = 2;
}  // namespace

Trigger Trigger::node(TriggerOp op, std::int64_t param, std::vector<Trigger> kids) {
  Trigger t;
  t.nodes_.push_back(TriggerNode{op, param, {}, 1});
  for (Trigger& k : kids) {
    const int base = static_cast<int>(t.nodes_.size());
    t.nodes_[0].kids.push_back(base);
    for (TriggerNode n : k.nodes_) {
      for (int& c : n.kids) c += base;
      t.nodes_.push_back(std::move(n));
    }
  }
  t.nodes_[0].size = static_cast<int>(t.nodes_.size());
  if (t.nodes_.size() > static_cast<std::size_t>(detail::kMaxTriggerNodes))
    throw PlanError("a trigger has at most " + std::to_string(detail::kMaxTriggerNodes) + " nodes: " + t.describe());
  return t;
}

Trigger Trigger::after_watermark() { return node(TriggerOp::kWatermark, 0, {}); }
Trigger Trigger::after_count(std::int64_t n) {
  if (n < 1) throw PlanError("Trigger::after_count(n) needs n >= 1");
  return node(TriggerOp::kCount, n, {});
}
Trigger Trigger::after_processing_time(Timestamp delay) {
  if (delay < 0) throw PlanError("Trigger::after_processing_time(delay) needs delay >= 0");
  return node(TriggerOp::kProcessingTime, delay, {});
}
Trigger Trigger::repeatedly(Trigger t) { return node(TriggerOp::kRepeatedly, 0, {std::move(t)}); }
Trigger Trigger::first_of(std::vector<Trigger> ts) {
  if (ts.empty()) throw PlanError("Trigger::first_of needs a trigger");
  return node(TriggerOp::kFirstOf, 0, std::move(ts));
}
Trigger Trigger::all_of(std::vector<Trigger> ts) {
  if (ts.empty()) throw PlanError("Trigger::all_of needs a trigger");
  return node(TriggerOp::kAllOf, 0, std::move(ts));
}
Trigger Trigger::sequence(std::vector<Trigger> ts) {
  if (ts.empty()) throw PlanError("Trigger::sequence needs a trigger");
  return node(TriggerOp::kSequence, 0, std::move(ts));
}
Trigger Trigger::never() { return node(TriggerOp::kNever, 0, {}); }

Trigger Trigger::with_early_firings(Trigger early) const {
  if (nodes_.empty() || nodes_[0].op != TriggerOp::kWatermark)
    throw PlanError("with_early_firings: only on Trigger::after_watermark()");
  if ((nodes_[0].param & kHasEarly) != 0) throw PlanError("with_early_firings given twice");
  std::vector<Trigger> kids{std::move(early)};
  if ((nodes_[0].param & kHasLate) != 0) {
    Trigger late;
    const TriggerNode& l = nodes_[static_cast<std::size_t>(nodes_[0].kids[0])];
    const int base = nodes_[0].kids[0];
    for (int i = base; i < base + l.size; ++i) {
      TriggerNode n = nodes_[static_cast<std::size_t>(i)];
      for (int& c : n.kids) c -= base;
      late.nodes_.push_back(std::move(n));
    }
    kids.push_back(std::move(late));
  }
  return node(TriggerOp::kWatermark, nodes_[0].param | kHasEarly, std::move(kids));
}

Trigger Trigger::with_late_firings(Trigger late) const {
  if (nodes_.empty() || nodes_[0].op != TriggerOp::kWatermark)
    throw PlanError("with_late_firings: only on Trigger::after_watermark()");
  if ((nodes_[0].param & kHasLate) != 0) throw PlanError("with_late_firings given twice");
  std::vector<Trigger> kids;
  if ((nodes_[0].param & kHasEarly) != 0) {
    Trigger early;
    const int base = nodes_[0].kids[0];
    const TriggerNode& e = nodes_[static_cast<std::size_t>(base)];
    for (int i = base; i < base + e.size; ++i) {
      TriggerNode n = nodes_[static_cast<std::size_t>(i)];
      for (int& c : n.kids) c -= base;
      early.nodes_.push_back(std::move(n));
    }
    kids.push_back(std::move(early));
  }
  kids.push_back(std::move(late));
  return node(TriggerOp::kWatermark, nodes_[0].param | kHasLate, std::move(kids));
}

Trigger Trigger::or_finally(Trigger until) const { return node(TriggerOp::kOrFinally, 0, {*this, std::move(until)}); }

std::string Trigger::describe() const { return nodes_.empty() ? "?" : describe(0); }

std::string Trigger::describe(int n) const {
  const TriggerNode& t = nodes_[static_cast<std::size_t>(n)];
  auto list = [&](const char* name) {
    std::string s = name;
    s += "(";
    for (std::size_t i = 0; i < t.kids.size(); ++i) s += (i ? ", " : "") + describe(t.kids[i]);
    return s + ")";
  };
  switch (t.op) {
    case TriggerOp::kWatermark: {
      std::string s = "after_watermark";
      std::size_t k = 0;
      if ((t.param & kHasEarly) != 0) s += ".early(" + describe(t.kids[k++]) + ")";
      if ((t.param & kHasLate) != 0) s += ".late(" + describe(t.kids[k++]) + ")";
      return s;
    }
    case TriggerOp::kCount: return "after_count(" + std::to_string(t.param) + ")";
    case TriggerOp::kProcessingTime: return "after_processing_time(" + std::to_string(t.param) + ")";
    case TriggerOp::kNever: return "never";
    case TriggerOp::kRepeatedly: return list("repeatedly");
    case TriggerOp::kFirstOf: return list("first_of");
    case TriggerOp::kAllOf: return list("all_of");
    case TriggerOp::kSequence: return list("sequence");
    case TriggerOp::kOrFinally: return describe(t.kids[0]) + ".or_finally(" + describe(t.kids[1]) + ")";
  }
  return "?";
}

bool Trigger::uses_processing_time() const {
  return std::any_of(nodes_.begin(), nodes_.end(), [](const TriggerNode& n) { return n.op == TriggerOp::kProcessingTime; });
}

// ---------------------------------------------------------------- evaluation

namespace {
bool is_finished(const TriggerState& s, int n) { return (s.finished >> n & 1u) != 0; }
void set_finished(TriggerState& s, int n) { s.finished |= 1u << n; }
int early_kid(const TriggerNode& t) { return (t.param & kHasEarly) != 0 ? t.kids[0] : -1; }
int late_kid(const TriggerNode& t) {
  if ((t.param & kHasLate) == 0) return -1;
  return t.kids[(t.param & kHasEarly) != 0 ? 1 : 0];
}
}  // namespace

void Trigger::init(TriggerState& s) const {
  s = TriggerState{};
  if (!nodes_.empty()) reset(0, s);
}

void Trigger::reset(int n, TriggerState& s) const {
  const int end = n + nodes_[static_cast<std::size_t>(n)].size;
  for (int i = n; i < end; ++i) {
    s.finished &= ~(1u << i);
    s.v[i] = nodes_[static_cast<std::size_t>(i)].op == TriggerOp::kProcessingTime ? kMaxTimestamp : 0;
  }
}

void Trigger::element(int n, TriggerState& s, const TriggerContext& c) const {
  if (is_finished(s, n)) return;
  const TriggerNode& t = nodes_[static_cast<std::size_t>(n)];
  switch (t.op) {
    case TriggerOp::kWatermark: {
      const int kid = s.v[n] == 0 ? early_kid(t) : late_kid(t);
      if (kid >= 0) element(kid, s, c);
      return;
    }
    case TriggerOp::kCount: ++s.v[n]; return;
    case TriggerOp::kProcessingTime:
      if (s.v[n] == kMaxTimestamp) s.v[n] = c.now + t.param;
      return;
    case TriggerOp::kNever: return;
    case TriggerOp::kSequence:
      if (s.v[n] < static_cast<std::int64_t>(t.kids.size())) element(t.kids[static_cast<std::size_t>(s.v[n])], s, c);
      return;
    case TriggerOp::kRepeatedly:
    case TriggerOp::kFirstOf:
    case TriggerOp::kAllOf:
    case TriggerOp::kOrFinally:
      for (int k : t.kids) element(k, s, c);
      return;
  }
}

bool Trigger::is_ready(int n, const TriggerState& s, const TriggerContext& c) const {
  if (is_finished(s, n)) return false;
  const TriggerNode& t = nodes_[static_cast<std::size_t>(n)];
  switch (t.op) {
    case TriggerOp::kWatermark: {
      if (s.v[n] == 0) {
        if (c.watermark >= c.max_timestamp) return true;
        const int e = early_kid(t);
        return e >= 0 && is_ready(e, s, c);
      }
      const int l = late_kid(t);
      return l >= 0 ? is_ready(l, s, c) : c.pending > 0;
    }
    case TriggerOp::kCount: return s.v[n] >= t.param;
    case TriggerOp::kProcessingTime: return s.v[n] != kMaxTimestamp && c.now >= s.v[n];
    case TriggerOp::kNever: return false;
    case TriggerOp::kRepeatedly: return is_ready(t.kids[0], s, c);
    case TriggerOp::kFirstOf:
      return std::any_of(t.kids.begin(), t.kids.end(), [&](int k) { return is_ready(k, s, c); });
    case TriggerOp::kAllOf:
      return std::all_of(t.kids.begin(), t.kids.end(), [&](int k) { return is_finished(s, k) || is_ready(k, s, c); });
    case TriggerOp::kSequence:
      return s.v[n] < static_cast<std::int64_t>(t.kids.size()) && is_ready(t.kids[static_cast<std::size_t>(s.v[n])], s, c);
    case TriggerOp::kOrFinally: return is_ready(t.kids[0], s, c) || is_ready(t.kids[1], s, c);
  }
  return false;
}

void Trigger::fire(int n, TriggerState& s, const TriggerContext& c) const {
  if (is_finished(s, n)) return;
  const TriggerNode& t = nodes_[static_cast<std::size_t>(n)];
  switch (t.op) {
    case TriggerOp::kWatermark: {
      const int e = early_kid(t), l = late_kid(t);
      if (s.v[n] == 0 && c.watermark >= c.max_timestamp) {
        s.v[n] = 1;  // on time: from now on the late firings
        if (e >= 0) reset(e, s);
        if (l >= 0) reset(l, s);
      } else if (s.v[n] == 0) {
        if (e >= 0) reset(e, s);  // early firings repeat
      } else if (l >= 0) {
        reset(l, s);  // late firings repeat
      }
      return;
    }
    case TriggerOp::kCount:
    case TriggerOp::kProcessingTime:
    case TriggerOp::kFirstOf:
    case TriggerOp::kAllOf:
      set_finished(s, n);
      return;
    case TriggerOp::kNever: return;
    case TriggerOp::kRepeatedly: reset(t.kids[0], s); return;
    case TriggerOp::kSequence: {
      const auto i = static_cast<std::size_t>(s.v[n]);
      if (i >= t.kids.size()) {
        set_finished(s, n);
        return;
      }
      fire(t.kids[i], s, c);
      if (is_finished(s, t.kids[i]) && ++s.v[n] >= static_cast<std::int64_t>(t.kids.size())) set_finished(s, n);
      return;
    }
    case TriggerOp::kOrFinally:
      if (is_ready(t.kids[1], s, c)) {
        set_finished(s, n);
        return;
      }
      fire(t.kids[0], s, c);
      if (is_finished(s, t.kids[0])) set_finished(s, n);
      return;
  }
}

Timestamp Trigger::deadline_of(int n, const TriggerState& s) const {
  if (is_finished(s, n)) return kMaxTimestamp;
  const TriggerNode& t = nodes_[static_cast<std::size_t>(n)];
  switch (t.op) {
    case TriggerOp::kWatermark: {
      const int kid = s.v[n] == 0 ? early_kid(t) : late_kid(t);
      return kid >= 0 ? deadline_of(kid, s) : kMaxTimestamp;
    }
    case TriggerOp::kProcessingTime: return s.v[n];
    case TriggerOp::kCount:
    case TriggerOp::kNever: return kMaxTimestamp;
    case TriggerOp::kSequence:
      return s.v[n] < static_cast<std::int64_t>(t.kids.size()) ? deadline_of(t.kids[static_cast<std::size_t>(s.v[n])], s)
                                                                : kMaxTimestamp;
    case TriggerOp::kRepeatedly:
    case TriggerOp::kFirstOf:
    case TriggerOp::kAllOf:
    case TriggerOp::kOrFinally: {
      Timestamp d = kMaxTimestamp;
      for (int k : t.kids) d = std::min(d, deadline_of(k, s));
      return d;
    }
  }
  return kMaxTimestamp;
}

void Trigger::merge(TriggerState& into, const TriggerState& other, const TriggerContext& c) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const auto n = static_cast<int>(i);
    switch (nodes_[i].op) {
      case TriggerOp::kCount: into.v[i] += other.v[i]; break;
      case TriggerOp::kProcessingTime: into.v[i] = std::min(into.v[i], other.v[i]); break;
      case TriggerOp::kWatermark:
        // The merged window's end may be ahead of the watermark again: early phase then.
        into.v[i] = c.watermark >= c.max_timestamp ? std::min(into.v[i], other.v[i]) : 0;
        break;
      case TriggerOp::kSequence: into.v[i] = std::min(into.v[i], other.v[i]); break;
      default: break;
    }
    if (!is_finished(other, n)) into.finished &= ~(1u << n);
  }
}

void Trigger::reopen(TriggerState& s, const TriggerContext& c) const {
  if (c.watermark >= c.max_timestamp) return;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == TriggerOp::kWatermark) s.v[i] = 0;
}

}  // namespace gyre
