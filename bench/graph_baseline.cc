// Hand-written shared-memory graph kernels over a plain CSR, in the style of the GAP Benchmark
// Suite (written for this project; no code taken from GAPBS): the in-run reference that
// bench/graph_bench.py runs beside `gyre pagerank|cc|bfs|sssp`. One process per kernel, so
// that its peak memory is the kernel's.
//
//   graph_baseline pagerank|cc|bfs|sssp --input FILE [--undirected|--directed] [--threads T]
//                  [--iterations N] [--damping D] [--source S] [--delta D] [--output OUT]
//   graph_baseline add-weights --input FILE --output OUT
//
// FILE: a text edge list ("src dst [weight]" lines, '#' / '%' comments), the file gyre reads.
// Reading: the file is mapped and parsed in parallel chunks (oneTBB), ids must be below 2^32.
// Graph: the same simple-graph semantics as gyre: only vertices that have edges, dense ids in
// ascending order of the original ids, a duplicate edge counts once (keeping its smallest
// weight), an undirected edge listed both ways is one edge, a self-loop stays one edge.
// Kernels:
//  - pagerank: pull PageRank (Graphalytics: dangling rank spread over all vertices), N iterations;
//  - cc: Afforest (two rounds of neighbour sampling, then linking the vertices outside the
//    largest sampled component), union-find with compare-and-swap hooks, label = the smallest
//    vertex id of the (weakly connected) component;
//  - bfs: direction-optimising BFS (Beamer): top-down steps over a queue, bottom-up steps over
//    a bitmap frontier, switching by the alpha = 15 / beta = 18 heuristics; hop counts,
//    unreachable 9223372036854775807;
//  - sssp: delta-stepping with thread-local buckets; weights from the third column; unreachable
//    `infinity`.
// add-weights: writes FILE with a third column, a weight in {0.001, ..., 1.000} that depends
// only on the unordered pair of ids (so both directions of an edge, and every duplicate, get the
// same weight): the weighted input for `gyre sssp` and this program's sssp.
// Prints one JSON line on stdout: load (read + parse + CSR), kernel and output seconds.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using u32 = std::uint32_t;
using u64 = std::uint64_t;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Reading the edge list

struct Mapped {
  const char* data = nullptr;
  std::size_t size = 0;
  int fd = -1;
  explicit Mapped(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Fail(path + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Fail(path + ": cannot stat");
    size = static_cast<std::size_t>(st.st_size);
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) throw Fail(path + ": cannot map");
      ::madvise(p, size, MADV_SEQUENTIAL);
      data = static_cast<const char*>(p);
    }
  }
  ~Mapped() {
    if (data) ::munmap(const_cast<char*>(data), size);
    if (fd >= 0) ::close(fd);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
};

struct Chunk {
  std::size_t begin = 0, end = 0;  // byte range, starts at a line start
  std::vector<u32> src, dst;
  std::vector<double> w;
  std::size_t lines = 0;  // lines in this chunk (for error line numbers)
  std::string error;      // first error, "line-in-chunk:message"
  std::size_t error_line = 0;
};

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Parses one chunk. Fields: two ids (decimal, < 2^32 - 1) and, when `weighted`, a weight.
void parse_chunk(const char* data, Chunk& c, bool weighted) {
  const char* p = data + c.begin;
  const char* const end = data + c.end;
  std::size_t line = 0;
  auto fail = [&](const std::string& what) {
    if (c.error.empty()) {
      c.error = what;
      c.error_line = line;
    }
  };
  while (p < end) {
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    if (!eol) eol = end;
    ++line;
    const char* q = p;
    while (q < eol && is_space(*q)) ++q;
    if (q == eol || *q == '#' || *q == '%') {
      p = eol + 1;
      continue;
    }
    u64 ids[2];
    for (int f = 0; f < 2; ++f) {
      while (q < eol && is_space(*q)) ++q;
      const auto [r, ec] = std::from_chars(q, eol, ids[f]);
      if (ec != std::errc() || (r < eol && !is_space(*r))) {
        fail(std::string(f == 0 ? "source" : "target") + " id: not a whole number");
        break;
      }
      if (ids[f] >= std::numeric_limits<u32>::max()) fail("id above 2^32 - 2 (the baseline keeps 32-bit ids)");
      q = r;
    }
    while (q < eol && is_space(*q)) ++q;
    double w = 1.0;
    if (q < eol) {
      const auto [r, ec] = std::from_chars(q, eol, w);
      if (ec != std::errc() || (r < eol && !is_space(*r))) fail("weight: not a number");
      q = r;
    } else if (weighted) {
      fail("weight: missing (sssp needs a third column; see graph_baseline add-weights)");
    }
    if (c.error.empty()) {
      c.src.push_back(static_cast<u32>(ids[0]));
      c.dst.push_back(static_cast<u32>(ids[1]));
      if (weighted) c.w.push_back(w);
    }
    p = eol + 1;
  }
  c.lines = line;
}

