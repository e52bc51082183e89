// Typed operator implementations (gyre::detail). Each processes a whole batch per call, with the
// user function inlined into the loop; an exception from a user function is rethrown as an
// OperatorError carrying the operator's name.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/concepts.h"
#include "gyre/core/error.h"
#include "gyre/core/hash.h"
#include "gyre/core/plan.h"
#include "gyre/core/snapshot.h"
#include "gyre/core/state.h"
#include "gyre/core/writers.h"

namespace gyre::detail {

template <class T>
inline constexpr bool kTrivialRecord =
    std::is_trivially_default_constructible_v<T> && std::is_trivially_copyable_v<T>;

// Buffers output records and pushes them downstream a batch at a time.
template <class Out>
class OutBuffer {
 public:
  OutBuffer(Input<Out>* out, std::size_t batch_bytes)
      : out_(out), limit_(records_per_batch<Out>(batch_bytes)) {}
  template <class V>
  void add(V&& v, std::uint64_t& counter) {
    buf_.push_back(std::forward<V>(v));
    ++counter;
    if (buf_.size() >= limit_) flush();
  }
  void flush() {
    if (!buf_.empty()) {
      out_->push(std::span<const Out>(buf_));
      buf_.clear();
    }
  }
  Emit<Out> emitter() { return Emit<Out>(&buf_, out_, limit_); }
  Input<Out>* out() const { return out_; }

 private:
  Input<Out>* out_;
  std::size_t limit_;
  std::vector<Out> buf_;
};

template <class In>
class OneInputOp : public NodeRuntime, public Input<In> {
 public:
  explicit OneInputOp(const OpContext& ctx) : name_(ctx.name), in_loop_(ctx.in_loop) {}
  PortBase* port(int /*i*/) override { return static_cast<Input<In>*>(this); }

 protected:
  // What a stateless operator does with an event: passes it on (a superstep end only inside a
  // loop; outside loops it is dropped).
  void forward(const Event& event, PortBase* out) const {
    if (event.kind == EventKind::kSuperstepEnd && !in_loop_) return;
    out->on_event(event);
  }
  std::string name_;
  bool in_loop_;
};

template <class In, class Out, class F>
class MapOp final : public OneInputOp<In> {
 public:
  MapOp(const OpContext& ctx, F f, Input<Out>* out) : OneInputOp<In>(ctx), f_(std::move(f)), out_(out) {}
  void push(std::span<const In> in) override {
    this->records_in += gyre::detail::logical_records(in);
    try {
      if constexpr (kTrivialRecord<Out>) {
        buf_.resize(in.size());
        Out* o = buf_.data();
        for (std::size_t i = 0; i < in.size(); ++i) o[i] = f_(in[i]);
      } else {
        buf_.clear();
        for (const In& x : in) buf_.push_back(f_(x));
      }
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    this->records_out += gyre::detail::logical_records(buf_);
    out_->push(std::span<const Out>(buf_));
  }
  void on_event(const Event& event) override { this->forward(event, out_); }

 private:
  F f_;
  Input<Out>* out_;
  std::vector<Out> buf_;
};

template <class T, class F>
class FilterOp final : public OneInputOp<T> {
 public:
  FilterOp(const OpContext& ctx, F f, Input<T>* out) : OneInputOp<T>(ctx), f_(std::move(f)), out_(out) {}
  void push(std::span<const T> in) override {
    this->records_in += gyre::detail::logical_records(in);
    std::size_t k = 0;
    try {
      if constexpr (kTrivialRecord<T>) {
        // Branch-free compaction: write every record, advance only past kept ones.
        buf_.resize(in.size());
        T* o = buf_.data();
        for (std::size_t i = 0; i < in.size(); ++i) {
          o[k] = in[i];
          k += f_(in[i]) ? 1 : 0;
        }
      } else {
        buf_.clear();
        for (const T& x : in)
          if (f_(x)) buf_.push_back(x);
        k = buf_.size();
      }
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    this->records_out += gyre::detail::logical_records(std::span<const T>(buf_.data(), k));
    if (k > 0) out_->push(std::span<const T>(buf_.data(), k));
  }
  void on_event(const Event& event) override { this->forward(event, out_); }

 private:
  F f_;
  Input<T>* out_;
  std::vector<T> buf_;
};

template <class In, class Out, class F>
class FlatMapOp final : public OneInputOp<In> {
 public:
  FlatMapOp(const OpContext& ctx, F f, Input<Out>* out)
      : OneInputOp<In>(ctx), f_(std::move(f)), out_(out, ctx.batch_bytes) {}
  void push(std::span<const In> in) override {
    this->records_in += gyre::detail::logical_records(in);
    Emit<Out> emit = out_.emitter();
    try {
      for (const In& x : in) f_(x, emit);
      emit.flush();
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    this->records_out += emit.emitted_records();
  }
  void on_event(const Event& event) override { this->forward(event, out_.out()); }

 private:
  F f_;
  OutBuffer<Out> out_;
};

// Identity (union, explicit repartitioning points).
template <class T>
class PassOp final : public OneInputOp<T> {
 public:
  PassOp(const OpContext& ctx, Input<T>* out) : OneInputOp<T>(ctx), out_(out) {}
  void push(std::span<const T> in) override {
    this->records_in += gyre::detail::logical_records(in);
    this->records_out += gyre::detail::logical_records(in);
    out_->push(in);
  }
  void on_event(const Event& event) override { this->forward(event, out_); }

