// Scheduler, channels and job life cycle. See runtime.h for the contract.
#include "gyre/core/runtime.h"

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <queue>
#include <sstream>
#include <thread>

#include "gyre/core/error.h"

namespace gyre::detail {

// ---------------------------------------------------------------- InputGate

InputGate::InputGate(Notifiable* owner, std::size_t channel_capacity, Transport* transport,
                     std::vector<ChannelInfo> channels)
    : owner_(owner), capacity_(std::max<std::size_t>(1, channel_capacity)), transport_(transport) {
  ch_.resize(channels.size());
  std::size_t feedback = 0;
  for (std::size_t c = 0; c < channels.size(); ++c) {
    ch_[c].info = channels[c];
    if (channels[c].feedback) ++feedback;
  }
  feedback_limit_ = capacity_ * feedback;
}

void InputGate::enqueue(int channel, Item item) {
  {
    std::lock_guard lock(mu_);
    Channel& ch = ch_[static_cast<std::size_t>(channel)];
    item.channel = channel;
    item.port = ch.info.port;
    if (!item.is_event()) {
      ++ch.batches;
      if (ch.info.feedback) ++feedback_queued_;
      max_ = std::max(max_, ++queued_);
    }
    ch.q.push_back(std::move(item));
    if (!ch.in_ring && !ch.blocked) {
      ch.in_ring = true;
      (ch.info.feedback ? fring_ : ring_).push_back(channel);
    }
  }
  owner_->notify();
}

void InputGate::push(int channel, std::shared_ptr<const BatchBase> batch, std::int64_t credit) {
  enqueue(channel, {0, 0, std::move(batch), Event{}, credit});
}

void InputGate::push_event(int channel, const Event& event) { enqueue(channel, {0, 0, nullptr, event, -1}); }

int InputGate::front_locked() {
  // Blocked channels that come up leave the ring (unblock_all puts them back).
  for (std::deque<int>* r : {&ring_, &fring_}) {
    while (!r->empty() && ch_[static_cast<std::size_t>(r->front())].blocked) {
      ch_[static_cast<std::size_t>(r->front())].in_ring = false;
      r->pop_front();
    }
  }
  if (fring_.empty()) return ring_.empty() ? -1 : ring_.front();
  if (ring_.empty() || feedback_queued_ > feedback_limit_ || feedback_turn_) return fring_.front();
  return ring_.front();
}

bool InputGate::peek(int& channel, bool& is_event, Event& event) {
  std::lock_guard lock(mu_);
  const int c = front_locked();
  if (c < 0) return false;
  const Item& it = ch_[static_cast<std::size_t>(c)].q.front();
  channel = c;
  is_event = it.is_event();
  event = it.event;
  return true;
}

void InputGate::pop(int channel, Item& item) {
  Notifiable* wake = nullptr;
  {
    std::lock_guard lock(mu_);
    Channel& ch = ch_[static_cast<std::size_t>(channel)];
    std::deque<int>& r = ch.info.feedback ? fring_ : ring_;
    // `channel` is at the front of its ring: only this consumer pops or blocks, and producers
    // only append.
    item = std::move(ch.q.front());
    ch.q.pop_front();
    r.pop_front();
    if (ch.q.empty()) {
      ch.in_ring = false;
    } else {
      r.push_back(channel);  // round robin
    }
    feedback_turn_ = !ch.info.feedback;  // alternate (front_locked decides when both have items)
    if (!item.is_event()) {
      --queued_;
      if (ch.info.feedback) --feedback_queued_;
      if (--ch.batches < capacity_ && ch.waiter != nullptr) std::swap(wake, ch.waiter);
    }
  }
  if (wake != nullptr) wake->notify();
  if (item.credit >= 0) transport_->return_credit(item.credit);
}

bool InputGate::pop(Item& item) {
  int c = 0;
  bool is_event = false;
  Event e;
  if (!peek(c, is_event, e)) return false;
  pop(c, item);
  return true;
}

bool InputGate::empty() {
  std::lock_guard lock(mu_);
  return front_locked() < 0;
}

bool InputGate::has_credit(int channel, Notifiable* waiter) {
  std::lock_guard lock(mu_);
  Channel& ch = ch_[static_cast<std::size_t>(channel)];
  if (ch.batches < capacity_) return true;
  ch.waiter = waiter;
  return false;
}

void InputGate::block(int channel) {
  std::lock_guard lock(mu_);
  ch_[static_cast<std::size_t>(channel)].blocked = true;
}

void InputGate::unblock_all() {
  {
    std::lock_guard lock(mu_);
    for (std::size_t c = 0; c < ch_.size(); ++c) {
      Channel& ch = ch_[c];
      if (!ch.blocked) continue;
      ch.blocked = false;
      if (!ch.in_ring && !ch.q.empty()) {
        ch.in_ring = true;
        (ch.info.feedback ? fring_ : ring_).push_back(static_cast<int>(c));
      }
    }
  }
  owner_->notify();
}

std::size_t InputGate::max_queued() const {
  std::lock_guard lock(mu_);
  return max_;
}

// ---------------------------------------------------------------- local transport

namespace {

class LocalChannel final : public ChannelOut {
 public:
  LocalChannel(InputGate* gate, int channel, bool feedback) : gate_(gate), channel_(channel), feedback_(feedback) {}
  void send(std::shared_ptr<const BatchBase> batch) override { gate_->push(channel_, std::move(batch)); }
  void send_event(const Event& event) override { gate_->push_event(channel_, event); }
  bool has_credit(Notifiable* waiter) override { return feedback_ || gate_->has_credit(channel_, waiter); }