std::vector<Chunk> read_edges(const std::string& path, bool weighted) {
  Mapped m(path);
  const std::size_t pieces = std::max<std::size_t>(1, std::min<std::size_t>(m.size / (1 << 20) + 1, 1024));
  std::vector<Chunk> chunks(pieces);
  std::size_t at = 0;
  for (std::size_t i = 0; i < pieces; ++i) {
    chunks[i].begin = at;
    std::size_t e = i + 1 == pieces ? m.size : std::max(at, m.size / pieces * (i + 1));
    while (e < m.size && m.data[e - 1] != '\n') ++e;
    chunks[i].end = e;
    at = e;
  }
  tbb::parallel_for(std::size_t{0}, pieces, [&](std::size_t i) { parse_chunk(m.data, chunks[i], weighted); });
  std::size_t line_base = 0;
  for (const auto& c : chunks) {
    if (!c.error.empty())
      throw Fail(path + ":" + std::to_string(line_base + c.error_line) + ": " + c.error);
    line_base += c.lines;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------
// The CSR

struct Csr {
  std::vector<u64> off;    // n + 1
  std::vector<u32> adj;    // neighbours, ascending, no duplicates
  std::vector<double> w;   // parallel to adj (weighted graphs only)
  u64 begin(u64 v) const { return off[v]; }
  u64 end(u64 v) const { return off[v + 1]; }
  u64 degree(u64 v) const { return off[v + 1] - off[v]; }
};

struct Graph {
  u64 n = 0;
  bool directed = false;
  bool weighted = false;
  std::vector<u32> ids;  // dense -> original
  Csr out_csr;
  Csr in_csr;  // directed only; an undirected graph's in-edges are its out-edges
  const Csr& out() const { return out_csr; }
  const Csr& in() const { return directed ? in_csr : out_csr; }
  u64 arcs() const { return out_csr.adj.size(); }
};

// Arcs (from, to) of all chunks -> CSR over `n` vertices, in two passes without atomics (an
// atomic per arc into a random slot serialises the cache misses):
//  1. every chunk writes its arcs, packed as from << 32 | to, into K buckets by source range
//     (K sequential write streams per chunk, positions from a per-chunk prefix sum);
//  2. every bucket (a few thousand sources: its counters stay in L1) counting-sorts its arcs by
//     source, then sorts and dedupes each row (a duplicate keeps its smallest weight);
// then the rows are packed into the CSR.
// consume: free the chunks once their arcs are in the buckets (the last build of a graph).
Csr build_csr(u64 n, std::vector<Chunk>& chunks, bool reverse, bool both_ways, bool weighted, bool consume) {
  constexpr u64 kBuckets = 256;
  const u64 span = std::max<u64>(1, (n + kBuckets - 1) / kBuckets);  // sources per bucket
  const std::size_t nc = chunks.size();
  auto each_arc = [&](const Chunk& c, auto&& fn) {
    for (std::size_t i = 0; i < c.src.size(); ++i) {
      const double w = weighted ? c.w[i] : 0.0;
      if (both_ways) {
        fn(c.src[i], c.dst[i], w);
        fn(c.dst[i], c.src[i], w);
      } else if (reverse) {
        fn(c.dst[i], c.src[i], w);
      } else {
        fn(c.src[i], c.dst[i], w);
      }
    }
  };
  // Pass 1: counts per (chunk, bucket), positions bucket-major.
  std::vector<u64> pos(nc * kBuckets, 0);
  tbb::parallel_for(std::size_t{0}, nc, [&](std::size_t ci) {
    u64* mine = pos.data() + ci * kBuckets;
    each_arc(chunks[ci], [&](u32 from, u32, double) { ++mine[from / span]; });
  });
  std::vector<u64> bucket_begin(kBuckets + 1, 0);
  {
    u64 at = 0;
    for (u64 bk = 0; bk < kBuckets; ++bk) {
      bucket_begin[bk] = at;
      for (std::size_t ci = 0; ci < nc; ++ci) {
        const u64 c = pos[ci * kBuckets + bk];
        pos[ci * kBuckets + bk] = at;
        at += c;
      }
    }
    bucket_begin[kBuckets] = at;
  }
  const u64 arcs = bucket_begin[kBuckets];
  std::vector<u64> tmp(arcs);
  std::vector<double> tmp_w(weighted ? arcs : 0);
  tbb::parallel_for(std::size_t{0}, nc, [&](std::size_t ci) {
    u64* mine = pos.data() + ci * kBuckets;
    each_arc(chunks[ci], [&](u32 from, u32 to, double w) {
      const u64 slot = mine[from / span]++;
      tmp[slot] = static_cast<u64>(from) << 32 | to;
      if (weighted) tmp_w[slot] = w;
    });
  });
  std::vector<u64>().swap(pos);
  if (consume) std::vector<Chunk>().swap(chunks);
  // Pass 2: per bucket, rows in place: the bucket's u64 slots hold its targets (u32) from the
  // start of the region, row by row; deg[v] = distinct neighbours.
  std::vector<u64> deg(n + 1, 0);
  std::vector<u64> row_begin(n, 0);  // slot (as u64 index into tmp) where v's row starts, in u32 units
  tbb::parallel_for(u64{0}, kBuckets, [&](u64 bk) {
    const u64 lo = std::min(n, bk * span), hi = std::min(n, (bk + 1) * span);
    const u64 b = bucket_begin[bk], e = bucket_begin[bk + 1];
    if (lo == hi) return;
    std::vector<u64> count(hi - lo + 1, 0);
    for (u64 i = b; i < e; ++i) ++count[(tmp[i] >> 32) - lo + 1];
    for (u64 v = 0; v < hi - lo; ++v) count[v + 1] += count[v];
    std::vector<u32> to(e - b);
    std::vector<double> tw(weighted ? e - b : 0);
    {
      std::vector<u64> at(count.begin(), count.end() - 1);
      for (u64 i = b; i < e; ++i) {
        const u64 slot = at[(tmp[i] >> 32) - lo]++;
        to[slot] = static_cast<u32>(tmp[i]);
        if (weighted) tw[slot] = tmp_w[i];
      }
    }
    u32* out = reinterpret_cast<u32*>(tmp.data() + b);  // 2 (e - b) u32 slots; we need e - b
    double* out_w = weighted ? tmp_w.data() + b : nullptr;
    u64 k = 0;
    std::vector<std::pair<u32, double>> pairs;
    for (u64 v = lo; v < hi; ++v) {
      u32* rb = to.data() + count[v - lo];
      u32* re = to.data() + count[v - lo + 1];
      row_begin[v] = 2 * b + k;
      if (!weighted) {
        std::sort(rb, re);
        u32* last = std::unique(rb, re);
        for (u32* p = rb; p < last; ++p) out[k++] = *p;
        deg[v + 1] = static_cast<u64>(last - rb);
        continue;
      }
      pairs.clear();
      for (u64 i = count[v - lo]; i < count[v - lo + 1]; ++i) pairs.emplace_back(to[i], tw[i]);
      std::sort(pairs.begin(), pairs.end());  // by neighbour, then weight: the first of a run is the smallest
      const u64 k0 = k;
      for (std::size_t i = 0; i < pairs.size(); ++i)
        if (i == 0 || pairs[i].first != pairs[i - 1].first) {
          out[k] = pairs[i].first;
          out_w[k] = pairs[i].second;  // k < i + (row start) <= e - b: never past this bucket's weights
          ++k;
        }
      deg[v + 1] = k - k0;
    }
  });
  Csr g;
  g.off = std::move(deg);
  for (u64 v = 0; v < n; ++v) g.off[v + 1] += g.off[v];
  g.adj.resize(g.off[n]);
  if (weighted) g.w.resize(g.off[n]);
  const u32* packed = reinterpret_cast<const u32*>(tmp.data());
  tbb::parallel_for(tbb::blocked_range<u64>(0, n, 2048), [&](const auto& r) {
    for (u64 v = r.begin(); v < r.end(); ++v) {
      const u64 d = g.degree(v);
      std::copy(packed + row_begin[v], packed + row_begin[v] + d, g.adj.data() + g.off[v]);
      if (weighted) {
        // weights were packed at bucket start b + (position in bucket), i.e. index (row_begin - 2b) + b
        const u64 bk = v / span;
        const u64 b = bucket_begin[bk];
        const u64 wi = row_begin[v] - 2 * b + b;
        std::copy(tmp_w.data() + wi, tmp_w.data() + wi + d, g.w.data() + g.off[v]);
      }
    }
  });
  return g;
}

double g_read_seconds = 0, g_build_seconds = 0;  // the load's two parts, for the report

Graph load_graph(const std::string& path, bool directed, bool weighted) {
  const double t0 = now();
  auto chunks = read_edges(path, weighted);
  g_read_seconds = now() - t0;
  // Dense ids: the ids that occur, ascending.
  const u32 max_id = tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, chunks.size()), u32{0},
      [&](const auto& r, u32 m) {
        for (std::size_t c = r.begin(); c < r.end(); ++c) {
          for (const u32 x : chunks[c].src) m = std::max(m, x);
          for (const u32 x : chunks[c].dst) m = std::max(m, x);
        }
        return m;
      },
      [](u32 a, u32 b) { return std::max(a, b); });
  std::vector<u32> dense(static_cast<u64>(max_id) + 2, 0);  // 1 where an id occurs, then its dense id
  tbb::parallel_for(std::size_t{0}, chunks.size(), [&](std::size_t c) {
    for (const u32 x : chunks[c].src) std::atomic_ref<u32>(dense[x]).store(1, std::memory_order_relaxed);
    for (const u32 x : chunks[c].dst) std::atomic_ref<u32>(dense[x]).store(1, std::memory_order_relaxed);
  });
  Graph g;
  g.directed = directed;
  g.weighted = weighted;
  bool any = false;
  for (u64 id = 0; id + 1 < dense.size(); ++id)
    if (dense[id]) {
      any = true;
      dense[id] = static_cast<u32>(g.ids.size());
      g.ids.push_back(static_cast<u32>(id));
    }
  if (!any) throw Fail(path + ": no edges");
  g.n = g.ids.size();
  tbb::parallel_for(std::size_t{0}, chunks.size(), [&](std::size_t c) {
    for (u32& x : chunks[c].src) x = dense[x];
    for (u32& x : chunks[c].dst) x = dense[x];
  });
  std::vector<u32>().swap(dense);
  if (directed) {
    g.out_csr = build_csr(g.n, chunks, false, false, weighted, false);
    g.in_csr = build_csr(g.n, chunks, true, false, weighted, true);
  } else {
    g.out_csr = build_csr(g.n, chunks, false, true, weighted, true);
  }
  g_build_seconds = now() - t0 - g_read_seconds;
  return g;
}

