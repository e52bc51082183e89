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

  // Validates the plan (PlanError before any data moves), runs it to the end, commits the sinks.
  // Throws JobError if a function threw; the message names the operator.
  JobResult run();
  // Starts the job and returns at once.
  JobHandle start();

  // The three plans (logical, chained tasks, placed subtasks) as text or Graphviz DOT.
  std::string explain(ExplainFormat format = ExplainFormat::kText) const;
  std::uint64_t plan_hash() const;

  // Plan building, for the typed API and gyre's modules.
  detail::StreamGraph& graph() { return graph_; }
  int add_node(detail::NodeSpec spec);
  void add_edge(detail::EdgeSpec edge);
  detail::NodeSpec& node(int id) { return graph_.nodes.at(static_cast<std::size_t>(id)); }

 private:
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
template <class Out>
void set_output_type(NodeSpec& spec) {
  spec.record_bytes = sizeof(Out);
  if constexpr (Encodable<Out> && std::default_initializable<Out>) {
    spec.encode = [](const BatchBase& b, std::string& out) {
      encode_batch<Out>(std::span<const Out>(static_cast<const Batch<Out>&>(b).data), out);
    };
    spec.decode = [](const char* p, const char* end, std::size_t n) { return decode_batch<Out>(p, end, n); };
  }
  spec.make_writer = single_writer_factory<Out>();
  spec.make_tee = [](std::vector<PortBase*> outs) -> std::unique_ptr<PortBase> {
    std::vector<Input<Out>*> typed;
    typed.reserve(outs.size());
    for (auto* p : outs) typed.push_back(static_cast<Input<Out>*>(p));
    return std::make_unique<Tee<Out>>(std::move(typed));
  };
}

template <class T>
concept Streamable = requires(std::ostream& os, const T& x) { os << x; };
}  // namespace detail

template <Record T>
class Stream {
 public:
  using value_type = T;

