// Graph file readers on the shared SNAP and Graphalytics data, and on malformed input: damaged
// gzip files, pipes and other non-regular files, bad Graphalytics properties and vertex files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "gyre/algorithms/graph.h"
#include "gyre/core/runtime.h"
#include "gyre/io/graph_files.h"

#include "../support/error_of.h"

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
  // The stem's extension stays at the end (a ".gz" name matters).
  const std::string path = ::testing::TempDir() + "/gyre-" + std::to_string(::getpid()) + "-" + stem;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

using testenv::error_of;

// One gzip member holding `text` (zlib's deflate with a gzip header and trailer).
std::string gzip(const std::string& text) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, text.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// 1,005 vertices 0..1004 in a chain and more: enough text that a cut lands inside the data.
std::string chain_text() {
  std::string t = "# a chain\n";
  for (int i = 0; i < 1004; ++i) t += std::to_string(i) + " " + std::to_string(i + 1) + "\n";
  return t;
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

TEST(EdgeList, ControlCharactersAreEscapedInMessages) {
  static constexpr char kBad[] = "1 2\n3 4\0\x1b[31m\n";  // a NUL and an escape sequence in line 2
  const std::string path = temp_file("nul_line", std::string(kBad, sizeof kBad - 1));
  const std::string err = error_of([&] { gyre::io::read_edge_list_serial(path); });
  EXPECT_NE(err.find(path + ":2: "), std::string::npos) << err;
  EXPECT_NE(err.find("'3 4\\x00\\x1b[31m'"), std::string::npos) << err;
  EXPECT_EQ(err.find('\0'), std::string::npos);
  EXPECT_EQ(err.find('\x1b'), std::string::npos);
  ::unlink(path.c_str());
}

// A UTF-8 byte order mark is skipped at the start of a file (plain and gzip), and is an error
// anywhere else, shown escaped.
TEST(EdgeList, ByteOrderMarkAtTheStartIsSkipped) {
  const std::string bom = "\xef\xbb\xbf";
  const std::vector<gyre::io::Edge> want = {{1, 2}, {3, 4}};
  const std::string plain = temp_file("bom", bom + "1 2\n3 4\n");
  EXPECT_EQ(gyre::io::read_edge_list_serial(plain), want);
  EXPECT_EQ(read_parallel(plain, 2), want);
  const std::string gz = temp_file("bom.gz", gzip(bom + "1 2\n3 4\n"));
  EXPECT_EQ(gyre::io::read_edge_list_serial(gz), want);
  const std::string inner = temp_file("bom_inner", "1 2\n" + bom + "3 4\n");
  const std::string err = error_of([&] { gyre::io::read_edge_list_serial(inner); });
  EXPECT_NE(err.find(inner + ":2: "), std::string::npos) << err;
  EXPECT_NE(err.find("'\\xef\\xbb\\xbf3 4'"), std::string::npos) << err;
  for (const auto& p : {plain, gz, inner}) ::unlink(p.c_str());
}

// A gzip file cut anywhere (inside the header, inside a line, at a line end, inside the
// trailer) is an error naming the file and the bytes it has, never a shorter graph.
TEST(Gzip, TruncatedStreamIsAnError) {
  const std::string text = chain_text();
  const std::string whole = gzip(text);
  ASSERT_GT(whole.size(), 2000u);
  const std::string ok = temp_file("whole.gz", whole);
  EXPECT_EQ(gyre::io::read_edge_list_serial(ok).size(), 1004u);
  for (const std::size_t cut : {std::size_t{5}, std::size_t{1000}, whole.size() / 2, whole.size() - 8,
                                whole.size() - 3, whole.size() - 1}) {
    const std::string path = temp_file("cut.gz", whole.substr(0, cut));
    const std::string want = path + ": truncated gzip stream (ends after " + std::to_string(cut) + " bytes)";
    const std::string err = error_of([&] { gyre::io::read_edge_list_serial(path); });
    EXPECT_NE(err.find(want), std::string::npos) << "cut at " << cut << ": " << err;
    const std::string job = error_of([&] { read_parallel(path, 2); });
    EXPECT_NE(job.find(want), std::string::npos) << "cut at " << cut << ": " << job;
    ::unlink(path.c_str());
  }
  ::unlink(ok.c_str());
}

TEST(Gzip, CorruptDataAndTrailerAreErrors) {
  const std::string whole = gzip(chain_text());
  const struct {
    std::size_t at;
    const char* want;
  } flips[] = {{whole.size() - 8, "incorrect data check"},     // the CRC-32
               {whole.size() - 2, "incorrect length check"},   // ISIZE
               {3, "corrupt gzip data"},                       // header flags: reserved bit
               {whole.size() / 2, "corrupt gzip data"}};        // inside the deflate data
  for (const auto& f : flips) {
    std::string bad = whole;
    bad[f.at] = static_cast<char>(bad[f.at] ^ (f.at == 3 ? 0x80 : 0x5a));
    const std::string path = temp_file("flip.gz", bad);
    const std::string err = error_of([&] { gyre::io::read_edge_list_serial(path); });
    EXPECT_NE(err.find(path + ": corrupt gzip data: "), std::string::npos) << "byte " << f.at << ": " << err;
    EXPECT_NE(err.find(f.want), std::string::npos) << "byte " << f.at << ": " << err;
    ::unlink(path.c_str());
  }
}

// Concatenated members (as `cat a.gz b.gz` makes) are one file; bytes after the last member that
// are not another member, and a .gz that is not gzip at all, are errors.
TEST(Gzip, ConcatenatedMembersTrailingGarbageAndNonGzip) {
  const std::string two = temp_file("two.gz", gzip("1 2\n3 4\n") + gzip("5 6\n"));
  EXPECT_EQ(gyre::io::read_edge_list_serial(two), (std::vector<gyre::io::Edge>{{1, 2}, {3, 4}, {5, 6}}));
  EXPECT_EQ(read_parallel(two, 2).size(), 3u);

  const std::string tail = temp_file("tail.gz", gzip("1 2\n") + "junk");
  std::string err = error_of([&] { gyre::io::read_edge_list_serial(tail); });
  EXPECT_NE(err.find(tail + ": corrupt gzip data: bytes after the end of the gzip stream"), std::string::npos) << err;

  const std::string fake = temp_file("fake.txt.gz", "this is not gzip\n");
  err = error_of([&] { gyre::io::read_edge_list_serial(fake); });
  EXPECT_NE(err.find(fake + ": not gzip data"), std::string::npos) << err;
  err = error_of([&] { read_parallel(fake, 2); });
  EXPECT_NE(err.find(fake + ": not gzip data"), std::string::npos) << err;
  for (const auto& p : {two, tail, fake}) ::unlink(p.c_str());
}

// Pipes (/dev/stdin, <(cmd)), FIFOs and directories are refused by every reader, naming the
// path and saying what to do, instead of an empty graph or a hang.
TEST(NonRegularInput, PipesFifosAndDirectoriesAreRefused) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "1 2\n2 3\n", 8), 8);
  ::close(fds[1]);
  const std::string pipe_path = "/proc/self/fd/" + std::to_string(fds[0]);
  const std::string fifo = ::testing::TempDir() + "/fifo." + std::to_string(::getpid());
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string dir = ::testing::TempDir();

  for (const auto& [path, what] : {std::pair{pipe_path, "is a pipe or FIFO"}, std::pair{fifo, "is a pipe or FIFO"},
                                   std::pair{dir, "is a directory"}}) {
    const std::string want = "'" + path + "' " + what;
    std::string err = error_of([&] { gyre::io::read_edge_list_serial(path); });
    EXPECT_NE(err.find(want), std::string::npos) << err;
    if (std::string(what) != "is a directory") {
      EXPECT_NE(err.find("write the data to a file first"), std::string::npos) << err;
    }
    err = error_of([&] { read_parallel(path, 2); });
    EXPECT_NE(err.find(want), std::string::npos) << err;
    err = error_of([&] { gyre::io::read_properties(path); });
    EXPECT_NE(err.find(want), std::string::npos) << err;
    err = error_of([&] { gyre::io::read_id_values(path); });
    EXPECT_NE(err.find(want), std::string::npos) << err;
    err = error_of([&] {
      gyre::Environment env(gyre::JobConfig{});
      gyre::io::read_vertex_file(env, path).collect();
      env.run();
    });
    EXPECT_NE(err.find(want), std::string::npos) << err;
  }
  ::close(fds[0]);
  ::unlink(fifo.c_str());
  // /dev/null is an empty input; another device (which could stream forever) is not.
  EXPECT_TRUE(gyre::io::read_edge_list_serial("/dev/null").empty());
  EXPECT_NE(error_of([] { gyre::io::read_edge_list_serial("/dev/zero"); }).find("'/dev/zero' is a character device"),
            std::string::npos);
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