// ---------------------------------------------------------------------------------------------
// Kernels

// One parallel pass per iteration (a loaded machine makes every extra fork-join costly): the
// pass that gathers the new ranks also makes the next iteration's contributions and dangling sum.
std::vector<double> pagerank(const Graph& g, int iterations, double damping) {
  const Csr& in = g.in();
  const Csr& out = g.out();
  const double n = static_cast<double>(g.n);
  std::vector<double> pr(g.n, 1.0 / n), contrib(g.n), next_contrib(g.n);
  double dangling = 0;
  for (u64 v = 0; v < g.n; ++v) {
    const u64 d = out.degree(v);
    contrib[v] = d == 0 ? 0.0 : pr[v] / static_cast<double>(d);
    if (d == 0) dangling += pr[v];
  }
  for (int it = 0; it < iterations; ++it) {
    const double base = (1 - damping) / n + damping * dangling / n;
    dangling = tbb::parallel_reduce(
        tbb::blocked_range<u64>(0, g.n, 2048), 0.0,
        [&](const auto& r, double acc) {
          for (u64 v = r.begin(); v < r.end(); ++v) {
            double sum = 0;
            for (u64 e = in.begin(v); e < in.end(v); ++e) sum += contrib[in.adj[e]];
            const double x = base + damping * sum;
            pr[v] = x;
            const u64 d = out.degree(v);
            next_contrib[v] = d == 0 ? 0.0 : x / static_cast<double>(d);
            if (d == 0) acc += x;
          }
          return acc;
        },
        std::plus<>());
    contrib.swap(next_contrib);
  }
  return pr;
}