 private:
  InputGate* gate_;
  int channel_;
  bool feedback_;
};

// Every output channel of a subtask is wrapped in one of these: it notes the channels the
// subtask sent data to since it last checked their credit (so that a check costs the channels
// used, not all of them: a subtask of a hash or broadcast exchange has one per consumer), and in
// jobs with loops it counts the bytes sent, for per-superstep metrics.
class TrackedChannel final : public ChannelOut {
 public:
  TrackedChannel(std::unique_ptr<ChannelOut> inner, std::vector<TrackedChannel*>* dirty,
                 std::atomic<std::uint64_t>* bytes)
      : inner_(std::move(inner)), dirty_(dirty), bytes_(bytes) {}
  void send(std::shared_ptr<const BatchBase> batch) override {
    if (bytes_ != nullptr) bytes_->fetch_add(batch->bytes(), std::memory_order_relaxed);
    if (!used_) {
      used_ = true;
      dirty_->push_back(this);
    }
    inner_->send(std::move(batch));
  }
  void send_event(const Event& event) override { inner_->send_event(event); }
  bool has_credit(Notifiable* waiter) override {
    if (!inner_->has_credit(waiter)) return false;
    used_ = false;
    return true;
  }

 private:
  std::unique_ptr<ChannelOut> inner_;
  std::vector<TrackedChannel*>* dirty_;
  std::atomic<std::uint64_t>* bytes_;
  bool used_ = false;  // in *dirty_
};

class LocalTransport final : public Transport {
 public:
  int rank() const override { return 0; }
  int num_ranks() const override { return 1; }
  void bind(const StreamGraph& /*g*/, const ExecutionGraph& /*eg*/,
            const std::vector<InputGate*>& gates, Hooks /*hooks*/) override {
    gates_ = gates;
  }
  std::unique_ptr<ChannelOut> open(int /*src*/, int dst, int /*port*/, int channel, int /*src_node*/,
                                   int /*src_output*/,
                                   bool feedback) override {
    GYRE_CHECK(dst >= 0 && static_cast<std::size_t>(dst) < gates_.size() && gates_[static_cast<std::size_t>(dst)],
               "local transport: no gate for consumer subtask");
    return std::make_unique<LocalChannel>(gates_[static_cast<std::size_t>(dst)], channel, feedback);
  }

 private:
  std::vector<InputGate*> gates_;
};

constexpr std::size_t kBatchesPerActivation = 8;

}  // namespace

std::unique_ptr<Transport> make_local_transport() { return std::make_unique<LocalTransport>(); }
std::unique_ptr<ChannelOut> make_local_channel(InputGate* gate, int channel, bool feedback) {
  return std::make_unique<LocalChannel>(gate, channel, feedback);
}

// ---------------------------------------------------------------- alignment

namespace {

// Turns the control events of a subtask's input channels into the events its operator's input
// ports get: the one place in the runtime that knows what each event kind means for alignment.
//   end, superstep end: when every channel of the port sent it (superstep ends only inside a
//     loop; elsewhere they are dropped);
//   watermark: per channel (never backwards); the port's is the minimum over its channels that
//     are neither idle nor ended, delivered when it advances;
//   idle: the channel does not hold the watermark back until its next watermark; when every
//     channel of the port that has not ended is idle, the port gets idle() once; when a channel
//     of an idle port resumes, the port gets a watermark even if it does not advance (the same
//     as before), which ends the idleness downstream too;
//   an ended channel counts as +inf; when all ended, the port gets watermark(+inf) (unless it
//     had it) and then end;
//   barrier(id): operator-wide. Its channel is blocked (its later items stay queued) until the
//     barrier arrived on every non-feedback channel of the subtask (ended ones count as arrived);
//     then every port that has not ended gets it once, in port order, and the channels unblock.
//     Feedback channels are never blocked nor awaited: a barrier on one is dropped, as is a
//     barrier whose id is not above the last one completed. A channel whose next item is a
//     later barrier while one aligns has skipped the current one (ids rise on every channel):
//     it counts as arrived and is blocked with the later barrier still queued, which starts the
//     next alignment once the current one completed (barriers queue behind each other).
class InputAligner {
 public:
  struct Delivery {
    int port;
    Event event;
  };

  void init(InputGate* gate, int ports, bool in_loop) {
    gate_ = gate;
    in_loop_ = in_loop;
    ports_.assign(static_cast<std::size_t>(ports), Port{});
    ch_.assign(static_cast<std::size_t>(gate->channels()), Channel{});
    for (int c = 0; c < gate->channels(); ++c) {
      Channel& ch = ch_[static_cast<std::size_t>(c)];
      ch.port = gate->info(c).port;
      ch.feedback = gate->info(c).feedback;
      ports_[static_cast<std::size_t>(ch.port)].channels.push_back(c);
      if (!ch.feedback) ++awaited_;
    }
    open_ = ports;
    for (std::size_t p = 0; p < ports_.size(); ++p) {
      // A port without channels (not in a valid plan) is done from the start.
      if (ports_[p].channels.empty()) {
        ports_[p].done = true;
        --open_;
      }
    }
  }
  int ports_open() const { return open_; }

  // True if `event`, the next item of `channel`, stays queued: a later barrier while one aligns.
  bool defers(int channel, const Event& event) const {
    return event.kind == EventKind::kBarrier && aligning_ && event.value > barrier_ &&
           !ch_[static_cast<std::size_t>(channel)].feedback;
  }
  // The deferred barrier at the front of `channel`: the channel counts as arrived.
  void defer(int channel, std::vector<Delivery>& out) {
    arrive(channel);
    complete_barrier(out);
  }

  // `event` was popped from `channel`: appends what the ports get now (often nothing).
  void on_event(int channel, const Event& event, std::vector<Delivery>& out) {
    Channel& ch = ch_[static_cast<std::size_t>(channel)];
    Port& port = ports_[static_cast<std::size_t>(ch.port)];
    switch (event.kind) {
      case EventKind::kEnd:
        if (ch.ended) return;
        ch.ended = true;
        if (!ch.feedback) ++ended_awaited_;
        if (++port.ended == static_cast<int>(port.channels.size())) {
          if (port.watermark < kMaxTimestamp) out.push_back({ch.port, Event::watermark(kMaxTimestamp)});
          port.watermark = kMaxTimestamp;
          out.push_back({ch.port, Event::end()});
          port.done = true;
          --open_;
        } else {
          watermark(ch.port, out);
        }
        if (aligning_ && !ch.feedback && !ch.arrived) ++arrived_;
        complete_barrier(out);
        return;
      case EventKind::kSuperstepEnd:
        if (!in_loop_) return;
        if (++port.superstep_ended < static_cast<int>(port.channels.size())) return;
        port.superstep_ended = 0;
        out.push_back({ch.port, event});
        return;
      case EventKind::kWatermark:
        ch.idle = false;
        ch.watermark = std::max(ch.watermark, event.value);
        watermark(ch.port, out);
        return;
      case EventKind::kIdle:
        ch.idle = true;
        watermark(ch.port, out);
        return;
      case EventKind::kBarrier:
        // Stale: not above the last completed one (or below the one aligning).
        if (ch.feedback || event.value < barrier_ || (!aligning_ && event.value == barrier_)) return;
        if (!aligning_) {
          aligning_ = true;
          barrier_ = event.value;
          arrived_ = ended_awaited_;
        }
        arrive(channel);
        complete_barrier(out);
        return;
    }
  }

