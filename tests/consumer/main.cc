// Built against an installed gyre (find_package): sums the squares of 1..1000 with key_by/reduce.
#include <cstdio>
#include <cstdint>

#include "gyre/core.h"

int main() {
  gyre::JobConfig config;
  config.parallelism = 2;
  gyre::Environment env(config);
  auto out = env.generate(1000, [](std::uint64_t i) { return (i + 1) * (i + 1); })
                 .key_by([](std::uint64_t) { return 0; })
                 .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
                 .collect();
  env.run();
  const auto v = out.values();
  if (v.size() != 1 || v[0] != 333833500ULL) {
    std::fprintf(stderr, "consumer: wrong result\n");
    return 1;
  }
  std::printf("consumer: sum of squares 1..1000 = %llu\n", static_cast<unsigned long long>(v[0]));
  return 0;
}
