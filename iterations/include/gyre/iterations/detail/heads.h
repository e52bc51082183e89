// Loop heads: the operators at the top of an iteration body. A head holds the loop state of its
// partition (partial solution, or solution set + workset), emits it into the body at the start
// of every superstep followed by a superstep-end event, collects what comes back over the
// feedback edges, reports to its LoopController when every feedback input ended the superstep,
// and waits for the global decision. It both consumes inputs and emits on its own, so the
// runtime runs it as a source with an input gate.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/codec.h"
#include "gyre/core/operators.h"
#include "gyre/iterations/controller.h"
#include "gyre/iterations/detail/solution_set.h"

namespace gyre::detail {

// An input port that calls back into its head.
template <class T>
class HeadPort final : public Input<T> {
 public:
  std::function<void(std::span<const T>)> on_push;
  std::function<void()> on_end;
  std::function<void()> on_superstep_end;
  // Event-time streaming loops only (TimedStreamingHead's input); other heads drop watermarks
  // and idleness. Barriers do not enter loops.
  std::function<void(Timestamp)> on_watermark;
  std::function<void()> on_idle;
  void push(std::span<const T> in) override { on_push(in); }
  void on_event(const Event& event) override {
    switch (event.kind) {
      case EventKind::kEnd: on_end(); break;
      case EventKind::kSuperstepEnd: on_superstep_end(); break;
      case EventKind::kWatermark:
        if (on_watermark) on_watermark(event.value);
        break;
      case EventKind::kIdle:
        if (on_idle) on_idle();
        break;
      case EventKind::kBarrier: break;
    }
  }
};

// Port layout of a head, fixed when the plan is built.
struct HeadLayout {
  int criterion_port = -1;     // bulk: counts of the termination criterion stream
  std::vector<int> agg_ports;  // one per aggregator, in the controller's order
  std::vector<int> vec_ports;  // one per vector aggregator, in the controller's order
};

// What all heads share: ports ended, feedback inputs marked, the decision protocol.
class HeadBase : public NodeRuntime, public SourceBase {
 public:
  HeadBase(const OpContext& ctx, std::shared_ptr<LoopController> ctl, int num_ports, int feedback_ports,
           const HeadLayout& layout)
      : ctl_(std::move(ctl)), partition_(ctx.partition), num_ports_(num_ports), feedback_ports_(feedback_ports),
        layout_(layout) {
    ctl_->register_head(ctx.self);
    agg_ports_.resize(layout_.agg_ports.size());
    for (std::size_t i = 0; i < agg_ports_.size(); ++i) {
      auto& p = agg_ports_[i];
      const auto& state = ctl_->aggregators().at(i);
      p.on_push = [this, i, state](std::span<const double> in) {
        records_in += gyre::detail::logical_records(in);
        for (double v : in) aggs_[i] = fold(state->op, aggs_[i], v);
      };
      p.on_end = [this] { port_ended(); };
      p.on_superstep_end = [this] { superstep_ended(); };
    }
    vec_ports_.resize(layout_.vec_ports.size());
    for (std::size_t i = 0; i < vec_ports_.size(); ++i) {
      auto& p = vec_ports_[i];
      const auto& state = ctl_->vector_aggregators().at(i);
      p.on_push = [this, i, state](std::span<const VectorEntry> in) {
        records_in += gyre::detail::logical_records(in);
        auto& v = vecs_[i];
        for (const VectorEntry& e : in) {
          if (e.index >= v.size())
            throw Error("iteration '" + ctl_->name() + "': vector aggregator '" + state->name + "' got index " +
                        std::to_string(e.index) + ", its length is " + std::to_string(v.size()));
          v[e.index] += e.value;
        }
      };
      p.on_end = [this] { port_ended(); };
      p.on_superstep_end = [this] { superstep_ended(); };
    }
    crit_port_.on_push = [this](std::span<const std::uint64_t> in) {
      records_in += gyre::detail::logical_records(in);
      criterion_ += in.size();
    };
    crit_port_.on_end = [this] { port_ended(); };
    crit_port_.on_superstep_end = [this] { superstep_ended(); };
    reset_aggregates();
  }
  SourceBase* source() override { return this; }
  bool accepts_input() override { return !waiting_; }

