// PageRank as a bulk vertex program. See algorithms.h.
#include <cmath>

#include "gyre/algorithms/algorithms.h"
#include "gyre/core/error.h"

namespace gyre::graph {
namespace {

struct PageRankProgram {
  using Value = double;    // the rank
  using Message = double;  // rank / out-degree, summed over in-edges
  double damping;
  double n;

  double init(const VertexInfo&) const { return 1.0 / n; }
  double message(const double& rank, const VertexInfo& v) const {
    return v.out_degree == 0 ? 0.0 : rank / v.out_degree;
  }
  double identity() const { return 0; }
  void combine(double& sum, const double& m) const { sum += m; }
  // The dangling vertices' rank, spread over all vertices.
  double global(const double& rank, const VertexInfo& v) const { return v.out_degree == 0 ? rank : 0.0; }
  bool apply(double& rank, const double& sum, const VertexInfo&, const StepInfo& step) const {
    const double x = ((1.0 - damping) / n + damping * step.global / n) + damping * sum;
    const bool changed = x != rank;
    rank = x;
    return changed;
  }
  double residual(const double& before, const double& after) const { return std::abs(after - before); }
};

}  // namespace

Result pagerank(const Graph& g, const PageRankOptions& opts, const JobConfig& config,
                Cluster cluster, JobResult* metrics) {
  if (!(opts.damping >= 0 && opts.damping <= 1)) throw PlanError("damping must be in [0, 1]");
  if (opts.iterations < 0) throw PlanError("the number of iterations must not be negative");
  VertexOptions vo;
  vo.name = "pagerank";
  vo.max_supersteps = opts.iterations;
  vo.tolerance = opts.tolerance;
  vo.on_superstep = opts.on_superstep;
  vo.plan = opts.plan;
  vo.recovery = opts.recovery;
  const PageRankProgram program{opts.damping, static_cast<double>(g.vertices)};
  return run_bulk(g, program, vo, config, std::move(cluster), metrics);
}

std::string explain_pagerank(const PageRankOptions& opts, const JobConfig& config,
                             Cluster cluster) {
  const Graph g(Environment(config, cluster).default_parallelism());
  std::string plan;
  PageRankOptions o = opts;
  o.plan = &plan;
  pagerank(g, o, config, std::move(cluster));
  return plan;
}

}  // namespace gyre::graph
