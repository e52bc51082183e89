#include "gyre/core/cluster.h"

#include "gyre/core/error.h"
#include "gyre/core/runtime.h"

namespace gyre {

Cluster::Cluster() : transport_(detail::make_local_transport()) {}

Cluster::Cluster(std::shared_ptr<detail::Transport> transport) : transport_(std::move(transport)) {
  if (!transport_)
    throw Error("no cluster to run on (a null transport): pass gyre::Cluster::local() for this process, or "
                "gyre::mpi::Session::cluster() for the ranks of an MPI job");
}

int Cluster::rank() const { return transport_->rank(); }
int Cluster::ranks() const { return transport_->num_ranks(); }

}  // namespace gyre
