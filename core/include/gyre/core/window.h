// Event-time windows: where in event time (assigners), when in processing time (triggers), how
// refinements relate (accumulation), what is computed (window functions).
//
//   #include "gyre/core/window.h"
//   gyre::OutputTag<Bid> late("late bids");
//   auto bids = gyre::assign_timestamps(raw, &Bid::ts_of, gyre::WatermarkStrategy::bounded_out_of_orderness(3'000));
//   auto out = gyre::window(bids.key_by([](const Bid& b) { return b.auction; }),
//                           [](const Bid& b) { return b.ts; }, gyre::TumblingWindows{10'000})
//                  .trigger(gyre::Trigger::after_watermark()
//                               .with_early_firings(gyre::Trigger::after_processing_time(1'000))
//                               .with_late_firings(gyre::Trigger::after_count(1)))
//                  .allowed_lateness(60'000)
//                  .accumulate(gyre::Accumulation::kRetracting)
//                  .late_output(late)
//                  .aggregate("bids per auction", CountAgg{});
//   // out: Stream<WindowResult<std::int64_t, std::int64_t>>; out.side_output(late): Stream<Bid>
//
// ASSIGNERS (windows are [start, end) in event time; a record with time t belongs to):
//   TumblingWindows{size, offset = 0}        [s, s + size) with s = t - (t - offset) mod size
//   SlidingWindows{size, slide, offset = 0}  every [s, s + size) with s = offset + i * slide <= t
//                                            < s + size (size / slide windows)
//   SessionWindows{gap}                      [t, t + gap), merged with every window of the key it
//                                            overlaps (start < other end && other start < end),
//                                            as records arrive, whatever their order: a late
//                                            record bridging two sessions merges them (their
//                                            accumulators with Agg::merge, trigger state and
//                                            pane count combined). end = last record + gap.
//   GlobalWindows{}                          one window [kMinTimestamp, kMaxTimestamp): fires by
//                                            a count / processing-time trigger, or at the end of
//                                            a bounded input (watermark +inf).
//
// KEYED AND NOT: window(keyed_stream, ts_fn, assigner) runs at the parallelism of the job with
// the keyed state of each key in its partition; window_all(stream, ts_fn, assigner) runs at
// parallelism 1 with key NoKey{}. ts_fn(const T&) -> Timestamp reads a record's event time
// (the one assign_timestamps used). The operator's watermark is the one the runtime aligned
// over its input channels (minimum over channels and ranks, idle and ended ones left out).
//
// WINDOW FUNCTIONS (the last call of the builder, naming the operator):
//   .aggregate(name, agg)  agg has create() -> Acc, add(Acc&, const T&), merge(Acc&, const Acc&),
//                          result(const Acc&) -> R; incremental: a window holds one Acc.
//   .reduce(name, f)       f(const T&, const T&) -> T, incremental; R = T.
//   .apply<R>(name, f)     f(const K&, const WindowInfo&, std::span<const T>, WindowOutput<R>&):
//                          sees every record of the window (kept in state) and its start / end,
//                          emits any number of R per firing.
// The output: Stream<WindowResult<K, R>> {key, start, end, value, kind (RowKind), pane}, with
// Pane {timing (kEarly / kOnTime / kLate), index (0, 1, ... per window), first, last}.
// Timing: kEarly while the watermark is before the window's end - 1; kOnTime for the pane the
// watermark passing the end fires (at most one per window); kLate for every pane after the end
// fired by a record or the clock. index counts the panes of one window (start, end) from 0
// (first: index 0); a session window made by a merge starts at 0 again, unless it is one of the
// merged windows. last: no pane of this window follows (set when that is known at the firing:
// the trigger finished, or the firing is at end + allowed lateness).
//
// TRIGGERS (when; a small tree of nodes, at most 8, evaluated per window with its state in the
// window's keyed state, no virtual call per record):
//   Trigger::after_watermark()                 (the default) fires when the watermark passes the
//                                              window end (on time), then once for every late
//                                              record (within the allowed lateness)
//     .with_early_firings(t)                   before the end: fires whenever t fires (t is reset
//                                              after each firing: repeated)
//     .with_late_firings(t)                    after the end: whenever t fires (repeated); with
//                                              Trigger::never(), late records only go out in the
//                                              final pane at end + lateness
//   Trigger::after_count(n)                    once, when the pane has n records
//   Trigger::after_processing_time(d)          once, d ms of processing time after the pane's
//                                              first record
//   Trigger::repeatedly(t)                     fires whenever t fires, for ever
//   Trigger::first_of({a, b, ...})             once, when any child fires
//   Trigger::all_of({a, b, ...})               once, when every child has fired
//   Trigger::sequence({a, b, ...})             a until it finishes, then b, ... (Beam's AfterEach)
//   t.or_finally(u)                            as t, and finishes when u fires
//   Trigger::never()                           never (only the final pane at end + lateness)
// A firing with no new record since the previous firing emits nothing, except the ON_TIME one:
// .on_time_behavior(OnTimeBehavior::kFireAlways) (the default, as Beam's) emits a pane when the
// watermark passes the end even if nothing came since the last (early) pane: accumulating /
// retracting, the window's value so far; discarding, the result of an empty accumulator (for
// reduce: no value). The ON_TIME firing is the watermark trigger's (after_watermark, nested or
// not), or, for other triggers, the final pane at the end when the allowed lateness is 0.
// OnTimeBehavior::kFireIfNonEmpty emits it only if records came since the previous pane.
// A trigger that finished closes its window: later records of that window are dropped (as Beam
// does; they are not late, not in records_late, but counted in OperatorMetrics::
// records_dropped of the window operator). At end +
// allowed lateness a window whose trigger has not finished emits what came since its last
// firing as its final pane, then its state and timers are purged (memory stays flat on an
// unbounded stream). Processing-time triggers use processing-time timers (the runtime's timer
// service); event-time ones event-time timers.
//
// ALLOWED LATENESS AND LATE DATA: .allowed_lateness(ms) (default 0). A record whose windows all
// have end - 1 + lateness <= the watermark (for sessions: its window after merging) is late: it
// goes to the side output .late_output(tag) (an OutputTag<T>: result.side_output(tag)) and is
// counted in the job metrics (OperatorMetrics::records_late of the window operator); without a
// tag it is dropped, still counted.
//
// ACCUMULATION (how): Accumulation::kDiscarding (default; each pane holds the records since the
// previous firing), kAccumulating (each pane holds all records of the window so far),
// kRetracting (accumulating, and each pane after the first first retracts the previous pane's
// values: -U old, then +U new; the first pane is +I). A session merge in retracting mode emits -D
// for the values the merged-away windows emitted; the merged window's next pane is +I.
// In kDiscarding / kAccumulating every value is +I.
//
// .observe_state(f): f(int partition, std::size_t bytes, std::size_t windows) after every
// watermark in every partition: the window state's memory (the state backend's accounting) and
// the number of live windows (for tests and monitoring).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/event.h"
#include "gyre/core/operator.h"
#include "gyre/core/row_kind.h"
#include "gyre/core/state.h"
#include "gyre/core/stream.h"

