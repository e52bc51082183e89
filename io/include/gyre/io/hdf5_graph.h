// gyre's HDF5 graph format and HDF5 result files.
//
// A graph file (`gyre convert` writes it; `h5dump -H g.h5` shows it):
//
//   /                 attributes: format = "gyre-graph", version = 1, directed (0/1),
//                                 vertices (N), edges (M), source (what it was made from)
//   /vertices/ids     uint64 [N]    original vertex ids, ascending; vertex i is ids[i]
//   /edges/offsets    uint64 [N+1]  out-edges of vertex i: targets[offsets[i] .. offsets[i+1])
//   /edges/targets    uint32 [M]    target vertex indexes (into /vertices/ids)
//
// Edges are stored as they were given (an undirected graph once per edge, as in its edge list),
// isolated vertices included. Readers split the vertices evenly over a source's partitions and
// each partition reads only its slice of offsets and targets (plus the id map), so every rank
// reads its own part of the file.
//
// A result file: /ids uint64 [N] and /values (float64 or uint64) [N], sorted by id, with an
// `algorithm` attribute on the root.
//
// Every write goes to a temporary file that is renamed into place once complete; every error
// names the file (and the dataset or attribute).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/stream.h"
#include "gyre/io/graph_files.h"

namespace gyre::io {

struct Hdf5Graph {
  std::vector<std::uint64_t> ids;      // ascending
  std::vector<std::uint64_t> offsets;  // N + 1
  std::vector<std::uint32_t> targets;  // M
  bool directed = true;
};

// Builds the CSR of `edges` over the vertices `ids` (sorted and deduplicated here; every edge
// endpoint is added). Throws gyre::Error beyond 2^32 vertices.
Hdf5Graph make_hdf5_graph(std::vector<std::uint64_t> ids, const std::vector<Edge>& edges, bool directed);

void write_hdf5_graph(const std::string& path, const Hdf5Graph& g, const std::string& source);

struct Hdf5GraphInfo {
  std::uint64_t vertices = 0;
  std::uint64_t edges = 0;
  bool directed = true;
};
// Opens the file and checks its structure (format, version, dataset shapes).
Hdf5GraphInfo read_hdf5_graph_info(const std::string& path);

// Parallel sources: the edges (original ids) and the vertex ids of a graph file.
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
