// Graph file readers on the shared SNAP and Graphalytics data, and on malformed input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "gyre/io/graph_files.h"

namespace {

const std::string kData = GYRE_SHARED_DATASETS;

std::vector<gyre::io::Edge> read_parallel(const std::string& path, int parallelism) {
  gyre::JobConfig c;
  c.parallelism = parallelism;
  c.slots = 2;
  gyre::Environment env(c);
  auto out = gyre::io::read_edge_list(env, path).collect();
  env.run();
  auto v = out.values();
  std::sort(v.begin(), v.end());
  return v;
}

std::string temp_file(const std::string& stem, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid());
  std::ofstream(path) << content;
  return path;
}

class EdgeListTest : public ::testing::TestWithParam<int> {};

TEST_P(EdgeListTest, SnapFilesReadInParallelMatchTheSerialReader) {
  const struct {
    const char* file;
    std::size_t edges;
  } files[] = {{"/snap/email-Eu-core/email-Eu-core.txt", 25571},
               {"/snap/ego-Facebook/facebook_combined.txt", 88234},  // two junk '#' lines
               {"/snap/soc-Slashdot0902/soc-Slashdot0902.txt.gz", 948464}};  // gzip, CRLF
  for (const auto& f : files) {
    const std::string path = kData + f.file;
    auto serial = gyre::io::read_edge_list_serial(path);
    ASSERT_EQ(serial.size(), f.edges) << path;
    std::sort(serial.begin(), serial.end());
    EXPECT_EQ(read_parallel(path, GetParam()), serial) << path;
  }
}

TEST_P(EdgeListTest, MalformedLineNamesFileAndLine) {
  std::string content;
  for (int i = 0; i < 5000; ++i) content += std::to_string(i) + " " + std::to_string(i + 1) + (i % 3 ? " 0.5\n" : "\n");
  content += "7 x\n";  // line 5001
  for (int i = 0; i < 100; ++i) content += "1 2\n";
  const std::string path = temp_file("bad_edges", content);
  try {
    read_parallel(path, GetParam());
    ADD_FAILURE() << "expected a JobError";
  } catch (const gyre::JobError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":5001: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'7 x'"), std::string::npos) << e.what();
  }
  ::unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Parallelism, EdgeListTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

TEST(EdgeList, RejectsBadLinesWithReasons) {
  const struct {
    const char* line;
    const char* reason;
  } cases[] = {{"-1 2", "negative vertex id"},
               {"1 99999999999999999999999", "second column"},
               {"99999999999999999999999 1", "out of range"},
               {"1 2 3 4", "more than three columns"},
               {"1 2 abc", "weight"},
               {"1", "expected 'src dst [weight]'"},
               {"1,2", "expected 'src dst [weight]'"}};
  for (const auto& c : cases) {
    const std::string path = temp_file("bad_line", "# comment\n% also a comment\n\n1 2\n" + std::string(c.line) + "\n");
    try {
      gyre::io::read_edge_list_serial(path);
      ADD_FAILURE() << "accepted '" << c.line << "'";
    } catch (const gyre::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + ":5: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << e.what();
    }
    ::unlink(path.c_str());
  }
}

TEST(EdgeList, CommentsBlankLinesCrlfAndWeights) {
  const std::string path = temp_file("ok_edges", "# SNAP header\r\n%\r\n\r\n  1\t2\r\n3 4 0.25\n5 6 1e-3   \n7 8");
  const auto e = gyre::io::read_edge_list_serial(path);
  const std::vector<gyre::io::Edge> want = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
  EXPECT_EQ(e, want);
  ::unlink(path.c_str());
}

TEST(EdgeList, MissingFileIsAPlanError) {
  gyre::Environment env(gyre::JobConfig{});
  gyre::io::read_edge_list(env, "/nonexistent/graph.txt").collect();
  EXPECT_THROW(env.run(), gyre::PlanError);
}

TEST(Graphalytics, PropertiesVerticesAndReferenceOutputs) {
  const auto g = gyre::io::read_properties(kData + "/graphalytics/example-directed.properties");
  EXPECT_EQ(g.name, "example-directed");
  EXPECT_TRUE(g.directed);
  EXPECT_EQ(g.vertex_file, kData + "/graphalytics/example-directed.v");
  EXPECT_EQ(g.properties.at("graph.example-directed.pr.damping-factor"), "0.85");
  EXPECT_FALSE(gyre::io::read_properties(kData + "/graphalytics/example-undirected.properties").directed);

  gyre::Environment env(gyre::JobConfig{});
  auto v = gyre::io::read_vertex_file(env, g.vertex_file).collect();
  env.run();
  EXPECT_EQ(v.values().size(), 10u);
  EXPECT_EQ(gyre::io::read_edge_list_serial(g.edge_file).size(), 17u);
  const auto pr = gyre::io::read_id_values(kData + "/graphalytics/example-directed-PR");
  ASSERT_EQ(pr.size(), 10u);
  EXPECT_EQ(pr[0].first, 1u);
  EXPECT_NEAR(pr[0].second, 0.1477629166666667, 1e-15);
}

TEST(Graphalytics, BadPropertiesFileNamesTheProblem) {
  const std::string path = temp_file("bad.properties", "graph.x.vertex-file = x.v\ngraph.x.edge-file = x.e\n");
  try {
    gyre::io::read_properties(path);
    ADD_FAILURE();
  } catch (const gyre::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing 'graph.x.directed'"), std::string::npos) << e.what();
  }
  ::unlink(path.c_str());
}

TEST(Results, WrittenAtomicallyAndReadBack) {
  const std::string path = ::testing::TempDir() + "/ids." + std::to_string(::getpid());
  gyre::io::write_id_values(path, std::vector<std::pair<std::uint64_t, double>>{{1, 0.1}, {5, 2.5e-7}, {10, 3}});
  const auto back = gyre::io::read_id_values(path);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[1].first, 5u);
  EXPECT_EQ(back[1].second, 2.5e-7);
  // Integer values (component labels) keep all 64 bits.
  gyre::io::write_id_values(path, std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 1}, {2, 18446744073709551557u}});
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "1 1\n2 18446744073709551557\n");
  ::unlink(path.c_str());
}

}  // namespace
