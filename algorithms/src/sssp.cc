// Single-source shortest paths over non-negative edge weights (LDBC Graphalytics SSSP) as a
// label-correcting frontier program: in each superstep only the vertices whose distance fell relax
// their out-edges (messages combined by min per destination before they leave the partition), so
// no superstep touches every edge (unlike plain Bellman-Ford); without delta-stepping's buckets
// (Meyer and Sanders, 2003) a vertex may relax more than once. See paths.h.
#include <cmath>
#include <limits>
#include <string>

#include "gyre/algorithms/paths.h"
#include "gyre/core/error.h"

namespace gyre::graph {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

struct SsspProgram {
  using Value = double;    // the shortest distance found so far
  using Message = double;  // the sender's distance + the edge's weight; the smallest wins
  std::uint64_t source;

  double init(const VertexInfo& v) const { return v.id == source ? 0.0 : kInfinity; }
  double message(const double& d, const VertexInfo& v, double weight) const {
    if (!(weight >= 0))  // (also NaN)
      throw PlanError("sssp: an edge of vertex " + std::to_string(v.id) + " has the weight " + std::to_string(weight) +
                      "; shortest paths need non-negative weights");
    return d + weight;
  }
  double identity() const { return kInfinity; }
  void combine(double& best, const double& m) const { best = std::min(best, m); }
  bool apply(double& d, const double& m, const VertexInfo&, const StepInfo&) const {
    if (!(m < d)) return false;
    d = m;
    return true;
  }
};

}  // namespace

Distances sssp(const Graph& g, const PathOptions& opts, const JobConfig& config, Cluster cluster, JobResult* metrics) {
  FrontierOptions fo;
  fo.vertex.name = "sssp";
  fo.vertex.max_supersteps = std::numeric_limits<int>::max();
  fo.vertex.on_superstep = opts.on_superstep;
  fo.vertex.recovery = opts.recovery;
  fo.vertex.plan = opts.plan;
  fo.initially_active = {opts.source};
  fo.direction = Direction::kPush;
  JobResult m;
  auto out = run_frontier(g, SsspProgram{opts.source}, fo, config, std::move(cluster), &m);
  if (opts.plan == nullptr) vp_detail::check_source_found(m, opts.source, "sssp");
  if (metrics != nullptr) *metrics = std::move(m);
  return out;
}

}  // namespace gyre::graph
