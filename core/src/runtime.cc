// Scheduler, channels and job life cycle. See runtime.h for the contract.
#include "gyre/core/runtime.h"

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <sstream>
#include <thread>

#include "gyre/core/error.h"

namespace gyre::detail {

// ---------------------------------------------------------------- InputGate

void InputGate::enqueue(Item item) {
  {
    std::lock_guard lock(mu_);
    if (is_feedback(item.port)) {
      fq_.push_back(std::move(item));
    } else {
      if (!item.is_event()) {
        ++data_;
        max_ = std::max(max_, data_);
      }
      q_.push_back(std::move(item));
    }
  }
  owner_->notify();
}

void InputGate::push(int port, std::shared_ptr<const BatchBase> batch, std::int64_t credit) {
  enqueue({port, std::move(batch), Event{}, credit});
}

void InputGate::push_event(int port, const Event& event) { enqueue({port, nullptr, event, -1}); }

bool InputGate::pop(Item& item) {
  std::vector<Notifiable*> wake;
  {
    std::lock_guard lock(mu_);
    if (!fq_.empty()) {
      item = std::move(fq_.front());
      fq_.pop_front();
    } else {
      if (q_.empty()) return false;
      item = std::move(q_.front());
      q_.pop_front();
      if (!item.is_event()) {
        --data_;
        if (data_ < capacity_) wake.swap(waiters_);
      }
    }
  }
  for (auto* w : wake) w->notify();
  if (item.credit >= 0) transport_->return_credit(item.credit);
  return true;
}

bool InputGate::peek(int& port, bool& is_event, Event& event) const {
  std::lock_guard lock(mu_);
  const std::deque<Item>& q = fq_.empty() ? q_ : fq_;
  if (q.empty()) return false;
  port = q.front().port;
  is_event = q.front().is_event();
  event = q.front().event;
  return true;
}

bool InputGate::empty() const {
  std::lock_guard lock(mu_);
  return q_.empty() && fq_.empty();
}

bool InputGate::has_credit(Notifiable* waiter) {
  std::lock_guard lock(mu_);
  if (data_ < capacity_) return true;
  if (std::find(waiters_.begin(), waiters_.end(), waiter) == waiters_.end())
    waiters_.push_back(waiter);
  return false;
}

std::size_t InputGate::max_queued() const {
  std::lock_guard lock(mu_);
  return max_;
}

// ---------------------------------------------------------------- local transport

namespace {

class LocalChannel final : public ChannelOut {
 public:
  LocalChannel(InputGate* gate, int port, bool feedback) : gate_(gate), port_(port), feedback_(feedback) {}
  void send(std::shared_ptr<const BatchBase> batch) override { gate_->push(port_, std::move(batch)); }
  void send_event(const Event& event) override { gate_->push_event(port_, event); }
  bool has_credit(Notifiable* waiter) override { return feedback_ || gate_->has_credit(waiter); }

 private:
  InputGate* gate_;
  int port_;
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
  std::unique_ptr<ChannelOut> open(int /*src*/, int dst, int port, int /*src_node*/, int /*src_output*/,
                                   bool feedback) override {
    GYRE_CHECK(dst >= 0 && static_cast<std::size_t>(dst) < gates_.size() && gates_[static_cast<std::size_t>(dst)],
               "local transport: no gate for consumer subtask");
    return std::make_unique<LocalChannel>(gates_[static_cast<std::size_t>(dst)], port, feedback);
  }

 private:
  std::vector<InputGate*> gates_;
};

constexpr std::size_t kBatchesPerActivation = 8;

}  // namespace

std::unique_ptr<Transport> make_local_transport() { return std::make_unique<LocalTransport>(); }
std::unique_ptr<ChannelOut> make_local_channel(InputGate* gate, int port, bool feedback) {
  return std::make_unique<LocalChannel>(gate, port, feedback);
}

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
  std::vector<int> producers_;  // per port
  std::vector<int> ended_;      // per port
  std::vector<int> marked_;     // per port: producers that ended the current superstep
  bool in_loop_ = false;        // the head operator is inside an iteration body (or a loop head)
  int ports_open_ = 0;
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

