// Bulk iteration: k-means on random 2-D points. The points are a loop-invariant input (partitioned
// and kept once); every superstep broadcasts the centroids, assigns each point to the nearest one
// and averages. Stops when the sum of squared distances stops changing, or after 50 supersteps.
//
//   kmeans [--points N] [--k K]        (alone, or under mpirun)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gyre/iterations.h"
#include "gyre/mpi/session.h"

struct Point { std::uint64_t id; double x, y; };
struct Centroid { std::uint64_t id; double x, y; };
struct Assign { std::uint64_t point, centroid; double d2, x, y; };
struct Sum { std::uint64_t centroid; double x, y, n; };

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
    return Point{i, c + noise(rng), std::sin(c) * 6 + noise(rng)};
  });
  std::vector<Centroid> init;
  for (std::uint64_t c = 0; c < k; ++c) init.push_back({c, static_cast<double>(c), 0});

  auto centroids = gyre::iterate(env.from_collection(init), 50, [&](gyre::Stream<Centroid> cs, gyre::LoopContext& loop) {
    auto best = points
                    .join(cs.broadcast(), [](const Point&) { return 0; }, [](const Centroid&) { return 0; },
                          [](const Point& p, const Centroid& c) {
                            return Assign{p.id, c.id, (p.x - c.x) * (p.x - c.x) + (p.y - c.y) * (p.y - c.y), p.x, p.y};
                          })
                    .key_by([](const Assign& a) { return a.point; })
                    .reduce([](const Assign& a, const Assign& b) { return a.d2 <= b.d2 ? a : b; });
    auto sse = loop.sum("sse", best.map([](const Assign& a) { return a.d2; }));
    auto last = std::make_shared<double>(-1);
    loop.converge_when([sse, last] {
      const bool done = std::abs(sse.value() - *last) <= 1e-6 * sse.value();
      *last = sse.value();
      return done;
    });
    return best.map([](const Assign& a) { return Sum{a.centroid, a.x, a.y, 1}; })
        .key_by([](const Sum& s) { return s.centroid; })
        .reduce([](const Sum& a, const Sum& b) { return Sum{a.centroid, a.x + b.x, a.y + b.y, a.n + b.n}; })
        .map([](const Sum& s) { return Centroid{s.centroid, s.x / s.n, s.y / s.n}; });
  }, "kmeans").collect(1);

  const auto result = env.run();
  if (mpi.rank() != 0) return 0;
  const auto& loop = result.loops.at(0);
  std::printf("%d supersteps (%s), %.3f s\n", loop.supersteps, loop.ended_by.c_str(), result.seconds);
  auto cs = centroids.values();
  std::sort(cs.begin(), cs.end(), [](const Centroid& a, const Centroid& b) { return a.id < b.id; });
  for (const auto& c : cs) std::printf("centroid %llu: (%.3f, %.3f)\n", static_cast<unsigned long long>(c.id), c.x, c.y);
  return 0;
}