 protected:
  // Ports shared by bulk and delta heads (criterion, aggregators); nullptr if not one of them.
  PortBase* common_port(int i) {
    if (i == layout_.criterion_port) return &crit_port_;
    for (std::size_t k = 0; k < layout_.agg_ports.size(); ++k)
      if (layout_.agg_ports[k] == i) return &agg_ports_[k];
    for (std::size_t k = 0; k < layout_.vec_ports.size(); ++k)
      if (layout_.vec_ports[k] == i) return &vec_ports_[k];
    return nullptr;
  }
  static double fold(ReduceOp op, double a, double b) {
    return op == ReduceOp::kMin ? std::min(a, b) : op == ReduceOp::kMax ? std::max(a, b) : a + b;
  }
  void reset_aggregates() {
    aggs_.clear();
    for (const auto& a : ctl_->aggregators()) aggs_.push_back(a->identity());
    vecs_.resize(ctl_->vector_aggregators().size());
    for (std::size_t k = 0; k < vecs_.size(); ++k) vecs_[k].assign(ctl_->vector_aggregators()[k]->head_length(), 0.0);
    criterion_ = 0;
  }
  void port_ended() { ++ports_ended_; }
  // One feedback input ended the superstep; when all have, report it.
  void superstep_ended() {
    if (++marks_ < feedback_ports_) return;
    marks_ = 0;
    LocalReport r;
    r.size = next_size();
    r.criterion = criterion_;
    r.aggregates = aggs_;
    r.partition = partition_;
    r.vectors = vecs_;
    report(epoch_, r);
  }
  // Sets the waiting state first: with one rank the decision may come back inside report().
  void report(int epoch, const LocalReport& r) {
    reported_ = epoch;
    waiting_ = true;
    ctl_->report(epoch, r);
  }
  // The decision for the reported epoch, if it came: consumes it.
  bool take_decision(bool& stop) {
    if (!waiting_) return false;
    const auto d = ctl_->decision(reported_);
    if (!d.taken) return false;
    waiting_ = false;
    stop = d.stop;
    return true;
  }
  bool all_ports_ended() const { return ports_ended_ == num_ports_; }
  virtual std::uint64_t next_size() const = 0;

  std::shared_ptr<LoopController> ctl_;
  int partition_;
  int num_ports_;
  int feedback_ports_;  // inputs that carry superstep-end events
  HeadLayout layout_;
  int ports_ended_ = 0;
  int marks_ = 0;
  int epoch_ = 0;       // the superstep running (0: collecting the initial input)
  int reported_ = -1;
  bool waiting_ = false;
  std::vector<double> aggs_;
  std::uint64_t criterion_ = 0;
  HeadPort<std::uint64_t> crit_port_;
  std::vector<HeadPort<double>> agg_ports_;
  std::vector<std::vector<double>> vecs_;  // this superstep's vector aggregates, per aggregator
  std::vector<HeadPort<VectorEntry>> vec_ports_;
};

// Emits a vector in batches, one batch per call.
template <class T>
class BatchedEmitter {
 public:
  explicit BatchedEmitter(std::size_t batch_bytes) : cap_(records_per_batch<T>(batch_bytes)) {}
  // True while records remain after this call.
  bool step(const std::vector<T>& v, Input<T>* out, std::uint64_t& counter) {
    const std::size_t n = std::min(cap_, v.size() - pos_);
    if (n > 0 && out != nullptr) out->push(std::span<const T>(v.data() + pos_, n));
    counter += gyre::detail::logical_records(std::span<const T>(v.data() + pos_, n));
    pos_ += n;
    return pos_ < v.size();
  }
  void reset() { pos_ = 0; }

