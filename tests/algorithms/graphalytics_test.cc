// LDBC Graphalytics validation: every graph in ../shared/datasets/graphalytics with a PR or WCC
// reference output, by the Graphalytics rules (PR within 1e-4 relative; WCC the same partition
// of the vertices), alone and at 1, 2 and 4 ranks. Plus randomised graphs against a serial
// reference, and identical output whatever the number of partitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gyre/algorithms/algorithms.h"
#include "gyre/io/graph_files.h"
#include "../support/dense_ids.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"

namespace {

const std::string& kDir = testenv::kGraphalyticsDir;

using testenv::graph_config;

using Case = testenv::GraphalyticsCase;
using testenv::graphalytics_cases;

gyre::Cluster tp() { return testenv::cluster(); }

class Graphalytics : public ::testing::TestWithParam<int> {};

TEST_P(Graphalytics, PageRankMatchesReferences) {
  const auto all = graphalytics_cases("PR");
  ASSERT_GE(all.size(), 4u) << "reference outputs missing under " << kDir;
  for (const auto& c : all) {
    const auto props = gyre::io::read_properties(kDir + c.properties);
    gyre::graph::PageRankOptions opts;
    opts.damping = std::stod(props.properties.at("graph." + props.name + ".pr.damping-factor"));
    opts.iterations = std::stoi(props.properties.at("graph." + props.name + ".pr.num-iterations"));
    gyre::graph::LoadOptions in;
    in.path = kDir + c.properties;
    auto g = gyre::graph::load(in, graph_config(GetParam()), tp());
    const auto got = gyre::graph::pagerank(*g, opts, graph_config(GetParam()), tp());
    testenv::expect_matches_reference(got, c, "PR", [](double v, double w) { return std::abs(v - w) <= 1e-4 * std::abs(w); });
  }
}

// The same partition: a bijection between our labels and the reference's.
void expect_same_partition(const gyre::graph::Components& got, std::vector<std::pair<std::uint64_t, double>> want,
                           const std::string& what) {
  std::sort(want.begin(), want.end());
  ASSERT_EQ(got.size(), want.size()) << what;
  std::map<std::uint64_t, double> fwd;
  std::map<double, std::uint64_t> back;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].first, want[i].first) << what;
    const auto [f, fnew] = fwd.emplace(got[i].second, want[i].second);
    const auto [b, bnew] = back.emplace(want[i].second, got[i].second);
    ASSERT_EQ(f->second, want[i].second) << what << ": vertex " << got[i].first << " in the wrong component";
    ASSERT_EQ(b->second, got[i].second) << what << ": vertex " << got[i].first << " in the wrong component";
  }
}

TEST_P(Graphalytics, ConnectedComponentsMatchReferences) {
  const auto all = graphalytics_cases("WCC");
  ASSERT_GE(all.size(), 4u);
  for (const auto& c : all) {
    gyre::graph::LoadOptions in;
    in.path = kDir + c.properties;
    gyre::JobResult m;
    const auto got = gyre::graph::connected_components(in, graph_config(GetParam()), tp(), &m);
    EXPECT_TRUE(m.loops.empty());  // union-find: no loop
    if (testenv::rank() != 0) continue;
    expect_same_partition(got, gyre::io::read_id_values(c.reference), c.properties);
    // Our labels are the smallest original id of each component.
    std::map<std::uint64_t, std::uint64_t> smallest;
    for (const auto& [v, l] : got) {
      auto [it, fresh] = smallest.emplace(l, v);
      if (!fresh) it->second = std::min(it->second, v);
    }
    for (const auto& [l, v] : smallest) EXPECT_EQ(l, v) << c.properties;
  }
}

