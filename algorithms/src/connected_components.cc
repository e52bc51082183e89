// Weakly connected components: a delta iteration over label blocks. See algorithms.h.
//
// Solution set: one entry per partition, its vertices' labels (dense index keyed by partition).
// Workset: offer blocks, one per destination partition per superstep: (local vertex, label)
// pairs, already combined (the smallest offer per vertex). Each superstep, the partition's
// solution-set co_group lowers labels that received a smaller offer and emits the vertices that
// changed; expanding them over the (symmetrised) adjacency makes the next offers. Vertices that
// did not change cost nothing.
#include <algorithm>
#include <limits>
#include <memory>
#include <span>

#include "gyre/algorithms/algorithms.h"
#include "gyre/core/error.h"
#include "gyre/iterations.h"

namespace gyre::graph {
namespace {

constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();

struct Offer {
  std::uint32_t vertex;  // local in the destination partition
  std::uint32_t pad;
  std::uint64_t label;
};

// A partition's labels (original ids). The co_group of its partition updates them in place.
struct Labels {
  std::uint64_t partition = 0;
  std::shared_ptr<std::vector<std::uint64_t>> labels;
};

struct Offers {
  std::uint64_t partition = 0;  // destination
  std::shared_ptr<const std::vector<Offer>> items;
};

// What a superstep changed in one partition (stays in its partition: no codec needed).
struct Changed {
  std::uint64_t partition = 0;
  std::shared_ptr<std::vector<std::uint64_t>> labels;
  std::shared_ptr<const std::vector<std::uint32_t>> vertices;
};

// Offers from the changed vertices of one partition to their neighbours, combined per
// destination vertex in dense arrays kept across supersteps (reset through the touched list).
class Expander {
 public:
  explicit Expander(const Graph* g) : g_(g) {}
  void operator()(int partition, const std::vector<std::uint64_t>& labels, std::span<const std::uint32_t> changed,
                  Emit<Offers>& emit) {
    const int parts = g_->partitions();
    if (best_.empty()) {
      best_.resize(static_cast<std::size_t>(parts));
      touched_.resize(static_cast<std::size_t>(parts));
      for (int q = 0; q < parts; ++q) {
        const auto n = g_->first[static_cast<std::size_t>(q) + 1] - g_->first[static_cast<std::size_t>(q)];
        best_[static_cast<std::size_t>(q)].assign(n, kNone);
      }
    }
    const Partition* part = g_->part(partition);
    const auto& first = g_->first;
    for (const std::uint32_t v : changed) {
      const std::uint64_t label = labels[v];
      for (std::uint64_t e = part->in_offsets[v]; e < part->in_offsets[v + 1]; ++e) {
        const std::uint64_t u = part->in_sources[e];
        const auto q = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), u) - first.begin() - 1);
        const auto local = static_cast<std::uint32_t>(u - first[q]);
        if (static_cast<int>(q) == partition && labels[local] <= label) continue;  // no news for it
        std::uint64_t& b = best_[q][local];
        if (b == kNone) touched_[q].push_back(local);
        if (label < b) b = label;
      }
    }
    for (std::size_t q = 0; q < best_.size(); ++q) {
      if (touched_[q].empty()) continue;
      auto items = std::make_shared<std::vector<Offer>>();
      items->reserve(touched_[q].size());
      for (const std::uint32_t local : touched_[q]) {
        items->push_back(Offer{local, 0, best_[q][local]});
        best_[q][local] = kNone;
      }
      touched_[q].clear();
      emit(Offers{q, std::move(items)});
    }
  }

 private:
  const Graph* g_;
  std::vector<std::vector<std::uint64_t>> best_;
  std::vector<std::vector<std::uint32_t>> touched_;
};

}  // namespace
}  // namespace gyre::graph

