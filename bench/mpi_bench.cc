// Distributed exchange benchmarks (run under mpirun with 2 ranks):
//   shuffle: N 16-byte records hash-shuffled between the ranks by a gyre job (generate ->
//            key_by -> counting sink), beside raw MPI_Alltoallv of the same records (buffers
//            partitioned by destination before timing: communication only) in the same run.
//            GB/s = all shuffled bytes (N x 16) / time, slowest rank.
//   latency: one record at a time from partition 0 (rank 0) to a sink on the last rank through
//            an unbounded job with a 1 ms buffer timeout; p50 / p99 over the samples.
//
//   mpirun -n 2 --bind-to none --mca pml ob1 --mca btl self,vader mpi_bench
//          [--records N] [--repeat R] [--slots S] [--samples K] [--batch-bytes B]
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gyre/core.h"
#include "gyre/mpi/session.h"

namespace {

struct Rec {
  std::uint64_t key;
  std::uint64_t value;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct alignas(64) Count {
  std::uint64_t n = 0;
};

// Seconds for the whole job, slowest rank.
std::size_t g_batch_bytes = 32 * 1024;

double gyre_shuffle(gyre::mpi::Session& mpi, std::uint64_t n, int slots, std::uint64_t& received,
                    std::uint64_t& wire) {
  gyre::JobConfig c;
  c.batch_bytes = g_batch_bytes;
  c.slots = slots;
  c.parallelism = slots * mpi.size();
  gyre::Environment env(c, mpi.cluster());
  std::vector<Count> count(static_cast<std::size_t>(c.parallelism));
  env.generate(n, [](std::uint64_t i) { return Rec{gyre::mix64(i), i}; })
      .key_by([](const Rec& r) { return r.key; })
      .partition()
      .for_each([&count](const Rec&, int part) { ++count[static_cast<std::size_t>(part)].n; });
  mpi.barrier();
  const double t0 = now_s();
  const gyre::JobResult r = env.run();
  const double t = mpi.allreduce_max(now_s() - t0);
  std::uint64_t local = 0;
  for (auto& x : count) local += x.n;
  received = static_cast<std::uint64_t>(mpi.allreduce_sum(static_cast<long long>(local)));
  wire = r.wire_bytes;
  return t;
}

double raw_alltoallv(gyre::mpi::Session& mpi, std::uint64_t n) {
  const int size = mpi.size();
  const std::uint64_t lo = n * static_cast<std::uint64_t>(mpi.rank()) / static_cast<std::uint64_t>(size);
  const std::uint64_t hi = n * static_cast<std::uint64_t>(mpi.rank() + 1) / static_cast<std::uint64_t>(size);
  std::vector<int> scount(static_cast<std::size_t>(size), 0);
  for (std::uint64_t i = lo; i < hi; ++i)
    scount[gyre::hash_partition(gyre::hash_key(gyre::mix64(i)), static_cast<std::size_t>(size))] +=
        static_cast<int>(sizeof(Rec));
  std::vector<int> sdispl(static_cast<std::size_t>(size), 0);
  for (std::size_t d = 1; d < sdispl.size(); ++d) sdispl[d] = sdispl[d - 1] + scount[d - 1];
  std::vector<Rec> send(hi - lo);
  std::vector<int> fill = sdispl;
  for (std::uint64_t i = lo; i < hi; ++i) {
    const Rec r{gyre::mix64(i), i};
    const auto d = gyre::hash_partition(gyre::hash_key(r.key), static_cast<std::size_t>(size));
    send[static_cast<std::size_t>(fill[d]) / sizeof(Rec)] = r;
    fill[d] += static_cast<int>(sizeof(Rec));
  }
  std::vector<int> rcount(static_cast<std::size_t>(size));
  MPI_Alltoall(scount.data(), 1, MPI_INT, rcount.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::vector<int> rdispl(static_cast<std::size_t>(size), 0);
  for (std::size_t d = 1; d < rdispl.size(); ++d) rdispl[d] = rdispl[d - 1] + rcount[d - 1];
  std::vector<Rec> recv(static_cast<std::size_t>(rdispl.back() + rcount.back()) / sizeof(Rec));
  mpi.barrier();
  const double t0 = now_s();
  MPI_Alltoallv(send.data(), scount.data(), sdispl.data(), MPI_BYTE, recv.data(), rcount.data(),
                rdispl.data(), MPI_BYTE, MPI_COMM_WORLD);
  return mpi.allreduce_max(now_s() - t0);
}

std::vector<double> latencies(gyre::mpi::Session& mpi, int samples) {
  gyre::JobConfig c;
  c.slots = 1;
  c.parallelism = mpi.size();
  c.buffer_timeout = std::chrono::milliseconds(1);
  c.idle_poll = std::chrono::milliseconds(1);
  gyre::Environment env(c, mpi.cluster());
  std::uint64_t key = 0;  // a key owned by the last partition, on the last rank
  while (gyre::hash_partition(gyre::hash_key(key), static_cast<std::size_t>(mpi.size())) !=
         static_cast<std::size_t>(mpi.size() - 1))
    ++key;
  using Stamp = std::pair<std::uint64_t, double>;
  std::vector<double> got;
  std::atomic<int> n{0};
  env.generate_unbounded<Stamp>([&, next = 0.0](gyre::SourceContext& ctx) mutable -> std::optional<Stamp> {
       const double t = now_s();
       if (ctx.partition != 0 || t < next) return std::nullopt;
       next = t + 0.004;  // one record every 4 ms
       return Stamp{key, t};
     })
      .key_by([](const Stamp& s) { return s.first; })
      .partition()
      .for_each([&](const Stamp& s) {
        got.push_back((now_s() - s.second) * 1e6);
        ++n;
      });
  auto job = env.start();
  if (mpi.rank() == mpi.size() - 1) {
    while (n < samples) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    job.cancel();
  }
  job.wait();
  return mpi.allgather(got);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::uint64_t records = 100'000'000;
  int repeat = 3;
  int slots = 1;
  int samples = 300;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--records" && i + 1 < argc) records = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else if (a == "--slots" && i + 1 < argc) slots = std::atoi(argv[++i]);
    else if (a == "--samples" && i + 1 < argc) samples = std::atoi(argv[++i]);
    else if (a == "--batch-bytes" && i + 1 < argc) g_batch_bytes = std::strtoul(argv[++i], nullptr, 10);
  }
  const bool root = mpi.rank() == 0;
  const double bytes = static_cast<double>(records) * sizeof(Rec);
  double best_gyre = 1e30;
  double best_raw = 1e30;
  std::uint64_t received = 0;
  std::uint64_t wire = 0;
  for (int r = 0; r < repeat; ++r) {
    best_raw = std::min(best_raw, raw_alltoallv(mpi, records));
    best_gyre = std::min(best_gyre, gyre_shuffle(mpi, records, slots, received, wire));
  }
  if (root) {
    std::printf("shuffle of %llu records x 16 B between %d ranks (%d slot(s) each), best of %d:\n",
                static_cast<unsigned long long>(records), mpi.size(), slots, repeat);
    std::printf("  gyre job      %7.3f s  %6.2f GB/s  (%llu records arrived, %.2f GB crossed ranks)\n", best_gyre,
                bytes / best_gyre / 1e9, static_cast<unsigned long long>(received), static_cast<double>(wire) / 1e9);
    std::printf("  MPI_Alltoallv %7.3f s  %6.2f GB/s\n", best_raw, bytes / best_raw / 1e9);
    std::printf("  ratio gyre / raw = %.2f\n", best_raw / best_gyre);
  }
  if (received != records && root) std::printf("  ERROR: %llu records arrived, expected %llu\n",
                                               static_cast<unsigned long long>(received),
                                               static_cast<unsigned long long>(records));
  const std::vector<double> lat = latencies(mpi, samples);
  if (root)
    std::printf("latency of one record crossing ranks, buffer timeout 1 ms, %zu samples: p50 %.0f us, p99 %.0f us\n",
                lat.size(), percentile(lat, 0.5), percentile(lat, 0.99));
  return received == records ? 0 : 1;
}
