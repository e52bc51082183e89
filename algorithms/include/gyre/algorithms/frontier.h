// Frontier programs: vertex programs that start from a set of active vertices (a traversal's
// source) and run only where something changed. The vocabulary of vertex_program.h, plus
//
//   - an initially active set: in superstep 1 only those vertices send;
//   - messages that depend on the edge: a program may give
//       Message message(const Value&, const VertexInfo&, double weight) const;
//     instead of message(value, info); the graph must then be loaded weighted (the edge list's
//     third column; see LoadOptions::weighted);
//   - push and pull supersteps (direction optimisation, as in Beamer's BFS): a program that gives
//       bool pull_candidate(const Value&) const;  // could v still change? (BFS: not reached yet)
//     may also run bottom-up: every partition's frontier travels as a bitmap to every partition,
//     and each candidate scans its in-edges for a frontier vertex, stopping at the first one. That
//     is only right for programs in which every frontier vertex sends the same message in a
//     superstep and one such message settles a candidate (BFS: level = superstep).
//
// Run as a delta iteration whose workset is the frontier (per partition, the vertices that changed
// in the last superstep) and whose solution set holds every partition's values. A superstep:
//
//   send  (solution-set join of the frontier): push — messages over the frontier's out-edges,
//         combined per destination vertex before they leave the partition, one block per
//         destination partition; or pull — the frontier as a bitmap, to every partition.
//   apply (solution-set co_group): combine the offers per vertex and apply them; or, pulling,
//         each candidate scans its in-edges against the frontier bitmaps (oneTBB inside the
//         partition). The vertices that changed are the next frontier.
//
// Push or pull is decided at the start of every superstep from the previous superstep's global
// aggregators, so every partition and rank decides alike: top-down switches to bottom-up when the
// frontier's out-edges exceed the unvisited vertices' in-edges / alpha, bottom-up goes back when
// the frontier holds fewer than N / beta vertices. Metrics per superstep: "active vertices" (the
// new frontier), "frontier edges" (its out-edges), and for programs with pull_candidate
// "unvisited edges" (in-edges of the candidates) and "bottom-up" (1 if the superstep pulled).
//
// Results are the same whatever the partitions, ranks and push/pull choices, provided combine
// is min-like (the value is then the least fixed point, reached in any order).
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gyre/algorithms/vertex_program.h"

