// The user-facing API: an Environment builds a plan of typed Streams; run() executes it.
//
//   gyre::Environment env;
//   auto counts = env.read_text_file("words.txt")
//                     .flat_map<std::string>([](const std::string& line, auto& emit) { ... })
//                     .map([](const std::string& w) { return std::pair{w, 1L}; })
//                     .key_by([](const auto& p) { return p.first; })
//                     .reduce([](const auto& a, const auto& b) { return std::pair{a.first, a.second + b.second}; })
//                     .collect();
//   env.run();
//   for (auto& [word, n] : counts.values()) ...
//
// A batch is a bounded stream: the same operators run on bounded sources (collections,
// generators with a count, files) and unbounded ones (generate_unbounded). Operators on bounded
// inputs that must see everything (reduce, join, co_group) emit at end of input; reduce and
// aggregate on an unbounded input emit the new value of each updated key as batches go by.
// User functions are copied into every partition; they need not be thread-safe, but a sink
// function runs concurrently in different partitions unless its parallelism is 1.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gyre/core/cluster.h"
#include "gyre/core/codec.h"
#include "gyre/core/concepts.h"
#include "gyre/core/config.h"
#include "gyre/core/fusion.h"
#include "gyre/core/operator.h"
#include "gyre/core/operators.h"
#include "gyre/core/plan.h"
#include "gyre/core/runtime.h"
#include "gyre/core/text_io.h"

namespace gyre {

template <Record T>
class Stream;
template <Record T, class KF>
class KeyedStream;
template <Record In, Record T, class K>
class FusedStream;
template <Record A, Record B>
class ConnectedStreams;

// What collect() returns; its values are there once the job has run.
template <class T>
class Collected {
 public:
  explicit Collected(std::shared_ptr<detail::CollectState<T>> state) : state_(std::move(state)) {}
  // Every record the sink received, partition 0 first; empty if the job failed.
  std::vector<T> values() const { return state_->values(); }

 private:
  std::shared_ptr<detail::CollectState<T>> state_;
};

class Environment {
 public:
  // In this process alone.
  explicit Environment(JobConfig config = {});
  // On `cluster`: this process, or every rank of an MPI job (gyre::mpi::Session::cluster()).
  Environment(JobConfig config, Cluster cluster);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  const JobConfig& config() const { return config_; }
  int default_parallelism() const;
  int rank() const;
  int num_ranks() const;

  // Bounded sources. A collection is split evenly over the source's partitions; the shared_ptr
  // form reads the vector in place (no copy), so several jobs can share one large input.
  template <Record T>
  Stream<T> from_collection(std::vector<T> data);
  template <Record T>
  Stream<T> from_collection(std::shared_ptr<const std::vector<T>> data);
  template <class F>
    requires GeneratorFunction<F>
  Stream<MapResult<F, std::uint64_t>> generate(std::uint64_t count, F fn);
  Stream<std::string> read_text_file(std::string path);

  // Unbounded source: fn(SourceContext&) -> std::optional<T>, called in every partition until
  // the job is cancelled; nullopt means nothing now.
  template <Record T, class F>
    requires UnboundedSourceFunction<F, T>
  Stream<T> generate_unbounded(F fn);

  // A source written as a gyre::Source<T> (operator.h): `p` is a prototype (copied into every
  // partition) or a callable returning std::unique_ptr to one. Unbounded unless `bounded`.
  template <class P>
    requires SourceFor<P>
  Stream<typename detail::made_by_t<P>::output_type> source(std::string name, P p, bool bounded = false);

  // Validates the plan (PlanError before any data moves), runs it to the end, commits the sinks.
  // Throws JobError if a function threw; the message names the operator.
  JobResult run();
  // Starts the job and returns at once.
  JobHandle start();

  // The three plans (logical, chained tasks, placed subtasks) as text or Graphviz DOT.
  std::string explain(ExplainFormat format = ExplainFormat::kText) const;
  std::uint64_t plan_hash() const;

