// gyre's HDF5 graphs end to end: `convert` (duplicates removed, undirected graphs symmetric,
// weights, isolated vertices from a .v file) and the in-place load (each rank reading its ranges
// of dense ids), compared with loading the same simple graph from text: the same partitions'
// worth of vertices and edges, and the same PageRank bits and components, at 1, 2 and 4
// partitions, alone and under mpirun. Plus partition boundaries on skewed graphs, more
// partitions than vertices, and clear errors for truncated, damaged and old files.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gyre/algorithms/algorithms.h"
#include "gyre/io/hdf5_graph.h"
#include "../support/error_of.h"
#include "../support/graphalytics.h"
#include "../support/test_env.h"

namespace {

using testenv::error_of;

int ranks() { return testenv::ranks(); }

using testenv::graph_config;

gyre::Cluster tp() { return testenv::cluster(); }

struct E {
  std::uint64_t src, dst;
  double w;
};

// Rank 0 writes `text`; everyone waits for it.
void write_file(const std::string& path, const std::string& text) {
  if (testenv::rank() == 0) std::ofstream(path) << text;
  testenv::barrier();
}

std::string edge_text(const std::vector<E>& edges, bool weights) {
  std::string s = "# test graph\n";
  for (const E& e : edges) {
    s += std::to_string(e.src) + " " + std::to_string(e.dst);
    if (weights) s += " " + std::to_string(e.w);
    s += "\n";
  }
  return s;
}

// The simple graph of `edges`, each edge once (undirected: src <= dst), smallest weight kept.
std::vector<E> simple(const std::vector<E>& edges, bool directed) {
  std::map<std::pair<std::uint64_t, std::uint64_t>, double> m;
  for (const E& e : edges) {
    auto key = std::make_pair(e.src, e.dst);
    if (!directed && key.first > key.second) std::swap(key.first, key.second);
    auto [it, fresh] = m.emplace(key, e.w);
    if (!fresh) it->second = std::min(it->second, e.w);
  }
  std::vector<E> out;
  for (const auto& [k, w] : m) out.push_back({k.first, k.second, w});
  return out;
}

// Random multigraph: duplicates, self-loops, edges listed both ways, sparse 64-bit ids.
std::vector<E> random_edges(std::uint64_t seed, int vertices, int edges, bool sparse_ids) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < vertices; ++i) ids.push_back(sparse_ids ? rng() >> 1 : static_cast<std::uint64_t>(i) * 3 + 1);
  std::vector<E> out;
  for (int i = 0; i < edges; ++i) {
    // Skewed: low indexes are hubs.
    const std::size_t a = rng() % static_cast<std::size_t>(vertices), b = (rng() % static_cast<std::size_t>(vertices)) * (rng() % 2);
    out.push_back({ids[a], ids[b], static_cast<double>(rng() % 100) / 4});
    if (i % 7 == 0) out.push_back({ids[b], ids[a], static_cast<double>(rng() % 100) / 4});
    if (i % 11 == 0) out.push_back(out.back());
    if (i % 13 == 0) out.push_back({ids[a], ids[a], 1.5});
  }
  return out;
}

class Hdf5Load : public ::testing::TestWithParam<int> {};