namespace gyre::graph {

template <class P>
concept HasEdgeMessage = requires(const P& p, const typename P::Value& v, const VertexInfo& i, double w) {
  { p.message(v, i, w) } -> std::same_as<typename P::Message>;
};
template <class P>
concept HasVertexMessage = requires(const P& p, const typename P::Value& v, const VertexInfo& i) {
  { p.message(v, i) } -> std::same_as<typename P::Message>;
};
template <class P>
concept HasPull = HasVertexMessage<P> && requires(const P& p, const typename P::Value& v) {
  { p.pull_candidate(v) } -> std::same_as<bool>;
};

template <class P>
concept FrontierProgram =
    std::is_trivially_copyable_v<typename P::Value> && std::is_trivially_copyable_v<typename P::Message> &&
    (HasVertexMessage<P> || HasEdgeMessage<P>) &&
    requires(const P& p, typename P::Value& value, typename P::Message& m, const VertexInfo& info,
             const StepInfo& step) {
      { p.init(info) } -> std::same_as<typename P::Value>;
      { p.identity() } -> std::same_as<typename P::Message>;
      p.combine(m, std::as_const(m));
      { p.apply(value, std::as_const(m), info, step) } -> std::same_as<bool>;
    };

enum class Direction {
  kAuto,  // push or pull per superstep (pull only for programs with pull_candidate)
  kPush,  // top-down only
  kPull,  // bottom-up only (programs with pull_candidate)
};

struct FrontierOptions {
  VertexOptions vertex;  // name, recovery, max_supersteps (at most), on_superstep, plan
  std::vector<std::uint64_t> initially_active;  // original ids; ids that are not vertices are ignored
  Direction direction = Direction::kAuto;
  double alpha = 15;  // push -> pull when frontier edges > unvisited edges / alpha
  double beta = 18;   // pull -> push when the frontier has fewer than N / beta vertices
};

inline constexpr const char* kFrontierEdges = "frontier edges";
inline constexpr const char* kUnvisitedEdges = "unvisited edges";
inline constexpr const char* kBottomUp = "bottom-up";

namespace vp_detail {

// The out-edges of a partition's vertices (undirected graphs: the in-edges, which are then the
// neighbours), with weights if the graph has them.
struct OutEdges {
  const std::uint64_t* offsets = nullptr;
  const std::uint32_t* targets = nullptr;
  const double* weights = nullptr;  // nullptr: unweighted
};
inline OutEdges out_edges(const Graph& g, const Partition& part) {
  if (!g.directed)
    return OutEdges{part.in_offsets.data(), part.in_sources.data(), g.weighted ? part.in_weights.data() : nullptr};
  if (!g.has_out_edges)
    throw PlanError("frontier programs on a directed graph need its out-edges: load it with LoadOptions::out_edges");
  return OutEdges{part.out_offsets.data(), part.out_targets.data(), g.weighted ? part.out_weights.data() : nullptr};
}

enum class ExchangeKind : std::uint32_t { kOffers = 0, kBitmap = 1, kTick = 2 };

// What one partition sends another in a superstep: offers to its vertices (push), the sender's
// frontier as a bitmap over dense ids (pull), or nothing but its presence (a tick: every partition
// then reports its figures for the next decision).
template <class M>
struct Exchange {
  std::uint64_t partition = 0;  // destination
  std::uint32_t source = 0;     // the sending partition
  ExchangeKind kind = ExchangeKind::kTick;
  M message{};                   // kBitmap: the message of every frontier vertex of `source`
  std::uint64_t first_word = 0;  // kBitmap: words[i] holds the bits of dense ids 64 (first_word + i) + b
  std::shared_ptr<const std::vector<Offer<M>>> offers;   // kOffers (local ids of the destination)
  std::shared_ptr<const std::vector<std::uint64_t>> words;  // kBitmap
};

// What the apply step produced in one partition (stays there).
template <class V>
struct Settled {
  std::uint64_t partition = 0;
  std::shared_ptr<std::vector<V>> values;
  std::shared_ptr<std::vector<std::uint32_t>> active;  // the next frontier, local ids ascending
  double frontier_edges = 0;   // out-degrees of `active`
  double unvisited_edges = 0;  // in-degrees of the partition's candidates
  double bottom_up = 0;        // 1: this superstep pulled
};

// The aggregators the decision reads (made after the senders, read while they run).
struct FrontierFigures {
  std::optional<Aggregator> active, frontier_edges, unvisited_edges, bottom_up;
};

// Push or pull in superstep `s`, from the aggregators of superstep s - 1 (the same on every rank).
inline bool pull_superstep(const FrontierOptions& o, const FrontierFigures& f, std::uint64_t n, int s) {
  if (o.direction == Direction::kPush) return false;
  if (o.direction == Direction::kPull) return true;
  if (s <= 1 || !f.unvisited_edges) return false;
  const bool pulled = f.bottom_up->value() > 0.5;
  if (!pulled) return f.frontier_edges->value() > f.unvisited_edges->value() / o.alpha;
  return f.active->value() >= static_cast<double>(n) / o.beta;
}

// The send step (a solution-set join of the frontier block with the partition's values).
template <class P>
class FrontierSender {
  using V = typename P::Value;
  using M = typename P::Message;

 public:
  FrontierSender(const Graph* g, P program, FrontierOptions options, SuperstepNumber step,
                 std::shared_ptr<const FrontierFigures> figures)
      : g_(g), program_(std::move(program)), options_(std::move(options)), step_(std::move(step)),
        figures_(std::move(figures)) {}

  void operator()(const Block<std::uint32_t>& frontier, const Block<V>& entry, Emit<Exchange<M>>& emit) {
    const std::vector<std::uint32_t>& active = *frontier.values;
    if (active.empty()) return;
    const auto p = static_cast<std::uint32_t>(frontier.partition);
    const Partition& part = *g_->part(static_cast<int>(p));
    const std::vector<V>& values = *entry.values;
    const auto parts = static_cast<std::size_t>(g_->partitions());
    if constexpr (HasPull<P>) {
      if (pull_superstep(options_, *figures_, g_->vertices, step_.value())) {
        const std::uint64_t lo = part.first;
        const std::uint64_t first_word = lo / 64;
        const std::uint64_t last_word = (lo + part.ids.size() - 1) / 64;
        auto words = std::make_shared<std::vector<std::uint64_t>>(last_word - first_word + 1, 0);
        for (const std::uint32_t v : active) {
          const std::uint64_t u = lo + v;
          (*words)[u / 64 - first_word] |= std::uint64_t{1} << (u % 64);
        }
        const M m = program_.message(values[active.front()], info(part, active.front()));
        std::shared_ptr<const std::vector<std::uint64_t>> shared = std::move(words);
        for (std::size_t q = 0; q < parts; ++q)
          emit(Exchange<M>{q, p, ExchangeKind::kBitmap, m, first_word, nullptr, shared});
        return;
      }
    }
    push(p, part, values, active, emit);
  }