 private:
  // Plan building goes through OperatorBuilder (operator.h).
  friend class OperatorBuilder;
  // Per-record fusion (fusion.h) rewrites a chain's node in place.
  template <Record T>
  friend class Stream;
  template <Record In, Record T, class K>
  friend class FusedStream;
  detail::StreamGraph& graph() { return graph_; }
  int add_node(detail::NodeSpec spec);
  void add_edge(detail::EdgeSpec edge);
  detail::NodeSpec& node(int id) { return graph_.nodes.at(static_cast<std::size_t>(id)); }

  struct Compiled {
    detail::JobGraph jg;
    detail::ExecutionGraph eg;
  };
  Compiled compile() const;
  template <Record T, class Make>
  Stream<T> add_source(std::string kind, bool bounded, Make make);

  JobConfig config_;
  std::shared_ptr<detail::Transport> transport_;
  detail::StreamGraph graph_;
  bool started_ = false;
};

namespace detail {
template <class T>
concept Streamable = requires(std::ostream& os, const T& x) { os << x; };
}  // namespace detail

template <Record T>
class Stream {
 public:
  using value_type = T;

  // Output `output` of operator `node` (see OperatorBuilder::stream). `stage`: this stream is the
  // output of that stage (1-based) of its node's fused chain (fusion.h); 0 for a node's own
  // output.
  Stream(Environment* env, int node, Partitioning next = Partitioning::kAuto, int output = 0, int stage = 0)
      : env_(env), node_(node), next_(next), output_(output), stage_(stage) {}

  // ---- per-record transformations ----
  // map, filter and flat_map run fused with the map / filter / flat_map (and for_each sink)
  // that follow them on the returned stream (a FusedStream, which is a Stream): one loop, no
  // batch in between, as long as the stream has no other consumer, the next partitioning is
  // forward (or unset) and the parallelism is the same. flat_map ends a fused chain.

  template <class F>
    requires MapFunction<F, T>
  FusedStream<T, MapResult<F, T>, detail::MapStage<F>> map(F f) const {
    return start_chain<MapResult<F, T>>("map", detail::MapStage<F>{std::move(f), std::make_shared<std::string>("map")});
  }

  template <class F>
    requires FilterFunction<F, T>
  FusedStream<T, T, detail::FilterStage<F>> filter(F f) const {
    return start_chain<T>("filter", detail::FilterStage<F>{std::move(f), std::make_shared<std::string>("filter")});
  }

  // f(const T&, Emit<U>& emit): call emit(u) for every output record.
  template <Record U, class F>
    requires FlatMapFunction<F, T, U>
  Stream<U> flat_map(F f) const {
    return start_chain<U>("flat_map", detail::FlatMapStage<F>{std::move(f), std::make_shared<std::string>("flat_map")});
  }

  // ---- keyed and multi-input operators ----

  template <class KF>
    requires KeyFunction<KF, T>
  KeyedStream<T, KF> key_by(KF key) const {
    return KeyedStream<T, KF>(*this, std::move(key));
  }

  // Records of both streams, in no particular order.
  Stream<T> union_with(const Stream<T>& other) const {
    OperatorBuilder b(*env_, "union");
    b.input(*this, 0);
    b.input(other, 0);
    b.output<T>();
    b.factory([](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                  -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::PassOp<T>>(c, static_cast<detail::Input<T>*>(outs[0]));
    });
    return b.stream<T>();
  }

  // ---- operators written with the operator API (operator.h) ----

  // A OneInputOperator<T, Out>: `p` is a prototype (copied into every partition) or a callable
  // returning std::unique_ptr to one. The input is partitioned as this stream says (forward,
  // broadcast, rebalance, gather; key_by(k).process(...) hashes on a key).
  template <class P>
    requires OneInputOperatorFor<P, T>
  Stream<typename detail::made_by_t<P>::output_type> process(std::string name, P p) const {
    using Out = typename detail::made_by_t<P>::output_type;
    OperatorBuilder b(*env_, "operator");
    b.name(std::move(name));
    b.input(*this);
    b.one_input(std::move(p));
    return b.stream<Out>();
  }
  // The lambda form: f(std::span<const T>, Output<Out>&) per batch.
  template <Record Out, class F>
    requires std::invocable<F&, std::span<const T>, Output<Out>&>
  Stream<Out> process(std::string name, F f) const {
    return process(std::move(name), LambdaOperator<T, Out, F>(std::move(f)));
  }

