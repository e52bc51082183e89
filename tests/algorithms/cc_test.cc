// Connected components (union-find, and min-label propagation with checkpoints) against a serial
// union-find on seeded random graphs: many small components, one giant, vertices with only a
// self-loop, duplicate edges and edges listed both ways, edges across partitions, a hub outside
// the giant component; at 1, 2 and 4 partitions alone and at 1, 2 and 4 ranks under mpirun.
// Plus the concurrent UnionFind on its own.
#include <gtest/gtest.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gyre/algorithms/algorithms.h"
#include "gyre/algorithms/union_find.h"
#include "gyre/io/checkpoint_store.h"
#include "../support/dense_ids.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"

namespace {

using Edges = std::vector<gyre::graph::MemoryEdge>;

using testenv::graph_config;

// Serial reference: (id, smallest id of its component), sorted by id.
gyre::graph::Components serial(const Edges& edges) {
  const testenv::DenseIds idx(edges);
  std::vector<std::size_t> parent(idx.size());
  std::iota(parent.begin(), parent.end(), std::size_t{0});
  auto find = [&](std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  for (const auto& e : edges) {
    const std::size_t a = find(idx(e.src)), b = find(idx(e.dst));
    if (a != b) parent[std::max(a, b)] = std::min(a, b);  // ids ascend: the root is the smallest id
  }
  gyre::graph::Components out;
  for (std::size_t i = 0; i < idx.size(); ++i) out.emplace_back(idx.ids[i], idx.ids[find(i)]);
  return out;
}

// ids: sparse, large, in random order.
std::vector<std::uint64_t> random_ids(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::uint64_t> ids(n);
  for (auto& id : ids) id = (rng() >> 8) + 1;
  return ids;
}

// A giant component (a random graph with a few hubs), many small ones (paths, stars, cycles of
// 2..6 vertices), vertices with a self-loop only, duplicates and reversed copies.
std::shared_ptr<const Edges> mixed_graph(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto ids = random_ids(rng, 6000);
  Edges e;
  // The giant: vertices 0..2999, 9000 random edges, plus every vertex i > 0 to one below it.
  for (std::size_t i = 1; i < 3000; ++i) e.push_back({ids[i], ids[rng() % i]});
  for (int k = 0; k < 9000; ++k) e.push_back({ids[rng() % 3000], ids[rng() % 3000]});
  for (int k = 0; k < 500; ++k) e.push_back({ids[rng() % 3000], ids[7]});  // a hub in the giant
  // Small components over 3000..5799.
  std::size_t v = 3000;
  while (v + 6 < 5800) {
    const std::size_t size = 2 + rng() % 5;
    const int shape = static_cast<int>(rng() % 3);
    for (std::size_t j = 1; j < size; ++j) e.push_back({ids[v + (shape == 1 ? 0 : j - 1)], ids[v + j]});
    if (shape == 2) e.push_back({ids[v + size - 1], ids[v]});
    v += size;
  }
  // Vertices with only a self-loop.
  for (std::size_t i = 5800; i < 6000; ++i) e.push_back({ids[i], ids[i]});
  // Duplicates and reversed copies.
  const std::size_t m = e.size();
  for (int k = 0; k < 2000; ++k) {
    const auto& x = e[rng() % m];
    e.push_back(k % 2 == 0 ? x : gyre::graph::MemoryEdge{x.dst, x.src});
  }
  std::shuffle(e.begin(), e.end(), rng);
  return std::make_shared<const Edges>(std::move(e));
}

// The vertex of largest degree is a star's centre, away from the giant component (a long path
// with a few chords): the cross-rank edges of the giant are not skipped for the hub's sake.
std::shared_ptr<const Edges> hub_outside_giant(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto ids = random_ids(rng, 3000);
  Edges e;
  for (std::size_t i = 1; i < 2000; ++i) e.push_back({ids[i - 1], ids[i]});
  for (int k = 0; k < 200; ++k) {
    const std::size_t a = rng() % 2000;
    e.push_back({ids[a], ids[std::min<std::size_t>(1999, a + 1 + rng() % 5)]});
  }
  for (std::size_t i = 2001; i < 2400; ++i) e.push_back({ids[2000], ids[i]});  // the star
  for (std::size_t i = 2400; i + 1 < 3000; i += 2) e.push_back({ids[i], ids[i + 1]});
  return std::make_shared<const Edges>(std::move(e));
}

void expect_components(const gyre::graph::Components& got, const gyre::graph::Components& want,
                       const std::string& what) {
  if (testenv::rank() != 0) {
    EXPECT_TRUE(got.empty()) << what;
    return;
  }
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].first, want[i].first) << what;
    ASSERT_EQ(got[i].second, want[i].second) << what << ": vertex " << got[i].first;
  }
}

class ConnectedComponents : public ::testing::TestWithParam<int> {};

