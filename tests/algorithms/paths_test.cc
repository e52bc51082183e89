// BFS and SSSP: every Graphalytics graph in ../shared/datasets/graphalytics with a BFS or SSSP
// reference output (BFS exact, SSSP within 1e-4 relative), at 1, 2 and 4 partitions, alone and
// at 1, 2 and 4 ranks; random graphs (directed and undirected, with unreachable parts) against
// a serial BFS and Dijkstra, the same levels whether BFS pushes, pulls or switches; bad sources.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "gyre/algorithms/paths.h"
#include "gyre/core/error.h"
#include "gyre/io/graph_files.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"

namespace {

const std::string& kDir = testenv::kGraphalyticsDir;

using testenv::graph_config;
gyre::Cluster tp() { return testenv::cluster(); }

using Case = testenv::GraphalyticsCase;
using testenv::graphalytics_cases;

gyre::graph::LoadOptions input(const std::string& path, bool weighted) {
  gyre::graph::LoadOptions in;
  in.path = path;
  in.out_edges = true;
  in.weighted = weighted;
  return in;
}

class Paths : public ::testing::TestWithParam<int> {};

TEST_P(Paths, BfsMatchesGraphalyticsReferences) {
  const auto all = graphalytics_cases("BFS");
  ASSERT_GE(all.size(), 5u) << "reference outputs missing under " << kDir;
  for (const auto& c : all) {
    const auto params = gyre::io::read_graphalytics_parameters(kDir + c.properties);
    ASSERT_TRUE(params.bfs_source_vertex.has_value()) << c.properties;
    auto g = gyre::graph::load(input(kDir + c.properties, false), graph_config(GetParam()), tp());
    for (const auto dir : {gyre::graph::Direction::kAuto, gyre::graph::Direction::kPush, gyre::graph::Direction::kPull}) {
      gyre::graph::PathOptions opts;
      opts.source = *params.bfs_source_vertex;
      opts.direction = dir;
      const auto got = gyre::graph::bfs(*g, opts, graph_config(GetParam()), tp());
      // The reference's 9223372036854775807 read as a double is 2^63.
      testenv::expect_matches_reference(got, c, "BFS (direction " + std::to_string(static_cast<int>(dir)) + ")",
                                        [](std::int64_t v, double w) {
                                          return v == (w >= 9.2e18 ? gyre::graph::kUnreachable
                                                                   : static_cast<std::int64_t>(w));
                                        });
    }
  }
}

TEST_P(Paths, SsspMatchesGraphalyticsReferences) {
  const auto all = graphalytics_cases("SSSP");
  ASSERT_GE(all.size(), 5u) << "reference outputs missing under " << kDir;
  for (const auto& c : all) {
    const auto params = gyre::io::read_graphalytics_parameters(kDir + c.properties);
    ASSERT_TRUE(params.sssp_source_vertex.has_value()) << c.properties;
    auto g = gyre::graph::load(input(kDir + c.properties, true), graph_config(GetParam()), tp());
    gyre::graph::PathOptions opts;
    opts.source = *params.sssp_source_vertex;
    const auto got = gyre::graph::sssp(*g, opts, graph_config(GetParam()), tp());
    testenv::expect_matches_reference(got, c, "SSSP", [](double v, double w) {
      return std::isinf(w) ? std::isinf(v) : std::abs(v - w) <= 1e-4 * std::abs(w);
    });
  }
}

// A random graph with sparse large ids, a weight per edge, and a part the source cannot reach.
struct RandomGraph {
  std::vector<std::uint64_t> ids;  // ascending: dense index = position
  struct Arc {
    std::size_t src, dst;
    double w;
  };
  std::vector<Arc> edges;  // as written (both directions are added for an undirected reference)
  std::string path;
};

RandomGraph random_graph(std::uint64_t seed, bool directed) {
  std::mt19937_64 rng(seed);
  RandomGraph r;
  const std::size_t n = 2000;
  for (std::size_t i = 0; i < n; ++i) r.ids.push_back(rng() >> 8);
  std::sort(r.ids.begin(), r.ids.end());
  r.ids.erase(std::unique(r.ids.begin(), r.ids.end()), r.ids.end());
  const std::size_t m = r.ids.size();
  const std::size_t reach = m * 3 / 4;  // vertices [reach, m) only have edges among themselves
  std::uniform_real_distribution<double> weight(0.01, 10.0);
  for (int i = 0; i < 5000; ++i) {
    const bool far = rng() % 8 == 0;
    const std::size_t lo = far ? reach : 0;
    const std::size_t span = far ? m - reach : reach;
    r.edges.push_back({lo + rng() % span, lo + rng() % span, std::round(weight(rng) * 1000) / 1000});
  }
  for (std::size_t v = 0; v < m; ++v) r.edges.push_back({v, v, 1.0});  // every id is a vertex; self-loops stay edges
  // Duplicates keep their smallest weight (simple-graph semantics).
  r.edges.push_back({r.edges[0].src, r.edges[0].dst, r.edges[0].w + 5});
  r.path = testenv::temp_path(std::string("paths_random_") + (directed ? "d" : "u") + std::to_string(seed) + ".txt");
  if (testenv::rank() == 0) {
    std::ofstream out(r.path);
    out << "# random graph\n";
    for (const auto& e : r.edges) out << r.ids[e.src] << ' ' << r.ids[e.dst] << ' ' << e.w << '\n';
  }
  testenv::barrier();
  return r;
}

std::vector<std::vector<std::pair<std::size_t, double>>> adjacency(const RandomGraph& r, bool directed) {
  std::vector<std::vector<std::pair<std::size_t, double>>> adj(r.ids.size());
  for (const auto& e : r.edges) {
    adj[e.src].push_back({e.dst, e.w});
    if (!directed) adj[e.dst].push_back({e.src, e.w});
  }
  return adj;
}

TEST_P(Paths, RandomGraphsMatchSerialBfsAndDijkstra) {
  for (const bool directed : {true, false}) {
    const RandomGraph r = random_graph(directed ? 7 : 8, directed);
    const auto adj = adjacency(r, directed);
    const std::size_t n = r.ids.size();
    const std::size_t s = 3;
    std::vector<std::int64_t> hops(n, gyre::graph::kUnreachable);
    std::queue<std::size_t> q;
    hops[s] = 0;
    q.push(s);
    while (!q.empty()) {
      const std::size_t u = q.front();
      q.pop();
      for (const auto& [v, w] : adj[u])
        if (hops[v] == gyre::graph::kUnreachable) hops[v] = hops[u] + 1, q.push(v);
    }
    std::vector<double> dist(n, std::numeric_limits<double>::infinity());
    using Item = std::pair<double, std::size_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> pq;
    dist[s] = 0;
    pq.push({0.0, s});
    while (!pq.empty()) {
      const auto [d, u] = pq.top();
      pq.pop();
      if (d > dist[u]) continue;
      for (const auto& [v, w] : adj[u])
        if (d + w < dist[v]) dist[v] = d + w, pq.push({dist[v], v});
    }
    auto in = input(r.path, true);
    in.directed = directed;
    auto g = gyre::graph::load(in, graph_config(GetParam()), tp());
    gyre::graph::PathOptions opts;
    opts.source = r.ids[s];
    std::vector<gyre::graph::Levels> levels;
    for (const auto dir : {gyre::graph::Direction::kAuto, gyre::graph::Direction::kPush, gyre::graph::Direction::kPull}) {
      opts.direction = dir;
      levels.push_back(gyre::graph::bfs(*g, opts, graph_config(GetParam()), tp()));
    }
    const auto got = gyre::graph::sssp(*g, opts, graph_config(GetParam()), tp());
    if (testenv::rank() == 0) {
      ASSERT_EQ(got.size(), n);
      for (const auto& l : levels) {
        ASSERT_EQ(l.size(), n);
        for (std::size_t v = 0; v < n; ++v) {
          ASSERT_EQ(l[v].first, r.ids[v]);
          EXPECT_EQ(l[v].second, hops[v]) << (directed ? "directed" : "undirected") << " vertex " << r.ids[v];
        }
      }
      std::size_t unreached = 0;
      for (std::size_t v = 0; v < n; ++v) {
        ASSERT_EQ(got[v].first, r.ids[v]);
        if (std::isinf(dist[v])) {
          ++unreached;
          EXPECT_TRUE(std::isinf(got[v].second)) << "vertex " << r.ids[v];
        } else {
          EXPECT_NEAR(got[v].second, dist[v], 1e-9 * std::max(1.0, dist[v])) << "vertex " << r.ids[v];
        }
      }
      EXPECT_GT(unreached, n / 5);
    }
    testenv::barrier();
    if (testenv::rank() == 0) std::remove(r.path.c_str());
  }
}

// The same bits whatever the number of partitions.
TEST(PathsDeterminism, ResultsDoNotDependOnPartitions) {
  const auto in = input(kDir + "p2p-31/p2p-31.properties", true);
  gyre::graph::Levels first_levels;
  gyre::graph::Distances first_dist;
  for (int p : {1, 3, 4}) {
    auto g = gyre::graph::load(in, graph_config(p), tp());
    gyre::graph::PathOptions opts;
    opts.source = 6;
    const auto levels = gyre::graph::bfs(*g, opts, graph_config(p), tp());
    const auto dist = gyre::graph::sssp(*g, opts, graph_config(p), tp());
    if (testenv::rank() != 0) continue;
    if (first_levels.empty()) {
      first_levels = levels;
      first_dist = dist;
    } else {
      EXPECT_EQ(levels, first_levels) << "parallelism " << p;
      EXPECT_EQ(dist, first_dist) << "parallelism " << p;
    }
  }
}

TEST(PathsErrors, SourceThatIsNotAVertexIsRefusedOnEveryRank) {
  auto g = gyre::graph::load(input(kDir + "example-directed.properties", true), graph_config(2), tp());
  gyre::graph::PathOptions opts;
  opts.source = 12345;
  EXPECT_THROW(gyre::graph::bfs(*g, opts, graph_config(2), tp()), gyre::PlanError);
  EXPECT_THROW(gyre::graph::sssp(*g, opts, graph_config(2), tp()), gyre::PlanError);
}

// BFS metrics: a direction-optimising run on a graph with a large frontier pulls at least once.
TEST(PathsMetrics, BfsSwitchesToBottomUpOnALargeFrontier) {
  auto g = gyre::graph::load(input(kDir + "p2p-31/p2p-31.properties", false), graph_config(2), tp());
  gyre::graph::PathOptions opts;
  opts.source = 6;
  gyre::JobResult m;
  gyre::graph::bfs(*g, opts, graph_config(2), tp(), &m);
  if (testenv::rank() != 0) return;
  ASSERT_EQ(m.loops.size(), 1u);
  int pulled = 0;
  for (const auto& s : m.loops[0].steps)
    for (const auto& [name, v] : s.aggregators)
      if (name == gyre::graph::kBottomUp && v > 0.5) ++pulled;
  EXPECT_GT(pulled, 0);
  EXPECT_LT(pulled, m.loops[0].supersteps);  // and pushes too (at least the first superstep)
}

INSTANTIATE_TEST_SUITE_P(Partitions, Paths, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