  // The side output `tag` of the operator that produced this stream (an operator of the
  // operator API: it emits there through ctx.output(tag)).
  template <Record U>
  Stream<U> side_output(const OutputTag<U>& tag) const {
    OperatorBuilder b(*env_, node_);
    if (!b.has_side_outputs())
      throw PlanError("side_output('" + tag.name() + "') of '" + b.name() +
                      "': only operators written with the operator API (process()) have side outputs");
    int i = b.output_index(tag.name());
    if (i < 0) i = b.template output<U>(tag.name());
    else if (*b.output_type(i) != typeid(U))
      throw PlanError("side output '" + tag.name() + "' of '" + b.name() + "' read with two record types");
    return Stream<U>(env_, node_, Partitioning::kAuto, i);
  }

  // Two inputs for a TwoInputOperator: a.connect(b).process(name, op).
  template <Record U>
  ConnectedStreams<T, U> connect(const Stream<U>& other) const {
    return ConnectedStreams<T, U>(env_, OperatorBuilder::ref(*this, next_),
                                  OperatorBuilder::ref(other, other.next_partitioning()), false);
  }

  // Inner equi-join of two bounded streams: f(left, right) for every pair with equal keys.
  // Both sides are hash-partitioned on the key; `right` is the build side (make it the smaller
  // one). With right.broadcast(), each partition builds all of `right` and probes its local left.
  template <Record R, class LK, class RK, class F>
    requires KeyFunction<LK, T> && KeyFunction<RK, R> &&
             std::same_as<KeyOf<LK, T>, KeyOf<RK, R>> && JoinFunction<F, T, R>
  auto join(const Stream<R>& right, LK left_key, RK right_key, F f) const {
    using Out = std::remove_cvref_t<std::invoke_result_t<F&, const T&, const R&>>;
    OperatorBuilder b(*env_, "join");
    b.needs_bounded_inputs().keyed().allows_broadcast_build();
    b.accepts_loop_invariant_input();  // in a loop: indexed once, probed every superstep
    b.input_by_key(*this, left_key);
    b.input_by_key(right, right_key);
    b.output<Out>();
    b.factory([=](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                  -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::HashJoinOp<T, R, LK, RK, F>>(c, left_key, right_key, f,
                                                                   static_cast<detail::Input<Out>*>(outs[0]));
    });
    return b.stream<Out>();
  }

  // f(key, span<const T> left, span<const R> right, Emit<Out>&) once per key present on either
  // side, after both bounded inputs ended.
  template <Record Out, Record R, class LK, class RK, class F>
    requires KeyFunction<LK, T> && KeyFunction<RK, R> &&
             std::same_as<KeyOf<LK, T>, KeyOf<RK, R>> && CoGroupFunction<F, KeyOf<LK, T>, T, R, Out>
  Stream<Out> co_group(const Stream<R>& right, LK left_key, RK right_key, F f) const {
    OperatorBuilder b(*env_, "co_group");
    b.needs_bounded_inputs().keyed();
    b.input_by_key(*this, left_key);
    b.input_by_key(right, right_key);
    b.output<Out>();
    b.factory([=](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                  -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::CoGroupOp<T, R, LK, RK, Out, F>>(
          c, left_key, right_key, f, static_cast<detail::Input<Out>*>(outs[0]));
    });
    return b.stream<Out>();
  }

  // ---- partitioning of the next edge ----

  Stream<T> broadcast() const { return Stream<T>(env_, node_, Partitioning::kBroadcast, output_, stage_); }
  Stream<T> rebalance() const { return Stream<T>(env_, node_, Partitioning::kRebalance, output_, stage_); }
  // Keep records in their partition (needs equal parallelism; the plan is rejected otherwise).
  Stream<T> forward() const { return Stream<T>(env_, node_, Partitioning::kForward, output_, stage_); }
  // Everything to partition 0 of the consumer.
  Stream<T> gather() const { return Stream<T>(env_, node_, Partitioning::kGather, output_, stage_); }

