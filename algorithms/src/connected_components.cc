// Weakly connected components as a delta vertex program. See algorithms.h.
#include <algorithm>
#include <limits>

#include "gyre/algorithms/algorithms.h"

namespace gyre::graph {
namespace {

struct ComponentsProgram {
  using Value = std::uint64_t;    // the label: smallest id seen so far
  using Message = std::uint64_t;  // a label offered to a neighbour; the smallest offer wins

  std::uint64_t init(const VertexInfo& v) const { return v.id; }
  std::uint64_t message(const std::uint64_t& label, const VertexInfo&) const { return label; }
  std::uint64_t identity() const { return std::numeric_limits<std::uint64_t>::max(); }
  void combine(std::uint64_t& best, const std::uint64_t& m) const { best = std::min(best, m); }
  bool apply(std::uint64_t& label, const std::uint64_t& offer, const VertexInfo&, const StepInfo&) const {
    if (offer >= label) return false;
    label = offer;
    return true;
  }
};

VertexOptions options() {
  VertexOptions vo;
  vo.name = "connected components";
  vo.max_supersteps = std::numeric_limits<int>::max();
  return vo;
}

}  // namespace

Components connected_components(const Graph& g, const JobConfig& config, Cluster cluster,
                                JobResult* metrics, std::function<void(const SuperstepMetrics&)> on_superstep,
                                const RecoveryOptions& recovery) {
  VertexOptions vo = options();
  vo.on_superstep = std::move(on_superstep);
  vo.recovery = recovery;
  return run_delta(g, ComponentsProgram{}, vo, config, std::move(cluster), metrics);
}

std::string explain_connected_components(const JobConfig& config, Cluster cluster) {
  Graph g(Environment(config, cluster).default_parallelism());
  g.directed = false;
  std::string plan;
  VertexOptions vo = options();
  vo.plan = &plan;
  run_delta(g, ComponentsProgram{}, vo, config, std::move(cluster));
  return plan;
}

Components connected_components(const LoadOptions& input, const JobConfig& config,
                                Cluster cluster, JobResult* metrics) {
  LoadOptions undirected = input;
  undirected.directed = false;  // weak connectivity: every edge both ways
  const auto g = load(undirected, config, cluster);
  return connected_components(*g, config, std::move(cluster), metrics);
}

Components connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                      Cluster cluster, JobResult* metrics) {
  const auto g = load_edges(std::move(edges), false, config, cluster);
  return connected_components(*g, config, std::move(cluster), metrics);
}

}  // namespace gyre::graph
