// PageRank: a bulk iteration over rank blocks. See algorithms.h.
#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <bit>
#include <functional>
#include <memory>
#include <cmath>

#include "gyre/algorithms/algorithms.h"
#include "gyre/core/error.h"
#include "gyre/iterations.h"

namespace gyre::graph {
namespace {

// One partition's ranks (or contributions) plus trailing values: the block's L1 change (ranks)
// or its dangling mass (contributions, two doubles). The values are shared, not copied, as the
// block moves between operators in one process; across ranks the codec sends them as bytes.
struct Block {
  std::uint64_t partition = 0;
  std::shared_ptr<const std::vector<double>> values;
  const std::vector<double>& v() const { return *values; }
};

// The dangling mass is summed exactly, in fixed point (2^-100 units), so the total does not
// depend on how many partitions added it up or in which order: results are identical at any
// number of partitions and ranks.
constexpr double kFixedScale = 1267650600228229401496703205376.0;  // 2^100
__extension__ typedef __int128 Fixed;            // NOLINT(modernize-use-using)
__extension__ typedef unsigned __int128 UFixed;  // NOLINT(modernize-use-using)
Fixed to_fixed(double v) { return static_cast<Fixed>(v * kFixedScale); }
// A Fixed travels as the bit patterns of two doubles (high and low 64 bits).
void put_fixed(Fixed f, double* out) {
  out[0] = std::bit_cast<double>(static_cast<std::uint64_t>(static_cast<UFixed>(f) >> 64));
  out[1] = std::bit_cast<double>(static_cast<std::uint64_t>(f));
}
Fixed get_fixed(const double* in) {
  const auto hi = static_cast<UFixed>(std::bit_cast<std::uint64_t>(in[0]));
  return static_cast<Fixed>((hi << 64) | std::bit_cast<std::uint64_t>(in[1]));
}

// A vector of n doubles: `spare` itself if nobody else holds it any more (no allocation, no page
// faults: large allocations come straight from mmap and would be faulted in every superstep),
// else a new one.
std::shared_ptr<std::vector<double>> recycle(std::shared_ptr<std::vector<double>>& spare, std::size_t n) {
  if (spare && spare.use_count() == 1) {
    spare->resize(n);
    return spare;
  }
  return std::make_shared<std::vector<double>>(n);
}

// Input 0: every partition's contributions (broadcast); input 1: this partition's ranks. At the
// end of a superstep: pulls over the in-edge CSR and emits the new ranks.
class PullOp final : public detail::NodeRuntime {
 public:
  PullOp(const detail::OpContext& c, const Graph* g, double damping, detail::Input<Block>* out)
      : g_(g), part_(g->part(c.partition)), p_(c.partition), damping_(damping), out_(out), contrib_port_(this),
        rank_port_(this) {
    contrib_.resize(g_->vertices);
  }
  detail::PortBase* port(int i) override { return i == 0 ? static_cast<detail::PortBase*>(&contrib_port_) : &rank_port_; }

  void on_contrib(std::span<const Block> in) {
    records_in += in.size();
    for (const Block& b : in) {
      const auto q = static_cast<std::size_t>(b.partition);
      const auto& v = b.v();
      std::copy(v.begin(), v.end() - 2, contrib_.begin() + static_cast<std::ptrdiff_t>(g_->first[q]));
      dangling_ += get_fixed(v.data() + v.size() - 2);
    }
  }
  void on_rank(std::span<const Block> in) {
    records_in += in.size();
    for (const Block& b : in) old_ = b.values;
  }
  void on_mark() {
    if (++marks_ < 2) return;
    marks_ = 0;
    const std::size_t n = part_->ids.size();
    const double nv = static_cast<double>(g_->vertices);
    const double dangling = static_cast<double>(dangling_) / kFixedScale;
    const double base = (1.0 - damping_) / nv + damping_ * dangling / nv;
    auto values = recycle(spare_, n + 1);
    const std::uint64_t* off = part_->in_offsets.data();
    const std::uint32_t* src = part_->in_sources.data();
    const double* c = contrib_.data();
    double* out = values->data();
    const double* old = old_->data();
    const double d = damping_;
    // In-degrees are skewed, so partitions are not equal work: the pull is split further, and
    // slots that finished their own partition steal from this one (oneTBB, same arena).
    const double l1 = tbb::parallel_reduce(
        tbb::blocked_range<std::size_t>(0, n, 2048), 0.0,
        [&](const tbb::blocked_range<std::size_t>& r, double acc) {
          for (std::size_t v = r.begin(); v < r.end(); ++v) {
            double sum = 0;
            for (std::uint64_t e = off[v]; e < off[v + 1]; ++e) sum += c[src[e]];
            const double x = base + d * sum;
            acc += std::abs(x - old[v]);
            out[v] = x;
          }
          return acc;
        },
        std::plus<>());
    (*values)[n] = l1;
    spare_ = values;  // reused once every other holder let go (two supersteps later)
    const Block next{static_cast<std::uint64_t>(p_), std::move(values)};
    old_.reset();
    dangling_ = 0;
    records_out += 1;
    out_->push(std::span<const Block>(&next, 1));
    out_->superstep_end();
  }
  void on_end() {
    if (++ended_ == 2) out_->end();
  }

