// The logical plan (StreamGraph) and its compiled forms (JobGraph, ExecutionGraph).
//
// The typed API (stream.h) records each operator as a type-erased NodeSpec holding factories
// made while the types were known; the runtime never sees a record type. The graph admits
// cycles: an edge marked `feedback` closes a loop and is ignored by the acyclicity check and the
// topological order. These are gyre::detail types: stable enough for gyre's own modules
// (iterations, mpi), not for users.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gyre/core/batch.h"
#include "gyre/core/config.h"

namespace gyre {

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
  virtual void send_end() = 0;
  // True if the consumer can take another batch now. Otherwise registers `waiter` to be
  // notified when it can, and returns false (check again after registering: no lost wake-up).
  virtual bool has_credit(Notifiable* waiter) = 0;
};

// What an operator instance knows about where it runs.
struct OpContext {
  std::string name;
  int node = 0;
  int partition = 0;
  int parallelism = 1;
  int rank = 0;
  std::size_t batch_bytes = 0;
  const JobConfig* config = nullptr;
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
  virtual SourceBase* source() { return nullptr; }
  // Sinks: called after the whole job succeeded (make output visible) or failed (discard it).
  virtual void commit() {}
  virtual void abort() {}
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
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

using WriterFactory = std::function<std::unique_ptr<WriterBase>(
    Partitioning kind, std::vector<ChannelOut*> channels, std::size_t batch_bytes)>;

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
  std::function<std::unique_ptr<NodeRuntime>(const OpContext&, PortBase* out)> make;
  WriterFactory make_writer;  // for the output type; forward/rebalance/broadcast/gather
  std::function<std::unique_ptr<PortBase>(std::vector<PortBase*>)> make_tee;
  std::function<void()> validate;  // throws PlanError (missing file, ...)
  // Output records crossing ranks (unset when the record type has no gyre::Codec).
  std::function<void(const BatchBase&, std::string&)> encode;
  std::function<std::shared_ptr<BatchBase>(const char*, const char*, std::size_t)> decode;
  std::size_t record_bytes = 0;  // sizeof the output record (0 for sinks)
};

struct EdgeSpec {
  int from = 0;
  int to = 0;
  int port = 0;
  Partitioning requested = Partitioning::kAuto;
  bool feedback = false;
  WriterFactory make_hash_writer;  // set when the consumer hashes this input on a key
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
};

struct ResolvedEdge {
  int edge = 0;  // index into StreamGraph::edges
  Partitioning kind = Partitioning::kForward;
  bool chained = false;
};

struct JobGraph {
  std::vector<Task> tasks;
  std::vector<int> task_of_node;
  std::vector<ResolvedEdge> edges;  // same order as StreamGraph::edges
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
