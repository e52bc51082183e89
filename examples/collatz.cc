// Streaming feedback iteration: every number walks its Collatz sequence round the loop until it
// reaches 1, then leaves through a filter. Each record goes round a data-dependent number of
// times; the loop ends when the input ended and no record is left anywhere (distributed
// termination detection, no timeout).
//
//   collatz [--count N]        (alone, or under mpirun)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gyre/iterations.h"
#include "gyre/mpi/session.h"

struct Walk { std::uint64_t start, n, steps; };

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::uint64_t count = 100000;
  if (argc > 2 && std::string(argv[1]) == "--count") count = std::strtoull(argv[2], nullptr, 10);
  gyre::Environment env({}, mpi.cluster());

  auto loop = gyre::iterate(env.generate(count, [](std::uint64_t i) { return Walk{i + 1, i + 1, 0}; }), "collatz");
  auto next = loop.head().map([](const Walk& w) {
    return Walk{w.start, w.n % 2 == 0 ? w.n / 2 : 3 * w.n + 1, w.steps + 1};
  });
  loop.close_with(next.filter([](const Walk& w) { return w.n != 1; }));
  auto longest = next.filter([](const Walk& w) { return w.n == 1; })
                     .key_by([](const Walk&) { return 0; })
                     .reduce([](const Walk& a, const Walk& b) { return a.steps >= b.steps ? a : b; })
                     .collect(1);  // a rolling maximum: the last value is the final one

  const auto result = env.run();
  if (mpi.rank() != 0) return 0;
  const auto v = longest.values();
  std::printf("longest walk below %llu: %llu takes %llu steps (%.3f s, %d detection rounds)\n",
              static_cast<unsigned long long>(count + 1), static_cast<unsigned long long>(v.back().start),
              static_cast<unsigned long long>(v.back().steps), result.seconds, result.loops.at(0).supersteps);
  return 0;
}