 private:
  Input<T>* out_;
};

// Keyed fold: reduce and aggregate. State: one V per key, a value state ("fold") of the
// operator's KeyedStateBackend whose table the hot loop uses directly (hashing once per record).
// Bounded input: one result per key at end of input. Unbounded input: after each batch, the
// new value of every key that batch touched (an upsert changelog); only then does an entry carry
// the epoch that marks it touched. Snapshot: the "fold" state, per key group (the epochs restore
// as 0: no key is touched in a new batch until that batch touches it).
template <class V, bool kBounded>
struct FoldEntry {
  V value;
};
template <class V>
struct FoldEntry<V, false> {
  V value;
  std::uint64_t epoch = 0;
};

// co_group's state per key: both groups.
template <class L, class R>
struct CoGroupEntry {
  std::vector<L> left;
  std::vector<R> right;
};

// Snapshot helpers.
inline void append_snapshot(const KeyedStateBackend& state, std::vector<StateSnapshot>& out) {
  std::vector<StateSnapshot> s = state.snapshot();
  if (out.empty()) {
    out = std::move(s);
  } else {
    out.insert(out.end(), std::make_move_iterator(s.begin()), std::make_move_iterator(s.end()));
  }
}

// The records an operator holds back (a join's probe records that came before its build side
// was complete), snapshotted by the key group of their key: a list state without a table, since
// nothing looks the records up by key. Kind kList; a key group's bytes are its records.
template <class K, class T, class KF>
class RecordBufferState final : public StateBase {
 public:
  static constexpr StateKind kKind = StateKind::kList;
  using Types = StateTypes<RecordBufferState, K, T>;
  RecordBufferState(std::string name, KF key) : StateBase(std::move(name), kKind, Types::tag(), Types::names()), key_(std::move(key)) {}

  std::vector<T>& records() { return records_; }
  const std::vector<T>& records() const { return records_; }
  void release() { std::vector<T>().swap(records_); }

  std::size_t size() const override { return records_.size(); }
  std::size_t memory_bytes() const override { return records_.capacity() * sizeof(T); }
  void clear() override { records_.clear(); }
  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<T>) {
      for (const T& r : records_) {
        const K k = key_(r);
        Codec<T>::encode(r, groups[static_cast<std::size_t>(key_group_of(hash_key(k)))]);
      }
    } else {
      (void)groups;
      no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<T>) {
      while (p < end) {
        T r{};
        p = Codec<T>::decode(p, end, r);
        records_.push_back(std::move(r));
      }
    } else {
      (void)p;
      (void)end;
      no_codec(name(), kKind, type_names());
    }
  }

