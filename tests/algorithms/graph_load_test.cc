// The graph loader's semantics: simple graphs (a duplicate edge counts once; an undirected edge
// listed both ways is one edge; self-loops stay), multigraphs on request, the out-edge CSR and
// edge weights, against serial references, at 1, 2 and 4 partitions, alone and at 1, 2 and 4
// ranks. Also weighted edge lists with a bad weight: file and line in the error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gyre/algorithms/algorithms.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"

namespace {

using gyre::graph::MemoryEdge;
using gyre::graph::StepInfo;
using gyre::graph::VertexInfo;

using testenv::graph_config;

// A multigraph: repeated edges (with other weights), reciprocal pairs, self-loops (some twice).
std::shared_ptr<std::vector<MemoryEdge>> multigraph(std::uint64_t seed, int n, int m) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = rng() >> 20;
  auto edges = std::make_shared<std::vector<MemoryEdge>>();
  auto weight = [&] { return static_cast<double>(rng() % 1000) / 8.0; };
  for (int i = 0; i < m; ++i) {
    const std::uint64_t a = ids[rng() % ids.size()], b = ids[rng() % ids.size()];
    edges->push_back({a, b, weight()});
    const auto r = rng() % 10;
    if (r == 0) edges->push_back({a, b, weight()});  // a duplicate
    if (r == 1) edges->push_back({b, a, weight()});  // the other direction
  }
  for (int i = 0; i < 20; ++i) {
    const std::uint64_t a = ids[rng() % ids.size()];
    edges->push_back({a, a, weight()});
    if (i % 2 == 0) edges->push_back({a, a, weight()});
  }
  return edges;
}

// The simple graph as arcs (src, dst) -> smallest weight; undirected: both directions.
std::map<std::pair<std::uint64_t, std::uint64_t>, double> simple_arcs(const std::vector<MemoryEdge>& edges,
                                                                       bool directed) {
  std::map<std::pair<std::uint64_t, std::uint64_t>, double> arcs;
  auto add = [&](std::uint64_t a, std::uint64_t b, double w) {
    auto [it, fresh] = arcs.emplace(std::make_pair(a, b), w);
    if (!fresh) it->second = std::min(it->second, w);
  };
  for (const auto& e : edges) {
    add(e.src, e.dst, e.weight);
    if (!directed) add(e.dst, e.src, e.weight);
  }
  return arcs;
}

// Per vertex: the sum of a function of its in-neighbours' ids, their count and its out-degree, by
// a bulk program (messages along the in-edge CSR) — checks the CSR without reading other ranks'
// partitions.
struct InNeighbours {
  struct Value {
    double id_sum;
    double count;
    double out_degree;
  };
  struct Message {
    double id_sum;
    double count;
  };
  static double f(std::uint64_t id) { return static_cast<double>(id % 1009); }
  Value init(const VertexInfo& v) const { return {0, 0, static_cast<double>(v.out_degree)}; }
  Message message(const Value&, const VertexInfo& v) const { return {f(v.id), 1}; }
  Message identity() const { return {0, 0}; }
  void combine(Message& a, const Message& m) const {
    a.id_sum += m.id_sum;
    a.count += m.count;
  }
  bool apply(Value& x, const Message& m, const VertexInfo&, const StepInfo&) const {
    x.id_sum = m.id_sum;
    x.count = m.count;
    return true;
  }
};

// The same sums pushed along the out-edge CSR (a delta program, one superstep of messages).
struct OutPushed {
  using Value = double;
  using Message = double;
  double init(const VertexInfo&) const { return -1; }
  double message(const double&, const VertexInfo& v) const { return InNeighbours::f(v.id); }
  double identity() const { return 0; }
  void combine(double& a, const double& m) const { a += m; }
  bool apply(double& x, const double& m, const VertexInfo&, const StepInfo&) const {
    if (x >= 0) return false;  // once
    x = m;
    return true;
  }
};

class GraphLoad : public ::testing::TestWithParam<int> {};

