// Local clustering coefficient (Graphalytics LCC) in one job: every partition's neighbourhoods
// are broadcast once; each rank orients them by degree (u above v if (|N(u)|, u) > (|N(v)|, v)),
// finds every triangle once at its lowest corner (Chiba-Nishizeki / Schank-Wagner ordering) and
// credits each corner with the arcs between the other two; the sums go to the vertices' owners.
// See community.h.
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "gyre/algorithms/community.h"
#include "gyre/algorithms/neighbourhood.h"
#include "gyre/core/error.h"
#include "gyre/core/operator.h"

namespace gyre::graph::lcc_detail {

// One partition's rows: the entries of local vertex i are entries[offsets[i] .. offsets[i + 1]),
// each a dense id with kBoth set when the two vertices are joined both ways (undirected: always).
// First the vertices' whole neighbourhoods N(v), later only the neighbours that rank above them.
struct Rows {
  std::uint64_t partition = 0;
  std::shared_ptr<const std::vector<std::uint64_t>> offsets;
  std::shared_ptr<const std::vector<std::uint32_t>> entries;
};

// One rank's partial triangle weights for one partition's vertices.
struct Counts {
  std::uint64_t partition = 0;
  std::shared_ptr<const std::vector<std::uint64_t>> values;
};

}  // namespace gyre::graph::lcc_detail

template <>
struct gyre::RecordExtent<gyre::graph::lcc_detail::Rows> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::lcc_detail::Rows& a) {
    return a.entries ? a.entries->size() : 0;
  }
  static std::uint64_t bytes(const gyre::graph::lcc_detail::Rows& a) {
    return sizeof(a) + (a.offsets ? a.offsets->size() * sizeof(std::uint64_t) : 0) +
           records(a) * sizeof(std::uint32_t);
  }
};
template <>
struct gyre::RecordExtent<gyre::graph::lcc_detail::Counts> {
  static constexpr bool kPacked = true;
  static std::uint64_t records(const gyre::graph::lcc_detail::Counts& c) {
    return c.values ? c.values->size() : 0;
  }
  static std::uint64_t bytes(const gyre::graph::lcc_detail::Counts& c) {
    return sizeof(c) + records(c) * sizeof(std::uint64_t);
  }
};

template <>
struct gyre::Codec<gyre::graph::lcc_detail::Rows> {
  static void encode(const gyre::graph::lcc_detail::Rows& a, std::string& out) {
    Codec<std::uint64_t>::encode(a.partition, out);
    Codec<std::vector<std::uint64_t>>::encode(*a.offsets, out);
    Codec<std::vector<std::uint32_t>>::encode(*a.entries, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::lcc_detail::Rows& a) {
    p = Codec<std::uint64_t>::decode(p, end, a.partition);
    auto offsets = std::make_shared<std::vector<std::uint64_t>>();
    auto entries = std::make_shared<std::vector<std::uint32_t>>();
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, *offsets);
    p = Codec<std::vector<std::uint32_t>>::decode(p, end, *entries);
    a.offsets = std::move(offsets);
    a.entries = std::move(entries);
    return p;
  }
};
template <>
struct gyre::Codec<gyre::graph::lcc_detail::Counts> {
  static void encode(const gyre::graph::lcc_detail::Counts& c, std::string& out) {
    Codec<std::uint64_t>::encode(c.partition, out);
    Codec<std::vector<std::uint64_t>>::encode(*c.values, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::lcc_detail::Counts& c) {
    p = Codec<std::uint64_t>::decode(p, end, c.partition);
    auto values = std::make_shared<std::vector<std::uint64_t>>();
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, *values);
    c.values = std::move(values);
    return p;
  }
};