 private:
  struct Channel {
    int port = 0;
    bool feedback = false;
    bool ended = false;
    bool idle = false;
    bool arrived = false;  // the aligning barrier came (the channel is blocked)
    Timestamp watermark = kMinTimestamp;
  };
  struct Port {
    std::vector<int> channels;
    int ended = 0;
    int superstep_ended = 0;
    bool done = false;
    bool idle = false;
    Timestamp watermark = kMinTimestamp;  // delivered
  };

  void arrive(int channel) {
    Channel& ch = ch_[static_cast<std::size_t>(channel)];
    if (ch.arrived) return;
    ch.arrived = true;
    ++arrived_;
    gate_->block(channel);
  }
  void complete_barrier(std::vector<Delivery>& out) {
    if (!aligning_ || arrived_ < awaited_) return;
    aligning_ = false;
    for (std::size_t p = 0; p < ports_.size(); ++p)
      if (!ports_[p].done) out.push_back({static_cast<int>(p), Event::barrier(barrier_)});
    for (auto& ch : ch_) ch.arrived = false;
    gate_->unblock_all();
  }
  void watermark(int p, std::vector<Delivery>& out) {
    Port& port = ports_[static_cast<std::size_t>(p)];
    if (port.done) return;
    Timestamp low = kMaxTimestamp;
    bool active = false;
    for (int c : port.channels) {
      const Channel& ch = ch_[static_cast<std::size_t>(c)];
      if (ch.ended || ch.idle) continue;
      active = true;
      low = std::min(low, ch.watermark);
    }
    if (!active) {  // every channel that has not ended is idle (some has not: !port.done)
      if (!port.idle) out.push_back({p, Event::idle()});
      port.idle = true;
      return;
    }
    const bool resumed = port.idle;
    port.idle = false;
    if (low > port.watermark) {
      port.watermark = low;
      out.push_back({p, Event::watermark(low)});
    } else if (resumed) {
      // Active again without advancing: the consumer (which passed the idleness on) needs a
      // watermark to make its own outputs active again.
      out.push_back({p, Event::watermark(port.watermark)});
    }
  }

  InputGate* gate_ = nullptr;
  bool in_loop_ = false;
  std::vector<Channel> ch_;
  std::vector<Port> ports_;
  int open_ = 0;
  int awaited_ = 0;        // non-feedback channels
  int ended_awaited_ = 0;  // ... that ended
  bool aligning_ = false;
  std::int64_t barrier_ = 0;  // the barrier aligning, or the last one completed
  int arrived_ = 0;           // awaited channels the aligning barrier arrived on (or ended)
};

}  // namespace

// ---------------------------------------------------------------- subtasks

class Subtask final : public Notifiable {
 public:
  enum State : int { kIdle, kScheduled, kRunning, kRunningDirty, kFinished };

  Subtask(JobRuntime* job, int id, int task, int partition, int parallelism)
      : job_(job), id_(id), task_(task), partition_(partition), parallelism_(parallelism) {}

  void notify() override;
  void execute();

  JobRuntime* job_;
  int id_;
  int task_;
  int partition_;
  int parallelism_;
  std::vector<std::unique_ptr<NodeRuntime>> ops_;
  std::vector<int> op_nodes_;
  std::vector<std::unique_ptr<WriterBase>> writers_;
  std::vector<std::unique_ptr<PortBase>> tees_;
  std::vector<TrackedChannel*> sent_to_;  // output channels sent to since their credit was checked
  NodeRuntime* head_ = nullptr;
  SourceBase* source_ = nullptr;
  std::unique_ptr<InputGate> gate_;
  InputAligner aligner_;
  std::vector<InputAligner::Delivery> deliveries_;  // aligned events the head's ports get next
  std::vector<PortBase*> source_outs_;  // a source task: where its head emits (barriers go there)
  bool is_source_ = false;
  std::int64_t barriers_sent_ = 0;
  bool inputs_ended_ = false;
  bool done_ = false;

  // Time accounting (this subtask only; read after the job).
  double busy_s_ = 0;
  double backpressured_s_ = 0;
  bool blocked_ = false;  // the last activation stopped for lack of credit
  std::chrono::steady_clock::time_point blocked_since_;

  std::atomic<int> state_{kIdle};
  std::atomic<bool> tick_{false};     // the timer asks for a flush of due buffers
  std::atomic<bool> pending_{false};  // some writer holds a partly filled buffer
  std::atomic<bool> idle_{false};     // an unbounded source with nothing to emit
  std::atomic<std::int64_t> barrier_asked_{0};  // a source task: barriers up to this id to emit
  std::atomic<bool> wake_due_{false};  // a processing-time wake-up is due (wake_ops_)
  std::mutex wake_mu_;
  std::vector<std::size_t> wake_ops_;  // guarded by wake_mu_: indices into ops_

 private:
  void activation();
  bool deliver();
  bool outputs_have_credit();
  void flush_due(bool all);
};

class JobRuntime {
 public:
  JobRuntime(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg,
             const JobConfig& config, std::shared_ptr<Transport> transport);
  ~JobRuntime();

