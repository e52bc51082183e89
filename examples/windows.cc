// Event-time windows with early and late firings: the four questions of the stream model.
//
//   What is computed?          the score per team (an incremental aggregate: a sum)
//   Where in event time?       tumbling windows of 10 s of event time
//   When in processing time?   early panes every 2 records before the watermark passes the
//                              window's end, the on-time pane when it does, then a late pane
//                              for every late record within 5 s of allowed lateness; records
//                              later than that go to a side output
//   How do refinements relate? accumulating with retractions: each pane first retracts (-U)
//                              what the previous pane of its window said, then states the new
//                              value (+U); the first pane is an insert (+I)
//
//   windows [--parallelism P]
//
// The input is a fixed list of scores arriving out of order (a bounded stream read by one
// source partition, so the panes are the same on every run); watermarks lag the largest
// timestamp seen by 2 s. It prints every pane, window by window.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "gyre/core.h"
#include "gyre/core/event_time.h"
#include "gyre/core/window.h"

namespace {

struct Score {
  std::int64_t team = 0;
  gyre::Timestamp ts = 0;  // event time, ms
  std::int64_t points = 0;
};

struct Sum {
  std::int64_t create() const { return 0; }
  void add(std::int64_t& acc, const Score& s) const { acc += s.points; }
  void merge(std::int64_t& acc, const std::int64_t& other) const { acc += other; }
  std::int64_t result(const std::int64_t& acc) const { return acc; }
};

}  // namespace

int main(int argc, char** argv) {
  int parallelism = 2;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--parallelism") parallelism = std::atoi(argv[++i]);

  // Arrival order (event times in ms). The 4 s record of team 1 arrives after the watermark
  // passed 10 s (late, within the lateness); the 1 s record of team 2 arrives after it passed
  // 15 s (later than the lateness: the side output).
  const std::vector<Score> scores = {
      {1, 1'000, 5}, {2, 2'000, 3}, {1, 3'500, 2}, {1, 2'500, 1},  {2, 7'000, 4}, {1, 9'000, 6},
      {2, 11'000, 2}, {1, 12'500, 7}, {1, 4'000, 3}, {2, 13'000, 1}, {1, 18'000, 2}, {2, 1'000, 9},
      {1, 19'500, 4}, {2, 21'000, 5},
  };

  gyre::JobConfig config;
  config.parallelism = parallelism;
  config.batch_bytes = sizeof(Score);  // one record per batch: a watermark after each
  gyre::Environment env(config);

  auto ts = [](const Score& s) { return s.ts; };
  auto input = env.from_collection(scores);
  input.parallelism(1);  // one arrival order
  auto timed = gyre::assign_timestamps(
      input, ts, gyre::WatermarkStrategy::bounded_out_of_orderness(2'000).with_record_interval(1));

  gyre::OutputTag<Score> too_late("too late");
  auto panes = gyre::window(timed.key_by([](const Score& s) { return s.team; }), ts, gyre::TumblingWindows{10'000})
                   .trigger(gyre::Trigger::after_watermark()
                                .with_early_firings(gyre::Trigger::after_count(2))
                                .with_late_firings(gyre::Trigger::after_count(1)))
                   .allowed_lateness(5'000)
                   .accumulate(gyre::Accumulation::kRetracting)
                   .late_output(too_late)
                   .aggregate("team score", Sum{});
  auto out = panes.collect();
  auto dropped = panes.side_output(too_late).collect();
  const gyre::JobResult result = env.run();

  auto rows = out.values();
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return std::tie(a.key, a.start, a.pane.index) < std::tie(b.key, b.start, b.pane.index);
  });
  for (const auto& r : rows)
    std::cout << "team " << r.key << " [" << r.start / 1000 << " s, " << r.end / 1000 << " s) " << to_string(r.kind)
              << " " << r.value << "  pane " << r.pane.index << " " << to_string(r.pane.timing)
              << (r.pane.last ? " last" : "") << "\n";
  for (const Score& s : dropped.values())
    std::cout << "too late: team " << s.team << " at " << s.ts / 1000 << " s, " << s.points << " points\n";
  for (const auto& m : result.operators)
    if (m.records_late > 0) std::cout << m.name << ": " << m.records_late << " late record(s)\n";
  return 0;
}
