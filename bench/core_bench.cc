// Core engine throughput, each workload beside a hand-written loop doing the same work in the
// same run. Prints Google Benchmark's table, then a summary: best records/s/core and the ratio
// gyre / hand-written.
//
//   (a) map -> filter -> sink, chained, on 16-byte records (20M records); (a') the same with
//       the functions passed as function pointers
//   (b) key_by -> reduce (sum) with 1M distinct keys (10M records)
//   (c) hash join, 10M probe records x 1M build records (each probe matches one build record)
//   (d) (a) with a watermark every 1,000 records vs none, chained and after a rebalance
//
// gyre runs at parallelism P on P slots and its rate is divided by P; the hand-written loops run
// on one thread. Input generation is outside the timed region for both.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "gyre/core.h"

namespace {

struct Rec {
  std::uint64_t key;
  std::uint64_t value;
};
static_assert(sizeof(Rec) == 16);

constexpr std::uint64_t kMapRecords = 20'000'000;
constexpr std::uint64_t kReduceRecords = 10'000'000;
constexpr std::uint64_t kReduceKeys = 1'000'000;
constexpr std::uint64_t kProbe = 10'000'000;
constexpr std::uint64_t kBuild = 1'000'000;

// Best records/s/core per benchmark name, for the summary.
std::map<std::string, double>& best() {
  static std::map<std::string, double> m;
  return m;
}

// Runs `body` once per benchmark iteration, timing it; reports records/s/core.
template <class Body>
void timed(benchmark::State& state, const std::string& name, double records, int cores, Body body) {
  double best_s = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    best_s = std::min(best_s, s);
  }
  const double rate = records / best_s / cores;
  state.counters["rec/s/core"] = rate;
  double& b = best()[name];
  if (b >= 0) b = std::max(b, rate);
}

std::size_t g_batch_bytes = 32 * 1024;

// A wrong result voids the figure: it is reported and left out of the summary.
void fail(benchmark::State& state, const std::string& name, const char* why) {
  state.SkipWithError(why);
  best()[name] = -1;
}

gyre::JobConfig config(int p) {
  gyre::JobConfig c;
  c.batch_bytes = g_batch_bytes;
  c.parallelism = p;
  c.slots = p;
  return c;
}

struct alignas(64) Slot {  // per-partition accumulators on separate cache lines
  std::uint64_t v = 0;
};

std::shared_ptr<const std::vector<Rec>> make_input(std::uint64_t n, std::uint64_t key_range, std::uint64_t seed) {
  auto v = std::make_shared<std::vector<Rec>>(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t h = gyre::mix64(i ^ seed);
    // With a key range: exactly key_range distinct keys mix64(0 .. key_range-1) (mix64 is a
    // bijection), each occurring n / key_range times.
    (*v)[i] = {key_range ? gyre::mix64(i % key_range) : h, i};
  }
  return v;
}

const std::shared_ptr<const std::vector<Rec>>& map_input() {
  static const auto v = make_input(kMapRecords, 0, 1);
  return v;
}
const std::shared_ptr<const std::vector<Rec>>& reduce_input() {
  static const auto v = make_input(kReduceRecords, kReduceKeys, 2);
  return v;
}
const std::shared_ptr<const std::vector<Rec>>& probe_input() {
  static const auto v = make_input(kProbe, kBuild, 3);
  return v;
}
const std::shared_ptr<const std::vector<Rec>>& build_input() {
  static const auto v = [] {
    auto b = std::make_shared<std::vector<Rec>>(kBuild);
    for (std::uint64_t i = 0; i < kBuild; ++i) (*b)[i] = {gyre::mix64(i), i * 7};
    return std::shared_ptr<const std::vector<Rec>>(b);
  }();
  return v;
}

inline Rec map_fn(const Rec& r) { return Rec{r.key * 3 + r.value, r.value ^ r.key}; }
inline bool filter_fn(const Rec& r) { return (r.key & 3) != 0; }

// A plain open-addressing table for the hand-written baselines.
struct Table {
  explicit Table(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    keys.assign(cap, kEmpty);
    vals.assign(cap, 0);
    mask = cap - 1;
  }
  std::uint64_t& slot(std::uint64_t k) {
    std::size_t i = gyre::mix64(k) & mask;
    while (keys[i] != k && keys[i] != kEmpty) i = (i + 1) & mask;
    keys[i] = k;
    return vals[i];
  }
  const std::uint64_t* find(std::uint64_t k) const {
    std::size_t i = gyre::mix64(k) & mask;
    while (true) {
      if (keys[i] == k) return &vals[i];
      if (keys[i] == kEmpty) return nullptr;
      i = (i + 1) & mask;
    }
  }
  static constexpr std::uint64_t kEmpty = ~0ULL;
  std::vector<std::uint64_t> keys, vals;
  std::size_t mask;
};

