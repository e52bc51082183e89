// Iterations: bulk, delta (workset + solution set) and streaming feedback loops.
//
// Bulk: the body maps the partial solution to the next one, superstep by superstep.
//
//   auto result = gyre::iterate(initial, 100, [](gyre::Stream<P> x, gyre::LoopContext& loop) {
//     auto next = x.map(step);
//     loop.terminate_when_empty(next.filter(not_converged));  // optional
//     return next;
//   });
//
// Delta: the solution set is partitioned and indexed by key; the body joins (or co_groups) the
// workset with it and returns the deltas (which replace solution-set entries between
// supersteps) and the next workset; the loop ends when the workset is empty everywhere.
//
//   auto labels = gyre::iterate_delta(vertices, initial_ws, key, 100,
//       [&](gyre::SolutionSet<V, Key>& ss, gyre::Stream<M> ws, gyre::LoopContext&) {
//         auto delta = ss.co_group<V>(ws, msg_key, improve);
//         return gyre::DeltaStep<V, M>{delta, delta.join(edges, ...)};
//       });
//
// Streaming: the head is an ordinary stream; close_with() connects the feedback; records leave
// through ordinary operators. With bounded input the loop ends when nothing is left in it.
// With an event-time extractor, gyre::iterate(numbers, ts), watermarks go through the loop:
// the loop's watermark never passes a record still in it (see below).
//
//   auto loop = gyre::iterate(numbers);
//   auto next = loop.head().map(step);
//   next.filter(done).collect();
//   loop.close_with(next.filter(not_done));
//
// Every superstep is a global step: all partitions on all ranks finish it before the next
// starts. Streams from outside the loop that the body joins with are loop-invariant: they are
// partitioned and indexed once and kept. Per-superstep figures go to JobResult::loops.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "gyre/core/stream.h"
#include "gyre/iterations/checkpoint.h"
#include "gyre/iterations/controller.h"
#include "gyre/iterations/detail/heads.h"
#include "gyre/iterations/detail/solution_set.h"

namespace gyre {

// Options of an iteration; a plain string names it: iterate(x, 10, body, "pagerank").
struct IterationOptions {
  IterationOptions() = default;
  IterationOptions(std::string n) : name(std::move(n)) {}  // NOLINT(google-explicit-constructor)
  IterationOptions(const char* n) : name(n) {}             // NOLINT(google-explicit-constructor)

  std::string name = "iteration";
  int parallelism = 0;  // 0: the environment's default
  // Called on rank 0 after every superstep (bytes: rank 0's share; the job result has the sum).
  std::function<void(const SuperstepMetrics&)> on_superstep;
  // Head checkpoints / tail logs, and resume (bulk and delta loops; see checkpoint.h).
  LoopCheckpoints checkpoint;
  // Saved with the checkpoints, per partition: what a Rehome needs to place the partition's
  // records elsewhere (e.g. the ids they refer to).
  std::function<std::string(int partition)> checkpoint_context;
  // Streaming loops with event time: a progress round (the loop's watermark moves once per
  // round) starts at most this often.
  std::chrono::microseconds progress_interval{1000};
};

// A global value per superstep (sum, min or max over all records of a stream in the body). In
// user functions, value() is the value after the previous superstep (the identity before the
// first: 0, +inf or -inf); after the job, the value after the last one.
class Aggregator {
 public:
  explicit Aggregator(std::shared_ptr<detail::AggregatorState> s) : s_(std::move(s)) {}
  double value() const { return s_->value.load(std::memory_order_relaxed); }
  const std::string& name() const { return s_->name; }

