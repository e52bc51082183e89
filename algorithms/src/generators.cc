// Graph generators. See generators.h.
#include "gyre/algorithms/generators.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <charconv>
#include <numeric>
#include <random>

#include "gyre/core/error.h"
#include "gyre/core/hash.h"
#include "gyre/core/text_io.h"

namespace gyre::graph {

std::vector<MemoryEdge> generate_edges(const GeneratorOptions& opts) {
  if (opts.scale < 1 || opts.scale > 31) throw PlanError("--scale must be in [1, 31]");
  if (opts.edge_factor < 1) throw PlanError("--edge-factor must be at least 1");
  if (opts.kind != "kronecker" && opts.kind != "uniform")
    throw PlanError("unknown generator '" + opts.kind + "': use kronecker or uniform");
  const int scale = opts.scale;
  const std::uint64_t seed = opts.seed;
  const std::uint64_t n = 1ULL << scale;
  const std::uint64_t m = n * static_cast<std::uint64_t>(opts.edge_factor);
  std::vector<MemoryEdge> edges(m);
  if (opts.kind == "uniform") {
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, m), [&](const auto& r) {
      for (std::uint64_t i = r.begin(); i < r.end(); ++i)
        edges[i] = {mix64(seed ^ mix64(2 * i + 1)) & (n - 1), mix64(seed ^ mix64(2 * i + 2)) & (n - 1)};
    });
    return edges;
  }
  std::vector<std::uint64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, m), [&](const auto& r) {
    for (std::uint64_t i = r.begin(); i < r.end(); ++i) {
      std::uint64_t state = mix64(seed ^ mix64(i + 1));
      std::uint64_t u = 0, v = 0;
      for (int b = 0; b < scale; ++b) {
        state = mix64(state + 0x9e3779b97f4a7c15ULL);
        const double x = static_cast<double>(state >> 11) * 0x1.0p-53;
        // Quadrants: A (0,0) 0.57, B (0,1) 0.19, C (1,0) 0.19, D (1,1) 0.05.
        u = (u << 1) | (x < 0.76 ? 0U : 1U);
        v = (v << 1) | ((x >= 0.57 && x < 0.76) || x >= 0.95 ? 1U : 0U);
      }
      edges[i] = {perm[u], perm[v]};
    }
  });
  return edges;
}

void write_edge_list(const std::string& path, const std::vector<MemoryEdge>& edges, const std::string& header) {
  detail::AtomicFile f(path);
  std::string chunk = header;
  char num[48];
  for (const auto& e : edges) {
    char* p = std::to_chars(num, num + 20, e.src).ptr;
    *p++ = ' ';
    p = std::to_chars(p, p + 20, e.dst).ptr;
    *p++ = '\n';
    chunk.append(num, static_cast<std::size_t>(p - num));
    if (chunk.size() > (1 << 22)) {
      f.write(chunk);
      chunk.clear();
    }
  }
  f.write(chunk);
  f.prepare();
  f.commit();
}

}  // namespace gyre::graph