 private:
  std::size_t cap_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------- checkpoint parts

// What a loop saves besides its records, per partition (e.g. the vertex ids its records refer
// to), so that it can be resumed with another number of partitions.
using CheckpointContext = std::function<std::string(int partition)>;

inline std::string part_name(int partition, const char* what) { return "p" + std::to_string(partition) + "." + what; }

template <class T>
std::string encode_records(const std::vector<T>& records) {
  std::string out;
  if constexpr (Encodable<T>) Codec<std::vector<T>>::encode(records, out);
  return out;
}

template <class T>
std::vector<T> decode_records(const std::map<std::string, std::string>& parts, const std::string& name) {
  std::vector<T> out;
  if constexpr (Encodable<T>) {
    const auto it = parts.find(name);
    if (it == parts.end()) throw Error("checkpoint: part '" + name + "' is missing");
    const char* end = Codec<std::vector<T>>::decode(it->second.data(), it->second.data() + it->second.size(), out);
    if (end != it->second.data() + it->second.size()) throw Error("checkpoint: part '" + name + "' has trailing bytes");
  } else {
    throw Error("checkpoint: records without a codec cannot be restored");
  }
  return out;
}

// Partition p's records of part `what` of one entry (written with `old` partitions): its own
// part if the number of partitions is the same, else through `rehome`, or `keep(record, q)` for
// the records of every old partition q.
template <class T, class Keep>
std::vector<T> restore_records(const std::map<std::string, std::string>& parts,
                               const std::map<std::string, std::string>& context, const char* what, int old,
                               int p, int partitions, const Rehome<T>& rehome, Keep keep) {
  if (old == partitions) return decode_records<T>(parts, part_name(p, what));
  std::vector<std::vector<T>> held;
  for (int q = 0; q < old; ++q) held.push_back(decode_records<T>(parts, part_name(q, what)));
  if (rehome) {
    std::vector<OldPartition<T>> olds;
    for (int q = 0; q < old; ++q) {
      const auto it = context.find(part_name(q, "context"));
      olds.push_back(OldPartition<T>{q, old, std::span<const T>(held[static_cast<std::size_t>(q)]),
                                     it == context.end() ? nullptr : &it->second});
    }
    return rehome(p, partitions, std::span<const OldPartition<T>>(olds));
  }
  std::vector<T> out;
  for (int q = 0; q < old; ++q)
    for (const T& r : held[static_cast<std::size_t>(q)])
      if (keep(r, q)) out.push_back(r);
  return out;
}

// ---------------------------------------------------------------- bulk and delta

// What bulk and delta heads share: a loop state of records T (partial solution, workset) that
// starts as input 0, is emitted into the body at the start of every superstep, and is replaced by
// what comes back on input 1; a decision, a superstep, a decision ..., then the loop's result.
template <class T>
class SuperstepHead : public HeadBase {
 public:
  SourceStatus produce(std::size_t /*max_batches*/) override {
    if (phase_ == Phase::kEmitting) {
      if (emitter_.step(cur_, body_, records_out)) return SourceStatus::kMore;
      phase_ = Phase::kRunning;
      body_->on_event(Event::superstep_end());
      return SourceStatus::kMore;
    }
    if (phase_ == Phase::kFinal) {
      if (emit_result()) return SourceStatus::kMore;
      body_->on_event(Event::end());
      phase_ = Phase::kDone;
      return SourceStatus::kMore;
    }
    if (phase_ == Phase::kDone) return all_ports_ended() ? SourceStatus::kDone : SourceStatus::kIdle;
    bool stop = false;
    if (!take_decision(stop)) return SourceStatus::kIdle;
    const int completed = epoch_;
    const auto due = stop ? LoopController::Entry::kNone : ctl_->entry_due(completed);
    const auto t0 = std::chrono::steady_clock::now();
    CheckpointStorage::Parts parts;
    between_supersteps(due, parts);
    emitter_.reset();
    if (stop) {
      // The loop's last entries must be written (or their failure known) before the job ends.
      ctl_->drain_checkpoints();
      phase_ = Phase::kFinal;
      return SourceStatus::kMore;
    }
    if (epoch_ > first_) {
      cur_.swap(next_);
      next_.clear();
    }
    if (due != LoopController::Entry::kNone) {
      snapshot(due, parts);
      // The context goes with every entry a chain can start from: heads, bulk tails (they hold the
      // whole state), and the first tail of a run from the initial input.
      if (context_ && (due == LoopController::Entry::kHead || ctl_->kind() == LoopKind::kBulk || completed == 1))
        parts.emplace_back(part_name(partition_, "context"), context_(partition_));
      ctl_->add_parts(completed, std::move(parts),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    ++epoch_;
    if (injected_failure(rank_, epoch_, FailureMode::kThrow))
      throw Error("injected failure: a task of rank " + std::to_string(rank_) + " threw at the start of superstep " +
                  std::to_string(epoch_));
    reset_aggregates();
    phase_ = Phase::kEmitting;
    return SourceStatus::kMore;
  }

 protected:
  SuperstepHead(const OpContext& ctx, std::shared_ptr<LoopController> ctl, int num_ports, int feedback_ports,
                const HeadLayout& layout, Input<T>* body)
      : HeadBase(ctx, std::move(ctl), num_ports, feedback_ports, layout), body_(body), emitter_(ctx.batch_bytes),
        rank_(ctx.rank), partitions_(ctx.parallelism) {
    initial_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      cur_.insert(cur_.end(), in.begin(), in.end());
    };
    initial_.on_superstep_end = [] {};
    feedback_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      next_.insert(next_.end(), in.begin(), in.end());
    };
    feedback_.on_end = [this] { port_ended(); };
    feedback_.on_superstep_end = [this] { superstep_ended(); };
  }
  // After the decision: emits (part of) the loop's result to the exit; true while more remains.
  virtual bool emit_result() = 0;
  // Between a superstep's end and the next one's start (or the result); a tail entry due adds
  // what the superstep sent back besides the next records.
  virtual void between_supersteps(LoopController::Entry /*due*/, CheckpointStorage::Parts& /*parts*/) {}
  // The parts of a checkpoint entry, once cur_ holds the state the next superstep starts with.
  virtual void snapshot(LoopController::Entry due, CheckpointStorage::Parts& parts) = 0;
  // When the initial input ended: a resumed loop replaces its state (restore) and numbers its
  // supersteps on from the resumed one; then reports its size.
  void initial_input_ended() {
    if (ctl_->first_superstep() > 0) {
      epoch_ = first_ = ctl_->first_superstep();
      try {
        const auto parts = ctl_->restore_parts();
        restore(*parts);
      } catch (const std::exception& e) {
        ctl_->restored();
        throw Error(std::string("iteration '") + ctl_->name() + "': cannot resume: " + e.what());
      }
      ctl_->restored();
    }
    LocalReport r;
    r.size = gyre::detail::logical_records(cur_);
    report(epoch_, r);
  }
  virtual void restore(const std::vector<std::map<std::string, std::string>>& parts) = 0;
  const std::map<std::string, std::string>& context_parts(const std::vector<std::map<std::string, std::string>>& parts) const {
    return parts.front();  // every entry of a chain has the first one's partition layout
  }
  std::uint64_t next_size() const override { return gyre::detail::logical_records(next_); }