namespace gyre::graph {
namespace lcc_detail {

using Values = vp_detail::Block<double>;
constexpr std::uint32_t kBoth = 0x80000000u;
constexpr std::uint32_t kId = kBoth - 1;

// Partition p's neighbourhoods N(v): the in- and out-neighbours without v, each once.
Rows neighbourhoods(const Graph& g, std::uint64_t p) {
  const Partition& part = *g.part(static_cast<int>(p));
  const std::size_t n = part.ids.size();
  const std::uint64_t* in_off = part.in_offsets.data();
  const std::uint32_t* in_src = part.in_sources.data();
  const nb_detail::OutEdges oe =
      g.directed ? nb_detail::out_edges(part) : nb_detail::OutEdges{nullptr, nullptr};
  auto offsets = std::make_shared<std::vector<std::uint64_t>>(n + 1, 0);
  std::uint64_t* off = offsets->data();
  std::shared_ptr<std::vector<std::uint32_t>> entries;
  // The union of the two lists (a neighbour in both gets kBoth; undirected: every one), found
  // with a marker per dense id: its stamp and the entry's position in the row being built. (A
  // duplicate, listed with LoadOptions::keep_duplicates, counts once.)
  const bool undirected = oe.offsets == nullptr;
  tbb::enumerable_thread_specific<std::vector<std::uint64_t>> marks;
  const std::uint64_t vertices = g.vertices;
  auto each_union = [&](std::size_t i, std::uint64_t stamp, auto&& emit) {
    std::vector<std::uint64_t>& mark = marks.local();
    if (mark.size() != vertices) mark.assign(vertices, 0);
    const std::uint64_t self = part.first + i;
    std::uint32_t k = 0;
    for (std::uint64_t e = in_off[i]; e < in_off[i + 1]; ++e) {
      const std::uint32_t u = in_src[e];
      if (u == self || (mark[u] >> 32) == stamp) continue;  // (a listed duplicate: keep_duplicates)
      mark[u] = (stamp << 32) | k++;
      emit(u, undirected, ~std::uint32_t{0});
    }
    if (undirected) return;
    constexpr std::uint64_t kFromOut = std::uint64_t{1} << 31;
    for (std::uint64_t e = oe.offsets[i]; e < oe.offsets[i + 1]; ++e) {
      const std::uint32_t u = oe.targets[e];
      if (u == self) continue;
      if ((mark[u] >> 32) != stamp) {
        mark[u] = (stamp << 32) | kFromOut;
        emit(u, false, ~std::uint32_t{0});
      } else if ((mark[u] & kFromOut) == 0) {
        mark[u] |= kFromOut;  // both ways
        emit(u, true, static_cast<std::uint32_t>(mark[u] & (kFromOut - 1)));
      }
    }
  };
  // Pass 1: |N(v)|; pass 2: the entries (stamps 2v + 1 and 2v + 2 never repeat).
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, n, 1024), [&](const tbb::blocked_range<std::size_t>& r) {
        for (std::size_t i = r.begin(); i < r.end(); ++i) {
          std::uint64_t d = 0;
          each_union(i, 2 * (part.first + i) + 1, [&](std::uint32_t, bool, std::uint32_t at) {
            d += at == ~std::uint32_t{0} ? 1 : 0;
          });
          off[i + 1] = d;
        }
      });
  for (std::size_t i = 0; i < n; ++i) off[i + 1] += off[i];
  entries = std::make_shared<std::vector<std::uint32_t>>(off[n]);
  std::uint32_t* t = entries->data();
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1024),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i < r.end(); ++i) {
                        std::uint32_t* row = t + off[i];
                        std::uint32_t k = 0;
                        // at: the position of an entry seen before (now known both ways), or ~0 for
                        // a new one
                        each_union(i, 2 * (part.first + i) + 2,
                                   [&](std::uint32_t u, bool both, std::uint32_t at) {
                                     if (at != ~std::uint32_t{0})
                                       row[at] |= kBoth;
                                     else
                                       row[k++] = both ? u | kBoth : u;
                                   });
                      }
                    });
  return Rows{p, std::move(offsets), std::move(entries)};
}

