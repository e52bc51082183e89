// main() for tests run under mpiexec: MPI lives for the whole test binary. Every rank runs every
// test and prints its own failures; the process exit code is the rank's verdict (mpiexec fails
// if any rank fails).
#include <gtest/gtest.h>

#include "gyre/mpi/session.h"

namespace {
gyre::mpi::Session* g_session = nullptr;
}

namespace testenv {
gyre::mpi::Session& session() { return *g_session; }
}  // namespace testenv

int main(int argc, char** argv) {
  gyre::mpi::Session session(&argc, &argv);
  g_session = &session;
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  // Agree on the verdict before MPI_Finalize, so a failure on one rank fails them all.
  const long long failures = session.allreduce_sum(rc != 0 ? 1 : 0);
  g_session = nullptr;
  return failures != 0 ? 1 : 0;
}