  void start();
  JobResult wait();
  void cancel();
  bool finished() const {
    std::lock_guard lock(mu_);
    return remaining_ == 0 && inflight_ == 0;
  }

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  void fail(const Subtask& s, const std::string& op, std::exception_ptr cause,
            const std::string& what);
  void remote_abort(const std::string& message, bool cancel);
  void enqueue(Subtask* s);
  void subtask_finished();
  const JobConfig& config() const { return config_; }
  bool timed() const { return timed_; }
  int rank() const { return transport_.rank(); }
  const std::string& task_name(int task) const { return task_names_[static_cast<std::size_t>(task)]; }
  // Processing-time timers: wake subtask `s` at `t` and call ops_[op]->on_processing_time.
  void wake_at(Subtask* s, std::size_t op, std::chrono::steady_clock::time_point t);
  std::int64_t trigger_barrier();

 private:
  void build(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg);
  void timer_loop();
  void notify_all();
  void abort_sinks();

  JobConfig config_;
  std::shared_ptr<Transport> transport_holder_;  // outlives the job even if the Environment does not
  Transport& transport_;
  int slots_;
  tbb::global_control threads_;
  tbb::task_arena arena_;
  std::vector<std::unique_ptr<Subtask>> subtasks_;
  std::vector<std::unique_ptr<ChannelOut>> channels_;
  std::vector<std::string> names_;
  std::vector<std::string> task_names_;
  std::vector<std::size_t> in_bytes_;   // per node: sizeof its (first) input record
  std::vector<std::size_t> out_bytes_;  // per node: sizeof its output record
  std::vector<int> task_subtasks_;      // per task: parallelism
  bool timed_ = false;  // an unbounded source: buffer timeouts and idle polling apply
  std::atomic<std::uint64_t> exchanged_bytes_{0};  // over all exchanges of this rank
  struct LoopRef {
    std::shared_ptr<LoopHook> hook;
    int channel = 0;
    int local_heads = 0;
  };
  std::vector<LoopRef> loops_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t remaining_ = 0;
  std::size_t inflight_ = 0;
  std::atomic<bool> cancelled_{false};
  bool user_cancelled_ = false;
  bool failed_ = false;
  std::string error_;
  std::string error_op_;
  std::exception_ptr error_cause_;
  bool stop_timer_ = false;
  bool started_ = false;
  std::thread timer_;
  // The timer service (guarded by mu_): wake-ups asked for, earliest first.
  struct Wake {
    std::chrono::steady_clock::time_point t;
    Subtask* s;
    std::size_t op;
    bool operator>(const Wake& o) const { return t > o.t; }
  };
  std::priority_queue<Wake, std::vector<Wake>, std::greater<>> wakes_;
  std::int64_t barriers_ = 0;  // guarded by mu_
  std::chrono::steady_clock::time_point t0_;
  bool waited_ = false;
};

void Subtask::notify() {
  int s = state_.load(std::memory_order_acquire);
  while (true) {
    if (s == kIdle) {
      if (state_.compare_exchange_weak(s, kScheduled, std::memory_order_acq_rel)) {
        job_->enqueue(this);
        return;
      }
    } else if (s == kRunning) {
      if (state_.compare_exchange_weak(s, kRunningDirty, std::memory_order_acq_rel)) return;
    } else {
      return;  // already scheduled, already dirty, or finished
    }
  }
}

void Subtask::execute() {
  state_.store(kRunning, std::memory_order_release);
  const auto t0 = std::chrono::steady_clock::now();
  if (blocked_) {
    backpressured_s_ += std::chrono::duration<double>(t0 - blocked_since_).count();
    blocked_ = false;
  }
  try {
    activation();
  } catch (const OperatorError& e) {
    job_->fail(*this, e.op(), e.cause(), e.what());
    done_ = true;
  } catch (const std::exception& e) {
    job_->fail(*this, "", std::current_exception(), e.what());
    done_ = true;
  } catch (...) {
    job_->fail(*this, "", std::current_exception(), "unknown exception");
    done_ = true;
  }
  const auto t1 = std::chrono::steady_clock::now();
  busy_s_ += std::chrono::duration<double>(t1 - t0).count();
  if (blocked_) blocked_since_ = t1;
  if (done_) {
    state_.store(kFinished, std::memory_order_release);
    job_->subtask_finished();
    return;
  }
  int s = kRunning;
  if (state_.compare_exchange_strong(s, kIdle, std::memory_order_acq_rel)) return;
  // Woken while running: go to the back of the queue (fairness between subtasks).
  state_.store(kScheduled, std::memory_order_release);
  job_->enqueue(this);
}

void Subtask::flush_due(bool all) {
  const auto now = std::chrono::steady_clock::now();
  const auto due = job_->config().buffer_timeout / 2;
  bool any = false;
  for (auto& w : writers_) {
    std::chrono::steady_clock::time_point since;
    if (!w->pending(since)) continue;
    if (all || now - since >= due) {
      w->flush_partial();
    } else {
      any = true;
    }
  }
  pending_.store(any, std::memory_order_release);
}

bool Subtask::outputs_have_credit() {
  // A channel this subtask did not send to since it last had credit still has its share of the
  // consumer's room (other producers have their own): so what a producer queues beyond a
  // channel's capacity stays the output of one input batch.
  while (!sent_to_.empty()) {
    if (!sent_to_.back()->has_credit(this)) {
      blocked_ = true;  // woken again when credit returns
      return false;
    }
    sent_to_.pop_back();
  }
  return true;
}

void Subtask::activation() {
  if (job_->cancelled()) {
    done_ = true;
    return;
  }
  const bool timed = job_->timed();
  if (timed && tick_.load(std::memory_order_acquire) && outputs_have_credit()) {
    tick_.store(false, std::memory_order_release);
    flush_due(false);
  }
  // Processing-time wake-ups, before input (when every consumer has room for what they emit).
  if (wake_due_.load(std::memory_order_acquire) && outputs_have_credit()) {
    wake_due_.store(false, std::memory_order_release);
    std::vector<std::size_t> due;
    {
      std::lock_guard lock(wake_mu_);
      due.swap(wake_ops_);
    }
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i : due) ops_[i]->on_processing_time(now);
  }
  // Barriers asked for by JobHandle::trigger_barrier: a source emits them before more data.
  if (is_source_) {
    const std::int64_t asked = barrier_asked_.load(std::memory_order_acquire);
    while (barriers_sent_ < asked) {
      const Event barrier = Event::barrier(++barriers_sent_);
      for (PortBase* o : source_outs_) o->on_event(barrier);
    }
  }
  // One batch at a time, each only when every consumer has room: what a producer queues beyond
  // a channel's capacity is at most the output of one input batch. A loop head both emits (as a
  // source) and consumes its inputs. Control events go through the aligner; those that deliver
  // nothing yet (an end or superstep end that is not the last of its port, ...) neither wait
  // for credit nor use up the activation's budget (a consumer of P producers gets P of them per
  // superstep, and checking its P outputs for each made a superstep cost P^3).
  std::size_t work = 0;
  bool more = false;
  while (work < kBatchesPerActivation) {
    more = false;
    if (!deliveries_.empty()) {
      if (!outputs_have_credit()) break;
      if (deliver()) return;
      ++work;
      more = true;
      continue;
    }
    bool emitted = false;
    if (source_ != nullptr) {
      if (!outputs_have_credit()) break;
      idle_.store(false, std::memory_order_release);
      const SourceStatus st = source_->produce(1);
      if (st == SourceStatus::kDone) {
        done_ = true;
        return;
      }
      if (st == SourceStatus::kMore) {
        emitted = true;
        more = true;
      } else if (gate_ == nullptr) {
        idle_.store(true, std::memory_order_release);  // the timer polls again
        break;
      }
    }
    if (emitted) {
      ++work;
      continue;
    }
    if (gate_ == nullptr || !head_->accepts_input()) break;
    int channel = 0;
    bool is_event = false;
    Event event;
    if (!gate_->peek(channel, is_event, event)) break;
    if (!is_event) {
      if (source_ == nullptr && !outputs_have_credit()) break;
      InputGate::Item item;
      gate_->pop(channel, item);
      head_->port(item.port)->push_batch(*item.batch);
      ++work;
    } else if (aligner_.defers(channel, event)) {
      aligner_.defer(channel, deliveries_);  // stays queued, its channel blocked
    } else {
      InputGate::Item item;
      gate_->pop(channel, item);
      aligner_.on_event(channel, item.event, deliveries_);
    }
    more = !deliveries_.empty() || !gate_->empty();
  }
  // More to do: yield to other subtasks, then continue.
  if (work == kBatchesPerActivation && more) notify();
  if (timed) {
    if (job_->config().buffer_timeout.count() == 0) {
      flush_due(true);
    } else {
      std::chrono::steady_clock::time_point since;
      bool any = false;
      for (auto& w : writers_) any = any || w->pending(since);
      pending_.store(any, std::memory_order_release);
    }
  }
}