  Input<T>* body_;
  BatchedEmitter<T> emitter_;
  int rank_;
  int partitions_;
  int first_ = 0;  // the superstep this run started after
  CheckpointContext context_;
  HeadPort<T> initial_;   // input 0; its on_end is the kind's
  HeadPort<T> feedback_;  // input 1
  std::vector<T> cur_;
  std::vector<T> next_;

 private:
  enum class Phase { kRunning, kEmitting, kFinal, kDone };
  Phase phase_ = Phase::kRunning;
};

// Inputs: 0 initial partial solution, 1 next partial solution (feedback), then the criterion and
// aggregator inputs (feedback) of the layout.
template <class T>
class BulkHead final : public SuperstepHead<T> {
  using Base = SuperstepHead<T>;

 public:
  BulkHead(const OpContext& ctx, std::shared_ptr<LoopController> ctl, int num_ports, const HeadLayout& layout,
           Input<T>* body, Input<T>* exit, CheckpointContext context, Rehome<T> rehome)
      : Base(ctx, std::move(ctl), num_ports, num_ports - 1, layout, body), exit_(exit), rehome_(std::move(rehome)) {
    this->context_ = std::move(context);
    this->initial_.on_end = [this] {
      this->port_ended();
      this->initial_input_ended();
    };
  }
  PortBase* port(int i) override {
    if (i == 0) return &this->initial_;
    if (i == 1) return &this->feedback_;
    return this->common_port(i);
  }

