// Weakly connected components. See algorithms.h.
//
// The kernel is union-find (gyre/algorithms/union_find.h), Afforest-style, in three stages of one
// gyre job:
//
//  1. "pick the hub": every partition offers its vertex of largest degree; every partition gets
//     all offers (broadcast) and the largest wins (ties: the smallest dense id). Tiny.
//  2. "union-find within the rank": one task per rank (the rank's first partition) builds the
//     rank's forest over all N dense ids from the edges of the rank's vertices, with oneTBB
//     threads hooking concurrently (lock-free): first every vertex's first two neighbours
//     (sampling), then the most frequent root c among 1024 sampled vertices is taken for the giant
//     component, and the remaining edges are linked, except those of a vertex already in it: an
//     edge between two vertices of the rank is skipped by a vertex whose root is c (the other end
//     links it if it is not in c), an edge to another rank's vertex by a vertex whose root is the
//     hub's root (every rank uses the same hub, so an edge skipped at both ends joins two
//     vertices each joined to the hub by linked edges). The rank then sends its forest as
//     (vertex, root) pairs, and per root the smallest original id of its own vertices there.
//  3. "merge across ranks": every rank gets every summary (broadcast), unites the other ranks'
//     pairs into its forest, and labels its vertices: the smallest original id over the roots
//     merged into theirs. With one rank the summary is empty and this is only the labelling.
//
// Roots are the smallest dense ids of their sets (union_find.h), and the label is a minimum of
// original ids, so the result is the same for any number of partitions, ranks and threads.
//
// With checkpoints (RecoveryOptions::checkpoint) the older delta vertex program runs instead
// (min-label propagation, a loop with supersteps to checkpoint and resume); the job above has no
// loop, and a failure reruns it whole (RecoveryOptions::max_restarts).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <unordered_map>

#include "gyre/algorithms/algorithms.h"
#include "gyre/algorithms/union_find.h"

namespace gyre::graph {
namespace {

// ------------------------------------------------------------------ min-label propagation

struct ComponentsProgram {
  using Value = std::uint64_t;    // the label: smallest id seen so far
  using Message = std::uint64_t;  // a label offered to a neighbour; the smallest offer wins

  std::uint64_t init(const VertexInfo& v) const { return v.id; }
  std::uint64_t message(const std::uint64_t& label, const VertexInfo&) const { return label; }
  std::uint64_t identity() const { return std::numeric_limits<std::uint64_t>::max(); }
  void combine(std::uint64_t& best, const std::uint64_t& m) const { best = std::min(best, m); }
  bool apply(std::uint64_t& label, const std::uint64_t& offer, const VertexInfo&, const StepInfo&) const {
    if (offer >= label) return false;
    label = offer;
    return true;
  }
};

VertexOptions options() {
  VertexOptions vo;
  vo.name = "connected components";
  vo.max_supersteps = std::numeric_limits<int>::max();
  return vo;
}

// ------------------------------------------------------------------ union-find

using vp_detail::Block;
using Words = Block<std::uint64_t>;
using Summary = Block<std::uint32_t>;
using Index = UnionFind::Index;

constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kSampled = 2;    // neighbours per vertex linked before the giant is picked
constexpr int kGiantSamples = 1024;      // vertices whose roots vote for the giant component
constexpr std::size_t kGrain = 256;      // vertices per oneTBB task (degrees are skewed)

// What the partitions of one rank share (one per process: every rank builds its own job).
struct RankForest {
  UnionFind uf;                     // over all N dense ids: the rank's edges, then everyone's
  std::vector<std::uint64_t> mins;  // per root: smallest original id of the rank's vertices in its set
  std::vector<std::uint64_t> own;   // this rank's (root, smallest id) pairs, flattened
};

// The partitions this rank holds (p % ranks == rank).
std::vector<const Partition*> local_parts(const Graph* g, int ranks, int rank) {
  std::vector<const Partition*> out;
  for (int p = rank; p < g->partitions(); p += ranks) out.push_back(g->part(p));
  return out;
}
std::vector<int> local_partition_numbers(const Graph* g, int ranks, int rank) {
  std::vector<int> out;
  for (int p = rank; p < g->partitions(); p += ranks) out.push_back(p);
  return out;
}

template <class F>
void for_vertices(const Partition& part, F f) {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, part.ids.size(), kGrain),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i < r.end(); ++i) f(i);
                    });
}

