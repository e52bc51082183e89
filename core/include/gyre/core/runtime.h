// The runtime: running subtasks on a rank's slots, the channels between them, and the
// transport interface that connects ranks.
//
// Every subtask (one chain of operators x one partition) is scheduled cooperatively on a oneTBB
// task arena whose concurrency is the number of slots: it runs when it has input and every output
// channel has credit, processes a few batches, and yields. A full channel never blocks a thread,
// so any number of subtasks runs on any number of slots without deadlock, and memory stays
// bounded by the channel capacities.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gyre/core/config.h"
#include "gyre/core/plan.h"

namespace gyre {

namespace detail {
class JobRuntime;
}

// A running job. Destroying a handle of a running job cancels it and waits.
class JobHandle {
 public:
  JobHandle() = default;
  explicit JobHandle(std::shared_ptr<detail::JobRuntime> rt);
  JobHandle(JobHandle&&) noexcept;
  JobHandle& operator=(JobHandle&&) noexcept;
  JobHandle(const JobHandle&) = delete;
  JobHandle& operator=(const JobHandle&) = delete;
  ~JobHandle();

  // Waits for the end. Throws JobError if the job failed; a cancelled job returns with
  // `cancelled` set.
  JobResult wait();
  // Stops the job as soon as possible; sinks discard their output.
  void cancel();
  bool finished() const;

 private:
  std::shared_ptr<detail::JobRuntime> rt_;
};

namespace detail {

class Transport;

// The consumer side of all channels into one subtask: a bounded queue of batches tagged with
// the input port, plus control events (event.h) of the producers.
// Items on feedback ports (a loop's back edges) are never refused and are popped first.
class InputGate {
 public:
  struct Item {
    int port = 0;
    std::shared_ptr<const BatchBase> batch;  // null: a control event
    Event event;
    std::int64_t credit = -1;  // >= 0: returned to the transport when popped (remote producer)
    bool is_event() const { return batch == nullptr; }
  };
  InputGate(Notifiable* owner, std::size_t capacity, Transport* transport,
            std::vector<bool> feedback_ports = {})
      : owner_(owner), capacity_(capacity), transport_(transport), feedback_(std::move(feedback_ports)) {}

  void push(int port, std::shared_ptr<const BatchBase> batch, std::int64_t credit = -1);
  void push_event(int port, const Event& event);
  bool pop(Item& item);
  // The port of the item pop() would return next, whether it is an event, and which.
  bool peek(int& port, bool& is_event, Event& event) const;
  bool empty() const;
  bool has_credit(Notifiable* waiter);
  std::size_t max_queued() const;

 private:
  bool is_feedback(int port) const {
    return static_cast<std::size_t>(port) < feedback_.size() && feedback_[static_cast<std::size_t>(port)];
  }
  void enqueue(Item item);

  Notifiable* owner_;
  std::size_t capacity_;
  Transport* transport_;
  std::vector<bool> feedback_;
  mutable std::mutex mu_;
  std::deque<Item> q_;
  std::deque<Item> fq_;   // feedback ports
  std::size_t data_ = 0;  // batches (not control items) in q_
  std::size_t max_ = 0;
  std::vector<Notifiable*> waiters_;
};

// Connects producer subtasks to consumer subtasks, within a rank and across ranks, and lets the
// ranks of one job agree: on the plan before it starts, on failure while it runs, on the
// outcome and the metrics when it ends. One job at a time per transport.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int num_ranks() const = 0;

  // Before any data moves (collective): throws PlanError unless every rank built this plan.
  virtual void check_plan(std::uint64_t /*hash*/) {}

  struct Hooks {
    // Another rank failed (message) or cancelled the job: end it here too.
    std::function<void(const std::string& message, bool cancel)> remote_abort;
    // Batches a producer may have sent to one remote consumer and not yet seen consumed
    // (JobConfig::remote_window_bytes / batch_bytes, at least channel_capacity).
    std::size_t channel_capacity = 4;
    // Iterations in the plan: each gets its own channel for allreduce_async.
    int collective_channels = 0;
  };
  // Before a job starts: the gates of this rank's subtasks, indexed by global subtask id
  // (nullptr for subtasks that run elsewhere).
  virtual void bind(const StreamGraph& g, const ExecutionGraph& eg,
                    const std::vector<InputGate*>& gates, Hooks hooks) = 0;
  // The channel from subtask `src` (on this rank) to input `port` of subtask `dst`; records are
  // output `src_output` of node `src_node`. A feedback channel (a loop's back edge) never runs out of
  // credit. Throws PlanError if the records cannot reach `dst`.
  virtual std::unique_ptr<ChannelOut> open(int src_subtask, int dst_subtask, int port, int src_node,
                                           int src_output, bool feedback) = 0;
  // After this rank built its subtasks (collective): the first build error of any rank (empty if
  // none), so that every rank gives up together before any data moves.
  virtual std::string agree(const std::string& local_error) { return local_error; }
  // Starts moving data (after bind, open and agree).
  virtual void start() {}
  // A batch from a remote producer was consumed.
  virtual void return_credit(std::int64_t /*token*/) {}
  // This rank failed or was cancelled: end the job on the other ranks too.
  virtual void abort_others(const std::string& /*message*/, bool /*cancel*/) {}

  // Superstep coordination of iteration `channel` (non-blocking, callable from any thread):
  // combines `values` element-wise over ranks with `ops` and calls done(result) on some thread
  // once every rank contributed. Each channel's calls are matched in order across ranks; one
  // outstanding call per channel.
  enum class ReduceOp : int { kSum = 0, kMin = 1, kMax = 2 };
  virtual void allreduce_async(int /*channel*/, std::vector<double> values, std::vector<ReduceOp> /*ops*/,
                               std::function<void(std::vector<double>)> done) {
    done(std::move(values));
  }
  // After finish (collective, only when the job succeeded): sums `values` over ranks.
  virtual void allreduce_sum(std::vector<double>& /*values*/) {}

  struct Outcome {
    bool failed = false;
    bool cancelled = false;
    std::string message;
  };
  // After this rank's subtasks ended (collective): waits for every rank, agrees on the outcome
  // (the failure of the lowest failing rank wins), sums `counters` over ranks, and unbinds.
  virtual Outcome finish(Outcome local, std::vector<double>& /*counters*/) { return local; }
  // Bytes this rank sent to other ranks in the current (or last) job, data and control
  // messages; callable from any thread while the job runs (per-superstep metrics read it).
  virtual std::uint64_t wire_bytes() const { return 0; }
};

// All partitions in this process.
std::unique_ptr<Transport> make_local_transport();
// A channel into a gate of this process.
std::unique_ptr<ChannelOut> make_local_channel(InputGate* gate, int port, bool feedback);

std::shared_ptr<JobRuntime> start_job(const StreamGraph& g, const JobGraph& jg,
                                      const ExecutionGraph& eg, const JobConfig& config,
                                      std::shared_ptr<Transport> transport);

}  // namespace detail
}  // namespace gyre
