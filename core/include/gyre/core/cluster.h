// Where a job runs: this process alone (all partitions on its threads), or the ranks of an MPI
// job (gyre::mpi::Session::cluster()). Every Environment and every algorithm takes one; a
// default-constructed Cluster is this process alone, so one-process code never names it.
//
//   gyre::Environment env(config);                  // this process
//   gyre::mpi::Session mpi(&argc, &argv);
//   gyre::Environment env(config, mpi.cluster());   // every rank of the MPI job (SPMD)
//
// Copies share the connection; run one job at a time on it.
#pragma once

#include <memory>

namespace gyre {

namespace detail {
class Transport;
}

class Cluster {
 public:
  // This process alone.
  Cluster();
  static Cluster local() { return Cluster(); }
  // For gyre's modules (gyre::mpi): a cluster over `transport`. Throws gyre::Error if it is
  // null, so a missing connection is a message, not a crash.
  Cluster(std::shared_ptr<detail::Transport> transport);  // NOLINT: implicit on purpose

  // This process's rank, and the number of ranks (1 for this process alone).
  int rank() const;
  int ranks() const;

  const std::shared_ptr<detail::Transport>& transport() const { return transport_; }

 private:
  std::shared_ptr<detail::Transport> transport_;
};

}  // namespace gyre
