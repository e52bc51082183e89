// The public operator API (gyre/core/operator.h): user-written one- and two-input operators,
// sources with watermarks, sinks, side outputs, against serial references; in one process at
// parallelism 1, 2, 4 and under MPI.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <cstdint>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gyre/core.h"
#include "gyre/iterations.h"
#include "../support/test_env.h"

namespace {

struct Rec {
  std::uint64_t key;
  std::int64_t value;
  bool operator==(const Rec&) const = default;
  bool operator<(const Rec& o) const { return key != o.key ? key < o.key : value < o.value; }
};

struct Timed {
  std::int64_t time;
  std::uint64_t key;
  bool operator==(const Timed&) const = default;
  bool operator<(const Timed& o) const { return time != o.time ? time < o.time : key < o.key; }
};

std::vector<Rec> random_recs(std::size_t n, std::uint64_t keys, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Rec> v(n);
  for (auto& r : v) r = {rng() % keys, static_cast<std::int64_t>(rng() % 2001) - 1000};
  return v;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

auto by_key = [](const Rec& r) { return r.key; };

// ---- operators under test ----

// Stateful, keyed: the sum per key, emitted when the input ends.
struct KeySum final : gyre::OneInputOperator<Rec, Rec> {
  std::map<std::uint64_t, std::int64_t> sums;
  void process(std::span<const Rec> in, gyre::Output<Rec>& out) override {
    (void)out;
    for (const Rec& r : in) sums[r.key] += r.value;
  }
  void on_end(gyre::Output<Rec>& out) override {
    for (const auto& [k, v] : sums) out.emit(Rec{k, v});
  }
};

// A hand-written inner join of two bounded inputs on the key: both sides kept, joined at the end.
struct HandJoin final : gyre::TwoInputOperator<Rec, Rec, std::pair<Rec, Rec>> {
  std::unordered_multimap<std::uint64_t, Rec> left;
  std::vector<Rec> right;
  void process1(std::span<const Rec> in, gyre::Output<std::pair<Rec, Rec>>&) override {
    for (const Rec& r : in) left.emplace(r.key, r);
  }
  void process2(std::span<const Rec> in, gyre::Output<std::pair<Rec, Rec>>&) override {
    right.insert(right.end(), in.begin(), in.end());
  }
  void on_end(gyre::Output<std::pair<Rec, Rec>>& out) override {
    for (const Rec& r : right) {
      auto [lo, hi] = left.equal_range(r.key);
      for (auto it = lo; it != hi; ++it) out.emit(std::pair<Rec, Rec>(it->second, r));
    }
  }
};

// Non-negative values on the main output, negative ones on the side output "negative".
const gyre::OutputTag<Rec> kNegative("negative");
struct Split final : gyre::OneInputOperator<Rec, Rec> {
  gyre::Output<Rec>* negative = nullptr;
  void open(gyre::OperatorContext& ctx) override { negative = &ctx.output(kNegative); }
  void process(std::span<const Rec> in, gyre::Output<Rec>& out) override {
    for (const Rec& r : in) {
      if (r.value < 0) negative->emit(r);
      else out.emit(r);
    }
  }
};

// Each partition emits times part, part + P, part + 2P, ... below `count` in batches of 100, with
// a watermark after every batch.
struct TimedSource final : gyre::Source<Timed> {
  explicit TimedSource(std::int64_t n) : count(n) {}
  std::int64_t count;
  std::int64_t next = 0, step = 1;
  void open(gyre::OperatorContext& ctx) override {
    next = ctx.partition();
    step = ctx.parallelism();
  }
  gyre::SourceStatus produce(gyre::SourceOutput<Timed>& out) override {
    for (int i = 0; i < 100 && next < count; ++i, next += step)
      out.emit(Timed{next, static_cast<std::uint64_t>(next % 7)});
    if (next >= count) return gyre::SourceStatus::kDone;
    out.emit_watermark(next - 1);  // every later record has time >= next
    return gyre::SourceStatus::kMore;
  }
};

// Holds records until the watermark passes them; counts records that came after a watermark
// that should have kept them out (late), and watermarks that went backwards.
struct Release final : gyre::OneInputOperator<Timed, Timed> {
  std::vector<Timed> held;
  gyre::Timestamp last = gyre::kMinTimestamp;
  std::atomic<std::int64_t>* late;
  std::atomic<std::int64_t>* watermarks;
  Release(std::atomic<std::int64_t>* late_count, std::atomic<std::int64_t>* watermark_count)
      : late(late_count), watermarks(watermark_count) {}
  void process(std::span<const Timed> in, gyre::Output<Timed>&) override {
    for (const Timed& t : in) {
      if (t.time <= last) ++*late;
      held.push_back(t);
    }
  }
  void on_watermark(gyre::Timestamp t, gyre::Output<Timed>& out) override {
    if (t < last) ++*late;
    last = t;
    if (t != gyre::kMaxTimestamp) ++*watermarks;
    std::vector<Timed> keep;
    for (const Timed& x : held) {
      if (x.time <= t) out.emit(x);
      else keep.push_back(x);
    }
    held.swap(keep);
  }
  void on_end(gyre::Output<Timed>& out) override {
    for (const Timed& x : held) out.emit(x);  // nothing: the last watermark (+inf) released it
  }
};

// Two timed inputs: counts records at or before the combined watermark (late: the watermark
// must be the minimum of the inputs'), and whether the final watermark (+inf) came.
struct TwoTimed final : gyre::TwoInputOperator<Timed, Timed, Timed> {
  gyre::Timestamp last = gyre::kMinTimestamp;
  std::atomic<std::int64_t>* late;
  std::atomic<std::int64_t>* finals;
  TwoTimed(std::atomic<std::int64_t>* late_count, std::atomic<std::int64_t>* final_count)
      : late(late_count), finals(final_count) {}
  void check(std::span<const Timed> in, gyre::Output<Timed>& out) {
    for (const Timed& t : in) {
      if (t.time <= last) ++*late;
      out.emit(t);
    }
  }
  void process1(std::span<const Timed> in, gyre::Output<Timed>& out) override { check(in, out); }
  void process2(std::span<const Timed> in, gyre::Output<Timed>& out) override { check(in, out); }
  void on_watermark(gyre::Timestamp t, gyre::Output<Timed>&) override {
    if (t <= last) ++*late;
    last = t;
    if (t == gyre::kMaxTimestamp) ++*finals;
  }
};

// A sink written as gyre::Sink: sums what it consumed; publishes on commit only.
struct SumSink final : gyre::Sink<Rec> {
  std::atomic<std::int64_t>* total;
  std::int64_t local = 0;
  explicit SumSink(std::atomic<std::int64_t>* t) : total(t) {}
  void consume(std::span<const Rec> in) override {
    for (const Rec& r : in) local += r.value;
  }
  void commit() override { *total += local; }
};

struct AddOne final : gyre::OneInputOperator<Rec, Rec> {
  std::int64_t supersteps = 0;
  void process(std::span<const Rec> in, gyre::Output<Rec>& out) override {
    for (const Rec& r : in) out.emit(Rec{r.key, r.value + 1});
  }
  void on_superstep_end(gyre::Output<Rec>&) override { ++supersteps; }
};

struct Exploding final : gyre::OneInputOperator<Rec, Rec> {
  void process(std::span<const Rec> in, gyre::Output<Rec>&) override {
    if (!in.empty()) throw std::runtime_error("boom");
  }
};

struct ExplodingOpen final : gyre::OneInputOperator<Rec, Rec> {
  void open(gyre::OperatorContext&) override { throw std::runtime_error("cannot open"); }
  void process(std::span<const Rec>, gyre::Output<Rec>&) override {}
};


// Keyed state and event-time timers: per key, the count of records in each tumbling window of
// 100 time units, emitted by a timer at the window's end once the watermark passed it (one timer
// per key and window: registering it again for every record is deduplicated).
struct WindowCount {
  std::uint64_t key;
  std::int64_t end;
  std::int64_t count;
  bool operator==(const WindowCount&) const = default;
  bool operator<(const WindowCount& o) const { return key != o.key ? key < o.key : end < o.end; }
};
struct TumblingCount final : gyre::KeyedOperator<std::uint64_t, Timed, WindowCount> {
  gyre::MapState<std::uint64_t, std::int64_t, std::int64_t>* counts = nullptr;
  std::atomic<std::int64_t>* late;
  explicit TumblingCount(std::atomic<std::int64_t>* late_count) : late(late_count) {}
  void open(gyre::OperatorContext& ctx) override {
    counts = &ctx.state().map<std::uint64_t, std::int64_t, std::int64_t>("counts");
  }
  void process(std::span<const Timed> in, gyre::Output<WindowCount>&) override {
    for (const Timed& t : in) {
      if (t.time < current_watermark()) ++*late;
      const std::int64_t end = (t.time / 100 + 1) * 100;
      std::int64_t* c = counts->get(t.key, end);
      if (c != nullptr) ++*c;
      else counts->put(t.key, end, 1);
      register_event_time_timer(t.key, end);
    }
  }
  void on_timer(const std::uint64_t& key, gyre::Timestamp time, gyre::TimeDomain domain,
                gyre::Output<WindowCount>& out) override {
    if (domain != gyre::TimeDomain::kEventTime || current_watermark() < time) ++*late;
    std::int64_t* c = counts->get(key, time);
    out.emit(WindowCount{key, time, c != nullptr ? *c : -1});
    counts->erase(key, time);
  }
};

// Processing-time timers: each record's key asks to be called back 30 ms later (twice: the
// second registration is deduplicated); the callback emits the key and how late it came.
struct Later final : gyre::KeyedOperator<std::uint64_t, Rec, Rec> {
  void process(std::span<const Rec> in, gyre::Output<Rec>&) override {
    for (const Rec& r : in) {
      const gyre::Timestamp at = processing_time() + 30;
      register_processing_time_timer(r.key, at);
      register_processing_time_timer(r.key, at);
    }
  }
  void on_timer(const std::uint64_t& key, gyre::Timestamp time, gyre::TimeDomain domain,
                gyre::Output<Rec>& out) override {
    const bool ok = domain == gyre::TimeDomain::kProcessingTime && processing_time() >= time;
    out.emit(Rec{key, ok ? 1 : 0});
  }
};

class OperatorApiTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::JobConfig config() const {
    gyre::JobConfig c;
    c.parallelism = GetParam();
    c.slots = 2;
    c.batch_bytes = 512;  // small batches: many batches, many exchanges, partial buffers
    return c;
  }
  unsigned seed() const { return 4321U + static_cast<unsigned>(GetParam()); }
};

TEST_P(OperatorApiTest, KeyedOneInputOperatorMatchesSerialReference) {
  const auto in = random_recs(20000, 500, seed());
  auto env = testenv::make_env(config());
  auto out = env.from_collection(in).key_by(by_key).process("key sums", KeySum{}).collect();
  env.run();
  std::map<std::uint64_t, std::int64_t> ref;
  for (const auto& r : in) ref[r.key] += r.value;
  std::vector<Rec> expect;
  for (const auto& [k, v] : ref) expect.push_back({k, v});
  EXPECT_EQ(sorted(testenv::values(out)), expect);
}

TEST_P(OperatorApiTest, KeyedOperatorEventTimeTimersMatchSerialWindows) {
  const std::int64_t n = 20000;
  auto env = testenv::make_env(config());
  std::atomic<std::int64_t> late{0};
  auto out = env.source("timed", TimedSource(n), true)
                 .key_by([](const Timed& t) { return t.key; })
                 .process("tumbling count", TumblingCount(&late))
                 .collect();
  env.run();
  std::map<std::pair<std::uint64_t, std::int64_t>, std::int64_t> ref;
  for (std::int64_t t = 0; t < n; ++t) ++ref[{static_cast<std::uint64_t>(t % 7), (t / 100 + 1) * 100}];
  std::vector<WindowCount> expect;
  for (const auto& [kw, c] : ref) expect.push_back({kw.first, kw.second, c});
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
  EXPECT_EQ(testenv::sum_ranks(late.load()), 0);
}

TEST_P(OperatorApiTest, KeyedOperatorProcessingTimeTimersFireOnceEachNeverEarly) {
  gyre::JobConfig c = config();
  auto env = testenv::make_env(c);
  auto out = env.generate_unbounded<Rec>([](gyre::SourceContext& ctx) -> std::optional<Rec> {
                  if (ctx.emitted >= 50) return std::nullopt;
                  return Rec{ctx.emitted * 8 + static_cast<std::uint64_t>(ctx.partition), 0};
                })
                 .key_by(by_key)
                 .process("later", Later{})
                 .collect();
  auto job = env.start();
  // Each rank holds the keys of its own partitions: wait until its count has stood still for
  // 300 ms (the timers are due 30 ms after their records), then stop.
  const std::size_t want = 50 * static_cast<std::size_t>(GetParam());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::size_t last = 0;
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < until) {
    const std::size_t now = out.values().size();
    if (now != last) {
      last = now;
      since = std::chrono::steady_clock::now();
    } else if (now > 0 && std::chrono::steady_clock::now() - since > std::chrono::milliseconds(300)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto got = testenv::gather(out.values());
  job.cancel();
  job.wait();
  ASSERT_EQ(got.size(), want);
  std::map<std::uint64_t, int> seen;
  for (const Rec& r : got) {
    EXPECT_EQ(r.value, 1) << "timer of key " << r.key << " fired early or in the wrong domain";
    ++seen[r.key];
  }
  EXPECT_EQ(seen.size(), want);
}

TEST_P(OperatorApiTest, FactoryAndLambdaForms) {
  const auto in = random_recs(5000, 100, seed());
  auto env = testenv::make_env(config());
  auto doubled = env.from_collection(in).process<Rec>("double", [](std::span<const Rec> batch, gyre::Output<Rec>& out) {
    for (const Rec& r : batch) out.emit(Rec{r.key, r.value * 2});
  });
  auto sums = doubled.rebalance().process("key sums (factory)", [] { return std::make_unique<AddOne>(); }).collect();
  env.run();
  std::vector<Rec> expect;
  for (const auto& r : in) expect.push_back({r.key, r.value * 2 + 1});
  EXPECT_EQ(sorted(testenv::values(sums)), sorted(expect));
}

TEST_P(OperatorApiTest, TwoInputOperatorJoinMatchesNestedLoops) {
  const auto left = random_recs(3000, 300, seed());
  const auto right = random_recs(2000, 400, seed() + 1);
  auto env = testenv::make_env(config());
  auto l = env.from_collection(left);
  auto r = env.from_collection(right);
  auto out = l.key_by(by_key).connect(r.key_by(by_key)).process("hand join", HandJoin{}).collect();
  env.run();
  std::vector<std::pair<Rec, Rec>> expect;
  for (const auto& a : left)
    for (const auto& b : right)
      if (a.key == b.key) expect.emplace_back(a, b);
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorApiTest, SideOutput) {
  const auto in = random_recs(10000, 100, seed());
  auto env = testenv::make_env(config());
  auto main = env.from_collection(in).process("split", Split{});
  auto negative = main.side_output(kNegative).collect();
  auto rest = main.collect();
  env.run();
  std::vector<Rec> pos, neg;
  for (const auto& r : in) (r.value < 0 ? neg : pos).push_back(r);
  EXPECT_EQ(sorted(testenv::values(rest)), sorted(pos));
  EXPECT_EQ(sorted(testenv::values(negative)), sorted(neg));
}

TEST_P(OperatorApiTest, UnreadSideOutputDropsItsRecords) {
  const auto in = random_recs(3000, 100, seed());
  auto env = testenv::make_env(config());
  auto rest = env.from_collection(in).process("split", Split{}).collect();
  env.run();
  std::vector<Rec> pos;
  for (const auto& r : in)
    if (r.value >= 0) pos.push_back(r);
  EXPECT_EQ(sorted(testenv::values(rest)), sorted(pos));
}

TEST_P(OperatorApiTest, SourceWithWatermarks) {
  const std::int64_t n = 20000;
  auto env = testenv::make_env(config());
  std::atomic<std::int64_t> late{0}, watermarks{0};
  // Forward: each instance reads one source partition (one channel, so the watermarks it sees
  // are that partition's as they were emitted).
  auto released = env.source("timed", TimedSource(n), true).forward().process("release", Release(&late, &watermarks)).collect();
  env.run();
  auto all = testenv::values(released);
  ASSERT_EQ(all.size(), static_cast<std::size_t>(n));
  std::sort(all.begin(), all.end());
  for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)].time, i);
  EXPECT_EQ(testenv::sum_ranks(late.load()), 0);
  EXPECT_GT(testenv::sum_ranks(watermarks.load()), 0) << "no watermark reached the operator";
}

