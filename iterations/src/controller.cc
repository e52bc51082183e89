// Superstep coordination. See controller.h.
#include "gyre/iterations/controller.h"

#include <algorithm>
#include <csignal>
#include <limits>
#include <optional>
#include <sstream>

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

// Layout of the allreduced vector: size, criterion, the newest checkpoint entry written on every
// rank (min), then one value per aggregator.
constexpr std::size_t kFixed = 3;

std::mutex g_inject_mu;
std::optional<InjectedFailure> g_inject;
bool g_inject_fired = false;

}  // namespace

bool injected_failure(int rank, int superstep, FailureMode mode) {
  std::lock_guard lock(g_inject_mu);
  if (!g_inject || g_inject->rank != rank || g_inject->superstep != superstep || g_inject->mode != mode) return false;
  if (mode == FailureMode::kKill) {
    std::fprintf(stderr, "gyre: injected failure: rank %d kills itself at the start of superstep %d\n", rank, superstep);
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
  if (g_inject_fired) return false;
  g_inject_fired = true;
  return true;
}

// ---------------------------------------------------------------- checkpoint writer

CheckpointWriter::~CheckpointWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    tasks_.clear();  // what is not written yet is not needed any more
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_all();
}

std::string CheckpointWriter::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void CheckpointWriter::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
      if (!error_.empty()) continue;  // after a failure nothing more is written
    }
    try {
      task();
    } catch (const std::exception& e) {
      std::lock_guard lock(mu_);
      error_ = e.what();
    }
  }
}

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
    last_wire_ = transport->wire_bytes();
    metrics_.steps.clear();
    metrics_.supersteps = recovery_.superstep;
    metrics_.ended_by.clear();
    step_bytes_.clear();
    metrics_.resumed_from = recovery_.superstep;
    metrics_.checkpoints = 0;
    metrics_.checkpoint_seconds = 0;
    ranks_ = transport->num_ranks();
    writer_.reset();
    if (checkpointing()) writer_ = std::make_unique<CheckpointWriter>();
    written_.store(-1);
    parts_added_ = 0;
    pending_parts_.clear();
    to_commit_.clear();
    restore_.reset();
    sync_error_.clear();
    restoring_ = recovery_.superstep > 0 ? local_heads : 0;
    for (auto& a : aggs_) a->value.store(a->identity());
    // A resumed loop starts with the aggregators as they were after the resumed superstep.
    if (!recovery_.chain.empty())
      for (const auto& [name, v] : recovery_.chain.back().info.aggregators)
        for (auto& a : aggs_)
          if (a->name == name) a->value.store(v);
    superstep_.store(recovery_.superstep);
  }
  // A rank without head partitions still takes part in every superstep's allreduce.
  if (local_heads == 0) submit(recovery_.superstep, LocalReport{});
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
  values[2] = static_cast<double>(written_.load());
  ops[2] = ReduceOp::kMin;
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
  const auto written_everywhere = static_cast<int>(global[2]);
  const int first = recovery_.superstep;
  if (epoch > first || kind_ == LoopKind::kStreaming)
    for (std::size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->value.store(global[kFixed + i]);

  // Every rank decides from the same global values, so all take the same path.
  std::string why;
  const char* empty = kind_ == LoopKind::kBulk ? kEndedEmptyBulk : kEndedEmptyDelta;
  if (kind_ == LoopKind::kStreaming) {
    if (epoch > 0 && size == 0) why = kEndedQuiescent;
  } else if (epoch == first) {
    if (size == 0) why = empty;
    else if (max_supersteps_ <= first) why = kEndedMaxSupersteps;
  } else if (size == 0) {
    why = empty;
  } else if (has_criterion_ && criterion == 0) {
    why = kEndedCriterion;
  } else if (converged_ && converged_()) {
    why = kEndedConverged;
  } else if (epoch >= max_supersteps_) {
    why = kEndedMaxSupersteps;
  }
  const bool stop = !why.empty();

  std::vector<Notifiable*> wake;
  SuperstepMetrics step;
  const bool record = epoch > first;
  {
    std::lock_guard lock(mu_);
    // Rank 0 commits the entries every rank has written (in order, after its own writes).
    while (rank_ == 0 && !to_commit_.empty() && to_commit_.front().superstep <= written_everywhere) {
      run_or_post([storage = ckpt_.storage, info = std::move(to_commit_.front())] { storage->commit(info); });
      to_commit_.pop_front();
    }
    // A rank without head partitions writes an empty file for each entry.
    if (!stop && local_heads_ == 0 && entry_due(epoch) != Entry::kNone) post_write(epoch, {});
    const auto now = std::chrono::steady_clock::now();
    const std::uint64_t bytes = exchanged_ ? exchanged_->load(std::memory_order_relaxed) : 0;
    const std::uint64_t wire = transport_->wire_bytes();
    if (record) {
      step.superstep = epoch;
      step.seconds = std::chrono::duration<double>(now - last_decision_).count();
      step.size = size;
      step.exchange_bytes = bytes - last_bytes_;  // this rank's, until summed at the end
      step.wire_bytes = wire - last_wire_;
      for (const auto& a : aggs_) step.aggregators.emplace_back(a->name, a->value.load());
      metrics_.steps.push_back(step);
      step_bytes_.push_back(static_cast<double>(step.exchange_bytes));
      step_bytes_.push_back(static_cast<double>(step.wire_bytes));
      metrics_.supersteps = epoch;
    }
    last_decision_ = now;
    last_bytes_ = bytes;
    last_wire_ = wire;
    decided_epoch_ = epoch;
    stop_ = stop;
    if (stop) metrics_.ended_by = why;
    else superstep_.store(epoch + 1);
    wake = heads_;
  }
  if (!stop && kind_ != LoopKind::kStreaming) injected_failure(rank_, epoch + 1, FailureMode::kKill);
  if (record && on_superstep_ && rank_ == 0) on_superstep_(step);
  for (auto* h : wake) h->notify();
  if (!stop && local_heads_ == 0) submit(epoch + 1, LocalReport{});
}

