// Iteration overheads, alone or under mpirun:
//  1. per-superstep overhead of a bulk iteration with an empty body (the partial solution is one
//     record per partition and the body returns it unchanged): wall time / supersteps;
//  2. round trip of one record through a streaming loop: one record goes round N times (the body
//     repartitions it by its hop count, so with 2 ranks about half the hops cross ranks), wall
//     time / N; buffer timeout 0, so every batch is sent at once.
//
//  3. the same round trip through an event-time loop (iterate(src, ts): progress rounds run
//     beside the record, and the loop's watermark follows it);
//  4. throughput of a bounded streaming loop: N records each go round `passes` times (through a
//     rebalance), plain and with event time; wall time / (N * passes) per record pass. The
//     difference is what the progress tracking costs (a timestamp read and a min per record the
//     head pushes, a round of markers and one allreduce per round trip through the body, the
//     head holding its input while a round's decision is taken).
//
//   iterations_bench [--supersteps N] [--hops N] [--records N] [--passes N] [--slots S]
//                    [--parallelism P] [--repeat R] [--progress-us U (event-time round interval)]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gyre/iterations.h"
#include "gyre/mpi/session.h"

namespace {

struct Token {
  std::uint64_t id;
  std::uint64_t hops;
};
gyre::Timestamp token_ts(const Token& t) { return static_cast<gyre::Timestamp>(t.id); }

double empty_bulk(gyre::mpi::Session& mpi, const gyre::JobConfig& c, int supersteps) {
  gyre::Environment env(c, mpi.cluster());
  const auto p = static_cast<std::uint64_t>(env.default_parallelism());
  auto out = gyre::iterate(env.generate(p, [](std::uint64_t i) { return Token{i, 0}; }), supersteps,
                           [](gyre::Stream<Token> x) { return x; }, "empty");
  out.for_each([](const Token&) {});
  const auto r = env.run();
  if (r.loops.at(0).supersteps != supersteps) std::fprintf(stderr, "ran %d supersteps\n", r.loops.at(0).supersteps);
  return r.seconds / supersteps;
}

template <class MakeLoop>
double streaming_round_trip(gyre::mpi::Session& mpi, gyre::JobConfig c, std::uint64_t hops, MakeLoop make_loop) {
  c.buffer_timeout = std::chrono::milliseconds(0);
  gyre::Environment env(c, mpi.cluster());
  // One record, from partition 0; the source then idles (an unbounded input never ends).
  auto src = env.generate_unbounded<Token>([](gyre::SourceContext& s) -> std::optional<Token> {
    if (s.partition != 0 || s.emitted > 0) return std::nullopt;
    return Token{0, 0};
  });
  auto loop = make_loop(src);
  auto next = loop.head()
                  .map([](const Token& t) { return Token{t.id, t.hops + 1}; })
                  .key_by([](const Token& t) { return t.hops; })
                  .partition();
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto end_time = std::make_shared<std::atomic<double>>(0);
  const auto t0 = std::chrono::steady_clock::now();
  next.filter([hops](const Token& t) { return t.hops >= hops; }).for_each([=](const Token&) {
    end_time->store(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    done->store(true);
  });
  loop.close_with(next.filter([hops](const Token& t) { return t.hops < hops; }));
  auto job = env.start();
  // The rank that saw the record leave tells the others (max over ranks), then all cancel.
  double seconds = 0;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    seconds = mpi.allreduce_max(done->load() ? end_time->load() : -1.0);
    if (seconds >= 0) break;
  }
  job.cancel();
  job.wait();
  return seconds / static_cast<double>(hops);
}

template <class MakeLoop>
double streaming_throughput(gyre::mpi::Session& mpi, const gyre::JobConfig& c, std::uint64_t records,
                            std::uint64_t passes, MakeLoop make_loop) {
  gyre::Environment env(c, mpi.cluster());
  auto loop = make_loop(env.generate(records, [](std::uint64_t i) { return Token{i, 0}; }));
  auto next = loop.head().map([](const Token& t) { return Token{t.id, t.hops + 1}; }).rebalance();
  auto left = std::make_shared<std::atomic<std::uint64_t>>(0);
  next.filter([passes](const Token& t) { return t.hops >= passes; }).for_each([left](const Token&) { ++*left; });
  loop.close_with(next.filter([passes](const Token& t) { return t.hops < passes; }));
  const auto r = env.run();
  if (static_cast<std::uint64_t>(mpi.allreduce_max(static_cast<double>(r.loops.at(0).supersteps))) == 0 &&
      mpi.rank() == 0)
    std::fprintf(stderr, "no round ran\n");
  return r.seconds / static_cast<double>(records * passes);
}

}  // namespace

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  int supersteps = 20000, repeat = 3;
  std::uint64_t hops = 20000, records = 200000, passes = 10;
  long progress_us = 1000;
  gyre::JobConfig c;
  c.slots = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--supersteps") supersteps = std::atoi(argv[i + 1]);
    else if (a == "--hops") hops = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--records") records = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--passes") passes = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--progress-us") progress_us = std::atol(argv[i + 1]);
    else if (a == "--slots") c.slots = std::atoi(argv[i + 1]);
    else if (a == "--parallelism") c.parallelism = std::atoi(argv[i + 1]);
    else if (a == "--repeat") repeat = std::atoi(argv[i + 1]);
  }
  const bool root = mpi.rank() == 0;
  auto plain = [](const gyre::Stream<Token>& s) { return gyre::iterate(s, "ping"); };
  auto timed = [&](const gyre::Stream<Token>& s) {
    gyre::IterationOptions o("ping");
    o.progress_interval = std::chrono::microseconds(progress_us);
    return gyre::iterate(s, token_ts, o);
  };
  double best_bulk = 1e9, best_rt = 1e9, best_rt_timed = 1e9, best_tp = 1e9, best_tp_timed = 1e9;
  for (int r = 0; r < repeat; ++r) {
    best_bulk = std::min(best_bulk, empty_bulk(mpi, c, supersteps));
    best_rt = std::min(best_rt, streaming_round_trip(mpi, c, hops, plain));
    best_rt_timed = std::min(best_rt_timed, streaming_round_trip(mpi, c, hops, timed));
    best_tp = std::min(best_tp, streaming_throughput(mpi, c, records, passes, plain));
    best_tp_timed = std::min(best_tp_timed, streaming_throughput(mpi, c, records, passes, timed));
  }
  if (root) {
    gyre::Environment probe(c, mpi.cluster());
    std::printf("ranks=%d slots/rank=%d parallelism=%d\n", mpi.size(), c.slots, probe.default_parallelism());
    std::printf("empty bulk superstep: %.1f us (best of %d, %d supersteps each)\n", best_bulk * 1e6, repeat, supersteps);
    std::printf("streaming loop round trip: %.1f us (best of %d, %llu hops each)\n", best_rt * 1e6, repeat,
                static_cast<unsigned long long>(hops));
    std::printf("streaming loop round trip, event time: %.1f us (best of %d, %llu hops each)\n", best_rt_timed * 1e6,
                repeat, static_cast<unsigned long long>(hops));
    std::printf("streaming loop throughput: %.1f ns per record pass (best of %d, %llu records x %llu passes)\n",
                best_tp * 1e9, repeat, static_cast<unsigned long long>(records), static_cast<unsigned long long>(passes));
    std::printf("streaming loop throughput, event time: %.1f ns per record pass (+%.1f ns, %+.0f%%)\n",
                best_tp_timed * 1e9, (best_tp_timed - best_tp) * 1e9, 100.0 * (best_tp_timed / best_tp - 1.0));
  }
  return 0;
}
