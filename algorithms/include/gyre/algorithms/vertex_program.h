// The vertex-centric vocabulary: a vertex program says what a vertex starts with, what it sends
// along its out-edges, how the messages that reach one vertex combine, and how a vertex applies
// the combined message. gyre runs it on the graph layer as one of two iterations:
//
//   run_bulk  — every vertex sends and applies every superstep (a bulk iteration): each
//               partition's messages are broadcast as one block, and each partition pulls over
//               its in-edge CSR (gather with the combiner, then apply). PageRank.
//   run_delta — only vertices whose value changed send (a delta iteration): their messages are
//               pushed over their edges, combined per destination vertex before they leave the
//               partition, and applied where they arrive; vertices that received nothing cost
//               nothing. The solution set holds every partition's values. Needs out-edges: the
//               graph loaded undirected (its in-edges are then its out-edges), or directed with
//               LoadOptions::out_edges. Connected components.
//
// A program is a value type with
//
//   using Value = ...;    // per vertex, trivially copyable
//   using Message = ...;  // trivially copyable
//   Value init(const VertexInfo&) const;
//   Message message(const Value&, const VertexInfo&) const;  // sent along every out-edge
//   Message identity() const;                                // combine(m, identity()) leaves m
//   void combine(Message& into, const Message& m) const;     // associative and commutative
//   bool apply(Value& v, const Message& combined, const VertexInfo&, const StepInfo&) const;
//                                                            // true: v changed
// and optionally
//   double global(const Value&, const VertexInfo&) const;    // bulk: summed over all vertices
//                                                            // before each superstep: StepInfo::global
//   double residual(const Value& before, const Value& after) const;  // bulk: summed per superstep
//                                                            // as "residual"; VertexOptions::tolerance
//
// Results are deterministic: in-edges are combined in the order of their sources' original ids,
// messages from several partitions in partition order, and global() sums are exact (fixed
// point), so any number of partitions and ranks gives the same bits.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/algorithms/graph.h"
#include "gyre/core/codec.h"
#include "gyre/core/error.h"
#include "gyre/iterations.h"

namespace gyre::graph {

struct VertexInfo {
  std::uint64_t id;          // original id
  std::uint32_t out_degree;  // undirected graphs: the degree
};

struct StepInfo {
  int superstep;           // 1, 2, ...
  std::uint64_t vertices;  // N
  double global;           // sum of global() over the values the messages were made from (0 without it)
};

template <class P>
concept VertexProgram =
    std::is_trivially_copyable_v<typename P::Value> && std::is_trivially_copyable_v<typename P::Message> &&
    requires(const P& p, typename P::Value& value, typename P::Message& m, const VertexInfo& info,
             const StepInfo& step) {
      { p.init(info) } -> std::same_as<typename P::Value>;
      { p.message(std::as_const(value), info) } -> std::same_as<typename P::Message>;
      { p.identity() } -> std::same_as<typename P::Message>;
      p.combine(m, std::as_const(m));
      { p.apply(value, std::as_const(m), info, step) } -> std::same_as<bool>;
    };

template <class P>
concept HasGlobal = requires(const P& p, const typename P::Value& v, const VertexInfo& i) {
  { p.global(v, i) } -> std::convertible_to<double>;
};
template <class P>
concept HasResidual = requires(const P& p, const typename P::Value& v) {
  { p.residual(v, v) } -> std::convertible_to<double>;
};

// Checkpoints of the loop (see gyre/iterations/checkpoint.h) and in-process recovery: after a
// task failure the job runs again from the last checkpoint, at most max_restarts times.
struct RecoveryOptions {
  LoopCheckpoints checkpoint;
  int max_restarts = 0;
};

// LoopMetrics::ended_by of vertex programs (besides the iterations' own, e.g. kEndedMaxSupersteps).
inline constexpr const char* kEndedNoActiveVertices = "converged: no active vertices, no messages left";
inline constexpr const char* kEndedResidualBelowTolerance = "converged: residual below tolerance";

struct VertexOptions {
  std::string name = "vertex program";
  RecoveryOptions recovery;
  int max_supersteps = 20;  // bulk: this many unless converged before; delta: at most this many
  double tolerance = 0;     // bulk, programs with residual(): stop once a superstep's residual < this
  std::function<void(const SuperstepMetrics&)> on_superstep;  // rank 0, after each superstep
  std::string* plan = nullptr;  // if set: the job's plan (Environment::explain) goes here, nothing runs
};

// (original id, value) per vertex, sorted by id, on rank 0 (empty on other ranks).
template <class V>
using VertexValues = std::vector<std::pair<std::uint64_t, V>>;

// An exact sum of doubles: fixed point with 80 fractional bits in 128 bits (|sum| < 2^47),
// so it does not depend on the order of the additions.
class ExactSum {
 public:
  __extension__ typedef __int128 Fixed;            // NOLINT(modernize-use-using)
  __extension__ typedef unsigned __int128 UFixed;  // NOLINT(modernize-use-using)
  // The fixed-point value of v (v * 2^80, truncated toward zero); throws beyond 2^47.
  static Fixed fixed(double v) { return to_fixed(v); }
  void add(double v) {
    if (v != 0) sum_ += to_fixed(v);
  }
  void add(const ExactSum& o) { sum_ += o.sum_; }
  double value() const { return static_cast<double>(sum_) / kScale; }
  // As the bit patterns of two doubles (high and low 64 bits), to travel in a block's stats.
  void put(double* out) const {
    out[0] = std::bit_cast<double>(static_cast<std::uint64_t>(static_cast<UFixed>(sum_) >> 64));
    out[1] = std::bit_cast<double>(static_cast<std::uint64_t>(sum_));
  }
  static ExactSum get(const double* in) {
    ExactSum s;
    const auto hi = static_cast<UFixed>(std::bit_cast<std::uint64_t>(in[0]));
    s.sum_ = static_cast<Fixed>((hi << 64) | std::bit_cast<std::uint64_t>(in[1]));
    return s;
  }