// What the counters of one rank share: every partition's neighbourhoods (kept by the first
// counter that receives them), then every vertex's higher-ranked neighbours, per-thread markers
// and triangle weights.
struct Shared {
  Shared(const Graph& g, int local_instances)
      : whole(static_cast<std::size_t>(g.partitions())),
        upper(whole.size()),
        claimed(whole.size()),
        stored(whole.size()),
        orienting(whole.size()),
        oriented(whole.size()),
        degree(g.vertices),
        row(g.vertices),
        len(g.vertices),
        instances(local_instances) {}
  std::vector<Rows> whole;  // N(v) per partition
  std::vector<Rows> upper;  // N+(v): the neighbours u with (|N(u)|, u) > (|N(v)|, v)
  std::vector<std::atomic<bool>> claimed, stored, orienting, oriented;
  std::vector<std::uint32_t> degree;      // |N(v)| by dense id
  std::vector<const std::uint32_t*> row;  // N+(v) by dense id
  std::vector<std::uint32_t> len;
  struct Scratch {
    std::vector<std::uint32_t> mark;  // stamp | the kBoth bit of the entry a -> u (4 bytes: cache)
    std::vector<std::uint64_t> weight;  // arcs among N(v) found so far, by dense id
  };
  tbb::enumerable_thread_specific<Scratch> scratch;
  int instances;                  // counters on this rank
  std::atomic<int> finished = 0;  // counters done counting
  std::atomic<bool> failed = false;  // a counter threw while orienting: the others stop waiting
};

void wait_all(const Shared& s, const std::vector<std::atomic<bool>>& flags) {
  for (const auto& f : flags)
    while (!f.load(std::memory_order_acquire)) {
      if (s.failed.load(std::memory_order_acquire))
        throw Error("lcc: another partition's counter on this rank failed");
      std::this_thread::yield();
    }
}

// Orients partition q's neighbourhoods: keeps u in N(v) if (|N(u)|, u) > (|N(v)|, v).
void orient(const Graph& g, Shared& s, std::size_t q) {
  const Rows& w = s.whole[q];
  const std::size_t n = w.offsets->size() - 1;
  const std::uint64_t first = g.first[q];
  const std::uint64_t* off = w.offsets->data();
  const std::uint32_t* t = w.entries->data();
  const std::uint32_t* degree = s.degree.data();
  auto above = [&](std::uint64_t v, std::uint32_t u) {
    return degree[u] > degree[v] || (degree[u] == degree[v] && u > v);
  };
  auto offsets = std::make_shared<std::vector<std::uint64_t>>(n + 1, 0);
  std::uint64_t* o = offsets->data();
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t d = 0;
    for (std::uint64_t e = off[i]; e < off[i + 1]; ++e) d += above(first + i, t[e] & kId) ? 1 : 0;
    o[i + 1] = o[i] + d;
  }
  auto entries = std::make_shared<std::vector<std::uint32_t>>(o[n]);
  std::uint32_t* x = entries->data();
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t k = o[i];
    for (std::uint64_t e = off[i]; e < off[i + 1]; ++e)
      if (above(first + i, t[e] & kId)) x[k++] = t[e];
    s.row[first + i] = x + o[i];
    s.len[first + i] = static_cast<std::uint32_t>(o[i + 1] - o[i]);
  }
  s.upper[q] = Rows{q, std::move(offsets), std::move(entries)};
  s.whole[q] = Rows{};  // (the degrees are kept apart)
}

// Receives every partition's neighbourhoods (broadcast); at the end counts the triangles at its
// own vertices, each once, and credits all three corners with the arcs between the other two.
// The rank's last counter to finish sends every partition its sums.
class CountOp final : public OneInputOperator<Rows, Counts> {
 public:
  CountOp(const Graph* g, std::shared_ptr<Shared> shared) : g_(g), s_(std::move(shared)) {}
  void open(OperatorContext& ctx) override { p_ = ctx.partition(); }