// The algorithm parameters, with the key names of the Graphalytics files.
TEST(Graphalytics, ParametersFromThePropertiesFile) {
  const auto p = gyre::io::read_graphalytics_parameters(kData + "/graphalytics/example-directed.properties");
  EXPECT_TRUE(p.directed);
  EXPECT_TRUE(p.weighted);
  EXPECT_EQ(p.pr_damping_factor, 0.85);
  EXPECT_EQ(p.pr_num_iterations, 2u);
  EXPECT_EQ(p.bfs_source_vertex, 1u);
  EXPECT_EQ(p.sssp_source_vertex, 1u);
  EXPECT_EQ(p.sssp_weight_property, "weight");
  EXPECT_EQ(p.cdlp_max_iterations, 2u);
  const auto pr = gyre::io::read_graphalytics_parameters(kData + "/graphalytics/test-pr-undirected.properties");
  EXPECT_FALSE(pr.directed);
  EXPECT_FALSE(pr.weighted);
  EXPECT_EQ(pr.pr_num_iterations, 26u);
  EXPECT_FALSE(pr.bfs_source_vertex.has_value());
  EXPECT_FALSE(pr.cdlp_max_iterations.has_value());
  const auto wcc = gyre::io::read_graphalytics_parameters(kData + "/graphalytics/test-wcc-directed.properties");
  EXPECT_FALSE(wcc.pr_num_iterations.has_value());
  EXPECT_FALSE(wcc.pr_damping_factor.has_value());
  EXPECT_EQ(gyre::io::read_properties(kData + "/graphalytics/test-cdlp-directed.properties").parameters.cdlp_max_iterations, 5u);
}

