// MPI session: the same binary runs as one rank without mpirun and as N ranks under it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gyre/mpi/session.h"

namespace {

gyre::mpi::Session* session = nullptr;

class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    static int argc = 0;
    static char** argv = nullptr;
    session = new gyre::mpi::Session(&argc, &argv);
  }
  void TearDown() override {
    delete session;
    session = nullptr;
  }
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

TEST(MpiSession, RankAndSizeMatchTheLauncher) {
  // Open MPI tells each rank the job size in OMPI_COMM_WORLD_SIZE; without mpirun it is unset.
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const int expected = size != nullptr ? std::atoi(size) : 1;
  EXPECT_EQ(session->size(), expected);
  EXPECT_GE(session->rank(), 0);
  EXPECT_LT(session->rank(), session->size());
}

TEST(MpiSession, AllreduceSumsOverRanks) {
  const long long n = session->size();
  EXPECT_EQ(session->allreduce_sum(session->rank() + 1), n * (n + 1) / 2);
}

// Under mpirun; without it there is no MPI and no thread level.
TEST(MpiSession, ThreadMultipleIsProvided) {
  EXPECT_EQ(session->thread_level(), session->uses_mpi() ? "MPI_THREAD_MULTIPLE" : "");
}

// Without mpirun the session is one rank on the in-process transport and MPI is not initialised
// (Open MPI's singleton start-up costs about 0.3 s per command).
TEST(MpiSession, UsesMpiOnlyUnderALauncher) {
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
  EXPECT_EQ(gyre::mpi::Session::launched_by_mpi(), launched);
  EXPECT_EQ(session->uses_mpi(), launched);
  if (!launched) {
    EXPECT_EQ(session->size(), 1);
    EXPECT_EQ(session->thread_level(), "");
    EXPECT_EQ(session->allgather_bytes("x"), std::vector<std::string>{"x"});
    session->barrier();
  }
}

}  // namespace