// The converted multigraph loaded in place gives what the text loader gives for the simple graph.
TEST_P(Hdf5Load, SameResultsAsTheSimpleTextGraph) {
  const int p = GetParam();
  for (const bool directed : {true, false})
    for (const bool sparse : {false, true}) {
      const auto edges = random_edges(directed * 10 + sparse + 1, 300, 3000, sparse);
      const std::string raw = testenv::temp_path("raw") + ".txt", canon = testenv::temp_path("canon") + ".txt";
      const std::string h5 = testenv::temp_path("g") + ".h5";
      write_file(raw, edge_text(edges, false));
      write_file(canon, edge_text(simple(edges, directed), false));
      gyre::graph::LoadOptions in;
      in.path = raw;
      in.directed = directed;
      const auto st = gyre::graph::convert(in, h5, graph_config(p), tp());
      testenv::barrier();
      gyre::graph::LoadOptions text, hdf5;
      text.path = canon;
      text.directed = directed;
      hdf5.path = h5;
      auto gt = gyre::graph::load(text, graph_config(p), tp());
      auto gh = gyre::graph::load(hdf5, graph_config(p), tp());
      const std::string what = std::string(directed ? "directed" : "undirected") + (sparse ? ", sparse ids" : "");
      EXPECT_EQ(gh->vertices, gt->vertices) << what;
      EXPECT_EQ(gh->edges, gt->edges) << what;
      EXPECT_EQ(gh->directed, directed) << what;
      EXPECT_EQ(gh->has_out_edges, !directed) << what;
      if (testenv::rank() == 0) {
        EXPECT_EQ(st.edges, simple(edges, directed).size()) << what;
      }
      const auto pr_t = gyre::graph::pagerank(*gt, {}, graph_config(p), tp());
      const auto pr_h = gyre::graph::pagerank(*gh, {}, graph_config(p), tp());
      EXPECT_EQ(pr_h, pr_t) << what;  // bit for bit
      const auto cc_t = gyre::graph::connected_components(text, graph_config(p), tp());
      const auto cc_h = gyre::graph::connected_components(hdf5, graph_config(p), tp());
      EXPECT_EQ(cc_h, cc_t) << what;
      // Every partition holds a range of dense ids, its in-edges sorted by source.
      std::uint64_t arcs = 0;
      for (int q = 0; q < gh->partitions(); ++q) {
        const auto* part = gh->part(q);
        if (q % ranks() != testenv::rank()) {
          EXPECT_EQ(part, nullptr);
          continue;
        }
        ASSERT_NE(part, nullptr);
        EXPECT_EQ(part->first, gh->first[static_cast<std::size_t>(q)]);
        EXPECT_EQ(part->ids.size(), gh->first[static_cast<std::size_t>(q) + 1] - part->first);
        for (std::size_t i = 0; i < part->ids.size(); ++i)
          for (std::uint64_t e = part->in_offsets[i] + 1; e < part->in_offsets[i + 1]; ++e)
            EXPECT_LT(part->in_sources[e - 1], part->in_sources[e]);
        arcs += part->in_sources.size();
      }
      EXPECT_EQ(static_cast<std::uint64_t>(testenv::sum_ranks(static_cast<long long>(arcs))), gh->edges);
      testenv::barrier();
      if (testenv::rank() == 0)
        for (const auto& f : {raw, canon, h5}) std::remove(f.c_str());
    }
}