 private:
  std::shared_ptr<detail::AggregatorState> s_;
};

// The number of the superstep running now (1-based), readable in user functions.
class SuperstepNumber {
 public:
  explicit SuperstepNumber(std::shared_ptr<detail::LoopController> c) : c_(std::move(c)) {}
  int value() const { return c_->superstep_ref().load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<detail::LoopController> c_;
};

// A dense vector summed over the whole loop every superstep (gradients, Hessian-vector products,
// centroid sums), of any length: LoopContext::sum_vector. In user functions, value() is the sum
// after the previous superstep (zeros before the first), the same on every rank: the loop body
// reads it as a broadcast value (the current model, the centroids) without joining records
// with it. After the job, the sum of the last superstep.
//
// The sum has a fixed order: inside a head partition, entries are added in the order they arrive
// from the body's partition of the same index (a forward edge); then the partitions' vectors are
// added in partition order. So the bits are the same at any number of ranks, for a given
// parallelism and body. Cost per superstep: one allreduce of partitions x length values.
class VectorAggregator {
 public:
  explicit VectorAggregator(std::shared_ptr<detail::VectorAggregatorState> s) : s_(std::move(s)) {}
  const std::vector<double>& value() const { return s_->value; }
  std::size_t size() const { return s_->length; }
  const std::string& name() const { return s_->name; }

 private:
  std::shared_ptr<detail::VectorAggregatorState> s_;
};

// Given to bulk and delta bodies: termination criterion, aggregators, convergence.
class LoopContext {
 public:
  LoopContext(Environment* env, int head, std::shared_ptr<detail::LoopController> ctl,
              std::shared_ptr<detail::HeadLayout> layout, int first_free_port)
      : env_(env), head_(head), ctl_(std::move(ctl)), layout_(std::move(layout)), next_port_(first_free_port) {}

  // Bulk only: the loop ends after a superstep in which `s` (computed in the body) is empty on
  // every rank.
  template <Record U>
  void terminate_when_empty(const Stream<U>& s) {
    if (ctl_->kind() != LoopKind::kBulk)
      throw PlanError("iteration '" + ctl_->name() + "': terminate_when_empty is for bulk iterations (a delta "
                      "iteration ends when its workset is empty)");
    if (layout_->criterion_port >= 0)
      throw PlanError("iteration '" + ctl_->name() + "' already has a termination criterion");
    auto counts = s.map([](const U&) { return std::uint64_t{1}; });
    counts.name("termination criterion");
    layout_->criterion_port = next_port_;
    connect(counts);
    ctl_->set_criterion();
  }

  Aggregator sum(std::string name, const Stream<double>& s) { return aggregate(std::move(name), s, detail::ReduceOp::kSum); }
  Aggregator min(std::string name, const Stream<double>& s) { return aggregate(std::move(name), s, detail::ReduceOp::kMin); }
  Aggregator max(std::string name, const Stream<double>& s) { return aggregate(std::move(name), s, detail::ReduceOp::kMax); }

  // A vector of `length` values summed over the entries (index < length) of `entries`, a stream
  // in the body with the loop's parallelism (see VectorAggregator). A body operator typically
  // adds its partition's records into a local vector and emits it once, at superstep end.
  VectorAggregator sum_vector(std::string name, std::size_t length, const Stream<VectorEntry>& entries) {
    const int partitions = OperatorBuilder(*env_, head_).parallelism();
    const int given = OperatorBuilder(*env_, entries.node()).parallelism();
    if (given != partitions)
      throw PlanError("iteration '" + ctl_->name() + "': vector aggregator '" + name + "' reads a stream of " +
                      std::to_string(given) + " partitions; the loop has " +
                      std::to_string(partitions) + " (the sum's order needs a forward edge)");
    auto state = ctl_->add_vector_aggregator(std::move(name), length, partitions);
    layout_->vec_ports.push_back(next_port_);
    connect(entries.forward());
    return VectorAggregator(state);
  }