void check_structure(const std::vector<MemoryEdge>& edges, bool directed, bool out_edges, int p) {
  const auto arcs = simple_arcs(edges, directed);
  std::map<std::uint64_t, double> want_sum, want_count, want_out;
  std::set<std::uint64_t> ids;
  for (const auto& e : edges) ids.insert(e.src), ids.insert(e.dst);
  for (const auto& [a, w] : arcs) {
    want_sum[a.second] += InNeighbours::f(a.first);
    want_count[a.second] += 1;
    want_out[a.first] += 1;
  }
  gyre::graph::LoadOptions lo;
  lo.out_edges = out_edges;
  lo.weighted = true;
  auto g = gyre::graph::load_edges(std::make_shared<std::vector<MemoryEdge>>(edges), directed, lo, graph_config(p),
                                   testenv::cluster());
  EXPECT_EQ(g->edges, arcs.size());
  EXPECT_EQ(g->vertices, ids.size());
  EXPECT_TRUE(g->weighted);
  EXPECT_EQ(g->has_out_edges, !directed || out_edges);
  gyre::graph::VertexOptions vo;
  vo.name = "in-neighbours";
  vo.max_supersteps = 1;
  const auto got = gyre::graph::run_bulk(*g, InNeighbours{}, vo, graph_config(p), testenv::cluster());
  if (testenv::rank() == 0) {
    ASSERT_EQ(got.size(), ids.size());
    for (const auto& [id, v] : got) {
      EXPECT_EQ(v.id_sum, want_sum[id]) << "vertex " << id << " at " << p;
      EXPECT_EQ(v.count, want_count[id]) << "vertex " << id << " at " << p;
      EXPECT_EQ(v.out_degree, want_out[id]) << "vertex " << id << " at " << p;
    }
  }
  if (g->has_out_edges) {
    vo.max_supersteps = 5;
    const auto pushed = gyre::graph::run_delta(*g, OutPushed{}, vo, graph_config(p), testenv::cluster());
    if (testenv::rank() == 0) {
      for (const auto& [id, v] : pushed)
        EXPECT_EQ(std::max(v, 0.0), want_sum[id]) << "vertex " << id << " pushed over out-edges at " << p;
    }
  }
  // Weights, in each local vertex's edge order (sources, then targets, by original id).
  for (int q = 0; q < g->partitions(); ++q) {
    const auto* part = g->part(q);
    if (part == nullptr) continue;
    for (std::size_t i = 0; i < part->size(); ++i) {
      const std::uint64_t v = part->ids[i];
      std::vector<double> want_in, want_outw;
      for (const auto& [a, w] : arcs) {
        if (a.second == v) want_in.push_back(w);  // map order: by source id
      }
      for (auto it = arcs.lower_bound({v, 0}); it != arcs.end() && it->first.first == v; ++it)
        want_outw.push_back(it->second);
      const std::vector<double> in(part->in_weights.begin() + static_cast<std::ptrdiff_t>(part->in_offsets[i]),
                                   part->in_weights.begin() + static_cast<std::ptrdiff_t>(part->in_offsets[i + 1]));
      ASSERT_EQ(in, want_in) << "in-edge weights of " << v;
      if (g->has_out_edges) {
        std::vector<double> out;
        for (std::uint64_t e = part->out_begin(i); e < part->out_end(i); ++e) out.push_back(part->out_weights_data()[e]);
        ASSERT_EQ(out, want_outw) << "out-edge weights of " << v;
        ASSERT_EQ(part->out_end(i) - part->out_begin(i), part->out_degree[i]);
      }
    }
  }
}

TEST_P(GraphLoad, DirectedSimpleGraphWithOutEdgesAndWeights) {
  const auto edges = multigraph(11, 300, 1500);
  check_structure(*edges, true, true, GetParam());
  check_structure(*edges, true, false, GetParam());
}

TEST_P(GraphLoad, UndirectedEdgeListedBothWaysIsOneEdge) {
  const auto edges = multigraph(12, 300, 1500);
  check_structure(*edges, false, false, GetParam());
}

