// Nexmark q5 by hand, one thread, no engine: the same generator (gyre::nexmark::make_bid, so
// the generation cost is the same as in the gyre job), the same watermarks (largest timestamp
// seen - delay - 1, every 1024 events), sliding windows of 10 s every 2 s, per window the
// auction(s) with the most bids, emitted when the watermark passes the window's end.
//
//   nexmark_baseline --events N [--watermark-delay MS] [--output FILE]
// Prints one JSON line; --output writes the result lines (the same format as gyre nexmark q5).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "gyre/algorithms/nexmark.h"

namespace nx = gyre::nexmark;
using gyre::Timestamp;

int main(int argc, char** argv) {
  std::uint64_t events = 10'000'000;
  Timestamp delay = 3000;
  std::string output;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--events") events = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--watermark-delay") delay = std::atoll(argv[i + 1]);
    else if (a == "--output") output = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  constexpr Timestamp kSize = 10'000, kSlide = 2'000;
  nx::GeneratorConfig c;
  c.events = events;
  // Open windows by start; per window the bids per auction.
  std::map<Timestamp, std::unordered_map<std::int64_t, std::int64_t>> open;
  std::FILE* out = output.empty() ? nullptr : std::fopen(output.c_str(), "w");
  std::uint64_t results = 0;
  Timestamp max_ts = gyre::kMinTimestamp;
  auto fire_until = [&](Timestamp wm) {
    while (!open.empty() && open.begin()->first + kSize - 1 <= wm) {
      const Timestamp s = open.begin()->first;
      std::int64_t top = 0;
      for (const auto& [a, n] : open.begin()->second) top = std::max(top, n);
      for (const auto& [a, n] : open.begin()->second)
        if (n == top) {
          ++results;
          if (out) std::fprintf(out, "%lld,%lld,%lld,%lld\n", static_cast<long long>(s), static_cast<long long>(s + kSize),
                                static_cast<long long>(a), static_cast<long long>(n));
        }
      open.erase(open.begin());
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < events; ++i) {
    Timestamp ts = 0;
    switch (nx::kind_of(i)) {
      case nx::EventKind::kPerson: ts = nx::make_person(c, i).ts; break;
      case nx::EventKind::kAuction: ts = nx::make_auction(c, i).ts; break;
      case nx::EventKind::kBid: {
        const nx::Bid b = nx::make_bid(c, i);
        ts = b.ts;
        const Timestamp last = ts - ((ts % kSlide) + kSlide) % kSlide;
        for (Timestamp s = last; s > ts - kSize; s -= kSlide) ++open[s][b.auction];
        break;
      }
    }
    max_ts = std::max(max_ts, ts);
    if ((i & 1023) == 1023) fire_until(max_ts - delay - 1);
  }
  fire_until(gyre::kMaxTimestamp);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  if (out) std::fclose(out);
  std::printf("{\"query\": \"q5\", \"baseline\": \"hand-written, 1 thread\", \"events\": %llu, \"seconds\": %.3f, "
              "\"results\": %llu, \"events_per_s_per_core\": %.0f, \"cpu_seconds\": %.3f, \"events_per_cpu_s\": %.0f}\n",
              static_cast<unsigned long long>(events), s, static_cast<unsigned long long>(results),
              static_cast<double>(events) / s, cpu, static_cast<double>(events) / cpu);
  return 0;
}
