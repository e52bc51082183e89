// The coordinator of one iteration on one rank: collects what the loop head's partitions on this
// rank report at the end of each superstep, combines it with the other ranks' reports through
// one non-blocking allreduce, decides (every rank the same way, from the same global values)
// whether the loop goes on, and wakes the heads. Shared by bulk, delta and streaming loops.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gyre/core/event.h"
#include "gyre/core/plan.h"
#include "gyre/core/runtime.h"
#include "gyre/iterations/checkpoint.h"

namespace gyre {

enum class LoopKind { kBulk, kDelta, kStreaming };

// One value of a vector aggregate (LoopContext::sum_vector): add `value` at `index`.
struct VectorEntry {
  std::uint64_t index = 0;
  double value = 0;
};

namespace detail {

using ReduceOp = Transport::ReduceOp;

// A global value per superstep: folded over every record of a stream of doubles in the body.
struct AggregatorState {
  std::string name;
  ReduceOp op = ReduceOp::kSum;
  std::atomic<double> value{0};  // after the last completed superstep
  double identity() const;
};

// A dense vector per superstep: summed over every record of a stream of (index, value) entries in
// the body, per partition in arrival order, then over the partitions in partition order (the
// same bits at any number of ranks). With slots (LoopContext::sum_vector_slots): entry index
// slot * length + j; each slot filled in one partition; the slots added in slot order (the same
// bits at any number of partitions too).
struct VectorAggregatorState {
  std::string name;
  std::size_t length = 0;
  int partitions = 0;
  std::size_t slots = 0;      // 0: one vector per partition
  std::vector<double> value;  // after the last completed superstep (zeros before the first)
  // Values a head partition collects, and values of the superstep's allreduce.
  std::size_t head_length() const { return slots > 0 ? length * slots : length; }
  std::size_t wire_length() const { return slots > 0 ? length * slots : length * static_cast<std::size_t>(partitions); }
};

// One rank's checkpoint writer: a background thread that writes the rank's file of each entry
// (and, on rank 0, commits entries) in order.
class CheckpointWriter {
 public:
  CheckpointWriter() = default;
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // Queues a task; returns the tasks queued or running after it (this one included).
  std::size_t post(std::function<void()> task);
  // Tasks queued or running.
  std::size_t backlog() const;
  // Waits until no task is queued or running.
  void wait_idle();
  // The first error a task threw ("" if none).
  std::string error() const;

 private:
  void run();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> tasks_;
  bool running_ = false;
  bool stop_ = false;
  std::string error_;
  std::thread thread_;
};

// What one head partition reports at the end of a superstep (epoch 0: its initial input ended).
struct LocalReport {
  std::uint64_t size = 0;       // next partial solution / next workset / records forwarded
  std::uint64_t criterion = 0;  // records of the termination criterion stream
  std::vector<double> aggregates;
  // A head partition's vector aggregates (one dense vector each) and its partition.
  int partition = -1;
  std::vector<std::vector<double>> vectors;
  // Streaming loops with event time (TimedStreamingHead): the round's progress. `size` is then
  // every record the head pushed into the body during the round (input and feedback).
  Timestamp min_ts = kMaxTimestamp;     // the smallest timestamp among them
  Timestamp active_wm = kMaxTimestamp;  // input watermark, min over heads whose input is live
  Timestamp idle_wm = kMaxTimestamp;    // last input watermark, min over heads whose input is idle
  std::uint64_t active = 0;             // heads whose input is live (neither idle nor ended)
  std::uint64_t idle = 0;               // heads whose input is idle (not ended)
};

// Fault injection: kills this process if a kill is injected for (rank, superstep); true (once)
// if a throw is.
bool injected_failure(int rank, int superstep, FailureMode mode);

// Aggregators one iteration may have: a superstep's decision is one allreduce of at most
// kMaxReduceValues values (mpi transport), 4 of them the loop's own (size, criterion, checkpoint
// state). This is the only statement of the limit.
inline constexpr std::size_t kMaxReduceValues = 64;
inline constexpr std::size_t kMaxAggregators = kMaxReduceValues - 4;

class LoopController final : public LoopHook {
 public:
  LoopController(LoopKind kind, std::string name, int max_supersteps);
  // Joins the checkpoint writer before the members its last task may touch go away.
  ~LoopController() override { writer_.reset(); }
  LoopController(const LoopController&) = delete;
  LoopController& operator=(const LoopController&) = delete;

  // ---- set up while the plan is built ----
  std::shared_ptr<AggregatorState> add_aggregator(std::string name, ReduceOp op);
  // A vector aggregator of `length` values over a head of `partitions` partitions.
  // slots > 0: summed by slot (see VectorAggregatorState).
  std::shared_ptr<VectorAggregatorState> add_vector_aggregator(std::string name, std::size_t length, int partitions,
                                                               std::size_t slots = 0);
  void set_criterion() { has_criterion_ = true; }
  void set_convergence(std::function<bool()> converged) { converged_ = std::move(converged); }
  void set_on_superstep(std::function<void(const SuperstepMetrics&)> f) { on_superstep_ = std::move(f); }
  // Streaming loops: records carry event time; rounds run from the start and track progress.
  void set_event_time() { event_time_ = true; }
  bool event_time() const { return event_time_; }
  const std::vector<std::shared_ptr<AggregatorState>>& aggregators() const { return aggs_; }
  const std::vector<std::shared_ptr<VectorAggregatorState>>& vector_aggregators() const { return vaggs_; }
  LoopKind kind() const { return kind_; }
  int rank() const { return rank_; }
  const std::string& name() const { return name_; }
  // The superstep running now (1-based; 0 before the first), for user functions.
  const std::atomic<int>& superstep_ref() const { return superstep_; }

