// The logical plan (StreamGraph) and its compiled forms (JobGraph, ExecutionGraph).
//
// The typed API (stream.h, operator.h) records each operator as a type-erased NodeSpec holding
// factories made while the types were known; the runtime never sees a record type. The graph admits
// cycles: an edge marked `feedback` closes a loop and is ignored by the acyclicity check and the
// topological order. These are gyre::detail types, not for users; nodes and edges are added only
// through gyre::OperatorBuilder (operator.h), by the typed API and gyre's modules alike.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "gyre/core/batch.h"
#include "gyre/core/config.h"

namespace gyre {

struct StateSnapshot;  // state.h

enum class Partitioning { kAuto, kForward, kHash, kBroadcast, kRebalance, kGather };
const char* to_string(Partitioning p);

enum class ExplainFormat { kText, kDot };

namespace detail {

// Wakes a subtask up (when input arrives or output credit returns).
class Notifiable {
 public:
  virtual ~Notifiable() = default;
  virtual void notify() = 0;
};

// The producer's end of a channel to one consumer subtask's input port.
class ChannelOut {
 public:
  virtual ~ChannelOut() = default;
  virtual void send(std::shared_ptr<const BatchBase> batch) = 0;
  // A control event (event.h), in order after the batches sent before it.
  virtual void send_event(const Event& event) = 0;
  // True if the consumer can take another batch now. Otherwise registers `waiter` to be
  // notified when it can, and returns false (check again after registering: no lost wake-up).
  virtual bool has_credit(Notifiable* waiter) = 0;
};

class Transport;
struct OutputSpec;

// What an operator instance knows about where it runs.
struct OpContext {
  std::string name;
  int node = 0;
  int partition = 0;
  int parallelism = 1;
  int rank = 0;
  std::size_t batch_bytes = 0;
  const JobConfig* config = nullptr;
  // Inside an iteration body (between a loop head and its feedback edges): the operator passes
  // superstep_end() on. `input_in_loop[i]`: input i comes from inside the loop (reset every
  // superstep) rather than from a loop-invariant stream (kept).
  bool in_loop = false;
  std::vector<bool> input_in_loop;
  // The subtask running this operator (loop heads are woken by their loop's coordinator).
  Notifiable* self = nullptr;
  // Processing-time timers: asks the rank's timer service to wake this subtask at `t` (steady
  // clock) and then call this operator's NodeRuntime::on_processing_time. Callable from the
  // operator's own calls (not from other threads); each call is one wake-up (the operator
  // deduplicates its own times). Set by the runtime; empty outside a job.
  std::function<void(std::chrono::steady_clock::time_point t)> wake_at;
  // The node's outputs (for the operator API's side outputs).
  const std::vector<OutputSpec>* outputs = nullptr;
};

// Result of one call to a source.
enum class SourceStatus { kMore, kIdle, kDone };

class SourceBase {
 public:
  virtual ~SourceBase() = default;
  // Emits up to about `max_batches` batches downstream.
  virtual SourceStatus produce(std::size_t max_batches) = 0;
};

// An operator instance in one subtask.
class NodeRuntime {
 public:
  virtual ~NodeRuntime() = default;
  virtual PortBase* port(int i) = 0;
  // A source, or a loop head that emits on its own as well as consuming its inputs.
  virtual SourceBase* source() { return nullptr; }
  // False while a loop head waits for its loop's decision: its input stays queued.
  virtual bool accepts_input() { return true; }
  // A wake-up asked for with OpContext::wake_at is due (called on the subtask's worker, before
  // it takes input, when its outputs have credit). `now` >= the time asked for.
  virtual void on_processing_time(std::chrono::steady_clock::time_point /*now*/) {}
  // Sinks: called after the whole job succeeded (make output visible) or failed (discard it).
  virtual void commit() {}
  virtual void abort() {}
  // Snapshot and restore (state.h). A stateful operator keeps its state in key groups and
  // appends one record per (state, non-empty key group) to `out`; restore() takes the records of
  // every partition of an earlier instance of this operator, at any parallelism, and keeps those of
  // the key groups this instance owns (OpContext::partition of parallelism). A stateless
  // operator has nothing to snapshot: the defaults do nothing. Called by the operator's own
  // worker, between batches (snapshot: when every input delivered the barrier; restore: before
  // the first batch).
  virtual bool stateful() const { return false; }
  virtual void snapshot(std::vector<StateSnapshot>& /*out*/) const {}
  virtual void restore(std::span<const StateSnapshot> /*from_all_old_partitions*/) {}
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
  std::uint64_t records_late = 0;  // found late by an event-time operator (OperatorContext::count_late)
  std::uint64_t records_dropped = 0;  // dropped by a closed window (OperatorContext::count_dropped)
};

// The sending side of an exchange: buffers records per destination channel.
class WriterBase {
 public:
  virtual ~WriterBase() = default;
  virtual PortBase* port() = 0;
  // True if a partly filled buffer waits; `since` = when its first record was written.
  virtual bool pending(std::chrono::steady_clock::time_point& since) const = 0;
  virtual void flush_partial() = 0;
  virtual const std::vector<ChannelOut*>& channels() const = 0;
};

// The coordinator of one iteration on one rank, shared by the loop head's partitions there. The
// runtime attaches it before the job runs and asks it for its metrics after the job ended.
class LoopHook {
 public:
  virtual ~LoopHook() = default;
  // Before any subtask runs: the transport, this loop's collective channel, the number of
  // head partitions on this rank, and the job's count of bytes sent over exchanges.
  virtual void attach(Transport* transport, int channel, int local_heads,
                      const std::atomic<std::uint64_t>* exchanged_bytes) = 0;
  // The most values one of this loop's superstep allreduces carries (the same on every rank:
  // it follows from the plan).
  virtual std::size_t collective_values() const { return 64; }
  // After a successful job: values summed over ranks (same length on every rank) ...
  virtual std::vector<double> local_counters() = 0;
  // ... and the sums, to complete this loop's metrics.
  virtual void finish(const std::vector<double>& global_counters, JobResult& result) = 0;
};

struct FusionInfo;  // fusion.h

using WriterFactory = std::function<std::unique_ptr<WriterBase>(
    Partitioning kind, std::vector<ChannelOut*> channels, std::size_t batch_bytes)>;

// The typed handle an operator adapter makes for one of its outputs (gyre::Output<T>, in
// operator.h): buffers records into batches for `port`.
class OutputBase {
 public:
  virtual ~OutputBase() = default;
  // Pushes buffered records downstream.
  virtual void flush() = 0;
  // Flushes, then passes `event` on (nothing if the output has no consumer).
  virtual void forward(const Event& event) = 0;
};

// One typed output of an operator: what the runtime needs to move its records, made while the
// record type was known.
struct OutputSpec {
  std::string tag;  // a side output's name (gyre::OutputTag); empty for the main output
  WriterFactory make_writer;  // forward/rebalance/broadcast/gather
  std::function<std::unique_ptr<PortBase>(std::vector<PortBase*>)> make_tee;
  // Records crossing ranks (unset when the record type has no gyre::Codec).
  std::function<void(const BatchBase&, std::string&)> encode;
  std::function<std::shared_ptr<BatchBase>(const char*, const char*, std::size_t)> decode;
  std::size_t record_bytes = 0;  // sizeof the record
  const std::type_info* type = nullptr;  // the record type
  // The operator API's typed handle for this output (port: nullptr when nothing consumes it;
  // counter: the operator's records_out).
  std::function<std::unique_ptr<OutputBase>(PortBase* port, std::size_t batch_bytes, std::uint64_t* counter)>
      make_output;
};

// Makes the operator instance of one partition. `outs[i]` receives output i (nullptr when
// nothing consumes it).
using NodeFactory =
    std::function<std::unique_ptr<NodeRuntime>(const OpContext&, const std::vector<PortBase*>& outs)>;

// Nodes are added through gyre::OperatorBuilder (operator.h), never directly.
struct NodeSpec {
  int id = 0;
  std::string kind;  // "map", "source: collection", "sink: collect", ...
  std::string name;  // user-visible name, defaults to kind
  int parallelism = 1;
  bool bounded = true;
  int num_ports = 0;
  bool is_sink = false;
  bool needs_bounded_inputs = false;  // join, co_group
  bool keyed = false;                  // inputs must be hash-partitioned on the key
  bool allows_broadcast_build = false; // join: port 1 broadcast + port 0 local is valid
  bool side_outputs = false;           // an operator API node: outputs 1.. are side outputs
  NodeFactory make;
  std::vector<OutputSpec> outputs;  // output 0 first; a sink has none
  std::function<void()> validate;   // throws PlanError (missing file, ...)