 private:
  static constexpr double kScale = 1208925819614629174706176.0;  // 2^80
  // v * 2^80 truncated toward zero, from v's bits (a shift of the mantissa; the library's
  // double-to-int128 conversion is a call that dominated sums over many vertices).
  static Fixed to_fixed(double v) {
    const auto bits = std::bit_cast<std::uint64_t>(v);
    const int biased = static_cast<int>((bits >> 52) & 0x7ff);
    const std::uint64_t frac = bits & ((std::uint64_t{1} << 52) - 1);
    const std::uint64_t mant = biased == 0 ? frac : frac | (std::uint64_t{1} << 52);
    const int shift = (biased == 0 ? -1074 : biased - 1075) + 80;  // v * 2^80 = mant * 2^shift
    if (shift > 74) throw Error("ExactSum: " + std::to_string(v) + " is not finite or not below 2^47");
    Fixed r = 0;
    if (shift >= 0) r = static_cast<Fixed>(static_cast<UFixed>(mant) << shift);
    else if (shift > -64) r = static_cast<Fixed>(mant >> -shift);
    return (bits >> 63) != 0 ? -r : r;
  }
  Fixed sum_ = 0;
};

namespace vp_detail {

// One partition's values or messages, shared (not copied) between operators in one process.
// stats: a values block carries its superstep's residual and changed count; a message block its
// ExactSum of global(), or (delta) its source partition.
template <class T>
struct Block {
  std::uint64_t partition = 0;
  double stats[2] = {0, 0};
  std::shared_ptr<std::vector<T>> values;
};

template <class M>
struct Offer {
  std::uint32_t vertex;  // local in the destination partition
  M message;
};

inline VertexInfo info(const Partition& part, std::size_t v) { return VertexInfo{part.ids[v], part.out_degree[v]}; }

// A vector of n elements: `spare` itself if nobody else holds it any more (large allocations come
// straight from mmap and would be faulted in again every superstep), else a new one.
template <class T>
std::shared_ptr<std::vector<T>> recycle(std::shared_ptr<std::vector<T>>& spare, std::size_t n) {
  if (!spare || spare.use_count() != 1) spare = std::make_shared<std::vector<T>>();
  spare->resize(n);
  return spare;
}

// Initial values of every partition.
template <class P>
Stream<Block<typename P::Value>> initial_values(Environment& env, const Graph* g, const P& program) {
  return env.generate(static_cast<std::uint64_t>(g->partitions()), [g, program](std::uint64_t p) {
    const Partition& part = *g->part(static_cast<int>(p));
    auto v = std::make_shared<std::vector<typename P::Value>>(part.ids.size());
    for (std::size_t i = 0; i < v->size(); ++i) (*v)[i] = program.init(info(part, i));
    return Block<typename P::Value>{p, {0, 0}, std::move(v)};
  });
}

// Bulk: the messages of all vertices, by dense id, once per rank: every gather on the rank reads
// the same array (one copy in the caches, not one per partition). Each partition's block is
// copied in by the first of the rank's gathers that receives it; the others wait for that copy
// (already running, it needs nothing else to finish) before they gather. Blocks of the next
// superstep can only arrive after every gather of this one is done.
template <class M>
struct SharedMessages {
  explicit SharedMessages(const Graph& g)
      : values(g.vertices), claimed(static_cast<std::size_t>(g.partitions())), done(claimed.size()) {}
  std::vector<M> values;
  std::vector<std::atomic<int>> claimed;  // per partition: the last superstep whose block was claimed
  std::vector<std::atomic<int>> done;     // per partition: the last superstep whose block is in
};

// Bulk: input 0 every partition's messages (broadcast), input 1 this partition's values. At the
// end of a superstep: gathers over the in-edge CSR, applies, emits the new values.
template <class P>
class PullOp final : public gyre::detail::NodeRuntime {
  using V = typename P::Value;
  using M = typename P::Message;
  static constexpr std::size_t kChunk = 2048;  // vertices per task; also the residual's summation unit

