// Local clustering coefficient (Graphalytics LCC) in one job: a one-off broadcast of every
// partition's out-adjacency, then a local count per vertex. See community.h.
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "gyre/algorithms/community.h"
#include "gyre/algorithms/neighbourhood.h"
#include "gyre/core/error.h"
#include "gyre/core/operator.h"

namespace gyre::graph::lcc_detail {

// One partition's out-adjacency: the out-neighbours of local vertex i (dense ids, ascending,
// without i itself) are targets[offsets[i] .. offsets[i + 1]).
struct Adjacency {
  std::uint64_t partition = 0;
  std::shared_ptr<const std::vector<std::uint64_t>> offsets;
  std::shared_ptr<const std::vector<std::uint32_t>> targets;
};

}  // namespace gyre::graph::lcc_detail

template <>
struct gyre::RecordExtent<gyre::graph::lcc_detail::Adjacency> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::lcc_detail::Adjacency& a) { return a.targets ? a.targets->size() : 0; }
  static std::uint64_t bytes(const gyre::graph::lcc_detail::Adjacency& a) {
    return sizeof(a) + (a.offsets ? a.offsets->size() * sizeof(std::uint64_t) : 0) + records(a) * sizeof(std::uint32_t);
  }
};

template <>
struct gyre::Codec<gyre::graph::lcc_detail::Adjacency> {
  static void encode(const gyre::graph::lcc_detail::Adjacency& a, std::string& out) {
    Codec<std::uint64_t>::encode(a.partition, out);
    Codec<std::vector<std::uint64_t>>::encode(*a.offsets, out);
    Codec<std::vector<std::uint32_t>>::encode(*a.targets, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::lcc_detail::Adjacency& a) {
    p = Codec<std::uint64_t>::decode(p, end, a.partition);
    auto offsets = std::make_shared<std::vector<std::uint64_t>>();
    auto targets = std::make_shared<std::vector<std::uint32_t>>();
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, *offsets);
    p = Codec<std::vector<std::uint32_t>>::decode(p, end, *targets);
    a.offsets = std::move(offsets);
    a.targets = std::move(targets);
    return p;
  }
};

namespace gyre::graph {
namespace lcc_detail {

using Values = vp_detail::Block<double>;

Adjacency adjacency(const Graph& g, std::uint64_t p) {
  const Partition& part = *g.part(static_cast<int>(p));
  const nb_detail::OutEdges oe = nb_detail::out_edges(part);
  const std::size_t n = part.ids.size();
  auto offsets = std::make_shared<std::vector<std::uint64_t>>(n + 1, 0);
  std::uint64_t* off = offsets->data();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t self = part.first + i;
    std::uint64_t d = 0;
    for (std::uint64_t e = oe.offsets[i]; e < oe.offsets[i + 1]; ++e) d += oe.targets[e] != self ? 1 : 0;
    off[i + 1] = off[i] + d;
  }
  auto targets = std::make_shared<std::vector<std::uint32_t>>(off[n]);
  std::uint32_t* t = targets->data();
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1024), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i < r.end(); ++i) {
      const std::uint64_t self = part.first + i;
      std::uint64_t k = off[i];
      for (std::uint64_t e = oe.offsets[i]; e < oe.offsets[i + 1]; ++e)
        if (oe.targets[e] != self) t[k++] = oe.targets[e];
      std::sort(t + off[i], t + off[i + 1]);
    }
  });
  return Adjacency{p, std::move(offsets), std::move(targets)};
}

// The whole graph's out-adjacency, once per rank: each partition's block is kept by the first
// of the rank's counters that receives it, which also points every vertex of it at its row.
struct Rows {
  explicit Rows(const Graph& g)
      : blocks(static_cast<std::size_t>(g.partitions())), claimed(blocks.size()), done(blocks.size()),
        row(g.vertices), len(g.vertices) {}
  std::vector<Adjacency> blocks;
  std::vector<std::atomic<bool>> claimed;
  std::vector<std::atomic<bool>> done;
  std::vector<const std::uint32_t*> row;  // by dense id
  std::vector<std::uint32_t> len;
  // Per thread: marker per dense id (the stamp of the vertex whose neighbourhood is marked).
  tbb::enumerable_thread_specific<std::vector<std::uint32_t>> marks;
};

class CountOp final : public OneInputOperator<Adjacency, Values> {
 public:
  CountOp(const Graph* g, std::shared_ptr<Rows> rows) : g_(g), rows_(std::move(rows)) {}
  void open(OperatorContext& ctx) override { p_ = ctx.partition(); }