// Afforest. comp[] is a forest whose roots are the smallest vertex of their tree: a root is only
// ever hooked below a smaller root, so the smallest vertex of a component stays its root.
std::vector<u32> connected_components(const Graph& g) {
  std::vector<u32> comp(g.n);
  std::iota(comp.begin(), comp.end(), u32{0});
  auto at = [&](u32 x) { return std::atomic_ref<u32>(comp[x]); };
  auto link = [&](u32 a, u32 b) {
    u32 ra = at(a).load(std::memory_order_relaxed), rb = at(b).load(std::memory_order_relaxed);
    while (ra != rb) {
      const u32 hi = std::max(ra, rb), lo = std::min(ra, rb);
      u32 expect = hi;
      if (at(hi).compare_exchange_strong(expect, lo, std::memory_order_relaxed)) return;
      if (expect == lo) return;  // hi already points at lo
      // hi is no longer a root: climb one step from both sides and retry.
      ra = at(expect).load(std::memory_order_relaxed);
      rb = at(lo).load(std::memory_order_relaxed);
    }
  };
  auto compress = [&] {
    tbb::parallel_for(tbb::blocked_range<u64>(0, g.n, 4096), [&](const auto& r) {
      for (u64 v = r.begin(); v < r.end(); ++v) {
        u32 p = comp[v];
        while (p != comp[p]) p = comp[p];
        comp[v] = p;
      }
    });
  };
  const Csr& out = g.out();
  constexpr u64 kRounds = 2;
  for (u64 round = 0; round < kRounds; ++round) {
    tbb::parallel_for(tbb::blocked_range<u64>(0, g.n, 4096), [&](const auto& r) {
      for (u64 v = r.begin(); v < r.end(); ++v)
        if (out.degree(v) > round) link(static_cast<u32>(v), out.adj[out.begin(v) + round]);
    });
    compress();
  }
  // The most frequent label among 1024 samples (fixed seed): most likely the giant component,
  // whose vertices need no more linking from their side.
  u32 giant = 0;
  {
    std::vector<u32> sample(1024);
    u64 state = 0x9E3779B97F4A7C15ULL;
    for (auto& s : sample) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      s = comp[(state >> 33) % g.n];
    }
    std::sort(sample.begin(), sample.end());
    std::size_t best = 0;
    for (std::size_t i = 0, j = 0; i < sample.size(); i = j) {
      while (j < sample.size() && sample[j] == sample[i]) ++j;
      if (j - i > best) {
        best = j - i;
        giant = sample[i];
      }
    }
  }
  const Csr& in = g.in();
  tbb::parallel_for(tbb::blocked_range<u64>(0, g.n, 1024), [&](const auto& r) {
    for (u64 v = r.begin(); v < r.end(); ++v) {
      if (at(static_cast<u32>(v)).load(std::memory_order_relaxed) == giant) continue;
      for (u64 e = out.begin(v) + std::min(kRounds, out.degree(v)); e < out.end(v); ++e)
        link(static_cast<u32>(v), out.adj[e]);
      if (g.directed)  // weakly connected: in-edges too (a vertex in the giant may miss an out-edge)
        for (u64 e = in.begin(v); e < in.end(v); ++e) link(static_cast<u32>(v), in.adj[e]);
    }
  });
  compress();
  return comp;
}

