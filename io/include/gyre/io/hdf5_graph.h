// gyre's HDF5 graph format and HDF5 result files.
//
// A graph file, format version 2 (`gyre convert` writes it; `h5dump -H g.h5` shows it):
//
//   /                 attributes: format = "gyre-graph", version = 2, directed (0/1), weighted (0/1),
//                                 vertices (N), edges (M: arcs stored in each CSR), source (what
//                                 it was made from)
//   /vertices/ids     uint64 [N]    original vertex ids, strictly ascending; dense id i is ids[i]
//   /in/offsets       uint64 [N+1]  in-edges of vertex i: /in/sources[offsets[i] .. offsets[i+1])
//   /in/sources       uint32 [M]    source dense ids, ascending within each vertex (no duplicates)
//   /in/weights       float64 [M]   only if weighted: parallel to /in/sources
//   /out/offsets      uint64 [N+1]  directed graphs only: out-edges of vertex i
//   /out/targets      uint32 [M]    target dense ids, ascending within each vertex
//   /out/weights      float64 [M]   directed and weighted only
//
// The graph is SIMPLE: a duplicate edge is stored once (with its smallest weight). An undirected
// graph is stored symmetric: every edge both ways in /in (its in-edges are its neighbours, and
// there is no /out); a self-loop once. Isolated vertices (from a Graphalytics .v file) are
// vertices with no edges. Since dense ids follow the original ids, a reader's partitions are
// ranges of dense ids: each rank reads the hyperslabs of its ranges and nothing else.
//
// Version 1 files (gyre before issue 14: /edges/offsets and /edges/targets, edges as listed) are
// refused with a message saying to run `gyre convert` again.
//
// A result file: /ids uint64 [N] and /values (float64 or uint64) [N], sorted by id, with an
// `algorithm` attribute on the root.
//
// Every write goes to a temporary file that is renamed into place once complete; every error
// names the file (and the dataset or attribute).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/stream.h"
#include "gyre/io/graph_files.h"

namespace gyre::io {

// A graph in the file's layout, in memory.
struct Hdf5Graph {
  std::vector<std::uint64_t> ids;         // N, ascending
  std::vector<std::uint64_t> in_offsets;  // N + 1
  std::vector<std::uint32_t> in_sources;  // M
  std::vector<double> in_weights;         // M if weighted
  std::vector<std::uint64_t> out_offsets;  // directed: N + 1
  std::vector<std::uint32_t> out_targets;  // directed: M
  std::vector<double> out_weights;         // directed and weighted: M
  bool directed = true;
  bool weighted = false;
  std::uint64_t edges() const { return in_sources.size(); }
};

// Builds the graph of `edges` over the vertices `ids` (any order, duplicates allowed; every edge
// endpoint is added): duplicates removed, an undirected graph symmetrised. Throws gyre::Error
// beyond 2^32 vertices.
Hdf5Graph make_hdf5_graph(std::vector<std::uint64_t> ids, const std::vector<Edge>& edges, bool directed);

// The same from edges given as dense indexes into `ids` (sorted, distinct), in blocks: block b
// holds src, dst pairs (pairs[b][2i] -> pairs[b][2i + 1]), with weights[b][i] if `weights` is not
// null. Consumes (frees) the blocks once placed: memory stays near the edges plus the CSR.
// Sorts each vertex's list with oneTBB (the calling arena's threads).
Hdf5Graph build_hdf5_graph(std::vector<std::uint64_t> ids, std::vector<std::vector<std::uint32_t>>& pairs,
                           std::vector<std::vector<double>>* weights, bool directed);

// Writes the file (straight to a temporary on disk, then fsync and rename; the free space is
// checked first, so a full disk is an error before anything is written).
void write_hdf5_graph(const std::string& path, const Hdf5Graph& g, const std::string& source);

struct Hdf5GraphInfo {
  std::uint64_t vertices = 0;
  std::uint64_t edges = 0;
  bool directed = true;
  bool weighted = false;
};
// Opens the file and checks its structure (format, version, dataset shapes).
Hdf5GraphInfo read_hdf5_graph_info(const std::string& path);

// Random access to a graph file's datasets (hyperslabs), for in-place loading. The constructor
// checks the structure like read_hdf5_graph_info. Errors name the file and the dataset.
class Hdf5GraphFile {
 public:
  enum class Csr { kIn, kOut };  // kOut: directed files only
  explicit Hdf5GraphFile(const std::string& path);
  ~Hdf5GraphFile();
  Hdf5GraphFile(const Hdf5GraphFile&) = delete;
  Hdf5GraphFile& operator=(const Hdf5GraphFile&) = delete;

  const std::string& path() const;
  const Hdf5GraphInfo& info() const;
  // Elements [first, first + n) of /vertices/ids, of a CSR's offsets, neighbours
  // (/in/sources, /out/targets) and weights.
  void read_ids(std::uint64_t first, std::uint64_t n, std::uint64_t* out) const;
  void read_offsets(Csr csr, std::uint64_t first, std::uint64_t n, std::uint64_t* out) const;
  void read_neighbours(Csr csr, std::uint64_t first, std::uint64_t n, std::uint32_t* out) const;
  void read_weights(Csr csr, std::uint64_t first, std::uint64_t n, double* out) const;
  // The dataset names, for error messages: "/in/offsets", "/out/targets", ...
  static const char* offsets_name(Csr csr);
  static const char* neighbours_name(Csr csr);
  static const char* weights_name(Csr csr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parallel sources of a graph file as an edge list (original ids; an undirected graph's edges
// once each, source <= target) and its vertex ids. For plans that take a graph file as streams
// (`gyre explain`); graph::load() reads files in place.
Stream<Edge> read_hdf5_edges(Environment& env, const std::string& path);
Stream<std::uint64_t> read_hdf5_vertices(Environment& env, const std::string& path);

// Result files.
void write_hdf5_values(const std::string& path, const std::string& algorithm,
                       const std::vector<std::pair<std::uint64_t, double>>& rows);
void write_hdf5_values(const std::string& path, const std::string& algorithm,
                       const std::vector<std::pair<std::uint64_t, std::uint64_t>>& rows);
// Reads a result file's rows (values as doubles).
std::vector<std::pair<std::uint64_t, double>> read_hdf5_values(const std::string& path);

}  // namespace gyre::io