TEST_P(OperatorApiTest, TwoInputWatermarkIsTheMinimum) {
  auto env = testenv::make_env(config());
  std::atomic<std::int64_t> late{0}, finals{0};
  auto fast = env.source("fast", TimedSource(20000), true);
  auto slow = env.source("slow", TimedSource(3000), true);
  auto out = fast.forward().connect(slow.forward()).process("two timed", TwoTimed(&late, &finals)).collect();
  env.run();
  EXPECT_EQ(testenv::values(out).size(), 23000U);
  EXPECT_EQ(testenv::sum_ranks(late.load()), 0);
  EXPECT_EQ(testenv::sum_ranks(finals.load()), GetParam()) << "every instance ends at watermark +inf";
}

TEST_P(OperatorApiTest, SinkAndBoundedSourceThroughTheBuilder) {
  const auto in = random_recs(4000, 50, seed());
  auto env = testenv::make_env(config());
  std::atomic<std::int64_t> total{0};
  gyre::OperatorBuilder b(env, "sink: sum");
  b.name("sum sink");
  b.input(env.from_collection(in));
  b.sink_operator([&total] { return std::make_unique<SumSink>(&total); });
  env.run();
  std::int64_t expect = 0;
  for (const auto& r : in) expect += r.value;
  EXPECT_EQ(testenv::sum_ranks(total.load()), expect);
}