namespace gyre {

// ---------------------------------------------------------------- assigners

struct TumblingWindows {
  Timestamp size = 0;
  Timestamp offset = 0;
};
struct SlidingWindows {
  Timestamp size = 0;
  Timestamp slide = 0;
  Timestamp offset = 0;
};
struct SessionWindows {
  Timestamp gap = 0;
};
struct GlobalWindows {};

// Any of the four (implicitly made from each).
struct WindowAssigner {
  enum class Kind : std::uint8_t { kTumbling, kSliding, kSession, kGlobal };
  Kind kind = Kind::kGlobal;
  Timestamp size = 0, slide = 0, offset = 0, gap = 0;
  WindowAssigner(TumblingWindows w) : kind(Kind::kTumbling), size(w.size), slide(w.size), offset(w.offset) {}
  WindowAssigner(SlidingWindows w) : kind(Kind::kSliding), size(w.size), slide(w.slide), offset(w.offset) {}
  WindowAssigner(SessionWindows w) : kind(Kind::kSession), gap(w.gap) {}
  WindowAssigner(GlobalWindows) {}
  // Throws PlanError for a size, slide or gap <= 0.
  void check() const;
  std::string describe() const;
};

struct WindowInfo {
  Timestamp start = 0;
  Timestamp end = 0;  // exclusive
  Timestamp max_timestamp() const { return end == kMinTimestamp ? end : end - 1; }
};

// ---------------------------------------------------------------- panes and results

enum class Timing : std::uint8_t { kEarly = 0, kOnTime = 1, kLate = 2 };
const char* to_string(Timing t);  // "EARLY", "ON_TIME", "LATE"

struct Pane {
  Timing timing = Timing::kOnTime;
  std::uint32_t index = 0;
  bool first = true;
  bool last = false;
  friend bool operator==(const Pane&, const Pane&) = default;
};

template <class K, class R>
struct WindowResult {
  K key{};
  Timestamp start = 0;
  Timestamp end = 0;
  R value{};
  RowKind kind = RowKind::kInsert;
  Pane pane;
  friend bool operator==(const WindowResult&, const WindowResult&) = default;
};

template <class K, class R>
struct Codec<WindowResult<K, R>, std::enable_if_t<!std::is_trivially_copyable_v<WindowResult<K, R>>>> {
  static void encode(const WindowResult<K, R>& w, std::string& out) {
    Codec<K>::encode(w.key, out);
    Codec<Timestamp>::encode(w.start, out);
    Codec<Timestamp>::encode(w.end, out);
    Codec<R>::encode(w.value, out);
    Codec<RowKind>::encode(w.kind, out);
    Codec<Pane>::encode(w.pane, out);
  }
  static const char* decode(const char* p, const char* end, WindowResult<K, R>& w) {
    p = Codec<K>::decode(p, end, w.key);
    p = Codec<Timestamp>::decode(p, end, w.start);
    p = Codec<Timestamp>::decode(p, end, w.end);
    p = Codec<R>::decode(p, end, w.value);
    p = Codec<RowKind>::decode(p, end, w.kind);
    return Codec<Pane>::decode(p, end, w.pane);
  }
};

// The key of window_all.
struct NoKey {
  friend constexpr bool operator==(NoKey, NoKey) = default;
};
template <>
struct KeyHash<NoKey> {
  std::uint64_t operator()(NoKey) const { return 0; }
};

enum class Accumulation : std::uint8_t { kDiscarding = 0, kAccumulating = 1, kRetracting = 2 };

// Whether the firing at the watermark passing a window's end emits a pane without new records
// since the previous pane (Beam's Window.OnTimeBehavior).
enum class OnTimeBehavior : std::uint8_t { kFireAlways = 0, kFireIfNonEmpty = 1 };

// ---------------------------------------------------------------- triggers

namespace detail {

enum class TriggerOp : std::uint8_t {
  kWatermark,       // param bit 0: has early child, bit 1: has late child (early first)
  kCount,           // param: n
  kProcessingTime,  // param: delay after the pane's first record
  kNever,
  kRepeatedly,
  kFirstOf,
  kAllOf,
  kSequence,
  kOrFinally,  // kids: main, until
};

struct TriggerNode {
  TriggerOp op = TriggerOp::kNever;
  std::int64_t param = 0;
  std::vector<int> kids;  // node indices
  int size = 1;           // nodes in this subtree (it is [i, i + size))
};

inline constexpr int kMaxTriggerNodes = 8;

// Per window: one slot per node (count, deadline, phase or position) and finished bits.
struct TriggerState {
  std::int64_t v[kMaxTriggerNodes] = {};
  std::uint32_t finished = 0;
};

// What a trigger evaluation sees.
struct TriggerContext {
  Timestamp watermark = kMinTimestamp;
  Timestamp max_timestamp = 0;  // of the window
  Timestamp now = 0;            // processing time
  std::uint64_t pending = 0;    // records since the last firing
};

}  // namespace detail

class Trigger {
 public:
  static Trigger after_watermark();
  static Trigger after_count(std::int64_t n);
  static Trigger after_processing_time(Timestamp delay);
  static Trigger repeatedly(Trigger t);
  static Trigger first_of(std::vector<Trigger> ts);
  static Trigger all_of(std::vector<Trigger> ts);
  static Trigger sequence(std::vector<Trigger> ts);
  static Trigger never();
  // On after_watermark() only.
  Trigger with_early_firings(Trigger early) const;
  Trigger with_late_firings(Trigger late) const;
  Trigger or_finally(Trigger until) const;