  // ---- iterations ----
  // A loop head: output 0 is `body` (edges into the loop), output 1 `exit` (edges marked
  // loop_exit: the loop's result). Its inputs include the loop's feedback edges.
  bool loop_head = false;
  std::string loop_kind;  // "bulk", "delta", "streaming"
  std::shared_ptr<LoopHook> loop_hook;
  // Inside a loop, inputs from outside it are allowed (join: kept across supersteps).
  bool accepts_loop_invariant_input = false;
  // Reads the solution set of the delta iteration whose head is this node (-1: none): must be
  // inside that loop, at its parallelism.
  int solution_set_of = -1;

  // Per-record fusion (fusion.h): the map / filter / flat_map / for_each stages this node runs
  // as one loop, kept so that the chain can be split again; null for other nodes.
  std::shared_ptr<FusionInfo> fusion;
  // Output 0's record size (0 for sinks).
  std::size_t record_bytes() const { return outputs.empty() ? 0 : outputs[0].record_bytes; }
};

struct EdgeSpec {
  int from = 0;
  int to = 0;
  int port = 0;
  Partitioning requested = Partitioning::kAuto;
  bool feedback = false;
  WriterFactory make_hash_writer;  // set when the consumer hashes this input on a key
  bool loop_exit = false;          // from a loop head's output 1 to its result (not into the body)
  int output = 0;                  // which output of `from`
  // Feedback edges are unbounded (never refuse a batch) and read before other inputs, so a loop
  // cannot deadlock on its own back edge.
};

struct StreamGraph {
  std::vector<NodeSpec> nodes;
  std::vector<EdgeSpec> edges;
};

// ---- compiled forms ----

struct Task {
  int id = 0;
  int head = 0;                 // node whose inputs are the task's inputs
  std::vector<int> nodes;       // chained nodes, topological order, head first
  int parallelism = 1;
  // Input channels of each subtask of this task (the size of its input gate), numbered by
  // compile(): per incoming (non-chained) edge of the head in edge order, per producer partition
  // (a forward edge has one producer). The same on every rank.
  int channels = 0;
};

struct ResolvedEdge {
  int edge = 0;  // index into StreamGraph::edges
  Partitioning kind = Partitioning::kForward;
  bool chained = false;
  // Not chained: the consumer-side index of the channel from producer partition 0 (see
  // channel_of); -1 for chained edges.
  int first_channel = -1;
};

// The index, in the consumer subtask's input gate, of the channel from producer partition `p`
// over a (non-chained) edge.
inline int channel_of(const ResolvedEdge& e, int p) {
  return e.first_channel + (e.kind == Partitioning::kForward ? 0 : p);
}

struct JobGraph {
  std::vector<Task> tasks;
  std::vector<int> task_of_node;
  std::vector<ResolvedEdge> edges;  // same order as StreamGraph::edges
  // Per node: the head node of the loop whose body it is in (the head itself included), or -1.
  std::vector<int> loop_of;
};

struct SubtaskPlacement {
  int task = 0;
  int partition = 0;
  int rank = 0;
  int slot = 0;
};

struct ExecutionGraph {
  int num_ranks = 1;
  int slots = 1;
  std::vector<SubtaskPlacement> subtasks;
  std::vector<int> first_subtask;  // per task: index of partition 0 in `subtasks`
  int subtask_id(int task, int partition) const { return first_subtask[static_cast<std::size_t>(task)] + partition; }
};

// The consumer partitions that producer partition `p` sends to over an edge of this kind.
std::vector<int> destinations(Partitioning kind, int p, int consumer_parallelism);

// Checks the plan; throws PlanError naming the operator and what to change.
void validate(const StreamGraph& g);
JobGraph compile(const StreamGraph& g);
ExecutionGraph place(const StreamGraph& g, const JobGraph& jg, int num_ranks, int slots);
std::string explain(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg,
                    ExplainFormat format);
// A hash of the plan's structure (kinds, names, parallelism, edges); equal on every rank that
// built the same plan.
std::uint64_t plan_hash(const StreamGraph& g);

}  // namespace detail
}  // namespace gyre