TEST_P(OperatorApiTest, OperatorInsideIteration) {
  const auto in = random_recs(2000, 50, seed());
  auto env = testenv::make_env(config());
  auto out = gyre::iterate(env.from_collection(in), 5, [](gyre::Stream<Rec> s) { return s.process("add one", AddOne{}); })
                 .collect();
  env.run();
  std::vector<Rec> expect;
  for (const auto& r : in) expect.push_back({r.key, r.value + 5});
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorApiTest, ExplainShowsTheOperatorName) {
  auto env = testenv::make_env(config());
  env.from_collection(random_recs(10, 5, seed())).key_by(by_key).process("my key sums", KeySum{}).collect();
  const std::string text = env.explain();
  EXPECT_NE(text.find("my key sums"), std::string::npos) << text;
}

TEST_P(OperatorApiTest, ExceptionNamesTheOperator) {
  auto env = testenv::make_env(config());
  env.from_collection(random_recs(1000, 5, seed())).process("exploding op", Exploding{}).collect();
  try {
    env.run();
    FAIL() << "run() should throw";
  } catch (const gyre::JobError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("exploding op"), std::string::npos) << msg;
    if (!testenv::mpi()) {
      EXPECT_EQ(e.operator_name(), "exploding op");
    }
  }
}

TEST_P(OperatorApiTest, ExceptionInOpenNamesTheOperator) {
  auto env = testenv::make_env(config());
  env.from_collection(random_recs(100, 5, seed())).process("exploding open", ExplodingOpen{}).collect();
  try {
    env.run();
    FAIL() << "run() should throw";
  } catch (const gyre::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot open (in operator 'exploding open', open)"), std::string::npos) << msg;
  }
}

TEST_P(OperatorApiTest, PlanErrors) {
  {
    auto env = testenv::make_env(config());
    auto s = env.from_collection(random_recs(10, 5, seed()));
    auto mapped = s.map([](const Rec& r) { return r; });
    EXPECT_THROW(mapped.side_output(kNegative), gyre::PlanError);  // not an operator-API operator
    auto split = s.process("split", Split{});
    split.side_output(kNegative).collect();
    EXPECT_THROW(split.side_output(gyre::OutputTag<Timed>("negative")), gyre::PlanError);  // another type
  }
  {
    auto env = testenv::make_env(config());
    gyre::OperatorBuilder b(env, "no factory");
    b.input(env.from_collection(random_recs(10, 5, seed())));
    b.sink();
    try {
      (void)env.explain();
      FAIL() << "explain() should throw";
    } catch (const gyre::PlanError& e) {
      EXPECT_NE(std::string(e.what()).find("no operator"), std::string::npos) << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Parallelism, OperatorApiTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
