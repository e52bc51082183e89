// MPI session: initialises MPI (MPI_THREAD_MULTIPLE) when the program starts, finalises it at
// the end, and provides the transport that runs gyre jobs across the ranks:
//
//   int main(int argc, char** argv) {
//     gyre::mpi::Session mpi(&argc, &argv);
//     gyre::Environment env(config, mpi.transport());   // same program on every rank (SPMD)
//     ...
//   }
//
// A program started without mpirun is a one-rank job that does not initialise MPI at all (Open
// MPI's singleton start-up costs about 0.3 s): its transport is the in-process one and the
// collective helpers act on one rank. Whether a launcher started the process is read from the
// environment it sets (Open MPI, PMIx, PMI, MVAPICH); GYRE_MPI=1 forces MPI on, GYRE_MPI=0 off.
// Destroy Environments before the Session.
// This is the only module that includes <mpi.h>, and only in its .cc files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gyre/core/cluster.h"
#include "gyre/core/codec.h"
#include "gyre/core/runtime.h"

namespace gyre::mpi {

class Session {
 public:
  // Initialises MPI when a launcher started this process (or MPI is already initialised: then
  // this session does not finalise it); otherwise a one-rank session without MPI.
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // True when this session runs on MPI (started by mpirun, or GYRE_MPI=1).
  bool uses_mpi() const { return uses_mpi_; }
  // The thread support level MPI granted, as MPI names it ("" without MPI).
  const std::string& thread_level() const { return thread_level_; }
  // Whether the environment says a launcher (mpirun, srun, ...) started this process.
  static bool launched_by_mpi();

  // Where jobs run: partitions spread over the ranks of MPI_COMM_WORLD (without MPI: all
  // partitions in this process). Pass it to gyre::Environment and to the algorithms.
  Cluster cluster() const { return Cluster(transport()); }
  // The same as the transport underneath (for gyre's modules).
  std::shared_ptr<detail::Transport> transport() const;

  // Collective helpers (every rank must call them).
  long long allreduce_sum(long long v) const;
  double allreduce_max(double v) const;
  void barrier() const;
  // Every rank's `local` records, concatenated in rank order, on every rank.
  template <Encodable T>
  std::vector<T> allgather(const std::vector<T>& local) const {
    std::string bytes;
    detail::encode_batch<T>(std::span<const T>(local), bytes);
    std::vector<std::string> parts = allgather_bytes(bytes);
    std::vector<T> all;
    for (const auto& p : parts) {
      std::vector<T> v;
      const char* q = p.data();
      const char* end = p.data() + p.size();
      while (q < end) {
        T x{};
        q = Codec<T>::decode(q, end, x);
        v.push_back(std::move(x));
      }
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
  std::vector<std::string> allgather_bytes(const std::string& local) const;

  // Ends the whole job at once with `code`, after printing `message` on this rank.
  [[noreturn]] void abort(int code, const std::string& message) const;

 private:
  bool owns_ = false;
  bool uses_mpi_ = false;
  int rank_ = 0;
  int size_ = 1;
  std::string thread_level_;
};

}  // namespace gyre::mpi
