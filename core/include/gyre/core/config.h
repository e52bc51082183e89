// Job configuration and results.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gyre {

class SnapshotStore;  // snapshot.h
struct JobSnapshot;

struct JobConfig {
  // Default parallelism of operators (partitions per operator); 0 = hardware threads.
  int parallelism = 0;
  // Worker threads (slots) of this rank; 0 = hardware threads.
  int slots = 0;
  // Target size of a batch on an exchange; records per batch = max(1, batch_bytes / sizeof(T)).
  std::size_t batch_bytes = 32 * 1024;
  // Batches a producer may have queued at one consumer before it is back-pressured.
  std::size_t channel_capacity = 4;
  // Across ranks a batch is acknowledged only after a round trip, so a channel to another rank
  // may have this many bytes (at least channel_capacity batches) sent and not yet consumed.
  std::size_t remote_window_bytes = 4 << 20;
  // For jobs with an unbounded source: a partly filled buffer is sent at the latest this long
  // after its first record was written. Zero sends every batch at once.
  std::chrono::milliseconds buffer_timeout{100};
  // How often an idle unbounded source is polled again.
  std::chrono::milliseconds idle_poll{1};

  // Partitions of one operator at most: an exchange between two operators of P partitions has
  // P^2 channels (each with its buffers and per-superstep markers), so memory and time per
  // superstep grow with P^2. Operators of more are refused (PlanError).
  static constexpr int kMaxParallelism = 512;
  // Worker threads of one rank at most: 4 per hardware thread, at least 16. More only contend
  // for the cores (and cost a thread stack each); they are capped to this.
  static int max_slots();

  // Checks the settings (throws PlanError naming the field: a negative value, parallelism above
  // kMaxParallelism, batch_bytes or channel_capacity 0) and returns warnings about what will be
  // adjusted (slots above max_slots()). Environment and the runtime apply the same rules.
  std::vector<std::string> validate() const;
  // slots and parallelism as a job uses them on `ranks` ranks: 0 = the defaults (hardware
  // threads; ranks x slots, at most kMaxParallelism), slots capped to max_slots(). Validates.
  JobConfig resolved(int ranks) const;

  // Operator snapshots (snapshot.h): stateful built-in operators put their state here at every
  // checkpoint barrier (none: not kept) ...
  std::shared_ptr<SnapshotStore> snapshots;
  // ... and start from this one (matched by node id; names checked).
  std::shared_ptr<const JobSnapshot> restore_from;
};

// Records that passed through one operator, summed over its partitions and ranks: logical
// records (a type that packs many, like a vertex program's block of values, counts what it holds;
// see RecordExtent in gyre/core/batch.h). Bytes are records x sizeof(record), as held in memory.
struct OperatorMetrics {
  int node = 0;
  std::string name;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
  std::uint64_t records_late = 0;  // records an event-time operator found late (window.h)
  std::uint64_t records_dropped = 0;  // records a window operator dropped: their window had closed
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

// Time of one task (a chain of operators), summed over its subtasks and ranks: busy running,
// back-pressured (ready but a consumer had no room), idle (the rest of the job's wall time).
struct TaskMetrics {
  int task = 0;
  std::string name;
  int subtasks = 0;
  double busy_seconds = 0;
  double backpressured_seconds = 0;
  double idle_seconds = 0;
};

// One superstep of a bulk or delta iteration (or one termination-detection round of a streaming
// loop), over all ranks.
struct SuperstepMetrics {
  int superstep = 0;
  double seconds = 0;        // wall time on rank 0, from the decision to start it to the next
  // Logical records (RecordExtent) in: bulk, the next partial solution; delta, the next workset;
  // streaming, what went round the loop in this round. A bulk vertex program: every vertex; a
  // delta one: the messages (combined per destination vertex and source partition). Vertex
  // programs also have an "active vertices" aggregator (values that changed).
  std::uint64_t size = 0;
  std::uint64_t exchange_bytes = 0;  // bytes of the records sent over exchanges (within and between ranks)
  std::uint64_t wire_bytes = 0;      // bytes sent from one rank to another (encoded, with control messages)
  std::vector<std::pair<std::string, double>> aggregators;  // global values after it
};

// LoopMetrics::ended_by.
inline constexpr const char* kEndedMaxSupersteps = "max supersteps reached";
inline constexpr const char* kEndedCriterion = "termination criterion empty";
inline constexpr const char* kEndedConverged = "converged";
inline constexpr const char* kEndedEmptyBulk = "converged: the partial solution is empty";
inline constexpr const char* kEndedEmptyDelta = "converged: the workset is empty";
inline constexpr const char* kEndedQuiescent = "quiescent: nothing in flight";

struct LoopMetrics {
  std::string name;
  std::string kind;  // "bulk", "delta", "streaming"
  int supersteps = 0;
  // Why it ended, for people: one of the kEnded* texts above (vertex programs say more:
  // "converged: no active vertices", "converged: residual below tolerance"), or "" if it did not end.
  std::string ended_by;
  std::vector<SuperstepMetrics> steps;
  int resumed_from = 0;        // the superstep this run resumed from (0: from the start)
  int checkpoints = 0;         // checkpoint entries this rank wrote (rank 0's figure)
  int checkpoints_skipped = 0;    // entries skipped because a writer was still busy (asynchronous)
  int checkpoints_committed = 0;  // rank 0: entries this run committed
  int checkpoint_backlog = 0;     // most writes/commits queued or running at once on this rank
  double checkpoint_seconds = 0;  // rank 0: time the heads spent encoding them (the writes overlap)
};

struct JobResult {
  double seconds = 0;
  bool cancelled = false;
  int ranks = 1;
  std::vector<OperatorMetrics> operators;
  std::vector<TaskMetrics> tasks;
  // Largest number of batches queued at any one input gate (this rank).
  std::size_t max_queued_batches = 0;
  // Bytes sent to and received from other ranks, summed over ranks.
  std::uint64_t wire_bytes = 0;
  // Iterations of the job, with per-superstep figures.
  std::vector<LoopMetrics> loops;
  // Times the job was rolled back and run again after a failure (run_with_recovery).
  int restarts = 0;

  // A few lines for people: time, records and busy share per operator / task.
  std::string summary() const;
  // The same as JSON (stable field names, for tools).
  std::string to_json() const;
  // Writes to_json() to `path` (atomically: temporary file + rename); throws gyre::Error.
  void write_json(const std::string& path) const;
};

// The jobs one program ran (say "load", then "pagerank"), for one metrics file:
//   {"jobs": [{"name": "load", <the fields of JobResult::to_json>}, ...]}
struct NamedJobResult {
  std::string name;
  JobResult result;
};
std::string jobs_to_json(const std::vector<NamedJobResult>& jobs);
// Writes jobs_to_json(jobs) to `path` atomically; throws gyre::Error.
void write_jobs_json(const std::string& path, const std::vector<NamedJobResult>& jobs);

}  // namespace gyre