  std::string describe() const;

  // ---- evaluation (window.cc), for the window operator ----
  void init(detail::TriggerState& s) const;
  void on_element(detail::TriggerState& s, const detail::TriggerContext& c) const { element(0, s, c); }
  bool ready(const detail::TriggerState& s, const detail::TriggerContext& c) const { return is_ready(0, s, c); }
  void on_fire(detail::TriggerState& s, const detail::TriggerContext& c) const { fire(0, s, c); }
  bool finished(const detail::TriggerState& s) const { return (s.finished & 1u) != 0; }
  // The earliest processing time at which the trigger may become ready (kMaxTimestamp: none).
  Timestamp deadline(const detail::TriggerState& s) const { return deadline_of(0, s); }
  // Two windows' states into one (a session merge); `c` is the merged window's.
  void merge(detail::TriggerState& into, const detail::TriggerState& other, const detail::TriggerContext& c) const;
  // A window whose end moved ahead of the watermark (a session grew): back to before its end.
  void reopen(detail::TriggerState& s, const detail::TriggerContext& c) const;
  bool uses_processing_time() const;
  const std::vector<detail::TriggerNode>& nodes() const { return nodes_; }

 private:
  static Trigger node(detail::TriggerOp op, std::int64_t param, std::vector<Trigger> kids);
  void reset(int n, detail::TriggerState& s) const;
  void element(int n, detail::TriggerState& s, const detail::TriggerContext& c) const;
  bool is_ready(int n, const detail::TriggerState& s, const detail::TriggerContext& c) const;
  void fire(int n, detail::TriggerState& s, const detail::TriggerContext& c) const;
  Timestamp deadline_of(int n, const detail::TriggerState& s) const;
  std::string describe(int n) const;