  // The same, summed in an order that does not depend on the loop's parallelism either: every
  // entry names a slot, index = slot * length + j (j < length, slot < slots), and each slot is
  // filled in one partition only (a chunk of the input that one partition owns, say). Inside the
  // slot, entries are added in arrival order; then the slots are added in slot order. So the
  // bits are the same at any number of partitions and ranks (if two partitions fill one slot,
  // their values are still added, in no fixed order). value() has `length` values. Cost per
  // superstep: one allreduce of slots x length values (each head partition holds as many).
  VectorAggregator sum_vector_slots(std::string name, std::size_t length, std::size_t slots,
                                    const Stream<VectorEntry>& entries) {
    if (slots == 0)
      throw PlanError("iteration '" + ctl_->name() + "': vector aggregator '" + name + "' has 0 slots");
    const int partitions = OperatorBuilder(*env_, head_).parallelism();
    const int given = OperatorBuilder(*env_, entries.node()).parallelism();
    if (given != partitions)
      throw PlanError("iteration '" + ctl_->name() + "': vector aggregator '" + name + "' reads a stream of " +
                      std::to_string(given) + " partitions; the loop has " + std::to_string(partitions) +
                      " (a slot's order needs a forward edge)");
    auto state = ctl_->add_vector_aggregator(std::move(name), length, partitions, slots);
    layout_->vec_ports.push_back(next_port_);
    connect(entries.forward());
    return VectorAggregator(state);
  }

  // Evaluated after every superstep on the global aggregator values (every rank gets the same
  // values, so every rank decides the same): true ends the loop.
  void converge_when(std::function<bool()> converged) { ctl_->set_convergence(std::move(converged)); }

  SuperstepNumber superstep() const { return SuperstepNumber(ctl_); }

  int ports() const { return next_port_; }

 private:
  Aggregator aggregate(std::string name, const Stream<double>& s, detail::ReduceOp op) {
    auto state = ctl_->add_aggregator(std::move(name), op);
    layout_->agg_ports.push_back(next_port_);
    connect(s);
    return Aggregator(state);
  }
  template <class U>
  void connect(const Stream<U>& s) {
    OperatorBuilder(*env_, head_).feedback(s, next_port_++);
  }