TEST(Graphalytics, MalformedValuesNameFileLineAndKey) {
  const std::string head = "graph.x.vertex-file = x.v\ngraph.x.edge-file = x.e\ngraph.x.directed = true\n";
  const struct {
    const char* line;  // line 4
    const char* want;
  } cases[] = {{"graph.x.pr.num-iterations = ten", ":4: 'graph.x.pr.num-iterations' is 'ten', expected an integer"},
               {"graph.x.pr.num-iterations = -3", "'graph.x.pr.num-iterations' is '-3'"},
               {"graph.x.pr.num-iterations = 10 iterations", "is '10 iterations'"},
               {"graph.x.pr.damping-factor = 1.5", ":4: 'graph.x.pr.damping-factor' is '1.5', expected a number in [0, 1]"},
               {"graph.x.pr.damping-factor = 0,85", "'graph.x.pr.damping-factor' is '0,85', expected a number"},
               {"graph.x.bfs.source-vertex = one", ":4: 'graph.x.bfs.source-vertex' is 'one'"},
               {"graph.x.sssp.source-vertex =", ":4: 'graph.x.sssp.source-vertex' is ''"},
               {"graph.x.cdlp.max-iterations = 2.5", ":4: 'graph.x.cdlp.max-iterations' is '2.5'"},
               {"graph.x.directed = false", ":4: 'graph.x.directed' is set again (first at line 3)"},
               {"no equals sign \x01", ":4: expected 'key = value': 'no equals sign \\x01'"}};
  for (const auto& c : cases) {
    const std::string path = temp_file("params.properties", head + c.line + "\n");
    const std::string err = error_of([&] { gyre::io::read_properties(path); });
    EXPECT_NE(err.find(path), std::string::npos) << err;
    EXPECT_NE(err.find(c.want), std::string::npos) << c.line << ": " << err;
    ::unlink(path.c_str());
  }
  const std::string bad_flag = temp_file("flag.properties", "graph.x.vertex-file = x.v\ngraph.x.edge-file = x.e\n"
                                                            "graph.x.directed = yes\n");
  EXPECT_NE(error_of([&] { gyre::io::read_properties(bad_flag); }).find(":3: 'graph.x.directed' is 'yes', expected true or false"),
            std::string::npos);
  ::unlink(bad_flag.c_str());
}