// ---------------------------------------------------------------- checkpoints

void LoopController::set_checkpoints(LoopCheckpoints c, const std::string& record_types, int partitions) {
  ckpt_ = std::move(c);
  partitions_ = partitions;
  recovery_ = RecoveryPlan{};
  rebase_ = false;
  if (!checkpointing()) return;
  if (ckpt_.every < 0) throw PlanError("iteration '" + name_ + "': checkpoint interval must not be negative");
  std::string aggs;
  for (const auto& a : aggs_) aggs += (aggs.empty() ? "" : ",") + a->name;
  fingerprint_ = ckpt_.fingerprint + " | " + kind_name(kind_) + " iteration '" + name_ + "' of " + record_types +
                 " aggregators [" + aggs + "]";
  if (!ckpt_.resume) return;
  recovery_ = find_recovery(*ckpt_.storage, fingerprint_);
  const auto& chain = recovery_.chain;
  rebase_ = recovery_.superstep > 0 &&
            !(chain.size() == 1 && chain[0].info.kind == "head" && chain[0].info.partitions == partitions);
  if (ckpt_.log) {
    std::ostringstream o;
    for (const auto& why : recovery_.skipped) o << "skipped " << why << "\n";
    if (recovery_.superstep == 0) {
      o << "no usable checkpoint in " << ckpt_.storage->location() << ": '" << name_ << "' starts from the beginning";
    } else {
      o << "resuming '" << name_ << "' after superstep " << recovery_.superstep << " from ";
      if (recovery_.from_initial) o << "its initial input";
      for (std::size_t i = 0; i < chain.size(); ++i)
        o << (i == 0 && !recovery_.from_initial ? "" : i + 1 == chain.size() ? " and " : ", ") << chain[i].path;
      if (chain.back().info.partitions != partitions)
        o << " (written with " << chain.back().info.partitions << " partitions, now " << partitions << ")";
    }
    ckpt_.log(o.str());
  }
}

LoopController::Entry LoopController::entry_due(int completed) const {
  if (!checkpointing() || kind_ == LoopKind::kStreaming) return Entry::kNone;
  if (completed == recovery_.superstep) return rebase_ ? Entry::kHead : Entry::kNone;
  if (ckpt_.mode != CheckpointMode::kTail && ckpt_.every > 0 && completed % ckpt_.every == 0) return Entry::kHead;
  if (ckpt_.mode != CheckpointMode::kHead) return Entry::kTail;
  return Entry::kNone;
}

void LoopController::add_parts(int completed, CheckpointStorage::Parts parts, double encode_seconds) {
  std::lock_guard lock(mu_);
  if (const std::string e = sync_error_.empty() ? writer_->error() : sync_error_; !e.empty())
    throw Error("iteration '" + name_ + "': writing a checkpoint to " + ckpt_.storage->location() + " failed: " + e);
  for (auto& p : parts) pending_parts_.push_back(std::move(p));
  metrics_.checkpoint_seconds = std::max(metrics_.checkpoint_seconds, encode_seconds);
  if (++parts_added_ < local_heads_) return;
  parts_added_ = 0;
  post_write(completed, std::move(pending_parts_));
  pending_parts_.clear();
}