// Stage 2 on one rank: the rank's forest and its summary (see the top of the file).
Summary local_forest(const Graph* g, int ranks, int rank, std::uint64_t hub, RankForest& f) {
  const std::uint64_t n = g->vertices;
  const auto parts = local_parts(g, ranks, rank);
  f.uf = UnionFind(n);
  UnionFind& uf = f.uf;

  // Sampling: each vertex's first neighbours.
  for (std::uint64_t round = 0; round < kSampled; ++round) {
    for (const Partition* part : parts) {
      const std::uint64_t* off = part->in_offsets.data();
      const std::uint32_t* src = part->in_sources.data();
      const auto first = static_cast<Index>(part->first);
      for_vertices(*part, [&](std::size_t i) {
        if (off[i + 1] - off[i] > round) uf.unite(first + static_cast<Index>(i), src[off[i] + round]);
      });
    }
    uf.compress();
  }

  // The giant component: the most frequent root among sampled vertices of the rank.
  std::uint64_t total = 0;
  for (const Partition* part : parts) total += part->ids.size();
  Index giant = 0;
  bool have_giant = false;
  if (total > 0) {
    std::unordered_map<Index, int> votes;
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int s = 0; s < kGiantSamples; ++s) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      std::uint64_t k = (state >> 33) % total;
      for (const Partition* part : parts) {
        if (k < part->ids.size()) {
          ++votes[uf.parent(static_cast<Index>(part->first + k))];
          break;
        }
        k -= part->ids.size();
      }
    }
    int best = -1;
    for (const auto& [root, count] : votes)
      if (count > best || (count == best && root < giant)) best = count, giant = root, have_giant = true;
  }
  // For edges to other ranks' vertices: the hub's root (the same vertex on every rank).
  const bool have_hub = ranks > 1 && hub < n;
  const Index hub_root = have_hub ? uf.find(static_cast<Index>(hub)) : giant;

  // The remaining edges.
  const std::vector<std::uint64_t>& bounds = g->first;
  auto here = [&](Index v) {  // is dense id v one of this rank's vertices?
    const auto p = std::upper_bound(bounds.begin(), bounds.end(), std::uint64_t{v}) - bounds.begin() - 1;
    return p % ranks == rank;
  };
  for (const Partition* part : parts) {
    const std::uint64_t* off = part->in_offsets.data();
    const std::uint32_t* src = part->in_sources.data();
    const auto first = static_cast<Index>(part->first);
    for_vertices(*part, [&](std::size_t i) {
      const Index u = first + static_cast<Index>(i);
      const Index root = uf.parent(u);
      const bool skip_here = have_giant && root == giant;          // edges within the rank
      const bool skip_away = ranks == 1 ? skip_here : have_hub && root == hub_root;  // edges to other ranks
      if (skip_here && skip_away) return;
      for (std::uint64_t e = off[i] + kSampled; e < off[i + 1]; ++e) {
        const Index v = src[e];
        if (skip_here != skip_away && (here(v) ? skip_here : skip_away)) continue;
        uf.unite(u, v);
      }
    });
  }
  uf.compress();

  // Per root: the smallest original id of the rank's vertices in its set. Ids ascend within a
  // partition, so in each task the first vertex of a set writes and the others only read.
  f.mins.assign(n, kNone);
  for (const Partition* part : parts) {
    const auto first = static_cast<Index>(part->first);
    for_vertices(*part, [&](std::size_t i) {
      std::atomic_ref<std::uint64_t> m(f.mins[uf.parent(first + static_cast<Index>(i))]);
      const std::uint64_t id = part->ids[i];
      std::uint64_t cur = m.load(std::memory_order_relaxed);
      while (id < cur && !m.compare_exchange_weak(cur, id, std::memory_order_relaxed)) {
      }
    });
  }
  f.own.clear();
  for (std::uint64_t x = 0; x < n; ++x)
    if (f.mins[x] != kNone) f.own.insert(f.own.end(), {x, f.mins[x]});

  // The summary: [N, every vertex's root (N words), (root, smallest id: low, high words)...]. One
  // rank keeps it all to itself.
  auto words = std::make_shared<std::vector<std::uint32_t>>();
  if (ranks == 1) {
    words->push_back(0);
  } else {
    const auto parents = uf.parents();
    words->resize(1 + n + f.own.size() / 2 * 3);
    (*words)[0] = static_cast<std::uint32_t>(n);
    std::copy(parents.begin(), parents.end(), words->begin() + 1);
    std::uint32_t* e = words->data() + 1 + n;
    for (std::size_t i = 0; i < f.own.size(); i += 2, e += 3) {
      e[0] = static_cast<std::uint32_t>(f.own[i]);
      e[1] = static_cast<std::uint32_t>(f.own[i + 1]);
      e[2] = static_cast<std::uint32_t>(f.own[i + 1] >> 32);
    }
  }
  return Summary{static_cast<std::uint64_t>(rank), {0, 0}, std::move(words)};
}