 private:
  KF key_;
  std::vector<T> records_;
};

// A join's build side: the rows in arrival order, chained per key (head = newest row of the key,
// next_[i] = the row before it), one table lookup per build and probe record. Snapshotted like a
// list state: per key group, each key with its rows in arrival order.
template <class K, class R>
class JoinBuildState final : public StateBase {
 public:
  static constexpr StateKind kKind = StateKind::kList;
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  using Types = StateTypes<JoinBuildState, K, R>;
  explicit JoinBuildState(std::string name) : StateBase(std::move(name), kKind, Types::tag(), Types::names()) {}

  void add(const K& k, std::uint64_t h, const R& r) {
    GYRE_CHECK(rows_.size() < kNone, "join build side exceeds 4G records in one partition");
    const auto idx = static_cast<std::uint32_t>(rows_.size());
    rows_.push_back(r);
    next_.push_back(kNone);
    bool inserted = false;
    std::uint32_t& head = index_.find_or_insert(k, h, [&] { return idx; }, inserted);
    if (!inserted) {
      next_[idx] = head;
      head = idx;
    }
  }
  // f(const R&) for every row of k, newest first.
  template <class F>
  void for_each_match(const K& k, std::uint64_t h, F&& f) const {
    const std::uint32_t* head = index_.find(k, h);
    if (head == nullptr) return;
    for (std::uint32_t i = *head; i != kNone; i = next_[i]) f(rows_[i]);
  }

  std::size_t size() const override { return index_.size(); }
  std::size_t memory_bytes() const override {
    return rows_.capacity() * sizeof(R) + next_.capacity() * sizeof(std::uint32_t) + index_.memory_bytes();
  }
  void clear() override {
    rows_.clear();
    next_.clear();
    index_.clear();
  }
  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<K> && Snapshottable<R>) {
      std::vector<std::uint32_t> chain;
      index_.for_each_hashed([&](std::uint64_t h, const K& k, std::uint32_t head) {
        std::string* out = nullptr;
        encode_group(groups, h, k, out);
        chain.clear();
        for (std::uint32_t i = head; i != kNone; i = next_[i]) chain.push_back(i);
        Codec<std::uint64_t>::encode(chain.size(), *out);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) Codec<R>::encode(rows_[*it], *out);
      });
    } else {
      (void)groups;
      no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<K> && Snapshottable<R>) {
      while (p < end) {
        K k{};
        std::uint64_t n = 0;
        p = Codec<K>::decode(p, end, k);
        p = Codec<std::uint64_t>::decode(p, end, n);
        const std::uint64_t h = hash_key(k);
        for (std::uint64_t i = 0; i < n; ++i) {
          R r{};
          p = Codec<R>::decode(p, end, r);
          add(k, h, r);
        }
      }
    } else {
      (void)p;
      (void)end;
      no_codec(name(), kKind, type_names());
    }
  }

 private:
  std::vector<R> rows_;
  std::vector<std::uint32_t> next_;
  FlatMap<K, std::uint32_t> index_;
};

}  // namespace gyre::detail

namespace gyre {

// The fold and co_group entries in snapshots (trivially copyable entries use the byte codec;
// an unbounded fold's epoch is reset on restore).
template <class V, bool B>
struct Codec<detail::FoldEntry<V, B>,
             std::enable_if_t<!std::is_trivially_copyable_v<detail::FoldEntry<V, B>> && Encodable<V>>> {
  static void encode(const detail::FoldEntry<V, B>& e, std::string& out) { Codec<V>::encode(e.value, out); }
  static const char* decode(const char* p, const char* end, detail::FoldEntry<V, B>& e) {
    return Codec<V>::decode(p, end, e.value);
  }
};

template <class L, class R>
struct Codec<detail::CoGroupEntry<L, R>, std::enable_if_t<Encodable<L> && Encodable<R>>> {
  static void encode(const detail::CoGroupEntry<L, R>& g, std::string& out) {
    Codec<std::vector<L>>::encode(g.left, out);
    Codec<std::vector<R>>::encode(g.right, out);
  }
  static const char* decode(const char* p, const char* end, detail::CoGroupEntry<L, R>& g) {
    p = Codec<std::vector<L>>::decode(p, end, g.left);
    return Codec<std::vector<R>>::decode(p, end, g.right);
  }
};

}  // namespace gyre

