// Community kernels of LDBC Graphalytics on the graph layer: community detection by label
// propagation (CDLP) and the local clustering coefficient (LCC), for directed and undirected
// graphs. A directed graph must be loaded with its out-edges (LoadOptions::out_edges); the
// overloads taking LoadOptions do that.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "gyre/algorithms/graph.h"
#include "gyre/algorithms/vertex_program.h"

namespace gyre::graph {

struct CdlpOptions {
  int iterations = 10;  // exactly this many supersteps (Graphalytics: cdlp.max-iterations)
  std::function<void(const SuperstepMetrics&)> on_superstep;  // rank 0, after each superstep
  std::string* plan = nullptr;  // if set: the plan goes here and nothing runs
  RecoveryOptions recovery;     // checkpoints, resume, in-process retries
};

// (original id, label) per vertex, sorted by id, on rank 0 (empty on other ranks).
using Labels = VertexValues<std::uint64_t>;
// (original id, coefficient) per vertex, sorted by id, on rank 0.
using Coefficients = VertexValues<double>;

// Graphalytics CDLP: every vertex starts with its own id as label; each superstep, all at once,
// a vertex takes the most frequent label among its in- and out-neighbours (in a directed graph a
// neighbour both ways counts twice, a self-loop gives its own label twice; undirected: each
// neighbour once), the smallest such label on ties; a vertex without neighbours keeps its label.
// A neighbourhood iteration (gyre/algorithms/neighbourhood.h): the labels of all vertices are
// broadcast each superstep (8 bytes x N per rank) and each vertex sorts its neighbours' labels.
// In a multigraph (LoadOptions::keep_duplicates) a neighbour counts as often as its edge is
// listed. Metrics: "active vertices" (labels that changed) per superstep.
Labels cdlp(const Graph& g, const CdlpOptions& opts, const JobConfig& config, Cluster cluster,
            JobResult* metrics = nullptr);
Labels cdlp(const LoadOptions& input, const CdlpOptions& opts, const JobConfig& config,
            Cluster cluster, JobResult* metrics = nullptr);

// Graphalytics LCC: N(v) = the distinct in- and out-neighbours of v other than v; LCC(v) = the
// number of arcs (u, w) with u, w in N(v), u != w, over |N(v)| (|N(v)| - 1), 0 when |N(v)| < 2
// (undirected: an edge between neighbours counts both ways; in a multigraph, a listed duplicate
// counts once). Not a loop: one job. Every partition's neighbourhoods N(v) are broadcast once
// and kept once per rank; each rank orients them by degree (u above v if (|N(u)|, u) >
// (|N(v)|, v)); each partition finds the triangles at its vertices' lowest corner (marking
// N+(a), scanning N+(b) for each b in N+(a)) and credits all three corners with the arcs
// between the other two; the rank's sums go to the vertices' owners.
// Memory per rank, besides its own partitions: the whole graph's lists, 8 bytes per undirected
// edge while they arrive and 4 once oriented, plus about 24 + 16 x threads bytes per vertex.
// Metrics: the job's.
Coefficients lcc(const Graph& g, const JobConfig& config, Cluster cluster,
                 JobResult* metrics = nullptr, std::string* plan = nullptr);
Coefficients lcc(const LoadOptions& input, const JobConfig& config, Cluster cluster,
                 JobResult* metrics = nullptr);

// The plans of the jobs above, without running them (`gyre explain`).
std::string explain_cdlp(const CdlpOptions& opts, bool directed, const JobConfig& config,
                         Cluster cluster);
std::string explain_lcc(bool directed, const JobConfig& config, Cluster cluster);

}  // namespace gyre::graph