template <>
struct gyre::Codec<gyre::graph::Labels> {
  static void encode(const gyre::graph::Labels& b, std::string& out) {
    Codec<std::uint64_t>::encode(b.partition, out);
    Codec<std::vector<std::uint64_t>>::encode(*b.labels, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::Labels& b) {
    p = Codec<std::uint64_t>::decode(p, end, b.partition);
    b.labels = std::make_shared<std::vector<std::uint64_t>>();
    return Codec<std::vector<std::uint64_t>>::decode(p, end, *b.labels);
  }
};

template <>
struct gyre::Codec<gyre::graph::Offers> {
  static void encode(const gyre::graph::Offers& b, std::string& out) {
    Codec<std::uint64_t>::encode(b.partition, out);
    Codec<std::vector<gyre::graph::Offer>>::encode(*b.items, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::Offers& b) {
    p = Codec<std::uint64_t>::decode(p, end, b.partition);
    auto items = std::make_shared<std::vector<gyre::graph::Offer>>();
    p = Codec<std::vector<gyre::graph::Offer>>::decode(p, end, *items);
    b.items = std::move(items);
    return p;
  }
};

namespace gyre::graph {

Result connected_components(const Graph& g, const JobConfig& config, std::shared_ptr<detail::Transport> transport,
                            JobResult* metrics, std::function<void(const SuperstepMetrics&)> on_superstep) {
  JobConfig c = config;
  c.parallelism = g.partitions();
  Environment env(c, std::move(transport));
  const Graph* gp = &g;
  const auto parts = static_cast<std::uint64_t>(g.partitions());

  // Start: every vertex labelled with its own id, and offering it to all its neighbours.
  auto initial = env.generate(parts, [gp](std::uint64_t p) {
    const Partition* part = gp->part(static_cast<int>(p));
    return Labels{p, std::make_shared<std::vector<std::uint64_t>>(part->ids)};
  });
  // (Each partition gets its own copy of the function, so its own Expander state.)
  auto first_offers = initial.flat_map<Offers>([ex = Expander(gp)](const Labels& l, Emit<Offers>& emit) mutable {
    std::vector<std::uint32_t> all(l.labels->size());
    for (std::size_t v = 0; v < all.size(); ++v) all[v] = static_cast<std::uint32_t>(v);
    ex(static_cast<int>(l.partition), *l.labels, all, emit);
  });
  auto by_partition = [](const Labels& l) { return l.partition; };
  auto result = iterate_delta<SolutionSetIndex::kDense>(
      initial, first_offers, by_partition, std::numeric_limits<int>::max(),
      [&](auto& solution, Stream<Offers> offers, LoopContext& loop) {
        auto changed = solution.template co_group<Changed>(
            offers, [](const Offers& o) { return o.partition; },
            [](const std::uint64_t& p, std::span<const Offers> group, const Labels* cur, Emit<Changed>& emit) {
              std::vector<std::uint64_t>& labels = *cur->labels;
              auto vs = std::make_shared<std::vector<std::uint32_t>>();
              for (const Offers& o : group)
                for (const Offer& x : *o.items)
                  if (x.label < labels[x.vertex]) {
                    labels[x.vertex] = x.label;
                    vs->push_back(x.vertex);
                  }
              if (vs->empty()) return;
              std::sort(vs->begin(), vs->end());
              vs->erase(std::unique(vs->begin(), vs->end()), vs->end());
              emit(Changed{p, cur->labels, std::move(vs)});
            });
        changed.name("cc: lower labels");
        // Vertices whose label changed in each superstep (in the metrics; the workset size
        // counts offer blocks).
        loop.sum("active vertices", changed.map([](const Changed& ch) { return static_cast<double>(ch.vertices->size()); }));
        auto delta = changed.map([](const Changed& ch) { return Labels{ch.partition, ch.labels}; });
        auto next = changed.template flat_map<Offers>([ex = Expander(gp)](const Changed& ch, Emit<Offers>& emit) mutable {
          ex(static_cast<int>(ch.partition), *ch.labels, *ch.vertices, emit);
        });
        next.name("cc: offer to neighbours");
        return DeltaStep<Labels, Offers>{delta, next};
      },
      [&] {
        IterationOptions io("connected components");
        io.on_superstep = std::move(on_superstep);
        return io;
      }());
  auto out = result
                 .flat_map<std::pair<std::uint64_t, double>>(
                     [gp](const Labels& l, Emit<std::pair<std::uint64_t, double>>& emit) {
                       const Partition* part = gp->part(static_cast<int>(l.partition));
                       for (std::size_t v = 0; v < part->ids.size(); ++v)
                         emit({part->ids[v], static_cast<double>((*l.labels)[v])});
                     })
                 .collect(1);
  JobResult r = env.run();
  if (metrics != nullptr) *metrics = std::move(r);
  Result res = out.values();
  std::sort(res.begin(), res.end());
  return res;
}

Result connected_components(const LoadOptions& input, const JobConfig& config,
                            std::shared_ptr<detail::Transport> transport, JobResult* metrics) {
  LoadOptions undirected = input;
  undirected.directed = false;  // weak connectivity: every edge both ways
  const auto g = load(undirected, config, transport);
  return connected_components(*g, config, std::move(transport), metrics);
}

Result connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                  std::shared_ptr<detail::Transport> transport, JobResult* metrics) {
  const auto g = load_edges(std::move(edges), false, config, transport);
  return connected_components(*g, config, std::move(transport), metrics);
}

}  // namespace gyre::graph
