// Job-level operator snapshots (issue 13): when a checkpoint barrier has come through every
// input of a stateful built-in operator, the operator puts its keyed state (state.h) into the
// job's SnapshotStore (JobConfig::snapshots), per (barrier id, node, partition). After the job,
// SnapshotStore::snapshot(id) is the state of every stateful operator as of barrier id; a job
// built from the same plan (same node ids and names) at any parallelism starts from it with
// JobConfig::restore_from, each operator instance keeping the key groups it owns.
//
// Contracts and limits: the store is filled in process; under MPI each rank's store holds the
// partitions that ran on that rank (restore a multi-rank job by giving every rank the union, e.g.
// after an allgather of the Codec'd records). A snapshot is whole for barrier id once every
// partition of every stateful operator put its part (complete()); the sources' positions are not
// in it: the restored job's sources must start where the barrier was.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/config.h"
#include "gyre/core/error.h"
#include "gyre/core/plan.h"
#include "gyre/core/state.h"

namespace gyre {

// The state of one job's stateful operators as of one barrier.
struct JobSnapshot {
  struct Node {
    std::string name;      // the operator's name: a restore checks it
    int parallelism = 0;   // partitions when snapshotted
    int partitions = 0;    // partitions that put their part
    std::vector<StateSnapshot> records;  // all partitions'
  };
  std::int64_t barrier = 0;
  std::map<int, Node> nodes;  // by node id
  bool complete() const {
    for (const auto& [id, n] : nodes)
      if (n.partitions != n.parallelism) return false;
    return !nodes.empty();
  }
};

class SnapshotStore {
 public:
  // One operator instance's part (called by its worker; thread-safe).
  void put(std::int64_t barrier, int node, const std::string& name, int parallelism,
           std::vector<StateSnapshot> records) {
    std::lock_guard lock(mu_);
    JobSnapshot& s = snapshots_[barrier];
    s.barrier = barrier;
    JobSnapshot::Node& n = s.nodes[node];
    n.name = name;
    n.parallelism = parallelism;
    ++n.partitions;
    n.records.insert(n.records.end(), std::make_move_iterator(records.begin()),
                     std::make_move_iterator(records.end()));
  }
  // Barrier ids with at least one part, ascending.
  std::vector<std::int64_t> barriers() const {
    std::lock_guard lock(mu_);
    std::vector<std::int64_t> ids;
    for (const auto& [id, s] : snapshots_) ids.push_back(id);
    return ids;
  }
  bool complete(std::int64_t barrier) const {
    std::lock_guard lock(mu_);
    auto it = snapshots_.find(barrier);
    return it != snapshots_.end() && it->second.complete();
  }
  // A copy of the snapshot of barrier id; throws if there is none.
  JobSnapshot snapshot(std::int64_t barrier) const {
    std::lock_guard lock(mu_);
    auto it = snapshots_.find(barrier);
    if (it == snapshots_.end()) throw Error("no snapshot of barrier " + std::to_string(barrier) + " in this store");
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::int64_t, JobSnapshot> snapshots_;
};

namespace detail {

// What a stateful built-in operator does with JobConfig::snapshots / restore_from.
class SnapshotHook {
 public:
  explicit SnapshotHook(const OpContext& ctx)
      : store_(ctx.config != nullptr ? ctx.config->snapshots.get() : nullptr),
        from_(ctx.config != nullptr ? ctx.config->restore_from.get() : nullptr),
        name_(ctx.name), node_(ctx.node), parallelism_(ctx.parallelism) {}
  // At construction: the records of this node in JobConfig::restore_from, if any.
  void restore(NodeRuntime& op) const {
    if (from_ == nullptr) return;
    auto it = from_->nodes.find(node_);
    if (it == from_->nodes.end()) return;
    if (it->second.name != name_)
      throw Error("restore: node " + std::to_string(node_) + " is '" + it->second.name +
                  "' in the snapshot of barrier " + std::to_string(from_->barrier) + " but '" + name_ +
                  "' in this plan; restore a snapshot into the plan that took it");
    op.restore(it->second.records);
  }
  // When barrier id has come through every input: this instance's part into the store.
  void barrier(const NodeRuntime& op, std::int64_t id) const {
    if (store_ == nullptr) return;
    std::vector<StateSnapshot> records;
    op.snapshot(records);
    store_->put(id, node_, name_, parallelism_, std::move(records));
  }

 private:
  SnapshotStore* store_;
  const JobSnapshot* from_;
  std::string name_;
  int node_;
  int parallelism_;
};

}  // namespace detail
}  // namespace gyre