  std::vector<detail::TriggerNode> nodes_;  // node 0: the root
};

// What a full window function (apply) emits through.
template <class R>
class WindowOutput {
 public:
  explicit WindowOutput(std::vector<R>* out) : out_(out) {}
  void emit(const R& r) { out_->push_back(r); }
  void emit(R&& r) { out_->push_back(std::move(r)); }

 private:
  std::vector<R>* out_;
};

// ---------------------------------------------------------------- the operator

namespace detail {

// Settings of a window operator that do not depend on types.
struct WindowSpec {
  WindowAssigner assigner = GlobalWindows{};
  Trigger trigger = Trigger::after_watermark();
  Timestamp lateness = 0;
  Accumulation accumulation = Accumulation::kDiscarding;
  OnTimeBehavior on_time = OnTimeBehavior::kFireAlways;
  std::string late_tag;  // empty: late records are dropped
  std::function<void(int, std::size_t, std::size_t)> observe;
};

using WindowKey = std::pair<Timestamp, Timestamp>;  // start, end

inline Timestamp floor_mod(Timestamp a, Timestamp m) {
  const Timestamp r = a % m;
  return r < 0 ? r + m : r;
}
inline Timestamp cleanup_time(const WindowKey& w, Timestamp lateness) {
  const Timestamp max_ts = w.second - 1;
  return max_ts > kMaxTimestamp - lateness ? kMaxTimestamp - 1 : max_ts + lateness;
}

// The state of one window of one key.
template <class Acc, class R>
struct WindowSlot {
  Acc acc{};
  std::uint64_t pending = 0;  // records since the last firing
  TriggerState trigger;
  std::uint32_t panes = 0;
  bool on_time_done = false;
  std::vector<R> last;  // kRetracting: what the last pane emitted
};

// Window function policies: Acc, R, create, add, merge, result(key, window, acc, out).
template <class T, class Agg>
struct AggregatePolicy {
  using Acc = std::remove_cvref_t<decltype(std::declval<Agg&>().create())>;
  using R = std::remove_cvref_t<decltype(std::declval<Agg&>().result(std::declval<const Acc&>()))>;
  Agg agg;
  Acc create() { return agg.create(); }
  void add(Acc& a, const T& x) { agg.add(a, x); }
  void merge(Acc& a, const Acc& b) { agg.merge(a, b); }
  template <class K>
  void result(const K&, const WindowInfo&, const Acc& a, std::vector<R>& out) {
    out.push_back(agg.result(a));
  }
};

template <class T, class F>
struct ReducePolicy {
  using Acc = std::pair<T, bool>;
  using R = T;
  F f;
  Acc create() { return {T{}, false}; }
  void add(Acc& a, const T& x) {
    if (a.second) a.first = f(std::as_const(a.first), x);
    else a = {x, true};
  }
  void merge(Acc& a, const Acc& b) {
    if (!b.second) return;
    if (a.second) a.first = f(std::as_const(a.first), b.first);
    else a = b;
  }
  template <class K>
  void result(const K&, const WindowInfo&, const Acc& a, std::vector<R>& out) {
    if (a.second) out.push_back(a.first);
  }
};

template <class T, class Rt, class F>
struct ApplyPolicy {
  using Acc = std::vector<T>;
  using R = Rt;
  F f;
  Acc create() { return {}; }
  void add(Acc& a, const T& x) { a.push_back(x); }
  void merge(Acc& a, const Acc& b) { a.insert(a.end(), b.begin(), b.end()); }
  template <class K>
  void result(const K& k, const WindowInfo& w, const Acc& a, std::vector<R>& out) {
    WindowOutput<R> o(&out);
    f(k, w, std::span<const T>(a), o);
  }
};

}  // namespace detail

template <class Acc, class R>
struct Codec<detail::WindowSlot<Acc, R>, std::enable_if_t<Snapshottable<Acc> && Snapshottable<R>>> {
  static void encode(const detail::WindowSlot<Acc, R>& s, std::string& out) {
    Codec<Acc>::encode(s.acc, out);
    Codec<std::uint64_t>::encode(s.pending, out);
    Codec<detail::TriggerState>::encode(s.trigger, out);
    Codec<std::uint32_t>::encode(s.panes, out);
    Codec<bool>::encode(s.on_time_done, out);
    Codec<std::vector<R>>::encode(s.last, out);
  }
  static const char* decode(const char* p, const char* end, detail::WindowSlot<Acc, R>& s) {
    p = Codec<Acc>::decode(p, end, s.acc);
    p = Codec<std::uint64_t>::decode(p, end, s.pending);
    p = Codec<detail::TriggerState>::decode(p, end, s.trigger);
    p = Codec<std::uint32_t>::decode(p, end, s.panes);
    p = Codec<bool>::decode(p, end, s.on_time_done);
    return Codec<std::vector<R>>::decode(p, end, s.last);
  }
};

namespace detail {

template <class K, class T, class KF, class TsFn, class Policy>
class WindowOperator final : public KeyedOperator<K, T, WindowResult<K, typename Policy::R>> {
  using Acc = typename Policy::Acc;
  using R = typename Policy::R;
  using Out = WindowResult<K, R>;
  using Slot = WindowSlot<Acc, R>;
  using Kind = WindowAssigner::Kind;