// Hands the aligned events to the head's ports. True if the subtask is done.
bool Subtask::deliver() {
  std::vector<InputAligner::Delivery> now;
  now.swap(deliveries_);
  for (const auto& d : now) head_->port(d.port)->on_event(d.event);
  now.clear();
  if (deliveries_.empty()) deliveries_.swap(now);  // keep the capacity
  if (aligner_.ports_open() == 0 && !inputs_ended_) {
    inputs_ended_ = true;
    // A loop head ends when its source side says so; anything else when its inputs end.
    if (source_ == nullptr) {
      done_ = true;
      return true;
    }
    notify();  // the head's source side decides; make sure it runs again
  }
  return false;
}

// ---------------------------------------------------------------- job

namespace {
int resolve_slots(const JobConfig& c) { return c.resolved(1).slots; }
}  // namespace

JobRuntime::JobRuntime(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg,
                       const JobConfig& config, std::shared_ptr<Transport> transport)
    : config_(config),
      transport_holder_(std::move(transport)),
      transport_(*transport_holder_),
      slots_(resolve_slots(config)),
      threads_(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(slots_) + 1),
      arena_(slots_, 0) {
  std::string error;
  try {
    build(g, jg, eg);
  } catch (const std::exception& e) {
    error = std::string("job failed before it started on rank ") + std::to_string(transport_.rank()) +
            ": " + e.what();
  }
  error = transport_.agree(error);  // every rank gives up together
  if (!error.empty()) {
    waited_ = true;  // nothing runs, nothing to wait for
    throw Error(error);
  }
}

JobRuntime::~JobRuntime() {
  if (!waited_) {
    cancel();
    try {
      wait();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the failure was the caller's to collect
    }
  }
}