  // `stage`: this stream is the output of that stage (1-based) of its node's fused chain
  // (fusion.h); 0 for a node's own output.
  Stream(Environment* env, int node, Partitioning next = Partitioning::kAuto, int stage = 0)
      : env_(env), node_(node), next_(next), stage_(stage) {}

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
    const int a = id();
    const int b = other.id();
    detail::NodeSpec spec = node_spec("union", 1);
    spec.bounded = bounded() && other.bounded();
    spec.make = [](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::PassOp<T>>(c, static_cast<detail::Input<T>*>(out));
    };
    detail::set_output_type<T>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({a, id, 0, next_, false, {}});
    env_->add_edge({b, id, 0, other.next_, false, {}});
    return Stream<T>(env_, id);
  }

  // Inner equi-join of two bounded streams: f(left, right) for every pair with equal keys.
  // Both sides are hash-partitioned on the key; `right` is the build side (make it the smaller
  // one). With right.broadcast(), each partition builds all of `right` and probes its local left.
  template <Record R, class LK, class RK, class F>
    requires KeyFunction<LK, T> && KeyFunction<RK, R> &&
             std::same_as<KeyOf<LK, T>, KeyOf<RK, R>> && JoinFunction<F, T, R>
  auto join(const Stream<R>& right, LK left_key, RK right_key, F f) const {
    using Out = std::remove_cvref_t<std::invoke_result_t<F&, const T&, const R&>>;
    const int l = id();
    const int r = right.id();
    detail::NodeSpec spec = node_spec("join", 2);
    spec.bounded = bounded() && right.bounded();
    spec.needs_bounded_inputs = true;
    spec.keyed = true;
    spec.allows_broadcast_build = true;
    spec.accepts_loop_invariant_input = true;  // in a loop: indexed once, probed every superstep
    spec.make = [=](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::HashJoinOp<T, R, LK, RK, F>>(c, left_key, right_key, f,
                                                                   static_cast<detail::Input<Out>*>(out));
    };
    detail::set_output_type<Out>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({l, id, 0, next_, false, detail::hash_writer_factory<T, LK>(left_key)});
    env_->add_edge({r, id, 1, right.next_partitioning(), false,
                    detail::hash_writer_factory<R, RK>(right_key)});
    return Stream<Out>(env_, id);
  }

  // f(key, span<const T> left, span<const R> right, Emit<Out>&) once per key present on either
  // side, after both bounded inputs ended.
  template <Record Out, Record R, class LK, class RK, class F>
    requires KeyFunction<LK, T> && KeyFunction<RK, R> &&
             std::same_as<KeyOf<LK, T>, KeyOf<RK, R>> && CoGroupFunction<F, KeyOf<LK, T>, T, R, Out>
  Stream<Out> co_group(const Stream<R>& right, LK left_key, RK right_key, F f) const {
    const int l = id();
    const int r = right.id();
    detail::NodeSpec spec = node_spec("co_group", 2);
    spec.bounded = bounded() && right.bounded();
    spec.needs_bounded_inputs = true;
    spec.keyed = true;
    spec.make = [=](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::CoGroupOp<T, R, LK, RK, Out, F>>(
          c, left_key, right_key, f, static_cast<detail::Input<Out>*>(out));
    };
    detail::set_output_type<Out>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({l, id, 0, next_, false, detail::hash_writer_factory<T, LK>(left_key)});
    env_->add_edge({r, id, 1, right.next_partitioning(), false,
                    detail::hash_writer_factory<R, RK>(right_key)});
    return Stream<Out>(env_, id);
  }

  // ---- partitioning of the next edge ----

  Stream<T> broadcast() const { return Stream<T>(env_, node_, Partitioning::kBroadcast, stage_); }
  Stream<T> rebalance() const { return Stream<T>(env_, node_, Partitioning::kRebalance, stage_); }
  // Keep records in their partition (needs equal parallelism; the plan is rejected otherwise).
  Stream<T> forward() const { return Stream<T>(env_, node_, Partitioning::kForward, stage_); }

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
    add_sink("sink: text file '" + path + "'", 1, [path, fmt](const detail::OpContext& c) {
      return std::make_unique<detail::TextSink<T, Fmt>>(c, path, fmt);
    });
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
    detail::NodeSpec& spec = env_->node(v);
    if (detail::FusionInfo* fi = chain_end()) {
      *fi->stages.back().name = std::move(n);
      spec.name = detail::fused_label(*fi, true);
    } else {
      spec.name = std::move(n);
    }
    return *this;
  }
  Stream& parallelism(int p) {
    const int v = id();
    if (detail::FusionInfo* fi = chain_end(); fi && fi->stages.size() > 1 && env_->node(v).parallelism != p) {
      detail::split_fused(env_->graph(), v, static_cast<int>(fi->stages.size()) - 1);
      stage_ = 0;
    }
    env_->node(v).parallelism = p;
    return *this;
  }

  // The node producing this stream. A fused chain ending here grows no more.
  int node() const {
    const int v = id();
    if (detail::FusionInfo* fi = chain_end()) fi->sealed = true;
    return v;
  }
  Environment& env() const { return *env_; }
  bool bounded() const { return env_->node(node_).bounded; }
  Partitioning next_partitioning() const { return next_; }

 protected:
  template <Record U, class KF>
  friend class KeyedStream;
  template <Record U>
  friend class Stream;
  template <Record In, Record U, class K>
  friend class FusedStream;

  int node_parallelism() const { return env_->node(id()).parallelism; }

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

  template <class Out, class S>
  FusedStream<T, Out, S> start_chain(std::string kind, S stage) const {
    const int from = id();
    detail::NodeSpec spec = node_spec(kind, 1);
    spec.make = detail::fused_make<T, Out, S>(stage);
    detail::set_output_type<Out>(spec);
    auto fi = std::make_shared<detail::FusionInfo>();
    fi->stages.push_back({kind, stage.name, next_, spec, spec});
    spec.fusion = std::move(fi);
    const int v = env_->add_node(std::move(spec));
    env_->add_edge({from, v, 0, next_, false, {}});
    return FusedStream<T, Out, S>(Stream<Out>(env_, v, Partitioning::kAuto, 1), std::move(stage));
  }

  template <class F>
  static auto for_each_make(F f) {
    return [f](const detail::OpContext& c) { return std::make_unique<detail::CallbackSink<T, F>>(c, f); };
  }

  detail::NodeSpec node_spec(std::string kind, int ports) const {
    detail::NodeSpec spec;
    spec.name = kind;
    spec.kind = std::move(kind);
    spec.parallelism = env_->default_parallelism();
    spec.bounded = bounded();
    spec.num_ports = ports;
    return spec;
  }

  template <class Out, class Make>
  Stream<Out> one_input(std::string kind, Make make, detail::WriterFactory hash = {}) const {
    const int from = id();
    detail::NodeSpec spec = node_spec(std::move(kind), 1);
    spec.keyed = static_cast<bool>(hash);
    spec.make = [make](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return make(c, static_cast<detail::Input<Out>*>(out));
    };
    detail::set_output_type<Out>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({from, id, 0, next_, false, std::move(hash)});
    return Stream<Out>(env_, id);
  }

  template <class Make>
  detail::NodeSpec sink_spec(std::string kind, int parallelism, Make make) const {
    detail::NodeSpec spec = node_spec(std::move(kind), 1);
    spec.parallelism = parallelism;
    spec.is_sink = true;
    spec.make = [make](const detail::OpContext& c, detail::PortBase*) -> std::unique_ptr<detail::NodeRuntime> {
      return make(c);
    };
    return spec;
  }

  template <class Make>
  void add_sink(std::string kind, int parallelism, Make make) const {
    const int from = id();
    const int id = env_->add_node(sink_spec(std::move(kind), parallelism, std::move(make)));
    env_->add_edge({from, id, 0, next_, false, {}});
  }

  Environment* env_;
  mutable int node_;
  Partitioning next_;
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
    detail::NodeSpec alone = this->sink_spec(kind, p, Stream<T>::for_each_make(f));
    detail::NodeSpec& spec = this->env_->node(this->node_);
    spec.make = [k = k_, f, name](const detail::OpContext& c, detail::PortBase*) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::FusedSinkOp<In, T, K, F>>(c, k, f, name);
    };
    spec.is_sink = true;
    spec.record_bytes = 0;
    spec.make_writer = {};
    spec.make_tee = {};
    spec.encode = {};
    spec.decode = {};
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
    detail::NodeSpec alone = this->node_spec(kind, 1);
    alone.make = detail::fused_make<T, U, S>(st);
    detail::set_output_type<U>(alone);
    detail::NodeSpec& spec = this->env_->node(this->node_);
    spec.make = detail::fused_make<In, U, K2>(k2);
    detail::set_output_type<U>(spec);
    append(spec, kind, st.name, std::move(alone));
    return {Stream<U>(this->env_, this->node_, Partitioning::kAuto, this->stage_ + 1), std::move(k2)};
  }

  K k_;
  bool fuses_;
};

// A stream partitioned by a key: reduce and aggregate keep state per key.
template <Record T, class KF>
class KeyedStream {
 public:
  using Key = KeyOf<KF, T>;

  KeyedStream(Stream<T> in, KF key) : in_(std::move(in)), key_(std::move(key)) {}

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

  Stream<T> in_;
  KF key_;
};

// ---- Environment templates ----

template <Record T, class Make>
Stream<T> Environment::add_source(std::string kind, bool bounded, Make make) {
  detail::NodeSpec spec;
  spec.name = kind;
  spec.kind = std::move(kind);
  spec.parallelism = default_parallelism();
  spec.bounded = bounded;
  spec.num_ports = 0;
  spec.make = [make](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
    return make(c, static_cast<detail::Input<T>*>(out));
  };
  detail::set_output_type<T>(spec);
  return Stream<T>(this, add_node(std::move(spec)));
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
