#include "gyre/mpi/session.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mpi_util.h"

namespace gyre::mpi {
namespace {

const char* level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
    default: return "unknown";
  }
}

}  // namespace

bool Session::launched_by_mpi() {
  if (const char* force = std::getenv("GYRE_MPI"); force != nullptr && *force != '\0')
    return std::strcmp(force, "0") != 0;
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

Session::Session(int* argc, char*** argv) {
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (initialized == 0 && !launched_by_mpi()) return;  // one rank, no MPI
  uses_mpi_ = true;
  int provided = 0;
  if (initialized == 0) {
    check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    owns_ = true;
  } else {
    check(MPI_Query_thread(&provided), "MPI_Query_thread");
  }
  thread_level_ = level_name(provided);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

Session::~Session() {
  if (uses_mpi_ && owns_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized == 0) MPI_Finalize();
  }
}

std::shared_ptr<detail::Transport> Session::transport() const {
  if (!uses_mpi_) return detail::make_local_transport();
  return make_mpi_transport();
}

long long Session::allreduce_sum(long long v) const {
  if (!uses_mpi_) return v;
  long long out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  return out;
}

double Session::allreduce_max(double v) const {
  if (!uses_mpi_) return v;
  double out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return out;
}

void Session::barrier() const {
  if (!uses_mpi_) return;
  check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

std::vector<std::string> Session::allgather_bytes(const std::string& local) const {
  if (!uses_mpi_) return {local};
  return gather_strings(MPI_COMM_WORLD, local);
}

void Session::abort(int code, const std::string& message) const {
  std::fprintf(stderr, "[rank %d] %s\n", rank_, message.c_str());
  std::fflush(stderr);
  if (!uses_mpi_) std::_Exit(code);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace gyre::mpi
