// The public operator API: write an operator as a class, add it to a plan.
//
//   struct Dedup : gyre::OneInputOperator<Event, Event> {
//     std::unordered_set<std::uint64_t> seen;
//     void process(std::span<const Event> in, gyre::Output<Event>& out) override {
//       for (const Event& e : in)
//         if (seen.insert(e.id).second) out.emit(e);
//     }
//   };
//   auto unique = events.key_by(&Event::id).process("dedup", Dedup{});   // one copy per partition
//
// An operator sees whole batches (process gets a span) and emits through Output<T>, which
// buffers into batches of JobConfig::batch_bytes: emitting a record is a push_back. Control
// events arrive aligned over the input's channels (event.h) as on_watermark / on_superstep_end /
// on_end / on_barrier calls; the defaults do nothing, and the adapter passes each event on
// downstream after the call (a superstep end only inside an iteration). A stateless operator
// writes process() alone.
//
// Several typed outputs: OutputTag<T> names a side output; ctx.output(tag) in open() gives its
// Output<T>&, stream.side_output(tag) its Stream<T>. A side output nothing reads drops its
// records.
//
// OperatorBuilder is the low-level plan builder under all of it (and under gyre's own modules:
// iterations, the graph loader): a node with typed inputs (a partitioning each), typed outputs,
// plan flags and a factory that makes the operator instance of every partition.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "gyre/core/batch.h"
#include "gyre/core/codec.h"
#include "gyre/core/concepts.h"
#include "gyre/core/config.h"
#include "gyre/core/error.h"
#include "gyre/core/event.h"
#include "gyre/core/plan.h"
#include "gyre/core/snapshot.h"
#include "gyre/core/state.h"
#include "gyre/core/writers.h"

namespace gyre {

class Environment;
template <Record T>
class Stream;

using SourceStatus = detail::SourceStatus;  // kMore, kIdle (nothing now), kDone

// ---------------------------------------------------------------- outputs

// One output of an operator. emit() buffers; gyre pushes the buffer downstream when it holds a
// batch, after every process call and before every event.
template <class T>
class Output : public detail::OutputBase {
 public:
  // port: where the records go (nullptr: nowhere, they are dropped); counter: the operator's
  // output record count in the metrics.
  Output(detail::PortBase* port, std::size_t batch_bytes, std::uint64_t* counter)
      : port_(static_cast<detail::Input<T>*>(port)), limit_(detail::records_per_batch<T>(batch_bytes)),
        counter_(counter) {
    if (port_ != nullptr) buf_.reserve(limit_);
  }

  void emit(const T& v) {
    buf_.push_back(v);
    if (buf_.size() >= limit_) flush();
  }
  void emit(T&& v) {
    buf_.push_back(std::move(v));
    if (buf_.size() >= limit_) flush();
  }
  // A whole span, passed on without copying (after what is buffered).
  void emit(std::span<const T> records) {
    if (records.empty()) return;
    flush();
    if (port_ == nullptr) return;
    *counter_ += detail::logical_records(records);
    port_->push(records);
  }

  // True if something reads this output.
  bool connected() const { return port_ != nullptr; }

  void flush() final {
    if (buf_.empty()) return;
    if (port_ != nullptr) {
      *counter_ += detail::logical_records(std::span<const T>(buf_));
      port_->push(std::span<const T>(buf_));
    }
    buf_.clear();
  }
  void forward(const Event& event) final {
    flush();
    if (port_ != nullptr) port_->on_event(event);
  }