// Out-edges and weights as asked for: a directed weighted graph (third column) whose partitions
// hold both CSRs with the smallest weight of each duplicate; loaded undirected, the neighbours
// are the union of both directions.
TEST_P(Hdf5Load, OutEdgesAndWeights) {
  const int p = GetParam();
  const auto edges = random_edges(5, 120, 900, false);
  const std::string raw = testenv::temp_path("w") + ".txt", h5 = testenv::temp_path("w") + ".h5";
  write_file(raw, edge_text(edges, true));
  gyre::graph::LoadOptions in;
  in.path = raw;
  gyre::graph::convert(in, h5, graph_config(p), tp());
  testenv::barrier();
  EXPECT_TRUE(gyre::io::read_hdf5_graph_info(h5).weighted);
  // Expected: original id -> (neighbour id -> weight), both directions.
  std::map<std::uint64_t, std::map<std::uint64_t, double>> out, in_e, both;
  for (const E& e : simple(edges, true)) {
    out[e.src][e.dst] = e.w;
    in_e[e.dst][e.src] = e.w;
    for (auto [a, b] : {std::pair{e.src, e.dst}, std::pair{e.dst, e.src}}) {
      auto [it, fresh] = both[a].emplace(b, e.w);
      if (!fresh) it->second = std::min(it->second, e.w);
    }
  }
  gyre::graph::LoadOptions h;
  h.path = h5;
  h.out_edges = true;
  h.weighted = true;
  auto g = gyre::graph::load(h, graph_config(p), tp());
  EXPECT_TRUE(g->weighted);
  EXPECT_TRUE(g->has_out_edges);
  // Dense id -> original id: every rank's ids, in id order.
  std::vector<std::uint64_t> local_ids;
  for (int q = testenv::rank(); q < g->partitions(); q += ranks())
    local_ids.insert(local_ids.end(), g->part(q)->ids.begin(), g->part(q)->ids.end());
  std::vector<std::uint64_t> id_of = testenv::gather(local_ids);
  ASSERT_EQ(id_of.size(), g->vertices);
  std::sort(id_of.begin(), id_of.end());
  for (int q = testenv::rank(); q < g->partitions(); q += ranks()) {
    const auto& part = *g->part(q);
    ASSERT_EQ(part.out_offsets.size(), part.ids.size() + 1);
    for (std::size_t i = 0; i < part.ids.size(); ++i) {
      const std::uint64_t v = part.ids[i];
      std::map<std::uint64_t, double> got_out, got_in;
      for (std::uint64_t e = part.out_offsets[i]; e < part.out_offsets[i + 1]; ++e)
        got_out[id_of[part.out_targets[e]]] = part.out_weights[e];
      for (std::uint64_t e = part.in_offsets[i]; e < part.in_offsets[i + 1]; ++e)
        got_in[id_of[part.in_sources[e]]] = part.in_weights[e];
      EXPECT_EQ(got_out, out[v]) << "vertex " << v;
      EXPECT_EQ(got_in, in_e[v]) << "vertex " << v;
      EXPECT_EQ(part.out_degree[i], out[v].size());
    }
  }
  h.directed = false;
  h.out_edges = false;
  auto u = gyre::graph::load(h, graph_config(p), tp());
  EXPECT_FALSE(u->directed);
  std::uint64_t want_arcs = 0;
  for (const auto& [v, nb] : both) want_arcs += nb.size();
  EXPECT_EQ(u->edges, want_arcs);
  for (int q = testenv::rank(); q < u->partitions(); q += ranks()) {
    const auto& part = *u->part(q);
    for (std::size_t i = 0; i < part.ids.size(); ++i) {
      std::map<std::uint64_t, double> got;
      for (std::uint64_t e = part.in_offsets[i]; e < part.in_offsets[i + 1]; ++e)
        got[id_of[part.in_sources[e]]] = part.in_weights[e];
      EXPECT_EQ(got, both[part.ids[i]]) << "vertex " << part.ids[i];
      EXPECT_EQ(part.out_degree[i], got.size());
    }
  }
  testenv::barrier();
  if (testenv::rank() == 0)
    for (const auto& f : {raw, h5}) std::remove(f.c_str());
}

INSTANTIATE_TEST_SUITE_P(Partitions, Hdf5Load, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

// A Graphalytics graph with weights and isolated vertices (.v): every vertex is kept, the
// weights follow the edges.
TEST(Hdf5Convert, GraphalyticsWithIsolatedVerticesAndWeights) {
  const std::string stem = testenv::temp_path("ga");
  write_file(stem + ".v", "5\n1\n9\n3\n7\n");
  write_file(stem + ".e", "1 3 0.5\n3 1 0.25\n3 5 2\n5 5 1\n1 3 0.125\n");
  const std::string name = stem.substr(stem.rfind('/') + 1);
  write_file(stem + ".properties", "graph." + name + ".vertex-file = " + name + ".v\ngraph." + name +
                                       ".edge-file = " + name + ".e\ngraph." + name + ".directed = false\ngraph." +
                                       name + ".edge-properties.names = weight\ngraph." + name +
                                       ".edge-properties.types = real\n");
  gyre::graph::LoadOptions in;
  in.path = stem + ".properties";
  const auto st = gyre::graph::convert(in, stem + ".h5", graph_config(2), tp());
  testenv::barrier();
  const auto info = gyre::io::read_hdf5_graph_info(stem + ".h5");
  EXPECT_EQ(info.vertices, 5u);
  EXPECT_FALSE(info.directed);
  EXPECT_TRUE(info.weighted);
  EXPECT_EQ(info.edges, 5u);  // {1,3} both ways, {3,5} both ways, the loop 5-5 once
  if (testenv::rank() == 0) {
    EXPECT_EQ(st.edges, 3u);
    EXPECT_EQ(st.vertices, 5u);
  }
  gyre::io::Hdf5GraphFile f(stem + ".h5");
  std::vector<std::uint64_t> ids(5), off(6);
  std::vector<std::uint32_t> src(5);
  std::vector<double> w(5);
  f.read_ids(0, 5, ids.data());
  f.read_offsets(gyre::io::Hdf5GraphFile::Csr::kIn, 0, 6, off.data());
  f.read_neighbours(gyre::io::Hdf5GraphFile::Csr::kIn, 0, 5, src.data());
  f.read_weights(gyre::io::Hdf5GraphFile::Csr::kIn, 0, 5, w.data());
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 3, 5, 7, 9}));
  EXPECT_EQ(off, (std::vector<std::uint64_t>{0, 1, 3, 5, 5, 5}));
  EXPECT_EQ(src, (std::vector<std::uint32_t>{1, 0, 2, 1, 2}));
  EXPECT_EQ(w, (std::vector<double>{0.125, 0.125, 2, 2, 1}));
  testenv::barrier();
  if (testenv::rank() == 0)
    for (const char* ext : {".v", ".e", ".properties", ".h5"}) std::remove((stem + ext).c_str());
}