 public:
  PullOp(const gyre::detail::OpContext& c, const Graph* g, P program, std::shared_ptr<SharedMessages<M>> messages,
         SuperstepNumber step, gyre::detail::Input<Block<V>>* out)
      : g_(g), part_(g->part(c.partition)), p_(c.partition), program_(std::move(program)),
        messages_(std::move(messages)), step_(std::move(step)), out_(out), messages_port_(this), values_port_(this) {}
  gyre::detail::PortBase* port(int i) override {
    return i == 0 ? static_cast<gyre::detail::PortBase*>(&messages_port_) : &values_port_;
  }

  void on_messages(std::span<const Block<M>> in) {
    records_in += gyre::detail::logical_records(in);
    const int s = superstep_ + 1;
    for (const Block<M>& b : in) {
      const auto q = static_cast<std::size_t>(b.partition);
      if (messages_->claimed[q].exchange(s, std::memory_order_acq_rel) != s) {
        std::copy(b.values->begin(), b.values->end(),
                  messages_->values.begin() + static_cast<std::ptrdiff_t>(g_->first[q]));
        messages_->done[q].store(s, std::memory_order_release);
      }
      global_.add(ExactSum::get(b.stats));
    }
  }
  void on_values(std::span<const Block<V>> in) {
    records_in += gyre::detail::logical_records(in);
    for (const Block<V>& b : in) old_ = b.values;
  }
  void on_superstep_end() {
    if (++marks_ < 2) return;
    marks_ = 0;
    const int s = ++superstep_;
    for (const auto& d : messages_->done)
      while (d.load(std::memory_order_acquire) != s) std::this_thread::yield();
    const std::size_t n = part_->ids.size();
    const StepInfo step{step_.value(), g_->vertices, global_.value()};  // the loop's superstep (a resumed one goes on)
    auto values = recycle(spare_, n);
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    partial_.assign(2 * chunks, 0.0);
    const std::uint64_t* off = part_->in_offsets.data();
    const std::uint32_t* src = part_->in_sources.data();
    const M* msg = messages_->values.data();
    const V* old = old_->data();
    V* out = values->data();
    const P& program = program_;
    // In-degrees are skewed, so partitions are not equal work: the gather is split further, and
    // slots that finished their own partition steal from this one (oneTBB, same arena).
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks, 1), [&](const tbb::blocked_range<std::size_t>& r) {
      for (std::size_t c = r.begin(); c < r.end(); ++c) {
        double residual = 0;
        double changed = 0;
        const std::size_t end = std::min(n, (c + 1) * kChunk);
        for (std::size_t v = c * kChunk; v < end; ++v) {
          M acc = program.identity();
          for (std::uint64_t e = off[v]; e < off[v + 1]; ++e) program.combine(acc, msg[src[e]]);
          V x = old[v];
          if (program.apply(x, acc, info(*part_, v), step)) changed += 1;
          if constexpr (HasResidual<P>) residual += program.residual(old[v], x);
          out[v] = x;
        }
        partial_[2 * c] = residual;
        partial_[2 * c + 1] = changed;
      }
    });
    Block<V> next{static_cast<std::uint64_t>(p_), {0, 0}, std::move(values)};
    for (std::size_t c = 0; c < chunks; ++c) {  // in chunk order: the same sum every run
      next.stats[0] += partial_[2 * c];
      next.stats[1] += partial_[2 * c + 1];
    }
    old_.reset();
    global_ = ExactSum();
    records_out += n;
    out_->push(std::span<const Block<V>>(&next, 1));
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
  std::shared_ptr<SharedMessages<M>> messages_;
  SuperstepNumber step_;
  int superstep_ = 0;  // completed supersteps of this job
  gyre::detail::Input<Block<V>>* out_;
  std::vector<double> partial_;
  std::shared_ptr<const std::vector<V>> old_;
  std::shared_ptr<std::vector<V>> spare_;
  ExactSum global_;
  int marks_ = 0;
  int ended_ = 0;
  gyre::detail::MemberPort<Block<M>, PullOp, &PullOp::on_messages, &PullOp::on_input_event> messages_port_;
  gyre::detail::MemberPort<Block<V>, PullOp, &PullOp::on_values, &PullOp::on_input_event> values_port_;
};

// Delta: messages from the changed vertices of one partition over their edges, combined per
// destination vertex in dense arrays over all vertices, kept across supersteps (reset through
// the touched lists), one block per destination partition.
template <class P>
class Pusher {
  using V = typename P::Value;
  using M = typename P::Message;