  // ---- checkpoints (set up while the plan is built; finds what to resume from, if resuming) ----
  void set_checkpoints(LoopCheckpoints c, const std::string& record_types, int partitions);
  bool checkpointing() const { return ckpt_.storage != nullptr; }
  // The superstep this run starts after (0: from the loop's initial input).
  int first_superstep() const { return recovery_.superstep; }
  const RecoveryPlan& recovery() const { return recovery_; }
  enum class Entry { kNone, kHead, kTail };
  // What the heads snapshot at the head after `completed` supersteps (the same on every rank),
  // as decided with the superstep's decision. Throws the checkpoint writer's first error, if one
  // happened.
  Entry entry_due(int completed);
  // When the loop stops: waits for this rank's checkpoint writer (at most one entry) and throws
  // its first error, if one happened, so the job fails with it.
  void drain_checkpoints();
  // A head's parts of the entry after `completed`; the rank's file is written once every head
  // on the rank gave its parts. Throws the writer's first error, if one happened.
  void add_parts(int completed, CheckpointStorage::Parts parts, double encode_seconds);
  // Every chain entry's parts (read once per rank, on first use); release after restoring.
  std::shared_ptr<const std::vector<std::map<std::string, std::string>>> restore_parts();
  void restored();

  // ---- called by the heads ----
  void register_head(Notifiable* head);
  void report(int epoch, const LocalReport& r);
  // The decision taken after `epoch`, if taken: go on with superstep epoch + 1, or stop.
  struct Decision {
    bool taken = false;
    bool stop = false;
    // Streaming loops with event time: the watermark the heads emit into the body (the same on
    // every rank; never decreasing).
    Timestamp watermark = kMinTimestamp;
  };
  Decision decision(int epoch) const;

  // ---- LoopHook ----
  void attach(Transport* transport, int channel, int local_heads,
              const std::atomic<std::uint64_t>* exchanged_bytes) override;
  std::vector<double> local_counters() override;
  std::size_t collective_values() const override;
  void finish(const std::vector<double>& global_counters, JobResult& result) override;

 private:
  void submit(int epoch, const LocalReport& r);
  void decide(int epoch, const std::vector<double>& global);
  void post_write(int completed, CheckpointStorage::Parts parts);  // under mu_
  void run_or_post(std::function<void()> task);                      // under mu_
  // The entry the schedule (LoopCheckpoints::every, mode) asks for after `completed`.
  Entry scheduled(int completed) const;
  // The entry written after `epoch` (under mu_, once per decision, the same on every rank):
  // the scheduled one, unless a checkpoint writer was busy on some rank (`busy`), in which case
  // it is skipped (a skipped head is owed: the next entry written is a head); a tail that would
  // chain onto a skipped entry is written as a head instead.
  Entry choose(int epoch, bool busy);
  std::string checkpoint_error() const;  // under mu_

  const LoopKind kind_;
  const std::string name_;
  const int max_supersteps_;
  bool has_criterion_ = false;
  std::function<bool()> converged_;
  std::function<void(const SuperstepMetrics&)> on_superstep_;
  std::vector<std::shared_ptr<AggregatorState>> aggs_;
  std::vector<std::shared_ptr<VectorAggregatorState>> vaggs_;
  // The vector aggregates of this rank's head partitions reported so far, each in its partition's
  // slot of a partitions x length array (zeros in the other ranks' slots).
  std::vector<std::vector<double>> vacc_;
  bool event_time_ = false;
  Timestamp loop_wm_ = kMinTimestamp;  // event-time streaming: the last decision's watermark

  Transport* transport_ = nullptr;
  int channel_ = 0;
  int local_heads_ = 0;
  int rank_ = 0;
  const std::atomic<std::uint64_t>* exchanged_ = nullptr;

  mutable std::mutex mu_;
  std::vector<Notifiable*> heads_;
  int reported_ = 0;      // head partitions that reported the current epoch
  LocalReport acc_;       // their reports combined
  int decided_epoch_ = -1;
  bool stop_ = false;
  std::atomic<int> superstep_{0};
  std::chrono::steady_clock::time_point last_decision_;
  std::uint64_t last_bytes_ = 0;
  std::uint64_t last_wire_ = 0;  // Transport::wire_bytes() at the last decision
  LoopMetrics metrics_;
  std::vector<double> step_bytes_;  // this rank's per superstep: exchanged bytes, bytes sent to other ranks

  LoopCheckpoints ckpt_;
  std::string fingerprint_;
  int partitions_ = 0;
  RecoveryPlan recovery_;
  bool rebase_ = false;  // write a head at the resume point first
  int ranks_ = 1;
  std::unique_ptr<CheckpointWriter> writer_;
  std::string sync_error_;  // LoopCheckpoints::wait: the first failed write or commit
  std::atomic<int> written_{-1};  // newest entry this rank's file of which is written
  int parts_added_ = 0;           // heads that gave their parts of the pending entry
  CheckpointStorage::Parts pending_parts_;
  std::deque<CheckpointInfo> to_commit_;  // rank 0: entries written here, not yet committed
  int due_epoch_ = -1;                    // the decision the entry below belongs to
  Entry due_ = Entry::kNone;              // what is written after due_epoch_
  bool chained_ = true;                   // the state after due_epoch_ is reachable from an entry
  bool head_owed_ = false;                // a head was skipped: the next entry written is a head
  int written_everywhere_ = -1;           // newest entry written on every rank, as last reduced
  std::atomic<int> committed_{0};         // rank 0: entries committed by this run
  std::string final_error_;               // local_counters: this rank's checkpoint failure
  std::shared_ptr<const std::vector<std::map<std::string, std::string>>> restore_;
  int restoring_ = 0;  // local heads that have not released restore_ yet
};

}  // namespace detail
}  // namespace gyre
