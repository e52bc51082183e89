// Lets one test source run in one process (in-process transport) or under mpiexec (MPI
// transport): build the test with GYRE_TEST_MPI defined and link tests/support/mpi_main.cc.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gyre/core.h"
#ifdef GYRE_TEST_MPI
#include "gyre/mpi/session.h"
#endif

namespace testenv {

#ifdef GYRE_TEST_MPI
gyre::mpi::Session& session();
inline gyre::Environment make_env(const gyre::JobConfig& c) { return gyre::Environment(c, session().transport()); }
// Every rank's records, on every rank.
template <class T>
std::vector<T> values(const gyre::Collected<T>& c) {
  return session().allgather(c.values());
}
template <class T>
std::vector<T> gather(const std::vector<T>& local) {
  return session().allgather(local);
}
inline long long sum_ranks(long long v) { return session().allreduce_sum(v); }
// A path in the test temp dir that is the same on every rank of this run and different from any
// other test process running at the same time (rank 0's pid).
inline std::string temp_path(const std::string& stem) {
  const long long pid = session().allgather(std::vector<long long>{static_cast<long long>(::getpid())})[0];
  return ::testing::TempDir() + "/" + stem + "." + std::to_string(pid);
}
inline void barrier() { session().barrier(); }
inline int rank() { return session().rank(); }
#else
inline gyre::Environment make_env(const gyre::JobConfig& c) { return gyre::Environment(c); }
template <class T>
std::vector<T> values(const gyre::Collected<T>& c) {
  return c.values();
}
template <class T>
std::vector<T> gather(const std::vector<T>& local) {
  return local;
}
inline long long sum_ranks(long long v) { return v; }
inline std::string temp_path(const std::string& stem) {
  return ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid());
}
inline void barrier() {}
inline int rank() { return 0; }
#endif

}  // namespace testenv
