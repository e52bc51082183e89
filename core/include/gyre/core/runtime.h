// The runtime: running subtasks on a rank's slots, the channels between them, and the
// transport interface that connects ranks.
//
// Every subtask (one chain of operators x one partition) is scheduled cooperatively on a oneTBB
// task arena whose concurrency is the number of slots: it runs when it has input and every output
// channel has credit, processes a few batches, and yields. A full channel never blocks a thread,
// so any number of subtasks runs on any number of slots without deadlock, and memory stays
// bounded by the channel capacities.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
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

// The consumer side of all channels into one subtask: a bounded queue of batches tagged with
// the input port. A null batch is one producer's end-of-input marker.
class InputGate {
 public:
  struct Item {
    int port = 0;
    std::shared_ptr<const BatchBase> batch;
  };
  InputGate(Notifiable* owner, std::size_t capacity) : owner_(owner), capacity_(capacity) {}

  void push(int port, std::shared_ptr<const BatchBase> batch);
  void push_end(int port);
  bool pop(Item& item);
  bool empty() const;
  bool has_credit(Notifiable* waiter);
  std::size_t max_queued() const;

 private:
  Notifiable* owner_;
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Item> q_;
  std::size_t data_ = 0;  // batches (not end markers) in q_
  std::size_t max_ = 0;
  std::vector<Notifiable*> waiters_;
};

// Connects producer subtasks to consumer subtasks, within a rank and across ranks.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int num_ranks() const = 0;
  // Before a job starts: the gates of this rank's subtasks, indexed by global subtask id
  // (nullptr for subtasks that run elsewhere).
  virtual void bind(const ExecutionGraph& eg, const std::vector<InputGate*>& gates) = 0;
  virtual std::unique_ptr<ChannelOut> open(int src_subtask, int dst_subtask, int port) = 0;
  // After the job ended on this rank.
  virtual void unbind() {}
};

// All partitions in this process.
std::unique_ptr<Transport> make_local_transport();

std::shared_ptr<JobRuntime> start_job(const StreamGraph& g, const JobGraph& jg,
                                      const ExecutionGraph& eg, const JobConfig& config,
                                      std::shared_ptr<Transport> transport);

}  // namespace detail
}  // namespace gyre