namespace gyre::detail {

template <bool kBounded, class T, class KF, class V, class Out, class First, class Update, class Result>
class KeyedFoldOp final : public OneInputOp<T> {
  using K = KeyOf<KF, T>;
  using Entry = FoldEntry<V, kBounded>;

 public:
  KeyedFoldOp(const OpContext& ctx, KF key, First first, Update update, Result result,
              Input<Out>* out)
      : OneInputOp<T>(ctx),
        key_(std::move(key)),
        first_(std::move(first)),
        update_(std::move(update)),
        result_(std::move(result)),
        out_(out, ctx.batch_bytes),
        state_(ctx.partition, ctx.parallelism),
        map_(state_.template value<K, Entry>("fold").table()),
        hook_(ctx) {
    hook_.restore(*this);
  }

  bool stateful() const override { return true; }
  void snapshot(std::vector<StateSnapshot>& out) const override { append_snapshot(state_, out); }
  void restore(std::span<const StateSnapshot> from) override {
    state_.restore(from);
    if constexpr (!kBounded) map_.for_each([](const K&, Entry& e) { e.epoch = 0; });
  }

  void push(std::span<const T> in) override {
    this->records_in += gyre::detail::logical_records(in);
    try {
      for (const T& x : in) {
        const K k = key_(x);
        bool inserted = false;
        Entry& e = map_.find_or_insert(k, hash_key(k), [&] { return Entry{first_(x)}; }, inserted);
        if (!inserted) update_(e.value, x);
        if constexpr (!kBounded) {
          if (e.epoch != epoch_) {
            e.epoch = epoch_;
            touched_.push_back(k);
          }
        }
      }
      if constexpr (!kBounded) {
        for (const K& k : touched_) {
          const Entry* e = map_.find(k, hash_key(k));
          out_.add(result_(k, e->value), this->records_out);
        }
        touched_.clear();
        ++epoch_;
      }
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
    if constexpr (!kBounded) out_.flush();
  }

  // At the end, and in a loop at every superstep end (a bounded fold covers one superstep):
  // emit, forget, pass the event on.
  void on_event(const Event& event) override {
    if (event.kind == EventKind::kEnd || (event.kind == EventKind::kSuperstepEnd && this->in_loop_)) emit_all();
    if (event.kind == EventKind::kBarrier) hook_.barrier(*this, event.value);
    this->forward(event, out_.out());
  }

 private:
  KF key_;
  First first_;
  Update update_;
  Result result_;
  OutBuffer<Out> out_;
  KeyedStateBackend state_;
  StateTable<K, Entry>& map_;  // the "fold" state's table
  SnapshotHook hook_;
  std::vector<K> touched_;
  std::uint64_t epoch_ = 1;

  void emit_all() {
    if constexpr (kBounded) {
      try {
        map_.for_each([&](const K& k, Entry& e) { out_.add(result_(k, e.value), this->records_out); });
        out_.flush();
      } catch (...) {
        rethrow_in_operator(this->name_);
      }
      map_.clear();
    }
  }
};

// A port that forwards to member functions of a two-input operator.
template <class T, class Owner, void (Owner::*Push)(std::span<const T>), void (Owner::*On)(const Event&)>
class MemberPort final : public Input<T> {
 public:
  explicit MemberPort(Owner* o) : o_(o) {}
  void push(std::span<const T> in) override { (o_->*Push)(in); }
  void on_event(const Event& event) override { (o_->*On)(event); }