// Boundaries balance vertices + in-edges: on a star (every edge into one hub) the hub's partition
// is alone with it, and no partition costs more than its share plus the largest vertex. More
// partitions than vertices: empty partitions, the same results.
TEST(Hdf5Boundaries, SkewedGraphsAndMorePartitionsThanVertices) {
  std::vector<E> star;
  for (std::uint64_t v = 1; v <= 2000; ++v) star.push_back({v, 0, 1});
  for (std::uint64_t v = 1; v < 2000; ++v) star.push_back({v, v + 1, 1});
  const std::string t = testenv::temp_path("star") + ".txt", h5 = testenv::temp_path("star") + ".h5";
  write_file(t, edge_text(star, false));
  gyre::graph::LoadOptions in;
  in.path = t;
  gyre::graph::convert(in, h5, graph_config(1), tp());
  testenv::barrier();
  gyre::graph::LoadOptions h;
  h.path = h5;
  for (int p : {2, 4, 8}) {
    auto g = gyre::graph::load(h, graph_config(p), tp());
    ASSERT_EQ(g->first.size(), static_cast<std::size_t>(g->partitions()) + 1);
    EXPECT_EQ(g->first.front(), 0u);
    EXPECT_EQ(g->first.back(), g->vertices);
    EXPECT_TRUE(std::is_sorted(g->first.begin(), g->first.end()));
    // The hub (dense id 0, 2000 in-edges, a third of the cost) is alone once its share is less.
    if (p >= 4) {
      EXPECT_EQ(g->first[1], 1u) << "parallelism " << p;
    }
    const std::uint64_t total = g->vertices + g->edges;
    for (int q = testenv::rank(); q < g->partitions(); q += ranks()) {
      const auto& part = *g->part(q);
      const std::uint64_t cost = part.ids.size() + part.in_sources.size();
      EXPECT_LE(cost, total / static_cast<std::uint64_t>(g->partitions()) + 2002) << "partition " << q;
    }
    const auto pr = gyre::graph::pagerank(*g, {}, graph_config(p), tp());
    gyre::graph::LoadOptions text;
    text.path = t;
    const auto pr_text = gyre::graph::pagerank(*gyre::graph::load(text, graph_config(p), tp()), {}, graph_config(p), tp());
    EXPECT_EQ(pr, pr_text);
  }
  // Three vertices, eight partitions.
  write_file(t, "1 2\n2 3\n3 1\n");
  gyre::graph::convert(in, h5, graph_config(1), tp());
  testenv::barrier();
  auto g = gyre::graph::load(h, graph_config(8), tp());
  EXPECT_EQ(g->vertices, 3u);
  EXPECT_EQ(g->first.back(), 3u);
  gyre::graph::LoadOptions text;
  text.path = t;
  EXPECT_EQ(gyre::graph::pagerank(*g, {}, graph_config(8), tp()),
            gyre::graph::pagerank(*gyre::graph::load(text, graph_config(8), tp()), {}, graph_config(8), tp()));
  testenv::barrier();
  if (testenv::rank() == 0)
    for (const auto& f : {t, h5}) std::remove(f.c_str());
}

