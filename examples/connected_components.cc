// Delta iteration: connected components by min-label propagation on a random graph. The solution
// set holds each vertex's label (a dense index: vertex ids are 0..n-1); the workset holds the
// vertices whose label changed, so converged vertices cost nothing. The edges are a loop-invariant
// input, indexed once.
//
//   connected_components [--vertices N] [--edges M]        (alone, or under mpirun)
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "gyre/iterations.h"
#include "gyre/mpi/session.h"

struct Edge { std::uint64_t src, dst; };
struct Label { std::uint64_t vertex, label; };

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::uint64_t n = 1000000, m = 600000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--vertices") n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--edges") m = std::strtoull(argv[i + 1], nullptr, 10);
  }
  gyre::Environment env({}, mpi.cluster());
  // Undirected: each random pair in both directions.
  auto edges = env.generate(2 * m, [n](std::uint64_t i) {
    const std::uint64_t a = gyre::mix64(i / 2) % n, b = gyre::mix64(i / 2 + 0x9e37) % n;
    return i % 2 == 0 ? Edge{a, b} : Edge{b, a};
  });
  auto vertices = env.generate(n, [](std::uint64_t v) { return Label{v, v}; });
  auto vertex = [](const Label& l) { return l.vertex; };

  auto labels = gyre::iterate_delta<gyre::SolutionSetIndex::kDense>(
      vertices, vertices, vertex, 1000,
      [&](auto& solution, gyre::Stream<Label> changed, gyre::LoopContext&) {
        auto offers = changed.join(edges, vertex, [](const Edge& e) { return e.src; },
                                   [](const Label& l, const Edge& e) { return Label{e.dst, l.label}; });
        auto improved = solution.template co_group<Label>(
            offers, vertex, [](const std::uint64_t& v, std::span<const Label> in, const Label* cur, gyre::Emit<Label>& emit) {
              std::uint64_t best = cur->label;
              for (const auto& o : in) best = std::min(best, o.label);
              if (best < cur->label) emit(Label{v, best});
            });
        return gyre::DeltaStep<Label, Label>{improved, improved};
      },
      "cc");
  // Component sizes, gathered on rank 0.
  auto sizes = labels.map([](const Label& l) { return std::pair<std::uint64_t, std::uint64_t>{l.label, 1}; })
                   .key_by([](const auto& p) { return p.first; })
                   .reduce([](const auto& a, const auto& b) { return std::pair{a.first, a.second + b.second}; })
                   .collect(1);
  const auto result = env.run();
  if (mpi.rank() != 0) return 0;
  std::map<std::uint64_t, std::uint64_t> histogram;  // size -> components
  for (const auto& [label, size] : sizes.values()) ++histogram[size];
  const auto& loop = result.loops.at(0);
  std::printf("%zu components in %d supersteps, %.3f s\n", sizes.values().size(), loop.supersteps, result.seconds);
  for (const auto& s : loop.steps)  // converged vertices drop out of the workset
    if (s.superstep <= 3 || s.superstep + 3 > loop.supersteps)
      std::printf("  superstep %d: %llu vertices changed, %.1f ms\n", s.superstep,
                  static_cast<unsigned long long>(s.size), s.seconds * 1e3);
  std::printf("largest component: %llu vertices\n", static_cast<unsigned long long>(histogram.rbegin()->first));
  return 0;
}
