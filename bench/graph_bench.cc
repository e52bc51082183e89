// PageRank and connected components on a Kronecker graph (Graph500 parameters A=0.57, B=0.19,
// C=0.19, edge factor 16), gyre beside hand-written baselines in the same run:
//  - PageRank: a pull PageRank over an in-edge CSR with oneTBB (parallel_for over vertices,
//    the same Graphalytics semantics), 20 iterations;
//  - connected components: Shiloach-Vishkin with oneTBB (hook roots to the smaller root over all
//    edges, then shortcut, until no hook happens), the baseline the targets are measured
//    against; also union-find with path halving, serially (faster than SV on 2 cores here).
// Both baselines get the graph as dense ids (only vertices that have edges, as gyre sees them).
// Graph loading is timed separately. Under mpirun the baselines run on rank 0 with all threads
// while the other ranks wait.
//
//   graph_bench [--scale S] [--threads T] [--iterations N] [--only gyre|baseline] [--no-cc]
//               [--files DIR]
// --files DIR: also writes the graph to DIR as a text edge list and as a gyre HDF5 graph and
// times gyre's load job from each (every rank reading its share), besides the in-memory load.
#include <sys/resource.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <mpi.h>

#include "gyre/algorithms/algorithms.h"
#include "gyre/algorithms/generators.h"
#include "gyre/core/hash.h"
#include "gyre/io/hdf5_graph.h"
#include "gyre/mpi/session.h"

namespace {

using Edge = gyre::graph::MemoryEdge;
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double peak_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::vector<Edge> kronecker(int scale, int edge_factor, std::uint64_t seed) {
  gyre::graph::GeneratorOptions o;
  o.scale = scale;
  o.edge_factor = edge_factor;
  o.seed = seed;
  return gyre::graph::generate_edges(o);
}

struct Csr {
  std::uint64_t n = 0;
  std::vector<std::uint64_t> off;
  std::vector<std::uint32_t> src;
  std::vector<std::uint32_t> deg;
  std::vector<std::uint32_t> id;  // dense -> original (for checks)
};

Csr build_csr(const std::vector<Edge>& edges) {
  Csr g;
  std::vector<std::uint64_t> ids;
  ids.reserve(edges.size() * 2);
  for (const auto& e : edges) {
    ids.push_back(e.src);
    ids.push_back(e.dst);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  g.n = ids.size();
  std::vector<std::uint32_t> dense(ids.back() + 1, 0);
  for (std::size_t i = 0; i < ids.size(); ++i) dense[ids[i]] = static_cast<std::uint32_t>(i);
  g.off.assign(g.n + 1, 0);
  g.deg.assign(g.n, 0);
  for (const auto& e : edges) {
    ++g.off[dense[e.dst] + 1];
    ++g.deg[dense[e.src]];
  }
  for (std::uint64_t v = 0; v < g.n; ++v) g.off[v + 1] += g.off[v];
  g.src.resize(edges.size());
  std::vector<std::uint64_t> at(g.off.begin(), g.off.end() - 1);
  for (const auto& e : edges) g.src[at[dense[e.dst]]++] = dense[e.src];
  return g;
}

// Hand-written pull PageRank; returns seconds per iteration.
double baseline_pagerank(const Csr& g, int iterations, double damping, std::vector<double>& pr) {
  const double n = static_cast<double>(g.n);
  pr.assign(g.n, 1.0 / n);
  std::vector<double> contrib(g.n), next(g.n);
  const double t0 = now();
  for (int it = 0; it < iterations; ++it) {
    const double dangling = tbb::parallel_reduce(
        tbb::blocked_range<std::uint64_t>(0, g.n), 0.0,
        [&](const auto& r, double acc) {
          for (std::uint64_t v = r.begin(); v < r.end(); ++v) {
            if (g.deg[v] == 0) acc += pr[v];
            contrib[v] = g.deg[v] == 0 ? 0.0 : pr[v] / g.deg[v];
          }
          return acc;
        },
        std::plus<>());
    const double base = (1 - damping) / n + damping * dangling / n;
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, g.n), [&](const auto& r) {
      for (std::uint64_t v = r.begin(); v < r.end(); ++v) {
        double sum = 0;
        for (std::uint64_t e = g.off[v]; e < g.off[v + 1]; ++e) sum += contrib[g.src[e]];
        next[v] = base + damping * sum;
      }
    });
    pr.swap(next);
  }
  return (now() - t0) / iterations;
}