  void process(std::span<const Adjacency> in, Output<Values>&) override {
    Rows& rows = *rows_;
    for (const Adjacency& a : in) {
      const auto q = static_cast<std::size_t>(a.partition);
      if (rows.claimed[q].exchange(true, std::memory_order_acq_rel)) continue;
      rows.blocks[q] = a;
      const std::uint64_t first = g_->first[q];
      const std::size_t n = a.offsets->size() - 1;
      const std::uint64_t* off = a.offsets->data();
      const std::uint32_t* t = a.targets->data();
      for (std::size_t i = 0; i < n; ++i) {
        rows.row[first + i] = t + off[i];
        rows.len[first + i] = static_cast<std::uint32_t>(off[i + 1] - off[i]);
      }
      rows.done[q].store(true, std::memory_order_release);
    }
  }

  void on_end(Output<Values>& out) override {
    Rows& rows = *rows_;
    for (const auto& d : rows.done)
      while (!d.load(std::memory_order_acquire)) std::this_thread::yield();
    const Partition& part = *g_->part(p_);
    const std::size_t n = part.ids.size();
    const std::uint64_t* in_off = part.in_offsets.data();
    const std::uint32_t* in_src = part.in_sources.data();
    const nb_detail::OutEdges oe = g_->directed ? nb_detail::out_edges(part) : nb_detail::OutEdges{nullptr, nullptr};
    const std::uint64_t vertices = g_->vertices;
    auto values = std::make_shared<std::vector<double>>(n, 0.0);
    double* lcc = values->data();
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 256), [&](const tbb::blocked_range<std::size_t>& r) {
      std::vector<std::uint32_t>& mark = rows.marks.local();
      if (mark.size() != vertices) mark.assign(vertices, 0);
      std::vector<std::uint32_t> nb;
      for (std::size_t i = r.begin(); i < r.end(); ++i) {
        const auto self = static_cast<std::uint32_t>(part.first + i);
        const std::uint32_t stamp = self + 1;
        nb.clear();
        auto add = [&](std::uint32_t u) {
          if (u != self && mark[u] != stamp) {
            mark[u] = stamp;
            nb.push_back(u);
          }
        };
        for (std::uint64_t e = in_off[i]; e < in_off[i + 1]; ++e) add(in_src[e]);
        if (oe.offsets != nullptr)
          for (std::uint64_t e = oe.offsets[i]; e < oe.offsets[i + 1]; ++e) add(oe.targets[e]);
        const std::uint64_t d = nb.size();
        if (d < 2) continue;
        std::uint64_t arcs = 0;
        for (const std::uint32_t u : nb) {
          const std::uint32_t* row = rows.row[u];
          const std::uint32_t len = rows.len[u];
          // Scan u's row against the marks, or look N(v) up in it when that is cheaper.
          if (len <= d * static_cast<std::uint64_t>(std::bit_width(len))) {
            for (std::uint32_t k = 0; k < len; ++k) arcs += mark[row[k]] == stamp ? 1 : 0;
          } else {
            for (const std::uint32_t w : nb) arcs += std::binary_search(row, row + len, w) ? 1 : 0;
          }
        }
        lcc[i] = static_cast<double>(arcs) / (static_cast<double>(d) * static_cast<double>(d - 1));
      }
    });
    out.emit(Values{static_cast<std::uint64_t>(p_), {0, 0}, std::move(values)});
  }

 private:
  const Graph* g_;
  std::shared_ptr<Rows> rows_;
  int p_ = 0;
};

}  // namespace lcc_detail

Coefficients lcc(const Graph& g, const JobConfig& config, Cluster cluster, JobResult* metrics, std::string* plan) {
  if (!nb_detail::has_out_edges(g))
    throw PlanError("lcc: needs the out-edges of the directed graph (load it with LoadOptions::out_edges)");
  if (g.vertices >= std::uint64_t{0xffffffff}) throw PlanError("lcc: at most 2^32 - 2 vertices");
  Environment env(vp_detail::graph_config(g, config), std::move(cluster));
  const Graph* gp = &g;
  auto adjacency = env.generate(static_cast<std::uint64_t>(g.partitions()),
                                [gp](std::uint64_t p) { return lcc_detail::adjacency(*gp, p); });
  adjacency.name("lcc: out-adjacency of each partition");
  auto values = adjacency.broadcast().process("lcc: count arcs among neighbours",
                                              lcc_detail::CountOp(gp, std::make_shared<lcc_detail::Rows>(g)));
  return vp_detail::collect_values(env, gp, values, plan, metrics);
}

Coefficients lcc(const LoadOptions& input, const JobConfig& config, Cluster cluster, JobResult* metrics) {
  LoadOptions in = input;
// PRE-MERGE   in.out_edges = true;  
  const auto g = load(in, config, cluster);
  return lcc(*g, config, std::move(cluster), metrics);
}

std::string explain_lcc(bool directed, const JobConfig& config, Cluster cluster) {
  Graph g(Environment(config, cluster).default_parallelism());
  g.directed = directed;
// PRE-MERGE   g.has_out_edges = true;  
  std::string plan;
  lcc(g, config, std::move(cluster), nullptr, &plan);
  return plan;
}

}  // namespace gyre::graph
