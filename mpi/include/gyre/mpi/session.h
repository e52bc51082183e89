// MPI session: initialises MPI (MPI_THREAD_MULTIPLE) when the program starts, finalises it at
// the end. A program started without mpirun is a one-rank job. This is the only module that
// includes <mpi.h>, and only in its .cc files.
#pragma once

#include <string>

namespace gyre::mpi {

class Session {
 public:
  // Initialises MPI unless already initialised (then this session does not finalise it).
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // The thread support level MPI granted, as MPI names it.
  const std::string& thread_level() const { return thread_level_; }

  // Sum of `v` over all ranks (collective: every rank must call it).
  long long allreduce_sum(long long v) const;
  // Ends the whole job at once with `code`, after printing `message` on this rank.
  [[noreturn]] void abort(int code, const std::string& message) const;

 private:
  bool owns_ = false;
  int rank_ = 0;
  int size_ = 1;
  std::string thread_level_;
};

}  // namespace gyre::mpi
