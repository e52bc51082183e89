// Event time through a streaming feedback loop (issue 15, item 6): records keep their timestamps
// while they circulate a data-dependent number of times; the watermark leaving the loop never
// passes a record still in it, and advances while the input runs. At parallelism 1, 2 and 4
// (and, run with --mpi, at 1, 2 and 4 ranks).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "gyre/core/window.h"
#include "gyre/iterations.h"
#include "../support/test_env.h"

namespace {

using gyre::Timestamp;

constexpr std::int64_t kRecords = 3000;
constexpr Timestamp kSpacing = 10;    // record i has ts i * kSpacing
constexpr Timestamp kWindow = 500;    // tumbling windows [k * 500, (k + 1) * 500)
constexpr Timestamp kHorizon = 2000;  // a source runs at most this far ahead of the loop's watermark
constexpr std::uint64_t kKeys = 5;
constexpr Timestamp kLast = (kRecords - 1) * kSpacing;

// A record in the loop: n halves on every pass; it leaves when n is 0.
struct Ev {
  std::uint64_t id;
  std::uint64_t key;
  Timestamp ts;
  std::uint64_t n;
  std::uint64_t passes;
};

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
Ev record(std::int64_t i, std::uint64_t seed) {
  const auto u = static_cast<std::uint64_t>(i);
  return Ev{u, mix(u ^ seed) % kKeys, i * kSpacing, mix(u * 7 + seed) % 1024, 0};
}
Ev step(const Ev& e) { return Ev{e.id, e.key, e.ts, e.n / 2, e.passes + 1}; }
Timestamp ts_of(const Ev& e) { return e.ts; }

// What the tests watch, per process. seen[p]: the newest finite watermark the checker's
// partition p saw (its source partition, on the same rank, runs at most kHorizon ahead of it).
struct Probe {
  std::array<std::atomic<Timestamp>, 8> seen{};
  std::atomic<std::int64_t> late_after_loop{0};  // records behind the checker's watermark
  std::atomic<std::int64_t> late_in_loop{0};     // records behind the watermark inside the body
  std::atomic<std::int64_t> late_in_window{0};   // records the window found late (side output)
  std::atomic<std::int64_t> backwards{0};        // watermarks that did not rise
  std::atomic<std::int64_t> gave_up{0};          // a source waited too long (the watermark stalled)
  std::atomic<std::int64_t> finite_watermarks{0};
  Probe() {
    for (auto& s : seen) s.store(gyre::kMinTimestamp);
  }
};

// Partition p emits records p, p + P, ... in ts order, 20 at a time, each batch followed by a
// watermark (its next record's ts - 1). It waits while its next record is kHorizon ahead of what the
// checker after the loop saw (a deterministic stand-in for an input that ends late: windows must
// fire while it runs). Unbounded: after its records, watermark(end) and idle for ever.
struct PacedSource final : gyre::Source<Ev> {
  PacedSource(Probe* p, std::uint64_t s, bool unbounded) : probe(p), seed(s), forever(unbounded) {}
  Probe* probe;
  std::uint64_t seed;
  bool forever;
  std::int64_t next = 0, stride = 1;
  int partition = 0;
  bool idle = false;
  std::chrono::steady_clock::time_point waiting_since{};
  bool waiting = false;
  void open(gyre::OperatorContext& ctx) override {
    partition = ctx.partition();
    next = ctx.partition();
    stride = ctx.parallelism();
  }
  gyre::SourceStatus produce(gyre::SourceOutput<Ev>& out) override {
    if (next >= kRecords) {
      if (!forever) return gyre::SourceStatus::kDone;
      if (!idle) {
        idle = true;
        out.emit_watermark(kRecords * kSpacing);
        out.mark_idle();
      }
      return gyre::SourceStatus::kIdle;
    }
    const Timestamp seen = std::max<Timestamp>(probe->seen[static_cast<std::size_t>(partition)].load(), 0);
    if (next * kSpacing >= seen + kHorizon) {
      // A hang guard, not a timing assertion: with a stalled watermark the test fails here.
      const auto now = std::chrono::steady_clock::now();
      if (!waiting) {
        waiting = true;
        waiting_since = now;
      }
      if (now - waiting_since < std::chrono::seconds(20)) return gyre::SourceStatus::kIdle;
      ++probe->gave_up;
    }
    waiting = false;
    for (int i = 0; i < 20 && next < kRecords && (next * kSpacing < seen + kHorizon || probe->gave_up > 0); ++i) {
      out.emit(record(next, seed));
      next += stride;
    }
    if (next < kRecords) out.emit_watermark(next * kSpacing - 1);
    return gyre::SourceStatus::kMore;
  }
};

// After the loop: every record is after the last watermark it saw (a watermark t: nothing at
// or before t follows); watermarks rise.
struct Checker final : gyre::OneInputOperator<Ev, Ev> {
  explicit Checker(Probe* p) : probe(p) {}
  Probe* probe;
  gyre::OperatorContext* ctx = nullptr;
  Timestamp last = gyre::kMinTimestamp;
  void open(gyre::OperatorContext& c) override { ctx = &c; }
  void process(std::span<const Ev> in, gyre::Output<Ev>& out) override {
    for (const Ev& e : in)
      if (e.ts <= last) ++probe->late_after_loop;
    out.emit(in);
  }
  void on_watermark(Timestamp t, gyre::Output<Ev>&) override {
    if (t <= last) ++probe->backwards;
    last = t;
    if (t == gyre::kMaxTimestamp) return;
    ++probe->finite_watermarks;
    auto& s = probe->seen[static_cast<std::size_t>(ctx->partition())];
    s.store(std::max(s.load(), t));
  }
};

// Inside the body: operators there see the loop's watermark, which no record circulating
// passes either.
struct InLoopCheck final : gyre::OneInputOperator<Ev, Ev> {
  explicit InLoopCheck(Probe* p) : probe(p) {}
  Probe* probe;
  Timestamp last = gyre::kMinTimestamp;
  void process(std::span<const Ev> in, gyre::Output<Ev>& out) override {
    for (const Ev& e : in)
      if (e.ts <= last) ++probe->late_in_loop;
    out.emit(in);
  }
  void on_watermark(Timestamp t, gyre::Output<Ev>&) override { last = t; }
};

// The window's value: the records of a key and window and their passes through the loop.
struct Acc {
  std::int64_t count = 0;
  std::int64_t passes = 0;
  bool operator==(const Acc&) const = default;
};
struct PassesAgg {
  Acc create() const { return {}; }
  void add(Acc& a, const Ev& e) const {
    ++a.count;
    a.passes += static_cast<std::int64_t>(e.passes);
  }
  void merge(Acc& a, const Acc& b) const {
    a.count += b.count;
    a.passes += b.passes;
  }
  Acc result(const Acc& a) const { return a; }
};
using Result = gyre::WindowResult<std::uint64_t, Acc>;

// A pane as the test compares it.
struct Pane {
  std::uint64_t key;
  Timestamp end;
  std::int64_t count;
  std::int64_t passes;
  std::int64_t on_time;  // the window's pane timing is ON_TIME (its only pane: the default trigger)
  std::int64_t early;    // it fired at a finite watermark (before the end of the input)
  bool operator==(const Pane& o) const {
    return std::tie(key, end, count, passes) == std::tie(o.key, o.end, o.count, o.passes);
  }
  bool operator<(const Pane& o) const { return std::tie(key, end) < std::tie(o.key, o.end); }
};

// Right after the window (forward: one channel, in order): a pane fired by watermark w comes
// before w. A pane is early if a finite watermark >= its end - 1 follows it; the rest go out at
// the end of the input (+inf).
struct PaneCheck final : gyre::OneInputOperator<Result, Pane> {
  std::vector<Pane> pending;
  void process(std::span<const Result> in, gyre::Output<Pane>&) override {
    for (const Result& r : in)
      pending.push_back(Pane{r.key, r.end, r.value.count, r.value.passes,
                             r.pane.timing == gyre::Timing::kOnTime && r.pane.index == 0 ? 1 : 0, 0});
  }
  void on_watermark(Timestamp t, gyre::Output<Pane>& out) override {
    std::vector<Pane> keep;
    for (Pane& p : pending) {
      if (t < gyre::kMaxTimestamp && p.end - 1 > t) {
        keep.push_back(p);
        continue;
      }
      p.early = t < gyre::kMaxTimestamp ? 1 : 0;
      out.emit(p);
    }
    pending.swap(keep);
  }
};

std::vector<Pane> serial_panes(std::uint64_t seed, Timestamp until = gyre::kMaxTimestamp) {
  std::map<std::pair<std::uint64_t, Timestamp>, std::pair<std::int64_t, std::int64_t>> acc;
  for (std::int64_t i = 0; i < kRecords; ++i) {
    Ev e = record(i, seed);
    do e = step(e);
    while (e.n != 0);
    const Timestamp end = (e.ts / kWindow + 1) * kWindow;
    if (end > until) continue;
    auto& a = acc[{e.key, end}];
    ++a.first;
    a.second += static_cast<std::int64_t>(e.passes);
  }
  std::vector<Pane> out;
  for (const auto& [k, v] : acc) out.push_back(Pane{k.first, k.second, v.first, v.second, 1, 0});
  return out;
}

class LoopTimeTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::JobConfig config() const {
    gyre::JobConfig c;
    c.parallelism = GetParam();
    c.slots = 2;
    c.batch_bytes = 512;  // small batches: many of them, partly filled ones, many exchanges
    c.buffer_timeout = std::chrono::milliseconds(5);
    return c;
  }
  std::uint64_t seed() const { return 77 + static_cast<std::uint64_t>(GetParam()); }
};