 public:
  Pusher(const Graph* g, P program) : g_(g), program_(std::move(program)) {}
  void operator()(int partition, const std::vector<V>& values, std::span<const std::uint32_t> changed,
                  Emit<Block<Offer<M>>>& emit) {
    const auto parts = static_cast<std::size_t>(g_->partitions());
    const auto& first = g_->first;
    if (best_.empty()) {
      best_.resize(g_->vertices);
      has_.assign(g_->vertices, 0);
      touched_.resize(parts);
    }
    const Partition& part = *g_->part(partition);
    const std::uint64_t* off = part.out_offsets_data();  // undirected: the in-edges
    const std::uint32_t* adj = part.out_targets_data();
    for (const std::uint32_t v : changed) {
      const M m = program_.message(values[v], info(part, v));
      for (std::uint64_t e = off[v]; e < off[v + 1]; ++e) {
        const std::uint32_t u = adj[e];
        if (has_[u]) {
          program_.combine(best_[u], m);
          continue;
        }
        has_[u] = 1;
        best_[u] = m;
        // The destination partition, once per destination vertex and superstep.
        const auto q = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin() - 1);
        touched_[q].push_back(u);
      }
    }
    for (std::size_t q = 0; q < parts; ++q) {
      if (touched_[q].empty()) continue;
      auto items = std::make_shared<std::vector<Offer<M>>>();
      items->reserve(touched_[q].size());
      for (const std::uint32_t u : touched_[q]) {
        items->push_back(Offer<M>{static_cast<std::uint32_t>(u - first[q]), best_[u]});
        has_[u] = 0;
      }
      touched_[q].clear();
      emit(Block<Offer<M>>{q, {static_cast<double>(partition), 0}, std::move(items)});
    }
  }
  // Frees the arrays (a Pusher used once).
  void release() {
    std::vector<M>().swap(best_);
    std::vector<std::uint8_t>().swap(has_);
  }