// Direction-optimising BFS; depth[v] = hops from the source, -1 unreachable.
std::vector<std::int32_t> bfs(const Graph& g, u32 source) {
  constexpr double kAlpha = 15, kBeta = 18;
  const Csr& out = g.out();
  const Csr& in = g.in();
  const u64 words = (g.n + 63) / 64;
  std::vector<std::int32_t> depth(g.n, -1);
  depth[source] = 0;
  std::vector<u32> queue{source}, next_queue;
  std::vector<u64> front(words, 0), next_front(words, 0);
  tbb::enumerable_thread_specific<std::vector<u32>> local;
  u64 edges_left = g.arcs();
  u64 scout = out.degree(source);
  std::int32_t level = 0;
  auto bottom_up = [&](std::int32_t lvl) {  // returns vertices found
    return tbb::parallel_reduce(
        tbb::blocked_range<u64>(0, words, 64), u64{0},
        [&](const auto& r, u64 found) {
          for (u64 wd = r.begin(); wd < r.end(); ++wd) {
            u64 bits = 0;
            const u64 hi = std::min(g.n, (wd + 1) * 64);
            for (u64 v = wd * 64; v < hi; ++v) {
              if (depth[v] >= 0) continue;
              for (u64 e = in.begin(v); e < in.end(v); ++e) {
                const u32 u = in.adj[e];
                if (front[u >> 6] >> (u & 63) & 1) {
                  depth[v] = lvl + 1;
                  bits |= u64{1} << (v & 63);
                  ++found;
                  break;
                }
              }
            }
            next_front[wd] = bits;  // this task owns the word
          }
          return found;
        },
        std::plus<>());
  };
  while (!queue.empty()) {
    if (static_cast<double>(scout) > static_cast<double>(edges_left) / kAlpha) {
      // Bottom-up while the frontier grows or is large.
      std::fill(front.begin(), front.end(), 0);
      for (const u32 v : queue) front[v >> 6] |= u64{1} << (v & 63);
      u64 awake = queue.size(), before = 0;
      do {
        before = awake;
        awake = bottom_up(level);
        ++level;
        front.swap(next_front);
      } while (awake > 0 && (awake >= before || static_cast<double>(awake) > static_cast<double>(g.n) / kBeta));
      // Back to a queue.
      queue.clear();
      for (auto& l : local) l.clear();
      tbb::parallel_for(tbb::blocked_range<u64>(0, words, 256), [&](const auto& r) {
        auto& mine = local.local();
        for (u64 wd = r.begin(); wd < r.end(); ++wd)
          for (u64 bits = front[wd]; bits; bits &= bits - 1)
            mine.push_back(static_cast<u32>(wd * 64 + static_cast<u64>(__builtin_ctzll(bits))));
      });
      for (auto& l : local) queue.insert(queue.end(), l.begin(), l.end());
      scout = 1;
      continue;
    }
    // Top-down step.
    edges_left -= std::min(edges_left, scout);
    for (auto& l : local) l.clear();
    scout = tbb::parallel_reduce(
        tbb::blocked_range<std::size_t>(0, queue.size(), 64), u64{0},
        [&](const auto& r, u64 sc) {
          auto& mine = local.local();
          for (std::size_t i = r.begin(); i < r.end(); ++i) {
            const u32 u = queue[i];
            for (u64 e = out.begin(u); e < out.end(u); ++e) {
              const u32 v = out.adj[e];
              std::atomic_ref<std::int32_t> d(depth[v]);
              std::int32_t expect = -1;
              if (d.load(std::memory_order_relaxed) < 0 &&
                  d.compare_exchange_strong(expect, level + 1, std::memory_order_relaxed)) {
                mine.push_back(v);
                sc += out.degree(v);
              }
            }
          }
          return sc;
        },
        std::plus<>());
    next_queue.clear();
    for (auto& l : local) next_queue.insert(next_queue.end(), l.begin(), l.end());
    queue.swap(next_queue);
    ++level;
  }
  return depth;
}

