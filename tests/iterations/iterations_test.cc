// The three loop kinds on randomised input against serial references, at parallelism 1, 2 and 4
// (and, run with --mpi, at 1, 2 and 4 ranks).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gyre/iterations.h"
#include "../support/test_env.h"

namespace {

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class IterationTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::Environment env() {
    gyre::JobConfig c;
    c.parallelism = GetParam();
    c.slots = 2;
    return testenv::make_env(c);
  }
};

// ---------------------------------------------------------------- bulk

struct Xi {
  std::uint64_t id;
  double x;
  double c;
  double delta;  // |x - previous x|
  bool operator<(const Xi& o) const { return id < o.id; }
};

std::vector<Xi> random_xi(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-10, 10);
  std::vector<Xi> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = {i, u(rng), u(rng), 1e9};
  return v;
}

// x -> x/2 + c: a contraction with fixed point 2c.
Xi contract(const Xi& r) {
  const double nx = 0.5 * r.x + r.c;
  return {r.id, nx, r.c, std::abs(nx - r.x)};
}

// The serial loop: at most `max` steps, stop when every delta <= eps. Returns supersteps run.
int serial_contraction(std::vector<Xi>& v, int max, double eps) {
  for (int s = 1; s <= max; ++s) {
    bool moving = false;
    for (auto& r : v) {
      r = contract(r);
      moving = moving || r.delta > eps;
    }
    if (!moving) return s;
  }
  return max;
}

void expect_same(const std::vector<Xi>& got, const std::vector<Xi>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id);
    EXPECT_EQ(got[i].x, want[i].x) << "record " << want[i].id;  // per-record math: bit-identical
  }
}

TEST_P(IterationTest, BulkFixedPointWithTerminationCriterion) {
  const auto in = random_xi(500, 11);
  auto e = env();
  const double eps = 1e-9;
  auto result = gyre::iterate(e.from_collection(in), 200, [eps](gyre::Stream<Xi> x, gyre::LoopContext& loop) {
    auto next = x.map(contract);
    loop.terminate_when_empty(next.filter([eps](const Xi& r) { return r.delta > eps; }));
    return next;
  }, "contraction");
  auto out = result.collect();
  const auto r = e.run();

  auto want = in;
  const int steps = serial_contraction(want, 200, eps);
  expect_same(sorted(testenv::values(out)), want);
  ASSERT_EQ(r.loops.size(), 1u);
  EXPECT_EQ(r.loops[0].supersteps, steps);
  EXPECT_EQ(r.loops[0].ended_by, gyre::kEndedCriterion);
  EXPECT_GT(steps, 20);
  ASSERT_EQ(r.loops[0].steps.size(), static_cast<std::size_t>(steps));
  for (const auto& st : r.loops[0].steps) EXPECT_EQ(st.size, in.size());
  const std::string json = r.to_json();
  EXPECT_NE(json.find("\"kind\": \"bulk\", \"supersteps\": " + std::to_string(steps) + ", \"ended_by\": \"" + gyre::kEndedCriterion + "\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("{\"superstep\": " + std::to_string(steps) + ", \"seconds\": "), std::string::npos);
}

TEST_P(IterationTest, BulkStopsAtMaxSupersteps) {
  const auto in = random_xi(300, 12);
  auto e = env();
  auto out = gyre::iterate(e.from_collection(in), 7, [](gyre::Stream<Xi> x) { return x.map(contract); }).collect();
  const auto r = e.run();
  auto want = in;
  serial_contraction(want, 7, -1.0);
  expect_same(sorted(testenv::values(out)), want);
  EXPECT_EQ(r.loops.at(0).supersteps, 7);
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedMaxSupersteps);
}

TEST_P(IterationTest, BulkEmptyInputRunsNoSuperstep) {
  auto e = env();
  auto out = gyre::iterate(e.from_collection(std::vector<Xi>{}), 7, [](gyre::Stream<Xi> x) { return x.map(contract); })
                 .collect();
  const auto r = e.run();
  EXPECT_TRUE(testenv::values(out).empty());
  EXPECT_EQ(r.loops.at(0).supersteps, 0);
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedEmptyBulk);
}