// File names are taken from the properties file's directory, unless absolute; a BOM at the start
// of the file is skipped.
TEST(Graphalytics, AbsolutePathsStayAbsolute) {
  const std::string path = temp_file("abs.properties", "\xef\xbb\xbfgraph.x.vertex-file = /data/x.v\n"
                                                       "graph.x.edge-file = x.e\ngraph.x.directed = false\n");
  const auto g = gyre::io::read_properties(path);
  EXPECT_EQ(g.name, "x");
  EXPECT_EQ(g.vertex_file, "/data/x.v");
  EXPECT_EQ(g.edge_file, ::testing::TempDir() + "/x.e");
  EXPECT_FALSE(g.directed);
  ::unlink(path.c_str());
}

// A Graphalytics graph with its files in a fresh directory, loaded through the graph loader.
struct SmallGraphalytics {
  explicit SmallGraphalytics(const std::string& stem, const std::string& v, const std::string& e, bool directed) {
    dir = ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid());
    ::mkdir(dir.c_str(), 0700);
    std::ofstream(dir + "/g.v", std::ios::binary) << v;
    std::ofstream(dir + "/g.e", std::ios::binary) << e;
    std::ofstream(dir + "/g.properties") << "graph.g.vertex-file = g.v\ngraph.g.edge-file = g.e\ngraph.g.directed = "
                                         << (directed ? "true" : "false") << "\n";
  }
  ~SmallGraphalytics() {
    for (const char* f : {"/g.v", "/g.e", "/g.properties"}) ::unlink((dir + f).c_str());
    ::rmdir(dir.c_str());
  }
  std::string load_error(int parallelism) const {
    gyre::graph::LoadOptions in;
    in.path = dir + "/g.properties";
    gyre::JobConfig c;
    c.parallelism = parallelism;
    c.slots = 2;
    return error_of([&] { gyre::graph::load(in, c, gyre::Cluster::local()); });
  }
  std::string dir;
};

// An edge whose endpoint is missing from the .v file: the .e file's line and the edge as written
// (an undirected graph's reversed copy is never what is shown).
TEST(Graphalytics, EdgeWithAVertexMissingFromTheVertexFile) {
  for (const bool directed : {true, false}) {
    const SmallGraphalytics g("missing", "1\n2\n3\n", "1 2\n2 3\n3 99\n1 3\n", directed);
    for (int p : {1, 3}) {
      const std::string err = g.load_error(p);
      EXPECT_NE(err.find(g.dir + "/g.e:3: edge '3 99': vertex 99 is not in the vertex file '" + g.dir + "/g.v'"),
                std::string::npos)
          << (directed ? "directed" : "undirected") << " p" << p << ": " << err;
    }
  }
  const SmallGraphalytics src("missing_src", "1\n2\n", "1 2\n\n77 1\n", false);
  EXPECT_NE(src.load_error(2).find("/g.e:3: edge '77 1': vertex 77"), std::string::npos) << src.load_error(2);
}

TEST(Graphalytics, VertexListedTwiceInTheVertexFile) {
  const SmallGraphalytics g("dup", "1\n2\n# note\n3\n2\n", "1 2\n2 3\n", true);
  for (int p : {1, 2, 4}) {
    const std::string err = g.load_error(p);
    EXPECT_NE(err.find(g.dir + "/g.v:5: vertex 2 is listed again (first at line 2)"), std::string::npos)
        << "p" << p << ": " << err;
  }
  const SmallGraphalytics ok("nodup", "1\n2\n3\n", "1 2\n2 3\n1 2\n", true);
  EXPECT_EQ(ok.load_error(2), "(no error)");
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
