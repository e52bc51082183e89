// gyre's HDF5 graph (format version 2) and result files: round trips through the parallel
// readers at several partition counts, duplicates removed and undirected graphs stored
// symmetric, weights (the smallest of duplicates), the file's structure as other HDF5 tools see
// it (and h5dump -H), and clear errors for files that are not gyre graphs, are damaged or are
// of format version 1. (The in-place graph load: tests/algorithms/graph_hdf5_test.cc.)
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gyre/core/error.h"
#include "gyre/io/hdf5_graph.h"

#include "../support/error_of.h"

namespace {

std::string temp(const std::string& stem) {
  return ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid()) + ".h5";
}

template <class T>
std::vector<T> run_collect(int parallelism, gyre::Stream<T> (*make)(gyre::Environment&, const std::string&),
                           const std::string& path) {
  gyre::JobConfig c;
  c.parallelism = parallelism;
  c.slots = 2;
  gyre::Environment env(c);
  auto out = make(env, path).collect();
  env.run();
  auto v = out.values();
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<gyre::io::Edge> edges_of(const std::string& path, int parallelism) {
  return run_collect(parallelism, &gyre::io::read_hdf5_edges, path);
}
std::vector<std::uint64_t> vertices_of(const std::string& path, int parallelism) {
  return run_collect(parallelism, &gyre::io::read_hdf5_vertices, path);
}

using testenv::error_of;

// Sparse 64-bit ids, duplicate edges, self loops, an isolated vertex; read back at 1..5
// partitions (each reads only its vertex slice), the same edges (each once) and vertices every
// time. Undirected: stored symmetric (every edge both ways, a self-loop once).
TEST(Hdf5Graph, RoundTripAtAnyNumberOfPartitions) {
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(rng());
  std::vector<gyre::io::Edge> edges;
  for (int i = 0; i < 4000; ++i) edges.push_back({ids[rng() % 400], ids[rng() % 400]});
  edges.push_back({ids[3], ids[3]});
  edges.push_back(edges[0]);
  edges.push_back({edges[1].dst, edges[1].src});
  const std::uint64_t isolated = 42;
  for (const bool directed : {false, true}) {
    const auto g = gyre::io::make_hdf5_graph({isolated}, edges, directed);
    const std::string path = temp("roundtrip");
    gyre::io::write_hdf5_graph(path, g, "test");
    // The distinct edges (undirected: as unordered pairs) and the arcs stored.
    std::vector<gyre::io::Edge> want;
    for (auto e : edges) {
      if (!directed && e.src > e.dst) std::swap(e.src, e.dst);
      want.push_back(e);
    }
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    std::uint64_t arcs = 0;
    for (const auto& e : want) arcs += directed || e.src == e.dst ? 1 : 2;
    const auto info = gyre::io::read_hdf5_graph_info(path);
    EXPECT_EQ(info.edges, arcs);
    EXPECT_EQ(info.vertices, g.ids.size());
    EXPECT_EQ(info.directed, directed);
    EXPECT_FALSE(info.weighted);
    for (int p : {1, 2, 3, 5}) {
      EXPECT_EQ(edges_of(path, p), want) << "parallelism " << p;
      const auto vs = vertices_of(path, p);
      EXPECT_EQ(vs, g.ids) << "parallelism " << p;
      EXPECT_TRUE(std::binary_search(vs.begin(), vs.end(), isolated));
    }
    ::unlink(path.c_str());
  }
}

// The CSRs themselves: sorted lists without duplicates, the in-CSR the transpose of the out-CSR,
// an undirected graph's lists symmetric; weights follow their edges, a duplicate keeps the
// smallest.
TEST(Hdf5Graph, BuildKeepsTheSmallestWeightAndSymmetrises) {
  // Dense ids 0..3: 0->1 (w 5, then 2), 1->0 (w 7), 2->2 (w 1), 3 isolated.
  for (const bool directed : {true, false}) {
    std::vector<std::vector<std::uint32_t>> pairs{{0, 1, 1, 0}, {2, 2, 0, 1}};
    std::vector<std::vector<double>> w{{5, 7}, {1, 2}};
    const auto g = gyre::io::build_hdf5_graph({10, 20, 30, 40}, pairs, &w, directed);
    EXPECT_TRUE(g.weighted);
    if (directed) {
      EXPECT_EQ(g.out_offsets, (std::vector<std::uint64_t>{0, 1, 2, 3, 3}));
      EXPECT_EQ(g.out_targets, (std::vector<std::uint32_t>{1, 0, 2}));
      EXPECT_EQ(g.out_weights, (std::vector<double>{2, 7, 1}));
      EXPECT_EQ(g.in_offsets, (std::vector<std::uint64_t>{0, 1, 2, 3, 3}));
      EXPECT_EQ(g.in_sources, (std::vector<std::uint32_t>{1, 0, 2}));
      EXPECT_EQ(g.in_weights, (std::vector<double>{7, 2, 1}));
    } else {
      // {0,1} listed three times (weights 5, 7, 2): one edge, both ways, weight 2; the loop once.
      EXPECT_EQ(g.in_offsets, (std::vector<std::uint64_t>{0, 1, 2, 3, 3}));
      EXPECT_EQ(g.in_sources, (std::vector<std::uint32_t>{1, 0, 2}));
      EXPECT_EQ(g.in_weights, (std::vector<double>{2, 2, 1}));
      EXPECT_TRUE(g.out_offsets.empty());
    }
    EXPECT_TRUE(pairs[0].empty() && pairs[1].empty());  // consumed
    const std::string path = temp("weighted");
    gyre::io::write_hdf5_graph(path, g, "weights");
    const auto info = gyre::io::read_hdf5_graph_info(path);
    EXPECT_TRUE(info.weighted);
    EXPECT_EQ(info.edges, 3u);
    gyre::io::Hdf5GraphFile f(path);
    std::vector<double> back(3);
    f.read_weights(gyre::io::Hdf5GraphFile::Csr::kIn, 0, 3, back.data());
    EXPECT_EQ(back, g.in_weights);
    ::unlink(path.c_str());
  }
}

TEST(Hdf5Graph, EmptyGraph) {
  const std::string path = temp("empty");
  gyre::io::write_hdf5_graph(path, gyre::io::make_hdf5_graph({}, {}, true), "nothing");
  EXPECT_TRUE(edges_of(path, 2).empty());
  EXPECT_TRUE(vertices_of(path, 2).empty());
  ::unlink(path.c_str());
}

// The layout as any HDF5 reader sees it (here the C API, as h5dump would).
TEST(Hdf5Graph, LayoutIsPlainHdf5) {
  const auto g = gyre::io::make_hdf5_graph({}, {{10, 20}, {10, 30}, {30, 10}, {10, 20}}, true);
  const std::string path = temp("layout");
  gyre::io::write_hdf5_graph(path, g, "three edges");
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  auto read = [&](const char* name, hid_t type, void* out) {
    const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ASSERT_GE(d, 0) << name;
    ASSERT_GE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), 0) << name;
    H5Dclose(d);
  };
  std::uint64_t ids[3] = {}, in_offsets[4] = {}, out_offsets[4] = {};
  std::uint32_t sources[3] = {}, targets[3] = {};
  read("/vertices/ids", H5T_NATIVE_UINT64, ids);
  read("/in/offsets", H5T_NATIVE_UINT64, in_offsets);
  read("/in/sources", H5T_NATIVE_UINT32, sources);
  read("/out/offsets", H5T_NATIVE_UINT64, out_offsets);
  read("/out/targets", H5T_NATIVE_UINT32, targets);
  EXPECT_EQ(std::vector<std::uint64_t>(ids, ids + 3), (std::vector<std::uint64_t>{10, 20, 30}));
  EXPECT_EQ(std::vector<std::uint64_t>(out_offsets, out_offsets + 4), (std::vector<std::uint64_t>{0, 2, 2, 3}));
  EXPECT_EQ(std::vector<std::uint32_t>(targets, targets + 3), (std::vector<std::uint32_t>{1, 2, 0}));
  EXPECT_EQ(std::vector<std::uint64_t>(in_offsets, in_offsets + 4), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(std::vector<std::uint32_t>(sources, sources + 3), (std::vector<std::uint32_t>{2, 0, 0}));
  std::uint64_t version = 0, edges = 0;
  const hid_t a = H5Aopen(f, "version", H5P_DEFAULT);
  ASSERT_GE(H5Aread(a, H5T_NATIVE_UINT64, &version), 0);
  H5Aclose(a);
  const hid_t e = H5Aopen(f, "edges", H5P_DEFAULT);
  ASSERT_GE(H5Aread(e, H5T_NATIVE_UINT64, &edges), 0);
  H5Aclose(e);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(edges, 3u);  // the duplicate once
  H5Fclose(f);
  // h5dump -H (if installed) shows the groups and datasets.
  const std::string dump = path + ".dump";
  if (std::system(("h5dump -H " + path + " > " + dump + " 2>/dev/null").c_str()) == 0) {
    std::ifstream in(dump);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* want : {"GROUP \"in\"", "DATASET \"sources\"", "GROUP \"out\"", "DATASET \"targets\"",
                             "ATTRIBUTE \"weighted\"", "ATTRIBUTE \"version\""})
      EXPECT_NE(text.find(want), std::string::npos) << want << " not in:\n" << text;
  }
  ::unlink(dump.c_str());
  ::unlink(path.c_str());
}

