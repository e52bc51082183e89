// The coordinator of one iteration on one rank: collects what the loop head's partitions on this
// rank report at the end of each superstep, combines it with the other ranks' reports through
// one non-blocking allreduce, decides (every rank the same way, from the same global values)
// whether the loop goes on, and wakes the heads. Shared by bulk, delta and streaming loops.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gyre/core/plan.h"
#include "gyre/core/runtime.h"

namespace gyre {

enum class LoopKind { kBulk, kDelta, kStreaming };

namespace detail {

using ReduceOp = Transport::ReduceOp;

// A global value per superstep: folded over every record of a stream of doubles in the body.
struct AggregatorState {
  std::string name;
  ReduceOp op = ReduceOp::kSum;
  std::atomic<double> value{0};  // after the last completed superstep
  double identity() const;
};

// What one head partition reports at the end of a superstep (epoch 0: its initial input ended).
struct LocalReport {
  std::uint64_t size = 0;       // next partial solution / next workset / records forwarded
  std::uint64_t criterion = 0;  // records of the termination criterion stream
  std::vector<double> aggregates;
};

class LoopController final : public LoopHook {
 public:
  LoopController(LoopKind kind, std::string name, int max_supersteps);

  // ---- set up while the plan is built ----
  std::shared_ptr<AggregatorState> add_aggregator(std::string name, ReduceOp op);
  void set_criterion() { has_criterion_ = true; }
  void set_convergence(std::function<bool()> converged) { converged_ = std::move(converged); }
  void set_on_superstep(std::function<void(const SuperstepMetrics&)> f) { on_superstep_ = std::move(f); }
  const std::vector<std::shared_ptr<AggregatorState>>& aggregators() const { return aggs_; }
  LoopKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  // The superstep running now (1-based; 0 before the first), for user functions.
  const std::atomic<int>& superstep_ref() const { return superstep_; }

  // ---- called by the heads ----
  void register_head(Notifiable* head);
  void report(int epoch, const LocalReport& r);
  // The decision taken after `epoch`, if taken: go on with superstep epoch + 1, or stop.
  struct Decision {
    bool taken = false;
    bool stop = false;
  };
  Decision decision(int epoch) const;

  // ---- LoopHook ----
  void attach(Transport* transport, int channel, int local_heads,
              const std::atomic<std::uint64_t>* exchanged_bytes) override;
  std::vector<double> local_counters() override;
  void finish(const std::vector<double>& global_counters, JobResult& result) override;

 private:
  void submit(int epoch, const LocalReport& r);
  void decide(int epoch, const std::vector<double>& global);

  const LoopKind kind_;
  const std::string name_;
  const int max_supersteps_;
  bool has_criterion_ = false;
  std::function<bool()> converged_;
  std::function<void(const SuperstepMetrics&)> on_superstep_;
  std::vector<std::shared_ptr<AggregatorState>> aggs_;

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
  LoopMetrics metrics_;
  std::vector<double> step_bytes_;  // this rank's exchanged bytes per superstep
};

}  // namespace detail
}  // namespace gyre
