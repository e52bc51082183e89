// The vertex-centric vocabulary with programs other than the bundled ones: hop distances (delta,
// min combiner), in-degree and neighbour sums (bulk, sum combiner, a global sum), against serial
// references; identical results at 1, 2, 3 and 4 partitions; and the exact sum's conversion.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <random>
#include <vector>

#include "gyre/algorithms/vertex_program.h"
#include "../support/dense_ids.h"

namespace {

using gyre::graph::MemoryEdge;
using gyre::graph::StepInfo;
using gyre::graph::VertexInfo;

constexpr std::uint32_t kFar = std::numeric_limits<std::uint32_t>::max();

// Hops from vertex `source`: unreachable vertices stay at kFar.
struct Hops {
  using Value = std::uint32_t;
  using Message = std::uint32_t;
  std::uint64_t source;
  std::uint32_t init(const VertexInfo& v) const { return v.id == source ? 0 : kFar; }
  std::uint32_t message(const std::uint32_t& d, const VertexInfo&) const { return d == kFar ? kFar : d + 1; }
  std::uint32_t identity() const { return kFar; }
  void combine(std::uint32_t& a, const std::uint32_t& m) const { a = std::min(a, m); }
  bool apply(std::uint32_t& d, const std::uint32_t& m, const VertexInfo&, const StepInfo&) const {
    if (m >= d) return false;
    d = m;
    return true;
  }
};

// The superstep in which the source's label first reached a vertex: its hop distance, if
// StepInfo::superstep counts from 1 as the loop's metrics do.
struct ReachedAt {
  using Value = std::uint32_t;
  using Message = std::uint32_t;  // 1: "reached"
  std::uint64_t source;
  std::uint32_t init(const VertexInfo& v) const { return v.id == source ? 0 : kFar; }
  std::uint32_t message(const std::uint32_t& at, const VertexInfo&) const { return at == kFar ? 0 : 1; }
  std::uint32_t identity() const { return 0; }
  void combine(std::uint32_t& a, const std::uint32_t& m) const { a = std::max(a, m); }
  bool apply(std::uint32_t& at, const std::uint32_t& m, const VertexInfo&, const StepInfo& s) const {
    if (m == 0 || at != kFar) return false;
    at = static_cast<std::uint32_t>(s.superstep);
    return true;
  }
};

// Each superstep: value = sum of the in-neighbours' ids + the total of all values before, / 1000
// (a sum combiner and a global, exactly summed).
struct NeighbourSum {
  using Value = double;
  using Message = double;
  double init(const VertexInfo& v) const { return static_cast<double>(v.id % 7); }
  double message(const double& x, const VertexInfo&) const { return x * 0.5; }
  double identity() const { return 0; }
  void combine(double& a, const double& m) const { a += m; }
  double global(const double& x, const VertexInfo&) const { return x; }
  bool apply(double& x, const double& sum, const VertexInfo&, const StepInfo& s) const {
    const double next = sum + s.global / 1000.0;
    const bool changed = next != x;
    x = next;
    return changed;
  }
};

std::shared_ptr<std::vector<MemoryEdge>> random_graph(std::uint64_t seed, int n, int m) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = rng() >> 8;
  auto edges = std::make_shared<std::vector<MemoryEdge>>();
  for (int i = 0; i < m; ++i)
    edges->push_back({ids[rng() % static_cast<std::size_t>(n)], ids[rng() % static_cast<std::size_t>(n / 2)]});
  return edges;
}

gyre::JobConfig config(int p) {
  gyre::JobConfig c;
  c.slots = 2;
  c.parallelism = p;
  return c;
}