struct Iv {
  std::uint64_t id;
  double v;  // integer-valued, so sums are exact in any order
  bool operator<(const Iv& o) const { return id < o.id; }
  bool operator==(const Iv&) const = default;
};

// Aggregators are global per superstep and readable in the next one; convergence on them.
TEST_P(IterationTest, BulkAggregatorsAndConvergence) {
  std::mt19937_64 rng(13);
  std::vector<Iv> in(400);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = {i, static_cast<double>(rng() % 100000)};
  auto step = [](const Iv& r, double prev_sum) {
    return Iv{r.id, std::floor(r.v / 2) + static_cast<double>(static_cast<long long>(prev_sum) % 7)};
  };

  auto e = env();
  std::vector<gyre::Aggregator> aggs;
  std::vector<gyre::SuperstepMetrics> seen;  // the metrics sink (rank 0)
  gyre::IterationOptions opts("aggregators");
  opts.on_superstep = [&seen](const gyre::SuperstepMetrics& m) { seen.push_back(m); };
  auto out = gyre::iterate(e.from_collection(in), 100, [&](gyre::Stream<Iv> x, gyre::LoopContext& loop) {
    auto sum_prev = std::make_shared<std::optional<gyre::Aggregator>>();
    auto next = x.map([step, sum_prev](const Iv& r) { return step(r, (*sum_prev)->value()); });
    auto values = next.map([](const Iv& r) { return r.v; });
    *sum_prev = loop.sum("sum", values);
    aggs.push_back(**sum_prev);
    aggs.push_back(loop.min("min", values));
    aggs.push_back(loop.max("max", values));
    auto max = aggs.back();
    loop.converge_when([max] { return max.value() <= 12; });
    return next;
  }, opts).collect();
  const auto r = e.run();

  // Serial reference.
  std::vector<Iv> want = in;
  std::vector<std::array<double, 3>> ref;
  double prev = 0;
  for (int s = 1; s <= 100; ++s) {
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (auto& x : want) {
      x = step(x, prev);
      sum += x.v;
      mn = std::min(mn, x.v);
      mx = std::max(mx, x.v);
    }
    ref.push_back({sum, mn, mx});
    prev = sum;
    if (mx <= 12) break;
  }
  EXPECT_EQ(sorted(testenv::values(out)), want);
  const auto& loop = r.loops.at(0);
  EXPECT_EQ(loop.ended_by, gyre::kEndedConverged);
  ASSERT_EQ(loop.steps.size(), ref.size());
  for (std::size_t s = 0; s < ref.size(); ++s) {
    ASSERT_EQ(loop.steps[s].aggregators.size(), 3u);
    EXPECT_EQ(loop.steps[s].aggregators[0].second, ref[s][0]) << "superstep " << s + 1;
    EXPECT_EQ(loop.steps[s].aggregators[1].second, ref[s][1]);
    EXPECT_EQ(loop.steps[s].aggregators[2].second, ref[s][2]);
  }
  EXPECT_EQ(aggs[0].value(), ref.back()[0]);  // after the job: the last superstep's value
  if (testenv::rank() == 0) {
    ASSERT_EQ(seen.size(), ref.size());
    for (std::size_t s = 0; s < seen.size(); ++s) {
      EXPECT_EQ(seen[s].superstep, static_cast<int>(s) + 1);
      EXPECT_EQ(seen[s].size, in.size());
      EXPECT_EQ(seen[s].aggregators.at(0).second, ref[s][0]);
    }
  } else {
    EXPECT_TRUE(seen.empty());
  }
}

// k-means: the points are a loop-invariant input (partitioned once, kept in the join); the
// centroids are broadcast every superstep.
struct Pt {
  std::uint64_t id;
  double x, y;
};
struct Centroid {
  std::uint64_t id;
  double x, y;
  bool operator<(const Centroid& o) const { return id < o.id; }
};
struct Assign {
  std::uint64_t point, centroid;
  double d2, x, y;
};
struct Sum {
  std::uint64_t centroid;
  double x, y, n;
};