// Delta-stepping: bucket k holds vertices whose tentative distance is in [k*delta, (k+1)*delta).
std::vector<double> sssp(const Graph& g, u32 source, double delta) {
  const Csr& out = g.out();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> dist(g.n, kInf);
  dist[source] = 0;
  using Bins = std::vector<std::vector<u32>>;
  tbb::enumerable_thread_specific<Bins> bins;
  std::vector<u32> frontier{source};
  u64 bin = 0;
  constexpr u64 kNone = std::numeric_limits<u64>::max();
  while (!frontier.empty()) {
    const double floor_d = delta * static_cast<double>(bin);
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, frontier.size(), 64), [&](const auto& r) {
      Bins& mine = bins.local();
      for (std::size_t i = r.begin(); i < r.end(); ++i) {
        const u32 u = frontier[i];
        const double du = std::atomic_ref<double>(dist[u]).load(std::memory_order_relaxed);
        if (du < floor_d) continue;  // settled in an earlier bucket: a stale entry
        for (u64 e = out.begin(u); e < out.end(u); ++e) {
          const u32 v = out.adj[e];
          const double nd = du + out.w[e];
          std::atomic_ref<double> dv(dist[v]);
          double old = dv.load(std::memory_order_relaxed);
          while (nd < old && !dv.compare_exchange_weak(old, nd, std::memory_order_relaxed)) {
          }
          if (nd < old) {
            const u64 b = std::max(bin, static_cast<u64>(nd / delta));  // rounding never files below
            if (b >= mine.size()) mine.resize(b + 1);
            mine[b].push_back(v);
          }
        }
      }
    });
    // The next bucket: the smallest non-empty one at or after this one.
    u64 next = kNone;
    for (auto& mine : bins)
      for (u64 b = bin; b < mine.size() && b < next; ++b)
        if (!mine[b].empty()) {
          next = b;
          break;
        }
    frontier.clear();
    if (next == kNone) break;
    for (auto& mine : bins)
      if (next < mine.size()) {
        frontier.insert(frontier.end(), mine[next].begin(), mine[next].end());
        mine[next].clear();
      }
    bin = next;
  }
  return dist;
}

