// CDLP and LCC (gyre/algorithms/community.h): every Graphalytics graph in
// ../shared/datasets/graphalytics with a CDLP or LCC reference output (CDLP exact, LCC within
// 1e-4 relative), at 1, 2 and 4 partitions alone and at 1, 2 and 4 ranks; seeded random graphs
// (directed and undirected, with duplicates, reciprocal edges and self-loops) against plain
// serial versions; CDLP checkpoints, in-process recovery and resume at another partition count.
#include "gyre/algorithms/community.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../support/dense_ids.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"
#include "gyre/algorithms/neighbourhood.h"
#include "gyre/io/checkpoint_store.h"
#include "gyre/io/graph_files.h"
#include "gyre/iterations/checkpoint.h"

namespace {

const std::string& kDir = testenv::kGraphalyticsDir;

int ranks() { return testenv::ranks(); }
gyre::Cluster tp() { return testenv::cluster(); }

using testenv::graph_config;

using Case = testenv::GraphalyticsCase;
using testenv::graphalytics_cases;

class Community : public ::testing::TestWithParam<int> {};

TEST_P(Community, CdlpMatchesReferences) {
  const auto all = graphalytics_cases("CDLP");
  ASSERT_GE(all.size(), 5u) << "reference outputs missing under " << kDir;
  for (const auto& c : all) {
    const auto props = gyre::io::read_properties(kDir + c.properties);
    ASSERT_TRUE(props.parameters.cdlp_max_iterations.has_value()) << c.properties;
    gyre::graph::CdlpOptions opts;
    opts.iterations = static_cast<int>(*props.parameters.cdlp_max_iterations);
    gyre::graph::LoadOptions in;
    in.path = kDir + c.properties;
    gyre::JobResult m;
    const auto got = gyre::graph::cdlp(in, opts, graph_config(GetParam()), tp(), &m);
    EXPECT_EQ(m.loops.at(0).supersteps, opts.iterations) << c.properties;
    testenv::expect_matches_reference(got, c, "label", [](auto v, double w) { return static_cast<double>(v) == w; });
  }
}

TEST_P(Community, LccMatchesReferences) {
  const auto all = graphalytics_cases("LCC");
  ASSERT_GE(all.size(), 5u) << "reference outputs missing under " << kDir;
  for (const auto& c : all) {
    gyre::graph::LoadOptions in;
    in.path = kDir + c.properties;
    const auto got = gyre::graph::lcc(in, graph_config(GetParam()), tp());
    testenv::expect_matches_reference(got, c, "LCC", [](double v, double w) { return std::abs(v - w) <= 1e-4 * std::abs(w); });
  }
}

// ---- random graphs against serial versions

struct RandomGraph {
  std::vector<gyre::io::Edge> edges;  // as listed: duplicates, both directions, self-loops
  std::string path;
};

RandomGraph random_graph(std::uint64_t seed, const std::string& stem) {
  std::mt19937_64 rng(seed);
  const std::size_t n = 600;
  std::vector<std::uint64_t> ids(n);
  for (auto& id : ids) id = rng() >> 20;
  RandomGraph g;
  // Skewed: low-numbered vertices are hubs, so labels have real contests and LCC big lists.
  auto pick = [&] {
    const std::size_t a = rng() % n, b = rng() % n;
    return ids[std::min(a, b) % (rng() % 4 == 0 ? 40 : n)];
  };
  for (int i = 0; i < 4000; ++i) {
    const gyre::io::Edge e{pick(), pick()};
    g.edges.push_back(e);
    const auto r = rng() % 100;
    if (r < 20)
      g.edges.push_back({e.dst, e.src});  // reciprocal
    else if (r < 25)
      g.edges.push_back(e);  // duplicate
  }
  for (int i = 0; i < 30; ++i) {
    const std::uint64_t v = ids[rng() % n];
    g.edges.push_back({v, v});
  }
  g.path = testenv::temp_path(stem);
  if (testenv::rank() == 0) {
    std::ofstream out(g.path);
    out << "# random graph, seed " << seed << '\n';
    for (const auto& e : g.edges) out << e.src << ' ' << e.dst << '\n';
  }
  testenv::barrier();
  return g;
}

// The simple graph's arcs (dense ids): a duplicate once; undirected: both ways, a self-loop once.
std::set<std::pair<std::size_t, std::size_t>> arcs(const RandomGraph& g,
                                                   const testenv::DenseIds& idx, bool directed) {
  std::set<std::pair<std::size_t, std::size_t>> a;
  for (const auto& e : g.edges) {
    a.insert({idx(e.src), idx(e.dst)});
    if (!directed) a.insert({idx(e.dst), idx(e.src)});
  }
  return a;
}

std::vector<std::uint64_t> serial_cdlp(const std::vector<std::uint64_t>& ids,
                                       const std::set<std::pair<std::size_t, std::size_t>>& a,
                                       bool directed, int iterations) {
  const std::size_t n = ids.size();
  std::vector<std::vector<std::size_t>> nbrs(n);
  for (const auto& [u, v] : a) {
    nbrs[v].push_back(u);                // in-neighbour of v
    if (directed) nbrs[u].push_back(v);  // out-neighbour of u (undirected: the arc back is in `a`)
  }
  std::vector<std::uint64_t> label = ids;
  for (int it = 0; it < iterations; ++it) {
    std::vector<std::uint64_t> next = label;
    for (std::size_t v = 0; v < n; ++v) {
      if (nbrs[v].empty()) continue;
      std::map<std::uint64_t, int> count;
      for (const std::size_t u : nbrs[v]) ++count[label[u]];
      int best = 0;
      for (const auto& [l, c] : count)
        if (c > best) best = c, next[v] = l;
    }
    label = next;
  }
  return label;
}

std::vector<double> serial_lcc(std::size_t n,
                               const std::set<std::pair<std::size_t, std::size_t>>& a) {
  std::vector<std::set<std::size_t>> nb(n);
  for (const auto& [u, v] : a)
    if (u != v) nb[u].insert(v), nb[v].insert(u);
  std::vector<double> out(n, 0.0);
  for (std::size_t v = 0; v < n; ++v) {
    const double d = static_cast<double>(nb[v].size());
    if (nb[v].size() < 2) continue;
    std::size_t count = 0;
    for (const std::size_t u : nb[v])
      for (const std::size_t w : nb[v])
        if (u != w && a.count({u, w}) != 0) ++count;
    out[v] = static_cast<double>(count) / (d * (d - 1));
  }
  return out;
}

TEST_P(Community, RandomGraphsMatchSerialVersions) {
  for (const bool directed : {true, false}) {
    const RandomGraph g = random_graph(
        directed ? 31 : 32, directed ? "community_directed.txt" : "community_undirected.txt");
    const testenv::DenseIds idx(g.edges);
    const auto a = arcs(g, idx, directed);
    const auto want_cdlp = serial_cdlp(idx.ids, a, directed, 7);
    const auto want_lcc = serial_lcc(idx.size(), a);
    gyre::graph::LoadOptions in;
    in.path = g.path;
    in.directed = directed;
    gyre::graph::CdlpOptions opts;
    opts.iterations = 7;
    const auto got_cdlp = gyre::graph::cdlp(in, opts, graph_config(GetParam()), tp());
    const auto got_lcc = gyre::graph::lcc(in, graph_config(GetParam()), tp());
    if (testenv::rank() == 0) {
      ASSERT_EQ(got_cdlp.size(), idx.size());
      ASSERT_EQ(got_lcc.size(), idx.size());
      int bad = 0;
      for (std::size_t v = 0; v < idx.size(); ++v) {
        ASSERT_EQ(got_cdlp[v].first, idx.ids[v]);
        ASSERT_EQ(got_lcc[v].first, idx.ids[v]);
        if (got_cdlp[v].second != want_cdlp[v] && bad++ < 5)
          ADD_FAILURE() << (directed ? "directed" : "undirected") << ": vertex " << idx.ids[v]
                        << " label " << got_cdlp[v].second << ", serial " << want_cdlp[v];
        if (std::abs(got_lcc[v].second - want_lcc[v]) > 1e-12 && bad++ < 5)
          ADD_FAILURE() << (directed ? "directed" : "undirected") << ": vertex " << idx.ids[v]
                        << " LCC " << got_lcc[v].second << ", serial " << want_lcc[v];
      }
      EXPECT_EQ(bad, 0);
    }
    testenv::barrier();
    if (testenv::rank() == 0) std::remove(g.path.c_str());
  }
}

// The primitive itself, with each choice of neighbours: a vertex's new value is a hash of the
// sorted multiset of its neighbours' values (so order does not matter, multiplicity does).
struct MixProgram {
  using Value = std::uint64_t;
  std::uint64_t init(const gyre::graph::VertexInfo& v) const {
    return v.id * 0x9e3779b97f4a7c15ULL;
  }
  bool update(std::uint64_t& v, std::span<std::uint64_t> nb, const gyre::graph::VertexInfo&,
              const gyre::graph::StepInfo& step) const {
    std::sort(nb.begin(), nb.end());
    std::uint64_t h = v ^ static_cast<std::uint64_t>(step.superstep);
    for (const std::uint64_t x : nb) h = (h ^ x) * 0x100000001b3ULL;
    const bool changed = h != v;
    v = h;
    return changed;
  }
};

TEST_P(Community, NeighbourhoodIterationGivesEachChoiceOfNeighbours) {
  const RandomGraph g = random_graph(34, "neighbourhood.txt");
  const testenv::DenseIds idx(g.edges);
  const auto a = arcs(g, idx, true);
  gyre::graph::LoadOptions in;
  in.path = g.path;
  in.out_edges = true;
  auto graph = gyre::graph::load(in, graph_config(GetParam()), tp());
  using gyre::graph::Neighbours;
  for (const Neighbours which : {Neighbours::kIn, Neighbours::kOut, Neighbours::kInAndOut}) {
    const std::size_t n = idx.size();
    std::vector<std::vector<std::size_t>> nbrs(n);
    for (const auto& [u, v] : a) {
      if (which != Neighbours::kOut) nbrs[v].push_back(u);
      if (which != Neighbours::kIn) nbrs[u].push_back(v);
    }
    const MixProgram program;
    std::vector<std::uint64_t> want(n);
    for (std::size_t v = 0; v < n; ++v) want[v] = program.init({idx.ids[v], 0});
    for (int step = 1; step <= 4; ++step) {
      std::vector<std::uint64_t> next = want;
      for (std::size_t v = 0; v < n; ++v) {
        std::vector<std::uint64_t> values;
        for (const std::size_t u : nbrs[v]) values.push_back(want[u]);
        program.update(next[v], values, {idx.ids[v], 0}, {step, n, 0});
      }
      want = next;
    }
    gyre::graph::VertexOptions vo;
    vo.name = "mix";
    vo.max_supersteps = 4;
    const auto got =
        gyre::graph::run_neighbourhood(*graph, program, which, vo, graph_config(GetParam()), tp());
    if (testenv::rank() != 0) continue;
    ASSERT_EQ(got.size(), n);
    for (std::size_t v = 0; v < n; ++v)
      ASSERT_EQ(got[v].second, want[v])
          << "vertex " << idx.ids[v] << ", choice " << static_cast<int>(which);
  }
  testenv::barrier();
  if (testenv::rank() == 0) std::remove(g.path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Partitions, Community, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return "p" + std::to_string(p.param);
                         });

// ---- CDLP checkpoints

class CdlpCheckpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testenv::temp_path(std::string("gyre-cdlp-ckpt-") +
                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (testenv::rank() == 0) std::system(("rm -rf '" + dir_ + "'").c_str());
    testenv::barrier();
    graph_ = random_graph(33, "cdlp_ckpt.txt");
  }
  void TearDown() override {
    gyre::clear_injected_failure();
    testenv::barrier();
    if (testenv::rank() == 0) {
      std::system(("rm -rf '" + dir_ + "'").c_str());
      std::remove(graph_.path.c_str());
    }
  }
  gyre::graph::RecoveryOptions recovery(bool resume, int restarts) const {
    gyre::graph::RecoveryOptions r;
    r.checkpoint.storage = std::make_shared<gyre::io::CheckpointStore>(dir_);
    r.checkpoint.every = 2;
    r.checkpoint.wait = true;
    r.checkpoint.resume = resume;
    r.checkpoint.fingerprint = "cdlp test";
    r.max_restarts = restarts;
    return r;
  }
  gyre::graph::Labels run(int parallelism, const gyre::graph::RecoveryOptions& r,
                          gyre::JobResult* m) const {
    gyre::graph::LoadOptions in;
    in.path = graph_.path;
    in.directed = true;
    in.out_edges = true;
    auto g = gyre::graph::load(in, graph_config(parallelism), tp());
    gyre::graph::CdlpOptions opts;
    opts.iterations = 9;
    opts.recovery = r;
    return gyre::graph::cdlp(*g, opts, graph_config(parallelism), tp(), m);
  }
  std::string dir_;
  RandomGraph graph_;
};

