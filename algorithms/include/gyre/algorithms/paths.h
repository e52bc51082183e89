// Breadth-first search and single-source shortest paths on the graph layer, with Graphalytics
// semantics. Both are frontier programs (gyre/algorithms/frontier.h) run from the source.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "gyre/algorithms/graph.h"
#include "gyre/algorithms/frontier.h"

namespace gyre::graph {

struct PathOptions {
  std::uint64_t source = 0;  // original id; must be a vertex of the graph
  std::function<void(const SuperstepMetrics&)> on_superstep;  // rank 0, after each superstep
  RecoveryOptions recovery;     // checkpoints, resume, in-process retries
  std::string* plan = nullptr;  // if set: the plan goes here and nothing runs
  Direction direction = Direction::kAuto;  // BFS: push or pull per superstep (Beamer), or one of them only
};

// Hop counts from the source; vertices it does not reach have kUnreachable (Graphalytics).
inline constexpr std::int64_t kUnreachable = std::numeric_limits<std::int64_t>::max();
using Levels = VertexValues<std::int64_t>;
// Shortest-path lengths from the source (sums of edge weights); unreached: +infinity.
using Distances = VertexValues<double>;

// Direction-optimising BFS along out-edges (undirected graphs: along every edge): top-down
// supersteps push from the frontier while it is small, bottom-up supersteps let every unreached
// vertex scan its in-edges for a frontier vertex while it is large. Throws PlanError if the
// source is not a vertex of `g` (on every rank). Metrics: "active vertices" (the frontier),
// "frontier edges", "unvisited edges", "bottom-up" per superstep.
Levels bfs(const Graph& g, const PathOptions& opts, const JobConfig& config, Cluster cluster,
           JobResult* metrics = nullptr);

// SSSP over non-negative edge weights (the edge list's third column; `g` loaded weighted):
// vertices whose distance fell relax their out-edges, nothing else (a label-correcting delta
// iteration). Throws PlanError if the source is not a vertex of `g` or a weight is negative.
Distances sssp(const Graph& g, const PathOptions& opts, const JobConfig& config, Cluster cluster,
               JobResult* metrics = nullptr);

namespace vp_detail {
// Throws PlanError on every rank if the run had an empty initial frontier (the source is not a vertex).
void check_source_found(const JobResult& m, std::uint64_t source, const char* what);
}  // namespace vp_detail

}  // namespace gyre::graph