// ---- (a) map -> filter ----

std::uint64_t map_filter_expected() {
  static const std::uint64_t sum = [] {
    std::uint64_t s = 0;
    for (const Rec& x : *map_input()) {
      const Rec r = map_fn(x);
      if (filter_fn(r)) s += r.value;
    }
    return s;
  }();
  return sum;
}

// The functions as lambdas (as gyre code is written): the compiler sees their bodies at the
// fused loop. With plain function pointers (.map(map_fn)) every record pays two indirect calls;
// that variant is (a') below.
void BM_MapFilter_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  const std::string name = "a_map_filter/gyre/p" + std::to_string(p);
  std::uint64_t check = 0;
  timed(state, name, kMapRecords, p, [&] {
    std::vector<Slot> sums(static_cast<std::size_t>(p));
    gyre::Environment env(config(p));
    env.from_collection(map_input())
        .map([](const Rec& r) { return map_fn(r); })
        .filter([](const Rec& r) { return filter_fn(r); })
        .for_each([&sums](const Rec& r, int part) { sums[static_cast<std::size_t>(part)].v += r.value; });
    env.run();
    check = 0;
    for (auto& s : sums) check += s.v;
  });
  if (check != map_filter_expected()) fail(state, name, "wrong sum");
}

void BM_MapFilterFnPtr_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  const std::string name = "a'_map_filter_fnptr/gyre/p" + std::to_string(p);
  std::uint64_t check = 0;
  timed(state, name, kMapRecords, p, [&] {
    std::vector<Slot> sums(static_cast<std::size_t>(p));
    gyre::Environment env(config(p));
    env.from_collection(map_input())
        .map(map_fn)
        .filter(filter_fn)
        .for_each([&sums](const Rec& r, int part) { sums[static_cast<std::size_t>(part)].v += r.value; });
    env.run();
    check = 0;
    for (auto& s : sums) check += s.v;
  });
  if (check != map_filter_expected()) fail(state, name, "wrong sum");
}

void BM_MapFilter_HandWritten(benchmark::State& state) {
  std::uint64_t sum = 0;
  timed(state, "a_map_filter/hand", kMapRecords, 1, [&] {
    sum = 0;
    for (const Rec& x : *map_input()) {
      const Rec r = map_fn(x);
      if (filter_fn(r)) sum += r.value;
    }
    benchmark::DoNotOptimize(sum);
  });
}

// ---- (d) watermark cost: map -> filter -> sink with a watermark every 1,000 records vs none ----
// A collection source that cuts its batches at every 1,000th record and sends a watermark
// there (timestamp = record index), in band, through the same path as end of input. gyre has no
// public watermark source yet (issue 13's operator API), so the bench builds this one node by
// hand. Chained: the events go through the fused map -> filter -> sink by one call each.
// Rebalanced: a rebalance before the map sends each event to every consumer channel (and cuts the
// writer's batches there).

class WatermarkSource final : public gyre::detail::SourceOp<Rec> {
 public:
  WatermarkSource(const gyre::detail::OpContext& ctx, std::shared_ptr<const std::vector<Rec>> data,
                  std::uint64_t every, gyre::detail::Input<Rec>* out)
      : SourceOp<Rec>(ctx, out), data_(std::move(data)), every_(every) {
    std::tie(pos_, end_) = gyre::detail::split_range(data_->size(), ctx.partition, ctx.parallelism);
  }
  gyre::detail::SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t b = 0; b < max_batches && pos_ < end_; ++b) {
      std::size_t n = std::min<std::size_t>(this->cap_, end_ - pos_);
      if (every_ > 0) n = std::min<std::size_t>(n, every_ - pos_ % every_);
      this->emit(std::span<const Rec>(data_->data() + pos_, n));
      pos_ += n;
      if (every_ > 0 && pos_ % every_ == 0)
        this->out_->on_event(gyre::Event::watermark(static_cast<gyre::Timestamp>(pos_)));
    }
    if (pos_ < end_) return gyre::detail::SourceStatus::kMore;
    this->out_->on_event(gyre::Event::end());
    return gyre::detail::SourceStatus::kDone;
  }

 private:
  std::shared_ptr<const std::vector<Rec>> data_;
  std::uint64_t every_;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
};