std::pair<std::uint64_t, double> nearest(double x, double y, const std::vector<Centroid>& cs) {
  std::uint64_t best = 0;
  double bd = INFINITY;
  for (const auto& c : cs) {
    const double d = (x - c.x) * (x - c.x) + (y - c.y) * (y - c.y);
    if (d < bd || (d == bd && c.id < best)) {
      bd = d;
      best = c.id;
    }
  }
  return {best, bd};
}

// The aggregator limit has one statement (kMaxAggregators): that many run and agree with a
// serial sum at every rank count; one more is refused when the plan is built, naming the limit.
TEST_P(IterationTest, AggregatorLimitIsOneNumber) {
  std::vector<double> in;
  for (int i = 0; i < 40; ++i) in.push_back(i);
  auto e = env();
  std::vector<gyre::Aggregator> aggs;
  auto out = gyre::iterate(e.from_collection(in), 2, [&](gyre::Stream<double> x, gyre::LoopContext& loop) {
    auto next = x.map([](double v) { return v + 1; });
    for (std::size_t a = 0; a < gyre::detail::kMaxAggregators; ++a)
      aggs.push_back(loop.sum("a" + std::to_string(a), next.map([a](double v) { return v * static_cast<double>(a); })));
    return next;
  }).collect();
  e.run();
  double want = 0;
  for (double v : in) want += v + 2;  // the second superstep's values
  ASSERT_EQ(aggs.size(), gyre::detail::kMaxAggregators);
  EXPECT_EQ(aggs[0].value(), 0.0);
  EXPECT_EQ(aggs.back().value(), want * static_cast<double>(gyre::detail::kMaxAggregators - 1));
  EXPECT_EQ(testenv::values(out).size(), in.size());

  auto e2 = env();
  try {
    gyre::iterate(e2.from_collection(in), 2, [&](gyre::Stream<double> x, gyre::LoopContext& loop) {
      for (std::size_t a = 0; a <= gyre::detail::kMaxAggregators; ++a) loop.sum("a" + std::to_string(a), x);
      return x;
    });
    FAIL() << "an iteration with kMaxAggregators + 1 aggregators was accepted";
  } catch (const gyre::PlanError& err) {
    EXPECT_NE(std::string(err.what()).find("at most " + std::to_string(gyre::detail::kMaxAggregators) + ")"),
              std::string::npos)
        << err.what();
  }
}

TEST_P(IterationTest, BulkKMeansMatchesSerial) {
  std::mt19937_64 rng(14);
  std::normal_distribution<double> noise(0, 1.5);
  const double cx[] = {0, 10, 5}, cy[] = {0, 0, 9};
  std::vector<Pt> pts(900);
  for (std::size_t i = 0; i < pts.size(); ++i) pts[i] = {i, cx[i % 3] + noise(rng), cy[i % 3] + noise(rng)};
  std::vector<Centroid> init = {{0, pts[0].x, pts[0].y}, {1, pts[1].x, pts[1].y}, {2, pts[3].x, pts[3].y}};

  auto e = env();
  auto points = e.from_collection(pts);
  auto out = gyre::iterate(e.from_collection(init), 30, [&](gyre::Stream<Centroid> cs, gyre::LoopContext& loop) {
    auto cand = points.join(cs.broadcast(), [](const Pt&) { return 0; }, [](const Centroid&) { return 0; },
                            [](const Pt& p, const Centroid& c) {
                              const double d = (p.x - c.x) * (p.x - c.x) + (p.y - c.y) * (p.y - c.y);
                              return Assign{p.id, c.id, d, p.x, p.y};
                            });
    auto best = cand.key_by([](const Assign& a) { return a.point; }).reduce([](const Assign& a, const Assign& b) {
      return (a.d2 < b.d2 || (a.d2 == b.d2 && a.centroid < b.centroid)) ? a : b;
    });
    auto sums = best.map([](const Assign& a) { return Sum{a.centroid, a.x, a.y, 1}; })
                    .key_by([](const Sum& s) { return s.centroid; })
                    .reduce([](const Sum& a, const Sum& b) { return Sum{a.centroid, a.x + b.x, a.y + b.y, a.n + b.n}; });
    auto next = sums.map([](const Sum& s) { return Centroid{s.centroid, s.x / s.n, s.y / s.n}; });
    // Converged when no point changed its centroid: the number of points whose nearest centroid
    // is not the one they had... here: when the sum of centroid moves is ~0, via the distances.
    auto sse = loop.sum("sse", best.map([](const Assign& a) { return a.d2; }));
    auto prev = std::make_shared<double>(-1);
    loop.converge_when([sse, prev] {
      const bool done = std::abs(sse.value() - *prev) <= 1e-9 * sse.value();
      *prev = sse.value();
      return done;
    });
    return next;
  }).collect();
  const auto r = e.run();

  std::vector<Centroid> cs = init;
  double prev = -1;
  int steps = 0;
  for (int s = 1; s <= 30; ++s) {
    std::map<std::uint64_t, Sum> acc;
    double sse = 0;
    for (const auto& p : pts) {
      const auto [c, d] = nearest(p.x, p.y, cs);
      auto& a = acc.try_emplace(c, Sum{c, 0, 0, 0}).first->second;
      a.x += p.x;
      a.y += p.y;
      a.n += 1;
      sse += d;
    }
    cs.clear();
    for (const auto& [c, a] : acc) cs.push_back({c, a.x / a.n, a.y / a.n});
    steps = s;
    const bool done = std::abs(sse - prev) <= 1e-9 * sse;
    prev = sse;
    if (done) break;
  }
  const auto got = sorted(testenv::values(out));
  ASSERT_EQ(got.size(), cs.size());
  for (std::size_t i = 0; i < cs.size(); ++i) {
    EXPECT_EQ(got[i].id, cs[i].id);
    EXPECT_NEAR(got[i].x, cs[i].x, 1e-9);
    EXPECT_NEAR(got[i].y, cs[i].y, 1e-9);
  }
  EXPECT_EQ(r.loops.at(0).supersteps, steps);
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedConverged);
}