void LoopController::post_write(int completed, CheckpointStorage::Parts parts) {
  CheckpointInfo info;
  info.fingerprint = fingerprint_;
  const Entry e = entry_due(completed);
  info.kind = e == Entry::kHead ? "head" : "tail";
  info.self_contained = e == Entry::kHead || kind_ == LoopKind::kBulk;
  info.superstep = completed;
  info.ranks = ranks_;
  info.partitions = partitions_;
  for (const auto& a : aggs_) info.aggregators.emplace_back(a->name, a->value.load());
  ++metrics_.checkpoints;
  if (rank_ == 0) to_commit_.push_back(info);
  run_or_post([this, storage = ckpt_.storage, info, parts = std::move(parts), rank = rank_] {
    storage->write_rank(info, rank, parts);
    written_.store(info.superstep);
  });
}

void LoopController::run_or_post(std::function<void()> task) {
  if (!ckpt_.wait) {
    writer_->post(std::move(task));
    return;
  }
  if (!sync_error_.empty()) return;
  try {
    task();
  } catch (const std::exception& e) {
    sync_error_ = e.what();
  }
}

std::shared_ptr<const std::vector<std::map<std::string, std::string>>> LoopController::restore_parts() {
  std::lock_guard lock(mu_);
  if (!restore_) {
    auto all = std::make_shared<std::vector<std::map<std::string, std::string>>>();
    for (const auto& e : recovery_.chain) all->push_back(ckpt_.storage->read_parts(e));
    restore_ = std::move(all);
  }
  return restore_;
}

void LoopController::restored() {
  std::lock_guard lock(mu_);
  if (--restoring_ <= 0) restore_.reset();
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
  std::unique_ptr<CheckpointWriter> writer;
  {
    std::lock_guard lock(mu_);
    writer = std::move(writer_);
  }
  writer.reset();  // joins it
  std::lock_guard lock(mu_);
  // Per superstep: bytes over exchanges, bytes sent between ranks (summed over ranks).
  for (std::size_t i = 0; i < metrics_.steps.size() && 2 * i + 1 < global_counters.size(); ++i) {
    metrics_.steps[i].exchange_bytes = static_cast<std::uint64_t>(global_counters[2 * i]);
    metrics_.steps[i].wire_bytes = static_cast<std::uint64_t>(global_counters[2 * i + 1]);
  }
  result.loops.push_back(metrics_);
}

}  // namespace gyre::detail

namespace gyre {

void inject_failure(const InjectedFailure& f) {
  std::lock_guard lock(detail::g_inject_mu);
  detail::g_inject = f;
  detail::g_inject_fired = false;
}

void clear_injected_failure() {
  std::lock_guard lock(detail::g_inject_mu);
  detail::g_inject.reset();
}

InjectedFailure parse_injected_failure(const std::string& spec) {
  InjectedFailure f;
  bool rank = false, superstep = false, mode = false;
  std::istringstream in(spec);
  for (std::string field; std::getline(in, field, ',');) {
    const auto eq = field.find('=');
    const std::string key = field.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
    auto number = [&](int min) {
      std::size_t used = 0;
      int v = 0;
      try {
        v = std::stoi(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || v < min)
        throw Error("--inject-failure '" + spec + "': " + key + " must be an integer >= " + std::to_string(min) +
                    ", not '" + value + "'");
      return v;
    };
    if (key == "rank") {
      f.rank = number(0);
      rank = true;
    } else if (key == "superstep") {
      f.superstep = number(1);
      superstep = true;
    } else if (key == "mode") {
      if (value == "kill") f.mode = FailureMode::kKill;
      else if (value == "throw") f.mode = FailureMode::kThrow;
      else throw Error("--inject-failure '" + spec + "': mode must be kill or throw, not '" + value + "'");
      mode = true;
    } else {
      throw Error("--inject-failure '" + spec + "': unknown field '" + key + "' (expected rank=R,superstep=S,mode=kill|throw)");
    }
  }
  if (!rank || !superstep || !mode)
    throw Error("--inject-failure '" + spec + "': expected rank=R,superstep=S,mode=kill|throw");
  return f;
}

JobResult run_with_recovery(int max_restarts, const std::function<JobResult(bool resume)>& job) {
  for (int attempt = 0;; ++attempt) {
    try {
      JobResult r = job(attempt > 0);
      r.restarts = attempt;
      return r;
    } catch (const JobError&) {
      if (attempt >= max_restarts) throw;
    }
  }
}

}  // namespace gyre