 public:
  WindowOperator(KF key, TsFn ts, Policy policy, std::shared_ptr<const WindowSpec> spec)
      : key_(std::move(key)), ts_(std::move(ts)), policy_(std::move(policy)), spec_(std::move(spec)) {}
  WindowOperator(const WindowOperator& o) : WindowOperator(o.key_, o.ts_, o.policy_, o.spec_) {}

  void open(OperatorContext& ctx) override {
    windows_ = &this->state().template map<K, WindowKey, Slot>("windows");
    if (!spec_->late_tag.empty()) late_ = &ctx.output(OutputTag<T>(spec_->late_tag));
    proc_ = spec_->trigger.uses_processing_time();
  }

  void process(std::span<const T> in, Output<Out>& out) override {
    const Timestamp wm = this->current_watermark();
    now_ = proc_ ? this->processing_time() : 0;
    const WindowAssigner& a = spec_->assigner;
    for (const T& x : in) {
      const K k = key_(x);
      const Timestamp t = ts_(x);
      bool placed = false;
      switch (a.kind) {
        case Kind::kTumbling: {
          const Timestamp s = t - floor_mod(t - a.offset, a.size);
          placed = add(k, {s, s + a.size}, x, wm, out);
          break;
        }
        case Kind::kSliding: {
          const Timestamp last = t - floor_mod(t - a.offset, a.slide);
          for (Timestamp s = last; s > t - a.size; s -= a.slide) placed |= add(k, {s, s + a.size}, x, wm, out);
          break;
        }
        case Kind::kGlobal:
          placed = add(k, {kMinTimestamp, kMaxTimestamp}, x, wm, out);
          break;
        case Kind::kSession:
          placed = add_session(k, {t, t + a.gap}, x, wm, out);
          break;
      }
      if (!placed) {
        ++late_count_;
        this->context().count_late(1);
        if (late_ != nullptr) late_->emit(x);
      }
    }
  }

