// The graph layer: a graph loaded from a file into partitions, vertex ids compacted to dense
// ranges, in-edge CSR and out-degrees per partition, kept in memory on the rank that owns the
// partition. Algorithms then run iterations over it (the CSR is their loop-invariant index).
//
// Graphs are simple: a duplicate edge counts once, and in an undirected graph an edge listed in
// both directions is one edge (Graphalytics, NetworkX and GAPBS do the same); self-loops stay
// edges. LoadOptions::keep_duplicates keeps every listed edge instead (a multigraph).
//
// Partitions are ranges of dense ids. From a gyre HDF5 graph (.h5) dense id = the vertex's index
// in id order, the ranges balance vertices + in-edges, and each rank reads its partitions' slices
// of the file's CSRs in place (graph_hdf5.cc, no job). From text:
// vertex v (any 64-bit id) belongs to partition hash(v) of P, like key_by(v); inside a partition
// vertices are numbered in id order, and partition p's vertices get the global dense ids
// [first(p), first(p) + size(p)). Loading is one gyre job: ids are shuffled to their owners and
// sorted; edges go to the owner of their source (out-degree, source's dense id), then of their
// target (in-edge CSR, duplicates removed), then back to the source's owner (the out-edge CSR if
// asked for, else only the out-degree corrections of removed duplicates).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gyre/core/config.h"
#include "gyre/core/runtime.h"
#include "gyre/io/graph_files.h"

namespace gyre::graph {

struct Partition {
  std::vector<std::uint64_t> ids;         // original ids, sorted; local vertex i is ids[i]
  std::vector<std::uint32_t> out_degree;  // per local vertex: distinct out-neighbours (undirected:
                                          //   distinct neighbours; a self-loop counts once)
  std::vector<std::uint64_t> in_offsets;  // CSR: in-edges of local vertex i are
  std::vector<std::uint32_t> in_sources;  //   in_sources[in_offsets[i] .. in_offsets[i+1]) (dense ids),
                                          //   in the order of the sources' original ids
  // The out-edge CSR, in the order of the targets' original ids: only for a directed graph loaded
  // with LoadOptions::out_edges. In an undirected graph the in-edges are the out-edges (use the
  // accessors below, which take either).
  std::vector<std::uint64_t> out_offsets;
  std::vector<std::uint32_t> out_targets;
  // Edge weights (LoadOptions::weighted), parallel to in_sources and out_targets.
  std::vector<double> in_weights;
  std::vector<double> out_weights;
  std::uint64_t first = 0;                // dense id of local vertex 0

  std::size_t size() const { return ids.size(); }
  // Out-edges of local vertex i: out_target(e) for e in [out_begin(i), out_end(i)).
  bool has_out_csr() const { return !out_offsets.empty(); }
  std::uint64_t out_begin(std::size_t i) const { return has_out_csr() ? out_offsets[i] : in_offsets[i]; }
  std::uint64_t out_end(std::size_t i) const { return has_out_csr() ? out_offsets[i + 1] : in_offsets[i + 1]; }
  const std::uint64_t* out_offsets_data() const { return has_out_csr() ? out_offsets.data() : in_offsets.data(); }
  const std::uint32_t* out_targets_data() const { return has_out_csr() ? out_targets.data() : in_sources.data(); }
  const double* out_weights_data() const { return has_out_csr() ? out_weights.data() : in_weights.data(); }
};

class Graph {
 public:
  explicit Graph(int partitions) : parts_(static_cast<std::size_t>(partitions)) {}
  int partitions() const { return static_cast<int>(parts_.size()); }
  // The partition if this rank holds it (rank p % ranks), else nullptr.
  Partition* part(int p) { return parts_.at(static_cast<std::size_t>(p)).get(); }
  const Partition* part(int p) const { return parts_.at(static_cast<std::size_t>(p)).get(); }
  Partition& make_part(int p) {
    std::lock_guard lock(mu_);
    auto& slot = parts_.at(static_cast<std::size_t>(p));
    if (!slot) slot = std::make_unique<Partition>();
    return *slot;
  }

  void set_first(const std::vector<std::uint64_t>& first_ids) {
    std::lock_guard lock(mu_);
    if (first.empty()) first = first_ids;
  }

  std::uint64_t vertices = 0;           // N
  std::uint64_t edges = 0;              // arcs after symmetrisation (undirected: both directions;
                                        //   a self-loop once) and duplicate removal
  bool directed = true;
  bool weighted = false;                // in_weights (and out_weights) are there
  // Out-edges are there: the graph is undirected, or directed and loaded with out_edges.
  bool has_out_edges = false;
  std::vector<std::uint64_t> first;     // per partition, plus N at the end
  double load_seconds = 0;
  JobResult load_metrics;

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Partition>> parts_;
};

struct LoadOptions {
  std::string path;  // edge list (SNAP/.e, plain or gzip), Graphalytics .properties, or gyre HDF5 (.h5)
  std::optional<bool> directed;          // default: the file's flag (.properties, .h5); edge lists are directed
  std::optional<io::GraphFormat> format;  // default: guessed from the file name
  bool out_edges = false;        // directed graphs: build the out-edge CSR too (BFS, SSSP, CDLP, LCC)
  bool weighted = false;         // read weights (the third column); a line without one is an error
  bool keep_duplicates = false;  // multigraph semantics: every listed edge counts
};

// Loads the graph in one job over `cluster` (every rank calls it; each keeps its partitions).
// Throws gyre::PlanError / gyre::JobError (malformed file: file and line) on every rank alike.
std::shared_ptr<Graph> load(const LoadOptions& opts, const JobConfig& config,
                            Cluster cluster);
// load() of a gyre HDF5 graph (graph_hdf5.cc): every rank reads its partitions' CSR in place.
std::shared_ptr<Graph> load_hdf5(const LoadOptions& opts, const JobConfig& config, Cluster cluster);

// The same from edges in memory (every rank passes the same vector; each reads its share).
struct MemoryEdge {
  std::uint64_t src;
  std::uint64_t dst;
  double weight = 1;  // used by weighted loads
};
std::shared_ptr<Graph> load_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                  const JobConfig& config, Cluster cluster);
// The same with the options of `opts` that apply (out_edges, weighted, keep_duplicates; the path
// and format are not used).
std::shared_ptr<Graph> load_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                  const LoadOptions& opts, const JobConfig& config, Cluster cluster);

// The load job's plan, without running it (`gyre explain`).
std::string explain_load(const LoadOptions& opts, const JobConfig& config, Cluster cluster);

// Converts a graph file (any input format) to gyre's HDF5 graph format (gyre/io/hdf5_graph.h):
// every rank parses its share, rank 0 writes `output` (atomically). Every rank calls it.
struct ConvertStats {
  std::uint64_t vertices = 0;  // rank 0
  std::uint64_t edges = 0;     // rank 0: as stored (an undirected edge once)
  bool directed = true;
  double seconds = 0;
  JobResult metrics;  // of the job that read (and gathered) the input; the write is after it
};
ConvertStats convert(const LoadOptions& input, const std::string& output, const JobConfig& config,
                     Cluster cluster);

}  // namespace gyre::graph