 private:
  void push(std::uint32_t p, const Partition& part, const std::vector<V>& values,
            const std::vector<std::uint32_t>& active, Emit<Exchange<M>>& emit) {
    const auto parts = static_cast<std::size_t>(g_->partitions());
    const auto& first = g_->first;
    if (best_.empty()) {
      best_.resize(g_->vertices);
      has_.assign(g_->vertices, 0);
      touched_.resize(parts);
    }
    const OutEdges out = out_edges(*g_, part);
    if constexpr (HasEdgeMessage<P>) {
      if (out.weights == nullptr)
        throw PlanError(options_.vertex.name + ": the graph has no edge weights (load it with LoadOptions::weighted)");
    }
    for (const std::uint32_t v : active) {
      const VertexInfo vi = info(part, v);
      [[maybe_unused]] M same{};
      if constexpr (!HasEdgeMessage<P>) same = program_.message(values[v], vi);
      for (std::uint64_t e = out.offsets[v]; e < out.offsets[v + 1]; ++e) {
        const std::uint32_t u = out.targets[e];
        M m;
        if constexpr (HasEdgeMessage<P>) m = program_.message(values[v], vi, out.weights[e]);
        else m = same;
        if (has_[u]) {
          program_.combine(best_[u], m);
          continue;
        }
        has_[u] = 1;
        best_[u] = m;
        const auto q = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin() - 1);
        touched_[q].push_back(u);
      }
    }
    for (std::size_t q = 0; q < parts; ++q) {
      if (touched_[q].empty()) {
        // Every partition reports its figures after a superstep of a direction-optimising run.
        if (HasPull<P> && options_.direction == Direction::kAuto) emit(Exchange<M>{q, p, ExchangeKind::kTick, {}, 0, {}, {}});
        continue;
      }
      auto items = std::make_shared<std::vector<Offer<M>>>();
      items->reserve(touched_[q].size());
      for (const std::uint32_t u : touched_[q]) {
        items->push_back(Offer<M>{static_cast<std::uint32_t>(u - first[q]), best_[u]});
        has_[u] = 0;
      }
      touched_[q].clear();
      emit(Exchange<M>{q, p, ExchangeKind::kOffers, {}, 0, std::move(items), {}});
    }
  }

  const Graph* g_;
  P program_;
  FrontierOptions options_;
  SuperstepNumber step_;
  std::shared_ptr<const FrontierFigures> figures_;
  std::vector<M> best_;            // by dense id
  std::vector<std::uint8_t> has_;  // by dense id
  std::vector<std::vector<std::uint32_t>> touched_;  // per destination partition, dense ids
};

// The apply step (a solution-set co_group of a partition's exchanges with its values).
template <class P>
class FrontierApplier {
  using V = typename P::Value;
  using M = typename P::Message;
  static constexpr std::size_t kChunk = 4096;  // vertices per task of a pull

 public:
  FrontierApplier(const Graph* g, P program, SuperstepNumber step)
      : g_(g), program_(std::move(program)), step_(std::move(step)) {}

