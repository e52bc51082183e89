// Private helpers of gyre::mpi (includes <mpi.h>; never installed).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "gyre/core/runtime.h"

namespace gyre::mpi {

// Throws gyre::Error with MPI's own description if rc is not MPI_SUCCESS.
void check(int rc, const char* what);
// Every rank's string, in rank order, on every rank (collective).
std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& local);
std::shared_ptr<detail::Transport> make_mpi_transport();

}  // namespace gyre::mpi