 private:
  // The last superstep's output (or the initial input if none ran).
  bool emit_result() override {
    std::vector<T>& result = this->epoch_ == this->first_ ? this->cur_ : this->next_;
    if (this->emitter_.step(result, exit_, this->records_out)) return true;
    if (exit_ != nullptr) exit_->on_event(Event::end());
    return false;
  }
  // Heads and tails hold the same: the partial solution.
  void snapshot(LoopController::Entry /*due*/, CheckpointStorage::Parts& parts) override {
    parts.emplace_back(part_name(this->partition_, "partial"), encode_records(this->cur_));
  }
  void restore(const std::vector<std::map<std::string, std::string>>& parts) override {
    const int old = this->ctl_->recovery().chain.back().info.partitions;
    const int n = this->partitions_;
    const int p = this->partition_;
    this->cur_ = restore_records<T>(parts.back(), this->context_parts(parts), "partial", old, p, n, rehome_,
                                    [n, p](const T&, int q) { return q % n == p; });
  }

  Input<T>* exit_;
  Rehome<T> rehome_;
};

// ---------------------------------------------------------------- delta

// Inputs: 0 initial workset, 1 next workset (feedback), 2 initial solution set (partitioned by
// key), 3 solution-set deltas (feedback, partitioned by key), then aggregators (feedback).
// Deltas are applied between supersteps, so every superstep reads the solution set as the
// previous one left it, whatever the order records arrive in.
template <class S, class W, class Index>
class DeltaHead final : public SuperstepHead<W> {
  using Base = SuperstepHead<W>;

 public:
  DeltaHead(const OpContext& ctx, std::shared_ptr<LoopController> ctl, int num_ports, const HeadLayout& layout,
            std::shared_ptr<SolutionSetState<Index>> state, Input<W>* body, Input<S>* exit, CheckpointContext context,
            std::function<int(const S&, int)> home, Rehome<S> rehome_s, Rehome<W> rehome_w)
      : Base(ctx, std::move(ctl), num_ports, num_ports - 2, layout, body), state_(std::move(state)), exit_(exit),
        name_(ctx.name), batch_bytes_(ctx.batch_bytes), home_(std::move(home)), rehome_s_(std::move(rehome_s)),
        rehome_w_(std::move(rehome_w)) {
    this->context_ = std::move(context);
    index_ = &state_->create(ctx.partition, ctx.parallelism);
    this->initial_.on_end = [this] { initial_ended(); };
    initial_ss_.on_push = [this](std::span<const S> in) {
      this->records_in += gyre::detail::logical_records(in);
      try {
        for (const S& s : in) index_->upsert(s);
      } catch (...) {
        rethrow_in_operator(name_);
      }
    };
    initial_ss_.on_end = [this] { initial_ended(); };
    initial_ss_.on_superstep_end = [] {};
    deltas_.on_push = [this](std::span<const S> in) {
      this->records_in += gyre::detail::logical_records(in);
      pending_.insert(pending_.end(), in.begin(), in.end());
    };
    deltas_.on_end = [this] { this->port_ended(); };
    deltas_.on_superstep_end = [this] { this->superstep_ended(); };
  }
  PortBase* port(int i) override {
    switch (i) {
      case 0: return &this->initial_;
      case 1: return &this->feedback_;
      case 2: return &initial_ss_;
      case 3: return &deltas_;
      default: return this->common_port(i);
    }
  }