 private:
  detail::Input<T>* port_;
  std::size_t limit_;
  std::uint64_t* counter_;
  std::vector<T> buf_;
};

// The name of a side output carrying records of type T. Tags are compared by name.
template <Record T>
class OutputTag {
 public:
  using value_type = T;
  explicit OutputTag(std::string name) : name_(std::move(name)) {
    if (name_.empty()) throw PlanError("an OutputTag needs a name");
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

namespace detail {
// Records of type T on an output: how they move, encode and fan out.
template <class T>
OutputSpec output_spec(std::string tag = {}) {
  OutputSpec o;
  o.tag = std::move(tag);
  o.record_bytes = sizeof(T);
  o.type = &typeid(T);
  if constexpr (Encodable<T> && std::default_initializable<T>) {
    o.encode = [](const BatchBase& b, std::string& out) {
      encode_batch<T>(std::span<const T>(static_cast<const Batch<T>&>(b).data), out);
    };
    o.decode = [](const char* p, const char* end, std::size_t n) { return decode_batch<T>(p, end, n); };
  }
  o.make_writer = single_writer_factory<T>();
  o.make_tee = [](std::vector<PortBase*> outs) -> std::unique_ptr<PortBase> {
    std::vector<Input<T>*> typed;
    typed.reserve(outs.size());
    for (auto* p : outs) typed.push_back(static_cast<Input<T>*>(p));
    return std::make_unique<Tee<T>>(std::move(typed));
  };
  o.make_output = [](PortBase* port, std::size_t batch_bytes, std::uint64_t* counter) -> std::unique_ptr<OutputBase> {
    return std::make_unique<Output<T>>(port, batch_bytes, counter);
  };
  return o;
}
template <class Out>
class OneInputAdapterBase;
template <class Op>
class OneInputAdapter;
template <class Op>
class TwoInputAdapter;
template <class Op>
class SourceAdapter;
template <class Op>
class SinkAdapter;
}  // namespace detail

// What a source emits through: records, watermarks, idleness.
template <class T>
class SourceOutput : public Output<T> {
 public:
  using Output<T>::Output;
  // No record older than t follows (on every output of the source).
  void emit_watermark(Timestamp t) { send(Event::watermark(t)); }
  // This partition sends no watermarks for now: consumers do not wait for it (until its next
  // watermark).
  void mark_idle() { send(Event::idle()); }

 private:
  template <class>
  friend class detail::SourceAdapter;
  void send(const Event& e) {
    if (forward_all_) forward_all_(e);
    else this->forward(e);
  }
  std::function<void(const Event&)> forward_all_;
};

// ---------------------------------------------------------------- context

// What an operator instance knows about where it runs; given to open().
class OperatorContext {
 public:
  explicit OperatorContext(const detail::OpContext& c, std::uint64_t* records_out,
                           const std::vector<detail::PortBase*>& outs, int inputs)
      : c_(c), counter_(records_out), watermarks_(static_cast<std::size_t>(inputs), kMinTimestamp) {
    // Output 0 is the operator's typed main output, made by its adapter; side outputs here.
    outputs_.resize(outs.size());
    tags_.resize(outs.size());
    if (c_.outputs != nullptr)
      for (std::size_t i = 1; i < outs.size() && i < c_.outputs->size(); ++i) {
        tags_[i] = (*c_.outputs)[i].tag;
        outputs_[i] = (*c_.outputs)[i].make_output(outs[i], c_.batch_bytes, counter_);
      }
    c_.outputs = nullptr;  // the plan may go away while the job runs
  }
  OperatorContext(const OperatorContext&) = delete;
  OperatorContext& operator=(const OperatorContext&) = delete;

  const std::string& name() const { return c_.name; }
  int partition() const { return c_.partition; }
  int parallelism() const { return c_.parallelism; }
  int rank() const { return c_.rank; }
  const JobConfig& config() const { return *c_.config; }
  // Inside an iteration body (superstep ends arrive).
  bool in_loop() const { return c_.in_loop; }
  // Input i comes from inside the loop (new every superstep), not from a loop-invariant stream.
  bool input_in_loop(int i) const {
    return c_.in_loop && static_cast<std::size_t>(i) < c_.input_in_loop.size() &&
           c_.input_in_loop[static_cast<std::size_t>(i)];
  }
  // The current input watermark: of input i, or (no argument) the operator's, the minimum over
  // its inputs. kMinTimestamp before the first watermark.
  Timestamp watermark() const { return watermark_; }
  Timestamp watermark(int input) const { return watermarks_.at(static_cast<std::size_t>(input)); }

  // The side output `tag` (stream.side_output(tag) reads it); if nothing reads it, an output
  // that drops its records. Call it in open() and keep the reference.
  template <Record T>
  Output<T>& output(const OutputTag<T>& tag) {
    for (std::size_t i = 1; i < outputs_.size(); ++i)
      if (outputs_[i] && tags_[i] == tag.name()) {
        auto* o = dynamic_cast<Output<T>*>(outputs_[i].get());
        if (o == nullptr)
          throw PlanError("operator '" + name() + "': side output '" + tag.name() +
                          "' was read with another record type");
        return *o;
      }
    for (auto& [n, o] : unread_)
      if (n == tag.name()) {
        auto* typed = dynamic_cast<Output<T>*>(o.get());
        if (typed == nullptr)
          throw PlanError("operator '" + name() + "': side output '" + tag.name() + "' used with two record types");
        return *typed;
      }
    unread_.emplace_back(tag.name(), std::make_unique<Output<T>>(nullptr, c_.batch_bytes, counter_));
    return static_cast<Output<T>&>(*unread_.back().second);
  }

  // The operator instance's keyed state (state.h): named value / list / map states and timers,
  // kept in the key groups this partition owns, snapshotted at checkpoint barriers
  // (JobConfig::snapshots) and restored from JobConfig::restore_from. Keys must be the ones the
  // input is partitioned on (key_by(k).process(...)), so that each key's state is in the
  // partition its records reach. Made on first use; an operator that never calls it has none.
  KeyedStateBackend& state() {
    if (!state_) state_ = std::make_unique<KeyedStateBackend>(c_.partition, c_.parallelism);
    return *state_;
  }
  bool has_state() const { return state_ != nullptr; }

  // Processing time: milliseconds on the steady clock (what processing-time timers use).
  static Timestamp processing_time() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // Asks the runtime's timer service to call this operator (on_processing_time) at processing
  // time t; no worker waits for it.
  void wake_at(Timestamp t) const {
    if (c_.wake_at) c_.wake_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(t)));
  }

  // Counts n records the operator found late (dropped or sent to a late-data side output): the
  // job metrics' OperatorMetrics::records_late.
  void count_late(std::uint64_t n) {
    if (late_ != nullptr) *late_ += n;
  }
  // Counts n records the operator dropped because the window they belong to had closed (its
  // trigger finished; they are not late): OperatorMetrics::records_dropped.
  void count_dropped(std::uint64_t n) {
    if (dropped_ != nullptr) *dropped_ += n;
  }

