// Bulk iteration: k-means on random 2-D points with a vector aggregate. The points are a
// loop-invariant input (each partition keeps its share once). Every superstep, each partition
// assigns its points to the nearest centroid and adds them into one local vector (per centroid:
// sum x, sum y, count; and the squared distances); the loop sums those vectors over all
// partitions and ranks in a fixed order. The next superstep reads the sum as a broadcast value
// (the same on every rank) and derives the centroids from it: no point is joined with a
// centroid. Stops when the sum of squared distances stops changing, or after 50 supersteps.
//
//   kmeans [--points N] [--k K]        (alone, or under mpirun)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gyre/iterations.h"
#include "gyre/mpi/session.h"

struct Point { double x, y; };
struct Tick { int unused; };  // the partial solution: the loop's state is the vector aggregate

// Per centroid c: [3c] sum x, [3c + 1] sum y, [3c + 2] count; last: the sum of squared distances.
std::vector<Point> centroids_from(const std::vector<double>& sums, std::vector<Point> previous) {
  for (std::size_t c = 0; c < previous.size(); ++c)
    if (const double n = sums[3 * c + 2]; n > 0) previous[c] = {sums[3 * c] / n, sums[3 * c + 1] / n};
  return previous;  // a centroid without points stays where it was
}

// Keeps its partition's points (input 1, loop-invariant: they arrive once); at the end of every
// superstep (input 2: the tick) assigns them to the centroids derived from the last sums.
class Assign final : public gyre::TwoInputOperator<Point, Tick, gyre::VectorEntry> {
 public:
  Assign(std::vector<Point> initial, std::shared_ptr<std::optional<gyre::VectorAggregator>> sums)
      : centroids_(std::move(initial)), sums_(std::move(sums)) {}
  void process1(std::span<const Point> in, gyre::Output<gyre::VectorEntry>&) override {
    points_.insert(points_.end(), in.begin(), in.end());
  }
  void process2(std::span<const Tick>, gyre::Output<gyre::VectorEntry>&) override {}
  void on_superstep_end(gyre::Output<gyre::VectorEntry>& out) override {
    if (++superstep_ > 1) centroids_ = centroids_from((*sums_)->value(), centroids_);
    const std::size_t k = centroids_.size();
    std::vector<double> local(3 * k + 1, 0.0);
    for (const Point& p : points_) {
      std::size_t best = 0;
      double best_d2 = std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < k; ++c) {
        const double dx = p.x - centroids_[c].x, dy = p.y - centroids_[c].y, d2 = dx * dx + dy * dy;
        if (d2 < best_d2) best = c, best_d2 = d2;
      }
      local[3 * best] += p.x;
      local[3 * best + 1] += p.y;
      local[3 * best + 2] += 1;
      local[3 * k] += best_d2;
    }
    for (std::size_t i = 0; i < local.size(); ++i) out.emit(gyre::VectorEntry{i, local[i]});
  }

 private:
  std::vector<Point> points_;
  std::vector<Point> centroids_;
  std::shared_ptr<std::optional<gyre::VectorAggregator>> sums_;
  int superstep_ = 0;
};

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::uint64_t n = 100000, k = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--points") n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--k") k = std::strtoull(argv[i + 1], nullptr, 10);
  }
  gyre::Environment env({}, mpi.cluster());
  // Points around k centres; every rank generates its own share, deterministically.
  auto points = env.generate(n, [k](std::uint64_t i) {
    std::mt19937_64 rng(i);
    std::normal_distribution<double> noise(0, 1);
    const double c = static_cast<double>(i % k) * 6;
    return Point{c + noise(rng), std::sin(c) * 6 + noise(rng)};
  });
  std::vector<Point> init;
  for (std::uint64_t c = 0; c < k; ++c) init.push_back({static_cast<double>(c), 0});

  auto sums = std::make_shared<std::optional<gyre::VectorAggregator>>();
  std::vector<Tick> ticks(static_cast<std::size_t>(env.default_parallelism()), Tick{0});
  gyre::iterate(env.from_collection(ticks), 50, [&](gyre::Stream<Tick> tick, gyre::LoopContext& loop) {
    auto entries = points.connect(tick).process("assign", Assign(init, sums));
    *sums = loop.sum_vector("sums", 3 * k + 1, entries);
    auto last = std::make_shared<double>(-1);
    loop.converge_when([agg = **sums, last, k] {
      const double sse = agg.value()[3 * k];
      const bool done = std::abs(sse - *last) <= 1e-6 * sse;
      *last = sse;
      return done;
    });
    return tick.map([](const Tick& t) { return t; });
  }, "kmeans").collect(1);  // (the ticks: the result is the aggregate)

  const auto result = env.run();
  if (mpi.rank() != 0) return 0;
  const auto& loop = result.loops.at(0);
  std::printf("%d supersteps (%s), %.3f s\n", loop.supersteps, loop.ended_by.c_str(), result.seconds);
  // The last superstep's sums, from the last superstep's centroids: one more Lloyd update.
  const auto cs = centroids_from((*sums)->value(), init);
  for (std::size_t c = 0; c < cs.size(); ++c) std::printf("centroid %zu: (%.3f, %.3f)\n", c, cs[c].x, cs[c].y);
  std::printf("sum of squared distances: %.6g\n", (*sums)->value()[3 * k]);
  return 0;
}