  void process(std::span<const Rows> in, Output<Counts>&) override {
    Shared& s = *s_;
    for (const Rows& r : in) {
      const auto q = static_cast<std::size_t>(r.partition);
      if (s.claimed[q].exchange(true, std::memory_order_acq_rel)) continue;
      s.whole[q] = r;
      const std::uint64_t first = g_->first[q];
      const std::size_t n = r.offsets->size() - 1;
      for (std::size_t i = 0; i < n; ++i)
        s.degree[first + i] = static_cast<std::uint32_t>((*r.offsets)[i + 1] - (*r.offsets)[i]);
      s.stored[q].store(true, std::memory_order_release);
    }
  }

  void on_end(Output<Counts>& out) override {
    Shared& s = *s_;
    wait_all(s, s.stored);
    // Any counter orients any partition not taken yet: none waits for one that has not started.
    for (std::size_t q = 0; q < s.whole.size(); ++q)
      if (!s.orienting[q].exchange(true, std::memory_order_acq_rel)) {
        try {
          orient(*g_, s, q);  // allocates: may run out of memory
        } catch (...) {
          s.failed.store(true, std::memory_order_release);
          throw;
        }
        s.oriented[q].store(true, std::memory_order_release);
      }
    wait_all(s, s.oriented);
    count();
    if (s.finished.fetch_add(1, std::memory_order_acq_rel) + 1 == s.instances) send(out);
  }

 private:
  void count() {
    Shared& s = *s_;
    const Partition& part = *g_->part(p_);
    const std::size_t n = part.ids.size();
    const std::uint64_t vertices = g_->vertices;
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 64),
                      [&](const tbb::blocked_range<std::size_t>& r) {
                        Shared::Scratch& sc = s.scratch.local();
                        if (sc.mark.size() != vertices) {
                          sc.mark.assign(vertices, 0);
                          sc.weight.assign(vertices, 0);
                        }
                        std::uint32_t* mark = sc.mark.data();
                        std::uint64_t* weight = sc.weight.data();
                        for (std::size_t i = r.begin(); i < r.end(); ++i) {
                          const std::uint64_t a = part.first + i;
                          const auto stamp = static_cast<std::uint32_t>(a + 1);  // < 2^31
                          const std::uint32_t* ra = s.row[a];
                          const std::uint32_t la = s.len[a];
                          for (std::uint32_t k = 0; k < la; ++k)
                            mark[ra[k] & kId] = stamp | (ra[k] & kBoth);
                          std::uint64_t at_a = 0;
                          for (std::uint32_t k = 0; k < la; ++k) {
                            const std::uint32_t b = ra[k] & kId;
                            const std::uint64_t ab = 1 + (ra[k] >> 31);
                            const std::uint32_t* rb = s.row[b];
                            const std::uint32_t lb = s.len[b];
                            std::uint64_t at_b = 0;
                            for (std::uint32_t j = 0; j < lb; ++j) {
                              const std::uint32_t c = rb[j] & kId;
                              const std::uint32_t m = mark[c];
                              if ((m & kId) != stamp) continue;
                              at_a += 1 + (rb[j] >> 31);  // arcs between b and c
                              at_b += 1 + (m >> 31);      // between a and c
                              weight[c] += ab;            // between a and b
                            }
                            weight[b] += at_b;
                          }
                          weight[a] += at_a;
                        }
                      });
  }

  // Sums the threads' weights per partition, one block for each.
  void send(Output<Counts>& out) {
    Shared& s = *s_;
    for (std::size_t q = 0; q < s.whole.size(); ++q) {
      const std::uint64_t first = g_->first[q];
      const std::uint64_t n = g_->first[q + 1] - first;
      auto sum = std::make_shared<std::vector<std::uint64_t>>(n, 0);
      for (const Shared::Scratch& sc : s.scratch)
        if (!sc.weight.empty())
          for (std::uint64_t i = 0; i < n; ++i) (*sum)[i] += sc.weight[first + i];
      out.emit(Counts{q, std::move(sum)});
    }
  }

  const Graph* g_;
  std::shared_ptr<Shared> s_;
  int p_ = 0;
};

