// Loop checkpoints, resume and in-process recovery, and built-in fault injection.
//
//   IterationOptions opts("pagerank");
//   opts.checkpoint.storage = std::make_shared<gyre::io::CheckpointStore>("ckpt");
//   opts.checkpoint.every = 5;                      // a head checkpoint after every 5th superstep
//   opts.checkpoint.mode = gyre::CheckpointMode::kBoth;   // and a tail log after the others
//   opts.checkpoint.fingerprint = "pagerank d=0.85 input=graph.h5 size=... mtime=...";
//   opts.checkpoint.resume = true;                  // continue from the newest usable checkpoint
//
// Head checkpoints hold the loop state at the iteration head (the partial solution, or the
// solution set + workset), with the aggregators and the superstep; tail logs hold what one
// superstep sent back to the head (the next partial solution, or the solution-set deltas and the
// next workset). Both are encoded at the head between supersteps and written by a background
// thread of each rank while the next superstep runs; rank 0 commits an entry (its manifest) once
// every rank reported it written, in the allreduce that ends a later superstep, and the last
// ones when the loop ends (the loop waits for its writers then). Writes never queue up: when a
// superstep ends while some rank's writer is still busy, the entry due is skipped (at most one
// entry is in flight per rank), so with supersteps faster than the disk the checkpoints are as
// frequent as the disk allows and the newest committed one is about one write behind. Chains
// stay usable: after a skipped entry the next one written is a head (a delta loop's tails would
// chain onto nothing; this holds in tail-only mode too), and a skipped head is written at the
// next superstep that can. LoopMetrics counts checkpoints_skipped, checkpoints_committed and the
// largest checkpoint_backlog. A run without resume first removes the old entries of the
// directory (rank 0, before anything is written; it logs "removed N old checkpoint(s) from
// DIR"); a resumed one removes the entries after its resume point and the incomplete ones. A
// write that fails (a full disk) fails the job with the file and the reason. A resumed loop
// starts from the newest superstep reachable through entries that verify: the newest head, then
// its tails replayed in order. Resuming with another number of partitions redistributes the
// state (see Rehome). A resumed run begins with a head checkpoint of the state it resumed
// (unless it resumed from exactly that head), so later chains never mix partition layouts.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gyre/core/checkpoint.h"
#include "gyre/core/config.h"

namespace gyre {

enum class CheckpointMode { kHead, kTail, kBoth };

struct LoopCheckpoints {
  std::shared_ptr<const CheckpointStorage> storage;  // nullptr: no checkpoints
  int every = 5;                                     // head checkpoints after supersteps K, 2K, ...
  CheckpointMode mode = CheckpointMode::kBoth;
  bool resume = false;
  // Write each entry, and commit it, before the loop goes on (no overlap with computation): an
  // entry is then committed as soon as the superstep after it ends. For tests and demonstrations
  // that need to know which checkpoints exist when a failure strikes. Nothing is ever skipped.
  bool wait = false;
  // What makes this run the same job as the one that wrote the checkpoints: the caller's
  // description of the input and parameters (the loop's name, kind and aggregators are added).
  std::string fingerprint;
  // Called on rank 0 with what resume found (the checkpoint used, the ones skipped and why).
  std::function<void(const std::string&)> log;
};

// Records of one old partition, when a loop resumes with another number of partitions.
template <class T>
struct OldPartition {
  int partition = 0;
  int partitions = 0;
  std::span<const T> records;
  const std::string* context = nullptr;  // what IterationOptions::checkpoint_context saved, or nullptr
};

// Where a loop's records go when it resumes with another number of partitions: the records
// partition p of `partitions` gets from the old partitions (called once per checkpoint entry
// replayed, in order). Unset: a delta iteration's solution-set records go by their key, like
// the solution set itself; other records of old partition q go to partition q % partitions.
template <class T>
using Rehome = std::function<std::vector<T>(int p, int partitions, std::span<const OldPartition<T>> old)>;

// ---- fault injection (for tests and demonstrations) ----

enum class FailureMode {
  kKill,   // the rank sends itself SIGKILL at the start of the superstep
  kThrow,  // a task of the rank throws there, once per process; the job fails (and may recover)
};
struct InjectedFailure {
  int rank = 0;
  int superstep = 1;
  FailureMode mode = FailureMode::kThrow;
};
// Process-wide: every bulk and delta loop of this process fails as described (every rank calls
// it alike). A throw fires once; clear_injected_failure() removes it.
void inject_failure(const InjectedFailure& f);
void clear_injected_failure();
// "rank=R,superstep=S,mode=kill|throw"; throws gyre::Error naming the bad field.
InjectedFailure parse_injected_failure(const std::string& spec);

// Runs `job(resume)`: first with resume = false; when it fails with a gyre::JobError (a task
// threw on some rank: every rank gets it), again with resume = true, at most `max_restarts`
// times, so a job whose loops checkpoint rolls back to their last checkpoint (one without
// checkpoints starts over). The result's `restarts` counts the retries. Every rank calls it.
JobResult run_with_recovery(int max_restarts, const std::function<JobResult(bool resume)>& job);

}  // namespace gyre