  // For gyre's adapters.
  const detail::OpContext& internal() const { return c_; }

 private:
  template <class>
  friend class detail::OneInputAdapterBase;
  template <class>
  friend class detail::OneInputAdapter;
  template <class>
  friend class detail::TwoInputAdapter;
  template <class>
  friend class detail::SourceAdapter;
  template <class>
  friend class detail::SinkAdapter;

  void set_main(std::unique_ptr<detail::OutputBase> o) {
    if (outputs_.empty()) outputs_.resize(1);
    outputs_[0] = std::move(o);
  }
  void flush_side() {
    for (std::size_t i = 1; i < outputs_.size(); ++i)
      if (outputs_[i]) outputs_[i]->flush();
    for (auto& u : unread_) u.second->flush();
  }
  // Flushes every output and passes `event` on on each.
  void forward(const Event& event) {
    for (auto& o : outputs_)
      if (o) o->forward(event);
    for (auto& u : unread_) u.second->flush();
  }

  detail::OpContext c_;
  std::uint64_t* counter_;
  std::uint64_t* late_ = nullptr;
  std::uint64_t* dropped_ = nullptr;
  std::vector<std::unique_ptr<detail::OutputBase>> outputs_;
  std::vector<std::string> tags_;  // per output: its tag (side outputs)
  std::vector<std::pair<std::string, std::unique_ptr<detail::OutputBase>>> unread_;
  std::vector<Timestamp> watermarks_;
  Timestamp watermark_ = kMinTimestamp;
  std::unique_ptr<KeyedStateBackend> state_;
};

// ---------------------------------------------------------------- operator bases

// An operator with one input. process() is called once per batch (never with an empty span).
// Events: each callback is called once the event arrived on every channel of the input; after
// it, the adapter passes the event on on every output.
template <class In, class Out>
class OneInputOperator {
 public:
  using input_type = In;
  using output_type = Out;
  virtual ~OneInputOperator() = default;

  // Once, before any record, in the partition that runs this instance.
  virtual void open(OperatorContext& /*ctx*/) {}
  virtual void process(std::span<const In> in, Output<Out>& out) = 0;
  // The input watermark advanced to t (ctx.watermark() is t).
  virtual void on_watermark(Timestamp /*t*/, Output<Out>& /*out*/) {}
  // Inside an iteration: the input finished the current superstep.
  virtual void on_superstep_end(Output<Out>& /*out*/) {}
  // The input ended: nothing more will come.
  virtual void on_end(Output<Out>& /*out*/) {}
  // Checkpoint barrier `id` arrived (everything before it belongs to that checkpoint).
  virtual void on_barrier(std::int64_t /*id*/) {}
  // Checkpointing placeholders: operator state outside keyed state, as bytes.
  virtual void snapshot(std::string& /*out*/) {}
  virtual void restore(std::string_view /*in*/) {}

  // For KeyedOperator (timers); other operators need not override these. attach() is called
  // before open(); advance_event_time before on_watermark; advance_processing_time when a
  // wake-up asked for with ctx.wake_at is due.
  virtual void attach(OperatorContext& /*ctx*/) {}
  virtual void advance_event_time(Timestamp /*t*/, Output<Out>& /*out*/) {}
  virtual void advance_processing_time(Timestamp /*now*/, Output<Out>& /*out*/) {}
};

// A one-input operator on a keyed stream (key_by(k).process(...)) with keyed state and timers.
// State: ctx.state() (or state() here), with keys of type K. Timers per (key, time), deduplicated:
// an event-time timer fires (on_timer) when the input watermark reaches its time, in time order,
// before on_watermark; at the end of a bounded input the watermark is +inf, so every event-time
// timer fires before on_end. A processing-time timer fires once the steady clock passed its time
// (milliseconds, ctx.processing_time()), called by the rank's timer service, never by a sleeping
// worker. Timers are state: they are in every snapshot and restored with their key's key group.
template <class K, class In, class Out>
class KeyedOperator : public OneInputOperator<In, Out> {
 public:
  using key_type = K;

  virtual void on_timer(const K& /*key*/, Timestamp /*time*/, TimeDomain /*domain*/, Output<Out>& /*out*/) {}

 protected:
  KeyedStateBackend& state() { return ctx_->state(); }
  OperatorContext& context() { return *ctx_; }
  TimerService<K>& timers() { return *timers_; }
  Timestamp current_watermark() const { return ctx_->watermark(); }
  Timestamp processing_time() const { return OperatorContext::processing_time(); }
  // False if that timer existed already.
  bool register_event_time_timer(const K& key, Timestamp t) { return timers_->register_event_time(key, t); }
  bool register_processing_time_timer(const K& key, Timestamp t) {
    const bool fresh = timers_->register_processing_time(key, t);
    if (fresh && t < next_wake_) {  // one wake-up asked for at a time: the earliest
      next_wake_ = t;
      ctx_->wake_at(t);
    }
    return fresh;
  }
  bool delete_event_time_timer(const K& key, Timestamp t) { return timers_->delete_timer(TimeDomain::kEventTime, key, t); }
  bool delete_processing_time_timer(const K& key, Timestamp t) {
    return timers_->delete_timer(TimeDomain::kProcessingTime, key, t);
  }

