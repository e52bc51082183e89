// The checkpoint store: consistent checkpoints of loop state in HDF5 files.
//
//   DIR/ckpt-000005/rank-0.h5      every rank's parts (named byte strings: one per partition and
//   DIR/ckpt-000005/rank-1.h5      kind of state, e.g. "p3/solution"), written by that rank
//   DIR/ckpt-000005/MANIFEST.h5    written by rank 0 last, once every rank's file is durable
//
// A checkpoint exists once its manifest does: the manifest is written to a temporary file,
// fsync'd, and renamed into place (the directory fsync'd too), and it records every rank file's
// size and CRC-32, so a file that was truncated or damaged later is noticed. `h5dump` shows both
// kinds of file: root attributes (format, version, fingerprint, superstep, kind, ranks,
// partitions), the aggregators, the file table, and one uint8 dataset per part.
//
// The fingerprint names the job, its plan and its input: a checkpoint of anything else is
// refused with a message, never silently used. The newest `keep` complete checkpoints are kept;
// older ones are deleted after each commit.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gyre::io {

struct CheckpointInfo {
  std::string fingerprint;  // job + plan + input
  std::string kind;         // what the parts hold, e.g. "bulk head" or "delta head"
  int superstep = 0;        // the loop state before this superstep
  int ranks = 0;
  int partitions = 0;
  std::vector<std::pair<std::string, double>> aggregators;
};

// What the manifest records of one rank's file.
struct CheckpointFile {
  int rank = 0;
  std::uint64_t size = 0;
  std::uint32_t crc32 = 0;
};

class CheckpointStore {
 public:
  // `keep`: complete checkpoints kept (at least 1).
  explicit CheckpointStore(std::string dir, int keep = 2);

  const std::string& dir() const { return dir_; }

  // Every rank: writes its parts of checkpoint `info.superstep` (temporary file, fsync, rename)
  // and returns what the manifest must record of it. Throws gyre::Error naming the file.
  CheckpointFile write_rank(const CheckpointInfo& info, int rank,
                            const std::vector<std::pair<std::string, std::string>>& parts) const;

  // Rank 0, once every rank's write_rank returned (`files` from all ranks): writes the manifest
  // last, then deletes all but the newest `keep` complete checkpoints (and incomplete ones older
  // than the newest complete one).
  void commit(const CheckpointInfo& info, const std::vector<CheckpointFile>& files) const;

  struct Found {
    CheckpointInfo info;
    std::string path;                  // the checkpoint's directory
    std::vector<std::string> skipped;  // newer checkpoints passed over, each with the reason
  };
  // The newest checkpoint whose manifest and rank files verify, or nothing. A checkpoint made by
  // another job (another fingerprint) makes this throw gyre::Error naming both fingerprints.
  std::optional<Found> latest(const std::string& fingerprint) const;

  // Every part of a checkpoint (all rank files), by name: any rank may read any part, so a job
  // may resume with another number of ranks.
  std::map<std::string, std::string> read_parts(const Found& checkpoint) const;

 private:
  std::string dir_;
  int keep_;
};

}  // namespace gyre::io