// PageRank on an undirected edge list that lists some edges both ways (and some twice) equals
// PageRank on the list with each edge once, to the bit.
TEST_P(GraphLoad, PageRankIgnoresRepeatedEdges) {
  const auto edges = multigraph(13, 400, 2000);
  const auto arcs = simple_arcs(*edges, false);
  auto once = std::make_shared<std::vector<MemoryEdge>>();
  for (const auto& [a, w] : arcs)
    if (a.first <= a.second) once->push_back({a.first, a.second, w});
  gyre::graph::PageRankOptions pr;
  const int p = GetParam();
  const auto g1 = gyre::graph::load_edges(edges, false, graph_config(p), testenv::cluster());
  const auto g2 = gyre::graph::load_edges(once, false, graph_config(p), testenv::cluster());
  EXPECT_EQ(g1->edges, g2->edges);
  const auto r1 = gyre::graph::pagerank(*g1, pr, graph_config(p), testenv::cluster());
  const auto r2 = gyre::graph::pagerank(*g2, pr, graph_config(p), testenv::cluster());
  ASSERT_EQ(r1.size(), r2.size());
  for (std::size_t i = 0; i < r1.size(); ++i) {
    ASSERT_EQ(r1[i].first, r2[i].first);
    ASSERT_EQ(r1[i].second, r2[i].second) << "vertex " << r1[i].first;
  }
}

TEST_P(GraphLoad, KeepDuplicatesCountsEveryListedEdge) {
  const auto edges = multigraph(14, 200, 800);
  std::map<std::uint64_t, double> want_count, want_out;
  for (const auto& e : *edges) want_count[e.dst] += 1, want_out[e.src] += 1;
  gyre::graph::LoadOptions lo;
  lo.keep_duplicates = true;
  const int p = GetParam();
  auto g = gyre::graph::load_edges(edges, true, lo, graph_config(p), testenv::cluster());
  EXPECT_EQ(g->edges, edges->size());
  gyre::graph::VertexOptions vo;
  vo.name = "in-neighbours";
  vo.max_supersteps = 1;
  const auto got = gyre::graph::run_bulk(*g, InNeighbours{}, vo, graph_config(p), testenv::cluster());
  if (testenv::rank() == 0) {
    for (const auto& [id, v] : got) {
      EXPECT_EQ(v.count, want_count[id]) << "vertex " << id;
      EXPECT_EQ(v.out_degree, want_out[id]) << "vertex " << id;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Partitions, GraphLoad, ::testing::Values(1, 2, 4));

std::string write_file(const std::string& stem, const std::string& text) {
  const std::string path = testenv::temp_path(stem);
  if (testenv::rank() == 0) std::ofstream(path) << text;
  testenv::barrier();
  return path;
}

void expect_error(const std::string& path, const std::string& what) {
  gyre::graph::LoadOptions lo;
  lo.path = path;
  lo.weighted = true;
  try {
    gyre::graph::load(lo, graph_config(2), testenv::cluster());
    ADD_FAILURE() << "no error for " << what;
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(WeightedEdgeList, BadWeightsNameFileAndLine) {
  expect_error(write_file("missing.e", "1 2 0.5\n2 3 1\n3 4\n"), "weight (third column) is missing");
  expect_error(write_file("negative.e", "1 2 0.5\n2 3 1\n3 4 -2\n"), "negative weight");
  expect_error(write_file("nan.e", "1 2 0.5\n2 3 1\n3 4 nan\n"), "NaN");
}

TEST(WeightedEdgeList, WeightsAreRead) {
  const std::string path = write_file("weights.e", "# comment\n1 2 0.5\n2 3 1e3\n1 2 0.25\n3 1 inf\n");
  gyre::graph::LoadOptions lo;
  lo.path = path;
  lo.weighted = true;
  lo.out_edges = true;
  auto g = gyre::graph::load(lo, graph_config(1), testenv::cluster());
  EXPECT_EQ(g->edges, 3u);
  std::map<std::uint64_t, std::vector<double>> in;
  for (int q = 0; q < g->partitions(); ++q)
    if (const auto* part = g->part(q))
      for (std::size_t i = 0; i < part->size(); ++i)
        for (std::uint64_t e = part->in_offsets[i]; e < part->in_offsets[i + 1]; ++e)
          in[part->ids[i]].push_back(part->in_weights[e]);
  const auto all = testenv::gather(std::vector<std::size_t>{in.size()});
  std::size_t total = 0;
  for (auto n : all) total += n;
  EXPECT_EQ(total, 3u);
  if (in.count(2)) {
    EXPECT_EQ(in[2], std::vector<double>{0.25});
  }
  if (in.count(3)) {
    EXPECT_EQ(in[3], std::vector<double>{1000});
  }
  if (in.count(1)) {
    EXPECT_EQ(in[1], std::vector<double>{INFINITY});
  }
}

}  // namespace