// Loop-invariant input: shuffled and indexed once; later supersteps exchange only loop data.
struct Kv {
  std::uint64_t k;
  std::uint64_t v;
  bool operator<(const Kv& o) const { return k != o.k ? k < o.k : v < o.v; }
  bool operator==(const Kv&) const = default;
};

TEST_P(IterationTest, LoopInvariantInputIsExchangedOnce) {
  const std::size_t big = 40000, small = 100;
  auto e = env();
  auto table = e.generate(big, [](std::uint64_t i) { return Kv{i, i}; }).name("table");
  std::vector<Kv> init;
  for (std::uint64_t k = 0; k < small; ++k) init.push_back({k, 0});
  auto out = gyre::iterate(e.from_collection(init), 6, [&](gyre::Stream<Kv> x) {
    return x.join(table, [](const Kv& a) { return a.k; }, [](const Kv& b) { return b.k; },
                  [](const Kv& a, const Kv& b) { return Kv{a.k, a.v + b.v}; })
        .name("join");
  }).collect();
  const auto r = e.run();

  std::vector<Kv> want = init;
  for (auto& w : want) w.v = 6 * w.k;
  EXPECT_EQ(sorted(testenv::values(out)), want);
  // The table was read once: the join saw its records once plus the partial solution 6 times.
  for (const auto& op : r.operators) {
    if (op.name == "join") {
      EXPECT_EQ(op.records_in, big + 6 * small);
    }
  }
  // After the first superstep (which may carry the table's one shuffle), a superstep exchanges
  // the partial solution twice (into the join, back to the head) and nothing else.
  const auto& steps = r.loops.at(0).steps;
  ASSERT_EQ(steps.size(), 6u);
  const std::uint64_t per_step = 2 * small * sizeof(Kv);
  EXPECT_GE(steps[0].exchange_bytes, per_step);
  for (std::size_t s = 1; s < steps.size(); ++s) EXPECT_EQ(steps[s].exchange_bytes, per_step) << "superstep " << s + 1;
}