gyre::Stream<Rec> watermarked(gyre::Environment& env, std::uint64_t every) {
  gyre::OperatorBuilder b(env, "source: watermarked collection");
  b.bounded(true);
  b.output<Rec>();
  auto data = map_input();
  b.factory([data, every](const gyre::detail::OpContext& c, const std::vector<gyre::detail::PortBase*>& outs)
                -> std::unique_ptr<gyre::detail::NodeRuntime> {
    return std::make_unique<WatermarkSource>(c, data, every, static_cast<gyre::detail::Input<Rec>*>(outs[0]));
  });
  return b.stream<Rec>();
}

void BM_Watermarks_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  const std::uint64_t every = static_cast<std::uint64_t>(state.range(1));
  const bool rebalance = state.range(2) != 0;
  const std::string name = std::string(rebalance ? "d_watermarks_rebalance" : "d_watermarks") + "/" +
                           (every ? "every1000" : "none") + "/p" + std::to_string(p);
  std::uint64_t check = 0;
  timed(state, name, kMapRecords, p, [&] {
    std::vector<Slot> sums(static_cast<std::size_t>(p));
    gyre::Environment env(config(p));
    auto src = watermarked(env, every);
    auto body = [&](auto s) {
      s.map([](const Rec& r) { return map_fn(r); })
          .filter([](const Rec& r) { return filter_fn(r); })
          .for_each([&sums](const Rec& r, int part) { sums[static_cast<std::size_t>(part)].v += r.value; });
    };
    if (rebalance) body(src.rebalance());
    else body(src);
    env.run();
    check = 0;
    for (auto& s : sums) check += s.v;
  });
  if (check != map_filter_expected()) fail(state, name, "wrong sum");
}

// ---- (b) key_by -> reduce, 1M keys ----

void BM_KeyReduce_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  std::uint64_t keys = 0;
  timed(state, "b_key_reduce/gyre/p" + std::to_string(p), kReduceRecords, p, [&] {
    std::vector<Slot> n(static_cast<std::size_t>(p));
    gyre::Environment env(config(p));
    env.from_collection(reduce_input())
        .key_by([](const Rec& r) { return r.key; })
        .reduce([](const Rec& a, const Rec& b) { return Rec{a.key, a.value + b.value}; })
        .for_each([&n](const Rec&, int part) { ++n[static_cast<std::size_t>(part)].v; });
    env.run();
    keys = 0;
    for (auto& s : n) keys += s.v;
  });
  if (keys != kReduceKeys) fail(state, "b_key_reduce/gyre/p" + std::to_string(p), "wrong number of keys");
}

void BM_KeyReduce_HandWritten(benchmark::State& state) {
  std::uint64_t keys = 0;
  timed(state, "b_key_reduce/hand", kReduceRecords, 1, [&] {
    Table t(16);
    // Grows like a real table would: start small, rehash at load 1/2.
    std::size_t size = 0;
    auto grow = [&] {
      Table bigger(t.keys.size());
      for (std::size_t i = 0; i < t.keys.size(); ++i)
        if (t.keys[i] != Table::kEmpty) bigger.slot(t.keys[i]) = t.vals[i];
      t = std::move(bigger);
    };
    for (const Rec& r : *reduce_input()) {
      if ((size + 1) * 2 > t.keys.size()) grow();
      std::size_t i = gyre::mix64(r.key) & t.mask;
      while (t.keys[i] != r.key && t.keys[i] != Table::kEmpty) i = (i + 1) & t.mask;
      if (t.keys[i] == Table::kEmpty) {
        t.keys[i] = r.key;
        ++size;
      }
      t.vals[i] += r.value;
    }
    keys = size;
  });
  if (keys != kReduceKeys) fail(state, "b_key_reduce/hand", "wrong number of keys");
}

// ---- (c) hash join 10M x 1M ----