  Environment* env_;
  int head_;
  std::shared_ptr<detail::LoopController> ctl_;
  std::shared_ptr<detail::HeadLayout> layout_;
  int next_port_;
};

namespace detail {

// Plan time: checkpoints need records with a codec; resuming reads what to resume from.
template <class... T>
void setup_checkpoints(LoopController& ctl, const IterationOptions& opts, int partitions) {
  if (!opts.checkpoint.storage) return;
  if (!(Encodable<T> && ...))
    throw PlanError("iteration '" + opts.name + "' checkpoints, but its records have no gyre::Codec");
  std::string types;
  ((types += std::string(typeid(T).name()) + "/" + std::to_string(sizeof(T)) + " "), ...);
  ctl.set_checkpoints(opts.checkpoint, types, partitions);
}

// A loop head (its inputs, outputs and factory are added by the caller).
template <class T>
OperatorBuilder head_builder(const Stream<T>& in, const IterationOptions& opts, const char* kind,
                             std::shared_ptr<LoopHook> hook) {
  OperatorBuilder b(in.env(), std::string("iteration head (") + kind + ")");
  b.name(opts.name);
  b.parallelism(opts.parallelism > 0 ? opts.parallelism : in.env().default_parallelism());
  b.loop_head(kind, std::move(hook));
  return b;
}

template <class T>
struct PassThrough final : OneInputOperator<T, T> {
  void process(std::span<const T> in, Output<T>& out) override { out.emit(in); }
};

// The loop's result: a pass-through after the head's exit output (output 1).
template <class T>
Stream<T> exit_node(Environment& env, int head, const std::string& name) {
  OperatorBuilder b(env, "iteration result");
  b.name(name + " result");
  b.parallelism(OperatorBuilder(env, head).parallelism());
  b.input(Stream<T>(&env, head, Partitioning::kForward, 1));
  b.one_input(PassThrough<T>{});
  return b.stream<T>();
}

template <class B, class T>
concept BulkBodyWithContext = requires(B b, Stream<T> s, LoopContext& c) {
  { b(s, c) } -> std::convertible_to<Stream<T>>;
};
template <class B, class T>
concept BulkBodyPlain = requires(B b, Stream<T> s) {
  { b(s) } -> std::convertible_to<Stream<T>>;
};

}  // namespace detail

// ---------------------------------------------------------------- bulk

// body(Stream<T> partial) or body(Stream<T> partial, LoopContext&) returns the next partial
// solution. Runs at most max_supersteps supersteps; also ends early when the partial solution
// becomes empty, the termination criterion is empty, or the convergence test says so. The
// result is the last superstep's partial solution (the initial one if none ran).
// With checkpoints (opts.checkpoint), `rehome` says where records go when the loop resumes with
// another number of partitions (see checkpoint.h).
template <Record T, class Body>
  requires detail::BulkBodyWithContext<Body, T> || detail::BulkBodyPlain<Body, T>
Stream<T> iterate(const Stream<T>& initial, int max_supersteps, Body body, IterationOptions opts = {},
                  Rehome<T> rehome = {}) {
  Environment& env = initial.env();
  auto ctl = std::make_shared<detail::LoopController>(LoopKind::kBulk, opts.name, max_supersteps);
  if (opts.on_superstep) ctl->set_on_superstep(opts.on_superstep);
  auto layout = std::make_shared<detail::HeadLayout>();
  OperatorBuilder hb = detail::head_builder(initial, opts, "bulk", ctl);
  hb.input(initial, 0);
  hb.ports(2);
  hb.output<T>();  // 0: into the body
  hb.output<T>();  // 1: the result
  const int parallelism = hb.parallelism();
  const int head = hb.id();

  LoopContext ctx(&env, head, ctl, layout, 2);
  Stream<T> partial = hb.stream<T>(0);
  Stream<T> next = [&] {
    if constexpr (detail::BulkBodyWithContext<Body, T>) return Stream<T>(body(partial, ctx));
    else return Stream<T>(body(partial));
  }();
  hb.feedback(next, 1);
  detail::setup_checkpoints<T>(*ctl, opts, parallelism);
  const int ports = ctx.ports();
  hb.ports(ports);
  hb.factory([ctl, layout, ports, context = opts.checkpoint_context, rehome](
                 const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<detail::BulkHead<T>>(c, ctl, ports, *layout, static_cast<detail::Input<T>*>(outs[0]),
                                                 static_cast<detail::Input<T>*>(outs[1]), context, rehome);
  });
  return detail::exit_node<T>(env, head, opts.name);
}

// ---------------------------------------------------------------- delta

template <Record S, Record W>
struct DeltaStep {
  Stream<S> delta;         // replaces solution-set entries of the same key
  Stream<W> next_workset;  // the next superstep's workset
};

namespace detail {

// What the solution-set operators share: the key and function, the output, and this partition's
// index (looked up at first use: the loop head makes it when the job is built).
template <class W, class Index, class KF, class F, class Out>
class SolutionSetOp : public OneInputOp<W> {
 public:
  SolutionSetOp(const OpContext& ctx, std::shared_ptr<SolutionSetState<Index>> state, KF key, F f, Input<Out>* out)
      : OneInputOp<W>(ctx), state_(std::move(state)), partition_(ctx.partition), key_(std::move(key)),
        f_(std::move(f)), out_(out, ctx.batch_bytes) {}

 protected:
  Index& index() {
    if (index_ == nullptr) index_ = &state_->get(partition_);
    return *index_;
  }

  std::shared_ptr<SolutionSetState<Index>> state_;
  int partition_;
  Index* index_ = nullptr;
  KF key_;
  F f_;
  OutBuffer<Out> out_;
};

// Joins workset-derived records with the solution set of their partition.
template <class W, class Index, class KF, class F, class Out>
class SolutionJoinOp final : public SolutionSetOp<W, Index, KF, F, Out> {
 public:
  using SolutionSetOp<W, Index, KF, F, Out>::SolutionSetOp;
  void push(std::span<const W> in) override {
    this->records_in += gyre::detail::logical_records(in);
    Index& index = this->index();
    Emit<Out> emit = this->out_.emitter();
    try {
      for (const W& w : in) {
        const auto* s = index.find(this->key_(w));
        if (s != nullptr) this->f_(w, *s, emit);
      }
      emit.flush();
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    this->records_out += emit.emitted_records();
  }
  void on_event(const Event& event) override { this->forward(event, this->out_.out()); }
};

// Groups a superstep's workset-derived records by key and calls f(key, group, entry or nullptr).
template <class W, class Index, class KF, class F, class Out>
class SolutionCoGroupOp final : public SolutionSetOp<W, Index, KF, F, Out> {
  using K = KeyOf<KF, W>;