 private:
  void activation();
  bool aligned(std::size_t port, const Event& event, bool count);
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
  std::thread timer_;
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
  // One batch at a time, each only when every consumer has room: what a producer queues beyond
  // a channel's capacity is at most the output of one input batch. A loop head both emits (as a
  // source) and consumes its inputs. Ends and markers that are not the last of their port only
  // count producers: they neither wait for credit nor use up the activation's budget (a consumer
  // of P producers gets P of them per superstep, and checking its P outputs for each made a
  // superstep cost P^3).
  std::size_t work = 0;
  bool more = false;
  while (work < kBatchesPerActivation) {
    more = false;
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
    bool counted = true;
    if (!emitted) {
      if (gate_ == nullptr || !head_->accepts_input()) break;
      int peek_port = 0;
      bool is_event = false;
      Event event;
      if (!gate_->peek(peek_port, is_event, event)) break;
      const auto port = static_cast<std::size_t>(peek_port);
      if (is_event) counted = aligned(port, event, /*count=*/false);
      if (counted && source_ == nullptr && !outputs_have_credit()) break;
      InputGate::Item item;
      if (!gate_->pop(item)) break;  // this subtask is the gate's only consumer: still there
      if (!item.is_event()) {
        head_->port(item.port)->push_batch(*item.batch);
      } else if (aligned(port, item.event, /*count=*/true)) {
        head_->port(item.port)->on_event(item.event);
        // A loop head ends when its source side says so; anything else when its inputs end.
        if (item.event.kind == EventKind::kEnd && --ports_open_ == 0) {
          if (source_ == nullptr) {
            done_ = true;
            return;
          }
          notify();  // the head's source side decides; make sure it runs again
        }
      }
      more = !gate_->empty();
    }
    if (counted) ++work;
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

// Whether `event` from one producer completes the event for the port (every producer sent it),
// so that the operator gets it. With count = false only asks (peek), with true records it.
bool Subtask::aligned(std::size_t port, const Event& event, bool count) {
  switch (event.kind) {
    case EventKind::kEnd:
      if (ended_[port] + 1 < producers_[port]) {
        if (count) ++ended_[port];
        return false;
      }
      if (count) ++ended_[port];
      return true;
    case EventKind::kSuperstepEnd:
      if (!in_loop_) return false;
      if (marked_[port] + 1 < producers_[port]) {
        if (count) ++marked_[port];
        return false;
      }
      if (count) marked_[port] = 0;
      return true;
    default:
      return true;  // not aligned yet: passed on as it comes
  }
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
      const auto ports = static_cast<std::size_t>(head.num_ports);
      s->producers_.assign(ports, 0);
      s->ended_.assign(ports, 0);
      s->marked_.assign(ports, 0);
      s->ports_open_ = head.num_ports;
      s->in_loop_ = jg.loop_of[static_cast<std::size_t>(task.head)] >= 0;
      std::vector<bool> feedback(ports, false);
      int total = 0;
      for (std::size_t e = 0; e < g.edges.size(); ++e) {
        const EdgeSpec& es = g.edges[e];
        if (es.to != task.head) continue;
        const Partitioning kind = jg.edges[e].kind;
        const int from_par = g.nodes[static_cast<std::size_t>(es.from)].parallelism;
        const int n = kind == Partitioning::kForward ? 1 : from_par;
        s->producers_[static_cast<std::size_t>(es.port)] += n;
        if (es.feedback) feedback[static_cast<std::size_t>(es.port)] = true;
        total += n;
      }
      s->gate_ = std::make_unique<InputGate>(
          s.get(), std::max<std::size_t>(1, config_.channel_capacity) * static_cast<std::size_t>(total),
          &transport_, std::move(feedback));
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
              transport_.open(s.id_, eg.subtask_id(to_task, q), es.port, node, es.output, es.feedback),
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
      ctx.outputs = &spec.outputs;
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
  transport_.start();
  for (auto& l : loops_) l.hook->attach(&transport_, l.channel, l.local_heads, &exchanged_bytes_);
  if (timed_) timer_ = std::thread([this] { timer_loop(); });
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

void JobRuntime::timer_loop() {
  using namespace std::chrono;
  auto period = std::min<milliseconds>(config_.idle_poll, config_.buffer_timeout / 2);
  if (period < milliseconds(1)) period = milliseconds(1);
  std::unique_lock lock(mu_);
  while (!stop_timer_ && remaining_ > 0) {
    cv_.wait_for(lock, period);
    if (stop_timer_ || remaining_ == 0) break;
    lock.unlock();
    for (auto& s : subtasks_) {
      if (s->pending_.load(std::memory_order_acquire)) {
        s->tick_.store(true, std::memory_order_release);
        s->notify();
      } else if (s->idle_.load(std::memory_order_acquire)) {
        s->notify();
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
  std::vector<double> counters(2 * nn + 2 * nt + 1, 0.0);
  for (auto& s : subtasks_) {
    for (std::size_t i = 0; i < s->ops_.size(); ++i) {
      const auto node = static_cast<std::size_t>(s->op_nodes_[i]);
      counters[node] += static_cast<double>(s->ops_[i]->records_in);
      counters[nn + node] += static_cast<double>(s->ops_[i]->records_out);
    }
    counters[2 * nn + static_cast<std::size_t>(s->task_)] += s->busy_s_;
    counters[2 * nn + nt + static_cast<std::size_t>(s->task_)] += s->backpressured_s_;
  }
  counters.back() = static_cast<double>(transport_.wire_bytes());

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
  result.wire_bytes = static_cast<std::uint64_t>(counters.back());
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
bool JobHandle::finished() const { return !rt_ || rt_->finished(); }

}  // namespace gyre