// Per superstep: the bytes of the records sent over exchanges, and the bytes that crossed ranks,
// which a serial replay of the hash placement bounds from below.
TEST_P(IterationTest, SuperstepBytesCountExchangesAndWhatCrossedRanks) {
  const std::uint64_t n = 2000;
  const int steps = 4;
  auto next_key = [n](std::uint64_t k) { return (k * 7 + 3) % n; };
  auto e = env();
  std::vector<Kv> init;
  for (std::uint64_t k = 0; k < n; ++k) init.push_back({k, k});
  auto out = gyre::iterate(e.from_collection(init), steps, [&](gyre::Stream<Kv> x) {
    return x.map([next_key](const Kv& r) { return Kv{next_key(r.k), r.v}; })
        .key_by([](const Kv& r) { return r.k; })
        .partition();
  }).collect();
  const auto r = e.run();
  ASSERT_EQ(testenv::values(out).size(), n);
  const auto& st = r.loops.at(0).steps;
  ASSERT_EQ(st.size(), static_cast<std::size_t>(steps));
  const auto parts = static_cast<std::size_t>(GetParam());
  const int ranks = r.ranks;
  auto rank_of = [&](std::uint64_t key) {
    return static_cast<int>(gyre::hash_partition(gyre::hash_key(key), parts) % static_cast<std::size_t>(ranks));
  };
  for (std::size_t s = 1; s < st.size(); ++s) {
    // Into the shuffle and back to the head (the feedback edge): every record twice.
    EXPECT_EQ(st[s].exchange_bytes, 2 * n * sizeof(Kv)) << "superstep " << s + 1;
    // Superstep s + 1 moves the record that superstep s put in key k's partition to next_key(k)'s.
    std::uint64_t crossing = 0;
    for (std::uint64_t k0 = 0; k0 < n; ++k0) {
      std::uint64_t k = k0;
      for (std::size_t i = 0; i < s; ++i) k = next_key(k);
      if (rank_of(k) != rank_of(next_key(k))) ++crossing;
    }
    if (ranks == 1) {
      EXPECT_EQ(st[s].wire_bytes, 0U);
    } else {
      EXPECT_GE(st[s].wire_bytes, crossing * sizeof(Kv)) << "superstep " << s + 1 << " at " << ranks << " ranks";
    }
    EXPECT_EQ(st[s].size, n);
  }
}

// ---------------------------------------------------------------- delta

struct Edge {
  std::uint64_t src, dst;
};
struct Label {
  std::uint64_t v, label;
  bool operator<(const Label& o) const { return v < o.v; }
  bool operator==(const Label&) const = default;
};

struct Graph {
  std::uint64_t n;
  std::vector<Edge> edges;  // both directions
};

Graph random_graph(std::uint64_t n, std::uint64_t m, unsigned seed) {
  std::mt19937_64 rng(seed);
  Graph g{n, {}};
  for (std::uint64_t i = 0; i < m; ++i) {
    const std::uint64_t a = rng() % n, b = rng() % n;
    g.edges.push_back({a, b});
    g.edges.push_back({b, a});
  }
  // A long path, so that the loop needs many supersteps.
  for (std::uint64_t i = 0; i + 1 < 40 && i + 1 < n; ++i) {
    g.edges.push_back({n - 1 - i, n - 2 - i});
    g.edges.push_back({n - 2 - i, n - 1 - i});
  }
  return g;
}

// Synchronous min-label propagation, as the delta iteration runs it. Returns labels and the
// workset size after each superstep.
std::vector<Label> serial_cc(const Graph& g, int max, std::vector<std::uint64_t>* sizes) {
  std::vector<std::uint64_t> label(g.n);
  std::iota(label.begin(), label.end(), 0);
  std::vector<std::vector<std::uint64_t>> adj(g.n);
  for (const auto& e : g.edges) adj[e.src].push_back(e.dst);
  std::set<std::uint64_t> changed;
  for (std::uint64_t v = 0; v < g.n; ++v) changed.insert(v);
  for (int s = 1; s <= max && !changed.empty(); ++s) {
    std::map<std::uint64_t, std::uint64_t> cand;
    for (auto v : changed)
      for (auto u : adj[v]) {
        auto it = cand.find(u);
        if (it == cand.end() || label[v] < it->second) cand[u] = label[v];
      }
    std::set<std::uint64_t> next;
    for (auto [u, l] : cand)
      if (l < label[u]) next.insert(u);
    for (auto u : next) label[u] = cand[u];
    changed = next;
    if (sizes) sizes->push_back(changed.size());
  }
  std::vector<Label> out;
  for (std::uint64_t v = 0; v < g.n; ++v) out.push_back({v, label[v]});
  return out;
}

