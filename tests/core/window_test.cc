// Event time: assign_timestamps, windows, triggers, allowed lateness, accumulation, against a
// plain serial reference on seeded out-of-order streams. Runs in one process at parallelism 1,
// 2, 4 and under mpirun at 1, 2, 4 ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gyre/core.h"
#include "gyre/core/event_time.h"
#include "gyre/core/snapshot.h"
#include "gyre/core/window.h"
#include "../support/test_env.h"

namespace {

using gyre::Accumulation;
using gyre::RowKind;
using gyre::Timestamp;
using gyre::Timing;
using gyre::Trigger;

struct Ev {
  std::int64_t key = 0;
  Timestamp ts = 0;
  std::int64_t v = 0;
};

// The aggregate of the tests: count and sum of v.
struct CS {
  std::int64_t count = 0;
  std::int64_t sum = 0;
  friend bool operator==(const CS&, const CS&) = default;
  friend bool operator<(const CS& a, const CS& b) { return std::tie(a.count, a.sum) < std::tie(b.count, b.sum); }
};
struct CountSum {
  CS create() const { return {}; }
  void add(CS& a, const Ev& e) const {
    ++a.count;
    a.sum += e.v;
  }
  void merge(CS& a, const CS& b) const {
    a.count += b.count;
    a.sum += b.sum;
  }
  CS result(const CS& a) const { return a; }
};

using Result = gyre::WindowResult<std::int64_t, CS>;
using WKey = std::tuple<std::int64_t, Timestamp, Timestamp>;  // key, start, end

auto ts_of = [](const Ev& e) { return e.ts; };
auto key_of = [](const Ev& e) { return e.key; };

// ---------------------------------------------------------------- data and reference

// n records over `keys` keys; event time rises by `step` per record with up to `disorder` of
// jitter (a record is at most `disorder` behind the maximum before it).
std::vector<Ev> random_events(std::uint64_t seed, int n, int keys, Timestamp step, Timestamp disorder) {
  std::mt19937_64 rng(seed);
  std::vector<Ev> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Ev e;
    e.key = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(keys));
    e.ts = static_cast<Timestamp>(i) * step + static_cast<Timestamp>(rng() % static_cast<std::uint64_t>(disorder));
    e.v = static_cast<std::int64_t>(rng() % 1000);
    out.push_back(e);
  }
  return out;
}

Timestamp floor_mod(Timestamp a, Timestamp m) { return ((a % m) + m) % m; }

// The final value of every window, serially.
std::map<WKey, CS> reference(const std::vector<Ev>& evs, const gyre::WindowAssigner& a) {
  std::map<WKey, CS> out;
  using K = gyre::WindowAssigner::Kind;
  auto put = [&](const Ev& e, Timestamp s, Timestamp end) {
    CS& c = out[{e.key, s, end}];
    ++c.count;
    c.sum += e.v;
  };
  if (a.kind == K::kSession) {
    std::map<std::int64_t, std::vector<Ev>> by_key;
    for (const Ev& e : evs) by_key[e.key].push_back(e);
    for (auto& [k, v] : by_key) {
      std::sort(v.begin(), v.end(), [](const Ev& x, const Ev& y) { return x.ts < y.ts; });
      std::size_t i = 0;
      while (i < v.size()) {
        std::size_t j = i;
        Timestamp end = v[i].ts + a.gap;
        while (j + 1 < v.size() && v[j + 1].ts < end) end = std::max(end, v[++j].ts + a.gap);
        CS c;
        for (std::size_t x = i; x <= j; ++x) {
          ++c.count;
          c.sum += v[x].v;
        }
        out[{k, v[i].ts, end}] = c;
        i = j + 1;
      }
    }
    return out;
  }
  for (const Ev& e : evs) {
    switch (a.kind) {
      case K::kTumbling: {
        const Timestamp s = e.ts - floor_mod(e.ts - a.offset, a.size);
        put(e, s, s + a.size);
        break;
      }
      case K::kSliding:
        for (Timestamp s = e.ts - floor_mod(e.ts - a.offset, a.slide); s > e.ts - a.size; s -= a.slide)
          put(e, s, s + a.size);
        break;
      case K::kGlobal: put(e, gyre::kMinTimestamp, gyre::kMaxTimestamp); break;
      case K::kSession: break;
    }
  }
  return out;
}

// Panes per window, in index order; checks the pane metadata of each window's sequence.
std::map<WKey, std::vector<Result>> by_window(std::vector<Result> rs) {
  std::map<WKey, std::vector<Result>> out;
  for (const Result& r : rs) out[{r.key, r.start, r.end}].push_back(r);
  for (auto& [w, v] : out)
    std::stable_sort(v.begin(), v.end(), [](const Result& a, const Result& b) { return a.pane.index < b.pane.index; });
  return out;
}

void check_panes(const std::map<WKey, std::vector<Result>>& ws, Accumulation acc) {
  for (const auto& [w, v] : ws) {
    std::uint32_t expect = 0;
    int on_time = 0;
    Timing prev = Timing::kEarly;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const Result& r = v[i];
      if (r.kind == RowKind::kDelete) continue;  // a session merged away
      if (acc == Accumulation::kRetracting && r.kind == RowKind::kUpdateBefore) {
        // Retracts what the previous pane emitted.
        ASSERT_GT(i, 0u);
        ASSERT_EQ(v[i - 1].pane.index + 1, r.pane.index);
        EXPECT_EQ(v[i - 1].value, r.value);
        continue;
      }
      EXPECT_EQ(r.pane.index, expect) << "key " << std::get<0>(w) << " window " << std::get<1>(w);
      EXPECT_EQ(r.pane.first, expect == 0);
      if (acc == Accumulation::kRetracting) EXPECT_EQ(r.kind, expect == 0 ? RowKind::kInsert : RowKind::kUpdateAfter);
      else EXPECT_EQ(r.kind, RowKind::kInsert);
      EXPECT_GE(static_cast<int>(r.pane.timing), static_cast<int>(prev));
      prev = r.pane.timing;
      if (r.pane.timing == Timing::kOnTime) ++on_time;
      ++expect;
    }
    EXPECT_LE(on_time, 1);
  }
}