void JobRuntime::build(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg) {
  const int rank = transport_.rank();
  for (const auto& n : g.nodes) {
    names_.push_back(n.name);
    out_bytes_.push_back(n.record_bytes());
    in_bytes_.push_back(0);
    if (n.num_ports == 0 && !n.bounded) timed_ = true;
  }
  for (const auto& e : g.edges)
    if (e.port == 0) {
      const auto& outs = g.nodes[static_cast<std::size_t>(e.from)].outputs;
      in_bytes_[static_cast<std::size_t>(e.to)] =
          static_cast<std::size_t>(e.output) < outs.size() ? outs[static_cast<std::size_t>(e.output)].record_bytes : 0;
    }
  for (const auto& t : jg.tasks) {
    task_subtasks_.push_back(t.parallelism);
    std::string name;
    for (int n : t.nodes) name += (name.empty() ? "" : " -> ") + g.nodes[static_cast<std::size_t>(n)].name;
    task_names_.push_back(std::move(name));
  }

  // Subtasks of this rank, with their input gates.
  std::vector<InputGate*> gates(eg.subtasks.size(), nullptr);
  std::vector<Subtask*> by_id(eg.subtasks.size(), nullptr);
  for (std::size_t sid = 0; sid < eg.subtasks.size(); ++sid) {
    const auto& pl = eg.subtasks[sid];
    if (pl.rank != rank) continue;
    const Task& task = jg.tasks[static_cast<std::size_t>(pl.task)];
    auto s = std::make_unique<Subtask>(this, static_cast<int>(sid), pl.task, pl.partition,
                                       task.parallelism);
    const NodeSpec& head = g.nodes[static_cast<std::size_t>(task.head)];
    if (head.num_ports > 0) {
      // The gate's channels, numbered as compile() did (channel_of).
      std::vector<InputGate::ChannelInfo> chans(static_cast<std::size_t>(task.channels));
      for (std::size_t e = 0; e < g.edges.size(); ++e) {
        const EdgeSpec& es = g.edges[e];
        if (es.to != task.head || jg.edges[e].chained) continue;
        const int from_par = g.nodes[static_cast<std::size_t>(es.from)].parallelism;
        const int n = jg.edges[e].kind == Partitioning::kForward ? 1 : from_par;
        for (int k = 0; k < n; ++k)
          chans[static_cast<std::size_t>(jg.edges[e].first_channel + k)] = {es.port, es.feedback};
      }
      s->gate_ = std::make_unique<InputGate>(s.get(), config_.channel_capacity, &transport_, std::move(chans));
      s->aligner_.init(s->gate_.get(), head.num_ports, jg.loop_of[static_cast<std::size_t>(task.head)] >= 0);
      gates[sid] = s->gate_.get();
    }
    by_id[sid] = s.get();
    subtasks_.push_back(std::move(s));
  }
  Transport::Hooks hooks;
  hooks.remote_abort = [this](const std::string& message, bool cancel) { remote_abort(message, cancel); };
  hooks.channel_capacity = std::max<std::size_t>(
      {1, config_.channel_capacity, config_.remote_window_bytes / std::max<std::size_t>(1, config_.batch_bytes)});
  for (const auto& n : g.nodes) {
    if (!n.loop_hook) continue;
    LoopRef ref;
    ref.hook = n.loop_hook;
    ref.channel = static_cast<int>(loops_.size());
    const int t = jg.task_of_node[static_cast<std::size_t>(n.id)];
    for (int p = 0; p < n.parallelism; ++p)
      if (eg.subtasks[static_cast<std::size_t>(eg.subtask_id(t, p))].rank == rank) ++ref.local_heads;
    hooks.collective_values.push_back(ref.hook->collective_values());
    loops_.push_back(std::move(ref));
  }
  hooks.collective_channels = static_cast<int>(loops_.size());
  transport_.bind(g, eg, gates, std::move(hooks));

  // Operators of each subtask, built downstream first so each gets its output port.
  for (auto& sp : subtasks_) {
    Subtask& s = *sp;
    const Task& task = jg.tasks[static_cast<std::size_t>(s.task_)];
    std::vector<NodeRuntime*> built(g.nodes.size(), nullptr);
    for (auto it = task.nodes.rbegin(); it != task.nodes.rend(); ++it) {
      const int node = *it;
      const NodeSpec& spec = g.nodes[static_cast<std::size_t>(node)];
      // Per output of the node: the ports its records go to.
      std::vector<std::vector<PortBase*>> targets(spec.outputs.size());
      for (std::size_t e = 0; e < g.edges.size(); ++e) {
        const EdgeSpec& es = g.edges[e];
        if (es.from != node) continue;
        const auto out = static_cast<std::size_t>(es.output);
        GYRE_CHECK(out < spec.outputs.size(), "an edge from an output the operator does not have");
        const ResolvedEdge& re = jg.edges[e];
        if (re.chained) {
          targets[out].push_back(built[static_cast<std::size_t>(es.to)]->port(es.port));
          continue;
        }
        const int to_task = jg.task_of_node[static_cast<std::size_t>(es.to)];
        const int to_par = jg.tasks[static_cast<std::size_t>(to_task)].parallelism;
        std::vector<ChannelOut*> chans;
        for (int q : destinations(re.kind, s.partition_, to_par)) {
          // Exchanged bytes are a per-superstep figure: counted only in jobs with loops, so
          // other jobs do not pay a shared atomic per batch.
          channels_.push_back(std::make_unique<TrackedChannel>(
              transport_.open(s.id_, eg.subtask_id(to_task, q), es.port, channel_of(re, s.partition_), node,
                              es.output, es.feedback),
              &s.sent_to_, loops_.empty() ? nullptr : &exchanged_bytes_));
          chans.push_back(channels_.back().get());
        }
        const WriterFactory& make =
            re.kind == Partitioning::kHash ? es.make_hash_writer : spec.outputs[out].make_writer;
        s.writers_.push_back(make(re.kind, std::move(chans), config_.batch_bytes));
        targets[out].push_back(s.writers_.back()->port());
      }
      // One port per output: its single target, a tee, or none.
      std::vector<PortBase*> outs(spec.outputs.size(), nullptr);
      for (std::size_t o = 0; o < outs.size(); ++o) {
        const auto& ts = targets[o];
        if (ts.size() == 1) {
          outs[o] = ts[0];
        } else if (ts.size() > 1) {
          s.tees_.push_back(spec.outputs[o].make_tee(ts));
          outs[o] = s.tees_.back().get();
        }
      }
      OpContext ctx;
      ctx.name = spec.name;
      ctx.node = node;
      ctx.partition = s.partition_;
      ctx.parallelism = s.parallelism_;
      ctx.rank = rank;
      ctx.batch_bytes = config_.batch_bytes;
      ctx.config = &config_;
      ctx.in_loop = jg.loop_of[static_cast<std::size_t>(node)] >= 0;
      ctx.input_in_loop.assign(static_cast<std::size_t>(spec.num_ports), false);
      for (const auto& es : g.edges)
        if (es.to == node && jg.loop_of[static_cast<std::size_t>(es.from)] >= 0 &&
            jg.loop_of[static_cast<std::size_t>(es.from)] == jg.loop_of[static_cast<std::size_t>(node)])
          ctx.input_in_loop[static_cast<std::size_t>(es.port)] = true;
      ctx.self = &s;
      const std::size_t op_index = s.ops_.size();
      ctx.wake_at = [this, sp = &s, op_index](std::chrono::steady_clock::time_point t) { wake_at(sp, op_index, t); };
      ctx.outputs = &spec.outputs;
      if (node == task.head && spec.num_ports == 0) {
        s.is_source_ = true;
        for (PortBase* o : outs)
          if (o != nullptr) s.source_outs_.push_back(o);
      }
      s.ops_.push_back(spec.make(ctx, outs));
      s.op_nodes_.push_back(node);
      built[static_cast<std::size_t>(node)] = s.ops_.back().get();
    }
    s.head_ = built[static_cast<std::size_t>(task.head)];
    s.source_ = s.head_->source();
  }
  remaining_ = subtasks_.size();
}

