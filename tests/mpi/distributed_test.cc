// Behaviour that only exists with several ranks: failure on one rank ends the job on all, plans
// must match, cancellation spreads, records cross ranks within the buffer timeout, metrics are
// summed over ranks. Runs at 1, 2 and 4 ranks (and without mpirun).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "../support/test_env.h"

namespace {

using std::chrono::milliseconds;

int ranks() { return testenv::session().size(); }

TEST(Distributed, ExceptionOnOneRankEndsTheJobOnAllWithItsMessage) {
  gyre::JobConfig c;
  c.parallelism = 2 * ranks();
  c.slots = 2;
  auto env = testenv::make_env(c);
  static constexpr std::uint64_t n = 400000;
  // Index n-1 is in the last partition, which runs on the last rank.
  env.generate(n, [](std::uint64_t i) { return i; })
      .map([](std::uint64_t i) {
        if (i == n - 1) throw std::runtime_error("poisoned record");
        return i;
      })
      .name("check")
      .key_by([](std::uint64_t i) { return i % 1000; })
      .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
      .collect();
  try {
    env.run();
    FAIL() << "run() returned on rank " << testenv::rank();
  } catch (const gyre::JobError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("operator 'check'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("poisoned record"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rank " + std::to_string(ranks() - 1)), std::string::npos) << msg;
  }
}

TEST(Distributed, DifferentPlansOnDifferentRanksFailFast) {
  gyre::JobConfig c;
  c.parallelism = 2;
  auto env = testenv::make_env(c);
  auto s = env.generate(10, [](std::uint64_t i) { return i; });
  if (testenv::rank() == 1) s = s.map([](std::uint64_t i) { return i + 1; });
  s.collect();
  if (ranks() == 1) {  // one rank: one plan, nothing to disagree with
    EXPECT_NO_THROW(env.run());
    return;
  }
  try {
    env.run();
    FAIL() << "plans differ but the job ran";
  } catch (const gyre::PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 built a different plan than rank 0"), std::string::npos)
        << e.what();
  }
}

TEST(Distributed, CancelFromARankWithoutSubtasksStopsAll) {
  gyre::JobConfig c;
  c.parallelism = 1;  // every subtask on rank 0; the last rank has none but may cancel
  auto env = testenv::make_env(c);
  env.generate_unbounded<std::uint64_t>([](gyre::SourceContext& ctx) -> std::optional<std::uint64_t> {
       return ctx.emitted;
     })
      .for_each([](std::uint64_t) {});
  auto job = env.start();
  if (testenv::rank() == ranks() - 1) {
    std::this_thread::sleep_for(milliseconds(100));
    job.cancel();
  }
  const auto result = job.wait();
  EXPECT_TRUE(result.cancelled);
}