void BM_Join_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  std::uint64_t matches = 0;
  timed(state, "c_join/gyre/p" + std::to_string(p), kProbe, p, [&] {
    std::vector<Slot> n(static_cast<std::size_t>(p));
    gyre::Environment env(config(p));
    auto probe = env.from_collection(probe_input());
    auto build = env.from_collection(build_input());
    probe.join(build, [](const Rec& r) { return r.key; }, [](const Rec& r) { return r.key; },
               [](const Rec& l, const Rec& r) { return Rec{l.key, l.value + r.value}; })
        .for_each([&n](const Rec&, int part) { ++n[static_cast<std::size_t>(part)].v; });
    env.run();
    matches = 0;
    for (auto& s : n) matches += s.v;
  });
  if (matches != kProbe) fail(state, "c_join/gyre/p" + std::to_string(p), "wrong number of matches");
}

void BM_Join_HandWritten(benchmark::State& state) {
  std::uint64_t matches = 0;
  timed(state, "c_join/hand", kProbe, 1, [&] {
    Table t(kBuild);
    for (const Rec& r : *build_input()) t.slot(r.key) = r.value;
    std::uint64_t sum = 0;
    matches = 0;
    for (const Rec& l : *probe_input()) {
      if (const std::uint64_t* v = t.find(l.key)) {
        sum += l.value + *v;
        ++matches;
      }
    }
    benchmark::DoNotOptimize(sum);
  });
  if (matches != kProbe) fail(state, "c_join/hand", "wrong number of matches");
}

BENCHMARK(BM_MapFilter_HandWritten)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MapFilter_Gyre)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MapFilterFnPtr_Gyre)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Watermarks_Gyre)
    ->Args({1, 0, 0})->Args({1, 1000, 0})->Args({2, 0, 0})->Args({2, 1000, 0})
    ->Args({1, 0, 1})->Args({1, 1000, 1})->Args({2, 0, 1})->Args({2, 1000, 1})
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KeyReduce_HandWritten)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KeyReduce_Gyre)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Join_HandWritten)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Join_Gyre)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---- (e) keyed value state, read-modify-write, 1M keys (10M records, (b)'s input) ----
// The state library directly (one thread), and a user-written KeyedOperator in a job at
// parallelism P; beside (b)'s hand-written hash-map loop.

void BM_ValueState_Direct(benchmark::State& state) {
  std::uint64_t keys = 0;
  timed(state, "e_value_state/gyre/p1", kReduceRecords, 1, [&] {
    gyre::KeyedStateBackend b;
    auto& v = b.value<std::uint64_t, std::uint64_t>("sum");
    for (const Rec& r : *reduce_input()) v[r.key] += r.value;
    keys = v.size();
  });
  if (keys != kReduceKeys) fail(state, "e_value_state/gyre/p1", "wrong number of keys");
}

struct SumPerKey final : gyre::KeyedOperator<std::uint64_t, Rec, Rec> {
  gyre::ValueState<std::uint64_t, std::uint64_t>* sums = nullptr;
  std::atomic<std::uint64_t>* keys;
  explicit SumPerKey(std::atomic<std::uint64_t>* k) : keys(k) {}
  void open(gyre::OperatorContext& ctx) override { sums = &ctx.state().value<std::uint64_t, std::uint64_t>("sum"); }
  void process(std::span<const Rec> in, gyre::Output<Rec>&) override {
    for (const Rec& r : in) (*sums)[r.key] += r.value;
  }
  void on_end(gyre::Output<Rec>&) override { *keys += sums->size(); }
};

void BM_KeyedOperator_Gyre(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  std::atomic<std::uint64_t> keys{0};
  timed(state, "e_keyed_operator/gyre/p" + std::to_string(p), kReduceRecords, p, [&] {
    keys = 0;
    gyre::Environment env(config(p));
    env.from_collection(reduce_input())
        .key_by([](const Rec& r) { return r.key; })
        .process("sum per key", SumPerKey(&keys))
        .for_each([](const Rec&) {});
    env.run();
  });
  if (keys != kReduceKeys) fail(state, "e_keyed_operator/gyre/p" + std::to_string(p), "wrong number of keys");
}

// ---- (f) timers: 1M event-time timers registered (one per key), then all fired ----

void BM_Timers(benchmark::State& state) {
  constexpr std::uint64_t kTimers = 1'000'000;
  std::uint64_t fired = 0;
  timed(state, "f_timers/gyre/p1", kTimers, 1, [&] {
    gyre::TimerService<std::uint64_t> t("timers");
    for (std::uint64_t k = 0; k < kTimers; ++k)
      t.register_event_time(k, static_cast<gyre::Timestamp>(gyre::mix64(k) % kTimers));
    fired = 0;
    gyre::Timestamp last = gyre::kMinTimestamp;
    bool ordered = true;
    t.advance_watermark(gyre::kMaxTimestamp, [&](std::uint64_t, gyre::Timestamp ts) {
      ordered = ordered && ts >= last;
      last = ts;
      ++fired;
    });
    if (!ordered) fired = 0;
  });
  if (fired != kTimers) fail(state, "f_timers/gyre/p1", "timers lost or out of order");
}

BENCHMARK(BM_ValueState_Direct)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KeyedOperator_Gyre)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Timers)->UseManualTime()->Unit(benchmark::kMillisecond);