// Every vertex labelled with its own id.
std::vector<Label> own_labels(const Graph& g) {
  std::vector<Label> out;
  for (std::uint64_t v = 0; v < g.n; ++v) out.push_back({v, v});
  return out;
}

template <gyre::SolutionSetIndex kIndex>
gyre::Collected<Label> build_cc(gyre::Environment& e, const Graph& g, std::vector<Label> ws_init, int max) {
  const std::vector<Label> vertices = own_labels(g);
  auto edges = e.from_collection(g.edges);
  auto vkey = [](const Label& l) { return l.v; };
  return gyre::iterate_delta<kIndex>(
             e.from_collection(vertices), e.from_collection(ws_init), vkey, max,
             [&](auto& ss, gyre::Stream<Label> ws, gyre::LoopContext&) {
               auto cand = ws.join(edges, [](const Label& l) { return l.v; }, [](const Edge& x) { return x.src; },
                                   [](const Label& l, const Edge& x) { return Label{x.dst, l.label}; });
               auto delta = ss.template co_group<Label>(
                   cand, vkey,
                   [](const std::uint64_t& v, std::span<const Label> group, const Label* cur, gyre::Emit<Label>& emit) {
                     std::uint64_t best = cur ? cur->label : UINT64_MAX;
                     for (const auto& l : group) best = std::min(best, l.label);
                     if (cur && best < cur->label) emit(Label{v, best});
                   });
               return gyre::DeltaStep<Label, Label>{delta, delta};
             },
             "cc")
      .collect();
}

TEST_P(IterationTest, DeltaConnectedComponentsHashIndex) {
  const Graph g = random_graph(600, 420, 15);
  const std::vector<Label> ws = own_labels(g);
  auto e = env();
  auto out = build_cc<gyre::SolutionSetIndex::kHash>(e, g, ws, 1000);
  const auto r = e.run();
  std::vector<std::uint64_t> sizes;
  EXPECT_EQ(sorted(testenv::values(out)), serial_cc(g, 1000, &sizes));
  const auto& loop = r.loops.at(0);
  EXPECT_EQ(loop.ended_by, gyre::kEndedEmptyDelta);
  EXPECT_EQ(loop.supersteps, static_cast<int>(sizes.size()));
  EXPECT_GT(loop.supersteps, 10);
  // Only changed vertices are worked on: the workset of every superstep is exactly the
  // reference's set of vertices that changed.
  ASSERT_EQ(loop.steps.size(), sizes.size());
  for (std::size_t s = 0; s < sizes.size(); ++s) EXPECT_EQ(loop.steps[s].size, sizes[s]) << "superstep " << s + 1;
}

TEST_P(IterationTest, DeltaConnectedComponentsDenseIndex) {
  const Graph g = random_graph(500, 300, 16);
  const std::vector<Label> ws = own_labels(g);
  auto e = env();
  auto out = build_cc<gyre::SolutionSetIndex::kDense>(e, g, ws, 1000);
  e.run();
  EXPECT_EQ(sorted(testenv::values(out)), serial_cc(g, 1000, nullptr));
}

TEST_P(IterationTest, DeltaStopsAtMaxSupersteps) {
  const Graph g = random_graph(400, 250, 17);
  const std::vector<Label> ws = own_labels(g);
  auto e = env();
  auto out = build_cc<gyre::SolutionSetIndex::kHash>(e, g, ws, 3);
  const auto r = e.run();
  EXPECT_EQ(sorted(testenv::values(out)), serial_cc(g, 3, nullptr));
  EXPECT_EQ(r.loops.at(0).supersteps, 3);
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedMaxSupersteps);
}

TEST_P(IterationTest, DeltaEmptyInitialWorksetReturnsTheSolutionSet) {
  const Graph g = random_graph(200, 100, 18);
  auto e = env();
  auto out = build_cc<gyre::SolutionSetIndex::kHash>(e, g, {}, 100);
  const auto r = e.run();
  EXPECT_EQ(sorted(testenv::values(out)), serial_cc(g, 0, nullptr));
  EXPECT_EQ(r.loops.at(0).supersteps, 0);
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedEmptyDelta);
}