// Stage 3 on one rank: the other ranks' forests merged into this one's, then the labels.
void merge_and_label(const Graph* g, int ranks, int rank, const std::vector<Summary>& summaries, RankForest& f,
                     Output<Words>& out) {
  UnionFind& uf = f.uf;
  bool merged = false;
  for (const Summary& s : summaries) {
    if (static_cast<int>(s.partition) == rank) continue;
    const std::uint32_t* w = s.values->data();
    const std::size_t n = w[0];
    if (n == 0) continue;
    if (n != uf.size() || s.values->size() < 1 + n || (s.values->size() - 1 - n) % 3 != 0)
      throw Error("connected components: a malformed forest from rank " + std::to_string(s.partition));
    merged = true;
    // x ~ other(x) for every x: most pairs are (the giant here, the giant there), so a pair equal
    // to the previous one is skipped (x's parent here stands for x: it is in x's set).
    const std::uint32_t* other = w + 1;
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1 << 14), [&](const tbb::blocked_range<std::size_t>& r) {
      Index last_here = 0, last_there = 0;
      bool have_last = false;
      for (std::size_t x = r.begin(); x < r.end(); ++x) {
        const Index there = other[x];
        if (there == x) continue;
        const Index here = uf.parent(static_cast<Index>(x));
        if (have_last && here == last_here && there == last_there) continue;
        uf.unite(here, there);
        last_here = here, last_there = there, have_last = true;
      }
    });
  }
  if (merged) {
    auto take = [&](Index root, std::uint64_t id) {
      std::uint64_t& m = f.mins[uf.find(root)];
      m = std::min(m, id);
    };
    for (std::size_t i = 0; i < f.own.size(); i += 2) take(static_cast<Index>(f.own[i]), f.own[i + 1]);
    for (const Summary& s : summaries) {
      if (static_cast<int>(s.partition) == rank) continue;
      const std::vector<std::uint32_t>& w = *s.values;
      for (std::size_t i = 1 + w[0]; i + 2 < w.size(); i += 3) take(w[i], std::uint64_t{w[i + 2]} << 32 | w[i + 1]);
    }
  }
  for (const int p : local_partition_numbers(g, ranks, rank)) {
    const Partition* part = g->part(p);
    auto labels = std::make_shared<std::vector<std::uint64_t>>(part->ids.size());
    const auto first = static_cast<Index>(part->first);
    std::uint64_t* l = labels->data();
    for_vertices(*part, [&](std::size_t i) { l[i] = f.mins[uf.find(first + static_cast<Index>(i))]; });
    out.emit(Words{static_cast<std::uint64_t>(p), {0, 0}, std::move(labels)});
  }
  f = RankForest();  // the forest's memory back before the labels are gathered
}

// Stage 1's offer of a partition: stats = {largest degree (-1: no vertex), its dense id}.
Words hub_offer(const Graph* g, std::uint64_t p) {
  const Partition& part = *g->part(static_cast<int>(p));
  Words w{p, {-1, 0}, std::make_shared<std::vector<std::uint64_t>>()};
  std::uint64_t best = 0;
  for (std::size_t i = 0; i < part.ids.size(); ++i) {
    const std::uint64_t d = part.in_offsets[i + 1] - part.in_offsets[i];
    if (w.stats[0] < 0 || d > best) {
      best = d;
      w.stats[0] = static_cast<double>(d);
      w.stats[1] = static_cast<double>(part.first + i);
    }
  }
  return w;
}

// Stage 2: takes every partition's offer; the rank's first partition then builds the forest.
class LocalForestOp final : public OneInputOperator<Words, Summary> {
 public:
  LocalForestOp(const Graph* g, int ranks, std::shared_ptr<RankForest> forest)
      : g_(g), ranks_(ranks), forest_(std::move(forest)) {}
  void open(OperatorContext& ctx) override {
    partition_ = ctx.partition();
    rank_ = ctx.rank();
  }
  void process(std::span<const Words> in, Output<Summary>&) override {
    for (const Words& w : in) {
      const auto hub = static_cast<std::uint64_t>(w.stats[1]);
      if (w.stats[0] > degree_ || (w.stats[0] == degree_ && w.stats[0] >= 0 && hub < hub_)) {
        degree_ = w.stats[0];
        hub_ = hub;
      }
    }
  }
  void on_end(Output<Summary>& out) override {
    if (partition_ != rank_) return;  // not the rank's first partition
    out.emit(local_forest(g_, ranks_, rank_, degree_ < 0 ? kNone : hub_, *forest_));
  }

