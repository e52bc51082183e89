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

}  // namespace

INSTANTIATE_TEST_SUITE_P(Parallelism, WindowTest, ::testing::Values(1, 2, 4));