TEST(Hdf5Graph, ClearErrors) {
  const std::string text = temp("not-hdf5");
  std::ofstream(text) << "1 2\n";
  EXPECT_NE(error_of([&] { gyre::io::read_hdf5_graph_info(text); }).find("not an HDF5 file"), std::string::npos);
  EXPECT_NE(error_of([&] { gyre::io::read_hdf5_graph_info(text + ".missing"); }).find("cannot read"), std::string::npos);

  // An HDF5 file, but a result file, not a graph.
  const std::string result = temp("result");
  gyre::io::write_hdf5_values(result, "pagerank", std::vector<std::pair<std::uint64_t, double>>{{1, 0.5}});
  EXPECT_NE(error_of([&] { gyre::io::read_hdf5_graph_info(result); }).find("not a gyre graph file"), std::string::npos);

  // A graph whose source index points beyond the vertices: the reading job fails naming the
  // dataset and the element.
  const std::string bad = temp("bad-target");
  auto g = gyre::io::make_hdf5_graph({}, {{1, 2}, {2, 3}}, true);
  g.in_sources[1] = 99;
  gyre::io::write_hdf5_graph(bad, g, "damaged");
  const std::string err = error_of([&] { edges_of(bad, 2); });
  EXPECT_NE(err.find(bad), std::string::npos) << err;
  EXPECT_NE(err.find("/in/sources[1] = 99 is not a vertex index (there are 3 vertices)"), std::string::npos) << err;

  // Offsets that go backwards.
  auto h = gyre::io::make_hdf5_graph({}, {{1, 2}, {2, 3}, {3, 1}}, true);
  h.in_offsets[1] = 3;
  gyre::io::write_hdf5_graph(bad, h, "damaged");
  const std::string off = error_of([&] { edges_of(bad, 1); });
  EXPECT_NE(off.find("/in/offsets[2] = 2 is less than [1] = 3"), std::string::npos) << off;

  // A version 1 file (gyre before simple graphs): refused, saying what to do.
  gyre::io::write_hdf5_graph(bad, g, "old");
  {
    const hid_t f = H5Fopen(bad.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "version", H5P_DEFAULT);
    const std::uint64_t one = 1;
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_UINT64, &one), 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  const std::string v1 = error_of([&] { gyre::io::read_hdf5_graph_info(bad); });
  EXPECT_NE(v1.find("'" + bad + "': gyre graph format version 1"), std::string::npos) << v1;
  EXPECT_NE(v1.find("run gyre convert again"), std::string::npos) << v1;

  for (const auto& p : {text, result, bad}) ::unlink(p.c_str());
}

