// Per-record operator fusion (gyre::detail). A chain of map / filter / flat_map (and a for_each
// sink after them) built on one stream runs as one operator: one loop over the input batch with
// every user function inlined, no batch materialised between them.
//
// A kernel is a callable k(const In& x, Next& next) that calls next(out) for every output
// record; stages compose inline (Then). The typed API (stream.h) keeps the composed kernel's type
// in FusedStream and rewrites the chain's node in place when the chain grows. FusionInfo, kept in
// the node's spec, remembers each stage alone so that the node can be split again when a stream
// inside the chain is used a second time (fan-out) or given another parallelism.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/batch.h"
#include "gyre/core/error.h"
#include "gyre/core/event.h"
#include "gyre/core/operators.h"
#include "gyre/core/plan.h"

namespace gyre::detail {

// ---- stages ----
// kAtMostOne: at most one output record per input record (map, filter), so the output of a
// batch fits one buffer of the input's size. flat_map is always last in a chain: its function
// is handed the operator's gyre::Emit<U>& itself.

// The terminal of an at-most-one chain of trivial records: writes into a pre-sized buffer.
template <class T>
struct SlotWriter {
  T* out;
  std::size_t n = 0;
  void operator()(const T& v) { out[n++] = v; }
};
template <class T>
inline constexpr bool kIsSlotWriter = false;
template <class T>
inline constexpr bool kIsSlotWriter<SlotWriter<T>> = true;

template <class F>
struct MapStage {
  static constexpr bool kAtMostOne = true;
  F f;
  std::shared_ptr<std::string> name;  // the operator's name, for errors (shared with the plan)
  template <class X, class Next>
  void operator()(const X& x, Next& next) {
    next(call(x));
  }
  template <class X>
  auto call(const X& x) {
    try {
      return f(x);
    } catch (...) {
      rethrow_in_operator(*name);
    }
  }
};

template <class F>
struct FilterStage {
  static constexpr bool kAtMostOne = true;
  F f;
  std::shared_ptr<std::string> name;
  template <class X, class Next>
  void operator()(const X& x, Next& next) {
    if constexpr (kIsSlotWriter<Next>) {
      // Branch-free compaction: write every record, advance only past kept ones.
      next.out[next.n] = x;
      next.n += test(x) ? 1 : 0;
    } else {
      if (test(x)) next(x);
    }
  }
  template <class X>
  bool test(const X& x) {
    try {
      return static_cast<bool>(f(x));
    } catch (...) {
      rethrow_in_operator(*name);
    }
  }
};

// Last in a chain: `next` is the operator's Emit<U>.
template <class F>
struct FlatMapStage {
  static constexpr bool kAtMostOne = false;
  F f;
  std::shared_ptr<std::string> name;
  template <class X, class Next>
  void operator()(const X& x, Next& next) {
    try {
      f(x, next);
    } catch (...) {
      rethrow_in_operator(*name);
    }
  }
};

// a, then b on each of a's outputs.
template <class A, class B>
struct Then {
  static constexpr bool kAtMostOne = A::kAtMostOne && B::kAtMostOne;
  A a;
  B b;
  template <class X, class Next>
  void operator()(const X& x, Next& next) {
    auto inner = [this, &next](const auto& y) { b(y, next); };
    a(x, inner);
  }
};

// ---- operators ----

// A fused chain In -> Out; its node's records_in are the first stage's, records_out the last's.
template <class In, class Out, class K>
class FusedOp final : public OneInputOp<In> {
 public:
  FusedOp(const OpContext& ctx, K k, Input<Out>* out)
      : OneInputOp<In>(ctx), k_(std::move(k)), out_(out), limit_(records_per_batch<Out>(ctx.batch_bytes)) {}

  void push(std::span<const In> in) override {
    this->records_in += gyre::detail::logical_records(in);
    if constexpr (K::kAtMostOne && kTrivialRecord<Out>) {
      if (buf_.size() < in.size()) buf_.resize(in.size());
      SlotWriter<Out> w{buf_.data()};
      for (const In& x : in) k_(x, w);
      const std::span<const Out> o(buf_.data(), w.n);
      this->records_out += gyre::detail::logical_records(o);
      if (!o.empty()) out_->push(o);
    } else if constexpr (K::kAtMostOne) {
      buf_.clear();
      auto w = [this](const Out& v) { buf_.push_back(v); };
      for (const In& x : in) k_(x, w);
      this->records_out += gyre::detail::logical_records(buf_);
      if (!buf_.empty()) out_->push(std::span<const Out>(buf_));
    } else {
      buf_.clear();
      Emit<Out> emit(&buf_, out_, limit_);
      for (const In& x : in) k_(x, emit);
      emit.flush();
      this->records_out += emit.emitted_records();
    }
  }
  void on_event(const Event& event) override { this->forward(event, out_); }