// Rank 0 rewrites a dataset of the file, as a damaged copy would have it.
void overwrite_u32(const std::string& path, const char* dataset, std::uint64_t at, std::uint32_t value) {
  if (testenv::rank() == 0) {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    const hsize_t start = at, one = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &one, nullptr);
    const hid_t mem = H5Screate_simple(1, &one, nullptr);
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_UINT32, mem, space, H5P_DEFAULT, &value), 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
  }
  testenv::barrier();
}

// Every rank fails alike, with the file and the dataset named.
TEST(Hdf5LoadErrors, ClearOnEveryRank) {
  const std::string t = testenv::temp_path("bad") + ".txt", h5 = testenv::temp_path("bad") + ".h5";
  std::string text;
  for (int i = 0; i < 200; ++i) text += std::to_string(i) + " " + std::to_string((i * 7 + 1) % 200) + "\n";
  text += "0 5\n";  // vertex 0: out-edges to 1 and 5, 201 arcs
  write_file(t, text);
  gyre::graph::LoadOptions in;
  in.path = t;
  gyre::graph::convert(in, h5, graph_config(1), tp());
  testenv::barrier();
  gyre::graph::LoadOptions h;
  h.path = h5;
  // Asking for what the file lacks.
  h.weighted = true;
  EXPECT_NE(error_of([&] { gyre::graph::load(h, graph_config(2), tp()); }).find("'" + h5 + "': the graph has no weights"),
            std::string::npos);
  h.weighted = false;
  h.keep_duplicates = true;
  EXPECT_NE(error_of([&] { gyre::graph::load(h, graph_config(2), tp()); }).find("stored simple"), std::string::npos);
  h.keep_duplicates = false;
  // A source out of range, in the last partition only (only its rank sees it).
  overwrite_u32(h5, "/in/sources", 200, 1000);
  std::string err = error_of([&] { gyre::graph::load(h, graph_config(4), tp()); });
  EXPECT_NE(err.find("'" + h5 + "': /in/sources[200] = 1000 is not a vertex index (there are 200 vertices)"),
            std::string::npos)
      << err;
  // Out of order within a vertex's list is caught too (the file must be sorted).
  gyre::graph::convert(in, h5, graph_config(1), tp());
  testenv::barrier();
  h.out_edges = true;
  overwrite_u32(h5, "/out/targets", 1, 0);
  err = error_of([&] { gyre::graph::load(h, graph_config(2), tp()); });
  EXPECT_NE(err.find("'" + h5 + "': /out/targets[1] = 0 is not greater than the one before it (1)"), std::string::npos)
      << err;
  // A truncated file (a copy cut short).
  gyre::graph::convert(in, h5, graph_config(1), tp());
  testenv::barrier();
  if (testenv::rank() == 0) {
    ASSERT_EQ(::truncate(h5.c_str(), 1500), 0);
  }
  testenv::barrier();
  err = error_of([&] { gyre::graph::load(h, graph_config(2), tp()); });
  EXPECT_NE(err.find("'" + h5 + "'"), std::string::npos) << err;
  // A text file named .h5, and a text input with a bad line (convert names file and line).
  write_file(h5, text);
  EXPECT_NE(error_of([&] { gyre::graph::load(h, graph_config(2), tp()); }).find("'" + h5 + "': not an HDF5 file"),
            std::string::npos);
  write_file(t, text + "5 x\n");
  err = error_of([&] { gyre::graph::convert(in, h5 + ".out.h5", graph_config(1), tp()); });
  EXPECT_NE(err.find(t + ":202: "), std::string::npos) << err;
  write_file(t, "1 2 0.5\n2 3\n");
  err = error_of([&] { gyre::graph::convert(in, h5 + ".out.h5", graph_config(1), tp()); });
  EXPECT_NE(err.find(t + ":2: no weight"), std::string::npos) << err;
  EXPECT_NE(::access((h5 + ".out.h5").c_str(), F_OK), 0);
  testenv::barrier();
  if (testenv::rank() == 0)
    for (const auto& f : {t, h5}) std::remove(f.c_str());
}

}  // namespace