// The final value per window from the panes, as the accumulation mode defines it. Sessions in
// the non-retracting modes: panes of windows merged away are summed into the final session
// containing them (discarding), or only the final window's last pane counts (accumulating).
std::map<WKey, CS> finals(const std::vector<Result>& rs, Accumulation acc, const std::map<WKey, CS>& ref,
                          bool session) {
  std::map<WKey, CS> out;
  auto containing = [&](const Result& r) -> WKey {
    if (!session) return {r.key, r.start, r.end};
    auto it = ref.upper_bound(WKey{r.key, r.start, gyre::kMaxTimestamp});
    if (it == ref.begin()) return {r.key, r.start, r.end};
    --it;
    if (std::get<0>(it->first) == r.key && std::get<1>(it->first) <= r.start && r.end <= std::get<2>(it->first))
      return it->first;
    return {r.key, r.start, r.end};
  };
  if (acc == Accumulation::kRetracting) {
    for (const Result& r : rs) {
      CS& c = out[{r.key, r.start, r.end}];
      const int s = gyre::sign(r.kind);
      c.count += s * r.value.count;
      c.sum += s * r.value.sum;
    }
    std::erase_if(out, [](const auto& kv) { return kv.second == CS{}; });
    return out;
  }
  if (acc == Accumulation::kDiscarding) {
    for (const Result& r : rs) {
      CS& c = out[containing(r)];
      c.count += r.value.count;
      c.sum += r.value.sum;
    }
    return out;
  }
  std::map<WKey, std::uint32_t> best;
  for (const Result& r : rs) {
    const WKey w{r.key, r.start, r.end};
    if (session && containing(r) != w) continue;  // an intermediate session
    auto [it, fresh] = best.try_emplace(w, r.pane.index);
    if (fresh || r.pane.index >= it->second) {
      it->second = r.pane.index;
      out[w] = r.value;
    }
  }
  return out;
}

std::string name_of(const gyre::WindowAssigner& a) { return a.describe(); }

gyre::JobConfig config_for(int parallelism) {
  gyre::JobConfig c;
  c.parallelism = parallelism;
  c.batch_bytes = 64 * sizeof(Ev);  // small batches: many watermarks, much interleaving
  return c;
}

class WindowTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::JobConfig config() const { return config_for(GetParam()); }
};

// Runs one windowed job over `evs` (bounded, watermarks from bounded out-of-orderness).
std::vector<Result> run_windows(const gyre::JobConfig& cfg, const std::vector<Ev>& evs, const gyre::WindowAssigner& a,
                                const Trigger& t, Accumulation acc, Timestamp disorder, Timestamp lateness = 0) {
  auto env = testenv::make_env(cfg);
  auto timed = gyre::assign_timestamps(env.from_collection(evs), ts_of,
                                       gyre::WatermarkStrategy::bounded_out_of_orderness(disorder).with_record_interval(16));
  auto out = gyre::window(timed.key_by(key_of), ts_of, a)
                 .trigger(t)
                 .allowed_lateness(lateness)
                 .accumulate(acc)
                 .aggregate("count sum", CountSum{});
  auto got = out.collect();
  env.run();
  return testenv::values(got);
}

// ---------------------------------------------------------------- tests

TEST_P(WindowTest, TumblingDefaultTriggerExactPanes) {
  const Timestamp disorder = 40;
  const auto evs = random_events(11, 3000, 7, 2, disorder);
  const gyre::WindowAssigner a = gyre::TumblingWindows{100, 7};
  const auto rs = run_windows(config(), evs, a, Trigger::after_watermark(), Accumulation::kDiscarding, disorder);
  const auto ref = reference(evs, a);
  const auto ws = by_window(rs);
  ASSERT_EQ(ws.size(), ref.size());
  for (const auto& [w, panes] : ws) {
    ASSERT_EQ(panes.size(), 1u);
    const Result& r = panes[0];
    EXPECT_EQ(r.value, ref.at(w));
    EXPECT_EQ(r.pane, (gyre::Pane{Timing::kOnTime, 0, true, true}));
    EXPECT_EQ(r.kind, RowKind::kInsert);
  }
}