// The loop: records halve n until 0, each pass through an exchange (so they change partition
// and rank), keeping their timestamps; leaving records go through the checker and the window.
gyre::Stream<Pane> build(gyre::Environment& env, Probe* probe, std::uint64_t seed, bool unbounded) {
  // Declared unbounded either way (it waits, so it needs the idle polling); bounded = it ends.
  auto input = env.source("paced", PacedSource(probe, seed, unbounded));
  auto loop = gyre::iterate(input, ts_of, "halving");
  auto next = loop.head().process("in-loop check", InLoopCheck(probe)).map(step).key_by([](const Ev& e) { return e.id * 31 + e.passes; }).partition();
  loop.close_with(next.filter([](const Ev& e) { return e.n != 0; }));
  auto left = next.filter([](const Ev& e) { return e.n == 0; }).process("check", Checker(probe));
  const gyre::OutputTag<Ev> late("late");
  auto windows = gyre::window(left.key_by([](const Ev& e) { return e.key; }), ts_of, gyre::TumblingWindows{kWindow})
                     .late_output(late)
                     .aggregate("passes per window", PassesAgg{});
  windows.side_output(late).for_each([probe](const Ev&) { ++probe->late_in_window; });
  return windows.forward().process("pane check", PaneCheck{});
}

void expect_panes(std::vector<Pane> got, const std::vector<Pane>& want) {
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "pane " << i << ": key " << want[i].key << " end " << want[i].end;
    EXPECT_EQ(got[i].on_time, 1) << "pane key " << got[i].key << " end " << got[i].end << " fired late";
  }
}