 public:
  void attach(OperatorContext& ctx) override {
    ctx_ = &ctx;
    timers_ = &ctx.state().template timers<K>();
  }
  void advance_event_time(Timestamp t, Output<Out>& out) override {
    timers_->advance_watermark(t, [&](const K& k, Timestamp ts) { on_timer(k, ts, TimeDomain::kEventTime, out); });
  }
  void advance_processing_time(Timestamp now, Output<Out>& out) override {
    if (now >= next_wake_) next_wake_ = kMaxTimestamp;  // the wake-up asked for came
    timers_->fire_processing(now, [&](const K& k, Timestamp ts) { on_timer(k, ts, TimeDomain::kProcessingTime, out); });
    const Timestamp next = timers_->next_processing_time();
    if (next != kMaxTimestamp && next < next_wake_) {  // (also after a restore)
      next_wake_ = next;
      ctx_->wake_at(next);
    }
  }

 private:
  OperatorContext* ctx_ = nullptr;
  TimerService<K>* timers_ = nullptr;
  Timestamp next_wake_ = kMaxTimestamp;  // the wake-up asked for (kMaxTimestamp: none)
};

// An operator with two inputs (of possibly different types), e.g. a hand-written join. An event
// reaches it once both inputs delivered it: end when both ended; superstep end when both ended
// the superstep (a loop-invariant input counts once it ended); the watermark is the minimum of
// the two inputs' (an idle input does not hold it back); a barrier once both ports delivered it.
// Inside a loop body, an input from outside the loop is loop-invariant: its records arrive once,
// in the first superstep, and the operator keeps what it needs of them (ctx.input_in_loop(i)
// says which input is which); examples/kmeans.cc keeps its points that way.
template <class In1, class In2, class Out>
class TwoInputOperator {
 public:
  using input1_type = In1;
  using input2_type = In2;
  using output_type = Out;
  virtual ~TwoInputOperator() = default;

  virtual void open(OperatorContext& /*ctx*/) {}
  virtual void process1(std::span<const In1> in, Output<Out>& out) = 0;
  virtual void process2(std::span<const In2> in, Output<Out>& out) = 0;
  virtual void on_watermark(Timestamp /*t*/, Output<Out>& /*out*/) {}
  virtual void on_superstep_end(Output<Out>& /*out*/) {}
  virtual void on_end(Output<Out>& /*out*/) {}
  virtual void on_barrier(std::int64_t /*id*/) {}
  virtual void snapshot(std::string& /*out*/) {}
  virtual void restore(std::string_view /*in*/) {}
};

// A source: produce() is called repeatedly in every partition; it emits some records (about a
// batch is a good amount) and says whether there is more (kMore), nothing right now (kIdle:
// called again a little later), or nothing ever again (kDone: gyre then ends the stream).
template <class T>
class Source {
 public:
  using output_type = T;
  virtual ~Source() = default;
  virtual void open(OperatorContext& /*ctx*/) {}
  virtual SourceStatus produce(SourceOutput<T>& out) = 0;
  virtual void snapshot(std::string& /*out*/) {}
  virtual void restore(std::string_view /*in*/) {}
};

// A sink: consume() per batch; commit() after the whole job succeeded (make the output visible),
// abort() after it failed or was cancelled (discard it).
template <class T>
class Sink {
 public:
  using input_type = T;
  virtual ~Sink() = default;
  virtual void open(OperatorContext& /*ctx*/) {}
  virtual void consume(std::span<const T> in) = 0;
  virtual void on_watermark(Timestamp /*t*/) {}
  virtual void on_end() {}
  virtual void commit() {}
  virtual void abort() {}
};

// The lambda form: f(std::span<const In>, Output<Out>&) as a stateless OneInputOperator.
template <class In, class Out, class F>
class LambdaOperator final : public OneInputOperator<In, Out> {
 public:
  explicit LambdaOperator(F f) : f_(std::move(f)) {}
  void process(std::span<const In> in, Output<Out>& out) override { f_(in, out); }

