// Graph files: edge lists as published (SNAP and Graphalytics .e: "src dst [weight]" per line,
// '#' or '%' comment lines, blank lines, CRLF, plain or gzip-compressed), Graphalytics
// .properties and .v files, and "id value" result files.
//
// read_edge_list splits a plain file over the source's partitions at line boundaries, so every
// rank reads its own share; a gzip file is read whole by partition 0. A malformed line ends the
// job with an error naming the file and the line number (the line's bytes shown with control
// characters, NUL and non-ASCII bytes escaped as \xNN).
//
// What is refused rather than guessed at:
//  - inputs that are not regular files (a pipe such as /dev/stdin or <(cmd), a FIFO, a device,
//    a directory): every reader stats its file first and says to write the data to a file;
//  - a gzip file cut short ("FILE: truncated gzip stream (ends after N bytes)"), with a bad
//    CRC-32 or length, with corrupt blocks ("FILE: corrupt gzip data: <zlib message>"), or with
//    bytes after its last member that are not another member (concatenated members are read);
//  - a file named *.gz that does not start with the gzip signature.
// A UTF-8 byte order mark at the start of a file (.e, .v, edge list, .properties) is skipped.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
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

// An edge with its weight (the third column).
struct WeightedEdge {
  std::uint64_t src;
  std::uint64_t dst;
  double weight;
};

enum class GraphFormat { kEdgeList, kGraphalytics, kHdf5 };
// From the file name: ".properties" -> Graphalytics, ".h5"/".hdf5" -> HDF5, anything else an
// edge list (".gz" or not: compression is detected from the content).
GraphFormat guess_format(const std::string& path);

// The algorithm parameters of a Graphalytics .properties file (graph.<name>.<key>); a field is
// empty when the file does not set it.
struct GraphalyticsParameters {
  bool directed = true;  // graph.<name>.directed
  bool weighted = false;  // graph.<name>.edge-properties.names lists a property
  std::optional<double> pr_damping_factor;           // pr.damping-factor, in [0, 1]
  std::optional<std::uint64_t> pr_num_iterations;    // pr.num-iterations
  std::optional<std::uint64_t> bfs_source_vertex;    // bfs.source-vertex
  std::optional<std::uint64_t> sssp_source_vertex;   // sssp.source-vertex
  std::optional<std::string> sssp_weight_property;   // sssp.weight-property
  std::optional<std::uint64_t> cdlp_max_iterations;  // cdlp.max-iterations
};

// A Graphalytics graph: its .properties file, resolved.
struct GraphalyticsGraph {
  std::string name;         // "example-directed"
  std::string vertex_file;  // relative names are taken from the properties file's directory
  std::string edge_file;
  bool directed = true;
  GraphalyticsParameters parameters;
  std::map<std::string, std::string> properties;  // every key = value of the file
};
// Throws gyre::Error naming the file and line (and key) if it cannot be read, is not a regular
// file, lacks a key, sets a key twice, or has a malformed value (a parameter that is not a
// number, a damping factor outside [0, 1], directed not true/false).
GraphalyticsGraph read_properties(const std::string& path);
// read_properties(path).parameters.
GraphalyticsParameters read_graphalytics_parameters(const std::string& path);

// The edges of an edge-list file, one record per line (weights are read and dropped).
Stream<Edge> read_edge_list(Environment& env, const std::string& path);
// The same with the weights: every data line needs a third column, a number >= 0 (infinity is
// allowed; NaN and negative weights are refused with file and line).
Stream<WeightedEdge> read_weighted_edge_list(Environment& env, const std::string& path);
// The vertex ids of a Graphalytics .v file (one id per line; further columns ignored).
Stream<std::uint64_t> read_vertex_file(Environment& env, const std::string& path);

// Serial readers, for references and small inputs.
std::vector<Edge> read_edge_list_serial(const std::string& path);
std::vector<WeightedEdge> read_weighted_edge_list_serial(const std::string& path);
std::vector<std::pair<std::uint64_t, double>> read_id_values(const std::string& path);

// A line found in a file, for error messages: its 1-based number and its bytes (without the
// newline); printable() escapes control characters and non-ASCII bytes.
struct LineRef {
  std::uint64_t line = 0;
  std::string text;
  std::string printable() const;
};
// The first `max` lines of an edge list that name vertex `id` (as source or target), and of a
// vertex file that list `id`. They read the file serially from its start: for error paths only.
std::vector<LineRef> find_edge_lines(const std::string& path, std::uint64_t id, std::size_t max);
std::vector<LineRef> find_vertex_lines(const std::string& path, std::uint64_t id, std::size_t max);

// Writes "id value" lines in the given order, atomically (temporary file + rename). Doubles are
// printed with 17 significant digits (they read back exactly).
void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, double>>& rows);
void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& rows);

}  // namespace gyre::io