void JobRuntime::start() {
  t0_ = std::chrono::steady_clock::now();
  // Loops first: once the transport runs, records from other ranks may wake a head, which must
  // find its coordinator attached (attach resets it).
  for (auto& l : loops_) l.hook->attach(&transport_, l.channel, l.local_heads, &exchanged_bytes_);
  transport_.start();
  {
    std::lock_guard lock(mu_);
    started_ = true;
    // The timer thread: buffer timeouts and idle polling (unbounded sources), and wake-ups.
    if (timed_ || !wakes_.empty()) timer_ = std::thread([this] { timer_loop(); });
  }
  if (subtasks_.empty()) return;
  for (auto& s : subtasks_) s->notify();
}

void JobRuntime::enqueue(Subtask* s) {
  {
    std::lock_guard lock(mu_);
    ++inflight_;
  }
  arena_.enqueue([this, s] {
    s->execute();
    std::lock_guard lock(mu_);
    if (--inflight_ == 0) cv_.notify_all();
  });
}

void JobRuntime::subtask_finished() {
  std::lock_guard lock(mu_);
  if (--remaining_ == 0) cv_.notify_all();
}

void JobRuntime::notify_all() {
  for (auto& s : subtasks_) s->notify();
}

void JobRuntime::cancel() {
  {
    std::lock_guard lock(mu_);
    // A finished job cannot be cancelled; but with several ranks this rank's part may be done
    // while others still run, and they must hear of it.
    if (waited_ || cancelled_.load() || (remaining_ == 0 && transport_.num_ranks() == 1)) return;
    if (!failed_) user_cancelled_ = true;
    cancelled_.store(true, std::memory_order_release);
  }
  transport_.abort_others("", true);
  notify_all();
}

void JobRuntime::remote_abort(const std::string& message, bool cancel) {
  {
    std::lock_guard lock(mu_);
    if (cancel) {
      if (!failed_) user_cancelled_ = true;
    } else if (!failed_) {
      failed_ = true;
      user_cancelled_ = false;
      error_ = message;
    }
    cancelled_.store(true, std::memory_order_release);
  }
  notify_all();
}

void JobRuntime::fail(const Subtask& s, const std::string& op, std::exception_ptr cause,
                      const std::string& what) {
  std::string message;
  {
    std::lock_guard lock(mu_);
    if (failed_) return;
    failed_ = true;
    user_cancelled_ = false;
    // What went wrong first (a parse error names its file and line), then where.
    std::ostringstream msg;
    msg << what << " (in ";
    if (!op.empty()) msg << "operator '" << op << "'";
    else msg << "task '" << task_name(s.task_) << "'";
    msg << ", subtask " << s.partition_ + 1 << " of " << s.parallelism_ << ", rank " << rank() << ")";
    error_ = msg.str();
    error_op_ = op;
    error_cause_ = std::move(cause);
    cancelled_.store(true, std::memory_order_release);
    message = error_;
  }
  transport_.abort_others(message, false);
  notify_all();
}

void JobRuntime::wake_at(Subtask* s, std::size_t op, std::chrono::steady_clock::time_point t) {
  {
    std::lock_guard lock(mu_);
    if (stop_timer_) return;
    const bool earliest = wakes_.empty() || t < wakes_.top().t;
    wakes_.push({t, s, op});
    // Bounded jobs start the thread when the first wake-up is asked for.
    if (started_ && !timer_.joinable()) {
      timer_ = std::thread([this] { timer_loop(); });
    } else if (!earliest) {
      return;
    }
  }
  cv_.notify_all();
}

std::int64_t JobRuntime::trigger_barrier() {
  std::int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = ++barriers_;
  }
  for (auto& s : subtasks_) {
    if (!s->is_source_) continue;
    s->barrier_asked_.store(id, std::memory_order_release);
    s->notify();
  }
  return id;
}

// The rank's timer thread: flushes partly filled buffers when due and polls idle sources
// (unbounded jobs), and wakes subtasks whose processing-time wake-ups are due. Workers never
// sleep for time.
void JobRuntime::timer_loop() {
  using namespace std::chrono;
  auto period = std::min<milliseconds>(config_.idle_poll, config_.buffer_timeout / 2);
  if (period < milliseconds(1)) period = milliseconds(1);
  std::unique_lock lock(mu_);
  auto next_poll = steady_clock::now() + period;
  std::vector<Wake> due;
  while (!stop_timer_ && remaining_ > 0) {
    auto until = timed_ ? next_poll : steady_clock::time_point::max();
    if (!wakes_.empty()) until = std::min(until, wakes_.top().t);
    if (until == steady_clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, until);
    }
    if (stop_timer_ || remaining_ == 0) break;
    const auto now = steady_clock::now();
    while (!wakes_.empty() && wakes_.top().t <= now) {
      due.push_back(wakes_.top());
      wakes_.pop();
    }
    const bool poll = timed_ && now >= next_poll;
    if (poll) next_poll = now + period;
    lock.unlock();
    for (const Wake& w : due) {
      {
        std::lock_guard wl(w.s->wake_mu_);
        w.s->wake_ops_.push_back(w.op);
      }
      w.s->wake_due_.store(true, std::memory_order_release);
      w.s->notify();
    }
    due.clear();
    if (poll) {
      for (auto& s : subtasks_) {
        if (s->pending_.load(std::memory_order_acquire)) {
          s->tick_.store(true, std::memory_order_release);
          s->notify();
        } else if (s->idle_.load(std::memory_order_acquire)) {
          s->notify();
        }
      }
    }
    lock.lock();
  }
}

void JobRuntime::abort_sinks() {
  for (auto& s : subtasks_)
    for (auto& op : s->ops_) op->abort();
}