  void on_timer(const K& k, Timestamp /*time*/, TimeDomain domain, Output<Out>& out) override {
    const Timestamp wm = this->current_watermark();
    now_ = (proc_ || domain == TimeDomain::kProcessingTime) ? this->processing_time() : 0;
    keys_.clear();
    windows_->for_each(k, [&](const WindowKey& w, Slot&) { keys_.push_back(w); });
    for (const WindowKey& w : keys_) {
      Slot* s = windows_->get(k, w);
      if (s == nullptr) continue;
      const bool expired = cleanup_time(w, spec_->lateness) <= wm;
      const TriggerContext c = trigger_context(w, *s, wm);
      const bool by_watermark = domain == TimeDomain::kEventTime;
      if (!spec_->trigger.finished(s->trigger) && spec_->trigger.ready(s->trigger, c))
        fire(k, w, *s, c, expired, by_watermark, out);
      if (expired) {
        // The final pane; at the window's end (no lateness) it is the ON_TIME one, which
        // kFireAlways emits also without new records.
        const bool on_time_final = spec_->lateness == 0 && fire_always() && on_time_due(w, *s, wm, by_watermark);
        if (!spec_->trigger.finished(s->trigger) && (s->pending > 0 || on_time_final))
          emit_pane(k, w, *s, wm, true, by_watermark, out);
        windows_->erase(k, w);
      } else {
        schedule_processing(k, *s);
      }
    }
  }

  void on_watermark(Timestamp /*t*/, Output<Out>& /*out*/) override {
    if (spec_->observe) spec_->observe(this->context().partition(), this->state().memory_bytes(), live_windows());
  }

 private:
  std::size_t live_windows() const {
    std::size_t n = 0;
    windows_->for_each_key([&](const K& k) { n += windows_->size(k); });
    return n;
  }
  TriggerContext trigger_context(const WindowKey& w, const Slot& s, Timestamp wm) const {
    return TriggerContext{wm, w.second - 1, now_, s.pending};
  }
  bool late(const WindowKey& w, Timestamp wm) const { return cleanup_time(w, spec_->lateness) <= wm; }
  bool fire_always() const { return spec_->on_time == OnTimeBehavior::kFireAlways; }
  // The firing would make the window's ON_TIME pane (none went out yet).
  static bool on_time_due(const WindowKey& w, const Slot& s, Timestamp wm, bool by_watermark) {
    return by_watermark && !s.on_time_done && wm >= w.second - 1;
  }

  Slot fresh() {
    Slot s;
    s.acc = policy_.create();
    spec_->trigger.init(s.trigger);
    return s;
  }
  void register_timers(const K& k, const WindowKey& w) {
    this->register_event_time_timer(k, w.second - 1);
    if (spec_->lateness > 0) this->register_event_time_timer(k, cleanup_time(w, spec_->lateness));
  }

  // Adds x to window w of k (made if new); false if w is late.
  bool add(const K& k, const WindowKey& w, const T& x, Timestamp wm, Output<Out>& out) {
    if (late(w, wm)) return false;
    Slot* s = windows_->get(k, w);
    if (s == nullptr) {
      windows_->put(k, w, fresh());
      s = windows_->get(k, w);
      register_timers(k, w);
    }
    accumulate(k, w, *s, x, wm, out);
    return true;
  }

  void accumulate(const K& k, const WindowKey& w, Slot& s, const T& x, Timestamp wm, Output<Out>& out) {
    const Trigger& tr = spec_->trigger;
    if (tr.finished(s.trigger)) {  // closed window
      this->context().count_dropped(1);
      return;
    }
    policy_.add(s.acc, x);
    ++s.pending;
    TriggerContext c = trigger_context(w, s, wm);
    tr.on_element(s.trigger, c);
    if (tr.ready(s.trigger, c)) fire(k, w, s, c, false, false, out);
    schedule_processing(k, s);
  }

