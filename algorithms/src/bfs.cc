// Breadth-first search: hop counts from one source (LDBC Graphalytics BFS), direction-optimising
// as in S. Beamer, K. Asanovic, D. Patterson, "Direction-Optimizing Breadth-First Search" (SC
// 2012): top-down supersteps push from the frontier, bottom-up ones let every unreached vertex look
// for a parent in the frontier bitmap, switching on the frontier's and the unvisited edges (see
// frontier.h). One frontier program; the runner does the rest. See paths.h.
#include <limits>
#include <string>

#include "gyre/algorithms/paths.h"
#include "gyre/core/error.h"

namespace gyre::graph {
namespace {

struct BfsProgram {
  using Value = std::int64_t;    // hops from the source; kUnreachable until reached
  using Message = std::int64_t;  // the sender's hops + 1; the smallest wins
  std::uint64_t source;

  std::int64_t init(const VertexInfo& v) const { return v.id == source ? 0 : kUnreachable; }
  std::int64_t message(const std::int64_t& hops, const VertexInfo&) const { return hops + 1; }
  std::int64_t identity() const { return kUnreachable; }
  void combine(std::int64_t& best, const std::int64_t& m) const { best = std::min(best, m); }
  bool apply(std::int64_t& hops, const std::int64_t& m, const VertexInfo&, const StepInfo&) const {
    if (m >= hops) return false;
    hops = m;
    return true;
  }
  // Bottom-up: an unreached vertex takes the level of the first frontier in-neighbour it finds
  // (every frontier vertex is at the same level).
  bool pull_candidate(const std::int64_t& hops) const { return hops == kUnreachable; }
};

}  // namespace

void vp_detail::check_source_found(const JobResult& m, std::uint64_t source, const char* what) {
  if (!m.loops.empty() && m.loops.front().supersteps == 0 && m.loops.front().resumed_from == 0)
    throw PlanError(std::string(what) + ": the source " + std::to_string(source) + " is not a vertex of the graph");
}

Levels bfs(const Graph& g, const PathOptions& opts, const JobConfig& config, Cluster cluster, JobResult* metrics) {
  FrontierOptions fo;
  fo.vertex.name = "bfs";
  fo.vertex.max_supersteps = std::numeric_limits<int>::max();
  fo.vertex.on_superstep = opts.on_superstep;
  fo.vertex.recovery = opts.recovery;
  fo.vertex.plan = opts.plan;
  fo.initially_active = {opts.source};
  fo.direction = opts.direction;
  JobResult m;
  auto out = run_frontier(g, BfsProgram{opts.source}, fo, config, std::move(cluster), &m);
  if (opts.plan == nullptr) vp_detail::check_source_found(m, opts.source, "bfs");
  if (metrics != nullptr) *metrics = std::move(m);
  return out;
}

}  // namespace gyre::graph