 private:
  Owner* o_;
};

// Hash join: input 1 (right) is the build side, input 0 (left) probes. Probe batches that arrive
// before the build side is complete are held, so neither input is ever refused (no deadlock when
// both sides come from one source).
//
// Inside a loop each input is either loop-scoped (new every superstep) or loop-invariant (read
// once, kept): an invariant build side is indexed once and probed every superstep; an invariant
// probe side is kept and probed against every superstep's build side. The superstep ends here
// when every loop-scoped input ended it and every invariant input ended.
template <class L, class R, class LK, class RK, class F>
class HashJoinOp final : public NodeRuntime {
  using K = KeyOf<LK, L>;
  using Out = std::remove_cvref_t<std::invoke_result_t<F&, const L&, const R&>>;
  using Build = JoinBuildState<K, R>;
  using Held = RecordBufferState<K, L, LK>;

 public:
  HashJoinOp(const OpContext& ctx, LK lk, RK rk, F f, Input<Out>* out)
      : name_(ctx.name), lk_(std::move(lk)), rk_(std::move(rk)), f_(std::move(f)),
        out_(out, ctx.batch_bytes), probe_port_(this), build_port_(this), in_loop_(ctx.in_loop),
        probe_loop_(ctx.in_loop && ctx.input_in_loop.size() > 0 && ctx.input_in_loop[0]),
        build_loop_(ctx.in_loop && ctx.input_in_loop.size() > 1 && ctx.input_in_loop[1]),
        state_(ctx.partition, ctx.parallelism),
        build_(state_.template custom<Build>("build")),
        pending_(state_.template custom<Held>("probe.held", lk_).records()),
        cached_probe_(state_.template custom<Held>("probe.invariant", lk_).records()),
        hook_(ctx) {
    hook_.restore(*this);
  }

  PortBase* port(int i) override {
    return i == 0 ? static_cast<PortBase*>(&probe_port_) : static_cast<PortBase*>(&build_port_);
  }

  // Snapshot: the build side's rows by key ("build"), the probe records held until the build
  // side is complete ("probe.held") and a loop-invariant probe side ("probe.invariant"), each by
  // the key group of its key. Whether the build side was complete is not kept: a restored job's
  // build input ends again (after what remained of it).
  bool stateful() const override { return true; }
  void snapshot(std::vector<StateSnapshot>& out) const override { append_snapshot(state_, out); }
  void restore(std::span<const StateSnapshot> from) override { state_.restore(from); }

  void probe(std::span<const L> in) {
    records_in += gyre::detail::logical_records(in);
    if (in_loop_ && !probe_loop_) {
      cached_probe_.insert(cached_probe_.end(), in.begin(), in.end());
      if (build_ready_) do_probe(in);
      return;
    }
    if (!build_ready_) {
      pending_.insert(pending_.end(), in.begin(), in.end());
      return;
    }
    do_probe(in);
  }
  // Both inputs are bounded: watermarks are not used (the result comes at the end). A barrier
  // comes on both ports, probe first: on the build port, snapshot and pass it on.
  void probe_event(const Event& event) {
    if (event.kind == EventKind::kEnd) {
      probe_done_ = true;
      try_superstep();
      maybe_end();
    } else if (event.kind == EventKind::kSuperstepEnd) {
      probe_superstep_ = true;
      try_superstep();
    }
  }
  void build(std::span<const R> in) {
    records_in += gyre::detail::logical_records(in);
    try {
      Build& b = build_;
      for (const R& r : in) {
        const K k = rk_(r);
        b.add(k, hash_key(k), r);
      }
    } catch (...) {
      rethrow_in_operator(name_);
    }
  }
  void build_event(const Event& event) {
    if (event.kind == EventKind::kBarrier) {
      hook_.barrier(*this, event.value);
      out_.out()->on_event(event);
    } else if (event.kind == EventKind::kEnd) {
      build_done_ = true;
      build_complete();
      try_superstep();
      maybe_end();
    } else if (event.kind == EventKind::kSuperstepEnd) {
      build_superstep_ = true;
      build_complete();
      try_superstep();
    }
  }