// ---------------------------------------------------------------- streaming

struct Collatz {
  std::uint64_t start, n, steps;
  bool operator<(const Collatz& o) const { return start < o.start; }
  bool operator==(const Collatz&) const = default;
};

Collatz collatz_step(const Collatz& c) {
  return {c.start, c.n % 2 == 0 ? c.n / 2 : 3 * c.n + 1, c.steps + 1};
}

std::vector<Collatz> serial_collatz(std::uint64_t lo, std::uint64_t hi) {
  std::vector<Collatz> out;
  for (std::uint64_t s = lo; s < hi; ++s) {
    Collatz c{s, s, 0};
    do c = collatz_step(c);
    while (c.n != 1);
    out.push_back(c);
  }
  return out;
}

TEST_P(IterationTest, StreamingCollatzEndsByTerminationDetection) {
  auto e = env();
  auto loop = gyre::iterate(e.generate(3000, [](std::uint64_t i) { return Collatz{i + 1, i + 1, 0}; }),
                            "collatz");
  auto next = loop.head().map(collatz_step);
  auto out = next.filter([](const Collatz& c) { return c.n == 1; }).collect();
  loop.close_with(next.filter([](const Collatz& c) { return c.n != 1; }));
  const auto r = e.run();
  EXPECT_EQ(sorted(testenv::values(out)), serial_collatz(1, 3001));
  EXPECT_EQ(r.loops.at(0).ended_by, gyre::kEndedQuiescent);
  EXPECT_EQ(r.loops.at(0).kind, "streaming");
}

// Every record goes round 200 times through tiny batches and channels: the back edge must not
// deadlock under backpressure, and a keyed (streaming) reduce inside the loop keeps state.
TEST_P(IterationTest, StreamingFeedbackUnderBackpressure) {
  gyre::JobConfig c;
  c.parallelism = GetParam();
  c.slots = 2;
  c.batch_bytes = 64;
  c.channel_capacity = 1;
  auto e = testenv::make_env(c);
  constexpr std::uint64_t n = 2000, rounds = 200;
  auto loop = gyre::iterate(e.generate(n, [](std::uint64_t i) { return Kv{i, 0}; }));
  auto next = loop.head().map([](const Kv& r) { return Kv{r.k, r.v + 1}; }).rebalance().map([](const Kv& r) { return r; });
  auto out = next.filter([](const Kv& r) { return r.v == rounds; }).collect();
  loop.close_with(next.filter([](const Kv& r) { return r.v < rounds; }));
  e.run();
  std::vector<Kv> want;
  for (std::uint64_t i = 0; i < n; ++i) want.push_back({i, rounds});
  EXPECT_EQ(sorted(testenv::values(out)), want);
}