  // ---- sinks ----

  // Keeps every record in memory. With several ranks each rank holds the records of its own
  // partitions; collect(1) gathers everything in partition 0, on rank 0.
  Collected<T> collect(int parallelism = 0) const {
    auto state = std::make_shared<detail::CollectState<T>>();
    add_sink("sink: collect", parallelism > 0 ? parallelism : node_parallelism(), [state](const detail::OpContext& c) {
      return std::make_unique<detail::CollectSink<T>>(c, state);
    });
    return Collected<T>(state);
  }

  // f(const T&) or f(const T&, int partition), in every partition of the sink (parallelism as
  // this stream's unless given).
  template <class F>
    requires SinkFunction<F, T>
  void for_each(F f, int parallelism = 0) const {
    add_sink("sink: for_each", parallelism > 0 ? parallelism : node_parallelism(), for_each_make(std::move(f)));
  }

  // One line per record, formatted by fmt(const T&) -> std::string. The file appears only when
  // the whole job succeeded.
  template <class Fmt>
    requires FormatFunction<Fmt, T>
  void write_text(std::string path, Fmt fmt) const {
    OperatorBuilder b(*env_, "sink: text file '" + path + "'");
    b.parallelism(1);
    b.input(*this);
    b.sink_operator([path, fmt] { return std::make_unique<detail::TextSink<T, Fmt>>(path, fmt); });
  }
  void write_text(std::string path) const
    requires detail::Streamable<T>
  {
    write_text(std::move(path), [](const T& x) {
      std::ostringstream os;
      os << x;
      return os.str();
    });
  }

  // ---- naming and parallelism of the operator that produced this stream ----

  // On a fused chain: names this stage (the node is called "a -> b"); a parallelism other than
  // the chain's splits this stage off into a node of its own.
  Stream& name(std::string n) {
    const int v = id();
    if (detail::FusionInfo* fi = chain_end()) {
      *fi->stages.back().name = std::move(n);
      env_->node(v).name = detail::fused_label(*fi, true);
    } else {
      OperatorBuilder(*env_, v).name(std::move(n));
    }
    return *this;
  }
  Stream& parallelism(int p) {
    const int v = id();
    if (detail::FusionInfo* fi = chain_end(); fi && fi->stages.size() > 1 && env_->node(v).parallelism != p) {
      detail::split_fused(env_->graph(), v, static_cast<int>(fi->stages.size()) - 1);
      stage_ = 0;
    }
    OperatorBuilder(*env_, v).parallelism(p);
    return *this;
  }

  // The node producing this stream. A fused chain ending here grows no more.
  int node() const {
    const int v = id();
    if (detail::FusionInfo* fi = chain_end()) fi->sealed = true;
    return v;
  }
  // Which output of the operator this stream is (0 unless a side output).
  int output() const { return output_; }
  Environment& env() const { return *env_; }
  bool bounded() const { return OperatorBuilder(*env_, id()).bounded(); }
  Partitioning next_partitioning() const { return next_; }

 protected:
  template <Record U, class KF>
  friend class KeyedStream;
  template <Record A, Record B>
  friend class ConnectedStreams;
  template <Record U>
  friend class Stream;
  template <Record In, Record U, class K>
  friend class FusedStream;

  int node_parallelism() const { return OperatorBuilder(*env_, id()).parallelism(); }

