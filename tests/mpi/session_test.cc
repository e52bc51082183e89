// MPI session: the same binary runs as one rank without mpirun and as N ranks under it.
#include <gtest/gtest.h>

#include <cstdlib>

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

TEST(MpiSession, ThreadMultipleIsProvided) { EXPECT_EQ(session->thread_level(), "MPI_THREAD_MULTIPLE"); }

}  // namespace