// Random graphs (ids sparse and large) against a serial PageRank and union-find.
TEST_P(Graphalytics, RandomGraphsMatchSerialReferences) {
  std::mt19937_64 rng(21);
  const std::uint64_t n = 3000;
  std::vector<std::uint64_t> ids(n);
  for (auto& id : ids) id = rng() >> 4;
  std::vector<gyre::io::Edge> edges;
  for (int i = 0; i < 9000; ++i) edges.push_back({ids[rng() % n], ids[rng() % (n / 2)]});  // half the vertices dangle
  const std::string path = testenv::temp_path("random_graph.txt");
  if (testenv::rank() == 0) {
    std::ofstream out(path);
    out << "# random graph\n";
    for (const auto& e : edges) out << e.src << ' ' << e.dst << '\n';
  }
  testenv::barrier();

  // Serial references over the ids that occur in edges, on the simple graph (the file repeats
  // some edges: they count once).
  const testenv::DenseIds idx(edges);
  const auto& vs = idx.ids;
  const std::size_t N = vs.size();
  std::vector<gyre::io::Edge> simple = edges;
  std::sort(simple.begin(), simple.end());
  simple.erase(std::unique(simple.begin(), simple.end()), simple.end());
  ASSERT_LT(simple.size(), edges.size());  // the test has duplicates
  std::vector<double> pr(N, 1.0 / static_cast<double>(N));
  std::vector<std::uint32_t> deg(N, 0);
  for (const auto& e : simple) ++deg[idx(e.src)];
  for (int it = 0; it < 15; ++it) {
    double dangling = 0;
    for (std::size_t v = 0; v < N; ++v)
      if (deg[v] == 0) dangling += pr[v];
    std::vector<double> next(N, 0.15 / static_cast<double>(N) + 0.85 * dangling / static_cast<double>(N));
    for (const auto& e : simple) next[idx(e.dst)] += 0.85 * pr[idx(e.src)] / deg[idx(e.src)];
    pr = next;
  }
  std::vector<std::size_t> parent(N);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<std::size_t(std::size_t)> find = [&](std::size_t x) { return parent[x] == x ? x : parent[x] = find(parent[x]); };
  for (const auto& e : edges) parent[find(idx(e.src))] = find(idx(e.dst));
  std::map<std::size_t, std::uint64_t> min_id;
  for (std::size_t v = 0; v < N; ++v) {
    auto [it, fresh] = min_id.emplace(find(v), vs[v]);
    if (!fresh) it->second = std::min(it->second, vs[v]);
  }

  gyre::graph::LoadOptions in;
  in.path = path;
  auto g = gyre::graph::load(in, graph_config(GetParam()), tp());
  gyre::graph::PageRankOptions opts;
  opts.iterations = 15;
  const auto got_pr = gyre::graph::pagerank(*g, opts, graph_config(GetParam()), tp());
  const auto got_cc = gyre::graph::connected_components(in, graph_config(GetParam()), tp());
  if (testenv::rank() == 0) {
    ASSERT_EQ(got_pr.size(), N);
    ASSERT_EQ(got_cc.size(), N);
    for (std::size_t v = 0; v < N; ++v) {
      EXPECT_EQ(got_pr[v].first, vs[v]);
      EXPECT_NEAR(got_pr[v].second, pr[v], 1e-12);
      EXPECT_EQ(got_cc[v].second, min_id[find(v)]);
    }
  }
  testenv::barrier();
  if (testenv::rank() == 0) std::remove(path.c_str());
}

// Every graph converted to gyre's HDF5 format (each rank parsing its share, rank 0 writing) and
// read back (each partition reading its slice): the same PageRank bits and components as from
// the text files.
TEST_P(Graphalytics, Hdf5InputGivesTheSameResultsAsText) {
  auto all = graphalytics_cases("PR");
  for (const auto& c : graphalytics_cases("WCC")) all.push_back(c);
  for (const auto& c : all) {
    gyre::graph::LoadOptions text;
    text.path = kDir + c.properties;
    const std::string h5 = testenv::temp_path("graph") + ".h5";
    const auto st = gyre::graph::convert(text, h5, graph_config(GetParam()), tp());
    testenv::barrier();  // the file is complete on rank 0 before anyone reads it
    gyre::graph::LoadOptions hdf5;
    hdf5.path = h5;
    auto g_text = gyre::graph::load(text, graph_config(GetParam()), tp());
    auto g_h5 = gyre::graph::load(hdf5, graph_config(GetParam()), tp());
    EXPECT_EQ(g_h5->vertices, g_text->vertices) << c.properties;
    EXPECT_EQ(g_h5->edges, g_text->edges) << c.properties;
    EXPECT_EQ(g_h5->directed, g_text->directed) << c.properties;
    if (testenv::rank() == 0) {
      EXPECT_EQ(st.vertices, g_text->vertices) << c.properties;
    }
    const auto pr_text = gyre::graph::pagerank(*g_text, {}, graph_config(GetParam()), tp());
    const auto pr_h5 = gyre::graph::pagerank(*g_h5, {}, graph_config(GetParam()), tp());
    EXPECT_EQ(pr_h5, pr_text) << c.properties;
    const auto cc_text = gyre::graph::connected_components(text, graph_config(GetParam()), tp());
    const auto cc_h5 = gyre::graph::connected_components(hdf5, graph_config(GetParam()), tp());
    EXPECT_EQ(cc_h5, cc_text) << c.properties;
    testenv::barrier();
    if (testenv::rank() == 0) std::remove(h5.c_str());
  }
}

// Identical bits whatever the number of partitions (in-edges summed in source-id order, the
// dangling mass summed exactly).
TEST(GraphalyticsDeterminism, PageRankBitsDoNotDependOnPartitions) {
  gyre::graph::LoadOptions in;
  in.path = kDir + "p2p-31/p2p-31.properties";
  gyre::graph::Result first;
  for (int p : {1, 2, 3, 4, 8}) {
    auto g = gyre::graph::load(in, graph_config(p), tp());
    const auto got = gyre::graph::pagerank(*g, {}, graph_config(p), tp());
    if (testenv::rank() != 0) continue;
    if (first.empty()) first = got;
    else EXPECT_EQ(got, first) << "parallelism " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Partitions, Graphalytics, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