  // The node whose output this stream is, splitting a fused chain if this stream's records are
  // made inside it (a second consumer of a stage, or a stage given its own parallelism).
  int id() const {
    while (stage_ > 0) {
      const detail::NodeSpec& spec = env_->node(node_);
      if (!spec.fusion) {
        stage_ = 0;
        break;
      }
      const detail::FusionInfo& fi = *spec.fusion;
      if (!fi.moved.empty()) {
        std::tie(node_, stage_) = fi.moved[static_cast<std::size_t>(stage_ - 1)];
        continue;
      }
      if (static_cast<std::size_t>(stage_) == fi.stages.size()) break;  // the chain ends here
      detail::split_fused(env_->graph(), node_, stage_);
    }
    return node_;
  }
  // The fusion info of this stream's node if the node's chain ends with this stream.
  detail::FusionInfo* chain_end() const {
    if (stage_ == 0) return nullptr;
    detail::NodeSpec& spec = env_->node(id());
    if (stage_ == 0 || !spec.fusion || !spec.fusion->moved.empty() ||
        spec.fusion->stages.size() != static_cast<std::size_t>(stage_))
      return nullptr;
    return spec.fusion.get();
  }
  // A stage may be fused after this stream: it ends its node's chain, which has no consumer
  // yet, the next edge would be forward, at the same parallelism.
  bool fusable(int parallelism) const {
    if (next_ != Partitioning::kAuto && next_ != Partitioning::kForward) return false;
    detail::FusionInfo* fi = chain_end();
    if (!fi || fi->sealed || env_->node(node_).is_sink || env_->node(node_).parallelism != parallelism) return false;
    for (const auto& e : env_->graph().edges)
      if (e.from == node_) return false;
    return true;
  }

  // A node running fused stage `stage` alone (In = T -> Out), fed by this stream.
  template <class Out, class S>
  FusedStream<T, Out, S> start_chain(std::string kind, S stage) const {
    OperatorBuilder b(*env_, kind);
    b.input(*this);
    b.output<Out>();
    b.factory(detail::fused_make<T, Out, S>(stage));
    const int v = b.id();
    detail::NodeSpec& spec = env_->node(v);
    auto fi = std::make_shared<detail::FusionInfo>();
    fi->stages.push_back({kind, stage.name, next_, spec, spec});
    spec.fusion = std::move(fi);
    return FusedStream<T, Out, S>(Stream<Out>(env_, v, Partitioning::kAuto, 0, 1), std::move(stage));
  }

  template <class F>
  static auto for_each_make(F f) {
    return [f](const detail::OpContext& c) { return std::make_unique<detail::CallbackSink<T, F>>(c, f); };
  }
  // The spec of a for_each sink node on its own (kept to split a fused chain later).
  template <class F>
  detail::NodeSpec for_each_alone(F f, int parallelism) const {
    detail::NodeSpec spec;
    spec.kind = spec.name = "sink: for_each";
    spec.parallelism = parallelism;
    spec.is_sink = true;
    spec.num_ports = 1;
    spec.make = [make = for_each_make(std::move(f))](const detail::OpContext& c, const std::vector<detail::PortBase*>&)
        -> std::unique_ptr<detail::NodeRuntime> { return make(c); };
    return spec;
  }

  // A one-input operator of gyre's own (detail ops): make(OpContext, Input<Out>*) per partition;
  // `hash`: the input is hash-partitioned on a key (the operator is keyed).
  template <class Out, class Make>
  Stream<Out> one_input(std::string kind, Make make, detail::WriterFactory hash = {}) const {
    OperatorBuilder b(*env_, std::move(kind));
    detail::InputRef in = OperatorBuilder::ref(*this, next_);
    b.keyed(static_cast<bool>(hash));
    in.hash = std::move(hash);
    b.add_input(std::move(in), 0, false);
    b.output<Out>();
    b.factory([make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                  -> std::unique_ptr<detail::NodeRuntime> { return make(c, static_cast<detail::Input<Out>*>(outs[0])); });
    return b.stream<Out>();
  }

  template <class Make>
  void add_sink(std::string kind, int parallelism, Make make) const {
    OperatorBuilder b(*env_, std::move(kind));
    b.parallelism(parallelism).sink();
    b.input(*this);
    b.factory([make](const detail::OpContext& c, const std::vector<detail::PortBase*>&)
                  -> std::unique_ptr<detail::NodeRuntime> { return make(c); });
  }

  Environment* env_;
  mutable int node_;
  Partitioning next_;
  int output_ = 0;
  mutable int stage_ = 0;
};

// A stream made by a fused chain of map / filter (fusion.h): In -> T by kernel K. It keeps K's
// type so that the map / filter / flat_map / for_each called on it can join the chain: the
// node's factory is rewritten in place to the longer kernel (no new node). When the chain cannot
// grow (see Stream::fusable) they add a node as on any Stream.
template <Record In, Record T, class K>
class FusedStream : public Stream<T> {
 public:
  FusedStream(Stream<T> s, K k, bool fuses = true) : Stream<T>(std::move(s)), k_(std::move(k)), fuses_(fuses) {}

