// Synthetic graphs, deterministic for a seed: edge i depends only on (seed, i), so the same
// graph comes out whatever the number of threads or ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gyre/algorithms/graph.h"

namespace gyre::graph {

struct GeneratorOptions {
  std::string kind = "kronecker";  // "kronecker" (Graph500: A=0.57, B=0.19, C=0.19) or "uniform"
  int scale = 16;                  // 2^scale vertex ids
  int edge_factor = 16;            // edges = edge_factor * 2^scale
  std::uint64_t seed = 1;
};

// The edges, in edge-index order (vertex ids permuted for Kronecker, as Graph500 does). Throws
// gyre::PlanError for an unknown kind or a scale outside [1, 31].
std::vector<MemoryEdge> generate_edges(const GeneratorOptions& opts);

// Writes edges as an edge list ("src dst" lines after a '#' header), atomically.
void write_edge_list(const std::string& path, const std::vector<MemoryEdge>& edges, const std::string& header);

}  // namespace gyre::graph