// Every window kind x a set of triggers x every accumulation mode: the final values per window
// (as the mode defines them) equal the serial reference; for the default trigger (and never)
// the exact panes.
TEST_P(WindowTest, KindsTriggersAccumulations) {
  const Timestamp disorder = 30;
  const auto evs = random_events(23, 1500, 5, 3, disorder);
  const std::vector<gyre::WindowAssigner> kinds = {gyre::TumblingWindows{100, 7}, gyre::SlidingWindows{100, 30},
                                                   gyre::SessionWindows{12}, gyre::GlobalWindows{}};
  struct T {
    std::string name;
    Trigger t;
    bool exact;  // one ON_TIME pane per window
  };
  const std::vector<T> triggers = {
      {"default", Trigger::after_watermark(), true},
      {"never", Trigger::never(), true},
      {"early/late counts",
       Trigger::after_watermark().with_early_firings(Trigger::after_count(2)).with_late_firings(Trigger::after_count(1)),
       false},
      {"repeatedly count", Trigger::repeatedly(Trigger::after_count(3)), false},
      {"repeatedly first_of(count, processing time)",
       Trigger::repeatedly(Trigger::first_of({Trigger::after_count(4), Trigger::after_processing_time(1)})), false},
      {"sequence", Trigger::sequence({Trigger::after_count(2), Trigger::repeatedly(Trigger::after_count(5))}), false},
  };
  for (const auto& a : kinds) {
    const auto ref = reference(evs, a);
    for (const T& t : triggers) {
      for (Accumulation acc : {Accumulation::kDiscarding, Accumulation::kAccumulating, Accumulation::kRetracting}) {
        SCOPED_TRACE(name_of(a) + " / " + t.name + " / accumulation " + std::to_string(static_cast<int>(acc)));
        const auto rs = run_windows(config(), evs, a, t.t, acc, disorder);
        const auto ws = by_window(rs);
        check_panes(ws, acc);
        const bool session = a.kind == gyre::WindowAssigner::Kind::kSession;
        EXPECT_EQ(finals(rs, acc, ref, session), ref);
        if (t.name == "early/late counts" && !session) {
          // kFireAlways (the default): every window has its ON_TIME pane, also one whose last
          // early pane took every record; accumulating, it holds the window's whole value.
          for (const auto& [w, panes] : ws) {
            int on_time = 0;
            for (const Result& r : panes) {
              if (r.pane.timing != Timing::kOnTime || r.kind == RowKind::kUpdateBefore) continue;
              ++on_time;
              if (acc != Accumulation::kDiscarding) {
                EXPECT_EQ(r.value, ref.at(w));
              }
            }
            EXPECT_EQ(on_time, 1) << "window " << std::get<1>(w);
          }
        }
        if (t.exact) {
          ASSERT_EQ(ws.size(), ref.size());
          for (const auto& [w, panes] : ws) {
            ASSERT_EQ(panes.size(), 1u);
            EXPECT_EQ(panes[0].pane.timing, Timing::kOnTime);
            EXPECT_TRUE(panes[0].pane.last);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- scripted sources

// A bounded source: each partition runs its own list of steps (records, then a watermark).
struct Step {
  std::vector<Ev> recs;
  Timestamp wm = gyre::kMinTimestamp;  // none
};
class StepSource final : public gyre::Source<Ev> {
 public:
  explicit StepSource(std::shared_ptr<const std::vector<std::vector<Step>>> plan) : plan_(std::move(plan)) {}
  void open(gyre::OperatorContext& ctx) override { part_ = static_cast<std::size_t>(ctx.partition()); }
  gyre::SourceStatus produce(gyre::SourceOutput<Ev>& out) override {
    if (part_ >= plan_->size() || i_ >= (*plan_)[part_].size()) return gyre::SourceStatus::kDone;
    const Step& st = (*plan_)[part_][i_++];
    for (const Ev& e : st.recs) out.emit(e);
    if (st.wm != gyre::kMinTimestamp) out.emit_watermark(st.wm);
    return gyre::SourceStatus::kMore;
  }

 private:
  std::shared_ptr<const std::vector<std::vector<Step>>> plan_;
  std::size_t part_ = 0;
  std::size_t i_ = 0;
};

// An unbounded source: partition p emits its slice of `data` (records p, p + n, ...; none in
// the partitions listed in `silent`) after `delay` ms, in batches of 32, then watermark `final_wm`
// (kMinTimestamp: none), then nothing until *stop (or `timeout` ms after its data).
struct LiveShared {
  std::vector<Ev> data;
  Timestamp delay = 0;
  Timestamp final_wm = gyre::kMinTimestamp;
  Timestamp timeout = 20'000;
  bool source_watermarks = false;  // after every batch: max ts - disorder - 1
  bool heartbeat = false;          // after the data: a record of key 99 at the max ts, now and then
  Timestamp disorder = 0;
  std::set<int> silent;
  std::atomic<bool> stop{false};
};
class LiveSource final : public gyre::Source<Ev> {
 public:
  explicit LiveSource(std::shared_ptr<LiveShared> s) : s_(std::move(s)) {}
  void open(gyre::OperatorContext& ctx) override {
    part_ = ctx.partition();
    n_ = ctx.parallelism();
    start_ = gyre::OperatorContext::processing_time();
    if (s_->silent.count(part_) == 0) {
      for (std::size_t i = static_cast<std::size_t>(part_); i < s_->data.size(); i += static_cast<std::size_t>(n_))
        mine_.push_back(s_->data[i]);
    }
  }
  gyre::SourceStatus produce(gyre::SourceOutput<Ev>& out) override {
    const Timestamp now = gyre::OperatorContext::processing_time();
    if (s_->stop.load()) return gyre::SourceStatus::kDone;
    if (now < start_ + s_->delay) return gyre::SourceStatus::kIdle;
    if (at_ < mine_.size()) {
      const std::size_t end = std::min(mine_.size(), at_ + 32);
      for (; at_ < end; ++at_) {
        out.emit(mine_[at_]);
        max_ = std::max(max_, mine_[at_].ts);
      }
      if (s_->source_watermarks) out.emit_watermark(max_ - s_->disorder - 1);
      if (at_ == mine_.size()) {
        if (s_->final_wm != gyre::kMinTimestamp) out.emit_watermark(s_->final_wm);
        done_at_ = now;
      }
      return gyre::SourceStatus::kMore;
    }
    if (done_at_ == 0) done_at_ = now;
    if (now - done_at_ > s_->timeout) return gyre::SourceStatus::kDone;
    if (s_->heartbeat && !mine_.empty() && now - beat_ >= 5) {  // keeps a data partition from idling
      beat_ = now;
      out.emit(Ev{99, max_, 0});
      return gyre::SourceStatus::kMore;
    }
    return gyre::SourceStatus::kIdle;
  }

 private:
  std::shared_ptr<LiveShared> s_;
  int part_ = 0, n_ = 1;
  Timestamp start_ = 0, done_at_ = 0, beat_ = 0;
  Timestamp max_ = gyre::kMinTimestamp;
  std::vector<Ev> mine_;
  std::size_t at_ = 0;
};

// Results gathered by a for_each sink; sets stop once `expect` came (if expect > 0).
struct Gathered {
  std::mutex mu;
  std::vector<Result> rs;
  std::size_t expect = 0;
  std::shared_ptr<LiveShared> live;
  void add(const Result& r) {
    std::lock_guard lock(mu);
    rs.push_back(r);
    if (expect > 0 && rs.size() >= expect && live) live->stop = true;
  }
};

// ---------------------------------------------------------------- more tests

// Late records (behind the watermark by more than the allowed lateness) go to the side output
// and into the metrics; records within the lateness make LATE panes; the exact panes.
TEST_P(WindowTest, LateDataToSideOutput) {
  auto plan = std::make_shared<std::vector<std::vector<Step>>>();
  plan->push_back({Step{{{1, 10, 1}, {1, 20, 2}, {1, 150, 3}, {1, 160, 4}}, 250},
                   Step{{{1, 50, 5}, {1, 170, 6}, {2, 5, 7}}, gyre::kMinTimestamp},
                   Step{{}, 400},
                   Step{{{1, 180, 8}}, gyre::kMinTimestamp}});
  auto env = testenv::make_env(config());
  auto src = env.source("steps", StepSource(plan), true);
  src.parallelism(1);
  gyre::OutputTag<Ev> late_tag("late");
  auto out = gyre::window(src.key_by(key_of), ts_of, gyre::TumblingWindows{100})
                 .allowed_lateness(100)
                 .accumulate(Accumulation::kAccumulating)
                 .late_output(late_tag)
                 .aggregate("late test", CountSum{});
  auto got = out.collect();
  auto late = out.side_output(late_tag).collect();
  const gyre::JobResult jr = env.run();
  auto rs = testenv::values(got);
  auto lr = testenv::values(late);
  std::sort(rs.begin(), rs.end(), [](const Result& a, const Result& b) {
    return std::tie(a.key, a.start, a.pane.index) < std::tie(b.key, b.start, b.pane.index);
  });
  const std::vector<Result> expect = {
      {1, 0, 100, {2, 3}, RowKind::kInsert, {Timing::kOnTime, 0, true, true}},
      {1, 100, 200, {2, 7}, RowKind::kInsert, {Timing::kOnTime, 0, true, false}},
      {1, 100, 200, {3, 13}, RowKind::kInsert, {Timing::kLate, 1, false, false}},
  };
  EXPECT_EQ(rs, expect);
  std::vector<Timestamp> late_ts;
  for (const Ev& e : lr) late_ts.push_back(e.ts);
  std::sort(late_ts.begin(), late_ts.end());
  EXPECT_EQ(late_ts, (std::vector<Timestamp>{5, 50, 180}));
  std::uint64_t late_metric = 0;
  for (const auto& m : jr.operators)
    if (m.name == "late test") late_metric += m.records_late;
  EXPECT_EQ(late_metric, 3u);
}

// The exact panes of tumbling windows of `size` under after_watermark() with early firings
// after_count(n) and late firings after_count(1), serially: each key sees its records and the
// watermarks in the order the one source partition sends them. Counts the late records in *late.
std::vector<Result> reference_panes(const std::vector<Step>& steps, Timestamp size, Timestamp lateness, std::int64_t n,
                                    Accumulation acc, gyre::OnTimeBehavior on_time, std::uint64_t* late) {
  struct W {
    CS total, since;
    std::int64_t count = 0;  // records since the last pane (the early trigger's count)
    std::uint32_t panes = 0;
    bool on_time_done = false;
  };
  std::map<std::pair<std::int64_t, Timestamp>, W> live;  // key, start
  std::vector<Result> out;
  Timestamp wm = gyre::kMinTimestamp;
  auto emit = [&](std::int64_t key, Timestamp start, W& w, Timing t, bool last) {
    out.push_back(Result{key, start, start + size, acc == Accumulation::kDiscarding ? w.since : w.total,
                         RowKind::kInsert, gyre::Pane{t, w.panes, w.panes == 0, last}});
    ++w.panes;
    w.since = CS{};
    w.count = 0;
  };
  auto advance = [&](Timestamp to) {
    wm = std::max(wm, to);
    for (auto it = live.begin(); it != live.end();) {
      auto& [kw, w] = *it;
      const Timestamp max_ts = kw.second + size - 1;
      const bool expired = max_ts + lateness <= wm;
      if (max_ts <= wm && !w.on_time_done) {
        if (w.since.count > 0 || on_time == gyre::OnTimeBehavior::kFireAlways)
          emit(kw.first, kw.second, w, Timing::kOnTime, expired);
        w.on_time_done = true;
        w.count = 0;
      }
      it = expired ? live.erase(it) : std::next(it);
    }
  };
  for (const Step& st : steps) {
    for (const Ev& e : st.recs) {
      const Timestamp s = e.ts - floor_mod(e.ts, size);
      if (s + size - 1 + lateness <= wm) {
        ++*late;
        continue;
      }
      W& w = live[{e.key, s}];
      for (CS* c : {&w.total, &w.since}) {
        ++c->count;
        c->sum += e.v;
      }
      if (s + size - 1 <= wm) {  // after the end: every record fires a LATE pane
        emit(e.key, s, w, Timing::kLate, false);
        w.on_time_done = true;
      } else if (++w.count >= n) {
        emit(e.key, s, w, Timing::kEarly, false);
      }
    }
    if (st.wm != gyre::kMinTimestamp) advance(st.wm);
  }
  advance(gyre::kMaxTimestamp);  // the end of the bounded input
  return out;
}

// Early, on-time and late panes against the serial reference, with both on-time behaviours:
// kFireAlways emits the ON_TIME pane of a window whose last early pane took every record
// (discarding: an empty value; accumulating: the whole value), kFireIfNonEmpty does not.
TEST_P(WindowTest, OnTimeBehaviorExactPanes) {
  std::mt19937_64 rng(41);
  auto plan = std::make_shared<std::vector<std::vector<Step>>>(1);
  Timestamp max_ts = 0;
  for (int i = 0; i < 120; ++i) {
    Step st;
    for (int j = 0; j < 8; ++j) {
      const Timestamp ts = (i * 8 + j) * 2 + static_cast<Timestamp>(rng() % 70);
      st.recs.push_back(Ev{static_cast<std::int64_t>(rng() % 5), ts, static_cast<std::int64_t>(rng() % 100)});
      max_ts = std::max(max_ts, ts);
    }
    st.wm = max_ts - 20;  // some records come behind it: LATE panes and, past the lateness, late
    plan->front().push_back(std::move(st));
  }
  const Timestamp size = 50, lateness = 25;
  const std::int64_t n = 3;
  const Trigger t =
      Trigger::after_watermark().with_early_firings(Trigger::after_count(n)).with_late_firings(Trigger::after_count(1));
  auto sorted = [](std::vector<Result> v) {
    std::sort(v.begin(), v.end(), [](const Result& x, const Result& y) {
      return std::tie(x.key, x.start, x.pane.index) < std::tie(y.key, y.start, y.pane.index);
    });
    return v;
  };
  std::map<gyre::OnTimeBehavior, std::size_t> on_time_panes;
  for (gyre::OnTimeBehavior ot : {gyre::OnTimeBehavior::kFireAlways, gyre::OnTimeBehavior::kFireIfNonEmpty}) {
    for (Accumulation acc : {Accumulation::kDiscarding, Accumulation::kAccumulating}) {
      SCOPED_TRACE("on-time " + std::to_string(static_cast<int>(ot)) + ", accumulation " +
                   std::to_string(static_cast<int>(acc)));
      auto env = testenv::make_env(config());
      auto src = env.source("steps", StepSource(plan), true);
      src.parallelism(1);
      auto out = gyre::window(src.key_by(key_of), ts_of, gyre::TumblingWindows{size})
                     .trigger(t)
                     .allowed_lateness(lateness)
                     .accumulate(acc)
                     .on_time_behavior(ot)
                     .aggregate("on time", CountSum{});
      auto got = out.collect();
      const gyre::JobResult jr = env.run();
      std::uint64_t late = 0;
      const auto want = reference_panes(plan->front(), size, lateness, n, acc, ot, &late);
      const auto rs = sorted(testenv::values(got));
      EXPECT_EQ(rs, sorted(want));
      std::uint64_t late_metric = 0;
      for (const auto& m : jr.operators)
        if (m.name == "on time") late_metric += m.records_late;
      EXPECT_EQ(late_metric, late);
      EXPECT_GT(late, 0u);
      std::size_t empty = 0;
      for (const Result& r : want) {
        if (r.pane.timing == Timing::kOnTime) ++on_time_panes[ot];
        if (r.pane.timing == Timing::kOnTime && r.pane.index > 0 && acc == Accumulation::kDiscarding &&
            r.value.count == 0)
          ++empty;
      }
      // The data has windows whose last early pane took every record before the end.
      if (ot == gyre::OnTimeBehavior::kFireAlways && acc == Accumulation::kDiscarding) {
        EXPECT_GT(empty, 0u);
      }
    }
  }
  EXPECT_GT(on_time_panes[gyre::OnTimeBehavior::kFireAlways], on_time_panes[gyre::OnTimeBehavior::kFireIfNonEmpty]);
}

// Records of a window whose trigger finished are dropped and counted (records_dropped): with
// after_count(2) (once), every record of a window after its second.
TEST_P(WindowTest, ClosedWindowDropsAreCounted) {
  const Timestamp disorder = 20;
  const auto evs = random_events(13, 2000, 6, 2, disorder);
  const gyre::WindowAssigner a = gyre::TumblingWindows{40};
  auto env = testenv::make_env(config());
  auto timed = gyre::assign_timestamps(env.from_collection(evs), ts_of,
                                       gyre::WatermarkStrategy::bounded_out_of_orderness(disorder));
  auto got = gyre::window(timed.key_by(key_of), ts_of, a)
                 .trigger(Trigger::after_count(2))
                 .aggregate("closing", CountSum{})
                 .collect();
  const gyre::JobResult jr = env.run();
  std::uint64_t want_dropped = 0;
  std::map<WKey, CS> want;
  for (const auto& [w, c] : reference(evs, a)) {
    want_dropped += static_cast<std::uint64_t>(std::max<std::int64_t>(0, c.count - 2));
    want[w].count = std::min<std::int64_t>(c.count, 2);
  }
  std::map<WKey, CS> counts;
  for (const Result& r : testenv::values(got)) counts[{r.key, r.start, r.end}].count += r.value.count;
  EXPECT_EQ(counts, want);
  std::uint64_t dropped = 0, late = 0;
  for (const auto& m : jr.operators) {
    if (m.name != "closing") continue;
    dropped += m.records_dropped;
    late += m.records_late;
  }
  EXPECT_GT(want_dropped, 0u);
  EXPECT_EQ(dropped, want_dropped);
  EXPECT_EQ(late, 0u);
  EXPECT_NE(jr.summary().find(std::to_string(want_dropped) + " dropped (window closed)"), std::string::npos);
  EXPECT_NE(jr.to_json().find("\"records_dropped\": " + std::to_string(want_dropped)), std::string::npos);
}

// ---------------------------------------------------------------- checkpoint and restore

// One source partition: `recs` in order, after every 16 a watermark (the largest timestamp so
// far - disorder - 1); with `barrier`, checkpoint barrier 1 after record `cut` (a multiple of
// 16, after its watermark). `first_wm` (if set) goes out before everything: what a restored
// source sends first, the watermark it had sent before the barrier.
class BarrierSource final : public gyre::detail::NodeRuntime, public gyre::detail::SourceBase {
 public:
  BarrierSource(std::shared_ptr<const std::vector<Ev>> recs, Timestamp disorder, std::size_t cut, bool barrier,
                Timestamp first_wm, gyre::detail::Input<Ev>* out)
      : recs_(std::move(recs)), disorder_(disorder), cut_(cut), barrier_(barrier), first_wm_(first_wm), out_(out) {}
  gyre::detail::PortBase* port(int) override { return nullptr; }
  gyre::detail::SourceBase* source() override { return this; }
  gyre::detail::SourceStatus produce(std::size_t) override {
    if (first_wm_ != gyre::kMinTimestamp) {
      out_->on_event(gyre::Event::watermark(first_wm_));
      first_wm_ = gyre::kMinTimestamp;
    }
    const std::size_t n = std::min<std::size_t>(16, recs_->size() - pos_);
    if (n > 0) {
      out_->push(std::span<const Ev>(recs_->data() + pos_, n));
      for (std::size_t i = pos_; i < pos_ + n; ++i) max_ = std::max(max_, (*recs_)[i].ts);
      pos_ += n;
      out_->on_event(gyre::Event::watermark(max_ - disorder_ - 1));
    }
    if (barrier_ && pos_ == cut_) out_->on_event(gyre::Event::barrier(1));
    if (pos_ < recs_->size()) return gyre::detail::SourceStatus::kMore;
    out_->on_event(gyre::Event::end());
    return gyre::detail::SourceStatus::kDone;
  }

 private:
  std::shared_ptr<const std::vector<Ev>> recs_;
  Timestamp disorder_;
  std::size_t cut_;
  bool barrier_;
  Timestamp first_wm_;
  gyre::detail::Input<Ev>* out_;
  std::size_t pos_ = 0;
  Timestamp max_ = gyre::kMinTimestamp;
};

// A window result, and whether it passed this operator after checkpoint barrier 1.
struct Tagged {
  Result r;
  bool after = false;
};
class TagBarrier final : public gyre::OneInputOperator<Result, Tagged> {
 public:
  void process(std::span<const Result> in, gyre::Output<Tagged>& out) override {
    for (const Result& r : in) out.emit(Tagged{r, after_});
  }
  void on_barrier(std::int64_t /*id*/) override { after_ = true; }

 private:
  bool after_ = false;
};

std::vector<Tagged> run_barrier_job(gyre::JobConfig cfg, std::vector<Ev> recs, Timestamp disorder, std::size_t cut,
                                    bool barrier, Timestamp first_wm, const gyre::WindowAssigner& a) {
  gyre::Environment env(std::move(cfg));  // in this process only (also under mpirun: every rank alike)
  gyre::OperatorBuilder b(env, "source: barrier");
  b.name("events").parallelism(1).bounded(true);
  b.output<Ev>();
  auto shared = std::make_shared<const std::vector<Ev>>(std::move(recs));
  b.factory([=](const gyre::detail::OpContext&, const std::vector<gyre::detail::PortBase*>& outs)
                -> std::unique_ptr<gyre::detail::NodeRuntime> {
    return std::make_unique<BarrierSource>(shared, disorder, cut, barrier, first_wm,
                                           static_cast<gyre::detail::Input<Ev>*>(outs[0]));
  });
  auto src = b.stream<Ev>();
  auto panes = gyre::window(src.key_by(key_of), ts_of, a)
                   .trigger(Trigger::after_watermark()
                                .with_early_firings(Trigger::after_count(3))
                                .with_late_firings(Trigger::after_count(1)))
                   .allowed_lateness(40)
                   .accumulate(Accumulation::kRetracting)
                   .aggregate("restored windows", CountSum{});
  auto got = panes.process("tag", TagBarrier{}).collect();
  env.run();
  return got.values();
}

// A window job checkpointed halfway (window state, trigger state, retraction values and timers
// at barrier 1), then restored into a new job (at another parallelism) that reads the rest: the
// panes the first job emitted before the barrier plus the restored job's are the panes of the
// uninterrupted run, exactly (one source partition: every key's records and watermarks in one
// order).
TEST(WindowRestore, RestoredJobGivesTheUninterruptedPanes) {
  const Timestamp disorder = 30;
  std::vector<Ev> recs = random_events(57, 1600, 6, 2, disorder + 40);  // some late, some too late
  const std::size_t cut = 800;
  Timestamp wm_at_cut = gyre::kMinTimestamp;
  for (std::size_t i = 0; i < cut; ++i) wm_at_cut = std::max(wm_at_cut, recs[i].ts - disorder - 1);
  const std::vector<Ev> rest(recs.begin() + static_cast<std::ptrdiff_t>(cut), recs.end());
  auto sorted = [](std::vector<Result> v) {
    std::sort(v.begin(), v.end(), [](const Result& x, const Result& y) {
      auto t = [](const Result& r) {
        return std::tuple(r.key, r.start, r.end, r.pane.index, r.kind, r.value, r.pane.timing, r.pane.last);
      };
      return t(x) < t(y);
    });
    return v;
  };
  for (const gyre::WindowAssigner& a : {gyre::WindowAssigner(gyre::TumblingWindows{100}),
                                        gyre::WindowAssigner(gyre::SessionWindows{15})}) {
    for (int p1 : {1, 3}) {
      gyre::JobConfig cfg = config_for(p1);
      cfg.snapshots = std::make_shared<gyre::SnapshotStore>();
      const auto full = run_barrier_job(cfg, recs, disorder, cut, true, gyre::kMinTimestamp, a);
      ASSERT_TRUE(cfg.snapshots->complete(1));
      auto snap = std::make_shared<const gyre::JobSnapshot>(cfg.snapshots->snapshot(1));
      std::vector<Result> all, before;
      for (const Tagged& t : full) {
        all.push_back(t.r);
        if (!t.after) before.push_back(t.r);
      }
      ASSERT_FALSE(before.empty());
      ASSERT_LT(before.size(), all.size());
      for (int p2 : {1, 2, 4}) {
        SCOPED_TRACE(a.describe() + ": " + std::to_string(p1) + " -> " + std::to_string(p2));
        gyre::JobConfig again = config_for(p2);
        again.restore_from = snap;
        std::vector<Result> joined = before;
        for (const Tagged& t : run_barrier_job(again, rest, disorder, cut, false, wm_at_cut, a)) joined.push_back(t.r);
        EXPECT_EQ(sorted(joined), sorted(all));
      }
    }
  }
}

// Session windows: records of one session that reach the window operator from different source
// partitions, in any order, merge into one session (also bridging two sessions).
TEST_P(WindowTest, SessionMergeAcrossPartitions) {
  const int parts = std::max(2, GetParam());
  auto plan = std::make_shared<std::vector<std::vector<Step>>>(static_cast<std::size_t>(parts));
  for (std::int64_t k = 0; k < 50; ++k) {
    (*plan)[0].push_back(Step{{{k, 0, 1}, {k, 100, 2}}, gyre::kMinTimestamp});
    (*plan)[1].push_back(Step{{{k, 50, 4}}, gyre::kMinTimestamp});  // bridges [0,60) and [100,160)
    (*plan)[static_cast<std::size_t>(parts - 1)].push_back(Step{{{k, 500, 8}}, gyre::kMinTimestamp});
  }
  for (Accumulation acc : {Accumulation::kDiscarding, Accumulation::kRetracting}) {
    for (const Trigger& t : {Trigger::after_watermark(),
                             Trigger::after_watermark().with_early_firings(Trigger::after_count(1))}) {
      SCOPED_TRACE(t.describe());
      auto env = testenv::make_env(config());
      auto src = env.source("steps", StepSource(plan), true);
      src.parallelism(parts);
      auto out = gyre::window(src.key_by(key_of), ts_of, gyre::SessionWindows{60})
                     .trigger(t)
                     .accumulate(acc)
                     .aggregate("sessions", CountSum{});
      auto got = out.collect();
      env.run();
      const auto rs = testenv::values(got);
      std::map<WKey, CS> want;
      for (std::int64_t k = 0; k < 50; ++k) {
        want[{k, 0, 160}] = CS{3, 7};
        want[{k, 500, 560}] = CS{1, 8};
      }
      EXPECT_EQ(finals(rs, acc, want, true), want);
    }
  }
}

// A partition without records does not hold the watermark back once it is idle (the data
// partitions send a record of key 99 now and then, so only the silent one idles): windows fire
// while the job still runs (the test then stops the sources).
TEST_P(WindowTest, IdlePartitionDoesNotHoldWatermarkBack) {
  if (testenv::mpi()) GTEST_SKIP() << "stops its sources from the sink: one process only";
  const int parts = std::max(2, GetParam());
  const Timestamp disorder = 20;
  auto live = std::make_shared<LiveShared>();
  live->data = random_events(5, 800, 4, 2, disorder);
  live->silent = {0};
  live->heartbeat = true;  // the data partitions never idle (the silent one does)
  gyre::JobConfig cfg = config();
  cfg.parallelism = parts;
  // The windows that must fire: ends <= the smallest final watermark of the data partitions.
  Timestamp wm = gyre::kMaxTimestamp;
  for (int p = 1; p < parts; ++p) {
    Timestamp m = gyre::kMinTimestamp;
    for (std::size_t i = static_cast<std::size_t>(p); i < live->data.size(); i += static_cast<std::size_t>(parts))
      m = std::max(m, live->data[i].ts);
    wm = std::min(wm, m - disorder - 1);
  }
  const gyre::WindowAssigner a = gyre::TumblingWindows{100};
  std::map<WKey, CS> want;
  std::vector<Ev> data_parts;
  for (std::size_t i = 0; i < live->data.size(); ++i)
    if (i % static_cast<std::size_t>(parts) != 0) data_parts.push_back(live->data[i]);
  for (const auto& [w, v] : reference(data_parts, a))
    if (std::get<2>(w) - 1 <= wm) want[w] = v;
  auto g = std::make_shared<Gathered>();
  g->expect = want.size();
  g->live = live;
  auto env = testenv::make_env(cfg);
  auto timed = gyre::assign_timestamps(env.source("live", LiveSource(live)), ts_of,
                                       gyre::WatermarkStrategy::bounded_out_of_orderness(disorder)
                                           .with_interval(10)
                                           .with_idleness(200));
  gyre::window(timed.key_by(key_of), ts_of, a).aggregate("idle test", CountSum{}).for_each([g](const Result& r) {
    if (r.key != 99) g->add(r);
  }, 1);
  env.run();
  EXPECT_TRUE(live->stop.load()) << "the job ended without the sink seeing every pane";
  std::map<WKey, CS> got;
  for (const Result& r : g->rs)
    if (std::get<2>(WKey{r.key, r.start, r.end}) - 1 <= wm) got[{r.key, r.start, r.end}] = r.value;
  EXPECT_EQ(got, want);
}

// The same events as a bounded collection and as an unbounded source (which the test stops once
// the panes came): the same final panes.
TEST_P(WindowTest, BoundedAndUnboundedGiveSamePanes) {
  const Timestamp disorder = 25;
  const auto evs = random_events(77, 1200, 6, 2, disorder);
  const gyre::WindowAssigner a = gyre::SlidingWindows{60, 20};
  const auto ref = reference(evs, a);
  const std::vector<Trigger> triggers = {
      Trigger::after_watermark(),
      Trigger::after_watermark().with_early_firings(Trigger::after_count(3))};
  for (const Trigger& t : triggers) {
    SCOPED_TRACE(t.describe());
    const auto bounded = run_windows(config(), evs, a, t, Accumulation::kAccumulating, disorder);
    auto live = std::make_shared<LiveShared>();
    live->data = evs;
    live->source_watermarks = true;
    live->disorder = disorder;
    live->final_wm = 1'000'000;  // event time moves on after the data
    if (testenv::mpi()) live->timeout = 1'500;
    auto g = std::make_shared<Gathered>();
    g->live = live;
    // Every window's final (ON_TIME) pane; early panes come before it.
    auto env = testenv::make_env(config());
    auto src = env.source("live", LiveSource(live));
    gyre::window(src.key_by(key_of), ts_of, a)
        .trigger(t)
        .accumulate(Accumulation::kAccumulating)
        .aggregate("unbounded", CountSum{})
        .for_each([g, want = std::make_shared<const std::map<WKey, CS>>(ref),
                   done = std::make_shared<std::set<WKey>>()](const Result& r) {
          // Stops the sources once every window's accumulated value is complete (an early and
          // the ON_TIME pane may both hold it).
          std::lock_guard lock(g->mu);
          g->rs.push_back(r);
          const WKey w{r.key, r.start, r.end};
          auto it = want->find(w);
          if (it != want->end() && it->second == r.value && done->insert(w).second && done->size() == want->size())
            g->live->stop = true;
        }, 1);
    env.run();
    const auto unbounded = testenv::gather(g->rs);
    EXPECT_EQ(finals(unbounded, Accumulation::kAccumulating, ref, false), ref);
    EXPECT_EQ(finals(bounded, Accumulation::kAccumulating, ref, false), ref);
    if (t.describe() == "after_watermark") {
      auto sorted = [](std::vector<Result> v) {
        std::sort(v.begin(), v.end(), [](const Result& x, const Result& y) {
          return std::tie(x.key, x.start, x.pane.index) < std::tie(y.key, y.start, y.pane.index);
        });
        return v;
      };
      EXPECT_EQ(sorted(unbounded), sorted(bounded));
    }
  }
}

// A long run at a constant number of keys: window state and timers are purged as the watermark
// passes end + lateness, so the state's memory stays flat.
TEST_P(WindowTest, StateStaysFlatOnLongRun) {
  struct Probe {
    std::mutex mu;
    std::map<int, std::vector<std::pair<std::size_t, std::size_t>>> seen;  // partition: (bytes, windows)
  };
  auto probe = std::make_shared<Probe>();
  const std::uint64_t n = 200'000;
  const int keys = 40;
  auto env = testenv::make_env(config());
  // One source partition: one timeline of event time (with several, the watermark is the
  // slowest partition's and the others' windows wait for it).
  auto src = env.generate(n, [](std::uint64_t i) {
    return Ev{static_cast<std::int64_t>(i % 40), static_cast<Timestamp>(i / 4), 1};
  });
  src.parallelism(1);
  auto timed = gyre::assign_timestamps(src, ts_of, gyre::WatermarkStrategy::monotonous().with_record_interval(256));
  auto out = gyre::window(timed.key_by(key_of), ts_of, gyre::TumblingWindows{100})
                 .allowed_lateness(50)
                 .observe_state([probe](int p, std::size_t bytes, std::size_t windows) {
                   std::lock_guard lock(probe->mu);
                   probe->seen[p].emplace_back(bytes, windows);
                 })
                 .aggregate("flat", CountSum{});
  std::atomic<std::uint64_t> counted{0};
  out.for_each([&counted](const Result& r) { counted += static_cast<std::uint64_t>(r.value.count); });
  env.run();
  EXPECT_EQ(testenv::sum_ranks(static_cast<long long>(counted.load())), static_cast<long long>(n));
  for (const auto& [p, v] : probe->seen) {
    ASSERT_GT(v.size(), 20u);
    std::size_t first = 0, second = 0, windows = 0;
    for (std::size_t i = 0; i + 1 < v.size(); ++i) {  // the last: after +inf, everything purged
      (i < v.size() / 2 ? first : second) = std::max(i < v.size() / 2 ? first : second, v[i].first);
      windows = std::max(windows, v[i].second);
    }
    EXPECT_LE(second, first) << "partition " << p << ": state grew";
    EXPECT_LE(windows, static_cast<std::size_t>(keys) * 3) << "partition " << p;
    EXPECT_EQ(v.back().second, 0u);
  }
}

// Non-keyed windows (parallelism 1), reduce and a full window function.
TEST_P(WindowTest, WindowAllReduceAndApply) {
  const Timestamp disorder = 30;
  const auto evs = random_events(31, 2000, 3, 2, disorder);
  auto env = testenv::make_env(config());
  auto timed = gyre::assign_timestamps(env.from_collection(evs), ts_of,
                                       gyre::WatermarkStrategy::bounded_out_of_orderness(disorder));
  auto sums = gyre::window_all(timed, ts_of, gyre::TumblingWindows{50})
                  .reduce("sum", [](const Ev& a, const Ev& b) { return Ev{a.key, std::max(a.ts, b.ts), a.v + b.v}; })
                  .collect();
  using Info = std::tuple<Timestamp, Timestamp, std::int64_t>;  // start, end, records
  auto infos = gyre::window(timed.key_by(key_of), ts_of, gyre::TumblingWindows{50})
                   .apply<Info>("info", [](const std::int64_t&, const gyre::WindowInfo& w, std::span<const Ev> rs,
                                           gyre::WindowOutput<Info>& o) {
                     o.emit(Info{w.start, w.end, static_cast<std::int64_t>(rs.size())});
                   })
                   .collect();
  env.run();
  std::map<Timestamp, std::int64_t> want_sum;
  std::map<std::pair<std::int64_t, Timestamp>, std::int64_t> want_n;
  for (const Ev& e : evs) {
    const Timestamp s = e.ts - floor_mod(e.ts, 50);
    want_sum[s] += e.v;
    ++want_n[{e.key, s}];
  }
  std::map<Timestamp, std::int64_t> got_sum;
  for (const auto& r : testenv::values(sums)) {
    EXPECT_EQ(r.end, r.start + 50);
    got_sum[r.start] += r.value.v;
  }
  EXPECT_EQ(got_sum, want_sum);
  std::map<std::pair<std::int64_t, Timestamp>, std::int64_t> got_n;
  for (const auto& r : testenv::values(infos)) {
    EXPECT_EQ(std::get<0>(r.value), r.start);
    EXPECT_EQ(std::get<1>(r.value), r.end);
    got_n[{r.key, r.start}] += std::get<2>(r.value);
  }
  EXPECT_EQ(got_n, want_n);
}

// A user-defined watermark generator gives the same panes as the built-in strategy it mimics.
TEST_P(WindowTest, CustomWatermarkGenerator) {
  struct Lagging final : gyre::WatermarkGenerator {
    Timestamp max = gyre::kMinTimestamp;
    void on_timestamps(std::span<const Timestamp> ts) override {
      for (Timestamp t : ts) max = std::max(max, t);
    }
    Timestamp current_watermark() const override { return max == gyre::kMinTimestamp ? max : max - 41; }
  };
  const auto evs = random_events(3, 1500, 4, 2, 40);
  auto env = testenv::make_env(config());
  auto timed = gyre::assign_timestamps(
      env.from_collection(evs), ts_of,
      gyre::WatermarkStrategy::custom([] { return std::make_unique<Lagging>(); }).with_record_interval(8));
  gyre::OutputTag<Ev> late("late");
  auto out = gyre::window(timed.key_by(key_of), ts_of, gyre::TumblingWindows{100}).late_output(late).aggregate("w", CountSum{});
  auto got = out.collect();
  auto lost = out.side_output(late).collect();
  env.run();
  EXPECT_TRUE(testenv::values(lost).empty());
  EXPECT_EQ(finals(testenv::values(got), Accumulation::kDiscarding, {}, false), reference(evs, gyre::TumblingWindows{100}));
}

// ---------------------------------------------------------------- triggers alone

struct Sim {
  Trigger t;
  gyre::detail::TriggerState s;
  gyre::detail::TriggerContext c{gyre::kMinTimestamp, 99, 0, 0};
  explicit Sim(Trigger tr) : t(std::move(tr)) { t.init(s); }
  // A record; true if the trigger fired.
  bool element() {
    ++c.pending;
    t.on_element(s, c);
    return check();
  }
  bool check() {
    if (!t.ready(s, c)) return false;
    t.on_fire(s, c);
    c.pending = 0;
    return true;
  }
};

TEST(Triggers, CountOnceFinishes) {
  Sim m(Trigger::after_count(2));
  EXPECT_FALSE(m.element());
  EXPECT_TRUE(m.element());
  EXPECT_TRUE(m.t.finished(m.s));
  EXPECT_FALSE(m.element());
}

TEST(Triggers, RepeatedlyResets) {
  Sim m(Trigger::repeatedly(Trigger::after_count(2)));
  std::string fired;
  for (int i = 0; i < 6; ++i) fired += m.element() ? 'F' : '.';
  EXPECT_EQ(fired, ".F.F.F");
  EXPECT_FALSE(m.t.finished(m.s));
}

TEST(Triggers, FirstOfAllOfSequenceOrFinally) {
  {
    Sim m(Trigger::first_of({Trigger::after_count(3), Trigger::after_processing_time(10)}));
    m.c.now = 100;
    EXPECT_FALSE(m.element());  // deadline 110
    EXPECT_EQ(m.t.deadline(m.s), 110);
    m.c.now = 110;
    EXPECT_TRUE(m.check());
    EXPECT_TRUE(m.t.finished(m.s));
  }
  {
    Sim m(Trigger::all_of({Trigger::after_count(3), Trigger::after_processing_time(10)}));
    m.c.now = 100;
    EXPECT_FALSE(m.element());
    m.c.now = 200;
    EXPECT_FALSE(m.check());  // the count is not there yet
    EXPECT_FALSE(m.element());
    EXPECT_TRUE(m.element());
    EXPECT_TRUE(m.t.finished(m.s));
  }
  {
    Sim m(Trigger::sequence({Trigger::after_count(1), Trigger::after_count(2), Trigger::repeatedly(Trigger::after_count(3))}));
    std::string fired;
    for (int i = 0; i < 9; ++i) fired += m.element() ? 'F' : '.';
    EXPECT_EQ(fired, "F.F..F..F");
  }
  {
    Sim m(Trigger::repeatedly(Trigger::after_count(2)).or_finally(Trigger::after_count(5)));
    std::string fired;
    for (int i = 0; i < 7; ++i) fired += m.element() ? 'F' : '.';
    EXPECT_EQ(fired, ".F.FF..");  // the 5th record: until fires (with main), then finished
    EXPECT_TRUE(m.t.finished(m.s));
  }
  {
    Sim m(Trigger::never());
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(m.element());
  }
}

TEST(Triggers, WatermarkEarlyAndLate) {
  Sim m(Trigger::after_watermark().with_early_firings(Trigger::after_count(2)).with_late_firings(Trigger::after_count(3)));
  std::string fired;
  for (int i = 0; i < 5; ++i) fired += m.element() ? 'F' : '.';
  EXPECT_EQ(fired, ".F.F.");
  m.c.watermark = 99;  // the end passed
  EXPECT_TRUE(m.check());
  fired.clear();
  for (int i = 0; i < 7; ++i) fired += m.element() ? 'F' : '.';
  EXPECT_EQ(fired, "..F..F.");
  // The default: on time, then every late record.
  Sim d(Trigger::after_watermark());
  EXPECT_FALSE(d.element());
  d.c.watermark = 100;
  EXPECT_TRUE(d.check());
  EXPECT_FALSE(d.check());
  EXPECT_TRUE(d.element());
  EXPECT_TRUE(d.element());
  EXPECT_EQ(Trigger::after_watermark().with_late_firings(Trigger::never()).describe(), "after_watermark.late(never)");
  EXPECT_EQ(Trigger::after_watermark()
                .with_late_firings(Trigger::after_count(1))
                .with_early_firings(Trigger::repeatedly(Trigger::after_processing_time(5)))
                .describe(),
            "after_watermark.early(repeatedly(after_processing_time(5))).late(after_count(1))");
}

TEST(Triggers, TooManyNodesIsAPlanError) {
  std::vector<Trigger> many(8, Trigger::after_count(1));
  EXPECT_THROW(Trigger::first_of(many), gyre::PlanError);
  EXPECT_THROW(gyre::WindowAssigner(gyre::SlidingWindows{10, 0}).check(), gyre::PlanError);
}

// Window state is keyed state: it snapshots per key group and restores (here into a backend
// owning every key group), trigger state and retraction values included.
TEST(WindowState, SnapshotRoundTrip) {
  using Slot = gyre::detail::WindowSlot<CS, CS>;
  gyre::KeyedStateBackend a;
  auto& m = a.map<std::int64_t, gyre::detail::WindowKey, Slot>("windows");
  for (std::int64_t k = 0; k < 100; ++k) {
    Slot s;
    s.acc = {k, 2 * k};
    s.pending = static_cast<std::uint64_t>(k % 3);
    s.trigger.v[1] = k;
    s.trigger.finished = 2;
    s.panes = static_cast<std::uint32_t>(k % 5);
    s.on_time_done = k % 2 == 0;
    s.last = {CS{k, k}};
    m.put(k, {k * 10, k * 10 + 10}, s);
  }
  const auto snap = a.snapshot();
  gyre::KeyedStateBackend b;
  b.restore(snap);
  auto& r = b.map<std::int64_t, gyre::detail::WindowKey, Slot>("windows");
  ASSERT_EQ(r.size(), 100u);
  for (std::int64_t k = 0; k < 100; ++k) {
    const Slot* s = r.get(k, {k * 10, k * 10 + 10});
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->acc, (CS{k, 2 * k}));
    EXPECT_EQ(s->pending, static_cast<std::uint64_t>(k % 3));
    EXPECT_EQ(s->trigger.v[1], k);
    EXPECT_EQ(s->trigger.finished, 2u);
    EXPECT_EQ(s->panes, static_cast<std::uint32_t>(k % 5));
    EXPECT_EQ(s->on_time_done, k % 2 == 0);
    EXPECT_EQ(s->last, (std::vector<CS>{CS{k, k}}));
  }
}

TEST(RowKinds, Names) {
  EXPECT_STREQ(gyre::to_string(RowKind::kInsert), "+I");
  EXPECT_STREQ(gyre::to_string(RowKind::kUpdateBefore), "-U");
  EXPECT_STREQ(gyre::to_string(RowKind::kUpdateAfter), "+U");
  EXPECT_STREQ(gyre::to_string(RowKind::kDelete), "-D");
  EXPECT_STREQ(gyre::to_string(Timing::kOnTime), "ON_TIME");
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Parallelism, WindowTest, ::testing::Values(1, 2, 4));
