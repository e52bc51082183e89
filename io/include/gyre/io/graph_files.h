// Graph files: edge lists as published (SNAP and Graphalytics .e: "src dst [weight]" per line,
// '#' or '%' comment lines, blank lines, CRLF, plain or gzip-compressed), Graphalytics
// .properties and .v files, and "id value" result files.
//
// read_edge_list splits a plain file over the source's partitions at line boundaries, so every
// rank reads its own share; a gzip file is read whole by partition 0. A malformed line ends the
// job with an error naming the file and the line number.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/stream.h"

namespace gyre::io {

struct Edge {
  std::uint64_t src;
  std::uint64_t dst;
  auto operator<=>(const Edge&) const = default;
};

enum class GraphFormat { kEdgeList, kGraphalytics, kHdf5 };
// From the file name: ".properties" -> Graphalytics, ".h5"/".hdf5" -> HDF5, anything else an
// edge list (".gz" or not: compression is detected from the content).
GraphFormat guess_format(const std::string& path);

// A Graphalytics graph: its .properties file, resolved.
struct GraphalyticsGraph {
  std::string name;         // "example-directed"
  std::string vertex_file;  // absolute or relative to the working directory
  std::string edge_file;
  bool directed = true;
  std::map<std::string, std::string> properties;  // every key = value of the file
};
// Throws gyre::Error naming the file (and line) if it cannot be read or lacks a key.
GraphalyticsGraph read_properties(const std::string& path);

// The edges of an edge-list file, one record per line (weights are read and dropped).
Stream<Edge> read_edge_list(Environment& env, const std::string& path);
// The vertex ids of a Graphalytics .v file (one id per line; further columns ignored).
Stream<std::uint64_t> read_vertex_file(Environment& env, const std::string& path);

// Serial readers, for references and small inputs.
std::vector<Edge> read_edge_list_serial(const std::string& path);
std::vector<std::pair<std::uint64_t, double>> read_id_values(const std::string& path);

// Writes "id value" lines in the given order, atomically (temporary file + rename). Doubles are
// printed with 17 significant digits (they read back exactly).
void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, double>>& rows);
void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& rows);

}  // namespace gyre::io