TEST(VertexPrograms, DeltaHopsMatchBreadthFirstSearch) {
  const auto edges = random_graph(3, 2000, 3000);
  // Serial BFS over the undirected graph.
  const testenv::DenseIds idx(*edges);
  const auto& vs = idx.ids;
  std::vector<std::vector<std::size_t>> adj(vs.size());
  for (const auto& e : *edges) {
    adj[idx(e.src)].push_back(idx(e.dst));
    adj[idx(e.dst)].push_back(idx(e.src));
  }
  const std::uint64_t source = (*edges)[0].src;
  std::vector<std::uint32_t> want(vs.size(), kFar);
  std::deque<std::size_t> q{idx(source)};
  want[idx(source)] = 0;
  while (!q.empty()) {
    const std::size_t v = q.front();
    q.pop_front();
    for (const std::size_t u : adj[v])
      if (want[u] == kFar) {
        want[u] = want[v] + 1;
        q.push_back(u);
      }
  }
  const std::uint32_t deepest = *std::max_element(want.begin(), want.end(), [](auto a, auto b) {
    return (a == kFar ? 0 : a) < (b == kFar ? 0 : b);
  });
  ASSERT_GE(deepest, 3u);  // a graph with some depth

  for (int p : {1, 2, 3, 4}) {
    auto g = gyre::graph::load_edges(edges, false, config(p), gyre::Cluster::local());
    gyre::graph::VertexOptions opts;
    opts.name = "hops";
    opts.max_supersteps = 1000;
    gyre::JobResult m;
    const auto got = gyre::graph::run_delta(*g, Hops{source}, opts, config(p), gyre::Cluster::local(), &m);
    ASSERT_EQ(got.size(), vs.size());
    for (std::size_t i = 0; i < vs.size(); ++i) {
      ASSERT_EQ(got[i].first, vs[i]);
      ASSERT_EQ(got[i].second, want[i]) << "vertex " << vs[i] << " at parallelism " << p;
    }
    // One superstep per BFS level that changed something, then one that changed nothing.
    EXPECT_EQ(m.loops.at(0).ended_by, gyre::graph::kEndedNoActiveVertices);
    EXPECT_EQ(m.loops.at(0).supersteps, static_cast<int>(deepest) + 1) << "parallelism " << p;
    // Superstep s changed the vertices s hops away; its workset is their messages, one per
    // neighbour (combined per destination vertex, here in one partition).
    const auto& steps = m.loops.at(0).steps;
    for (std::size_t s = 0; s < steps.size(); ++s) {
      const auto level = static_cast<std::uint32_t>(s + 1);
      std::vector<char> reached(vs.size(), 0);
      std::uint64_t active = 0, messages = 0;
      for (std::size_t v = 0; v < vs.size(); ++v) {
        if (want[v] != level) continue;
        ++active;
        for (const std::size_t u : adj[v])
          if (!reached[u]) reached[u] = 1, ++messages;
      }
      ASSERT_EQ(steps[s].aggregators.at(0).first, "active vertices");
      EXPECT_EQ(steps[s].aggregators.at(0).second, static_cast<double>(active)) << "superstep " << s + 1;
      if (p == 1) {
        EXPECT_EQ(steps[s].size, messages) << "superstep " << s + 1;
      }
      EXPECT_GE(steps[s].exchange_bytes, messages * sizeof(std::uint32_t)) << "superstep " << s + 1;
    }
    const auto reached = gyre::graph::run_delta(*g, ReachedAt{source}, opts, config(p), gyre::Cluster::local());
    for (std::size_t i = 0; i < vs.size(); ++i) ASSERT_EQ(reached[i].second, want[i]) << "vertex " << vs[i];
  }
}

