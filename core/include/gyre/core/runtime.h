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
  // Makes every source subtask of this job (on this rank) emit Event::barrier(id) on its outputs
  // at its next activation, and returns id (1, 2, ... per job: the k-th call makes barrier k).
  // Operators get it aligned: once it arrived on all their non-feedback input channels. With
  // several ranks, every rank calls it (the same number of times; not necessarily at the same
  // moment): barrier k is complete at an operator when the sources of every rank sent it.
  // Sources that already ended send nothing (their channels ended count as arrived).
  std::int64_t trigger_barrier();
  bool finished() const;

 private:
  std::shared_ptr<detail::JobRuntime> rt_;
};

namespace detail {

class Transport;

// The consumer side of all channels into one subtask: one FIFO queue per input channel (the
// channels are numbered by compile(), see Task::channels), holding batches and control events
// (event.h) in the order their producer sent them.
//
// Credit is per channel: a channel from a producer on this rank may have `channel_capacity`
// batches queued (has_credit); a channel from another rank is limited by its sender's window
// (Transport::Hooks::channel_capacity, returned by pop through Transport::return_credit). Either
// way a channel's batches count only against that channel, so a fast producer cannot take the
// room of the others. Feedback channels (a loop's back edges) never refuse.
//
// pop takes items round robin over the channels that have items and are not blocked (block: an
// aligning barrier holds its channel; its items stay queued and keep their credit used). A gate
// with feedback channels (a loop head) alternates between feedback and other channels, but takes
// nothing from the others while more than channel_capacity x (feedback channels) batches wait on
// feedback channels: a busy loop drains before it admits more input, and cannot grow without
// bound.
//
// Producers push from any thread; one consumer (the subtask) peeks, pops and blocks.
class InputGate {
 public:
  struct ChannelInfo {
    int port = 0;
    bool feedback = false;
  };
  struct Item {
    int channel = 0;
    int port = 0;
    std::shared_ptr<const BatchBase> batch;  // null: a control event
    Event event;
    std::int64_t credit = -1;  // >= 0: returned to the transport when popped (remote producer)
    bool is_event() const { return batch == nullptr; }
  };
  InputGate(Notifiable* owner, std::size_t channel_capacity, Transport* transport,
            std::vector<ChannelInfo> channels);

  int channels() const { return static_cast<int>(ch_.size()); }
  const ChannelInfo& info(int channel) const { return ch_[static_cast<std::size_t>(channel)].info; }

  void push(int channel, std::shared_ptr<const BatchBase> batch, std::int64_t credit = -1);
  void push_event(int channel, const Event& event);
  // The channel whose first item pop would return next, whether it is an event, and which.
  bool peek(int& channel, bool& is_event, Event& event);
  // Pops the first item of `channel` (the one peek named).
  void pop(int channel, Item& item);
  // peek + pop.
  bool pop(Item& item);
  // Nothing to pop (blocked channels' items do not count).
  bool empty();
  // A producer on this rank may send another batch on `channel`. Otherwise registers `waiter`
  // (the channel's one producer) to be notified when it may.
  bool has_credit(int channel, Notifiable* waiter);
  // Holds `channel`: pop skips it until unblock_all.
  void block(int channel);
  void unblock_all();
  // Largest number of batches queued in the gate at once (all channels).
  std::size_t max_queued() const;

 private:
  struct Channel {
    ChannelInfo info;
    std::deque<Item> q;
    std::size_t batches = 0;
    bool blocked = false;
    bool in_ring = false;  // in ring_ or fring_ (possibly blocked: dropped when it comes up)
    Notifiable* waiter = nullptr;
  };
  void enqueue(int channel, Item item);
  int front_locked();  // the channel to pop next, or -1

  Notifiable* owner_;
  std::size_t capacity_;
  Transport* transport_;
  std::vector<Channel> ch_;
  std::size_t feedback_limit_ = 0;
  mutable std::mutex mu_;
  std::deque<int> ring_;   // channels with items, round robin (not feedback)
  std::deque<int> fring_;  // feedback channels with items
  bool feedback_turn_ = false;
  std::size_t queued_ = 0;           // batches, all channels
  std::size_t feedback_queued_ = 0;  // batches on feedback channels
  std::size_t max_ = 0;
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
    // Iterations in the plan: each gets its own channel for allreduce_async, which carries at
    // most collective_values[channel] values.
    int collective_channels = 0;
    std::vector<std::size_t> collective_values;
  };
  // Before a job starts: the gates of this rank's subtasks, indexed by global subtask id
  // (nullptr for subtasks that run elsewhere).
  virtual void bind(const StreamGraph& g, const ExecutionGraph& eg,
                    const std::vector<InputGate*>& gates, Hooks hooks) = 0;
  // The channel from subtask `src` (on this rank) to subtask `dst`, which knows it as its input
  // channel `channel` (JobGraph numbering: channel_of) of input `port`; records are output
  // `src_output` of node `src_node`. A feedback channel (a loop's back edge) never runs out of
  // credit. Throws PlanError if the records cannot reach `dst`.
  virtual std::unique_ptr<ChannelOut> open(int src_subtask, int dst_subtask, int port, int channel,
                                           int src_node, int src_output, bool feedback) = 0;
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
std::unique_ptr<ChannelOut> make_local_channel(InputGate* gate, int channel, bool feedback);

std::shared_ptr<JobRuntime> start_job(const StreamGraph& g, const JobGraph& jg,
                                      const ExecutionGraph& eg, const JobConfig& config,
                                      std::shared_ptr<Transport> transport);

}  // namespace detail
}  // namespace gyre