 private:
  void build_complete() {
    if (build_ready_) return;
    build_ready_ = true;
    if (!pending_.empty()) {
      do_probe(std::span<const L>(pending_));
      std::vector<L>().swap(pending_);  // held once: give the memory back
    }
    if (in_loop_ && !probe_loop_ && !cached_probe_.empty()) do_probe(std::span<const L>(cached_probe_));
  }
  void try_superstep() {
    if (!in_loop_ || !(probe_superstep_ || build_superstep_)) return;
    if (!(probe_loop_ ? probe_superstep_ : probe_done_) || !(build_loop_ ? build_superstep_ : build_done_)) return;
    out_.out()->on_event(Event::superstep_end());
    probe_superstep_ = build_superstep_ = false;
    if (build_loop_) {  // next superstep, next build side
      build_ready_ = false;
      build_.clear();
    }
  }
  void do_probe(std::span<const L> in) {
    try {
      const Build& b = build_;
      for (const L& l : in) {
        const K k = lk_(l);
        b.for_each_match(k, hash_key(k), [&](const R& r) { out_.add(f_(l, r), records_out); });
      }
      out_.flush();
    } catch (...) {
      rethrow_in_operator(name_);
    }
  }
  void maybe_end() {
    if (probe_done_ && build_done_ && !ended_) {
      ended_ = true;
      out_.out()->on_event(Event::end());
    }
  }

  std::string name_;
  LK lk_;
  RK rk_;
  F f_;
  OutBuffer<Out> out_;
  MemberPort<L, HashJoinOp, &HashJoinOp::probe, &HashJoinOp::probe_event> probe_port_;
  MemberPort<R, HashJoinOp, &HashJoinOp::build, &HashJoinOp::build_event> build_port_;
  bool in_loop_;
  bool probe_loop_;
  bool build_loop_;
  KeyedStateBackend state_;
  Build& build_;
  std::vector<L>& pending_;       // probe records held until the build side is complete
  std::vector<L>& cached_probe_;  // a loop-invariant probe side
  SnapshotHook hook_;
  bool build_ready_ = false;  // the build side is complete (for this superstep, if loop-scoped)
  bool probe_superstep_ = false;
  bool build_superstep_ = false;
  bool build_done_ = false;
  bool probe_done_ = false;
  bool ended_ = false;
};

// co_group: collects both inputs by key; when both ended, calls f once per key.
template <class L, class R, class LK, class RK, class Out, class F>
class CoGroupOp final : public NodeRuntime {
  using K = KeyOf<LK, L>;
  using Group = CoGroupEntry<L, R>;

 public:
  CoGroupOp(const OpContext& ctx, LK lk, RK rk, F f, Input<Out>* out)
      : name_(ctx.name), lk_(std::move(lk)), rk_(std::move(rk)), f_(std::move(f)),
        out_(out, ctx.batch_bytes), left_port_(this), right_port_(this), in_loop_(ctx.in_loop),
        state_(ctx.partition, ctx.parallelism), groups_(state_.template value<K, Group>("groups").table()),
        hook_(ctx) {
    hook_.restore(*this);
  }

  // Snapshot: both groups of every key ("groups"), by key group.
  bool stateful() const override { return true; }
  void snapshot(std::vector<StateSnapshot>& out) const override { append_snapshot(state_, out); }
  void restore(std::span<const StateSnapshot> from) override { state_.restore(from); }

  PortBase* port(int i) override {
    return i == 0 ? static_cast<PortBase*>(&left_port_) : static_cast<PortBase*>(&right_port_);
  }
  void left(std::span<const L> in) {
    records_in += gyre::detail::logical_records(in);
    try {
      for (const L& l : in) group(lk_(l)).left.push_back(l);
    } catch (...) {
      rethrow_in_operator(name_);
    }
  }
  void right(std::span<const R> in) {
    records_in += gyre::detail::logical_records(in);
    try {
      for (const R& r : in) group(rk_(r)).right.push_back(r);
    } catch (...) {
      rethrow_in_operator(name_);
    }
  }
  // After both inputs ended, and inside a loop (both inputs loop-scoped) after both ended a
  // superstep: one co_group. Both inputs are bounded: watermarks are not used. A barrier comes
  // on both ports: at the second, snapshot and pass it on.
  void input_event(const Event& event) {
    if (event.kind == EventKind::kBarrier) {
      if (++barriers_ < 2) return;
      barriers_ = 0;
      hook_.barrier(*this, event.value);
      out_.out()->on_event(event);
      return;
    }
    if (event.kind == EventKind::kEnd) {
      if (++ended_ < 2) return;
    } else if (event.kind == EventKind::kSuperstepEnd) {
      if (!in_loop_ || ++marked_ < 2) return;
      marked_ = 0;
    } else {
      return;
    }
    emit_groups();
    out_.out()->on_event(event);
  }

