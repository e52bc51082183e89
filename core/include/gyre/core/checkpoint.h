// Where loop checkpoints go: the interface the iterations write through and resume from. gyre::io
// provides the HDF5 implementation (gyre/io/checkpoint_store.h); anything else that keeps these
// promises will do.
//
// A checkpoint (an "entry") is every rank's file plus a manifest that rank 0 writes last, once
// every rank's file is durable: an entry without its manifest does not exist. Entries are
//   head  — the whole loop state at the iteration head after `superstep` supersteps;
//   tail  — what one superstep sent back to the head (solution-set deltas and the next workset,
//           or the next partial solution). A tail is self-contained when it is the whole state
//           (bulk loops); otherwise it is replayed on top of the state before it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gyre {

struct CheckpointInfo {
  std::string fingerprint;  // the job, its loop and its input: another one's entries are refused
  std::string kind;         // "head" or "tail"
  bool self_contained = true;  // false: a tail replayed on the state after superstep - 1
  int superstep = 0;        // the loop state after this many supersteps
  int ranks = 0;            // rank files 0 .. ranks-1
  int partitions = 0;       // head partitions when it was written
  std::vector<std::pair<std::string, double>> aggregators;  // global values after `superstep`
};

class CheckpointStorage {
 public:
  using Parts = std::vector<std::pair<std::string, std::string>>;  // (name, bytes)
  struct Entry {
    CheckpointInfo info;
    std::string path;  // for messages
  };
  struct Listing {
    std::vector<Entry> entries;        // readable manifests of this job, ascending by superstep
    std::vector<std::string> skipped;  // entries passed over, each with the reason
  };

  virtual ~CheckpointStorage() = default;
  // Where the entries live, for messages.
  virtual std::string location() const = 0;
  // Every rank: writes its file of the entry (durably). Part names: letters, digits, '_-.'.
  virtual void write_rank(const CheckpointInfo& info, int rank, const Parts& parts) const = 0;
  // True if every rank's write_rank of the entry returned (its files are all there).
  virtual bool written(const CheckpointInfo& info) const = 0;
  // Rank 0, once every rank's write_rank returned: makes the entry exist (its manifest records
  // every rank file's size and checksum), then drops what is no longer needed.
  virtual void commit(const CheckpointInfo& info) const = 0;
  // Rank 0, before a loop writes anything: removes every entry after `after` supersteps and
  // every incomplete one (no manifest) — all of them for after = -1 — and returns how many. It
  // removes only the store's own files.
  virtual int discard(int after) const = 0;
  // The entries with a readable manifest. An entry of another job (another fingerprint) makes
  // this throw gyre::Error naming both fingerprints.
  virtual Listing list(const std::string& fingerprint) const = 0;
  // Empty if every rank file of the entry is as its manifest recorded it, else the reason.
  virtual std::string verify(const Entry& entry) const = 0;
  // Every part of an entry (all rank files), by name.
  virtual std::map<std::string, std::string> read_parts(const Entry& entry) const = 0;
};

}  // namespace gyre

namespace gyre {

// What a resumed loop starts from: the newest superstep reachable through entries that verify —
// a self-contained entry and the tails after it (or, if the tails go back to the start, the
// loop's own initial input and every tail).
struct RecoveryPlan {
  int superstep = 0;                            // 0: nothing to resume from; start over
  bool from_initial = false;                    // the chain starts from the loop's initial input
  std::vector<CheckpointStorage::Entry> chain;  // oldest first; the last one is at `superstep`
  std::vector<std::string> skipped;             // newer entries passed over, each with the reason
};
RecoveryPlan find_recovery(const CheckpointStorage& storage, const std::string& fingerprint);

}  // namespace gyre