double baseline_cc(const Csr& g, std::uint64_t& components) {
  const double t0 = now();
  std::vector<std::uint32_t> parent(g.n);
  std::iota(parent.begin(), parent.end(), 0u);
  auto find = [&](std::uint32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  for (std::uint64_t v = 0; v < g.n; ++v)
    for (std::uint64_t e = g.off[v]; e < g.off[v + 1]; ++e) {
      const std::uint32_t a = find(static_cast<std::uint32_t>(v)), b = find(g.src[e]);
      if (a != b) parent[std::max(a, b)] = std::min(a, b);
    }
  components = 0;
  for (std::uint64_t v = 0; v < g.n; ++v) components += find(static_cast<std::uint32_t>(v)) == v ? 1 : 0;
  return now() - t0;
}

// Shiloach-Vishkin: returns seconds; `parent` ends as each vertex's component root (the
// smallest dense id of the component: hooks always go from a larger root to a smaller one).
double baseline_sv(const Csr& g, std::uint64_t& components) {
  const double t0 = now();
  std::vector<std::uint32_t> parent(g.n);
  std::iota(parent.begin(), parent.end(), 0u);
  auto at = [&](std::uint32_t x) { return std::atomic_ref<std::uint32_t>(parent[x]); };
  for (bool hooked = true; hooked;) {
    hooked = tbb::parallel_reduce(
        tbb::blocked_range<std::uint64_t>(0, g.n, 1024), false,
        [&](const auto& r, bool any) {
          for (std::uint64_t v = r.begin(); v < r.end(); ++v)
            for (std::uint64_t e = g.off[v]; e < g.off[v + 1]; ++e) {
              const std::uint32_t a = at(static_cast<std::uint32_t>(v)).load(std::memory_order_relaxed);
              const std::uint32_t b = at(g.src[e]).load(std::memory_order_relaxed);
              if (a == b) continue;
              const std::uint32_t hi = std::max(a, b), lo = std::min(a, b);
              if (at(hi).load(std::memory_order_relaxed) == hi) {
                at(hi).store(lo, std::memory_order_relaxed);
                any = true;
              }
            }
          return any;
        },
        [](bool x, bool y) { return x || y; });
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, g.n), [&](const auto& r) {
      for (std::uint64_t v = r.begin(); v < r.end(); ++v) {
        std::uint32_t p = parent[v];
        while (p != parent[p]) p = parent[p];
        parent[v] = p;
      }
    });
  }
  const double t = now() - t0;
  components = 0;
  for (std::uint64_t v = 0; v < g.n; ++v) components += parent[v] == v ? 1 : 0;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  int scale = 20, threads = 2, iterations = 20;
  std::string only;
  std::string files;
  bool cc = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--scale" && i + 1 < argc) scale = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--iterations" && i + 1 < argc) iterations = std::atoi(argv[++i]);
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--no-cc") cc = false;
    else if (a == "--files" && i + 1 < argc) files = argv[++i];
  }
  const bool root = mpi.rank() == 0;
  const int all_threads = threads * mpi.size();
  const double tg = now();
  auto edges = std::make_shared<const std::vector<Edge>>(kronecker(scale, 16, 1));
  if (root)
    std::printf("kronecker scale %d: %zu edges generated in %.2f s; ranks=%d threads/rank=%d\n", scale, edges->size(),
                now() - tg, mpi.size(), threads);

  if (only != "gyre" && root) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(all_threads));
    const double t0 = now();
    const Csr g = build_csr(*edges);
    const double load = now() - t0;
    std::vector<double> pr;
    const double per_it = baseline_pagerank(g, iterations, 0.85, pr);
    std::printf("baseline: %llu vertices; CSR build %.2f s; PageRank %.1f ms/iteration (%d threads)\n",
                static_cast<unsigned long long>(g.n), load, per_it * 1e3, all_threads);
    if (cc) {
      std::uint64_t comps = 0;
      const double t = baseline_cc(g, comps);
      std::printf("baseline: connected components %.1f ms (%llu components, union-find, 1 thread)\n", t * 1e3,
                  static_cast<unsigned long long>(comps));
      const double sv = baseline_sv(g, comps);
      std::printf("baseline: connected components %.1f ms (%llu components, Shiloach-Vishkin, %d threads)\n",
                  sv * 1e3, static_cast<unsigned long long>(comps), all_threads);
    }
    std::printf("baseline: peak memory %.0f MB (this process so far)\n", peak_mb());
  }
  // The other ranks wait without spinning (a blocking MPI barrier would busy-poll a core away
  // from the baseline's threads).
  MPI_Request req = MPI_REQUEST_NULL;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  for (int done = 0; MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done == 0;)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (only == "baseline") return 0;

  gyre::JobConfig c;
  c.slots = threads;
  if (!files.empty()) {
    const std::string text = files + "/kronecker-" + std::to_string(scale) + ".txt";
    const std::string h5 = files + "/kronecker-" + std::to_string(scale) + ".h5";
    if (root) {
      gyre::graph::write_edge_list(text, *edges, "# kronecker\n");
      std::vector<gyre::io::Edge> io_edges(edges->size());
      for (std::size_t i = 0; i < edges->size(); ++i) io_edges[i] = {(*edges)[i].src, (*edges)[i].dst};
      gyre::io::write_hdf5_graph(h5, gyre::io::make_hdf5_graph({}, io_edges, true), "graph_bench");
    }
    mpi.barrier();
    for (const auto& path : {text, h5}) {
      gyre::graph::LoadOptions in;
      in.path = path;
      const double tl = now();
      auto gf = gyre::graph::load(in, c, mpi.cluster());
      const double secs = now() - tl;
      if (root) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        std::fseek(f, 0, SEEK_END);
        const long bytes = std::ftell(f);
        std::fclose(f);
        std::printf("gyre: load from %s (%.0f MB): %.2f s (%llu vertices, %llu edges)\n", path.c_str(),
                    static_cast<double>(bytes) / 1e6, secs, static_cast<unsigned long long>(gf->vertices),
                    static_cast<unsigned long long>(gf->edges));
      }
    }
  }
  const double t0 = now();
  auto g = gyre::graph::load_edges(edges, true, c, mpi.cluster());
  const double load = now() - t0;
  gyre::graph::PageRankOptions opts;
  opts.iterations = iterations;
  gyre::JobResult m;
  gyre::graph::pagerank(*g, opts, c, mpi.cluster(), &m);
  double steps = 0;
  for (const auto& s : m.loops.at(0).steps) steps += s.seconds;
  if (root)
    std::printf("gyre: %llu vertices; load %.2f s; PageRank %.1f ms/iteration (job %.2f s for %d iterations)\n",
                static_cast<unsigned long long>(g->vertices), load, steps / iterations * 1e3, m.seconds, iterations);
  if (cc) {
    gyre::JobResult cm;
    const auto labels = gyre::graph::connected_components_edges(edges, c, mpi.cluster(), &cm);
    if (root) {
      std::uint64_t comps = 0;
      for (const auto& [v, l] : labels) comps += v == l ? 1 : 0;
      // The union-find kernel has no loop (min-label propagation, with checkpoints, has one).
      const int supersteps = cm.loops.empty() ? 0 : cm.loops.at(0).supersteps;
      std::printf("gyre: connected components %.1f ms, %d supersteps (0: union-find, no loop; %llu components; the "
                  "job, after its own undirected load)\n",
                  cm.seconds * 1e3, supersteps, static_cast<unsigned long long>(comps));
      if (!cm.loops.empty()) {
        std::printf("gyre: connected components per superstep (ms / changed vertices):");
        for (const auto& s : cm.loops.at(0).steps) {
          double active = 0;
          for (const auto& [name, value] : s.aggregators)
            if (name == "active vertices") active = value;
          std::printf(" %.1f/%.0f", s.seconds * 1e3, active);
        }
        std::printf("\n");
      }
    }
  }
  if (root) std::printf("gyre: peak memory %.0f MB (rank 0, this process so far)\n", peak_mb());
  return 0;
}