  void operator()(const std::uint64_t& q, std::span<const Exchange<M>> group, const Block<V>* current,
                  Emit<Settled<V>>& emit) {
    if (current == nullptr) throw Error("frontier program: no values for partition " + std::to_string(q));
    const Partition& part = *g_->part(static_cast<int>(q));
    std::vector<V>& values = *current->values;
    const std::size_t n = values.size();
    const std::uint64_t* in_off = part.in_offsets.data();
    if (acc_.size() != n) {
      acc_.resize(n);
      has_.assign(n, 0);
      unvisited_edges_ = 0;
      if constexpr (HasPull<P>)
        for (std::size_t v = 0; v < n; ++v)
          if (program_.pull_candidate(values[v])) unvisited_edges_ += static_cast<double>(in_off[v + 1] - in_off[v]);
    }
    order_.clear();
    bool pull = false;
    for (const auto& x : group) {
      order_.push_back(&x);
      pull = pull || x.kind == ExchangeKind::kBitmap;
    }
    std::sort(order_.begin(), order_.end(), [](const auto* a, const auto* b) { return a->source < b->source; });
    const StepInfo step{step_.value(), g_->vertices, 0};
    auto active = std::make_shared<std::vector<std::uint32_t>>();
    double settled_edges = 0;  // in-edges of candidates that stopped being candidates
    // Offers (push).
    for (const auto* x : order_) {
      if (x->kind != ExchangeKind::kOffers) continue;
      for (const Offer<M>& o : *x->offers) {
        if (!has_[o.vertex]) {
          has_[o.vertex] = 1;
          acc_[o.vertex] = o.message;
          touched_.push_back(o.vertex);
        } else {
          program_.combine(acc_[o.vertex], o.message);
        }
      }
    }
    std::sort(touched_.begin(), touched_.end());
    for (const std::uint32_t v : touched_) {
      has_[v] = 0;
      [[maybe_unused]] bool was = false;
      if constexpr (HasPull<P>) was = program_.pull_candidate(values[v]);
      if (program_.apply(values[v], acc_[v], info(part, v), step)) {
        active->push_back(v);
        if constexpr (HasPull<P>)
          if (was && !program_.pull_candidate(values[v])) settled_edges += static_cast<double>(in_off[v + 1] - in_off[v]);
      }
    }
    touched_.clear();
    // Bitmaps (pull).
    if constexpr (HasPull<P>) {
      if (pull) settled_edges += pull_step(part, values, step, *active);
    }
    unvisited_edges_ -= settled_edges;
    double frontier_edges = 0;
    for (const std::uint32_t v : *active) frontier_edges += part.out_degree[v];
    emit(Settled<V>{q, current->values, std::move(active), frontier_edges, unvisited_edges_, pull ? 1.0 : 0.0});
  }

 private:
  // Every candidate scans its in-edges for a vertex in a frontier bitmap and takes the message of
  // the first one found. Appends the vertices that changed (merged into `active` in order);
  // returns the in-edges of the candidates that were settled.
  double pull_step(const Partition& part, std::vector<V>& values, const StepInfo& step,
                   std::vector<std::uint32_t>& active) {
    const auto parts = static_cast<std::size_t>(g_->partitions());
    bits_.assign((g_->vertices + 63) / 64, 0);
    messages_.assign(parts, program_.identity());
    for (const auto* x : order_) {
      if (x->kind != ExchangeKind::kBitmap) continue;
      const std::vector<std::uint64_t>& w = *x->words;
      for (std::size_t i = 0; i < w.size(); ++i) bits_[x->first_word + i] |= w[i];
      messages_[x->source] = x->message;
    }
    const std::size_t n = values.size();
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    if (chunk_active_.size() < chunks) chunk_active_.resize(chunks);
    settled_.assign(chunks, 0.0);
    const std::uint64_t* off = part.in_offsets.data();
    const std::uint32_t* src = part.in_sources.data();
    const std::uint64_t* bits = bits_.data();
    const auto& first = g_->first;
    const P& program = program_;
    V* val = values.data();
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks, 1), [&](const tbb::blocked_range<std::size_t>& r) {
      for (std::size_t c = r.begin(); c < r.end(); ++c) {
        std::vector<std::uint32_t>& mine = chunk_active_[c];
        mine.clear();
        double settled = 0;
        const std::size_t end = std::min(n, (c + 1) * kChunk);
        for (std::size_t v = c * kChunk; v < end; ++v) {
          if (!program.pull_candidate(val[v])) continue;
          for (std::uint64_t e = off[v]; e < off[v + 1]; ++e) {
            const std::uint32_t u = src[e];
            if (((bits[u >> 6] >> (u & 63)) & 1) == 0) continue;
            const auto sp = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin() - 1);
            if (program.apply(val[v], messages_[sp], info(part, v), step)) {
              mine.push_back(static_cast<std::uint32_t>(v));
              if (!program.pull_candidate(val[v])) settled += static_cast<double>(off[v + 1] - off[v]);
            }
            break;
          }
        }
        settled_[c] = settled;
      }
    });
    double settled = 0;
    const std::size_t pushed = active.size();
    for (std::size_t c = 0; c < chunks; ++c) {
      active.insert(active.end(), chunk_active_[c].begin(), chunk_active_[c].end());
      settled += settled_[c];
    }
    if (pushed > 0) {
      std::inplace_merge(active.begin(), active.begin() + static_cast<std::ptrdiff_t>(pushed), active.end());
      active.erase(std::unique(active.begin(), active.end()), active.end());
    }
    return settled;
  }

  const Graph* g_;
  P program_;
  SuperstepNumber step_;
  std::vector<M> acc_;
  std::vector<std::uint8_t> has_;
  std::vector<std::uint32_t> touched_;
  std::vector<const Exchange<M>*> order_;
  double unvisited_edges_ = 0;
  std::vector<std::uint64_t> bits_;  // pull: every frontier, by dense id
  std::vector<M> messages_;          // pull: per source partition
  std::vector<std::vector<std::uint32_t>> chunk_active_;
  std::vector<double> settled_;
};