 private:
  // The final solution set.
  bool emit_result() override {
    if (exit_ == nullptr) return false;
    const std::size_t cap = records_per_batch<S>(batch_bytes_);
    std::vector<S> out;
    out.reserve(cap);
    auto flush = [&] {
      if (out.empty()) return;
      exit_->push(std::span<const S>(out));
      this->records_out += gyre::detail::logical_records(out);
      out.clear();
    };
    index_->for_each([&](const S& s) {
      out.push_back(s);
      if (out.size() >= cap) flush();
    });
    flush();
    exit_->on_event(Event::end());
    return false;
  }
  void between_supersteps(LoopController::Entry due, CheckpointStorage::Parts& parts) override {
    if (due == LoopController::Entry::kTail) parts.emplace_back(part_name(this->partition_, "delta"), encode_records(pending_));
    try {
      for (const S& s : pending_) index_->upsert(s);
    } catch (...) {
      rethrow_in_operator(name_);
    }
    pending_.clear();
  }
  // A head holds the solution set and the workset; a tail the deltas (added above) and the workset.
  void snapshot(LoopController::Entry due, CheckpointStorage::Parts& parts) override {
    if (due == LoopController::Entry::kHead) {
      std::vector<S> all;
      index_->for_each([&](const S& s) { all.push_back(s); });
      parts.emplace_back(part_name(this->partition_, "solution"), encode_records(all));
    }
    parts.emplace_back(part_name(this->partition_, "workset"), encode_records(this->cur_));
  }
  // The head's solution set (or the initial one), the tails' deltas in order, the last workset.
  void restore(const std::vector<std::map<std::string, std::string>>& parts) override {
    const auto& recovery = this->ctl_->recovery();
    const int n = this->partitions_;
    const int p = this->partition_;
    const auto& context = this->context_parts(parts);
    auto by_key = [this, n, p](const S& s, int) { return home_(s, n) == p; };
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const CheckpointInfo& info = recovery.chain[i].info;
      const bool head = info.kind == "head";
      if (head) index_->clear();
      for (const S& s : restore_records<S>(parts[i], context, head ? "solution" : "delta", info.partitions, p, n,
                                           rehome_s_, by_key))
        index_->upsert(s);
    }
    this->cur_ = restore_records<W>(parts.back(), context, "workset", recovery.chain.back().info.partitions, p, n,
                                    rehome_w_, [n, p](const W&, int q) { return q % n == p; });
  }
  void initial_ended() {
    this->port_ended();
    if (++initial_ended_ < 2) return;
    if (this->ctl_->first_superstep() > 0) this->cur_.clear();
    this->initial_input_ended();
  }