  bool add_session(const K& k, WindowKey w, const T& x, Timestamp wm, Output<Out>& out) {
    merging_.clear();
    windows_->for_each(k, [&](const WindowKey& o, Slot&) {
      if (o.first < w.second && w.first < o.second) merging_.push_back(o);
    });
    WindowKey merged = w;
    for (const WindowKey& o : merging_) {
      merged.first = std::min(merged.first, o.first);
      merged.second = std::max(merged.second, o.second);
    }
    if (late(merged, wm)) return false;
    if (merging_.size() == 1 && merging_[0] == merged) {
      accumulate(k, merged, *windows_->get(k, merged), x, wm, out);
      return true;
    }
    // The merged window is new, unless it is one of the old ones (which then keeps its panes);
    // the others' records, trigger state and records since their last firing are merged in.
    std::stable_partition(merging_.begin(), merging_.end(), [&](const WindowKey& o) { return o == merged; });
    Slot m = fresh();
    const TriggerContext mc{wm, merged.second - 1, now_, 0};
    bool first = true;
    for (const WindowKey& o : merging_) {
      Slot* s = windows_->get(k, o);
      const bool same = o == merged;
      if (spec_->accumulation == Accumulation::kRetracting && !same) {
        const Pane p{wm < o.second - 1 ? Timing::kEarly : Timing::kLate, s->panes, false, true};
        for (const R& r : s->last) out.emit(Out{k, o.first, o.second, r, RowKind::kDelete, p});
      }
      if (first) {
        m.acc = std::move(s->acc);
        m.trigger = s->trigger;
        m.pending = s->pending;
        if (same) {
          m.panes = s->panes;
          m.on_time_done = s->on_time_done;
          m.last = std::move(s->last);
        }
        first = false;
      } else {
        policy_.merge(m.acc, s->acc);
        spec_->trigger.merge(m.trigger, s->trigger, mc);
        m.pending += s->pending;
      }
      windows_->erase(k, o);
    }
    spec_->trigger.reopen(m.trigger, mc);
    // Behind the watermark already (a late record within the lateness merged it): any pane it
    // gets from now on is LATE, whatever the windows it replaces had emitted.
    m.on_time_done = wm >= merged.second - 1;
    windows_->put(k, merged, std::move(m));
    register_timers(k, merged);
    accumulate(k, merged, *windows_->get(k, merged), x, wm, out);
    return true;
  }

  void schedule_processing(const K& k, const Slot& s) {
    if (!proc_) return;
    const Timestamp d = spec_->trigger.deadline(s.trigger);
    if (d != kMaxTimestamp) this->register_processing_time_timer(k, d);
  }

  // The trigger fired: a pane (if records came since the last one), then the trigger moves on.
  // by_watermark: the firing is the watermark passing the end (an event-time timer), the one
  // that may be ON_TIME; a firing by a record or the clock after the end is LATE.
  void fire(const K& k, const WindowKey& w, Slot& s, const TriggerContext& c, bool closing, bool by_watermark,
            Output<Out>& out) {
    spec_->trigger.on_fire(s.trigger, c);
    if (s.pending == 0 && !(on_time_due(w, s, c.watermark, by_watermark) && fire_always())) {
      if (c.watermark >= w.second - 1 && by_watermark) s.on_time_done = true;
      return;
    }
    emit_pane(k, w, s, c.watermark, closing || spec_->trigger.finished(s.trigger), by_watermark, out);
  }

  void emit_pane(const K& k, const WindowKey& w, Slot& s, Timestamp wm, bool last, bool by_watermark,
                 Output<Out>& out) {
    Pane p;
    if (wm < w.second - 1) {
      p.timing = Timing::kEarly;
    } else {
      p.timing = !s.on_time_done && by_watermark ? Timing::kOnTime : Timing::kLate;
      s.on_time_done = true;
    }
    p.index = s.panes++;
    p.first = p.index == 0;
    p.last = last;
    results_.clear();
    policy_.result(k, WindowInfo{w.first, w.second}, s.acc, results_);
    if (spec_->accumulation == Accumulation::kRetracting) {
      const bool had = !s.last.empty();
      for (const R& r : s.last) out.emit(Out{k, w.first, w.second, r, RowKind::kUpdateBefore, p});
      for (const R& r : results_) out.emit(Out{k, w.first, w.second, r, had ? RowKind::kUpdateAfter : RowKind::kInsert, p});
      s.last = results_;
    } else {
      for (const R& r : results_) out.emit(Out{k, w.first, w.second, r, RowKind::kInsert, p});
    }
    if (spec_->accumulation == Accumulation::kDiscarding) s.acc = policy_.create();
    s.pending = 0;
  }

