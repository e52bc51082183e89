// Job settings the runtime refuses or caps (JobConfig::validate), a job of many partitions, and
// the metrics file of several jobs (valid JSON, read back with nlohmann-json).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "gyre/core.h"

namespace {

TEST(Limits, ParallelismAboveTheCapIsRefusedWithTheReason) {
  gyre::JobConfig c;
  c.parallelism = 1000;
  try {
    gyre::Environment env(c);
    FAIL() << "parallelism 1000 was accepted";
  } catch (const gyre::PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("parallelism 1000: at most 512 partitions per operator"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("P^2 channels"), std::string::npos) << e.what();
  }
  // An operator's own parallelism has the same cap.
  gyre::JobConfig ok;
  ok.parallelism = 2;
  gyre::Environment env(ok);
  env.generate(10, [](std::uint64_t i) { return i; }).map([](std::uint64_t i) { return i; }).parallelism(600).for_each([](std::uint64_t) {});
  EXPECT_THROW(env.run(), gyre::PlanError);
}

TEST(Limits, ThreadsAreCappedWithAWarning) {
  gyre::JobConfig c;
  c.slots = 100000;
  const auto warnings = c.validate();
  ASSERT_EQ(warnings.size(), 1U);
  EXPECT_NE(warnings[0].find("100000 worker threads per rank: using " + std::to_string(gyre::JobConfig::max_slots())),
            std::string::npos)
      << warnings[0];
  const gyre::JobConfig r = c.resolved(1);
  EXPECT_EQ(r.slots, gyre::JobConfig::max_slots());
  EXPECT_EQ(r.parallelism, gyre::JobConfig::max_slots());  // the default: one partition per slot
  gyre::JobConfig many;
  many.slots = 8;
  EXPECT_EQ(many.resolved(1000).parallelism, gyre::JobConfig::kMaxParallelism);  // the default is capped too
  EXPECT_TRUE(many.validate().empty());
  gyre::JobConfig negative;
  negative.parallelism = -1;
  EXPECT_THROW(negative.validate(), gyre::PlanError);
  // A job with the capped thread count runs.
  gyre::Environment env(c);
  auto out = env.generate(1000, [](std::uint64_t i) { return i; }).collect();
  env.run();
  EXPECT_EQ(out.values().size(), 1000U);
}

// 256 partitions: every hash exchange has 256^2 channels. A superstep's control messages (P per
// consumer) no longer make each consumer check all its P output channels each, which was P^3.
TEST(Limits, ManyPartitionsRunShufflesAndIterations) {
  gyre::JobConfig c;
  c.parallelism = 256;
  c.slots = 2;
  gyre::Environment env(c);
  auto sums = env.generate(20000, [](std::uint64_t i) { return i; })
                  .key_by([](std::uint64_t i) { return i % 1000; })
                  .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
                  .collect();
  const auto r = env.run();
  ASSERT_EQ(sums.values().size(), 1000U);
  std::uint64_t total = 0;
  for (const auto v : sums.values()) total += v;
  EXPECT_EQ(total, 20000ULL * 19999ULL / 2);
  EXPECT_EQ(r.tasks.at(0).subtasks, 256);
}

TEST(Metrics, JobsFileIsValidJsonWithEveryJob) {
  gyre::JobResult load;
  load.seconds = 1.5;
  load.operators.push_back({0, "read \"edges\"\n", 10, 10, 80, 80});
  gyre::JobResult run;
  run.ranks = 2;
  gyre::LoopMetrics loop;
  loop.name = "pagerank";
  loop.kind = "bulk";
  loop.ended_by = gyre::kEndedMaxSupersteps;
  gyre::SuperstepMetrics st;
  st.superstep = 1;
  st.size = 7;
  st.exchange_bytes = 100;
  st.wire_bytes = 50;
  st.aggregators = {{"residual", 0.25}, {"min", std::numeric_limits<double>::infinity()}};
  loop.steps.push_back(st);
  run.loops.push_back(loop);
  const std::string path = ::testing::TempDir() + "/gyre_jobs_metrics.json";
  gyre::write_jobs_json(path, {{"load", load}, {"pagerank", run}});
  std::ifstream f(path);
  const auto j = nlohmann::json::parse(f);  // throws if it is not JSON
  ASSERT_EQ(j.at("jobs").size(), 2U);
  EXPECT_EQ(j["jobs"][0]["name"], "load");
  EXPECT_EQ(j["jobs"][0]["operators"][0]["name"], "read \"edges\"\n");
  EXPECT_EQ(j["jobs"][0]["seconds"], 1.5);
  EXPECT_EQ(j["jobs"][1]["name"], "pagerank");
  const auto& step = j["jobs"][1]["loops"][0]["steps"][0];
  EXPECT_EQ(step["size"], 7);
  EXPECT_EQ(step["exchange_bytes"], 100);
  EXPECT_EQ(step["wire_bytes"], 50);
  EXPECT_EQ(step["aggregators"]["residual"], 0.25);
  EXPECT_TRUE(step["aggregators"]["min"].is_null());
  EXPECT_EQ(j["jobs"][1]["loops"][0]["ended_by"], gyre::kEndedMaxSupersteps);
  // One job alone: the same fields at the top level.
  const auto one = nlohmann::json::parse(run.to_json());
  EXPECT_EQ(one["loops"][0]["steps"][0]["wire_bytes"], 50);
  std::remove(path.c_str());
}

}  // namespace
