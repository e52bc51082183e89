// Community detection by label propagation (Graphalytics CDLP) as a neighbourhood iteration.
// See community.h.
#include <algorithm>
#include <cstdint>
#include <span>

#include "gyre/algorithms/community.h"
#include "gyre/algorithms/neighbourhood.h"
#include "gyre/core/error.h"

namespace gyre::graph {
namespace {

struct CdlpProgram {
  using Value = std::uint64_t;  // the label: an original vertex id

  std::uint64_t init(const VertexInfo& v) const { return v.id; }
  // The most frequent label, the smallest on ties: sort, then the longest run (first wins).
  bool update(std::uint64_t& label, std::span<std::uint64_t> labels, const VertexInfo&,
              const StepInfo&) const {
    if (labels.empty()) return false;
    std::sort(labels.begin(), labels.end());
    std::uint64_t best = labels[0];
    std::size_t best_count = 0;
    for (std::size_t i = 0; i < labels.size();) {
      std::size_t j = i + 1;
      while (j < labels.size() && labels[j] == labels[i]) ++j;
      if (j - i > best_count) {
        best_count = j - i;
        best = labels[i];
      }
      i = j;
    }
    const bool changed = best != label;
    label = best;
    return changed;
  }
};

VertexOptions options(const CdlpOptions& opts) {
  if (opts.iterations < 0) throw PlanError("cdlp: the number of iterations must not be negative");
  VertexOptions vo;
  vo.name = "cdlp";
  vo.max_supersteps = opts.iterations;
  vo.on_superstep = opts.on_superstep;
  vo.plan = opts.plan;
  vo.recovery = opts.recovery;
  return vo;
}

}  // namespace

Labels cdlp(const Graph& g, const CdlpOptions& opts, const JobConfig& config, Cluster cluster,
            JobResult* metrics) {
  return run_neighbourhood(g, CdlpProgram{}, Neighbours::kInAndOut, options(opts), config,
                           std::move(cluster), metrics);
}

Labels cdlp(const LoadOptions& input, const CdlpOptions& opts, const JobConfig& config,
            Cluster cluster, JobResult* metrics) {
  LoadOptions in = input;
  in.out_edges = true;
  const auto g = load(in, config, cluster);
  return cdlp(*g, opts, config, std::move(cluster), metrics);
}

std::string explain_cdlp(const CdlpOptions& opts, bool directed, const JobConfig& config,
                         Cluster cluster) {
  Graph g(Environment(config, cluster).default_parallelism());
  g.directed = directed;
  g.has_out_edges = true;
  std::string plan;
  CdlpOptions o = opts;
  o.plan = &plan;
  cdlp(g, o, config, std::move(cluster));
  return plan;
}

}  // namespace gyre::graph