TEST(VertexPrograms, BulkSumsMatchSerialAndDoNotDependOnPartitions) {
  const auto edges = random_graph(5, 1500, 6000);
  const testenv::DenseIds idx(*edges);
  const auto& vs = idx.ids;
  std::vector<double> x(vs.size());
  for (std::size_t i = 0; i < vs.size(); ++i) x[i] = static_cast<double>(vs[i] % 7);
  // The graph is simple: a repeated edge counts once.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> simple;
  for (const auto& e : *edges) simple.emplace_back(e.src, e.dst);
  std::sort(simple.begin(), simple.end());
  simple.erase(std::unique(simple.begin(), simple.end()), simple.end());
  for (int step = 0; step < 4; ++step) {
    double total = 0;
    for (double v : x) total += v;
    std::vector<double> next(vs.size(), 0.0);
    for (const auto& [src, dst] : simple) next[idx(dst)] += x[idx(src)] * 0.5;
    for (double& v : next) v += total / 1000.0;
    x = next;
  }
  gyre::graph::VertexValues<double> first;
  for (int p : {1, 2, 3, 4}) {
    auto g = gyre::graph::load_edges(edges, true, config(p), gyre::Cluster::local());
    gyre::graph::VertexOptions opts;
    opts.name = "sums";
    opts.max_supersteps = 4;
    gyre::JobResult m;
    const auto got = gyre::graph::run_bulk(*g, NeighbourSum{}, opts, config(p), gyre::Cluster::local(), &m);
    ASSERT_EQ(got.size(), vs.size());
    // Metrics count vertices, not the blocks that carry them: every superstep every vertex's
    // message goes to every partition, and the partial solution holds every vertex.
    const auto n = static_cast<std::uint64_t>(vs.size());
    const auto& steps = m.loops.at(0).steps;
    ASSERT_EQ(steps.size(), 4U);
    for (const auto& st : steps) {
      EXPECT_EQ(st.size, n) << "parallelism " << p;
      EXPECT_GE(st.exchange_bytes, static_cast<std::uint64_t>(p) * n * sizeof(double)) << "parallelism " << p;
    }
    bool found = false;
    for (const auto& op : m.operators)
      if (op.name == "sums: gather over in-edges, apply") {
        found = true;
        EXPECT_EQ(op.records_out, 4 * n) << "parallelism " << p;
        EXPECT_EQ(op.records_in, 4 * (static_cast<std::uint64_t>(p) + 1) * n) << "parallelism " << p;
      }
    EXPECT_TRUE(found);
    for (std::size_t i = 0; i < vs.size(); ++i) ASSERT_NEAR(got[i].second, x[i], 1e-9 * std::abs(x[i]) + 1e-12);
    if (first.empty()) first = got;
    else EXPECT_EQ(got, first) << "parallelism " << p;  // the same bits
  }
}

TEST(ExactSum, ConversionIsTheTruncatedFixedPointValue) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> exponent(-90, 46);
  for (int i = 0; i < 100000; ++i) {
    const double v = std::ldexp(1.0 + static_cast<double>(rng() % 1000000) / 1e6, static_cast<int>(exponent(rng))) *
                     ((rng() & 1) != 0 ? -1 : 1);
    const auto want = static_cast<gyre::graph::ExactSum::Fixed>(v * 1208925819614629174706176.0);  // v * 2^80
    ASSERT_TRUE(gyre::graph::ExactSum::fixed(v) == want) << v;
  }
  EXPECT_TRUE(gyre::graph::ExactSum::fixed(std::numeric_limits<double>::denorm_min()) == 0);
  EXPECT_THROW(gyre::graph::ExactSum::fixed(std::ldexp(1.0, 48)), gyre::Error);
  EXPECT_THROW(gyre::graph::ExactSum::fixed(std::numeric_limits<double>::infinity()), gyre::Error);
  // Sums do not depend on the order of the additions.
  std::vector<double> xs;
  for (int i = 0; i < 1000; ++i) xs.push_back(std::ldexp(static_cast<double>(rng() % 1000), -static_cast<int>(rng() % 60)));
  gyre::graph::ExactSum a, b;
  for (double v : xs) a.add(v);
  std::shuffle(xs.begin(), xs.end(), rng);
  for (double v : xs) b.add(v);
  EXPECT_EQ(a.value(), b.value());
}

}  // namespace