 public:
  using SolutionSetOp<W, Index, KF, F, Out>::SolutionSetOp;
  void push(std::span<const W> in) override {
    this->records_in += gyre::detail::logical_records(in);
    try {
      for (const W& w : in) {
        const K k = this->key_(w);
        bool inserted = false;
        groups_.find_or_insert(k, hash_key(k), [] { return std::vector<W>{}; }, inserted).push_back(w);
      }
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
  }
  void on_event(const Event& event) override {
    if (event.kind == EventKind::kEnd || event.kind == EventKind::kSuperstepEnd) flush_groups();
    this->forward(event, this->out_.out());
  }

 private:
  void flush_groups() {
    if (groups_.size() == 0) return;
    Index& index = this->index();
    Emit<Out> emit = this->out_.emitter();
    try {
      groups_.for_each([&](const K& k, std::vector<W>& g) {
        this->f_(k, std::span<const W>(g), index.find(k), emit);
      });
      emit.flush();
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    this->records_out += emit.emitted_records();
    groups_.clear();
  }

  FlatMap<K, std::vector<W>> groups_;
};

}  // namespace detail

// The solution set inside a delta iteration's body. It is not a stream: it is read only through
// join and co_group on its key, in the partition that holds the key.
template <Record S, class SKF, SolutionSetIndex kIndex = SolutionSetIndex::kHash>
class SolutionSet {
 public:
  using Key = KeyOf<SKF, S>;
  using Index = std::conditional_t<kIndex == SolutionSetIndex::kDense, detail::DenseSolutionIndex<S, SKF>,
                                   detail::HashSolutionIndex<S, SKF>>;
  using Partitioner = typename Index::Partitioner;

  SolutionSet(Environment* env, int head, int parallelism, std::string name,
              std::shared_ptr<detail::SolutionSetState<Index>> state)
      : env_(env), head_(head), parallelism_(parallelism), name_(std::move(name)), state_(std::move(state)) {}

  // f(const W& w, const S& entry, Emit<Out>& emit) for every w whose key(w) is in the solution set.
  template <Record Out, Record W, class KF, class F>
    requires KeyFunction<KF, W> && std::same_as<KeyOf<KF, W>, Key> &&
             std::invocable<F&, const W&, const S&, Emit<Out>&>
  Stream<Out> join(const Stream<W>& in, KF key, F f) const {
    auto state = state_;
    return add<Out, W, KF>("solution-set join", in, key, [state, key, f](const detail::OpContext& c, detail::Input<Out>* out) {
      return std::make_unique<detail::SolutionJoinOp<W, Index, KF, F, Out>>(c, state, key, f, out);
    });
  }

  // f(const Key& k, span<const W> group, const S* entry_or_null, Emit<Out>& emit) once per key
  // present in the superstep's `in`.
  template <Record Out, Record W, class KF, class F>
    requires KeyFunction<KF, W> && std::same_as<KeyOf<KF, W>, Key> &&
             std::invocable<F&, const Key&, std::span<const W>, const S*, Emit<Out>&>
  Stream<Out> co_group(const Stream<W>& in, KF key, F f) const {
    auto state = state_;
    return add<Out, W, KF>("solution-set co_group", in, key, [state, key, f](const detail::OpContext& c, detail::Input<Out>* out) {
      return std::make_unique<detail::SolutionCoGroupOp<W, Index, KF, F, Out>>(c, state, key, f, out);
    });
  }