TEST_P(ConnectedComponents, RandomGraphsMatchSerialUnionFind) {
  for (std::uint64_t seed : {1, 2, 3}) {
    const auto edges = mixed_graph(seed);
    const auto want = serial(*edges);
    gyre::JobResult m;
    const auto got = gyre::graph::connected_components_edges(edges, graph_config(GetParam()), testenv::cluster(), &m);
    expect_components(got, want, "mixed graph, seed " + std::to_string(seed));
    EXPECT_TRUE(m.loops.empty());  // union-find: no loop
  }
}

TEST_P(ConnectedComponents, HubOutsideTheGiantComponent) {
  const auto edges = hub_outside_giant(5);
  expect_components(gyre::graph::connected_components_edges(edges, graph_config(GetParam()), testenv::cluster()),
                    serial(*edges), "hub outside the giant");
}

TEST_P(ConnectedComponents, SparseRandomGraphsWithManyComponents) {
  // Below the percolation threshold (average degree < 1): thousands of small trees; and just
  // above it.
  for (const double degree : {0.6, 1.3}) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(degree * 10));
    const auto ids = random_ids(rng, 5000);
    Edges e;
    for (int k = 0; k < static_cast<int>(degree * 2500); ++k) e.push_back({ids[rng() % 5000], ids[rng() % 5000]});
    const auto edges = std::make_shared<const Edges>(std::move(e));
    expect_components(gyre::graph::connected_components_edges(edges, graph_config(GetParam()), testenv::cluster()),
                      serial(*edges), "average degree " + std::to_string(degree));
  }
}

TEST_P(ConnectedComponents, OneEdgeAndSelfLoopOnly) {
  for (const Edges& e : {Edges{{42, 7}}, Edges{{5, 5}}, Edges{{9, 9}, {3, 3}, {9, 3}}}) {
    const auto edges = std::make_shared<const Edges>(e);
    expect_components(gyre::graph::connected_components_edges(edges, graph_config(GetParam()), testenv::cluster()),
                      serial(*edges), "tiny graph");
  }
}

// With checkpoints, cc is min-label propagation, a loop: the same labels, and checkpoints written.
TEST_P(ConnectedComponents, WithCheckpointsPropagationGivesTheSameLabels) {
  const auto edges = mixed_graph(4);
  const gyre::JobConfig c = graph_config(GetParam());
  auto g = gyre::graph::load_edges(edges, false, c, testenv::cluster());
  const std::string dir = testenv::temp_path("cc_checkpoints_p" + std::to_string(GetParam()));
  gyre::graph::RecoveryOptions recovery;
  recovery.checkpoint.storage = std::make_shared<gyre::io::CheckpointStore>(dir);
  recovery.checkpoint.every = 2;
  recovery.checkpoint.wait = true;
  recovery.checkpoint.fingerprint = "cc_test";
  gyre::JobResult m;
  const auto got = gyre::graph::connected_components(*g, c, testenv::cluster(), &m, {}, recovery);
  expect_components(got, serial(*edges), "with checkpoints");
  ASSERT_EQ(m.loops.size(), 1U);
  EXPECT_EQ(m.loops[0].ended_by, gyre::graph::kEndedNoActiveVertices);
  EXPECT_GE(m.loops[0].supersteps, 3);
  testenv::barrier();
  if (testenv::rank() == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir));
    std::filesystem::remove_all(dir);
  }
  testenv::barrier();
}

INSTANTIATE_TEST_SUITE_P(Partitions, ConnectedComponents, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

TEST(UnionFind, ConcurrentUnitesGiveSmallestRoots) {
  const std::size_t n = 200000;
  std::mt19937_64 rng(9);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> pairs(300000);
  for (auto& p : pairs) p = {static_cast<std::uint32_t>(rng() % n), static_cast<std::uint32_t>(rng() % n)};
  // Serial reference.
  std::vector<std::uint32_t> ref(n);
  std::iota(ref.begin(), ref.end(), 0U);
  auto find = [&](std::uint32_t x) {
    while (ref[x] != x) x = ref[x] = ref[ref[x]];
    return x;
  };
  for (const auto& [a, b] : pairs) {
    const auto ra = find(a), rb = find(b);
    if (ra != rb) ref[std::max(ra, rb)] = std::min(ra, rb);
  }
  gyre::graph::UnionFind uf(n);
  EXPECT_EQ(uf.size(), n);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, pairs.size(), 64), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i < r.end(); ++i) uf.unite(pairs[i].first, pairs[i].second);
  });
  uf.compress();
  for (std::uint32_t x = 0; x < n; ++x) ASSERT_EQ(uf.parent(x), find(x)) << "index " << x;
  EXPECT_FALSE(uf.unite(pairs[0].first, pairs[0].second));  // already together
  EXPECT_TRUE(uf.is_root(0));
}

}  // namespace