 private:
  const Graph* g_;
  P program_;
  std::vector<M> best_;             // by dense id
  std::vector<std::uint8_t> has_;   // by dense id
  std::vector<std::vector<std::uint32_t>> touched_;  // per destination partition, dense ids
};

// What a delta superstep changed in one partition (stays in its partition: no codec needed).
template <class V>
struct Changed {
  std::uint64_t partition = 0;
  std::shared_ptr<std::vector<V>> values;
  std::shared_ptr<const std::vector<std::uint32_t>> vertices;
};

// Delta: combines a partition's incoming offers per vertex (source partitions in order), applies
// them to the solution set's values in place, and emits the vertices that changed.
template <class P>
class Applier {
  using V = typename P::Value;
  using M = typename P::Message;

 public:
  Applier(const Graph* g, P program, SuperstepNumber step) : g_(g), program_(std::move(program)), step_(std::move(step)) {}
  void operator()(const std::uint64_t& p, std::span<const Block<Offer<M>>> group, const Block<V>* current,
                  Emit<Changed<V>>& emit) {
    const Partition& part = *g_->part(static_cast<int>(p));
    std::vector<V>& values = *current->values;
    if (acc_.size() != values.size()) {
      acc_.resize(values.size());
      has_.assign(values.size(), 0);
    }
    order_.clear();
    for (const auto& b : group) order_.push_back(&b);
    std::sort(order_.begin(), order_.end(), [](const auto* a, const auto* b) { return a->stats[0] < b->stats[0]; });
    for (const auto* b : order_)
      for (const Offer<M>& o : *b->values) {
        if (!has_[o.vertex]) {
          has_[o.vertex] = 1;
          acc_[o.vertex] = o.message;
          touched_.push_back(o.vertex);
        } else {
          program_.combine(acc_[o.vertex], o.message);
        }
      }
    std::sort(touched_.begin(), touched_.end());
    const StepInfo step{step_.value(), g_->vertices, 0};  // the loop's superstep, 1-based
    auto changed = std::make_shared<std::vector<std::uint32_t>>();
    for (const std::uint32_t v : touched_) {
      has_[v] = 0;
      if (program_.apply(values[v], acc_[v], info(part, v), step)) changed->push_back(v);
    }
    touched_.clear();
    if (!changed->empty()) emit(Changed<V>{p, current->values, std::move(changed)});
  }

 private:
  const Graph* g_;
  P program_;
  SuperstepNumber step_;
  std::vector<M> acc_;
  std::vector<std::uint8_t> has_;
  std::vector<std::uint32_t> touched_;
  std::vector<const Block<Offer<M>>*> order_;
};

// Checkpoints: each partition saves its vertex ids, so that its records can be placed in another
// partitioning on resume.
inline std::function<std::string(int)> ids_context(const Graph* g) {
  return [g](int p) {
    const auto& ids = g->part(p)->ids;
    return std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(std::uint64_t));
  };
}
inline std::uint64_t old_id(const std::string* context, std::size_t i, int partition) {
  if (context == nullptr || (i + 1) * sizeof(std::uint64_t) > context->size())
    throw Error("the checkpoint has no vertex ids for its partition " + std::to_string(partition));
  std::uint64_t id = 0;
  std::memcpy(&id, context->data() + i * sizeof(std::uint64_t), sizeof id);
  return id;
}
// The local index of `id` in `part`, or -1.
inline std::int64_t local_of(const Partition& part, std::uint64_t id) {
  const auto it = std::lower_bound(part.ids.begin(), part.ids.end(), id);
  return it != part.ids.end() && *it == id ? it - part.ids.begin() : -1;
}

