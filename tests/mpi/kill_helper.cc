// Runs an unbounded shuffling job across all ranks; rank R kills itself with SIGKILL after T ms.
//   kill_helper R T
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <thread>

#include "gyre/core.h"
#include "gyre/mpi/session.h"

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  const int victim = argc > 1 ? std::atoi(argv[1]) : 1;
  const int after_ms = argc > 2 ? std::atoi(argv[2]) : 300;
  gyre::JobConfig c;
  c.parallelism = 2 * mpi.size();
  gyre::Environment env(c, mpi.cluster());
  env.generate_unbounded<std::uint64_t>([](gyre::SourceContext& ctx) -> std::optional<std::uint64_t> {
       return ctx.emitted;
     })
      .key_by([](std::uint64_t x) { return x % 1000; })
      .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
      .for_each([](std::uint64_t) {});
  auto job = env.start();
  if (mpi.rank() == victim) {
    std::this_thread::sleep_for(std::chrono::milliseconds(after_ms));
    std::raise(SIGKILL);
  }
  job.wait();  // never returns normally: the job runs until the victim dies
  return 0;
}
