// A bulk iteration in which a vertex sees every neighbour's value, not a combined message: the
// vocabulary for kernels whose update is not an associative reduction (the most frequent label
// of CDLP, a median, a histogram). Each superstep every partition's values are broadcast as one
// block (kept once per rank, as run_bulk does with messages), and each partition hands every
// vertex the values of its in- and/or out-neighbours in a scratch span it may reorder.
//
// A neighbourhood program is a value type with
//
//   using Value = ...;                    // per vertex, trivially copyable
//   Value init(const VertexInfo&) const;
//   bool update(Value& v, std::span<Value> neighbours, const VertexInfo&, const StepInfo&) const;
//                                          // neighbours: the neighbours' values of the superstep
//                                          // before (see Neighbours); true: v changed
//
// Neighbours::kInAndOut in a directed graph gives the in-neighbours' values, then the
// out-neighbours' (a vertex that is both comes twice; a self-loop gives v's own value twice);
// in an undirected graph every neighbour once (a self-loop once). A directed graph needs its
// out-edges (LoadOptions::out_edges) for kOut and kInAndOut.
//
// Cost per superstep: one copy of all values per rank (8 bytes x N for 64-bit values), and a
// read of each neighbour's value per edge; update() gets a span over a scratch buffer that is
// reused across a chunk of vertices (no allocation per vertex or edge).
//
// Results are deterministic when update() depends only on the multiset of neighbour values (it
// gets them in CSR order: in-edges by the sources' original ids, then out-edges by the targets').
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/algorithms/graph.h"
#include "gyre/algorithms/vertex_program.h"

namespace gyre::graph {

enum class Neighbours { kIn, kOut, kInAndOut };

template <class P>
concept NeighbourhoodProgram = std::is_trivially_copyable_v<typename P::Value> &&
    requires(const P& p, typename P::Value& value, std::span<typename P::Value> neighbours,
             const VertexInfo& info, const StepInfo& step) {
  { p.init(info) } -> std::same_as<typename P::Value>;
  { p.update(value, neighbours, info, step) } -> std::same_as<bool>;
};

namespace nb_detail {

// The out-edges of a partition: its out-edge CSR (directed graphs loaded with out_edges), else
// its in-edges (undirected graphs, where they are the same).
struct OutEdges {
  const std::uint64_t* offsets;
  const std::uint32_t* targets;
};
inline OutEdges out_edges(const Partition& part) {
  return {part.out_offsets_data(), part.out_targets_data()};
}
inline bool has_out_edges(const Graph& g) { return !g.directed || g.has_out_edges; }

// Input 0 every partition's values (broadcast), input 1 this partition's values. At the end of a
// superstep: hands each vertex its neighbours' values, emits the updated values.
template <class P>
class NeighbourhoodOp final : public gyre::detail::NodeRuntime {
  using V = typename P::Value;
  using Block = vp_detail::Block<V>;
  static constexpr std::size_t kChunk = 1024;  // vertices per task

 public:
  NeighbourhoodOp(const gyre::detail::OpContext& c, const Graph* g, P program, Neighbours which,
                  std::shared_ptr<vp_detail::SharedMessages<V>> all, SuperstepNumber step,
                  gyre::detail::Input<Block>* out)
      : g_(g),
        part_(g->part(c.partition)),
        p_(c.partition),
        program_(std::move(program)),
        in_(!g->directed || which != Neighbours::kOut),
        out_edges_(g->directed && which != Neighbours::kIn),
        all_(std::move(all)),
        step_(std::move(step)),
        out_(out),
        all_port_(this),
        values_port_(this) {}
  gyre::detail::PortBase* port(int i) override {
    return i == 0 ? static_cast<gyre::detail::PortBase*>(&all_port_) : &values_port_;
  }

