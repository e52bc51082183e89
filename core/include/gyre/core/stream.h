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
#include <utility>
#include <vector>

#include "gyre/core/cluster.h"
#include "gyre/core/codec.h"
#include "gyre/core/concepts.h"
#include "gyre/core/config.h"
#include "gyre/core/operators.h"
#include "gyre/core/plan.h"
#include "gyre/core/runtime.h"
#include "gyre/core/text_io.h"

namespace gyre {

template <Record T>
class Stream;
template <Record T, class KF>
class KeyedStream;

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

  Stream(Environment* env, int node, Partitioning next = Partitioning::kAuto)
      : env_(env), node_(node), next_(next) {}

  // ---- per-record transformations (chained when partitioning allows) ----

  template <class F>
    requires MapFunction<F, T>
  Stream<MapResult<F, T>> map(F f) const {
    using Out = MapResult<F, T>;
    return one_input<Out>("map", [f](const detail::OpContext& c, detail::Input<Out>* out) {
      return std::make_unique<detail::MapOp<T, Out, F>>(c, f, out);
    });
  }

  template <class F>
    requires FilterFunction<F, T>
  Stream<T> filter(F f) const {
    return one_input<T>("filter", [f](const detail::OpContext& c, detail::Input<T>* out) {
      return std::make_unique<detail::FilterOp<T, F>>(c, f, out);
    });
  }

  // f(const T&, Emit<U>& emit): call emit(u) for every output record.
  template <Record U, class F>
    requires FlatMapFunction<F, T, U>
  Stream<U> flat_map(F f) const {
    return one_input<U>("flat_map", [f](const detail::OpContext& c, detail::Input<U>* out) {
      return std::make_unique<detail::FlatMapOp<T, U, F>>(c, f, out);
    });
  }

  // ---- keyed and multi-input operators ----

  template <class KF>
    requires KeyFunction<KF, T>
  KeyedStream<T, KF> key_by(KF key) const {
    return KeyedStream<T, KF>(*this, std::move(key));
  }

  // Records of both streams, in no particular order.
  Stream<T> union_with(const Stream<T>& other) const {
    detail::NodeSpec spec = node_spec("union", 1);
    spec.bounded = bounded() && other.bounded();
    spec.make = [](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<detail::PassOp<T>>(c, static_cast<detail::Input<T>*>(out));
    };
    detail::set_output_type<T>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({node_, id, 0, next_, false, {}});
    env_->add_edge({other.node_, id, 0, other.next_, false, {}});
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
    env_->add_edge({node_, id, 0, next_, false, detail::hash_writer_factory<T, LK>(left_key)});
    env_->add_edge({right.node(), id, 1, right.next_partitioning(), false,
                    detail::hash_writer_factory<R, RK>(right_key)});
    return Stream<Out>(env_, id);
  }

  // f(key, span<const T> left, span<const R> right, Emit<Out>&) once per key present on either
  // side, after both bounded inputs ended.
  template <Record Out, Record R, class LK, class RK, class F>
    requires KeyFunction<LK, T> && KeyFunction<RK, R> &&
             std::same_as<KeyOf<LK, T>, KeyOf<RK, R>> && CoGroupFunction<F, KeyOf<LK, T>, T, R, Out>
  Stream<Out> co_group(const Stream<R>& right, LK left_key, RK right_key, F f) const {
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
    env_->add_edge({node_, id, 0, next_, false, detail::hash_writer_factory<T, LK>(left_key)});
    env_->add_edge({right.node(), id, 1, right.next_partitioning(), false,
                    detail::hash_writer_factory<R, RK>(right_key)});
    return Stream<Out>(env_, id);
  }

  // ---- partitioning of the next edge ----

  Stream<T> broadcast() const { return Stream<T>(env_, node_, Partitioning::kBroadcast); }
  Stream<T> rebalance() const { return Stream<T>(env_, node_, Partitioning::kRebalance); }
  // Keep records in their partition (needs equal parallelism; the plan is rejected otherwise).
  Stream<T> forward() const { return Stream<T>(env_, node_, Partitioning::kForward); }

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
    add_sink("sink: for_each", parallelism > 0 ? parallelism : node_parallelism(),
             [f](const detail::OpContext& c) { return std::make_unique<detail::CallbackSink<T, F>>(c, f); });
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

  Stream& name(std::string n) {
    env_->node(node_).name = std::move(n);
    return *this;
  }
  Stream& parallelism(int p) {
    env_->node(node_).parallelism = p;
    return *this;
  }

  int node() const { return node_; }
  Environment& env() const { return *env_; }
  bool bounded() const { return env_->node(node_).bounded; }
  Partitioning next_partitioning() const { return next_; }

 private:
  template <Record U, class KF>
  friend class KeyedStream;

  int node_parallelism() const { return env_->node(node_).parallelism; }

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
    detail::NodeSpec spec = node_spec(std::move(kind), 1);
    spec.keyed = static_cast<bool>(hash);
    spec.make = [make](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return make(c, static_cast<detail::Input<Out>*>(out));
    };
    detail::set_output_type<Out>(spec);
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({node_, id, 0, next_, false, std::move(hash)});
    return Stream<Out>(env_, id);
  }

  template <class Make>
  void add_sink(std::string kind, int parallelism, Make make) const {
    detail::NodeSpec spec = node_spec(std::move(kind), 1);
    spec.parallelism = parallelism;
    spec.is_sink = true;
    spec.make = [make](const detail::OpContext& c, detail::PortBase*) -> std::unique_ptr<detail::NodeRuntime> {
      return make(c);
    };
    const int id = env_->add_node(std::move(spec));
    env_->add_edge({node_, id, 0, next_, false, {}});
  }

  Environment* env_;
  int node_;
  Partitioning next_;
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