 private:
  F f_;
};

// ---------------------------------------------------------------- adapters (runtime side)

namespace detail {

// Runs `f`; an exception becomes an OperatorError naming the operator.
template <class F>
void guarded(const std::string& name, F&& f) {
  try {
    f();
  } catch (...) {
    rethrow_in_operator(name);
  }
}

// open() runs while the job is built, before it starts: a failure is an Error naming the operator.
template <class Op, class Ctx>
void open_operator(Op& op, Ctx& ctx) {
  try {
    op.open(ctx);
  } catch (const std::exception& e) {
    throw Error(std::string(e.what()) + " (in operator '" + ctx.name() + "', open)");
  }
}

template <class Out>
class OneInputAdapterBase : public NodeRuntime {
 protected:
  OneInputAdapterBase(const OpContext& c, const std::vector<PortBase*>& outs, int inputs)
      : ctx_(c, &records_out, outs, inputs) {
    auto main = std::make_unique<Output<Out>>(outs.empty() ? nullptr : outs[0], c.batch_bytes, &records_out);
    out_ = main.get();
    ctx_.set_main(std::move(main));
    ctx_.late_ = &records_late;
    ctx_.dropped_ = &records_dropped;
  }
  OperatorContext ctx_;
  Output<Out>* out_;
};

template <class Op>
class OneInputAdapter final : public OneInputAdapterBase<typename Op::output_type>,
                              public Input<typename Op::input_type> {
  using In = typename Op::input_type;
  using Out = typename Op::output_type;

 public:
  OneInputAdapter(const OpContext& c, const std::vector<PortBase*>& outs, std::unique_ptr<Op> op)
      : OneInputAdapterBase<Out>(c, outs, 1), op_(std::move(op)), hook_(c) {
    op_->attach(this->ctx_);
    open_operator(*op_, this->ctx_);
    // After open (the operator declared its states): its part of JobConfig::restore_from.
    // (Also when open() made no state yet: the operator may make it on first use.)
    if (c.config != nullptr && c.config->restore_from && c.config->restore_from->nodes.count(c.node) > 0) {
      hook_.restore(*this);
      this->ctx_.wake_at(OperatorContext::processing_time());  // restored processing-time timers
    }
  }
  bool stateful() const override { return this->ctx_.has_state(); }
  void snapshot(std::vector<StateSnapshot>& out) const override {
    if (!this->ctx_.has_state()) return;
    auto part = const_cast<OperatorContext&>(this->ctx_).state().snapshot();
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  void restore(std::span<const StateSnapshot> from) override { this->ctx_.state().restore(from); }
  void on_processing_time(std::chrono::steady_clock::time_point now) override {
    const Timestamp ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    guarded(this->ctx_.name(), [&] { op_->advance_processing_time(ms, *this->out_); });
    this->out_->flush();
    this->ctx_.flush_side();
  }
  PortBase* port(int /*i*/) override { return static_cast<Input<In>*>(this); }

  void push(std::span<const In> in) override {
    this->records_in += logical_records(in);
    guarded(this->ctx_.name(), [&] { op_->process(in, *this->out_); });
    this->out_->flush();
    this->ctx_.flush_side();
  }
  void on_event(const Event& e) override {
    auto& ctx = this->ctx_;
    auto& out = *this->out_;
    switch (e.kind) {
      case EventKind::kWatermark:
        ctx.watermarks_[0] = e.value;
        ctx.watermark_ = e.value;
        guarded(ctx.name(), [&] {
          op_->advance_event_time(e.value, out);
          op_->on_watermark(e.value, out);
        });
        break;
      case EventKind::kSuperstepEnd:
        if (!ctx.in_loop()) return;
        guarded(ctx.name(), [&] { op_->on_superstep_end(out); });
        break;
      case EventKind::kEnd:
        guarded(ctx.name(), [&] { op_->on_end(out); });
        break;
      case EventKind::kBarrier:
        guarded(ctx.name(), [&] { op_->on_barrier(e.value); });
        out.flush();
        ctx.flush_side();
        if (ctx.has_state()) hook_.barrier(*this, e.value);  // keyed state as of the barrier
        break;
      case EventKind::kIdle:
        break;
    }
    ctx.forward(e);
  }

 private:
  std::unique_ptr<Op> op_;
  SnapshotHook hook_;
};

template <class Op>
class TwoInputAdapter final : public OneInputAdapterBase<typename Op::output_type> {
  using In1 = typename Op::input1_type;
  using In2 = typename Op::input2_type;
  using Out = typename Op::output_type;

  template <class T, int kI>
  class Port final : public Input<T> {
   public:
    explicit Port(TwoInputAdapter* a) : a_(a) {}
    void push(std::span<const T> in) override { a_->template process<kI>(in); }
    void on_event(const Event& e) override { a_->event(kI, e); }

   private:
    TwoInputAdapter* a_;
  };

 public:
  TwoInputAdapter(const OpContext& c, const std::vector<PortBase*>& outs, std::unique_ptr<Op> op)
      : OneInputAdapterBase<Out>(c, outs, 2), op_(std::move(op)), p1_(this), p2_(this) {
    loop_[0] = this->ctx_.input_in_loop(0);
    loop_[1] = this->ctx_.input_in_loop(1);
    open_operator(*op_, this->ctx_);
  }
  PortBase* port(int i) override { return i == 0 ? static_cast<PortBase*>(&p1_) : static_cast<PortBase*>(&p2_); }

  template <int kI, class T>
  void process(std::span<const T> in) {
    this->records_in += logical_records(in);
    guarded(this->ctx_.name(), [&] {
      if constexpr (kI == 0) op_->process1(in, *this->out_);
      else op_->process2(in, *this->out_);
    });
    this->out_->flush();
    this->ctx_.flush_side();
  }

  void event(int i, const Event& e) {
    auto& ctx = this->ctx_;
    auto& out = *this->out_;
    const auto u = static_cast<std::size_t>(i);
    switch (e.kind) {
      case EventKind::kWatermark:
        ctx.watermarks_[u] = e.value;
        idle_[u] = false;
        advance_watermark();
        break;
      case EventKind::kIdle:
        idle_[u] = true;
        // Idle downstream once every input that has not ended is idle.
        if ((ended_[0] || idle_[0]) && (ended_[1] || idle_[1])) {
          if (!idle_out_) ctx.forward(e);
          idle_out_ = true;
        } else {
          advance_watermark();
        }
        break;
      case EventKind::kSuperstepEnd:
        superstep_[u] = true;
        try_superstep();
        break;
      case EventKind::kEnd:
        ended_[u] = true;
        ctx.watermarks_[u] = kMaxTimestamp;  // an ended input holds no watermark back
        idle_[u] = false;
        advance_watermark();
        try_superstep();
        if (ended_[0] && ended_[1]) {
          guarded(ctx.name(), [&] { op_->on_end(out); });
          ctx.forward(e);
        } else if (barriers_ > 0 && barriers_ >= open_inputs()) {
          release_barrier();  // the ended input will not deliver it
        }
        break;
      case EventKind::kBarrier:
        barrier_ = e.value;
        if (++barriers_ >= open_inputs()) release_barrier();
        break;
    }
  }

 private:
  int open_inputs() const { return (ended_[0] ? 0 : 1) + (ended_[1] ? 0 : 1); }
  void release_barrier() {
    barriers_ = 0;
    guarded(this->ctx_.name(), [&] { op_->on_barrier(barrier_); });
    this->ctx_.forward(Event::barrier(barrier_));
  }
  void advance_watermark() {
    auto& ctx = this->ctx_;
    // The minimum over inputs neither ended nor idle; +inf only once both ended (an ended input
    // beside an idle one must not let +inf through: the idle one may send records again).
    Timestamp wm = kMaxTimestamp;
    bool live = false;
    for (std::size_t i = 0; i < 2; ++i)
      if (!ended_[i] && !idle_[i]) {
        wm = std::min(wm, ctx.watermarks_[i]);
        live = true;
      }
    if (!live && !(ended_[0] && ended_[1])) return;
    if (wm <= ctx.watermark_) {
      // Active again after idleness without advancing: downstream needs a watermark to resume.
      if (idle_out_) ctx.forward(Event::watermark(ctx.watermark_));
      idle_out_ = false;
      return;
    }
    idle_out_ = false;
    ctx.watermark_ = wm;
    guarded(ctx.name(), [&] { op_->on_watermark(wm, *this->out_); });
    ctx.forward(Event::watermark(wm));
  }
  void try_superstep() {
    auto& ctx = this->ctx_;
    if (!ctx.in_loop() || !(superstep_[0] || superstep_[1])) return;
    for (std::size_t i = 0; i < 2; ++i)
      if (!(loop_[i] ? superstep_[i] : ended_[i])) return;
    superstep_[0] = superstep_[1] = false;
    guarded(ctx.name(), [&] { op_->on_superstep_end(*this->out_); });
    ctx.forward(Event::superstep_end());
  }

  std::unique_ptr<Op> op_;
  Port<In1, 0> p1_;
  Port<In2, 1> p2_;
  bool loop_[2] = {false, false};
  bool ended_[2] = {false, false};
  bool superstep_[2] = {false, false};
  bool idle_[2] = {false, false};
  bool idle_out_ = false;  // idleness passed on downstream (a watermark ends it)
  int barriers_ = 0;
  std::int64_t barrier_ = 0;
};

template <class Op>
class SourceAdapter final : public NodeRuntime, public SourceBase {
  using T = typename Op::output_type;

 public:
  SourceAdapter(const OpContext& c, const std::vector<PortBase*>& outs, std::unique_ptr<Op> op)
      : ctx_(c, &records_out, outs, 0), op_(std::move(op)) {
    auto main = std::make_unique<SourceOutput<T>>(outs.empty() ? nullptr : outs[0], c.batch_bytes, &records_out);
    out_ = main.get();
    out_->forward_all_ = [this](const Event& e) { ctx_.forward(e); };
    ctx_.set_main(std::move(main));
    open_operator(*op_, ctx_);
  }
  PortBase* port(int /*i*/) override { return nullptr; }
  SourceBase* source() override { return this; }

  SourceStatus produce(std::size_t max_batches) override {
    SourceStatus st = SourceStatus::kMore;
    for (std::size_t b = 0; b < std::max<std::size_t>(1, max_batches) && st == SourceStatus::kMore; ++b) {
      guarded(ctx_.name(), [&] { st = op_->produce(*out_); });
      out_->flush();
      ctx_.flush_side();
    }
    if (st == SourceStatus::kDone) ctx_.forward(Event::end());
    return st;
  }

 private:
  OperatorContext ctx_;
  std::unique_ptr<Op> op_;
  SourceOutput<T>* out_ = nullptr;
};

template <class Op>
class SinkAdapter final : public NodeRuntime, public Input<typename Op::input_type> {
  using T = typename Op::input_type;

 public:
  SinkAdapter(const OpContext& c, const std::vector<PortBase*>& outs, std::unique_ptr<Op> op)
      : ctx_(c, &records_out, outs, 1), op_(std::move(op)) {
    open_operator(*op_, ctx_);
  }
  PortBase* port(int /*i*/) override { return static_cast<Input<T>*>(this); }
  void push(std::span<const T> in) override {
    records_in += logical_records(in);
    guarded(ctx_.name(), [&] { op_->consume(in); });
  }
  void on_event(const Event& e) override {
    if (e.kind == EventKind::kWatermark) {
      ctx_.watermarks_[0] = ctx_.watermark_ = e.value;
      guarded(ctx_.name(), [&] { op_->on_watermark(e.value); });
    } else if (e.kind == EventKind::kEnd) {
      guarded(ctx_.name(), [&] { op_->on_end(); });
    }
  }
  void commit() override { op_->commit(); }
  void abort() override { op_->abort(); }

 private:
  OperatorContext ctx_;
  std::unique_ptr<Op> op_;
};

// A `make` (callable () -> std::unique_ptr<Op>) or a prototype (an Op, copied per partition),
// as a function making the operator instance.
template <class Op, class P>
std::function<std::unique_ptr<Op>()> instance_maker(P p) {
  if constexpr (std::derived_from<P, Op> || std::same_as<P, Op>) {
    return [p]() -> std::unique_ptr<Op> { return std::make_unique<P>(p); };
  } else {
    return [p]() -> std::unique_ptr<Op> { return p(); };
  }
}

// A factory for the builder: the adapter Adapter<Op> around a fresh Op per partition.
template <template <class> class Adapter, class Op, class Make>
NodeFactory adapter_factory(Make make) {
  return [make](const OpContext& c, const std::vector<PortBase*>& outs) -> std::unique_ptr<NodeRuntime> {
    std::unique_ptr<Op> op = make();
    if (!op) throw Error("operator '" + c.name + "': its factory returned no operator");
    return std::make_unique<Adapter<Op>>(c, outs, std::move(op));
  };
}

// The operator type a factory or prototype P makes.
template <class P>
struct made_by {
  using type = P;
};
template <class P>
  requires std::invocable<P&>
struct made_by<P> {
  using type = typename std::remove_cvref_t<std::invoke_result_t<P&>>::element_type;
};
template <class P>
using made_by_t = typename made_by<P>::type;

// One input of an operator being built: where its records come from and how they are routed.
struct InputRef {
  int node = 0;
  int output = 0;
  Partitioning partitioning = Partitioning::kAuto;
  WriterFactory hash;  // set: hash-partitioned on a key
  bool bounded = true;
};

}  // namespace detail

// An operator factory or prototype for a one-input operator reading In: a OneInputOperator<In, X>
// (copied into every partition), or a callable returning std::unique_ptr to one.
template <class P, class In>
concept OneInputOperatorFor =
    std::derived_from<detail::made_by_t<P>, OneInputOperator<In, typename detail::made_by_t<P>::output_type>> &&
    (std::invocable<P&> || std::copy_constructible<P>);

template <class P, class In1, class In2>
concept TwoInputOperatorFor =
    std::derived_from<detail::made_by_t<P>,
                      TwoInputOperator<In1, In2, typename detail::made_by_t<P>::output_type>> &&
    (std::invocable<P&> || std::copy_constructible<P>);

template <class P>
concept SourceFor = std::derived_from<detail::made_by_t<P>, Source<typename detail::made_by_t<P>::output_type>> &&
                    (std::invocable<P&> || std::copy_constructible<P>);

template <class P, class In>
concept SinkFor = std::derived_from<detail::made_by_t<P>, Sink<In>> && (std::invocable<P&> || std::copy_constructible<P>);

// ---------------------------------------------------------------- the plan builder

// Adds one operator (a node) to an Environment's plan, or edits one added before (iterations add
// their feedback inputs after the loop body exists). Every operator of a plan, gyre's own
// included, is added through it.
//
//   OperatorBuilder b(env, "my op");                 // a new node (name = kind, default parallelism)
//   b.input(stream);                                 // port 0, partitioned as the stream says
//   b.input_by_key(other, key);                      // port 1, hash-partitioned on key
//   const int side = b.output<Warning>("warnings");  // outputs: 0 added by output<T>() first
//   b.two_input<MyJoin>(MyJoin{});                    // or .factory(low-level NodeFactory)
//   Stream<Out> out = b.stream<Out>(0);
//
// A node's bounded flag is the conjunction of its non-feedback inputs' (true for a source)
// unless bounded() sets it.
class OperatorBuilder {
 public:
  // A new operator of this kind.
  OperatorBuilder(Environment& env, std::string kind);
  // The operator `node`, added before.
  OperatorBuilder(Environment& env, int node);