// ---------------------------------------------------------------------------------------------
// Output ("id value" lines, ascending id), written through a temporary file and renamed.

template <class Fn>
void write_values(const std::string& path, const Graph& g, Fn&& format) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Fail(path + ": cannot write (" + std::strerror(errno) + ")");
  std::vector<char> buf(1 << 20);
  std::size_t used = 0;
  for (u64 v = 0; v < g.n; ++v) {
    if (used + 64 > buf.size()) {
      std::fwrite(buf.data(), 1, used, f);
      used = 0;
    }
    char* p = buf.data() + used;
    p = std::to_chars(p, buf.data() + buf.size(), g.ids[v]).ptr;
    *p++ = ' ';
    p = format(v, p, buf.data() + buf.size());
    *p++ = '\n';
    used = static_cast<std::size_t>(p - buf.data());
  }
  std::fwrite(buf.data(), 1, used, f);
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) throw Fail(path + ": write failed");
}

char* put_double(double x, char* p, char* end) {
  if (std::isinf(x)) {
    std::memcpy(p, "infinity", 8);
    return p + 8;
  }
  return std::to_chars(p, end, x).ptr;  // shortest text that reads back exactly
}

// ---------------------------------------------------------------------------------------------
// add-weights

u64 mix(u64 x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

void add_weights(const std::string& in_path, const std::string& out_path) {
  Mapped m(in_path);
  const std::string tmp = out_path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Fail(out_path + ": cannot write (" + std::strerror(errno) + ")");
  std::string header = "# weights by graph_baseline add-weights: w = (mix(min*2^32 + max) % 1000 + 1) / 1000\n";
  std::fwrite(header.data(), 1, header.size(), f);
  std::vector<char> buf(1 << 20);
  std::size_t used = 0;
  const char* p = m.data;
  const char* const end = m.data + m.size;
  std::size_t line = 0;
  while (p < end) {
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    if (!eol) eol = end;
    ++line;
    const char* q = p;
    while (q < eol && is_space(*q)) ++q;
    if (q == eol || *q == '#' || *q == '%') {
      p = eol + 1;
      continue;
    }
    u64 a = 0, b = 0;
    auto r1 = std::from_chars(q, eol, a);
    q = r1.ptr;
    while (q < eol && is_space(*q)) ++q;
    auto r2 = std::from_chars(q, eol, b);
    if (r1.ec != std::errc() || r2.ec != std::errc())
      throw Fail(in_path + ":" + std::to_string(line) + ": expected 'src dst'");
    const u64 lo = std::min(a, b), hi = std::max(a, b);
    const u64 k = mix(lo * 0x100000000ULL + hi) % 1000 + 1;
    if (used + 64 > buf.size()) {
      std::fwrite(buf.data(), 1, used, f);
      used = 0;
    }
    char* o = buf.data() + used;
    o = std::to_chars(o, buf.data() + buf.size(), a).ptr;
    *o++ = ' ';
    o = std::to_chars(o, buf.data() + buf.size(), b).ptr;
    *o++ = ' ';
    *o++ = static_cast<char>('0' + k / 1000);
    *o++ = '.';
    *o++ = static_cast<char>('0' + k / 100 % 10);
    *o++ = static_cast<char>('0' + k / 10 % 10);
    *o++ = static_cast<char>('0' + k % 10);
    *o++ = '\n';
    used = static_cast<std::size_t>(o - buf.data());
    p = eol + 1;
  }
  std::fwrite(buf.data(), 1, used, f);
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), out_path.c_str()) != 0) throw Fail(out_path + ": write failed");
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "graph_baseline: %s\nusage: graph_baseline pagerank|cc|bfs|sssp --input FILE [--undirected|--directed] "
               "[--threads T] [--iterations N] [--damping D] [--source S] [--delta D] [--output OUT]\n"
               "       graph_baseline add-weights --input FILE --output OUT\n",
               why.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("no subcommand");
  const std::string kernel = argv[1];
  std::string input, output;
  bool directed = true;
  int threads = 0, iterations = 20;
  double damping = 0.85, delta = 0;
  long long source = -1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--input") input = value();
    else if (a == "--output") output = value();
    else if (a == "--undirected") directed = false;
    else if (a == "--directed") directed = true;
    else if (a == "--threads") threads = std::atoi(value().c_str());
    else if (a == "--iterations") iterations = std::atoi(value().c_str());
    else if (a == "--damping") damping = std::atof(value().c_str());
    else if (a == "--delta") delta = std::atof(value().c_str());
    else if (a == "--source") source = std::atoll(value().c_str());
    else usage("unknown argument " + a);
  }
  if (input.empty()) usage("--input is required");
  try {
    if (kernel == "add-weights") {
      if (output.empty()) usage("add-weights needs --output");
      const double t0 = now();
      add_weights(input, output);
      std::printf("{\"kernel\": \"add-weights\", \"seconds\": %.6f}\n", now() - t0);
      return 0;
    }
    if (kernel != "pagerank" && kernel != "cc" && kernel != "bfs" && kernel != "sssp") usage("unknown kernel " + kernel);
    if ((kernel == "bfs" || kernel == "sssp") && source < 0) usage(kernel + " needs --source");
    std::unique_ptr<tbb::global_control> limit;
    if (threads > 0)
      limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<std::size_t>(threads));
    const double t0 = now();
    const Graph g = load_graph(input, directed, kernel == "sssp");
    const double t1 = now();
    u32 src = 0;
    if (source >= 0) {
      const auto it = std::lower_bound(g.ids.begin(), g.ids.end(), static_cast<u64>(source));
      if (it == g.ids.end() || *it != static_cast<u64>(source))
        throw Fail("--source " + std::to_string(source) + ": not a vertex of " + input);
      src = static_cast<u32>(it - g.ids.begin());
    }
    std::string extra;
    double t2 = 0;
    if (kernel == "pagerank") {
      const auto pr = pagerank(g, iterations, damping);
      t2 = now();
      if (!output.empty()) write_values(output, g, [&](u64 v, char* p, char* e) { return put_double(pr[v], p, e); });
    } else if (kernel == "cc") {
      const auto comp = connected_components(g);
      t2 = now();
      u64 comps = 0;
      for (u64 v = 0; v < g.n; ++v) comps += comp[v] == v ? 1 : 0;
      extra = ", \"components\": " + std::to_string(comps);
      if (!output.empty())
        write_values(output, g, [&](u64 v, char* p, char* e) { return std::to_chars(p, e, g.ids[comp[v]]).ptr; });
    } else if (kernel == "bfs") {
      const auto depth = bfs(g, src);
      t2 = now();
      u64 reached = 0;
      for (const auto d : depth) reached += d >= 0 ? 1 : 0;
      extra = ", \"reached\": " + std::to_string(reached);
      if (!output.empty())
        write_values(output, g, [&](u64 v, char* p, char* e) {
          return depth[v] < 0 ? std::to_chars(p, e, std::numeric_limits<std::int64_t>::max()).ptr
                              : std::to_chars(p, e, depth[v]).ptr;
        });
    } else {
      if (delta <= 0) {
        // Default: twice the mean weight over the mean degree (measured best of 0.005-0.4 on
        // Kronecker scale 20 with add-weights weights: about 0.02 there).
        double sum = 0;
        for (const double w : g.out().w) sum += w;
        const double mean_w = sum / static_cast<double>(std::max<u64>(1, g.arcs()));
        const double mean_deg = static_cast<double>(g.arcs()) / static_cast<double>(g.n);
        delta = std::max(1e-9, mean_w * 2 / std::max(1.0, mean_deg));
      }
      const auto dist = sssp(g, src, delta);
      t2 = now();
      u64 reached = 0;
      for (const auto d : dist) reached += std::isinf(d) ? 0 : 1;
      extra = ", \"reached\": " + std::to_string(reached) + ", \"delta\": " + std::to_string(delta);
      if (!output.empty()) write_values(output, g, [&](u64 v, char* p, char* e) { return put_double(dist[v], p, e); });
    }
    const double t3 = now();
    std::printf(
        "{\"kernel\": \"%s\", \"vertices\": %llu, \"arcs\": %llu, \"threads\": %d, \"load_seconds\": %.6f, "
        "\"read_seconds\": %.6f, \"build_seconds\": %.6f, \"kernel_seconds\": %.6f, \"output_seconds\": %.6f%s}\n",
        kernel.c_str(), static_cast<unsigned long long>(g.n), static_cast<unsigned long long>(g.arcs()), threads,
        t1 - t0, g_read_seconds, g_build_seconds, t2 - t1, t3 - t2, extra.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graph_baseline: error: %s\n", e.what());
    return 1;
  }
}
