// Superstep coordination. See controller.h.
#include "gyre/iterations/controller.h"

#include <algorithm>
#include <limits>

#include "gyre/core/error.h"

namespace gyre::detail {
namespace {

const char* kind_name(LoopKind k) {
  switch (k) {
    case LoopKind::kBulk: return "bulk";
    case LoopKind::kDelta: return "delta";
    case LoopKind::kStreaming: return "streaming";
  }
  return "?";
}

double fold(ReduceOp op, double a, double b) {
  switch (op) {
    case ReduceOp::kMin: return std::min(a, b);
    case ReduceOp::kMax: return std::max(a, b);
    case ReduceOp::kSum: break;
  }
  return a + b;
}

// Layout of the allreduced vector: size, criterion, then one value per aggregator.
constexpr std::size_t kFixed = 2;

}  // namespace

double AggregatorState::identity() const {
  switch (op) {
    case ReduceOp::kMin: return std::numeric_limits<double>::infinity();
    case ReduceOp::kMax: return -std::numeric_limits<double>::infinity();
    case ReduceOp::kSum: break;
  }
  return 0.0;
}

LoopController::LoopController(LoopKind kind, std::string name, int max_supersteps)
    : kind_(kind), name_(std::move(name)), max_supersteps_(max_supersteps) {
  metrics_.name = name_;
  metrics_.kind = kind_name(kind_);
}

std::shared_ptr<AggregatorState> LoopController::add_aggregator(std::string name, ReduceOp op) {
  for (const auto& a : aggs_)
    if (a->name == name) throw PlanError("iteration '" + name_ + "' has two aggregators named '" + name + "'");
  if (aggs_.size() + kFixed >= 64)
    throw PlanError("iteration '" + name_ + "' has too many aggregators (at most 62)");
  auto a = std::make_shared<AggregatorState>();
  a->name = std::move(name);
  a->op = op;
  a->value.store(a->identity());
  aggs_.push_back(a);
  return a;
}

void LoopController::register_head(Notifiable* head) {
  std::lock_guard lock(mu_);
  heads_.push_back(head);
}

void LoopController::attach(Transport* transport, int channel, int local_heads,
                            const std::atomic<std::uint64_t>* exchanged_bytes) {
  {
    std::lock_guard lock(mu_);
    transport_ = transport;
    channel_ = channel;
    local_heads_ = local_heads;
    rank_ = transport->rank();
    exchanged_ = exchanged_bytes;
    reported_ = 0;
    acc_ = LocalReport{};
    decided_epoch_ = -1;
    stop_ = false;
    superstep_.store(0);
    last_decision_ = std::chrono::steady_clock::now();
    last_bytes_ = 0;
    metrics_.steps.clear();
    metrics_.supersteps = 0;
    metrics_.ended_by.clear();
    step_bytes_.clear();
    for (auto& a : aggs_) a->value.store(a->identity());
  }
  // A rank without head partitions still takes part in every superstep's allreduce.
  if (local_heads == 0) submit(0, LocalReport{});
}

void LoopController::report(int epoch, const LocalReport& r) {
  LocalReport all;
  {
    std::lock_guard lock(mu_);
    acc_.size += r.size;
    acc_.criterion += r.criterion;
    if (acc_.aggregates.empty()) {
      for (const auto& a : aggs_) acc_.aggregates.push_back(a->identity());
    }
    for (std::size_t i = 0; i < aggs_.size() && i < r.aggregates.size(); ++i)
      acc_.aggregates[i] = fold(aggs_[i]->op, acc_.aggregates[i], r.aggregates[i]);
    if (++reported_ < local_heads_) return;
    reported_ = 0;
    all = std::move(acc_);
    acc_ = LocalReport{};
  }
  submit(epoch, all);
}

void LoopController::submit(int epoch, const LocalReport& r) {
  std::vector<double> values(kFixed + aggs_.size());
  std::vector<ReduceOp> ops(values.size(), ReduceOp::kSum);
  values[0] = static_cast<double>(r.size);
  values[1] = static_cast<double>(r.criterion);
  for (std::size_t i = 0; i < aggs_.size(); ++i) {
    values[kFixed + i] = i < r.aggregates.size() ? r.aggregates[i] : aggs_[i]->identity();
    ops[kFixed + i] = aggs_[i]->op;
  }
  transport_->allreduce_async(channel_, std::move(values), std::move(ops),
                              [this, epoch](std::vector<double> global) { decide(epoch, global); });
}

void LoopController::decide(int epoch, const std::vector<double>& global) {
  const auto size = static_cast<std::uint64_t>(global[0]);
  const auto criterion = static_cast<std::uint64_t>(global[1]);
  for (std::size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->value.store(global[kFixed + i]);

  // Every rank decides from the same global values, so all take the same path.
  std::string why;
  if (kind_ == LoopKind::kStreaming) {
    if (epoch > 0 && size == 0) why = "quiescent";
  } else if (epoch == 0) {
    if (size == 0) why = "empty";
    else if (max_supersteps_ <= 0) why = "max supersteps";
  } else if (size == 0) {
    why = "empty";
  } else if (has_criterion_ && criterion == 0) {
    why = "criterion empty";
  } else if (converged_ && converged_()) {
    why = "converged";
  } else if (epoch >= max_supersteps_) {
    why = "max supersteps";
  }
  const bool stop = !why.empty();

  std::vector<Notifiable*> wake;
  SuperstepMetrics step;
  const bool record = epoch > 0;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    const std::uint64_t bytes = exchanged_ ? exchanged_->load(std::memory_order_relaxed) : 0;
    if (record) {
      step.superstep = epoch;
      step.seconds = std::chrono::duration<double>(now - last_decision_).count();
      step.size = size;
      step.bytes = bytes - last_bytes_;  // this rank's, until summed at the end
      for (const auto& a : aggs_) step.aggregators.emplace_back(a->name, a->value.load());
      metrics_.steps.push_back(step);
      step_bytes_.push_back(static_cast<double>(bytes - last_bytes_));
      metrics_.supersteps = epoch;
    }
    last_decision_ = now;
    last_bytes_ = bytes;
    decided_epoch_ = epoch;
    stop_ = stop;
    if (stop) metrics_.ended_by = why;
    else superstep_.store(epoch + 1);
    wake = heads_;
  }
  if (record && on_superstep_ && rank_ == 0) on_superstep_(step);
  for (auto* h : wake) h->notify();
  if (!stop && local_heads_ == 0) submit(epoch + 1, LocalReport{});
}

LoopController::Decision LoopController::decision(int epoch) const {
  std::lock_guard lock(mu_);
  Decision d;
  d.taken = decided_epoch_ == epoch;
  d.stop = stop_;
  return d;
}

std::vector<double> LoopController::local_counters() {
  std::lock_guard lock(mu_);
  return step_bytes_;
}

void LoopController::finish(const std::vector<double>& global_counters, JobResult& result) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < metrics_.steps.size() && i < global_counters.size(); ++i)
    metrics_.steps[i].bytes = static_cast<std::uint64_t>(global_counters[i]);
  result.loops.push_back(metrics_);
}

}  // namespace gyre::detail