  template <class F>
    requires MapFunction<F, T>
  FusedStream<In, MapResult<F, T>, detail::Then<K, detail::MapStage<F>>> map(F f) const {
    using U = MapResult<F, T>;
    detail::MapStage<F> st{std::move(f), std::make_shared<std::string>("map")};
    if (fuses_ && this->fusable(this->env_->default_parallelism())) return extend<U>("map", std::move(st));
    return {Stream<T>::map(st.f), {k_, st}, false};
  }

  template <class F>
    requires FilterFunction<F, T>
  FusedStream<In, T, detail::Then<K, detail::FilterStage<F>>> filter(F f) const {
    detail::FilterStage<F> st{std::move(f), std::make_shared<std::string>("filter")};
    if (fuses_ && this->fusable(this->env_->default_parallelism())) return extend<T>("filter", std::move(st));
    return {Stream<T>::filter(st.f), {k_, st}, false};
  }

  template <Record U, class F>
    requires FlatMapFunction<F, T, U>
  Stream<U> flat_map(F f) const {
    detail::FlatMapStage<F> st{std::move(f), std::make_shared<std::string>("flat_map")};
    if (fuses_ && this->fusable(this->env_->default_parallelism())) return extend<U>("flat_map", std::move(st));
    return Stream<T>::template flat_map<U>(std::move(st.f));
  }

  // Fused into the chain: f runs inside the chain's loop (the node becomes the sink).
  template <class F>
    requires SinkFunction<F, T>
  void for_each(F f, int parallelism = 0) const {
    const int p = parallelism > 0 ? parallelism : this->node_parallelism();
    if (!fuses_ || !this->fusable(p)) {
      Stream<T>::for_each(std::move(f), parallelism);
      return;
    }
    const std::string kind = "sink: for_each";
    auto name = std::make_shared<std::string>(kind);
    detail::NodeSpec alone = this->for_each_alone(f, p);
    detail::NodeSpec& spec = this->env_->node(this->node_);
    spec.make = [k = k_, f, name](const detail::OpContext& c, const std::vector<detail::PortBase*>&)
        -> std::unique_ptr<detail::NodeRuntime> { return std::make_unique<detail::FusedSinkOp<In, T, K, F>>(c, k, f, name); };
    spec.is_sink = true;
    spec.outputs.clear();
    append(spec, kind, std::move(name), std::move(alone));
  }

  FusedStream& name(std::string n) {
    Stream<T>::name(std::move(n));
    return *this;
  }
  FusedStream& parallelism(int p) {
    Stream<T>::parallelism(p);
    return *this;
  }

 private:
  void append(detail::NodeSpec& spec, const std::string& kind, std::shared_ptr<std::string> name,
              detail::NodeSpec alone) const {
    detail::FusionInfo& fi = *spec.fusion;
    detail::NodeSpec prefix = spec;
    prefix.fusion.reset();
    fi.stages.push_back({kind, std::move(name), this->next_, std::move(alone), std::move(prefix)});
    spec.kind = detail::fused_label(fi, false);
    spec.name = detail::fused_label(fi, true);
  }

  template <class U, class S>
  FusedStream<In, U, detail::Then<K, S>> extend(const std::string& kind, S st) const {
    using K2 = detail::Then<K, S>;
    K2 k2{k_, st};
    detail::NodeSpec alone;
    alone.kind = alone.name = kind;
    alone.parallelism = this->env_->default_parallelism();
    alone.num_ports = 1;
    alone.make = detail::fused_make<T, U, S>(st);
    alone.outputs.push_back(detail::output_spec<U>());
    detail::NodeSpec& spec = this->env_->node(this->node_);
    spec.make = detail::fused_make<In, U, K2>(k2);
    spec.outputs.assign(1, detail::output_spec<U>());
    append(spec, kind, st.name, std::move(alone));
    return {Stream<U>(this->env_, this->node_, Partitioning::kAuto, 0, this->stage_ + 1), std::move(k2)};
  }

