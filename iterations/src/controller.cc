// Superstep coordination. See controller.h.
#include "gyre/iterations/controller.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>

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
// rank (min), whether a checkpoint writer is busy on some rank (max), then one value per
// aggregator.
constexpr std::size_t kFixed = kMaxReduceValues - kMaxAggregators;

// Event-time streaming loops append their round's progress after the aggregators (see submit).
constexpr std::size_t kProgressValues = 5;
double ts_value(Timestamp t) {
  if (t == kMaxTimestamp) return std::numeric_limits<double>::infinity();
  if (t == kMinTimestamp) return -std::numeric_limits<double>::infinity();
  return static_cast<double>(t);  // exact below 2^53 (ms of event time: ~285,000 years)
}
Timestamp value_ts(double v) {
  if (v == std::numeric_limits<double>::infinity()) return kMaxTimestamp;
  if (v == -std::numeric_limits<double>::infinity()) return kMinTimestamp;
  return static_cast<Timestamp>(v);
}

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

std::size_t CheckpointWriter::post(std::function<void()> task) {
  std::size_t backlog = 0;
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    backlog = tasks_.size() + (running_ ? 1 : 0);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_all();
  return backlog;
}

std::size_t CheckpointWriter::backlog() const {
  std::lock_guard lock(mu_);
  return tasks_.size() + (running_ ? 1 : 0);
}

void CheckpointWriter::wait_idle() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return tasks_.empty() && !running_; });
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
      if (!error_.empty()) {  // after a failure nothing more is written
        if (tasks_.empty()) idle_cv_.notify_all();
        continue;
      }
      running_ = true;
    }
    std::string error;
    try {
      task();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    } catch (...) {
      error = "unknown error";
    }
    task = nullptr;  // what it held (an entry's parts) goes now, not when the next one comes
    std::lock_guard lock(mu_);
    running_ = false;
    if (!error.empty() && error_.empty()) error_ = std::move(error);
    if (tasks_.empty()) idle_cv_.notify_all();
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

std::shared_ptr<VectorAggregatorState> LoopController::add_vector_aggregator(std::string name, std::size_t length,
                                                                           int partitions, std::size_t slots) {
  for (const auto& a : vaggs_)
    if (a->name == name) throw PlanError("iteration '" + name_ + "' has two vector aggregators named '" + name + "'");
  if (length == 0) throw PlanError("iteration '" + name_ + "': vector aggregator '" + name + "' has length 0");
  const std::size_t copies = slots > 0 ? slots : static_cast<std::size_t>(std::max(1, partitions));
  if (length > (std::size_t{1} << 28) / copies)
    throw PlanError("iteration '" + name_ + "': vector aggregator '" + name + "' is too long (" +
                    std::to_string(length) + " values x " + std::to_string(copies) +
                    (slots > 0 ? " slots" : " partitions") + "; at most 2^28 values in all)");
  auto a = std::make_shared<VectorAggregatorState>();
  a->name = std::move(name);
  a->length = length;
  a->partitions = partitions;
  a->slots = slots;
  a->value.assign(length, 0.0);
  vaggs_.push_back(a);
  return a;
}

std::size_t LoopController::collective_values() const {
  std::size_t n = kFixed + aggs_.size() + kProgressValues;
  for (const auto& v : vaggs_) n += v->wire_length();
  return n;
}