  std::shared_ptr<SolutionSetState<Index>> state_;
  Index* index_ = nullptr;
  Input<S>* exit_;
  std::string name_;
  std::size_t batch_bytes_;
  HeadPort<S> initial_ss_;
  HeadPort<S> deltas_;
  std::vector<S> pending_;  // deltas of the running superstep
  int initial_ended_ = 0;
  std::function<int(const S&, int)> home_;  // the partition of a solution-set record, of n
  Rehome<S> rehome_s_;
  Rehome<W> rehome_w_;
};

// ---------------------------------------------------------------- streaming

// Inputs: 0 the loop's input, 1 the feedback. Records pass straight through. Once the input
// ended everywhere the loop runs termination-detection rounds: the head emits a superstep-end
// event, keeps forwarding feedback records (counting them) until the event came back over the
// feedback edge from every producer, then reports the count and holds further feedback until
// the decision. A round in which no head forwarded anything proves the loop empty: every record
// a head emitted before its event was processed, and its results delivered, before the event
// came back. Then the heads end the body.
template <class T>
class StreamingHead final : public HeadBase {
 public:
  StreamingHead(const OpContext& ctx, std::shared_ptr<LoopController> ctl, Input<T>* body)
      : HeadBase(ctx, std::move(ctl), 2, 1, HeadLayout{}), body_(body) {
    input_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      records_out += gyre::detail::logical_records(in);
      body_->push(in);
    };
    input_.on_end = [this] {
      port_ended();
      report(0, LocalReport{});
    };
    input_.on_superstep_end = [] {};
    feedback_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      records_out += gyre::detail::logical_records(in);
      forwarded_ += gyre::detail::logical_records(in);
      body_->push(in);
    };
    feedback_.on_end = [this] { port_ended(); };
    feedback_.on_superstep_end = [this] { superstep_ended(); };
  }
  PortBase* port(int i) override { return i == 0 ? static_cast<PortBase*>(&input_) : &feedback_; }
  SourceStatus produce(std::size_t /*max_batches*/) override {
    if (done_) return all_ports_ended() ? SourceStatus::kDone : SourceStatus::kIdle;
    bool stop = false;
    if (!take_decision(stop)) return SourceStatus::kIdle;
    if (stop) {
      body_->on_event(Event::end());
      done_ = true;
      return SourceStatus::kMore;
    }
    ++epoch_;
    forwarded_ = 0;
    body_->on_event(Event::superstep_end());
    return SourceStatus::kMore;
  }

 private:
  std::uint64_t next_size() const override { return forwarded_; }

  Input<T>* body_;
  HeadPort<T> input_;
  HeadPort<T> feedback_;
  std::uint64_t forwarded_ = 0;
  bool done_ = false;
};