 private:
  const Graph* g_;
  const Partition* part_;
  int p_;
  double damping_;
  detail::Input<Block>* out_;
  std::vector<double> contrib_;  // all vertices, by dense id
  std::shared_ptr<const std::vector<double>> old_;
  std::shared_ptr<std::vector<double>> spare_;
  Fixed dangling_ = 0;
  int marks_ = 0;
  int ended_ = 0;
  detail::MemberPort<Block, PullOp, &PullOp::on_contrib, &PullOp::on_end, &PullOp::on_mark> contrib_port_;
  detail::MemberPort<Block, PullOp, &PullOp::on_rank, &PullOp::on_end, &PullOp::on_mark> rank_port_;
};

}  // namespace
}  // namespace gyre::graph

template <>
struct gyre::Codec<gyre::graph::Block> {
  static void encode(const gyre::graph::Block& b, std::string& out) {
    Codec<std::uint64_t>::encode(b.partition, out);
    Codec<std::vector<double>>::encode(*b.values, out);
  }
  static const char* decode(const char* p, const char* end, gyre::graph::Block& b) {
    p = Codec<std::uint64_t>::decode(p, end, b.partition);
    auto v = std::make_shared<std::vector<double>>();
    p = Codec<std::vector<double>>::decode(p, end, *v);
    b.values = std::move(v);
    return p;
  }
};

namespace gyre::graph {

Result pagerank(const Graph& g, const PageRankOptions& opts, const JobConfig& config,
                std::shared_ptr<detail::Transport> transport, JobResult* metrics) {
  if (!(opts.damping >= 0 && opts.damping <= 1)) throw PlanError("damping must be in [0, 1]");
  if (opts.iterations < 0) throw PlanError("the number of iterations must not be negative");
  JobConfig c = config;
  c.parallelism = g.partitions();
  Environment env(c, std::move(transport));
  const Graph* gp = &g;
  const double n = static_cast<double>(g.vertices);

  // Superstep 0: 1/N everywhere (the trailing value, the L1 change, starts at 0).
  auto initial = env.generate(static_cast<std::uint64_t>(g.partitions()), [gp, n](std::uint64_t p) {
    const std::size_t size = gp->part(static_cast<int>(p))->ids.size();
    auto v = std::make_shared<std::vector<double>>(size + 1, 1.0 / n);
    v->back() = 0;
    return Block{p, std::move(v)};
  });
  const double damping = opts.damping;
  const double tolerance = opts.tolerance;
  auto ranks = iterate(initial, opts.iterations, [&](Stream<Block> r, LoopContext& loop) {
    auto contrib = r.map([gp, spare = std::shared_ptr<std::vector<double>>()](const Block& b) mutable {
                      const Partition* part = gp->part(static_cast<int>(b.partition));
                      const std::size_t size = part->ids.size();
                      auto out = recycle(spare, size + 2);
                      spare = out;
                      const double* rank = b.v().data();
                      double* cs = out->data();
                      Fixed dangling = 0;
                      for (std::size_t v = 0; v < size; ++v) {
                        const std::uint32_t d = part->out_degree[v];
                        if (d == 0) dangling += to_fixed(rank[v]);
                        cs[v] = d == 0 ? 0.0 : rank[v] / d;
                      }
                      put_fixed(dangling, cs + size);
                      return Block{b.partition, std::move(out)};
                    }).name("pagerank: contributions");
    detail::NodeSpec pull;
    pull.kind = "pagerank: pull over in-edges";
    pull.name = pull.kind;
    pull.parallelism = gp->partitions();
    pull.bounded = true;
    pull.num_ports = 2;
    pull.make = [gp, damping](const detail::OpContext& oc, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
      return std::make_unique<PullOp>(oc, gp, damping, static_cast<detail::Input<Block>*>(out));
    };
    detail::set_output_type<Block>(pull);
    const int pull_id = env.add_node(std::move(pull));
    env.add_edge({contrib.node(), pull_id, 0, Partitioning::kBroadcast, false, {}, false});
    env.add_edge({r.node(), pull_id, 1, Partitioning::kForward, false, {}, false});
    Stream<Block> next(&env, pull_id);
    // The L1 change of each superstep: in the metrics as "residual", and the early stop.
    auto l1 = loop.sum("residual", next.map([](const Block& b) { return b.v().back(); }));
    if (tolerance > 0) loop.converge_when([l1, tolerance] { return l1.value() < tolerance; });
    return next;
  }, [&] {
    IterationOptions io("pagerank");
    io.on_superstep = opts.on_superstep;
    return io;
  }());
  auto out = ranks.flat_map<std::pair<std::uint64_t, double>>(
                       [gp](const Block& b, Emit<std::pair<std::uint64_t, double>>& emit) {
                         const Partition* part = gp->part(static_cast<int>(b.partition));
                         for (std::size_t v = 0; v < part->ids.size(); ++v) emit({part->ids[v], b.v()[v]});
                       })
                 .collect(1);
  JobResult r = env.run();
  if (metrics != nullptr) *metrics = std::move(r);
  Result result = out.values();
  std::sort(result.begin(), result.end());
  return result;
}

}  // namespace gyre::graph