std::shared_ptr<AggregatorState> LoopController::add_aggregator(std::string name, ReduceOp op) {
  for (const auto& a : aggs_)
    if (a->name == name) throw PlanError("iteration '" + name_ + "' has two aggregators named '" + name + "'");
  if (aggs_.size() >= kMaxAggregators)
    throw PlanError("iteration '" + name_ + "' has too many aggregators (at most " + std::to_string(kMaxAggregators) +
                    ")");
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
    loop_wm_ = kMinTimestamp;
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
    due_epoch_ = -1;
    due_ = Entry::kNone;
    chained_ = true;
    head_owed_ = false;
    written_everywhere_ = -1;
    committed_.store(0);
    final_error_.clear();
    metrics_.checkpoints_skipped = 0;
    metrics_.checkpoints_committed = 0;
    metrics_.checkpoint_backlog = 0;
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
    // Rank 0 clears the directory for this run's chain before anything is written: a fresh run
    // removes every old entry (a later resume must not find a stale superstep), a resumed one
    // the entries after its resume point and the incomplete ones. Every rank read the directory
    // (find_recovery) while its plan was built, before the transport's bind (collective), so
    // before this; and no rank writes before the first superstep's allreduce, to which rank 0
    // contributes only after this.
    if (checkpointing() && kind_ != LoopKind::kStreaming && rank_ == 0) {
      try {
        const int removed = ckpt_.storage->discard(ckpt_.resume ? recovery_.superstep : -1);
        if (removed > 0 && ckpt_.log) {
          if (ckpt_.resume)
            ckpt_.log("removed " + std::to_string(removed) + " stale checkpoint(s) (incomplete, or after superstep " +
                      std::to_string(recovery_.superstep) + ") from " + ckpt_.storage->location());
          else
            ckpt_.log("removed " + std::to_string(removed) + " old checkpoint(s) from " + ckpt_.storage->location() +
                      " (a run without --resume starts a new chain)");
        }
      } catch (const std::exception& e) {
        sync_error_ = std::string("cannot remove old checkpoints: ") + e.what();
      }
    }
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
    if (!vaggs_.empty() && r.partition >= 0) {
      vacc_.resize(vaggs_.size());
      for (std::size_t k = 0; k < vaggs_.size() && k < r.vectors.size(); ++k) {
        const std::size_t n = vaggs_[k]->length;
        auto& slots = vacc_[k];
        if (slots.empty()) slots.assign(vaggs_[k]->wire_length(), 0.0);
        if (vaggs_[k]->slots > 0) {
          // By slot: a slot another local partition did not fill is zero here (x + 0 is x).
          const std::size_t m = std::min(slots.size(), r.vectors[k].size());
          for (std::size_t j = 0; j < m; ++j) slots[j] += r.vectors[k][j];
          continue;
        }
        std::copy(r.vectors[k].begin(), r.vectors[k].begin() + static_cast<std::ptrdiff_t>(std::min(n, r.vectors[k].size())),
                  slots.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r.partition) * n));
      }
    }
    acc_.min_ts = std::min(acc_.min_ts, r.min_ts);
    acc_.active_wm = std::min(acc_.active_wm, r.active_wm);
    acc_.idle_wm = std::min(acc_.idle_wm, r.idle_wm);
    acc_.active += r.active;
    acc_.idle += r.idle;
    if (++reported_ < local_heads_) return;
    reported_ = 0;
    all = std::move(acc_);
    acc_ = LocalReport{};
    all.vectors = std::move(vacc_);
    vacc_.clear();
  }
  submit(epoch, all);
}