// Frontier blocks in another partitioning: every saved active vertex that is now in p.
inline Rehome<Block<std::uint32_t>> rehome_frontier(const Graph* g) {
  return [g](int p, int, std::span<const OldPartition<Block<std::uint32_t>>> old) {
    const Partition& part = *g->part(p);
    auto items = std::make_shared<std::vector<std::uint32_t>>();
    for (const auto& o : old)
      for (const Block<std::uint32_t>& b : o.records)
        for (const std::uint32_t i : *b.values) {
          const std::int64_t v = local_of(part, old_id(o.context, i, o.partition));
          if (v >= 0) items->push_back(static_cast<std::uint32_t>(v));
        }
    std::sort(items->begin(), items->end());
    return std::vector<Block<std::uint32_t>>{Block<std::uint32_t>{static_cast<std::uint64_t>(p), {0, 0}, std::move(items)}};
  };
}

}  // namespace vp_detail
}  // namespace gyre::graph

template <class M>
struct gyre::RecordExtent<gyre::graph::vp_detail::Exchange<M>> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::vp_detail::Exchange<M>& x) {
    return x.offers ? x.offers->size() : x.words ? x.words->size() : 0;
  }
  static std::uint64_t bytes(const gyre::graph::vp_detail::Exchange<M>& x) {
    return sizeof(x) + (x.offers ? x.offers->size() * sizeof(gyre::graph::vp_detail::Offer<M>) : 0) +
           (x.words ? x.words->size() * sizeof(std::uint64_t) : 0);
  }
};
template <class V>
struct gyre::RecordExtent<gyre::graph::vp_detail::Settled<V>> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::vp_detail::Settled<V>& s) { return s.active ? s.active->size() : 0; }
  static std::uint64_t bytes(const gyre::graph::vp_detail::Settled<V>& s) {
    return sizeof(s) + records(s) * (sizeof(std::uint32_t) + sizeof(V));
  }
};

template <class M>
struct gyre::Codec<gyre::graph::vp_detail::Exchange<M>> {
  using X = gyre::graph::vp_detail::Exchange<M>;
  using O = gyre::graph::vp_detail::Offer<M>;
  static void encode(const X& x, std::string& out) {
    Codec<std::uint64_t>::encode(x.partition, out);
    Codec<std::uint32_t>::encode(x.source, out);
    Codec<std::uint32_t>::encode(static_cast<std::uint32_t>(x.kind), out);
    Codec<std::vector<M>>::encode(std::vector<M>{x.message}, out);
    Codec<std::uint64_t>::encode(x.first_word, out);
    Codec<std::vector<O>>::encode(x.offers ? *x.offers : std::vector<O>{}, out);
    Codec<std::vector<std::uint64_t>>::encode(x.words ? *x.words : std::vector<std::uint64_t>{}, out);
  }
  static const char* decode(const char* p, const char* end, X& x) {
    std::uint32_t kind = 0;
    std::vector<M> message;
    auto offers = std::make_shared<std::vector<O>>();
    auto words = std::make_shared<std::vector<std::uint64_t>>();
    p = Codec<std::uint64_t>::decode(p, end, x.partition);
    p = Codec<std::uint32_t>::decode(p, end, x.source);
    p = Codec<std::uint32_t>::decode(p, end, kind);
    p = Codec<std::vector<M>>::decode(p, end, message);
    p = Codec<std::uint64_t>::decode(p, end, x.first_word);
    p = Codec<std::vector<O>>::decode(p, end, *offers);
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, *words);
    if (kind > 2 || message.size() != 1) throw gyre::Error("a frontier exchange record is corrupt");
    x.kind = static_cast<gyre::graph::vp_detail::ExchangeKind>(kind);
    x.message = message[0];
    x.offers = std::move(offers);
    x.words = std::move(words);
    return p;
  }
};