JobResult JobRuntime::wait() {
  {
    std::unique_lock lock(mu_);
    if (waited_) throw Error("JobHandle::wait called twice");
    cv_.wait(lock, [&] { return remaining_ == 0 && inflight_ == 0; });
    waited_ = true;
    stop_timer_ = true;
  }
  cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();

  // Local sums, then summed over ranks: per node records in/out, per task busy/backpressured.
  const std::size_t nn = names_.size();
  const std::size_t nt = task_names_.size();
  std::vector<double> counters(2 * nn + 2 * nt + 1 + 2 * nn, 0.0);  // the last 2 nn: records late, dropped
  for (auto& s : subtasks_) {
    for (std::size_t i = 0; i < s->ops_.size(); ++i) {
      const auto node = static_cast<std::size_t>(s->op_nodes_[i]);
      counters[node] += static_cast<double>(s->ops_[i]->records_in);
      counters[nn + node] += static_cast<double>(s->ops_[i]->records_out);
      counters[2 * nn + 2 * nt + 1 + node] += static_cast<double>(s->ops_[i]->records_late);
      counters[3 * nn + 2 * nt + 1 + node] += static_cast<double>(s->ops_[i]->records_dropped);
    }
    counters[2 * nn + static_cast<std::size_t>(s->task_)] += s->busy_s_;
    counters[2 * nn + nt + static_cast<std::size_t>(s->task_)] += s->backpressured_s_;
  }
  counters[2 * nn + 2 * nt] = static_cast<double>(transport_.wire_bytes());

  Transport::Outcome local;
  {
    std::lock_guard lock(mu_);
    local.failed = failed_;
    local.cancelled = user_cancelled_;
    local.message = error_;
  }
  // Collective: every rank gets here, agrees on the outcome and sums the counters.
  const Transport::Outcome outcome = transport_.finish(local, counters);

  JobResult result;
  result.seconds = seconds;
  result.cancelled = outcome.cancelled && !outcome.failed;
  result.ranks = transport_.num_ranks();
  if (outcome.failed) {
    abort_sinks();
    // The failing rank keeps the original exception; the others get the message.
    const bool mine = local.failed && local.message == outcome.message;
    throw JobError(outcome.message, mine ? error_op_ : "", mine ? error_cause_ : nullptr);
  }
  // Collective, so before anything that may throw on one rank only (commits).
  if (!outcome.cancelled && !loops_.empty()) {
    std::vector<double> lc;
    std::vector<std::size_t> sizes;
    for (auto& l : loops_) {
      auto v = l.hook->local_counters();
      sizes.push_back(v.size());
      lc.insert(lc.end(), v.begin(), v.end());
    }
    transport_.allreduce_sum(lc);  // collective: every rank ran the same supersteps
    std::size_t at = 0;
    for (std::size_t i = 0; i < loops_.size(); ++i) {
      loops_[i].hook->finish(std::vector<double>(lc.begin() + static_cast<std::ptrdiff_t>(at),
                                                 lc.begin() + static_cast<std::ptrdiff_t>(at + sizes[i])),
                             result);
      at += sizes[i];
    }
  }
  if (outcome.cancelled) {
    abort_sinks();
  } else {
    for (auto& s : subtasks_) {
      for (auto& op : s->ops_) {
        try {
          op->commit();
        } catch (const std::exception& e) {
          abort_sinks();
          throw JobError(std::string("job failed while committing output on rank ") +
                             std::to_string(rank()) + ": " + e.what(),
                         "", std::current_exception());
        }
      }
    }
  }
  for (std::size_t i = 0; i < nn; ++i) {
    OperatorMetrics m;
    m.node = static_cast<int>(i);
    m.name = names_[i];
    m.records_in = static_cast<std::uint64_t>(counters[i]);
    m.records_out = static_cast<std::uint64_t>(counters[nn + i]);
    m.records_late = static_cast<std::uint64_t>(counters[2 * nn + 2 * nt + 1 + i]);
    m.records_dropped = static_cast<std::uint64_t>(counters[3 * nn + 2 * nt + 1 + i]);
    m.bytes_in = m.records_in * in_bytes_[i];
    m.bytes_out = m.records_out * out_bytes_[i];
    result.operators.push_back(m);
  }
  for (std::size_t t = 0; t < nt; ++t) {
    TaskMetrics m;
    m.task = static_cast<int>(t);
    m.name = task_names_[t];
    m.subtasks = task_subtasks_[t];
    m.busy_seconds = counters[2 * nn + t];
    m.backpressured_seconds = counters[2 * nn + nt + t];
    m.idle_seconds = std::max(0.0, seconds * m.subtasks - m.busy_seconds - m.backpressured_seconds);
    result.tasks.push_back(m);
  }
  result.wire_bytes = static_cast<std::uint64_t>(counters[2 * nn + 2 * nt]);
  for (auto& s : subtasks_)
    if (s->gate_) result.max_queued_batches = std::max(result.max_queued_batches, s->gate_->max_queued());
  return result;
}

std::shared_ptr<JobRuntime> start_job(const StreamGraph& g, const JobGraph& jg,
                                      const ExecutionGraph& eg, const JobConfig& config,
                                      std::shared_ptr<Transport> transport) {
  auto rt = std::make_shared<JobRuntime>(g, jg, eg, config, std::move(transport));
  rt->start();
  return rt;
}

}  // namespace gyre::detail

namespace gyre {

JobHandle::JobHandle(std::shared_ptr<detail::JobRuntime> rt) : rt_(std::move(rt)) {}
JobHandle::JobHandle(JobHandle&&) noexcept = default;
JobHandle& JobHandle::operator=(JobHandle&&) noexcept = default;
JobHandle::~JobHandle() = default;  // JobRuntime's destructor cancels and waits if needed

JobResult JobHandle::wait() {
  if (!rt_) throw Error("JobHandle::wait on an empty handle");
  return rt_->wait();
}
void JobHandle::cancel() {
  if (rt_) rt_->cancel();
}
std::int64_t JobHandle::trigger_barrier() {
  if (!rt_) throw Error("JobHandle::trigger_barrier on an empty handle");
  return rt_->trigger_barrier();
}
bool JobHandle::finished() const { return !rt_ || rt_->finished(); }

}  // namespace gyre