  int id() const { return node_; }
  Environment& env() const { return *env_; }

  OperatorBuilder& name(std::string n);
  OperatorBuilder& parallelism(int p);
  OperatorBuilder& bounded(bool b);
  const std::string& name() const;
  int parallelism() const;
  bool bounded() const;

  // ---- plan flags (see detail::NodeSpec) ----
  OperatorBuilder& sink(bool s = true);
  OperatorBuilder& needs_bounded_inputs(bool v = true);
  OperatorBuilder& keyed(bool v = true);
  OperatorBuilder& allows_broadcast_build(bool v = true);
  OperatorBuilder& accepts_loop_invariant_input(bool v = true);
  // Reads the solution set of the delta iteration whose head is `head`.
  OperatorBuilder& solution_set_of(int head);
  // An iteration head of this kind ("bulk", "delta", "streaming"), coordinated by `hook`: its
  // output 0 feeds the loop body, output 1 (if any) is the loop's result.
  OperatorBuilder& loop_head(std::string loop_kind, std::shared_ptr<detail::LoopHook> hook);
  // Checked at validation (before any data moves); throws PlanError.
  OperatorBuilder& validate(std::function<void()> check);

  // ---- inputs: each returns its port ----
  // Port `port` (-1: a new port after the last one); the stream's partitioning
  // (forward/broadcast/rebalance/kAuto), or `p` if given.
  template <class T>
  int input(const Stream<T>& s, int port = -1) {
    return add_input(ref(s, s.next_partitioning()), port, false);
  }
  template <class T>
  int input(const Stream<T>& s, Partitioning p, int port = -1) {
    return add_input(ref(s, p), port, false);
  }
  // Hash-partitioned on key(record) (with Part as the partitioner of keys, see writers.h),
  // unless the stream asks for broadcast (a broadcast-build join) or forward.
  template <class T, class KF, class Part = detail::HashPartitioner>
  int input_by_key(const Stream<T>& s, KF key, int port = -1) {
    return add_input(key_ref<T, KF, Part>(s, std::move(key), s.next_partitioning()), port, false);
  }
  // A loop's back edge into this operator (an iteration head).
  template <class T>
  int feedback(const Stream<T>& s, int port = -1) {
    return add_input(ref(s, s.next_partitioning()), port, true);
  }
  template <class T, class KF, class Part = detail::HashPartitioner>
  int feedback_by_key(const Stream<T>& s, KF key, int port = -1) {
    return add_input(key_ref<T, KF, Part>(s, std::move(key), Partitioning::kAuto), port, true);
  }
  // The untyped form of the above: `in` made by ref() or key_ref().
  int add_input(detail::InputRef in, int port, bool feedback);
  template <class T>
  static detail::InputRef ref(const Stream<T>& s, Partitioning p) {
    detail::InputRef r;
    r.node = s.node();
    r.output = s.output();
    r.partitioning = p;
    r.bounded = s.bounded();
    return r;
  }
  template <class T, class KF, class Part = detail::HashPartitioner>
  static detail::InputRef key_ref(const Stream<T>& s, KF key, Partitioning p) {
    detail::InputRef r = ref(s, p);
    r.hash = detail::hash_writer_factory<T, KF, Part>(std::move(key));
    return r;
  }
  // At least n input ports (the ones not connected yet fail validation).
  OperatorBuilder& ports(int n);
  int ports() const;