TEST_F(CdlpCheckpoints, RollsBackInProcess) {
  gyre::JobResult clean;
  const auto expected = run(3, {}, &clean);
  gyre::inject_failure({std::min(ranks() - 1, 1), 6, gyre::FailureMode::kThrow});
  gyre::JobResult m;
  const auto got = run(3, recovery(false, 2), &m);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(m.restarts, 1);
  EXPECT_GT(m.loops.at(0).resumed_from, 0) << "resumed from the start, not from a checkpoint";
  EXPECT_EQ(m.loops.at(0).supersteps, 9);
}

TEST_F(CdlpCheckpoints, ResumesWithAnotherNumberOfPartitions) {
  gyre::JobResult clean;
  const auto expected = run(2, {}, &clean);
  gyre::inject_failure({0, 7, gyre::FailureMode::kThrow});
  gyre::JobResult failed;
  EXPECT_THROW(run(4, recovery(false, 0), &failed), gyre::JobError);
  gyre::clear_injected_failure();
  for (int p : {3, 5}) {
    gyre::JobResult m;
    EXPECT_EQ(run(p, recovery(true, 0), &m), expected) << p << " partitions";
    EXPECT_GT(m.loops.at(0).resumed_from, 0);
    EXPECT_EQ(m.loops.at(0).supersteps, 9);
  }
}

}  // namespace