void LoopController::submit(int epoch, const LocalReport& r) {
  const bool progress = kind_ == LoopKind::kStreaming && event_time_;
  const std::size_t vector_at = kFixed + aggs_.size() + (progress ? kProgressValues : 0);
  std::size_t vector_values = 0;
  for (const auto& v : vaggs_) vector_values += v->wire_length();
  std::vector<double> values(vector_at + vector_values);
  std::vector<ReduceOp> ops(values.size(), ReduceOp::kSum);
  values[0] = static_cast<double>(r.size);
  values[1] = static_cast<double>(r.criterion);
  values[2] = static_cast<double>(written_.load());
  ops[2] = ReduceOp::kMin;
  {
    std::lock_guard lock(mu_);
    values[3] = writer_ && writer_->backlog() > 0 ? 1.0 : 0.0;
  }
  ops[3] = ReduceOp::kMax;
  for (std::size_t i = 0; i < aggs_.size(); ++i) {
    values[kFixed + i] = i < r.aggregates.size() ? r.aggregates[i] : aggs_[i]->identity();
    ops[kFixed + i] = aggs_[i]->op;
  }
  if (progress) {
    const std::size_t at = kFixed + aggs_.size();
    values[at] = ts_value(r.min_ts);
    ops[at] = ReduceOp::kMin;
    values[at + 1] = ts_value(r.active_wm);
    ops[at + 1] = ReduceOp::kMin;
    values[at + 2] = static_cast<double>(r.active);
    values[at + 3] = ts_value(r.idle_wm);
    ops[at + 3] = ReduceOp::kMin;
    values[at + 4] = static_cast<double>(r.idle);
  }
  // Vector aggregates: every partition's vector in its own slots (zeros from the ranks that do
  // not run it), so the sum over ranks is exact and decide() adds the partitions in order.
  for (std::size_t k = 0, at = vector_at; k < vaggs_.size(); ++k) {
    const std::size_t n = vaggs_[k]->wire_length();
    if (k < r.vectors.size() && r.vectors[k].size() == n)
      std::copy(r.vectors[k].begin(), r.vectors[k].end(), values.begin() + static_cast<std::ptrdiff_t>(at));
    at += n;
  }
  transport_->allreduce_async(channel_, std::move(values), std::move(ops),
                              [this, epoch](std::vector<double> global) { decide(epoch, global); });
}