  K k_;
  bool fuses_;
};

// Two streams about to feed one TwoInputOperator: a.connect(b), or on keys
// a.key_by(ka).connect(b.key_by(kb)).
template <Record A, Record B>
class ConnectedStreams {
 public:
  ConnectedStreams(Environment* env, detail::InputRef a, detail::InputRef b, bool keyed)
      : env_(env), a_(std::move(a)), b_(std::move(b)), keyed_(keyed) {}

  // A TwoInputOperator<A, B, Out>: a prototype or a callable returning std::unique_ptr to one.
  template <class P>
    requires TwoInputOperatorFor<P, A, B>
  Stream<typename detail::made_by_t<P>::output_type> process(std::string name, P p) const {
    using Out = typename detail::made_by_t<P>::output_type;
    OperatorBuilder b(*env_, "operator");
    b.name(std::move(name)).keyed(keyed_);
    b.add_input(a_, 0, false);
    b.add_input(b_, 1, false);
    b.two_input(std::move(p));
    return b.template stream<Out>();
  }

 private:
  Environment* env_;
  detail::InputRef a_;
  detail::InputRef b_;
  bool keyed_;
};

// A stream partitioned by a key: reduce and aggregate keep state per key.
template <Record T, class KF>
class KeyedStream {
 public:
  using Key = KeyOf<KF, T>;

  KeyedStream(Stream<T> in, KF key) : in_(std::move(in)), key_(std::move(key)) {}

  // The stream being keyed and its key function (for operators built on keyed streams).
  const Stream<T>& input() const { return in_; }
  const KF& key_function() const { return key_; }

  // A OneInputOperator<T, Out> on the records hash-partitioned by the key: every record of a
  // key reaches the same instance.
  template <class P>
    requires OneInputOperatorFor<P, T>
  Stream<typename detail::made_by_t<P>::output_type> process(std::string name, P p) const {
    using Out = typename detail::made_by_t<P>::output_type;
    OperatorBuilder b(in_.env(), "operator");
    b.name(std::move(name)).keyed();
    b.input_by_key(in_, key_);
    b.one_input(std::move(p));
    return b.template stream<Out>();
  }
  template <Record Out, class F>
    requires std::invocable<F&, std::span<const T>, Output<Out>&>
  Stream<Out> process(std::string name, F f) const {
    return process(std::move(name), LambdaOperator<T, Out, F>(std::move(f)));
  }

  // Both streams hashed on their keys, for a TwoInputOperator.
  template <Record U, class KF2>
  ConnectedStreams<T, U> connect(const KeyedStream<U, KF2>& other) const {
    return ConnectedStreams<T, U>(&in_.env(), OperatorBuilder::key_ref(in_, key_, in_.next_partitioning()),
                                  OperatorBuilder::key_ref(other.in_, other.key_, other.in_.next_partitioning()), true);
  }

  // The records themselves, hash-partitioned on the key (a shuffle): every record of a key ends
  // up in the same partition of the operators that follow.
  Stream<T> partition() const {
    return in_.template one_input<T>(
        "partition",
        [](const detail::OpContext& c, detail::Input<T>* out) { return std::make_unique<detail::PassOp<T>>(c, out); },
        detail::hash_writer_factory<T, KF>(key_));
  }

  // Folds the records of each key with f(acc, record) (f must be associative).
  template <class F>
    requires ReduceFunction<F, T>
  Stream<T> reduce(F f) const {
    auto first = [](const T& x) { return x; };
    auto update = [f](T& acc, const T& x) mutable { acc = f(std::as_const(acc), x); };
    auto result = [](const Key&, const T& acc) { return acc; };
    return fold<T, T>("reduce", first, update, result);
  }