namespace gyre::graph {

// Runs `program` from opts.initially_active until no vertex changes (or opts.vertex.max_supersteps).
template <FrontierProgram P>
VertexValues<typename P::Value> run_frontier(const Graph& g, const P& program, const FrontierOptions& opts,
                                             const JobConfig& config, Cluster cluster, JobResult* metrics = nullptr) {
  using V = typename P::Value;
  using M = typename P::Message;
  using vp_detail::Block;
  using Frontier = Block<std::uint32_t>;
  using X = vp_detail::Exchange<M>;
  using S = vp_detail::Settled<V>;
  const VertexOptions& vo = opts.vertex;
  if (vo.max_supersteps < 0) throw PlanError(vo.name + ": the number of supersteps must not be negative");
  if (opts.direction == Direction::kPull && !HasPull<P>)
    throw PlanError(vo.name + ": bottom-up supersteps need a program with pull_candidate()");
  if (!(opts.alpha > 0 && opts.beta > 0)) throw PlanError(vo.name + ": alpha and beta must be positive");
  return vp_detail::recovering<V>(vo, metrics, [&](bool resume, JobResult* jr) {
    Environment env(vp_detail::graph_config(g, config), cluster);
    const Graph* gp = &g;
    auto initial = vp_detail::initial_values(env, gp, program);
    auto sources = std::make_shared<std::vector<std::uint64_t>>(opts.initially_active);
    std::sort(sources->begin(), sources->end());
    auto first = env.generate(static_cast<std::uint64_t>(g.partitions()), [gp, sources](std::uint64_t p) {
      const Partition& part = *gp->part(static_cast<int>(p));
      auto active = std::make_shared<std::vector<std::uint32_t>>();
      for (const std::uint64_t id : *sources) {
        const std::int64_t v = vp_detail::local_of(part, id);
        if (v >= 0) active->push_back(static_cast<std::uint32_t>(v));
      }
      active->erase(std::unique(active->begin(), active->end()), active->end());
      return Frontier{p, {0, 0}, std::move(active)};
    });
    first.name(vo.name + ": initially active");
    auto by_partition = [](const Block<V>& b) { return b.partition; };
    auto result = iterate_delta<SolutionSetIndex::kDense>(
        initial, first, by_partition, vo.max_supersteps,
        [&](auto& solution, Stream<Frontier> frontier, LoopContext& loop) {
          auto figures = std::make_shared<vp_detail::FrontierFigures>();
          auto sent = solution.template join<X>(
              frontier, [](const Frontier& f) { return f.partition; },
              vp_detail::FrontierSender<P>(gp, program, opts, loop.superstep(), figures));
          sent.name(vo.name + ": send (push over out-edges, or the frontier bitmap)");
          auto settled = solution.template co_group<S>(
              sent, [](const X& x) { return x.partition; }, vp_detail::FrontierApplier<P>(gp, program, loop.superstep()));
          settled.name(vo.name + ": combine, apply (or pull over in-edges)");
          figures->active = loop.sum(
              "active vertices",
              settled.map([](const S& s) { return static_cast<double>(s.active->size()); }).name(vo.name + ": active count"));
          figures->frontier_edges =
              loop.sum(kFrontierEdges, settled.map([](const S& s) { return s.frontier_edges; }).name(vo.name + ": frontier edges"));
          if constexpr (HasPull<P>) {
            figures->unvisited_edges = loop.sum(
                kUnvisitedEdges, settled.map([](const S& s) { return s.unvisited_edges; }).name(vo.name + ": unvisited edges"));
            figures->bottom_up =
                loop.max(kBottomUp, settled.map([](const S& s) { return s.bottom_up; }).name(vo.name + ": bottom-up"));
          }
          auto delta = settled.template flat_map<Block<V>>([](const S& s, Emit<Block<V>>& emit) {
            if (!s.active->empty()) emit(Block<V>{s.partition, {0, 0}, s.values});
          });
          delta.name(vo.name + ": solution-set delta");
          auto next = settled.map([](const S& s) { return Frontier{s.partition, {0, 0}, s.active}; });
          next.name(vo.name + ": next frontier");
          return DeltaStep<Block<V>, Frontier>{delta, next};
        },
        vp_detail::iteration_options(vo, gp, resume), vp_detail::rehome_values(gp, program),
        vp_detail::rehome_frontier(gp));
    return vp_detail::collect_values(env, gp, result, vo.plan, jr);
  });
}

}  // namespace gyre::graph