// Damaged copies of a good file, made with the HDF5 C API as any tool (or a flipped bit) could.
class DamagedHdf5 : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<gyre::io::Edge> edges;
    for (std::uint64_t i = 0; i < 40; ++i) edges.push_back({i * 10, ((i * 7) % 40) * 10});
    good_ = gyre::io::make_hdf5_graph({}, edges, true);
    path_ = temp("damaged");
    gyre::io::write_hdf5_graph(path_, good_, "test");
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  template <class T>
  void overwrite(const char* dataset, const std::vector<T>& values, hid_t type) {
    const hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    ASSERT_GE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  void overwrite_ids(const std::vector<std::uint64_t>& ids) { overwrite("/vertices/ids", ids, H5T_NATIVE_UINT64); }
  void set_directed(std::uint64_t v) {
    const hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "directed", H5P_DEFAULT);
    ASSERT_GE(a, 0);
    ASSERT_GE(H5Awrite(a, H5T_NATIVE_UINT64, &v), 0);
    H5Aclose(a);
    H5Fclose(f);
  }
  // The error of reading the edges and of reading the vertices, at 1..4 partitions.
  void expect_both_fail(const std::string& want) {
    for (int p : {1, 2, 3, 4}) {
      const std::string e = error_of([&] { edges_of(path_, p); });
      EXPECT_NE(e.find("'" + path_ + "': " + want), std::string::npos) << "edges, p" << p << ": " << e;
      const std::string v = error_of([&] { vertices_of(path_, p); });
      EXPECT_NE(v.find("'" + path_ + "': " + want), std::string::npos) << "vertices, p" << p << ": " << v;
    }
  }
  gyre::io::Hdf5Graph good_;
  std::string path_;
};

TEST_F(DamagedHdf5, UndamagedCopyReads) {
  set_directed(1);  // rewritten as it was: still a good file
  EXPECT_TRUE(gyre::io::read_hdf5_graph_info(path_).directed);
  EXPECT_EQ(vertices_of(path_, 3), good_.ids);
  EXPECT_EQ(edges_of(path_, 3).size(), 40u);
}