void LoopController::decide(int epoch, const std::vector<double>& global) {
  const auto size = static_cast<std::uint64_t>(global[0]);
  const auto criterion = static_cast<std::uint64_t>(global[1]);
  const auto written_everywhere = static_cast<int>(global[2]);
  const bool writer_busy = global[3] > 0;
  const int first = recovery_.superstep;
  if (epoch > first || kind_ == LoopKind::kStreaming)
    for (std::size_t i = 0; i < aggs_.size(); ++i) aggs_[i]->value.store(global[kFixed + i]);
  if (epoch > first && !vaggs_.empty()) {
    std::size_t at = kFixed + aggs_.size() + (kind_ == LoopKind::kStreaming && event_time_ ? kProgressValues : 0);
    for (const auto& v : vaggs_) {
      // In partition order, or (with slots) in slot order.
      const std::size_t copies = v->wire_length() / v->length;
      std::vector<double> sum(v->length, 0.0);
      for (std::size_t p = 0; p < copies; ++p)
        for (std::size_t j = 0; j < v->length; ++j) sum[j] += global[at + p * v->length + j];
      v->value = std::move(sum);
      at += v->wire_length();
    }
  }

  // Every rank decides from the same global values, so all take the same path.
  std::string why;
  const char* empty = kind_ == LoopKind::kBulk ? kEndedEmptyBulk : kEndedEmptyDelta;
  Timestamp wm = kMinTimestamp;
  const bool progress = kind_ == LoopKind::kStreaming && event_time_;
  if (progress) {
    // The loop's watermark: below every timestamp pushed into the body this round (what is in
    // the loop now descends from those, see TimedStreamingHead) and below the input's watermark
    // (over live inputs; if every input that has not ended is idle, over their last ones).
    const std::size_t at = kFixed + aggs_.size();
    const Timestamp frontier = value_ts(global[at]);
    const auto active = static_cast<std::uint64_t>(global[at + 2]);
    const auto idle = static_cast<std::uint64_t>(global[at + 4]);
    const Timestamp input = active > 0 ? value_ts(global[at + 1]) : idle > 0 ? value_ts(global[at + 3]) : kMaxTimestamp;
    // A watermark t says no record with a timestamp <= t follows (assign_timestamps emits max - 1):
    // a record still in the loop at `frontier` allows frontier - 1.
    const Timestamp below = frontier == kMaxTimestamp || frontier == kMinTimestamp ? frontier : frontier - 1;
    wm = std::max(std::min(below, input), loop_wm_);
    // Nothing was pushed anywhere this round and every input had ended when its head reported:
    // the loop is empty and stays so.
    if (size == 0 && active + idle == 0) why = kEndedQuiescent;
  } else if (kind_ == LoopKind::kStreaming) {
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
  // Event-time rounds run for as long as the loop does: they are counted, not recorded one by one.
  const bool record = epoch > first && !progress;
  {
    std::lock_guard lock(mu_);
    loop_wm_ = wm;
    if (progress) metrics_.supersteps = epoch + 1;
    // Rank 0 commits the entries every rank has written (in order, after its own writes).
    written_everywhere_ = written_everywhere;
    while (rank_ == 0 && !to_commit_.empty() && to_commit_.front().superstep <= written_everywhere) {
      run_or_post([this, storage = ckpt_.storage, info = std::move(to_commit_.front())] {
        storage->commit(info);
        committed_.fetch_add(1);
      });
      to_commit_.pop_front();
    }
    due_epoch_ = epoch;
    due_ = stop ? Entry::kNone : choose(epoch, writer_busy);
    // A rank without head partitions writes an empty file for each entry.
    if (local_heads_ == 0 && due_ != Entry::kNone) post_write(epoch, {});
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

LoopController::Entry LoopController::scheduled(int completed) const {
  if (!checkpointing() || kind_ == LoopKind::kStreaming) return Entry::kNone;
  if (completed == recovery_.superstep) return rebase_ ? Entry::kHead : Entry::kNone;
  if (ckpt_.mode != CheckpointMode::kTail && ckpt_.every > 0 && completed % ckpt_.every == 0) return Entry::kHead;
  if (ckpt_.mode != CheckpointMode::kHead) return Entry::kTail;
  return Entry::kNone;
}

// Asynchronous checkpoints never queue: an entry is written only if no rank's writer has anything
// left to do when the superstep ends (so at most one entry is in flight per rank, and memory
// holds at most one entry's parts), else it is skipped. Skipping keeps every chain usable: a tail
// of a delta loop is replayed on the state before it, so once an entry was skipped the tails
// after it would chain onto nothing, and the next entry written is a head (also in tail-only
// mode); a skipped head is owed, and written at the next superstep that can. Bulk tails hold
// the whole state, so they never need what came before them. With LoopCheckpoints::wait every
// write is done before the loop goes on, so nothing is ever skipped.
LoopController::Entry LoopController::choose(int epoch, bool busy) {
  Entry want = scheduled(epoch);
  if (!checkpointing() || kind_ == LoopKind::kStreaming) return Entry::kNone;
  if (epoch == recovery_.superstep && want == Entry::kNone) {
    chained_ = true;  // the loop's initial input, or the head it resumed from
    return Entry::kNone;
  }
  if (want == Entry::kTail && (head_owed_ || (kind_ != LoopKind::kBulk && !chained_))) want = Entry::kHead;
  if (want == Entry::kNone && head_owed_) want = Entry::kHead;
  if (want != Entry::kNone && busy) {
    ++metrics_.checkpoints_skipped;
    if (want == Entry::kHead) head_owed_ = true;
    chained_ = false;
    return Entry::kNone;
  }
  if (want == Entry::kHead) head_owed_ = false;
  chained_ = want != Entry::kNone;
  return want;
}

std::string LoopController::checkpoint_error() const {
  if (!sync_error_.empty()) return sync_error_;
  return writer_ ? writer_->error() : std::string();
}

LoopController::Entry LoopController::entry_due(int completed) {
  std::lock_guard lock(mu_);
  if (!checkpointing()) return Entry::kNone;
  if (const std::string e = checkpoint_error(); !e.empty())
    throw Error("iteration '" + name_ + "': writing a checkpoint to " + ckpt_.storage->location() + " failed: " + e);
  return due_epoch_ == completed ? due_ : Entry::kNone;
}

void LoopController::drain_checkpoints() {
  CheckpointWriter* writer = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!checkpointing()) return;
    writer = writer_.get();
  }
  if (writer != nullptr) writer->wait_idle();
  std::lock_guard lock(mu_);
  if (const std::string e = checkpoint_error(); !e.empty())
    throw Error("iteration '" + name_ + "': writing a checkpoint to " + ckpt_.storage->location() + " failed: " + e);
}

void LoopController::add_parts(int completed, CheckpointStorage::Parts parts, double encode_seconds) {
  std::lock_guard lock(mu_);
  if (const std::string e = checkpoint_error(); !e.empty())
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
  const Entry e = due_epoch_ == completed ? due_ : Entry::kNone;
  GYRE_CHECK(e != Entry::kNone, "checkpoint parts for a superstep without an entry");
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
    const std::size_t backlog = writer_->post(std::move(task));
    metrics_.checkpoint_backlog = std::max(metrics_.checkpoint_backlog, static_cast<int>(backlog));
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
  d.watermark = loop_wm_;
  return d;
}

// After the job (every rank, before the collective sum): the writer finishes what it has (at
// most one entry; ranks with head partitions already waited for it when the loop stopped, so
// every rank's files of the entries written are there), and rank 0 commits the entries that are
// written on every rank. The last value counts the ranks on which that failed, so that every
// rank fails alike.
std::vector<double> LoopController::local_counters() {
  CheckpointWriter* writer = nullptr;
  std::vector<double> out;
  {
    std::lock_guard lock(mu_);
    out = step_bytes_;
    writer = writer_.get();
  }
  if (writer != nullptr) writer->wait_idle();
  std::lock_guard lock(mu_);
  if (checkpointing()) {
    final_error_ = checkpoint_error();
    while (final_error_.empty() && rank_ == 0 && !to_commit_.empty()) {
      const CheckpointInfo& info = to_commit_.front();
      try {
        // A rank without head partitions may still be writing its (empty) file of the last
        // entry: every rank finishes its writer before this collective step, so wait for it a
        // bounded time (a rank whose write failed reports that in the end-of-job sum).
        if (info.superstep > written_everywhere_) {
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
          bool written = ckpt_.storage->written(info);
          while (!written && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            written = ckpt_.storage->written(info);
          }
          if (!written) break;
        }
        ckpt_.storage->commit(info);
        committed_.fetch_add(1);
      } catch (const std::exception& e) {
        final_error_ = e.what();
      }
      to_commit_.pop_front();
    }
  }
  out.push_back(final_error_.empty() ? 0.0 : 1.0);
  return out;
}

void LoopController::finish(const std::vector<double>& global_counters, JobResult& result) {
  std::unique_ptr<CheckpointWriter> writer;
  {
    std::lock_guard lock(mu_);
    writer = std::move(writer_);
  }
  writer.reset();  // joins it
  std::lock_guard lock(mu_);
  if (!global_counters.empty() && global_counters.back() > 0) {
    const std::string where = "iteration '" + name_ + "': writing a checkpoint to " + ckpt_.storage->location();
    if (!final_error_.empty()) throw Error(where + " failed: " + final_error_);
    throw Error(where + " failed on " + std::to_string(static_cast<int>(global_counters.back())) +
                " other rank(s) (the checkpoints committed before are kept)");
  }
  // Per superstep: bytes over exchanges, bytes sent between ranks (summed over ranks); the last
  // counter is the checkpoint failure count above.
  for (std::size_t i = 0; i < metrics_.steps.size() && 2 * i + 2 < global_counters.size(); ++i) {
    metrics_.steps[i].exchange_bytes = static_cast<std::uint64_t>(global_counters[2 * i]);
    metrics_.steps[i].wire_bytes = static_cast<std::uint64_t>(global_counters[2 * i + 1]);
  }
  metrics_.checkpoints_committed = committed_.load();
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