 private:
  template <class Out, class W, class KF, class Make>
  Stream<Out> add(std::string kind, const Stream<W>& in, KF key, Make make) const {
    if (in.next_partitioning() != Partitioning::kAuto)
      throw PlanError("the input of a " + kind + " in iteration '" + name_ +
                      "' is partitioned explicitly: it is always partitioned by the solution-set key; "
                      "remove the broadcast()/rebalance()/forward()");
    OperatorBuilder b(*env_, std::move(kind));
    b.parallelism(parallelism_).keyed().solution_set_of(head_);
    b.add_input(OperatorBuilder::key_ref<W, KF, Partitioner>(in, key, Partitioning::kAuto), 0, false);
    b.output<Out>();
    b.factory([make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                  -> std::unique_ptr<detail::NodeRuntime> { return make(c, static_cast<detail::Input<Out>*>(outs[0])); });
    return b.stream<Out>();
  }

  Environment* env_;
  int head_;
  int parallelism_;
  std::string name_;
  std::shared_ptr<detail::SolutionSetState<Index>> state_;
};

// body(SolutionSet<S, KF, kIndex>& ss, Stream<W> workset, LoopContext& loop) -> DeltaStep<S, W>.
// The solution set starts as `solution_set` (one entry per key; a later duplicate replaces an
// earlier one), the workset as `workset`. Runs until the workset is empty on every rank, at most
// max_supersteps supersteps; the result is the final solution set. With kDense the keys must be
// non-negative integers (the index is an array per partition).
// With checkpoints (opts.checkpoint), `rehome_solution` / `rehome_workset` say where records go
// when the loop resumes with another number of partitions (see checkpoint.h).
template <SolutionSetIndex kIndex = SolutionSetIndex::kHash, Record S, Record W, class SKF, class Body>
  requires KeyFunction<SKF, S>
Stream<S> iterate_delta(const Stream<S>& solution_set, const Stream<W>& workset, SKF key, int max_supersteps,
                        Body body, IterationOptions opts = {}, Rehome<S> rehome_solution = {},
                        Rehome<W> rehome_workset = {}) {
  using SS = SolutionSet<S, SKF, kIndex>;
  using Index = typename SS::Index;
  Environment& env = solution_set.env();
  auto ctl = std::make_shared<detail::LoopController>(LoopKind::kDelta, opts.name, max_supersteps);
  if (opts.on_superstep) ctl->set_on_superstep(opts.on_superstep);
  auto layout = std::make_shared<detail::HeadLayout>();
  auto state = std::make_shared<detail::SolutionSetState<Index>>(key);
  using Part = typename SS::Partitioner;
  OperatorBuilder hb = detail::head_builder(workset, opts, "delta", ctl);
  hb.input(workset, 0);
  hb.add_input(OperatorBuilder::key_ref<S, SKF, Part>(solution_set, key, Partitioning::kAuto), 2, false);
  hb.ports(4);
  hb.output<W>();  // 0: into the body, the workset
  hb.output<S>();  // 1: the result, the solution set
  const int parallelism = hb.parallelism();
  const int head = hb.id();

  LoopContext ctx(&env, head, ctl, layout, 4);
  SS ss(&env, head, parallelism, opts.name, state);
  DeltaStep<S, W> step = body(ss, hb.stream<W>(0), ctx);
  hb.feedback(step.next_workset, 1);
  hb.feedback_by_key<S, SKF, Part>(step.delta, key, 3);
  detail::setup_checkpoints<S, W>(*ctl, opts, parallelism);
  const int ports = ctx.ports();
  hb.ports(ports);
  std::function<int(const S&, int)> home = [key](const S& s, int n) {
    return static_cast<int>(SS::Partitioner::of(key(s), static_cast<std::size_t>(n)));
  };
  hb.factory([ctl, layout, ports, state, context = opts.checkpoint_context, home, rehome_solution, rehome_workset](
                 const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<detail::DeltaHead<S, W, Index>>(
        c, ctl, ports, *layout, state, static_cast<detail::Input<W>*>(outs[0]), static_cast<detail::Input<S>*>(outs[1]),
        context, home, rehome_solution, rehome_workset);
  });
  return detail::exit_node<S>(env, head, opts.name);
}

// ---------------------------------------------------------------- streaming

template <Record T>
class StreamingIteration {
 public:
  StreamingIteration(Environment* env, int head) : env_(env), head_(head) {}
  // The loop's records: the input's and the feedback's.
  Stream<T> head() const { return Stream<T>(env_, head_); }
  // Connects the feedback: these records go round again.
  void close_with(const Stream<T>& feedback) {
    if (closed_) throw PlanError("streaming iteration closed twice");
    closed_ = true;
    OperatorBuilder(*env_, head_).feedback(feedback, 1);
  }