 private:
  K k_;
  Input<Out>* out_;
  std::size_t limit_;
  std::vector<Out> buf_;
};

// A chain In -> T ending in a for_each sink f(const T&) or f(const T&, int partition).
// records_out counts the records handed to f.
template <class In, class T, class K, class F>
class FusedSinkOp final : public OneInputOp<In> {
 public:
  FusedSinkOp(const OpContext& ctx, K k, F f, std::shared_ptr<std::string> sink_name)
      : OneInputOp<In>(ctx), k_(std::move(k)), f_(std::move(f)), sink_name_(std::move(sink_name)),
        partition_(ctx.partition) {}

  void push(std::span<const In> in) override {
    this->records_in += gyre::detail::logical_records(in);
    if constexpr (K::kAtMostOne && kTrivialRecord<T>) {
      // The chain's outputs of a slice of the input into a small buffer (a filter compacts it
      // without branching), then f over the buffer: no data-dependent branch around f, whose
      // side effects the compiler may not make unconditional.
      T buf[kSlice];
      for (std::size_t i = 0; i < in.size(); i += kSlice) {
        const std::size_t end = std::min(in.size(), i + kSlice);
        SlotWriter<T> w{buf};
        for (std::size_t j = i; j < end; ++j) k_(in[j], w);
        this->records_out += gyre::detail::logical_records(std::span<const T>(buf, w.n));
        for (std::size_t j = 0; j < w.n; ++j) call(buf[j]);
      }
    } else {
      std::uint64_t n = 0;
      auto sink = [this, &n](const T& y) {
        n += gyre::detail::logical_records_of(y);
        call(y);
      };
      for (const In& x : in) k_(x, sink);
      this->records_out += n;
    }
  }
  void on_event(const Event& /*event*/) override {}

 private:
  void call(const T& y) {
    try {
      if constexpr (std::is_invocable_v<F&, const T&, int>)
        f_(y, partition_);
      else
        f_(y);
    } catch (...) {
      rethrow_in_operator(*sink_name_);
    }
  }
  static constexpr std::size_t kSlice = std::max<std::size_t>(1, 4096 / sizeof(T));
  K k_;
  F f_;
  std::shared_ptr<std::string> sink_name_;
  int partition_;
};

// ---- the plan side ----

// Kept in the spec of a node that runs a fused chain.
struct FusionInfo {
  struct Stage {
    std::string kind;  // "map", "filter", "flat_map", "sink: for_each"
    std::shared_ptr<std::string> name;  // the user's name of this operator (shared with its kernel)
    Partitioning input = Partitioning::kAuto;  // the edge into this stage were it alone
    NodeSpec alone;   // this stage by itself
    NodeSpec prefix;  // stages 0 .. this one fused (what the node ran when this was its last)
  };
  std::vector<Stage> stages;
  // After a split: where the output of stage i went, as (node, stage of that node's chain + 1,
  // or 0 for the node's own output). Empty while the chain is whole.
  std::vector<std::pair<int, int>> moved;
  // Its node's id was handed out (Stream::node()): the chain grows no more.
  bool sealed = false;
};

template <class K>
inline constexpr bool kIsThen = false;
template <class A, class B>
inline constexpr bool kIsThen<Then<A, B>> = true;

// The factory of a node running kernel k (In -> Out). A chain of one stage takes the node's
// name for its errors (gyre's modules may rename a node directly).
template <class In, class Out, class K>
auto fused_make(K k) {
  return [k](const OpContext& c, PortBase* out) -> std::unique_ptr<NodeRuntime> {
    K kk = k;
    if constexpr (!kIsThen<K>) kk.name = std::make_shared<std::string>(c.name);
    return std::make_unique<FusedOp<In, Out, K>>(c, std::move(kk), static_cast<Input<Out>*>(out));
  };
}

// "map -> filter" from the stages' kinds, or their names.
std::string fused_label(const FusionInfo& fi, bool names);

// Splits the chain of node `node` after its stage `stage` (1-based, < the number of stages):
// stages 1..stage stay fused in a new node, the later ones become nodes of their own, the last
// keeping `node`'s id (and its consumers). Every stage is recorded in `moved`.
void split_fused(StreamGraph& g, int node, int stage);

}  // namespace gyre::detail