TEST(Distributed, CancelOnOneRankStopsAll) {
  gyre::JobConfig c;
  c.parallelism = 2 * ranks();
  auto env = testenv::make_env(c);
  env.generate_unbounded<std::uint64_t>([](gyre::SourceContext& ctx) -> std::optional<std::uint64_t> {
       return ctx.emitted;
     })
      .key_by([](std::uint64_t x) { return x % 100; })
      .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
      .for_each([](std::uint64_t) {});
  auto job = env.start();
  if (testenv::rank() == 0) {
    std::this_thread::sleep_for(milliseconds(200));
    job.cancel();
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto result = job.wait();
  EXPECT_TRUE(result.cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(5000));
}

TEST(Distributed, RecordCrossesRanksWithinBufferTimeout) {
  gyre::JobConfig c;
  c.parallelism = ranks();
  c.buffer_timeout = milliseconds(20);
  auto env = testenv::make_env(c);
  std::atomic<double> latency_ms{-1};
  using Stamp = std::pair<std::uint64_t, std::int64_t>;  // (key, send time in us)
  auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  // Partition 0 (rank 0) emits one record whose key hashes to the last partition (last rank).
  std::uint64_t key = 0;
  while (gyre::hash_partition(gyre::hash_key(key), static_cast<std::size_t>(ranks())) !=
         static_cast<std::size_t>(ranks() - 1))
    ++key;
  env.generate_unbounded<Stamp>([&, sent = false](gyre::SourceContext& ctx) mutable -> std::optional<Stamp> {
       if (sent || ctx.partition != 0) return std::nullopt;
       sent = true;
       return Stamp{key, now_us()};
     })
      .key_by([](const Stamp& s) { return s.first; })
      .reduce([](const Stamp& a, const Stamp&) { return a; })
      .for_each([&](const Stamp& s) { latency_ms = static_cast<double>(now_us() - s.second) / 1000.0; });
  auto job = env.start();
  // The record lands on the last rank; it tells everyone by cancelling once it has arrived.
  const auto t0 = std::chrono::steady_clock::now();
  if (testenv::rank() == ranks() - 1) {
    while (latency_ms < 0 && std::chrono::steady_clock::now() - t0 < milliseconds(5000))
      std::this_thread::sleep_for(milliseconds(1));
    job.cancel();
  }
  job.wait();
  // CLOCK_MONOTONIC is shared by the ranks of one machine, so the times compare.
  const double worst = testenv::session().allreduce_max(latency_ms);
  EXPECT_GE(worst, 0) << "record never arrived";
  EXPECT_LE(worst, 20.0 + 30.0) << "buffer timeout 20 ms, slack 30 ms";
}

TEST(Distributed, MetricsAreSummedOverRanksAndWrittenAsJson) {
  gyre::JobConfig c;
  c.parallelism = 2 * ranks();
  auto env = testenv::make_env(c);
  env.generate(100000, [](std::uint64_t i) { return i; })
      .name("numbers")
      .key_by([](std::uint64_t i) { return i % 777; })
      .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
      .name("sum")
      .for_each([](std::uint64_t) {});
  const auto r = env.run();
  EXPECT_EQ(r.ranks, ranks());
  EXPECT_EQ(r.operators[0].records_out, 100000U);
  EXPECT_EQ(r.operators[1].records_in, 100000U);
  EXPECT_EQ(r.operators[1].records_out, 777U);
  EXPECT_EQ(r.operators[1].bytes_in, 100000U * sizeof(std::uint64_t));
  if (ranks() > 1) {
    EXPECT_GT(r.wire_bytes, 100000U * sizeof(std::uint64_t) / 4);
  } else {
    EXPECT_EQ(r.wire_bytes, 0U);
  }
  ASSERT_EQ(r.tasks.size(), 2U);
  EXPECT_GT(r.tasks[0].busy_seconds, 0.0);
  const std::string path = testenv::temp_path("gyre_metrics_" + std::to_string(testenv::rank()) + ".json");
  r.write_json(path);
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_NE(ss.str().find("\"records_out\": 777"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("\"ranks\": " + std::to_string(ranks())), std::string::npos);
  std::remove(path.c_str());
}

TEST(Distributed, PlanErrorOnOneRankIsReportedOnEveryRank) {
  gyre::JobConfig c;
  c.parallelism = ranks();
  auto env = testenv::make_env(c);
  // The last rank's input file does not exist there (as if it were missing on that node).
  const std::string path = testenv::rank() == ranks() - 1 ? "/nonexistent/input.txt" : "/dev/null";
  env.read_text_file(path).collect();
  try {
    env.run();
    FAIL() << "ran although the last rank has no input file";
  } catch (const gyre::PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read input file '/nonexistent/input.txt'"), std::string::npos)
        << e.what();
  }
}

TEST(Distributed, BuildErrorOnOneRankStopsEveryRankBeforeDataMoves) {
  gyre::JobConfig c;
  c.parallelism = 2 * ranks();
  auto env = testenv::make_env(c);
  std::atomic<int> touched{0};
  // The text sink (parallelism 1) lives on rank 0 only; only rank 0 fails to create its file.
  env.generate(1000, [&touched](std::uint64_t i) {
       ++touched;
       return i;
     })
      .write_text("/nonexistent-dir/out.txt", [](std::uint64_t i) { return std::to_string(i); });
  try {
    env.run();
    FAIL() << "ran although rank 0 could not create its output file";
  } catch (const gyre::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("on rank 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/nonexistent-dir/out.txt"), std::string::npos) << msg;
  }
  EXPECT_EQ(touched.load(), 0) << "data moved on rank " << testenv::rank();
}

struct NoCodec {
  std::string label;  // not trivially copyable and no gyre::Codec specialisation
};

TEST(Distributed, RecordWithoutCodecCannotCrossRanks) {
  gyre::JobConfig c;
  c.parallelism = ranks();
  auto env = testenv::make_env(c);
  std::atomic<int> touched{0};
  env.generate(100, [&touched](std::uint64_t i) {
       ++touched;
       return NoCodec{std::to_string(i)};
     })
      .name("labels")
      .rebalance()
      .for_each([](const NoCodec&) {});
  if (ranks() == 1) {
    EXPECT_NO_THROW(env.run());  // in one process nothing is encoded
    return;
  }
  try {
    env.run();
    FAIL() << "ran without a codec";
  } catch (const gyre::Error& e) {
    EXPECT_NE(std::string(e.what()).find("operator 'labels'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gyre::Codec"), std::string::npos) << e.what();
  }
  EXPECT_EQ(touched.load(), 0) << "data moved before the plan was refused";
}

}  // namespace