  void on_all(std::span<const Block> in) {
    records_in += gyre::detail::logical_records(in);
    const int s = superstep_ + 1;
    for (const Block& b : in) {
      const auto q = static_cast<std::size_t>(b.partition);
      if (all_->claimed[q].exchange(s, std::memory_order_acq_rel) != s) {
        std::copy(b.values->begin(), b.values->end(),
                  all_->values.begin() + static_cast<std::ptrdiff_t>(g_->first[q]));
        all_->done[q].store(s, std::memory_order_release);
      }
    }
  }
  void on_values(std::span<const Block> in) {
    records_in += gyre::detail::logical_records(in);
    for (const Block& b : in) old_ = b.values;
  }
  void on_superstep_end() {
    if (++marks_ < 2) return;
    marks_ = 0;
    const int s = ++superstep_;
    for (const auto& d : all_->done)
      while (d.load(std::memory_order_acquire) != s) std::this_thread::yield();
    const std::size_t n = part_->ids.size();
    const StepInfo step{step_.value(), g_->vertices, 0};
    auto values = vp_detail::recycle(spare_, n);
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    changed_.assign(chunks, 0);
    const std::uint64_t* in_off = part_->in_offsets.data();
    const std::uint32_t* in_src = part_->in_sources.data();
    const OutEdges oe = out_edges_ ? out_edges(*part_) : OutEdges{nullptr, nullptr};
    const V* all = all_->values.data();
    const V* old = old_->data();
    V* next = values->data();
    const P& program = program_;
    const bool in_edges = in_;
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, chunks, 1),
        [&](const tbb::blocked_range<std::size_t>& r) {
          std::vector<V> scratch;
          for (std::size_t c = r.begin(); c < r.end(); ++c) {
            std::uint64_t changed = 0;
            const std::size_t end = std::min(n, (c + 1) * kChunk);
            for (std::size_t v = c * kChunk; v < end; ++v) {
              scratch.clear();
              if (in_edges)
                for (std::uint64_t e = in_off[v]; e < in_off[v + 1]; ++e)
                  scratch.push_back(all[in_src[e]]);
              if (oe.offsets != nullptr)
                for (std::uint64_t e = oe.offsets[v]; e < oe.offsets[v + 1]; ++e)
                  scratch.push_back(all[oe.targets[e]]);
              V x = old[v];
              if (program.update(x, std::span<V>(scratch), vp_detail::info(*part_, v), step))
                ++changed;
              next[v] = x;
            }
            changed_[c] = changed;
          }
        });
    Block block{static_cast<std::uint64_t>(p_), {0, 0}, std::move(values)};
    for (const std::uint64_t c : changed_) block.stats[1] += static_cast<double>(c);
    old_.reset();
    records_out += n;
    out_->push(std::span<const Block>(&block, 1));
    out_->on_event(Event::superstep_end());
  }
  void on_input_event(const Event& event) {
    if (event.kind == EventKind::kEnd) {
      if (++ended_ == 2) out_->on_event(event);
    } else if (event.kind == EventKind::kSuperstepEnd) {
      on_superstep_end();
    }
  }

 private:
  const Graph* g_;
  const Partition* part_;
  int p_;
  P program_;
  bool in_;
  bool out_edges_;
  std::shared_ptr<vp_detail::SharedMessages<V>> all_;
  SuperstepNumber step_;
  int superstep_ = 0;  // completed supersteps of this job
  gyre::detail::Input<Block>* out_;
  std::vector<std::uint64_t> changed_;
  std::shared_ptr<const std::vector<V>> old_;
  std::shared_ptr<std::vector<V>> spare_;
  int marks_ = 0;
  int ended_ = 0;
  gyre::detail::MemberPort<Block, NeighbourhoodOp, &NeighbourhoodOp::on_all,
                           &NeighbourhoodOp::on_input_event>
      all_port_;
  gyre::detail::MemberPort<Block, NeighbourhoodOp, &NeighbourhoodOp::on_values,
                           &NeighbourhoodOp::on_input_event>
      values_port_;
};

}  // namespace nb_detail

// Runs `program` as a bulk iteration of exactly opts.max_supersteps supersteps (opts.tolerance
// is not used). Checkpoints and resume as run_bulk (opts.recovery; values are re-homed by
// original id). Metrics: "active vertices" (values that changed) per superstep.
template <NeighbourhoodProgram P>
VertexValues<typename P::Value> run_neighbourhood(const Graph& g, const P& program,
                                                  Neighbours which, const VertexOptions& opts,
                                                  const JobConfig& config, Cluster cluster,
                                                  JobResult* metrics = nullptr) {
  using V = typename P::Value;
  using Block = vp_detail::Block<V>;
  if (opts.max_supersteps < 0)
    throw PlanError(opts.name + ": the number of supersteps must not be negative");
  if (which != Neighbours::kIn && !nb_detail::has_out_edges(g))
    throw PlanError(
        opts.name +
        ": needs the out-edges of the directed graph (load it with LoadOptions::out_edges)");
  return vp_detail::recovering<V>(opts, metrics, [&](bool resume, JobResult* jr) {
    Environment env(vp_detail::graph_config(g, config), cluster);
    const Graph* gp = &g;
    auto initial = vp_detail::initial_values(env, gp, program);
    auto result = iterate(
        initial, opts.max_supersteps,
        [&](Stream<Block> values, LoopContext& loop) {
          // (The block itself: its values are shared, not copied, on the way to the broadcast.)
          auto all = values.map([](const Block& b) { return b; });
          all.name(opts.name + ": values to every partition");
          OperatorBuilder op(env, opts.name + ": neighbours' values, update");
          op.parallelism(gp->partitions());
          op.input(all, Partitioning::kBroadcast);
          op.input(values, Partitioning::kForward);
          op.bounded(true);
          op.output<Block>();
          op.factory([gp, program, which,
                      shared = std::make_shared<vp_detail::SharedMessages<V>>(*gp),
                      step = loop.superstep()](const detail::OpContext& oc,
                                               const std::vector<detail::PortBase*>& outs)
                         -> std::unique_ptr<detail::NodeRuntime> {
            return std::make_unique<nb_detail::NeighbourhoodOp<P>>(
                oc, gp, program, which, shared, step, static_cast<detail::Input<Block>*>(outs[0]));
          });
          Stream<Block> next = op.stream<Block>();
          loop.sum("active vertices", next.map([](const Block& b) { return b.stats[1]; })
                                          .name(opts.name + ": changed count"));
          return next;
        },
        vp_detail::iteration_options(opts, gp, resume), vp_detail::rehome_values(gp, program));
    return vp_detail::collect_values(env, gp, result, opts.plan, jr);
  });
}

}  // namespace gyre::graph