// Values blocks in another partitioning: partition p's values start as init() (or as they were
// restored so far: tails only hold the partitions that changed) and take every saved vertex of p.
template <class P>
Rehome<Block<typename P::Value>> rehome_values(const Graph* g, const P& program) {
  using V = typename P::Value;
  auto staged = std::make_shared<std::vector<std::shared_ptr<std::vector<V>>>>(static_cast<std::size_t>(g->partitions()));
  return [g, program, staged](int p, int, std::span<const OldPartition<Block<V>>> old) {
    const Partition& part = *g->part(p);
    auto& values = (*staged)[static_cast<std::size_t>(p)];
    if (!values) {
      values = std::make_shared<std::vector<V>>(part.ids.size());
      for (std::size_t v = 0; v < part.ids.size(); ++v) (*values)[v] = program.init(info(part, v));
    }
    for (const auto& o : old)
      for (const Block<V>& b : o.records)
        for (std::size_t i = 0; i < b.values->size(); ++i) {
          const std::int64_t v = local_of(part, old_id(o.context, i, o.partition));
          if (v >= 0) (*values)[static_cast<std::size_t>(v)] = (*b.values)[i];
        }
    return std::vector<Block<V>>{Block<V>{static_cast<std::uint64_t>(p), {0, 0}, values}};
  };
}

// Pending messages in another partitioning: every offer to a vertex of p, in old partition order.
template <class M>
Rehome<Block<Offer<M>>> rehome_offers(const Graph* g) {
  return [g](int p, int, std::span<const OldPartition<Block<Offer<M>>>> old) {
    const Partition& part = *g->part(p);
    auto items = std::make_shared<std::vector<Offer<M>>>();
    for (const auto& o : old)
      for (const Block<Offer<M>>& b : o.records) {
        const auto dest = static_cast<std::size_t>(b.partition);
        if (dest >= old.size()) throw Error("the checkpoint's messages name partition " + std::to_string(dest));
        for (const Offer<M>& offer : *b.values) {
          const std::int64_t v = local_of(part, old_id(old[dest].context, offer.vertex, static_cast<int>(dest)));
          if (v >= 0) items->push_back(Offer<M>{static_cast<std::uint32_t>(v), offer.message});
        }
      }
    std::vector<Block<Offer<M>>> out;
    if (!items->empty()) out.push_back(Block<Offer<M>>{static_cast<std::uint64_t>(p), {0, 0}, std::move(items)});
    return out;
  };
}

template <class V>
VertexValues<V> collect_values(Environment& env, const Graph* g, Stream<Block<V>> values, std::string* plan,
                               JobResult* metrics) {
  auto out = values
                 .template flat_map<std::pair<std::uint64_t, V>>(
                     [g](const Block<V>& b, Emit<std::pair<std::uint64_t, V>>& emit) {
                       const Partition& part = *g->part(static_cast<int>(b.partition));
                       for (std::size_t v = 0; v < part.ids.size(); ++v) emit({part.ids[v], (*b.values)[v]});
                     })
                 .collect(1);
  if (plan != nullptr) {
    *plan = env.explain();
    return {};
  }
  JobResult r = env.run();
  if (metrics != nullptr) *metrics = std::move(r);
  VertexValues<V> result = out.values();
  std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return result;
}

inline IterationOptions iteration_options(const VertexOptions& opts, const Graph* g, bool resume) {
  IterationOptions io(opts.name);
  io.on_superstep = opts.on_superstep;
  io.checkpoint = opts.recovery.checkpoint;
  io.checkpoint.resume = io.checkpoint.resume || resume;
  if (io.checkpoint.storage) io.checkpoint_context = ids_context(g);
  return io;
}

// Runs the job `run(resume)` builds, again from the last checkpoint after a task failure.
template <class V, class Run>
VertexValues<V> recovering(const VertexOptions& opts, JobResult* metrics, Run run) {
  VertexValues<V> out;
  JobResult r = run_with_recovery(opts.plan != nullptr ? 0 : opts.recovery.max_restarts, [&](bool resume) {
    JobResult jr;
    out = run(resume, &jr);
    return jr;
  });
  // The loop's end in the program's words.
  for (auto& l : r.loops) {
    if (l.ended_by == kEndedEmptyDelta) l.ended_by = kEndedNoActiveVertices;
    else if (l.ended_by == kEndedConverged && opts.tolerance > 0) l.ended_by = kEndedResidualBelowTolerance;
  }
  if (metrics != nullptr) *metrics = std::move(r);
  return out;
}

inline JobConfig graph_config(const Graph& g, const JobConfig& config) {
  JobConfig c = config;
  c.parallelism = g.partitions();
  return c;
}

}  // namespace vp_detail
}  // namespace gyre::graph