 private:
  void emit_groups() {
    Emit<Out> emit = out_.emitter();
    try {
      groups_.for_each([&](const K& k, Group& g) {
        f_(k, std::span<const L>(g.left), std::span<const R>(g.right), emit);
      });
      emit.flush();
    } catch (...) {
      rethrow_in_operator(name_);
    }
    records_out += emit.emitted_records();
    groups_.clear();
  }
  Group& group(const K& k) {
    bool inserted = false;
    return groups_.find_or_insert(k, hash_key(k), [] { return Group{}; }, inserted);
  }
  std::string name_;
  LK lk_;
  RK rk_;
  F f_;
  OutBuffer<Out> out_;
  MemberPort<L, CoGroupOp, &CoGroupOp::left, &CoGroupOp::input_event> left_port_;
  MemberPort<R, CoGroupOp, &CoGroupOp::right, &CoGroupOp::input_event> right_port_;
  bool in_loop_;
  KeyedStateBackend state_;
  StateTable<K, Group>& groups_;  // the "groups" state's table
  SnapshotHook hook_;
  int barriers_ = 0;
  int ended_ = 0;
  int marked_ = 0;
};

// ---- sources ----

template <class T>
class SourceOp : public NodeRuntime, public SourceBase {
 public:
  SourceOp(const OpContext& ctx, Input<T>* out)
      : name_(ctx.name), out_(out), cap_(records_per_batch<T>(ctx.batch_bytes)) {}
  PortBase* port(int /*i*/) override { return nullptr; }
  SourceBase* source() override { return this; }

 protected:
  void emit(std::span<const T> batch) {
    records_out += gyre::detail::logical_records(batch);
    out_->push(batch);
  }
  std::string name_;
  Input<T>* out_;
  std::size_t cap_;
};

// Splits [0, n) evenly: partition p of parallelism k gets [n*p/k, n*(p+1)/k).
inline std::pair<std::uint64_t, std::uint64_t> split_range(std::uint64_t n, int p, int k) {
  const auto lo = static_cast<std::uint64_t>((static_cast<Uint128>(n) * static_cast<unsigned>(p)) / static_cast<unsigned>(k));
  const auto hi = static_cast<std::uint64_t>((static_cast<Uint128>(n) * static_cast<unsigned>(p + 1)) / static_cast<unsigned>(k));
  return {lo, hi};
}

// Emits slices of a shared vector directly (no copy).
template <class T>
class CollectionSource final : public SourceOp<T> {
 public:
  CollectionSource(const OpContext& ctx, std::shared_ptr<const std::vector<T>> data, Input<T>* out)
      : SourceOp<T>(ctx, out), data_(std::move(data)) {
    std::tie(pos_, end_) = split_range(data_->size(), ctx.partition, ctx.parallelism);
  }
  SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t b = 0; b < max_batches && pos_ < end_; ++b) {
      const std::size_t n = std::min<std::size_t>(this->cap_, end_ - pos_);
      this->emit(std::span<const T>(data_->data() + pos_, n));
      pos_ += n;
    }
    if (pos_ < end_) return SourceStatus::kMore;
    this->out_->on_event(Event::end());
    return SourceStatus::kDone;
  }

 private:
  std::shared_ptr<const std::vector<T>> data_;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
};

