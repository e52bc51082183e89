// Loop checkpoints with the HDF5 store: a bulk and a delta loop fail (an injected throw) and are
// rolled back in-process to their last checkpoint, or resumed by a new run, also with another
// number of partitions: the result is always the failure-free one. In one process and (run
// with --mpi) at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gyre/io/checkpoint_store.h"
#include "gyre/iterations.h"
#include "../support/test_env.h"

namespace {

struct Kv {
  std::uint64_t k;
  std::uint64_t v;
  bool operator==(const Kv&) const = default;
  bool operator<(const Kv& o) const { return k < o.k || (k == o.k && v < o.v); }
};

int ranks() {
  const auto e = testenv::make_env({});
  return e.num_ranks();
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testenv::temp_path(std::string("gyre-ckpt-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (testenv::rank() == 0) std::system(("rm -rf '" + dir_ + "'").c_str());
    testenv::barrier();
  }
  void TearDown() override {
    gyre::clear_injected_failure();
    testenv::barrier();
    if (testenv::rank() == 0) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  gyre::LoopCheckpoints checkpoints(bool resume, gyre::CheckpointMode mode = gyre::CheckpointMode::kBoth) const {
    gyre::LoopCheckpoints c;
    c.storage = std::make_shared<gyre::io::CheckpointStore>(dir_);
    c.every = 3;
    c.mode = mode;
    c.resume = resume;
    c.fingerprint = "checkpoint test";
    c.wait = true;  // which checkpoints exist when the failure strikes does not depend on timing
    return c;
  }
  std::string dir_;
};

// A bulk loop whose step reads an aggregator (so a resume must restore it too).
std::vector<Kv> bulk(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
  gyre::JobConfig cfg;
  cfg.parallelism = parallelism;
  auto env = testenv::make_env(cfg);
  std::vector<Kv> init;
  for (std::uint64_t k = 0; k < 500; ++k) init.push_back({k, k * 7});
  gyre::IterationOptions opts("bulk");
  opts.checkpoint = ckpt;
  auto out = gyre::iterate(env.from_collection(init), 20, [](gyre::Stream<Kv> x, gyre::LoopContext& loop) {
    auto sum = std::make_shared<gyre::Aggregator>(loop.sum("sum", x.map([](const Kv& r) { return static_cast<double>(r.v); })));
    return x.map([sum](const Kv& r) {
      return Kv{r.k, (r.v * 31 + r.k + static_cast<std::uint64_t>(sum->value())) % 1000003};
    });
  }, opts).collect();
  *result = env.run();
  auto v = testenv::values(out);
  std::sort(v.begin(), v.end());
  return v;
}

// Connected components of a long path with shortcuts as a delta iteration (many supersteps).
std::vector<Kv> delta(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
  gyre::JobConfig cfg;
  cfg.parallelism = parallelism;
  auto env = testenv::make_env(cfg);
  std::vector<Kv> edges;  // both directions
  const std::uint64_t n = 60;
  for (std::uint64_t v = 0; v + 1 < n; ++v) {
    if (v % 20 == 19) continue;  // three components
    edges.push_back({v, v + 1});
    edges.push_back({v + 1, v});
  }
  std::vector<Kv> labels;
  for (std::uint64_t v = 0; v < n; ++v) labels.push_back({v, (v * 37) % 101 + 1000});  // not in id order
  auto es = env.from_collection(edges);
  auto key = [](const Kv& l) { return l.k; };
  gyre::IterationOptions opts("delta");
  opts.checkpoint = ckpt;
  auto out = gyre::iterate_delta(
                 env.from_collection(labels), env.from_collection(labels), key, 1000,
                 [&](auto& ss, gyre::Stream<Kv> ws, gyre::LoopContext&) {
                   auto cand = ws.join(es, key, key, [](const Kv& l, const Kv& e) { return Kv{e.v, l.v}; });
                   auto d = ss.template co_group<Kv>(
                       cand, key, [](const std::uint64_t& v, std::span<const Kv> g, const Kv* cur, gyre::Emit<Kv>& emit) {
                         std::uint64_t best = cur->v;
                         for (const auto& l : g) best = std::min(best, l.v);
                         if (best < cur->v) emit(Kv{v, best});
                       });
                   return gyre::DeltaStep<Kv, Kv>{d, d};
                 },
                 opts)
                 .collect();
  *result = env.run();
  auto v = testenv::values(out);
  std::sort(v.begin(), v.end());
  return v;
}

using Loop = std::vector<Kv> (*)(int, const gyre::LoopCheckpoints&, gyre::JobResult*);

void rolls_back_in_process(Loop loop, const gyre::LoopCheckpoints& off, const gyre::LoopCheckpoints& on, int at) {
  gyre::JobResult clean;
  const auto expected = loop(3, off, &clean);
  ASSERT_GT(clean.loops.at(0).supersteps, at) << "the loop must run past the failure";
  gyre::inject_failure({std::min(ranks() - 1, 2), at, gyre::FailureMode::kThrow});  // a rank with head partitions
  std::vector<Kv> got;
  const gyre::JobResult r = gyre::run_with_recovery(2, [&](bool resume) {
    gyre::LoopCheckpoints c = on;
    c.resume = resume;
    gyre::JobResult jr;
    got = loop(3, c, &jr);
    return jr;
  });
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r.restarts, 1);
  EXPECT_GT(r.loops.at(0).resumed_from, 0) << "resumed from the start, not from a checkpoint";
  EXPECT_LT(r.loops.at(0).resumed_from, at);
  EXPECT_EQ(r.loops.at(0).supersteps, clean.loops.at(0).supersteps);
  EXPECT_EQ(r.loops.at(0).steps.back().aggregators, clean.loops.at(0).steps.back().aggregators);
}

TEST_F(CheckpointTest, BulkRollsBackInProcess) {
  for (auto mode : {gyre::CheckpointMode::kHead, gyre::CheckpointMode::kTail, gyre::CheckpointMode::kBoth}) {
    SetUp();
    rolls_back_in_process(bulk, {}, checkpoints(false, mode), 11);
  }
}

TEST_F(CheckpointTest, DeltaRollsBackInProcess) {
  for (auto mode : {gyre::CheckpointMode::kHead, gyre::CheckpointMode::kTail, gyre::CheckpointMode::kBoth}) {
    SetUp();
    rolls_back_in_process(delta, {}, checkpoints(false, mode), 11);
  }
}

// A run fails and stays failed; a new run with another number of partitions resumes.
void resumes_with_other_partitions(Loop loop, const gyre::LoopCheckpoints& off, const gyre::LoopCheckpoints& on,
                                   const gyre::LoopCheckpoints& resume) {
  gyre::JobResult clean;
  const auto expected = loop(2, off, &clean);
  gyre::inject_failure({0, 12, gyre::FailureMode::kThrow});
  gyre::JobResult failed;
  EXPECT_THROW(loop(4, on, &failed), gyre::JobError);
  gyre::clear_injected_failure();
  for (int p : {3, 4}) {
    gyre::JobResult r;
    EXPECT_EQ(loop(p, resume, &r), expected) << p << " partitions";
    EXPECT_GT(r.loops.at(0).resumed_from, 0);
    EXPECT_EQ(r.loops.at(0).supersteps, clean.loops.at(0).supersteps);
  }
}

TEST_F(CheckpointTest, BulkResumesWithAnotherNumberOfPartitions) {
  resumes_with_other_partitions(bulk, {}, checkpoints(false), checkpoints(true));
}

TEST_F(CheckpointTest, DeltaResumesWithAnotherNumberOfPartitions) {
  for (auto mode : {gyre::CheckpointMode::kTail, gyre::CheckpointMode::kBoth}) {
    SetUp();
    resumes_with_other_partitions(delta, {}, checkpoints(false, mode), checkpoints(true, mode));
  }
}

TEST_F(CheckpointTest, AnotherJobsCheckpointsAreRefused) {
  gyre::JobResult r;
  bulk(2, checkpoints(false), &r);
  gyre::LoopCheckpoints other = checkpoints(true);
  other.fingerprint = "another input";
  try {
    bulk(2, other, &r);
    FAIL() << "resumed from another job's checkpoint";
  } catch (const gyre::Error& e) {
    EXPECT_NE(std::string(e.what()).find("another job"), std::string::npos) << e.what();
  }
}

}  // namespace
