// What the graph tests share: their job settings, the Graphalytics validation cases in
// ../shared/datasets/graphalytics, and the comparison of a result with a reference output.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gyre/io/graph_files.h"
#include "test_env.h"

namespace testenv {

// The graph layer wants at least one partition per rank.
inline gyre::JobConfig graph_config(int parallelism) {
  gyre::JobConfig c;
  c.slots = 2;
  c.parallelism = std::max(parallelism, ranks());
  return c;
}

#ifdef GYRE_SHARED_DATASETS  // (tests/CMakeLists.txt defines it for the tests that read the datasets)
inline const std::string kGraphalyticsDir = std::string(GYRE_SHARED_DATASETS) + "/graphalytics/";

struct GraphalyticsCase {
  std::string properties;  // relative to kGraphalyticsDir
  std::string reference;   // the reference output's full path
};

// Every validation graph that has a reference output for `algo` (BFS, CDLP, LCC, PR, SSSP, WCC).
inline std::vector<GraphalyticsCase> graphalytics_cases(const std::string& algo) {
  const char* graphs[] = {"example-directed",     "example-undirected",   "test-cdlp-directed",
                          "test-cdlp-undirected", "test-lcc-directed",    "test-lcc-undirected",
                          "test-bfs-directed",    "test-bfs-undirected",  "test-pr-directed",
                          "test-pr-undirected",   "test-wcc-directed",    "test-wcc-undirected",
                          "test-sssp-directed",   "test-sssp-undirected", "p2p-31/p2p-31"};
  std::vector<GraphalyticsCase> out;
  for (const char* g : graphs) {
    const std::string ref = kGraphalyticsDir + g + "-" + algo;
    if (std::ifstream(ref).good()) out.push_back({std::string(g) + ".properties", ref});
  }
  return out;
}

// Checks a result against a reference output: on rank 0 (the result sorted by id) the same ids,
// and ok(value, reference value) for each, reporting the first five mismatches; on other ranks
// an empty result. `what` names the value in messages.
template <class V, class Ok>
void expect_matches_reference(const std::vector<std::pair<std::uint64_t, V>>& got, const GraphalyticsCase& c,
                              const std::string& what, Ok ok) {
  if (rank() != 0) {
    EXPECT_TRUE(got.empty());
    return;
  }
  auto want = gyre::io::read_id_values(c.reference);
  std::sort(want.begin(), want.end());
  ASSERT_EQ(got.size(), want.size()) << c.properties;
  int bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].first, want[i].first) << c.properties;
    if (!ok(got[i].second, want[i].second) && bad++ < 5)
      ADD_FAILURE() << c.properties << ": vertex " << got[i].first << " " << what << " " << got[i].second
                    << ", reference " << want[i].second;
  }
  EXPECT_EQ(bad, 0) << c.properties;
}
#endif

}  // namespace testenv