 private:
  const Graph* g_;
  int ranks_;
  std::shared_ptr<RankForest> forest_;
  int partition_ = 0;
  int rank_ = 0;
  double degree_ = -1;
  std::uint64_t hub_ = kNone;
};

// Stage 3: takes every rank's summary; the rank's first partition merges and labels.
class MergeOp final : public OneInputOperator<Summary, Words> {
 public:
  MergeOp(const Graph* g, int ranks, std::shared_ptr<RankForest> forest)
      : g_(g), ranks_(ranks), forest_(std::move(forest)) {}
  void open(OperatorContext& ctx) override {
    partition_ = ctx.partition();
    rank_ = ctx.rank();
  }
  void process(std::span<const Summary> in, Output<Words>&) override {
    if (partition_ == rank_) summaries_.insert(summaries_.end(), in.begin(), in.end());
  }
  void on_end(Output<Words>& out) override {
    if (partition_ != rank_) return;
    merge_and_label(g_, ranks_, rank_, summaries_, *forest_, out);
    summaries_.clear();
  }

 private:
  const Graph* g_;
  int ranks_;
  std::shared_ptr<RankForest> forest_;
  int partition_ = 0;
  int rank_ = 0;
  std::vector<Summary> summaries_;
};

Components union_find_components(const Graph& g, const JobConfig& config, Cluster cluster, JobResult* metrics,
                                 int max_restarts, std::string* plan) {
  if (g.directed) throw PlanError("connected components: the graph must be loaded undirected");
  Components out;
  JobResult r = run_with_recovery(plan != nullptr ? 0 : max_restarts, [&](bool) {
    Environment env(vp_detail::graph_config(g, config), cluster);
    const Graph* gp = &g;
    const int ranks = env.num_ranks();
    auto forest = std::make_shared<RankForest>();
    auto offers = env.generate(static_cast<std::uint64_t>(g.partitions()), [gp](std::uint64_t p) { return hub_offer(gp, p); });
    offers.name("connected components: offer the hub");
    auto summaries = offers.broadcast().process("connected components: union-find within the rank",
                                                LocalForestOp(gp, ranks, forest));
    auto labels = summaries.broadcast().process("connected components: merge across ranks, label",
                                                MergeOp(gp, ranks, forest));
    JobResult jr;
    out = vp_detail::collect_values(env, gp, labels, plan, &jr);
    return jr;
  });
  if (metrics != nullptr) *metrics = std::move(r);
  return out;
}

}  // namespace

Components connected_components(const Graph& g, const JobConfig& config, Cluster cluster,
                                JobResult* metrics, std::function<void(const SuperstepMetrics&)> on_superstep,
                                const RecoveryOptions& recovery) {
  // Both paths need the neighbours both ways (run_delta would follow a directed graph's out-edges).
  if (g.directed) throw PlanError("connected components: the graph must be loaded undirected");
  if (!recovery.checkpoint.storage)
    return union_find_components(g, config, std::move(cluster), metrics, recovery.max_restarts, nullptr);
  VertexOptions vo = options();
  vo.on_superstep = std::move(on_superstep);
  vo.recovery = recovery;
  return run_delta(g, ComponentsProgram{}, vo, config, std::move(cluster), metrics);
}

std::string explain_connected_components(const JobConfig& config, Cluster cluster) {
  Graph g(Environment(config, cluster).default_parallelism());
  g.directed = false;
  std::string plan;
  union_find_components(g, config, std::move(cluster), nullptr, 0, &plan);
  return plan;
}

Components connected_components(const LoadOptions& input, const JobConfig& config,
                                Cluster cluster, JobResult* metrics) {
  LoadOptions undirected = input;
  undirected.directed = false;  // weak connectivity: every edge both ways
  const auto g = load(undirected, config, cluster);
  return connected_components(*g, config, std::move(cluster), metrics);
}

Components connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                      Cluster cluster, JobResult* metrics) {
  const auto g = load_edges(std::move(edges), false, config, cluster);
  return connected_components(*g, config, std::move(cluster), metrics);
}

}  // namespace gyre::graph