  // Keyed state: per key an Acc starting at `init`, updated by add(Acc&, const T&); emits
  // (key, acc) pairs.
  template <Record Acc, class Add>
    requires AggregateFunction<Add, Acc, T>
  Stream<std::pair<Key, Acc>> aggregate(Acc init, Add add) const {
    auto first = [init, add](const T& x) mutable {
      Acc a = init;
      add(a, x);
      return a;
    };
    auto update = [add](Acc& acc, const T& x) mutable { add(acc, x); };
    auto result = [](const Key& k, const Acc& acc) { return std::pair<Key, Acc>(k, acc); };
    return fold<Acc, std::pair<Key, Acc>>("aggregate", first, update, result);
  }

 private:
  template <class V, class Out, class First, class Update, class Result>
  Stream<Out> fold(std::string kind, First first, Update update, Result result) const {
    KF key = key_;
    const bool bounded = in_.bounded();
    auto make = [=](const detail::OpContext& c, detail::Input<Out>* out) -> std::unique_ptr<detail::NodeRuntime> {
      if (bounded)
        return std::make_unique<detail::KeyedFoldOp<true, T, KF, V, Out, First, Update, Result>>(
            c, key, first, update, result, out);
      return std::make_unique<detail::KeyedFoldOp<false, T, KF, V, Out, First, Update, Result>>(
          c, key, first, update, result, out);
    };
    return in_.template one_input<Out>(std::move(kind), make, detail::hash_writer_factory<T, KF>(key_));
  }

  template <Record U, class KF2>
  friend class KeyedStream;

  Stream<T> in_;
  KF key_;
};

// ---- OperatorBuilder templates ----

template <Record T>
Stream<T> OperatorBuilder::stream(int output) const {
  const auto& outs = spec().outputs;
  if (output < 0 || static_cast<std::size_t>(output) >= outs.size())
    throw PlanError("operator '" + name() + "' has no output " + std::to_string(output));
  if (*outs[static_cast<std::size_t>(output)].type != typeid(T))
    throw PlanError("output " + std::to_string(output) + " of operator '" + name() + "' read with another record type");
  return Stream<T>(env_, node_, Partitioning::kAuto, output);
}

// ---- Environment templates ----

template <Record T, class Make>
Stream<T> Environment::add_source(std::string kind, bool bounded, Make make) {
  OperatorBuilder b(*this, std::move(kind));
  b.bounded(bounded);
  b.output<T>();
  b.factory([make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
                -> std::unique_ptr<detail::NodeRuntime> { return make(c, static_cast<detail::Input<T>*>(outs[0])); });
  return b.stream<T>();
}

template <class P>
  requires SourceFor<P>
Stream<typename detail::made_by_t<P>::output_type> Environment::source(std::string name, P p, bool bounded) {
  using T = typename detail::made_by_t<P>::output_type;
  OperatorBuilder b(*this, "source");
  b.name(std::move(name)).bounded(bounded);
  b.source(std::move(p));
  return b.stream<T>();
}

template <Record T>
Stream<T> Environment::from_collection(std::vector<T> data) {
  return from_collection(std::make_shared<const std::vector<T>>(std::move(data)));
}

template <Record T>
Stream<T> Environment::from_collection(std::shared_ptr<const std::vector<T>> shared) {
  return add_source<T>("source: collection", true, [shared](const detail::OpContext& c, detail::Input<T>* out) {
    return std::make_unique<detail::CollectionSource<T>>(c, shared, out);
  });
}

template <class F>
  requires GeneratorFunction<F>
Stream<MapResult<F, std::uint64_t>> Environment::generate(std::uint64_t count, F fn) {
  using T = MapResult<F, std::uint64_t>;
  return add_source<T>("source: generator", true, [count, fn](const detail::OpContext& c, detail::Input<T>* out) {
    return std::make_unique<detail::GeneratorSource<T, F>>(c, count, fn, out);
  });
}

template <Record T, class F>
  requires UnboundedSourceFunction<F, T>
Stream<T> Environment::generate_unbounded(F fn) {
  return add_source<T>("source: unbounded", false, [fn](const detail::OpContext& c, detail::Input<T>* out) {
    return std::make_unique<detail::UnboundedSource<T, F>>(c, fn, out);
  });
}

}  // namespace gyre