  KF key_;
  TsFn ts_;
  Policy policy_;
  std::shared_ptr<const WindowSpec> spec_;
  MapState<K, WindowKey, Slot>* windows_ = nullptr;
  Output<T>* late_ = nullptr;
  bool proc_ = false;
  Timestamp now_ = 0;
  std::vector<WindowKey> keys_, merging_;
  std::vector<R> results_;
  std::uint64_t late_count_ = 0;
};

}  // namespace detail

// ---------------------------------------------------------------- the builder

template <Record T, class KF, class TsFn>
class WindowedStream {
 public:
  using K = KeyOf<KF, T>;

  WindowedStream(Stream<T> in, KF key, TsFn ts, WindowAssigner a, int parallelism)
      : in_(std::move(in)), key_(std::move(key)), ts_(std::move(ts)), parallelism_(parallelism) {
    a.check();
    spec_.assigner = a;
  }

  WindowedStream& trigger(Trigger t) {
    spec_.trigger = std::move(t);
    return *this;
  }
  WindowedStream& allowed_lateness(Timestamp ms) {
    if (ms < 0) throw PlanError("allowed_lateness must be >= 0");
    spec_.lateness = ms;
    return *this;
  }
  WindowedStream& accumulate(Accumulation a) {
    spec_.accumulation = a;
    return *this;
  }
  WindowedStream& on_time_behavior(OnTimeBehavior b) {
    spec_.on_time = b;
    return *this;
  }
  WindowedStream& late_output(const OutputTag<T>& tag) {
    spec_.late_tag = tag.name();
    return *this;
  }
  WindowedStream& observe_state(std::function<void(int, std::size_t, std::size_t)> f) {
    spec_.observe = std::move(f);
    return *this;
  }

  template <class Agg>
  auto aggregate(std::string name, Agg agg) const {
    return build(std::move(name), detail::AggregatePolicy<T, Agg>{std::move(agg)});
  }
  template <class F>
    requires ReduceFunction<F, T>
  Stream<WindowResult<K, T>> reduce(std::string name, F f) const {
    return build(std::move(name), detail::ReducePolicy<T, F>{std::move(f)});
  }
  template <Record R, class F>
  Stream<WindowResult<K, R>> apply(std::string name, F f) const {
    return build(std::move(name), detail::ApplyPolicy<T, R, F>{std::move(f)});
  }

 private:
  template <class Policy>
  Stream<WindowResult<K, typename Policy::R>> build(std::string name, Policy policy) const {
    using Out = WindowResult<K, typename Policy::R>;
    using Op = detail::WindowOperator<K, T, KF, TsFn, Policy>;
    OperatorBuilder b(in_.env(), "window");
    b.name(std::move(name)).keyed();
    if (parallelism_ > 0) b.parallelism(parallelism_);
    b.input_by_key(in_, key_);
    b.one_input(Op(key_, ts_, std::move(policy), std::make_shared<const detail::WindowSpec>(spec_)));
    return b.template stream<Out>();
  }

  Stream<T> in_;
  KF key_;
  TsFn ts_;
  int parallelism_ = 0;
  detail::WindowSpec spec_;
};

// Keyed windows on `s` (records of a key in one partition), event time from ts(record).
template <Record T, class KF, class TsFn>
WindowedStream<T, KF, TsFn> window(const KeyedStream<T, KF>& s, TsFn ts, WindowAssigner a) {
  return WindowedStream<T, KF, TsFn>(s.input(), s.key_function(), std::move(ts), a, 0);
}

namespace detail {
struct NoKeyOf {
  template <class T>
  NoKey operator()(const T&) const {
    return {};
  }
};
}  // namespace detail

// Windows over the whole stream (parallelism 1), key NoKey{}.
template <Record T, class TsFn>
WindowedStream<T, detail::NoKeyOf, TsFn> window_all(const Stream<T>& s, TsFn ts, WindowAssigner a) {
  return WindowedStream<T, detail::NoKeyOf, TsFn>(s, detail::NoKeyOf{}, std::move(ts), a, 1);
}

}  // namespace gyre
