// PageRank and connected components on the graph layer, with Graphalytics semantics. Each is a
// vertex program (gyre/algorithms/vertex_program.h) run as a bulk or a delta iteration.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gyre/algorithms/graph.h"
#include "gyre/algorithms/vertex_program.h"

namespace gyre::graph {

struct PageRankOptions {
  double damping = 0.85;
  int iterations = 20;
  double tolerance = 0;  // > 0: stop early once the L1 change of a superstep is below it
  std::function<void(const SuperstepMetrics&)> on_superstep;  // rank 0, after each superstep
  std::string* plan = nullptr;  // if set: the plan goes here and nothing runs (see explain below)
  RecoveryOptions recovery;     // checkpoints, resume, in-process retries
};

// (original id, rank) per vertex, sorted by id, on rank 0 (empty on other ranks).
using Result = VertexValues<double>;
// (original id, component label) per vertex, sorted by id, on rank 0.
using Components = VertexValues<std::uint64_t>;

// Graphalytics PageRank: start at 1/N; each superstep
//   PR(v) = (1 - d) / N + d * (sum over in-edges u->v of PR(u) / outdeg(u) + D / N),
// D = the rank of all dangling vertices (no out-edges). A bulk vertex program: each superstep
// every partition's contributions are broadcast and every partition pulls over its in-edges.
// Metrics: "residual" (the L1 change) and "active vertices" per superstep.
Result pagerank(const Graph& g, const PageRankOptions& opts, const JobConfig& config,
                Cluster cluster, JobResult* metrics = nullptr);

// Weakly connected components: label = the smallest original vertex id of the component. `g`
// must be loaded undirected (both directions); the overloads below do that.
//
// Without checkpoints: union-find (gyre/algorithms/union_find.h), Afforest-style, in one job of
// three stages and no loop: each rank links its vertices' edges into its own forest with oneTBB
// threads (neighbour sampling first, then the remaining edges of the vertices outside the giant
// component), the ranks exchange their forests once, and each labels its vertices. The metrics
// have no loop (JobResult::loops is empty), on_superstep is not called, and a task failure
// reruns the job (recovery.max_restarts).
//
// With checkpoints (recovery.checkpoint.storage): a delta vertex program, min-label propagation
// (vertices whose label fell offer it to their neighbours), a loop that checkpoints and resumes.
// Slower (one superstep per hop of the longest shortest path). Metrics: "active vertices" per
// superstep. Both give the same labels.
Components connected_components(const Graph& g, const JobConfig& config, Cluster cluster,
                                JobResult* metrics = nullptr,
                                std::function<void(const SuperstepMetrics&)> on_superstep = {},
                                const RecoveryOptions& recovery = {});
Components connected_components(const LoadOptions& input, const JobConfig& config,
                                Cluster cluster, JobResult* metrics = nullptr);
// The same over edges in memory (every rank passes the same vector).
Components connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                      Cluster cluster, JobResult* metrics = nullptr);

// The plans of the jobs above, without running them (`gyre explain`): the graph need not be
// loaded, only its partition count and direction matter.
std::string explain_pagerank(const PageRankOptions& opts, const JobConfig& config,
                             Cluster cluster);
std::string explain_connected_components(const JobConfig& config, Cluster cluster);

}  // namespace gyre::graph