TEST_P(IterationTest, StreamingWithUnboundedInputRunsUntilCancelled) {
  gyre::JobConfig c;
  c.parallelism = GetParam();
  c.slots = 2;
  c.buffer_timeout = std::chrono::milliseconds(5);
  auto e = testenv::make_env(c);
  auto src = e.generate_unbounded<Collatz>([](gyre::SourceContext& s) -> std::optional<Collatz> {
    if (s.emitted >= 500) return std::nullopt;  // then idle forever: the input never ends
    const std::uint64_t v = s.emitted * static_cast<std::uint64_t>(s.parallelism) + static_cast<std::uint64_t>(s.partition) + 1;
    return Collatz{v, v, 0};
  });
  auto loop = gyre::iterate(src);
  auto next = loop.head().map(collatz_step);
  auto done = std::make_shared<std::atomic<long>>(0);
  next.filter([](const Collatz& x) { return x.n == 1; }).for_each([done](const Collatz&) { ++*done; });
  loop.close_with(next.filter([](const Collatz& x) { return x.n != 1; }));
  auto job = e.start();
  // Every rank polls the global count in lockstep (sum_ranks is collective), then all cancel.
  for (int i = 0; i < 1000 && testenv::sum_ranks(done->load()) < 500L * GetParam(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(testenv::sum_ranks(done->load()), 500L * GetParam());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (testenv::rank() < GetParam()) {  // a rank without partitions has nothing of its own to run
    EXPECT_FALSE(job.finished()) << "a loop over an unbounded input must not end by itself";
  }
  testenv::barrier();
  job.cancel();
  const auto r = job.wait();
  EXPECT_TRUE(r.cancelled);
}

// ---------------------------------------------------------------- plans

TEST_P(IterationTest, ExplainShowsTheLoop) {
  auto e = env();
  auto table = e.from_collection(std::vector<Kv>{{1, 2}});
  auto out = gyre::iterate(e.from_collection(std::vector<Kv>{{1, 1}}), 3, [&](gyre::Stream<Kv> x) {
    return x.join(table, [](const Kv& a) { return a.k; }, [](const Kv& b) { return b.k; },
                  [](const Kv& a, const Kv& b) { return Kv{a.k, a.v + b.v}; });
  }, "grow");
  out.collect();
  const std::string text = e.explain();
  EXPECT_NE(text.find("== bulk iteration 'grow' =="), std::string::npos) << text;
  EXPECT_NE(text.find("head: [2]"), std::string::npos) << text;
  EXPECT_NE(text.find("-> feedback edge -> head input 1"), std::string::npos) << text;
  EXPECT_NE(text.find("loop-invariant input of [3]"), std::string::npos) << text;
  EXPECT_NE(text.find("(feedback)"), std::string::npos) << text;
  EXPECT_NE(e.explain(gyre::ExplainFormat::kDot).find("style=dashed"), std::string::npos);
}

TEST_P(IterationTest, PlansThatBreakLoopRulesAreRejected) {
  {
    auto e = env();  // a sink inside a bulk body
    auto out = gyre::iterate(e.from_collection(std::vector<Kv>{{1, 1}}), 3, [](gyre::Stream<Kv> x) {
      x.for_each([](const Kv&) {});
      return x.map([](const Kv& a) { return a; });
    });
    out.collect();
    EXPECT_THROW(e.run(), gyre::PlanError);
  }
  {
    auto e = env();  // a union with a stream from outside the loop
    auto other = e.from_collection(std::vector<Kv>{{2, 2}});
    auto out = gyre::iterate(e.from_collection(std::vector<Kv>{{1, 1}}), 3,
                             [&](gyre::Stream<Kv> x) { return x.union_with(other); });
    out.collect();
    try {
      e.run();
      ADD_FAILURE() << "expected a PlanError";
    } catch (const gyre::PlanError& err) {
      EXPECT_NE(std::string(err.what()).find("from outside the loop"), std::string::npos) << err.what();
    }
  }
  {
    auto e = env();  // the solution set joined with a stream from outside the loop
    auto outside = e.from_collection(std::vector<Label>{{1, 1}});
    auto vkey = [](const Label& l) { return l.v; };
    auto out = gyre::iterate_delta(e.from_collection(std::vector<Label>{{1, 1}}), e.from_collection(std::vector<Label>{{1, 1}}),
                                   vkey, 3, [&](auto& ss, gyre::Stream<Label> ws, gyre::LoopContext&) {
                                     auto bad = ss.template join<Label>(outside, vkey,
                                         [](const Label& a, const Label&, gyre::Emit<Label>& emit) { emit(a); });
                                     bad.collect();
                                     return gyre::DeltaStep<Label, Label>{ws, ws};
                                   });
    out.collect();
    try {
      e.run();
      ADD_FAILURE() << "expected a PlanError";
    } catch (const gyre::PlanError& err) {
      EXPECT_NE(std::string(err.what()).find("solution set"), std::string::npos) << err.what();
    }
  }
  {
    auto e = env();  // closing a streaming loop with a stream not computed from its head
    auto loop = gyre::iterate(e.from_collection(std::vector<Kv>{{1, 1}}));
    loop.head().collect();
    loop.close_with(e.from_collection(std::vector<Kv>{{2, 2}}));
    EXPECT_THROW(e.run(), gyre::PlanError);
  }
}

INSTANTIATE_TEST_SUITE_P(Parallelism, IterationTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