// A streaming loop whose records carry event time (ts(record)), with progress tracking in the
// manner of Naiad's, built on the termination detection above. Rounds run from the start: after
// each decision the head emits a superstep-end event (the round's marker) into the body and
// reports when it came back over the feedback edge from every producer. Between one report and
// the next the head counts the records it pushes into the body (input and feedback) and their
// smallest timestamp: the round's pushes. It does not hold its inputs while a decision is
// taken. When the round's marker is back at every head, every record pushed before it, and
// everything computed from it, has left the loop or come back to a head before the marker and
// been pushed again in this round (the marker follows them on every channel). So whatever is in
// the loop after the decision descends from this round's pushes or later ones, and a later push
// is a new input record (after the input watermark the head reported) or comes from those.
// If the body never gives a record a timestamp below that of the record it came from (it keeps
// them, or moves them later), nothing at or below
//   W = min(smallest timestamp pushed this round on any rank - 1, the input watermark)
// can come out of the loop again, and the head emits watermark(W) into the body: the operators
// in the loop and every stream leaving it see it. A loop with nothing older inside holds
// nothing back (W is the input watermark). Records the body derives from others must be emitted
// before the operator passes the marker on (as every built-in operator does); a keyed
// operator that keeps records in its state to emit later (on a timer) is not tracked.
// A round in which nothing was pushed anywhere, with every input ended, proves the loop empty:
// the heads end the body (the stream leaving the loop then gets watermark +inf and its end).
// A round starts at most once per IterationOptions::progress_interval (the watermark's step
// and an idle loop's cost), or when the previous one was decided, if that is later.
template <class T, class TsFn>
class TimedStreamingHead final : public HeadBase {
 public:
  TimedStreamingHead(const OpContext& ctx, std::shared_ptr<LoopController> ctl, Input<T>* body, TsFn ts,
                     std::chrono::microseconds interval)
      : HeadBase(ctx, std::move(ctl), 2, 1, HeadLayout{}), body_(body), ts_(std::move(ts)), wake_at_(ctx.wake_at),
        interval_(interval) {
    input_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      push(in);
    };
    input_.on_end = [this] {
      port_ended();
      input_ended_ = true;
    };
    input_.on_superstep_end = [] {};
    input_.on_watermark = [this](Timestamp t) {
      input_idle_ = false;
      input_wm_ = std::max(input_wm_, t);
    };
    input_.on_idle = [this] { input_idle_ = true; };
    feedback_.on_push = [this](std::span<const T> in) {
      records_in += gyre::detail::logical_records(in);
      push(in);
    };
    feedback_.on_end = [this] { port_ended(); };
    feedback_.on_superstep_end = [this] { round_ended(); };
  }
  PortBase* port(int i) override { return i == 0 ? static_cast<PortBase*>(&input_) : &feedback_; }
  // Input and feedback keep flowing while a round's decision is taken (see above).
  bool accepts_input() override { return true; }
  void on_processing_time(std::chrono::steady_clock::time_point /*now*/) override {}
  SourceStatus produce(std::size_t /*max_batches*/) override {
    if (done_) return all_ports_ended() ? SourceStatus::kDone : SourceStatus::kIdle;
    if (!started_) {  // the first round starts at once
      started_ = true;
      start_round();
      return SourceStatus::kMore;
    }
    if (pause_until_) {
      // A round starts at most once per interval.
      if (std::chrono::steady_clock::now() < *pause_until_) {
        if (!wake_asked_) {
          wake_asked_ = true;
          if (wake_at_) wake_at_(*pause_until_);
        }
        return SourceStatus::kIdle;
      }
      pause_until_.reset();
      start_round();
      return SourceStatus::kMore;
    }
    if (!waiting_) return SourceStatus::kIdle;
    const auto d = ctl_->decision(reported_);
    if (!d.taken) return SourceStatus::kIdle;
    waiting_ = false;
    if (d.stop) {
      body_->on_event(Event::end());
      done_ = true;
      return SourceStatus::kMore;
    }
    if (d.watermark > emitted_wm_) {
      emitted_wm_ = d.watermark;
      body_->on_event(Event::watermark(d.watermark));
    }
    ++epoch_;
    const auto next = last_start_ + interval_;
    if (std::chrono::steady_clock::now() >= next) {
      start_round();
    } else {
      pause_until_ = next;
      wake_asked_ = false;
    }
    return SourceStatus::kMore;
  }

 private:
  void push(std::span<const T> in) {
    Timestamp lo = min_ts_;
    for (const T& r : in) lo = std::min(lo, static_cast<Timestamp>(ts_(r)));
    min_ts_ = lo;
    const std::uint64_t n = gyre::detail::logical_records(in);
    pushed_ += n;
    records_out += n;
    body_->push(in);
  }
  void start_round() {
    last_start_ = std::chrono::steady_clock::now();
    body_->on_event(Event::superstep_end());
  }
  // The marker came back from every producer: reports the round; what the head pushes from now
  // on counts in the next one.
  void round_ended() {
    LocalReport r;
    r.size = pushed_;
    r.min_ts = min_ts_;
    if (!input_ended_) {
      if (input_idle_) {
        r.idle = 1;
        r.idle_wm = input_wm_;
      } else {
        r.active = 1;
        r.active_wm = input_wm_;
      }
    }
    pushed_ = 0;
    min_ts_ = kMaxTimestamp;
    report(epoch_, r);
  }
  std::uint64_t next_size() const override { return pushed_; }

  Input<T>* body_;
  TsFn ts_;
  std::function<void(std::chrono::steady_clock::time_point)> wake_at_;
  std::chrono::microseconds interval_;  // between the starts of two rounds, at least
  std::chrono::steady_clock::time_point last_start_{};
  HeadPort<T> input_;
  HeadPort<T> feedback_;
  std::uint64_t pushed_ = 0;          // records pushed into the body since the last report
  Timestamp min_ts_ = kMaxTimestamp;  // ... their smallest timestamp
  Timestamp input_wm_ = kMinTimestamp;
  bool input_idle_ = false;
  bool input_ended_ = false;
  Timestamp emitted_wm_ = kMinTimestamp;
  std::optional<std::chrono::steady_clock::time_point> pause_until_;
  bool wake_asked_ = false;
  bool started_ = false;
  bool done_ = false;
};

}  // namespace gyre::detail