 private:
  Environment* env_;
  int head_;
  bool closed_ = false;
};

// A feedback loop over `input`. Records computed from head() circulate until they leave through
// ordinary operators (filter). With bounded input the loop ends once the input ended and no
// record is left in the loop on any rank (distributed termination detection, no timeout); with
// unbounded input it runs until cancelled. Streams computed from the head are unbounded.
template <Record T>
StreamingIteration<T> iterate(const Stream<T>& input, IterationOptions opts = {}) {
  Environment& env = input.env();
  auto ctl = std::make_shared<detail::LoopController>(LoopKind::kStreaming, opts.name, 0);
  if (opts.on_superstep) ctl->set_on_superstep(opts.on_superstep);
  OperatorBuilder hb = detail::head_builder(input, opts, "streaming", ctl);
  hb.input(input, 0);
  hb.ports(2);
  hb.bounded(false);  // records keep coming back: operators in the loop stream
  hb.output<T>();     // 0: into the body (no result output: the loop's records leave through filters)
  hb.factory([ctl](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                 -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<detail::StreamingHead<T>>(c, ctl, static_cast<detail::Input<T>*>(outs[0]));
  });
  return StreamingIteration<T>(&env, hb.id());
}

// A streaming feedback loop whose records carry event time, read by `ts(const T&) ->
// gyre::Timestamp`. The loop tracks progress (see TimedStreamingHead in detail/heads.h): the
// watermark of every stream computed from head() (inside the loop, and on the way out) is
//   min(the smallest timestamp of any record still in the loop - 1, the input's watermark)
// (a watermark t: nothing at or before t follows),
// in rounds: it follows what circulates with a delay of about one round trip through the body
// (plus an allreduce over the ranks), and it never passes a record still in the loop on any
// rank. Idle input partitions do not hold it back (while some partition is live); with bounded
// input the loop ends when it is empty (then +inf). The body must not give a record a timestamp
// below that of the record it was computed from (keeping it, as records going round do, is the
// usual case). Operators in the body see a superstep end per round. Rounds are counted in
// JobResult::loops (supersteps) but not listed one by one, and on_superstep is not called.
template <Record T, class TsFn>
  requires std::invocable<const TsFn&, const T&> &&
           std::convertible_to<std::invoke_result_t<const TsFn&, const T&>, Timestamp>
StreamingIteration<T> iterate(const Stream<T>& input, TsFn ts, IterationOptions opts = {}) {
  Environment& env = input.env();
  auto ctl = std::make_shared<detail::LoopController>(LoopKind::kStreaming, opts.name, 0);
  ctl->set_event_time();
  if (opts.on_superstep) ctl->set_on_superstep(opts.on_superstep);
  OperatorBuilder hb = detail::head_builder(input, opts, "streaming", ctl);
  hb.input(input, 0);
  hb.ports(2);
  hb.bounded(false);
  hb.output<T>();
  hb.factory([ctl, ts, interval = opts.progress_interval](const detail::OpContext& c,
                                                           const std::vector<detail::PortBase*>& outs)
                 -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<detail::TimedStreamingHead<T, TsFn>>(c, ctl, static_cast<detail::Input<T>*>(outs[0]), ts,
                                                                interval);
  });
  return StreamingIteration<T>(&env, hb.id());
}

}  // namespace gyre
