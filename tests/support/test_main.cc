// main() for the test binaries that run alone and under mpiexec (tests/support/test_env.h).
//   binary [gtest flags]          every test in this one process, over the in-process transport
//   binary --mpi [gtest flags]    MPI lives for the whole binary (one rank without mpiexec, N
//                                 under it); every rank runs every test and prints its own
//                                 failures, and the exit code is the verdict of all ranks
// Each source is compiled once; ctest runs the binary both ways (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gyre/mpi/session.h"
#include "test_env.h"

namespace {
gyre::mpi::Session* g_session = nullptr;
}

namespace testenv {
bool mpi() { return g_session != nullptr; }
gyre::mpi::Session& session() {
  if (g_session == nullptr) {
    std::fprintf(stderr, "test_main: this test needs MPI: run the binary with --mpi\n");
    std::abort();
  }
  return *g_session;
}
}  // namespace testenv

int main(int argc, char** argv) {
  // Take --mpi out of the arguments before MPI and GoogleTest see them.
  bool use_mpi = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mpi") == 0) {
      use_mpi = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
  // Started by Open MPI's mpirun on several ranks without --mpi: each rank would run the whole
  // suite on its own, which tests nothing about MPI. Say so instead.
  const char* launcher_size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!use_mpi && launcher_size != nullptr && std::atoi(launcher_size) > 1) {
    std::fprintf(stderr, "%s: started by mpirun on %s ranks without --mpi (add --mpi)\n", argv[0],
                 launcher_size);
    return 2;
  }
  if (!use_mpi) {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
  }
  gyre::mpi::Session session(&argc, &argv);
  g_session = &session;
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  // Agree on the verdict before MPI_Finalize, so a failure on one rank fails them all.
  const long long failures = session.allreduce_sum(rc != 0 ? 1 : 0);
  g_session = nullptr;
  return failures != 0 ? 1 : 0;
}
