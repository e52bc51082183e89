// Lets one test binary run its tests in one process (in-process transport) or under mpiexec
// (MPI transport), chosen when it starts: link tests/support/test_main.cc and pass --mpi for MPI.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "gyre/core.h"
#include "gyre/mpi/session.h"

namespace testenv {

// Defined in test_main.cc. mpi(): the binary runs with --mpi. session(): its MPI session (aborts
// with a message without --mpi).
bool mpi();
gyre::mpi::Session& session();

inline gyre::Environment make_env(const gyre::JobConfig& c) {
  if (mpi()) return gyre::Environment(c, session().cluster());
  return gyre::Environment(c);
}
// Where the graph layer runs: the MPI session, or this process alone.
inline gyre::Cluster cluster() {
  if (mpi()) return session().cluster();
  return gyre::Cluster::local();
}
inline int ranks() { return mpi() ? session().size() : 1; }
// Every rank's records, on every rank.
template <class T>
std::vector<T> values(const gyre::Collected<T>& c) {
  if (mpi()) return session().allgather(c.values());
  return c.values();
}
template <class T>
std::vector<T> gather(const std::vector<T>& local) {
  if (mpi()) return session().allgather(local);
  return local;
}
inline long long sum_ranks(long long v) { return mpi() ? session().allreduce_sum(v) : v; }
// A path in the test temp dir that is the same on every rank of this run and different from any
// other test process running at the same time (rank 0's pid).
inline std::string temp_path(const std::string& stem) {
  long long pid = static_cast<long long>(::getpid());
  if (mpi()) pid = session().allgather(std::vector<long long>{pid})[0];
  return ::testing::TempDir() + "/" + stem + "." + std::to_string(pid);
}
inline void barrier() {
  if (mpi()) session().barrier();
}
inline int rank() { return mpi() ? session().rank() : 0; }

}  // namespace testenv
