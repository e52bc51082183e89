// PageRank and connected components on the graph layer, with Graphalytics semantics.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "gyre/algorithms/graph.h"

namespace gyre::graph {

struct PageRankOptions {
  double damping = 0.85;
  int iterations = 20;
  double tolerance = 0;  // > 0: stop early once the L1 change of a superstep is below it
  std::function<void(const SuperstepMetrics&)> on_superstep;  // rank 0, after each superstep
};

// (original id, value) per vertex, sorted by id, on rank 0 (empty on other ranks).
using Result = std::vector<std::pair<std::uint64_t, double>>;

// Graphalytics PageRank: start at 1/N; each superstep
//   PR(v) = (1 - d) / N + d * (sum over in-edges u->v of PR(u) / outdeg(u) + D / N),
// D = the rank of all dangling vertices (no out-edges). A bulk iteration over rank blocks (one
// record per partition): each superstep broadcasts every partition's contributions and pulls
// over the in-edge CSR.
Result pagerank(const Graph& g, const PageRankOptions& opts, const JobConfig& config,
                std::shared_ptr<detail::Transport> transport, JobResult* metrics = nullptr);

// Weakly connected components: label = the smallest original vertex id of the component. A
// delta iteration over label blocks: the solution set holds each partition's labels, the
// workset the offers (combined per destination vertex) that changed vertices make to their
// neighbours. `g` must be loaded undirected (both directions); the overloads below do that.
Result connected_components(const Graph& g, const JobConfig& config, std::shared_ptr<detail::Transport> transport,
                            JobResult* metrics = nullptr,
                            std::function<void(const SuperstepMetrics&)> on_superstep = {});
Result connected_components(const LoadOptions& input, const JobConfig& config,
                            std::shared_ptr<detail::Transport> transport, JobResult* metrics = nullptr);
// The same over edges in memory (every rank passes the same vector).
Result connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                  std::shared_ptr<detail::Transport> transport, JobResult* metrics = nullptr);

}  // namespace gyre::graph