// A block is one partition's values or messages: the metrics count the values in it (operator
// records, loop sizes) and their bytes (exchanged bytes).
template <class T>
struct gyre::RecordExtent<gyre::graph::vp_detail::Block<T>> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::vp_detail::Block<T>& b) { return b.values ? b.values->size() : 0; }
  static std::uint64_t bytes(const gyre::graph::vp_detail::Block<T>& b) {
    return sizeof(b) + records(b) * sizeof(T);
  }
};
template <class V>
struct gyre::RecordExtent<gyre::graph::vp_detail::Changed<V>> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::vp_detail::Changed<V>& c) {
    return c.vertices ? c.vertices->size() : 0;
  }
  static std::uint64_t bytes(const gyre::graph::vp_detail::Changed<V>& c) {
    return sizeof(c) + records(c) * (sizeof(std::uint32_t) + sizeof(V));
  }
};

template <class T>
struct gyre::Codec<gyre::graph::vp_detail::Block<T>> {
  static void encode(const gyre::graph::vp_detail::Block<T>& b, std::string& out) {
    Codec<std::uint64_t>::encode(b.partition, out);
    Codec<double>::encode(b.stats[0], out);
    Codec<double>::encode(b.stats[1], out);
    Codec<std::vector<T>>::encode(*b.values, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::vp_detail::Block<T>& b) {
    p = Codec<std::uint64_t>::decode(p, end, b.partition);
    p = Codec<double>::decode(p, end, b.stats[0]);
    p = Codec<double>::decode(p, end, b.stats[1]);
    b.values = std::make_shared<std::vector<T>>();
    return Codec<std::vector<T>>::decode(p, end, *b.values);
  }
};

namespace gyre::graph {

// Runs `program` as a bulk iteration: opts.max_supersteps supersteps, or fewer once the residual
// falls below opts.tolerance. Metrics: "active vertices" (values that changed), "residual".
template <VertexProgram P>
VertexValues<typename P::Value> run_bulk(const Graph& g, const P& program, const VertexOptions& opts,
                                         const JobConfig& config, Cluster cluster,
                                         JobResult* metrics = nullptr) {
  using V = typename P::Value;
  using M = typename P::Message;
  using vp_detail::Block;
  if (opts.max_supersteps < 0) throw PlanError(opts.name + ": the number of supersteps must not be negative");
  return vp_detail::recovering<V>(opts, metrics, [&](bool resume, JobResult* jr) {
  Environment env(vp_detail::graph_config(g, config), cluster);
  const Graph* gp = &g;
  auto initial = vp_detail::initial_values(env, gp, program);
  const double tolerance = opts.tolerance;
  auto result = iterate(initial, opts.max_supersteps, [&](Stream<Block<V>> values, LoopContext& loop) {
    auto messages = values.map([gp, program, spare = std::shared_ptr<std::vector<M>>()](const Block<V>& b) mutable {
      const Partition& part = *gp->part(static_cast<int>(b.partition));
      auto out = vp_detail::recycle(spare, part.ids.size());
      const V* in = b.values->data();
      M* m = out->data();
      ExactSum global;
      for (std::size_t v = 0; v < part.ids.size(); ++v) {
        const VertexInfo vi = vp_detail::info(part, v);
        m[v] = program.message(in[v], vi);
        if constexpr (HasGlobal<P>) global.add(program.global(in[v], vi));
      }
      Block<M> block{b.partition, {0, 0}, std::move(out)};
      global.put(block.stats);
      return block;
    });
    messages.name(opts.name + ": messages");
    OperatorBuilder pull(env, opts.name + ": gather over in-edges, apply");
    pull.parallelism(gp->partitions());
    pull.input(messages, Partitioning::kBroadcast);
    pull.input(values, Partitioning::kForward);
    pull.bounded(true);
    pull.output<Block<V>>();
    pull.factory([gp, program, shared = std::make_shared<vp_detail::SharedMessages<M>>(*gp), step = loop.superstep()](
                     const detail::OpContext& oc, const std::vector<detail::PortBase*>& outs)
                     -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<vp_detail::PullOp<P>>(oc, gp, program, shared, step,
                                                    static_cast<detail::Input<Block<V>>*>(outs[0]));
    });
    Stream<Block<V>> next = pull.stream<Block<V>>();
    loop.sum("active vertices", next.map([](const Block<V>& b) { return b.stats[1]; }).name(opts.name + ": changed count"));
    if constexpr (HasResidual<P>) {
      auto residual =
          loop.sum("residual", next.map([](const Block<V>& b) { return b.stats[0]; }).name(opts.name + ": residual"));
      if (tolerance > 0) loop.converge_when([residual, tolerance] { return residual.value() < tolerance; });
    }
    return next;
  }, vp_detail::iteration_options(opts, gp, resume), vp_detail::rehome_values(gp, program));
  return vp_detail::collect_values(env, gp, result, opts.plan, jr);
  });
}

// Runs `program` as a delta iteration: at first every vertex sends; afterwards only those whose
// value changed. Ends when nothing changed (or after opts.max_supersteps). Metrics: "active
// vertices" (values that changed). `g` must have out-edges (undirected, or LoadOptions::out_edges).
template <VertexProgram P>
VertexValues<typename P::Value> run_delta(const Graph& g, const P& program, const VertexOptions& opts,
                                          const JobConfig& config, Cluster cluster,
                                          JobResult* metrics = nullptr) {
  using V = typename P::Value;
  using M = typename P::Message;
  using vp_detail::Block;
  using Offers = Block<vp_detail::Offer<M>>;
  if (g.directed && !g.has_out_edges)
    throw PlanError(opts.name + ": run_delta pushes messages over out-edges: load the graph undirected, or "
                    "directed with LoadOptions::out_edges");
  if (opts.max_supersteps < 0) throw PlanError(opts.name + ": the number of supersteps must not be negative");
  return vp_detail::recovering<V>(opts, metrics, [&](bool resume, JobResult* jr) {
  Environment env(vp_detail::graph_config(g, config), cluster);
  const Graph* gp = &g;
  auto initial = vp_detail::initial_values(env, gp, program);
  // (Each partition gets its own copy of a function, so its own Pusher / Applier state.)
  auto first = initial.template flat_map<Offers>(
      [push = vp_detail::Pusher<P>(gp, program)](const Block<V>& b, Emit<Offers>& emit) mutable {
        std::vector<std::uint32_t> all(b.values->size());
        for (std::size_t v = 0; v < all.size(); ++v) all[v] = static_cast<std::uint32_t>(v);
        push(static_cast<int>(b.partition), *b.values, all, emit);
        push.release();
      });
  first.name(opts.name + ": first messages");
  auto by_partition = [](const Block<V>& b) { return b.partition; };
  auto result = iterate_delta<SolutionSetIndex::kDense>(
      initial, first, by_partition, opts.max_supersteps,
      [&](auto& solution, Stream<Offers> offers, LoopContext& loop) {
        auto changed = solution.template co_group<vp_detail::Changed<V>>(
            offers, [](const Offers& o) { return o.partition; }, vp_detail::Applier<P>(gp, program, loop.superstep()));
        changed.name(opts.name + ": combine, apply");
        loop.sum("active vertices",
                 changed.map([](const vp_detail::Changed<V>& c) { return static_cast<double>(c.vertices->size()); })
                     .name(opts.name + ": changed count"));
        auto delta = changed.map([](const vp_detail::Changed<V>& c) { return Block<V>{c.partition, {0, 0}, c.values}; });
        delta.name(opts.name + ": solution-set delta");
        auto next = changed.template flat_map<Offers>(
            [push = vp_detail::Pusher<P>(gp, program)](const vp_detail::Changed<V>& c, Emit<Offers>& emit) mutable {
              push(static_cast<int>(c.partition), *c.values, *c.vertices, emit);
            });
        next.name(opts.name + ": send from changed vertices");
        return DeltaStep<Block<V>, Offers>{delta, next};
      },
      vp_detail::iteration_options(opts, gp, resume), vp_detail::rehome_values(gp, program),
      vp_detail::rehome_offers<M>(gp));
  return vp_detail::collect_values(env, gp, result, opts.plan, jr);
  });
}

}  // namespace gyre::graph
