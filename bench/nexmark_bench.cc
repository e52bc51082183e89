// One Nexmark query as a gyre job, the generator in the same process (every partition generates
// its share of the events), results counted (no output file): events per second per core, peak
// memory, and optionally the window latency at a fixed rate. Prints one JSON line (rank 0).
//
//   nexmark_bench --query q5 --events 10000000 [--threads T] [--watermark-delay MS]
//                 [--rate R --buffer-timeout-ms B]   (latency: one rank only)
//
// Latency (with --rate): the generator emits event i at start + i / R. A window result's
// latency is the time from the generation of the event that closed the window (the one after
// which every source partition had sent a watermark at or past the window's end - 1) to the
// result's arrival at the sink. The event-time wait itself (the watermark delay) is not in it.
// Cores: ranks x threads (the generator runs on the same cores).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gyre/algorithms/nexmark.h"
#include "gyre/mpi/session.h"

namespace {

double peak_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}
// CPU time of this process (user + system), seconds.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
long long steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::string query = "q0";
  std::uint64_t events = 10'000'000;
  int threads = 2;
  double rate = 0;
  long long buffer_timeout_ms = -1;
  long long delay = 3000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--query") query = v;
    else if (a == "--events") events = std::strtoull(v, nullptr, 10);
    else if (a == "--threads") threads = std::atoi(v);
    else if (a == "--rate") rate = std::atof(v);
    else if (a == "--buffer-timeout-ms") buffer_timeout_ms = std::atoll(v);
    else if (a == "--watermark-delay") delay = std::atoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const bool latency = rate > 0;
  if (latency && mpi.size() > 1) {
    std::fprintf(stderr, "--rate (latency) runs on one rank\n");
    return 2;
  }
  gyre::JobConfig cfg;
  cfg.slots = threads;
  cfg.parallelism = threads * mpi.size();
  if (buffer_timeout_ms >= 0) cfg.buffer_timeout = std::chrono::milliseconds(buffer_timeout_ms);

  gyre::nexmark::QueryOptions q;
  q.query = query;
  q.gen.events = events;
  q.watermark_delay = delay;
  gyre::nexmark::ResultSink sink;
  sink.count = std::make_shared<std::atomic<std::uint64_t>>(0);

  // Latency bookkeeping: per source partition, (watermark, time) as sent; per result, (end, time).
  struct Mark {
    gyre::Timestamp wm;
    long long us;
  };
  const int parts = cfg.parallelism;
  auto marks = std::make_shared<std::vector<std::vector<Mark>>>(static_cast<std::size_t>(parts));
  auto outs = std::make_shared<std::vector<Mark>>();
  auto mu = std::make_shared<std::mutex>();
  if (latency) {
    q.gen.emit_rate = rate;
    q.gen.start = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    for (auto& m : *marks) m.reserve(1 << 16);
    q.on_source_watermark = [marks](int p, gyre::Timestamp wm) {
      (*marks)[static_cast<std::size_t>(p)].push_back(Mark{wm, steady_us()});
    };
    sink.on_window = [outs, mu](gyre::Timestamp end) {
      const long long t = steady_us();
      std::lock_guard lock(*mu);
      outs->push_back(Mark{end, t});
    };
  }

  const double cpu0 = cpu_seconds();
  const gyre::JobResult r = gyre::nexmark::run_query(q, sink, cfg, mpi.cluster());
  const double cpu = static_cast<double>(mpi.allreduce_sum(static_cast<long long>((cpu_seconds() - cpu0) * 1e6))) / 1e6;
  const long long results = mpi.allreduce_sum(static_cast<long long>(sink.count->load()));
  const double peak = mpi.allreduce_max(peak_mb());
  double p50 = -1, p99 = -1, pmax = -1;
  std::size_t measured = 0;
  if (latency) {
    std::vector<double> lat;
    for (const Mark& o : *outs) {
      if (o.wm == gyre::kMaxTimestamp) continue;
      long long closed = 0;
      bool all = true;
      for (const auto& m : *marks) {
        auto it = std::lower_bound(m.begin(), m.end(), o.wm - 1, [](const Mark& a, gyre::Timestamp t) { return a.wm < t; });
        if (it == m.end() || it->wm == gyre::kMaxTimestamp) {
          all = false;  // closed by the end of the input, not by an event
          break;
        }
        closed = std::max(closed, it->us);
      }
      if (all) lat.push_back(static_cast<double>(o.us - closed) / 1000.0);
    }
    std::sort(lat.begin(), lat.end());
    measured = lat.size();
    if (!lat.empty()) {
      p50 = lat[lat.size() / 2];
      p99 = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
      pmax = lat.back();
    }
  }
  if (mpi.rank() == 0) {
    const int cores = threads * mpi.size();
    std::printf(
        "{\"query\": \"%s\", \"events\": %llu, \"ranks\": %d, \"threads\": %d, \"seconds\": %.3f, \"results\": %lld, "
        "\"events_per_s_per_core\": %.0f, \"cpu_seconds\": %.3f, \"events_per_cpu_s\": %.0f, \"peak_rss_mb\": %.1f",
        query.c_str(), static_cast<unsigned long long>(events), mpi.size(), threads, r.seconds, results,
        static_cast<double>(events) / r.seconds / cores, cpu, static_cast<double>(events) / cpu, peak);
    if (latency)
      std::printf(", \"rate\": %.0f, \"buffer_timeout_ms\": %lld, \"windows_measured\": %zu, \"latency_p50_ms\": %.3f, "
                  "\"latency_p99_ms\": %.3f, \"latency_max_ms\": %.3f",
                  rate, static_cast<long long>(cfg.buffer_timeout.count()), measured, p50, p99, pmax);
    std::printf("}\n");
  }
  return 0;
}
