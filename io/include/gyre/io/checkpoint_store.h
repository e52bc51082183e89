// The checkpoint store: consistent loop checkpoints in HDF5 files (gyre::CheckpointStorage).
//
//   DIR/head-000010/rank-0.h5      every rank's parts (named byte strings: one per partition and
//   DIR/head-000010/rank-1.h5      kind of state, e.g. "p3.solution"), written by that rank
//   DIR/head-000010/rank-0.sum     size and CRC-32 of rank 0's file (so rank 0 need not read them all)
//   DIR/head-000010/MANIFEST.h5    written by rank 0 last, once every rank's file is durable
//   DIR/tail-000011/...            a tail log: what superstep 11 sent back to the head
//
// An entry exists once its manifest does: the manifest is written to a temporary file, fsync'd,
// and renamed into place (the directory fsync'd too), and it records every rank file's size and
// CRC-32, so a file that was truncated or damaged later is noticed. `h5dump` shows both kinds of
// file: root attributes (format, version, fingerprint, kind, superstep, ranks, partitions), the
// aggregators, the file table, and one uint8 dataset per part.
//
// The fingerprint names the job, its loop and its input: an entry of anything else is refused
// with a message, never silently used. After each self-contained entry is committed, the newest
// `keep` self-contained entries are kept, with the tails after the oldest of them; older entries
// (and abandoned incomplete ones) are deleted. Only the store's own files are ever deleted
// (MANIFEST.h5, rank-N.h5, rank-N.sum and their temporaries, then the directory if it is empty).
//
// Every file is built in memory and written by the store itself (temporary, fsync, rename), so a
// full disk ends a write with "cannot write checkpoint DIR/head-000005/rank-1.h5: No space left
// on device" and nothing half-written, never inside HDF5 (whose shutdown crashes on a file it
// could not flush).
#pragma once

#include <map>
#include <string>

#include "gyre/core/checkpoint.h"

namespace gyre::io {

class CheckpointStore final : public CheckpointStorage {
 public:
  // `keep`: self-contained entries kept (at least 1).
  explicit CheckpointStore(std::string dir, int keep = 2);

  const std::string& dir() const { return dir_; }
  std::string location() const override { return dir_; }
  void write_rank(const CheckpointInfo& info, int rank, const Parts& parts) const override;
  bool written(const CheckpointInfo& info) const override;
  void commit(const CheckpointInfo& info) const override;
  int discard(int after) const override;
  Listing list(const std::string& fingerprint) const override;
  std::string verify(const Entry& entry) const override;
  std::map<std::string, std::string> read_parts(const Entry& entry) const override;

 private:
  std::string dir_;
  int keep_;
};

}  // namespace gyre::io