TEST_P(LoopTimeTest, WindowAfterLoopGetsSerialPanesOnTime) {
  auto probe = std::make_unique<Probe>();
  auto env = testenv::make_env(config());
  auto panes = build(env, probe.get(), seed(), false).collect();
  const auto r = env.run();
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedQuiescent);
  const auto got = testenv::values(panes);
  expect_panes(got, serial_panes(seed()));
  EXPECT_EQ(testenv::sum_ranks(probe->late_after_loop.load()), 0) << "a record left the loop behind its watermark";
  EXPECT_EQ(testenv::sum_ranks(probe->late_in_window.load()), 0);
  EXPECT_EQ(testenv::sum_ranks(probe->late_in_loop.load()), 0) << "a record in the loop behind the body's watermark";
  EXPECT_EQ(testenv::sum_ranks(probe->backwards.load()), 0);
  EXPECT_EQ(testenv::sum_ranks(probe->gave_up.load()), 0) << "the loop's watermark stalled while the input ran";
  // The watermark advanced while the input ran: every window ending well before the input's last
  // record fired at a finite watermark (before the end of input), not at the final +inf.
  for (const Pane& p : got) {
    if (p.end <= kLast - 2 * kHorizon) {
      EXPECT_EQ(p.early, 1) << "window ending " << p.end << " waited for the end";
    }
  }
}

TEST_P(LoopTimeTest, UnboundedInputThatIdlesStillAdvancesTheWatermark) {
  auto probe = std::make_unique<Probe>();
  gyre::JobConfig c = config();
  auto env = testenv::make_env(c);
  auto mu = std::make_shared<std::mutex>();
  auto got = std::make_shared<std::vector<Pane>>();
  build(env, probe.get(), seed(), true).for_each([mu, got](const Pane& p) {
    std::lock_guard lock(*mu);
    got->push_back(p);
  });
  const auto want = serial_panes(seed());
  auto job = env.start();
  // Every rank polls the global count in lockstep (sum_ranks is collective), then all cancel.
  auto count = [&] {
    std::lock_guard lock(*mu);
    return static_cast<long long>(got->size());
  };
  for (int i = 0; i < 1500 && testenv::sum_ranks(count()) < static_cast<long long>(want.size()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(job.finished() && testenv::rank() < GetParam()) << "an unbounded loop must not end by itself";
  testenv::barrier();  // no rank cancels before every rank looked
  job.cancel();
  const auto r = job.wait();
  EXPECT_TRUE(r.cancelled);
  std::vector<Pane> local;
  {
    std::lock_guard lock(*mu);
    local = *got;
  }
  const auto all = testenv::gather(local);
  expect_panes(all, want);
  for (const Pane& p : all) EXPECT_EQ(p.early, 1);  // the input never ends: no +inf
  EXPECT_EQ(testenv::sum_ranks(probe->late_after_loop.load()), 0) << "a record left the loop behind its watermark";
  EXPECT_EQ(testenv::sum_ranks(probe->late_in_window.load()), 0);
  EXPECT_EQ(testenv::sum_ranks(probe->late_in_loop.load()), 0) << "a record in the loop behind the body's watermark";
  EXPECT_EQ(testenv::sum_ranks(probe->backwards.load()), 0);
  EXPECT_EQ(testenv::sum_ranks(probe->gave_up.load()), 0);
}

// No input at all: the loop still ends by termination detection.
TEST_P(LoopTimeTest, EmptyInputEnds) {
  auto env = testenv::make_env(config());
  auto loop = gyre::iterate(env.from_collection(std::vector<Ev>{}), ts_of, "empty");
  auto next = loop.head().map(step);
  loop.close_with(next.filter([](const Ev& e) { return e.n != 0; }));
  auto out = next.filter([](const Ev& e) { return e.n == 0; }).collect();
  const auto r = env.run();
  EXPECT_TRUE(testenv::values(out).empty());
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedQuiescent);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, LoopTimeTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