TEST_F(DamagedHdf5, DuplicateIds) {
  auto ids = good_.ids;
  ids[17] = ids[16];
  overwrite_ids(ids);
  expect_both_fail("/vertices/ids[17] = 160 is not greater than [16] = 160");
}

TEST_F(DamagedHdf5, UnsortedIds) {
  auto ids = good_.ids;
  std::swap(ids[0], ids[1]);
  overwrite_ids(ids);
  expect_both_fail("/vertices/ids[1] = 0 is not greater than [0] = 10");
}

// A flipped high bit in one id: the next id is then not greater. The damage sits at a partition
// boundary at 2 partitions (ids[19] | ids[20]), which the boundary check covers.
TEST_F(DamagedHdf5, BitFlippedId) {
  auto ids = good_.ids;
  ids[19] ^= std::uint64_t{1} << 40;
  overwrite_ids(ids);
  expect_both_fail("/vertices/ids[20] = 200 is not greater than [19] = " + std::to_string(ids[19]));
}

TEST_F(DamagedHdf5, DirectedFlagOutOfRange) {
  set_directed(77);
  const std::string err = error_of([&] { gyre::io::read_hdf5_graph_info(path_); });
  EXPECT_NE(err.find("'" + path_ + "': attribute directed = 77, expected 0 or 1"), std::string::npos) << err;
}

TEST_F(DamagedHdf5, OffsetsAndTargets) {
  auto offsets = good_.in_offsets;
  offsets[39] = 41;  // beyond the edges
  overwrite("/in/offsets", offsets, H5T_NATIVE_UINT64);
  std::string err = error_of([&] { edges_of(path_, 2); });
  EXPECT_NE(err.find("/in/offsets[39] = 41 is beyond the 40 edges"), std::string::npos) << err;
  offsets = good_.in_offsets;
  offsets[0] = 1;
  overwrite("/in/offsets", offsets, H5T_NATIVE_UINT64);
  err = error_of([&] { edges_of(path_, 1); });
  EXPECT_NE(err.find("/in/offsets[0] = 1, expected 0"), std::string::npos) << err;
  overwrite("/in/offsets", good_.in_offsets, H5T_NATIVE_UINT64);
  auto sources = good_.in_sources;
  sources[33] = 40;
  overwrite("/in/sources", sources, H5T_NATIVE_UINT32);
  err = error_of([&] { edges_of(path_, 3); });
  EXPECT_NE(err.find("/in/sources[33] = 40 is not a vertex index (there are 40 vertices)"), std::string::npos) << err;
}

TEST(Hdf5Graph, PipesAndDirectoriesAreRefused) {
  const std::string fifo = temp("fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string err = error_of([&] { gyre::io::read_hdf5_graph_info(fifo); });
  EXPECT_NE(err.find("'" + fifo + "' is a pipe or FIFO"), std::string::npos) << err;
  err = error_of([&] { edges_of(fifo, 2); });
  EXPECT_NE(err.find("'" + fifo + "' is a pipe or FIFO"), std::string::npos) << err;
  err = error_of([&] { gyre::io::read_hdf5_values(fifo); });
  EXPECT_NE(err.find("'" + fifo + "' is a pipe or FIFO"), std::string::npos) << err;
  const std::string dir = ::testing::TempDir();
  err = error_of([&] { gyre::io::read_hdf5_graph_info(dir); });
  EXPECT_NE(err.find("is a directory"), std::string::npos) << err;
  ::unlink(fifo.c_str());
}

TEST(Hdf5Graph, WritingIntoAMissingDirectoryLeavesNothing) {
  const std::string path = ::testing::TempDir() + "/no-such-dir-" + std::to_string(::getpid()) + "/g.h5";
  const std::string err = error_of([&] { gyre::io::write_hdf5_graph(path, gyre::io::make_hdf5_graph({}, {{1, 2}}, true), "x"); });
  EXPECT_NE(err.find("cannot create"), std::string::npos) << err;
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

// Result files: ids and values; 64-bit labels keep every bit.
TEST(Hdf5Results, RoundTrip) {
  const std::string path = temp("values");
  gyre::io::write_hdf5_values(path, "pagerank", std::vector<std::pair<std::uint64_t, double>>{{3, 0.25}, {9, 1e-300}});
  const auto back = gyre::io::read_hdf5_values(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1], (std::pair<std::uint64_t, double>{9, 1e-300}));

  const std::uint64_t big = 18446744073709551557u;
  gyre::io::write_hdf5_values(path, "cc", std::vector<std::pair<std::uint64_t, std::uint64_t>>{{big, big}});
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, "/values", H5P_DEFAULT);
  std::uint64_t v = 0;
  ASSERT_GE(H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v), 0);
  EXPECT_EQ(v, big);
  H5Dclose(d);
  H5Fclose(f);
  ::unlink(path.c_str());
}

}  // namespace