void summary() {
  std::printf("\nSummary (best of the iterations; M records/s/core; ratio = gyre / hand-written)\n");
  std::printf("%-20s %12s %12s %12s %10s %10s\n", "workload", "hand", "gyre p=1", "gyre p=2",
              "ratio p=1", "ratio p=2");
  for (const char* w : {"a_map_filter", "a'_map_filter_fnptr", "b_key_reduce", "c_join"}) {
    auto get = [&](const std::string& k) {
      auto it = best().find(std::string(w) + "/" + k);
      return it == best().end() ? 0.0 : it->second;
    };
    // (a') is compared with (a)'s hand-written loop.
    const double hand = std::string(w) == "a'_map_filter_fnptr" ? best()["a_map_filter/hand"] : get("hand");
    const double p1 = get("gyre/p1");
    const double p2 = get("gyre/p2");
    if (hand < 0 || p1 < 0 || p2 < 0) {
      std::printf("%-20s a result was wrong: no figures\n", w);
      continue;
    }
    std::printf("%-20s %12.1f %12.1f %12.1f %10.2f %10.2f\n", w, hand / 1e6, p1 / 1e6, p2 / 1e6,
                hand > 0 ? p1 / hand : 0.0, hand > 0 ? p2 / hand : 0.0);
  }
  std::printf("\n(d) watermark cost (M records/s/core; ratio = with a watermark every 1,000 records / none)\n");
  std::printf("%-24s %10s %10s %10s %10s %10s %10s\n", "pipeline", "none p=1", "wm p=1", "none p=2", "wm p=2",
              "ratio p=1", "ratio p=2");
  for (const char* w : {"d_watermarks", "d_watermarks_rebalance"}) {
    auto get = [&](const std::string& k) {
      auto it = best().find(std::string(w) + "/" + k);
      return it == best().end() ? 0.0 : it->second;
    };
    const double n1 = get("none/p1"), w1 = get("every1000/p1"), n2 = get("none/p2"), w2 = get("every1000/p2");
    if (n1 < 0 || w1 < 0 || n2 < 0 || w2 < 0) {
      std::printf("%-24s a result was wrong: no figures\n", w);
      continue;
    }
    std::printf("%-24s %10.1f %10.1f %10.1f %10.1f %10.2f %10.2f\n", w, n1 / 1e6, w1 / 1e6, n2 / 1e6, w2 / 1e6,
                n1 > 0 ? w1 / n1 : 0.0, n2 > 0 ? w2 / n2 : 0.0);
  }
  const double hand_b = best()["b_key_reduce/hand"];
  auto fig = [](const std::string& k) {
    auto it = best().find(k);
    return it == best().end() ? 0.0 : it->second;
  };
  std::printf("\n(e) keyed value state, 1M keys (M records/s/core; ratio = / (b)'s hand-written hash map %.1f)\n",
              hand_b / 1e6);
  for (const char* k : {"e_value_state/gyre/p1", "e_keyed_operator/gyre/p1", "e_keyed_operator/gyre/p2"}) {
    const double v = fig(k);
    if (v < 0) std::printf("%-28s a result was wrong: no figure\n", k);
    else std::printf("%-28s %10.1f %10.2f\n", k, v / 1e6, hand_b > 0 ? v / hand_b : 0.0);
  }
  const double t = fig("f_timers/gyre/p1");
  if (t < 0) std::printf("\n(f) timers: a result was wrong: no figure\n");
  else std::printf("\n(f) timers: %.2f M timers/s registered and fired (1M timers)\n", t / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* b = std::getenv("GYRE_BATCH_BYTES")) g_batch_bytes = std::strtoul(b, nullptr, 10);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  summary();
  return 0;
}