// Partition q's sums from every rank; at the end the coefficients of its vertices.
class DivideOp final : public OneInputOperator<Counts, Values> {
 public:
  DivideOp(const Graph* g, std::shared_ptr<Shared> shared) : g_(g), s_(std::move(shared)) {}
  void open(OperatorContext& ctx) override { p_ = ctx.partition(); }
  void process(std::span<const Counts> in, Output<Values>&) override {
    for (const Counts& c : in) {
      if (sum_.empty()) sum_.assign(c.values->size(), 0);
      for (std::size_t i = 0; i < sum_.size(); ++i) sum_[i] += (*c.values)[i];
    }
  }
  void on_end(Output<Values>& out) override {
    const Partition& part = *g_->part(p_);
    auto values = std::make_shared<std::vector<double>>(part.ids.size(), 0.0);
    for (std::size_t i = 0; i < values->size() && i < sum_.size(); ++i) {
      const double d = s_->degree[part.first + i];
      if (d >= 2) (*values)[i] = static_cast<double>(sum_[i]) / (d * (d - 1));
    }
    out.emit(Values{static_cast<std::uint64_t>(p_), {0, 0}, std::move(values)});
  }

 private:
  const Graph* g_;
  std::shared_ptr<Shared> s_;
  int p_ = 0;
  std::vector<std::uint64_t> sum_;
};

// Key q goes to partition q.
struct ToPartition {
  template <class K>
  static std::size_t of(const K& k, std::size_t n) {
    return static_cast<std::size_t>(static_cast<std::uint64_t>(k) % n);
  }
};

}  // namespace lcc_detail

Coefficients lcc(const Graph& g, const JobConfig& config, Cluster cluster, JobResult* metrics,
                 std::string* plan) {
  if (!nb_detail::has_out_edges(g))
    throw PlanError(
        "lcc: needs the out-edges of the directed graph (load it with LoadOptions::out_edges)");
  if (g.vertices >= (std::uint64_t{1} << 31)) throw PlanError("lcc: at most 2^31 - 1 vertices");
  Environment env(vp_detail::graph_config(g, config), std::move(cluster));
  const Graph* gp = &g;
  const int parts = g.partitions();
  const int ranks = env.num_ranks();
  const int local =
      parts / ranks + (env.rank() < parts % ranks ? 1 : 0);  // partition p is on rank p % ranks
  auto shared = std::make_shared<lcc_detail::Shared>(g, local);
  auto rows = env.generate(static_cast<std::uint64_t>(parts),
                           [gp](std::uint64_t p) { return lcc_detail::neighbourhoods(*gp, p); });
  rows.name("lcc: neighbourhoods of each partition");
  auto counts = rows.broadcast().process("lcc: count triangles", lcc_detail::CountOp(gp, shared));
  OperatorBuilder divide(env, "operator");
  divide.name("lcc: sum per vertex, divide");
  divide.input_by_key<lcc_detail::Counts, std::uint64_t (*)(const lcc_detail::Counts&),
                      lcc_detail::ToPartition>(
      counts, [](const lcc_detail::Counts& c) { return c.partition; });
  divide.one_input(lcc_detail::DivideOp(gp, shared));
  auto values = divide.stream<lcc_detail::Values>();
  return vp_detail::collect_values(env, gp, values, plan, metrics);
}

Coefficients lcc(const LoadOptions& input, const JobConfig& config, Cluster cluster,
                 JobResult* metrics) {
  LoadOptions in = input;
  in.out_edges = true;
  const auto g = load(in, config, cluster);
  return lcc(*g, config, std::move(cluster), metrics);
}

std::string explain_lcc(bool directed, const JobConfig& config, Cluster cluster) {
  Graph g(Environment(config, cluster).default_parallelism());
  g.directed = directed;
  g.has_out_edges = true;
  std::string plan;
  lcc(g, config, std::move(cluster), nullptr, &plan);
  return plan;
}

}  // namespace gyre::graph