// Calls fn(i) for i in this partition's share of [0, count).
template <class T, class F>
class GeneratorSource final : public SourceOp<T> {
 public:
  GeneratorSource(const OpContext& ctx, std::uint64_t count, F f, Input<T>* out)
      : SourceOp<T>(ctx, out), f_(std::move(f)) {
    std::tie(pos_, end_) = split_range(count, ctx.partition, ctx.parallelism);
  }
  SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t b = 0; b < max_batches && pos_ < end_; ++b) {
      const std::size_t n = std::min<std::size_t>(this->cap_, end_ - pos_);
      try {
        if constexpr (kTrivialRecord<T>) {
          buf_.resize(n);
          for (std::size_t i = 0; i < n; ++i) buf_[i] = f_(pos_ + i);
        } else {
          buf_.clear();
          for (std::size_t i = 0; i < n; ++i) buf_.push_back(f_(pos_ + i));
        }
      } catch (...) {
        rethrow_in_operator(this->name_);
      }
      pos_ += n;
      this->emit(std::span<const T>(buf_));
    }
    if (pos_ < end_) return SourceStatus::kMore;
    this->out_->on_event(Event::end());
    return SourceStatus::kDone;
  }

 private:
  F f_;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
  std::vector<T> buf_;
};

// Polls fn(ctx) -> optional<T> forever (until the job is cancelled); nullopt = nothing now.
template <class T, class F>
class UnboundedSource final : public SourceOp<T> {
 public:
  UnboundedSource(const OpContext& ctx, F f, Input<T>* out) : SourceOp<T>(ctx, out), f_(std::move(f)) {
    sctx_.partition = ctx.partition;
    sctx_.parallelism = ctx.parallelism;
  }
  SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t b = 0; b < max_batches; ++b) {
      buf_.clear();
      bool idle = false;
      try {
        while (buf_.size() < this->cap_) {
          std::optional<T> v = f_(sctx_);
          if (!v) {
            idle = true;
            break;
          }
          buf_.push_back(std::move(*v));
          ++sctx_.emitted;
        }
      } catch (...) {
        rethrow_in_operator(this->name_);
      }
      if (!buf_.empty()) this->emit(std::span<const T>(buf_));
      if (idle) return SourceStatus::kIdle;
    }
    return SourceStatus::kMore;
  }

 private:
  F f_;
  SourceContext sctx_;
  std::vector<T> buf_;
};

// ---- sinks ----

// The records of a collect sink, by partition. Sinks append while the job runs and values() may
// be called at any time (a running unbounded job shows what arrived so far): both take the lock.
template <class T>
class CollectState {
 public:
  void append(int partition, std::span<const T> records) {
    std::lock_guard lock(mu_);
    auto& v = parts_[partition];
    v.insert(v.end(), records.begin(), records.end());
  }
  void clear() {
    std::lock_guard lock(mu_);
    parts_.clear();
  }
  // All records, partition 0 first.
  std::vector<T> values() const {
    std::lock_guard lock(mu_);
    std::vector<T> all;
    for (const auto& [p, v] : parts_) all.insert(all.end(), v.begin(), v.end());
    return all;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, std::vector<T>> parts_;
};

template <class T>
class CollectSink final : public OneInputOp<T> {
 public:
  CollectSink(const OpContext& ctx, std::shared_ptr<CollectState<T>> state)
      : OneInputOp<T>(ctx), state_(std::move(state)), partition_(ctx.partition) {}
  void push(std::span<const T> in) override {
    this->records_in += gyre::detail::logical_records(in);
    state_->append(partition_, in);
  }
  void on_event(const Event& /*event*/) override {}
  void abort() override { state_->clear(); }

 private:
  std::shared_ptr<CollectState<T>> state_;
  int partition_;
};

template <class T, class F>
class CallbackSink final : public OneInputOp<T> {
 public:
  CallbackSink(const OpContext& ctx, F f) : OneInputOp<T>(ctx), f_(std::move(f)), partition_(ctx.partition) {}
  void push(std::span<const T> in) override {
    this->records_in += gyre::detail::logical_records(in);
    try {
      for (const T& x : in) {
        if constexpr (std::is_invocable_v<F&, const T&, int>)
          f_(x, partition_);
        else
          f_(x);
      }
    } catch (...) {
      rethrow_in_operator(this->name_);
    }
  }
  void on_event(const Event& /*event*/) override {}

 private:
  F f_;
  int partition_;
};

}  // namespace gyre::detail