  // ---- outputs ----
  // A new output of records T (tag: a side output's name); returns its index.
  template <Record T>
  int output(std::string tag = {}) {
    return add_output(detail::output_spec<T>(std::move(tag)));
  }
  int add_output(detail::OutputSpec o);
  int outputs() const;
  // The record type of output i.
  const std::type_info* output_type(int i) const;
  // An operator of the operator API (one_input/two_input/source): may get side outputs.
  bool has_side_outputs() const;
  // The index of the output tagged `tag` (-1: none).
  int output_index(const std::string& tag) const;
  // Output i as a stream (defined in stream.h).
  template <Record T>
  Stream<T> stream(int output = 0) const;

  // ---- the operator ----
  // Low level: makes the NodeRuntime of each partition.
  OperatorBuilder& factory(detail::NodeFactory make);
  // The public operator kinds; `p` is a prototype (copied per partition) or a callable returning
  // std::unique_ptr to the operator. The main output (index 0) is added if there is none yet.
  template <class P>
  OperatorBuilder& one_input(P p) {
    using Op = detail::made_by_t<P>;
    ensure_main<typename Op::output_type>();
    spec().side_outputs = true;
    return factory(detail::adapter_factory<detail::OneInputAdapter, Op>(detail::instance_maker<Op>(std::move(p))));
  }
  template <class P>
  OperatorBuilder& two_input(P p) {
    using Op = detail::made_by_t<P>;
    ensure_main<typename Op::output_type>();
    spec().side_outputs = true;
    return factory(detail::adapter_factory<detail::TwoInputAdapter, Op>(detail::instance_maker<Op>(std::move(p))));
  }
  template <class P>
  OperatorBuilder& source(P p) {
    using Op = detail::made_by_t<P>;
    ensure_main<typename Op::output_type>();
    spec().side_outputs = true;
    return factory(detail::adapter_factory<detail::SourceAdapter, Op>(detail::instance_maker<Op>(std::move(p))));
  }
  template <class P>
  OperatorBuilder& sink_operator(P p) {
    using Op = detail::made_by_t<P>;
    sink(true);
    return factory(detail::adapter_factory<detail::SinkAdapter, Op>(detail::instance_maker<Op>(std::move(p))));
  }

 private:
  template <class T>
  void ensure_main() {
    if (outputs() == 0) output<T>();
  }
  detail::NodeSpec& spec() const;

  Environment* env_;
  int node_;
};

}  // namespace gyre
