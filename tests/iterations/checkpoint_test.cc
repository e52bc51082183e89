// Loop checkpoints with the HDF5 store: a bulk and a delta loop fail (an injected throw) and are
// rolled back in-process to their last checkpoint, or resumed by a new run, also with another
// number of partitions: the result is always the failure-free one. In one process and (run
// with --mpi) at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
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
std::vector<Kv> bulk_loop(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result,
                          int supersteps, std::uint64_t records) {
  gyre::JobConfig cfg;
  cfg.parallelism = parallelism;
  auto env = testenv::make_env(cfg);
  std::vector<Kv> init;
  for (std::uint64_t k = 0; k < records; ++k) init.push_back({k, k * 7});
  gyre::IterationOptions opts("bulk");
  opts.checkpoint = ckpt;
  auto out = gyre::iterate(env.from_collection(init), supersteps, [](gyre::Stream<Kv> x, gyre::LoopContext& loop) {
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
std::vector<Kv> bulk(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
  return bulk_loop(parallelism, ckpt, result, 20, 500);
}

// Connected components of a long path with shortcuts as a delta iteration (many supersteps).
// long_path: one path of 600 vertices whose smallest label is at one end (600 tiny supersteps).
std::vector<Kv> delta_loop(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result,
                           bool long_path) {
  gyre::JobConfig cfg;
  cfg.parallelism = parallelism;
  auto env = testenv::make_env(cfg);
  std::vector<Kv> edges;  // both directions
  const std::uint64_t n = long_path ? 600 : 60;
  for (std::uint64_t v = 0; v + 1 < n; ++v) {
    if (!long_path && v % 20 == 19) continue;  // three components
    edges.push_back({v, v + 1});
    edges.push_back({v + 1, v});
  }
  std::vector<Kv> labels;
  for (std::uint64_t v = 0; v < n; ++v)
    labels.push_back({v, long_path ? n - v + 1000 : (v * 37) % 101 + 1000});  // not in id order
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
std::vector<Kv> delta(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
  return delta_loop(parallelism, ckpt, result, false);
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

// ---------------------------------------------------------------- asynchronous checkpoints

// The HDF5 store, timing its writes and commits (the longest of each).
class TimedStore final : public gyre::CheckpointStorage {
 public:
  explicit TimedStore(std::string dir) : store_(std::move(dir)) {}
  std::string location() const override { return store_.location(); }
  void write_rank(const gyre::CheckpointInfo& info, int rank, const Parts& parts) const override {
    const auto t0 = std::chrono::steady_clock::now();
    store_.write_rank(info, rank, parts);
    note(max_write_, t0);
  }
  bool written(const gyre::CheckpointInfo& info) const override { return store_.written(info); }
  void commit(const gyre::CheckpointInfo& info) const override {
    const auto t0 = std::chrono::steady_clock::now();
    store_.commit(info);
    note(max_commit_, t0);
  }
  int discard(int after) const override { return store_.discard(after); }
  Listing list(const std::string& fingerprint) const override { return store_.list(fingerprint); }
  std::string verify(const Entry& entry) const override { return store_.verify(entry); }
  std::map<std::string, std::string> read_parts(const Entry& entry) const override { return store_.read_parts(entry); }
  double max_write() const {
    std::lock_guard lock(mu_);
    return max_write_;
  }
  double max_commit() const {
    std::lock_guard lock(mu_);
    return max_commit_;
  }

 private:
  void note(double& max, std::chrono::steady_clock::time_point t0) const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard lock(mu_);
    max = std::max(max, s);
  }
  gyre::io::CheckpointStore store_;
  mutable std::mutex mu_;
  mutable double max_write_ = 0;
  mutable double max_commit_ = 0;
};

struct OnDisk {
  int superstep;
  std::string kind;
  bool committed;
};
// The entry directories in `dir` (rank 0 looks), ascending by superstep.
std::vector<OnDisk> on_disk(const std::string& dir) {
  std::vector<OnDisk> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    int s = 0;
    if (std::sscanf(name.c_str(), "head-%d", &s) != 1 && std::sscanf(name.c_str(), "tail-%d", &s) != 1) continue;
    struct stat st {};
    out.push_back({s, name.substr(0, 4), ::stat((dir + "/" + name + "/MANIFEST.h5").c_str(), &st) == 0});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const OnDisk& a, const OnDisk& b) { return a.superstep < b.superstep; });
  return out;
}
std::string describe(const std::vector<OnDisk>& entries) {
  std::string out;
  for (const auto& e : entries) out += e.kind + "-" + std::to_string(e.superstep) + (e.committed ? " " : "(incomplete) ");
  return out;
}

class AsyncCheckpointTest : public CheckpointTest {
 protected:
  gyre::LoopCheckpoints async(gyre::CheckpointMode mode, bool resume = false) {
    gyre::LoopCheckpoints c;
    store_ = std::make_shared<TimedStore>(dir_);
    c.storage = store_;
    c.every = 5;
    c.mode = mode;
    c.resume = resume;
    c.fingerprint = "async checkpoint test";
    c.wait = false;  // the default: writes overlap the next supersteps
    return c;
  }

  // After a run of `loop` (asynchronous checkpoints, faster supersteps than writes): every entry
  // written is committed, the newest one is at most about one entry's write and commit before
  // the end, the writer never held more than one entry (and a commit), and the directory holds
  // the newest two self-contained entries and the tails after the oldest of them, nothing else.
  // Then a resume starts from the newest entry and gives the same result.
  void keeps_up(Loop loop, gyre::CheckpointMode mode, bool tails_self_contained) {
    gyre::JobResult clean;
    const auto expected = loop(2, {}, &clean);
    gyre::JobResult r;
    EXPECT_EQ(loop(2, async(mode), &r), expected);
    const gyre::LoopMetrics& m = r.loops.at(0);
    ASSERT_EQ(m.supersteps, clean.loops.at(0).supersteps);
    ASSERT_GE(m.supersteps, 500) << "too few supersteps for this test";
    // The writer never queues more than one entry (rank 0: and the commit of the one before).
    for (long long backlog : testenv::gather(std::vector<long long>{m.checkpoint_backlog}))
      EXPECT_LE(backlog, 2) << "entries queued up in the checkpoint writer";
    const auto slowest = testenv::gather(std::vector<double>{store_->max_write() + store_->max_commit()});
    const double entry_seconds = *std::max_element(slowest.begin(), slowest.end());
    if (testenv::rank() == 0) {
      EXPECT_GE(m.checkpoints, 1);
      EXPECT_EQ(m.checkpoints_committed, m.checkpoints) << "entries written but never committed";
      EXPECT_GT(m.checkpoints_skipped, 0) << "supersteps were not faster than writes: the test shows nothing";
      const auto entries = on_disk(dir_);
      ASSERT_FALSE(entries.empty()) << "no checkpoint committed";
      const int newest = entries.back().superstep;
      double after = 0;  // seconds the loop ran after the newest entry
      for (const auto& step : m.steps)
        if (step.superstep > newest) after += step.seconds;
      EXPECT_LE(after, 2 * entry_seconds + 0.5)
          << "the newest committed entry is superstep " << newest << " of " << m.supersteps << "; the loop ran "
          << after << " s after it, an entry takes " << entry_seconds << " s to write and commit";
      int self_contained = 0;
      for (const auto& e : entries) {
        EXPECT_TRUE(e.committed) << "an uncommitted entry is left: " << describe(entries);
        if (e.kind == "head" || tails_self_contained) ++self_contained;
      }
      EXPECT_LE(self_contained, 2) << describe(entries);
      // (A tail after superstep 1 is replayed on the loop's initial input.)
      EXPECT_TRUE(entries.front().kind == "head" || entries.front().superstep == 1 || tails_self_contained)
          << "tails without the head before them are kept: " << describe(entries);
    }
    testenv::barrier();
    int newest = 0;
    if (testenv::rank() == 0) newest = on_disk(dir_).back().superstep;
    newest = static_cast<int>(testenv::sum_ranks(newest));
    gyre::JobResult resumed;
    EXPECT_EQ(loop(2, async(mode, true), &resumed), expected);
    EXPECT_EQ(resumed.loops.at(0).resumed_from, newest) << "the resume did not start from the newest entry";
  }

  static std::vector<Kv> bulk_long(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
    return bulk_loop(parallelism, ckpt, result, 2000, 8);
  }
  static std::vector<Kv> delta_long(int parallelism, const gyre::LoopCheckpoints& ckpt, gyre::JobResult* result) {
    return delta_loop(parallelism, ckpt, result, true);
  }

  std::shared_ptr<TimedStore> store_;
};

TEST_F(AsyncCheckpointTest, BulkKeepsUpWithFastSupersteps) {
  keeps_up(bulk_long, gyre::CheckpointMode::kBoth, true);
}

TEST_F(AsyncCheckpointTest, DeltaKeepsUpWithFastSupersteps) {
  for (auto mode : {gyre::CheckpointMode::kBoth, gyre::CheckpointMode::kTail, gyre::CheckpointMode::kHead}) {
    SetUp();
    SCOPED_TRACE(mode == gyre::CheckpointMode::kBoth ? "both" : mode == gyre::CheckpointMode::kTail ? "tail" : "head");
    keeps_up(delta_long, mode, false);
  }
}

// A run without resume starts a new chain: the old entries go (only the store's files), and a
// resume after it fails never picks up a superstep of the old run.
TEST_F(CheckpointTest, FreshRunRemovesOldCheckpoints) {
  gyre::JobResult r;
  const auto expected = bulk(2, checkpoints(false), &r);  // entries up to superstep 19
  if (testenv::rank() == 0) {
    std::ofstream(dir_ + "/notes.txt") << "not gyre's\n";
    ::mkdir((dir_ + "/head-000001").c_str(), 0755);
    std::ofstream(dir_ + "/head-000001/mine.txt") << "not gyre's either\n";
    ::mkdir((dir_ + "/tail-000031").c_str(), 0755);               // an abandoned incomplete entry
  }
  testenv::barrier();
  std::vector<std::string> logged;
  gyre::LoopCheckpoints fresh = checkpoints(false);
  fresh.log = [&](const std::string& m) { logged.push_back(m); };
  gyre::inject_failure({0, 8, gyre::FailureMode::kThrow});
  EXPECT_THROW(bulk(2, fresh, &r), gyre::JobError);
  gyre::clear_injected_failure();
  if (testenv::rank() == 0) {
    ASSERT_FALSE(logged.empty());
    EXPECT_NE(logged.front().find("old checkpoint(s) from " + dir_), std::string::npos) << logged.front();
    // (The old run left supersteps 15 to 19; the failed one committed entries before 8 only.)
    for (const auto& e : on_disk(dir_)) {
      EXPECT_LT(e.superstep, 10) << "an entry of the old run is left: " << describe(on_disk(dir_));
      if (e.committed) {
        EXPECT_LT(e.superstep, 8) << describe(on_disk(dir_));
      }
    }
    std::ifstream notes(dir_ + "/notes.txt");
    EXPECT_TRUE(notes.good()) << "an unrelated file was removed";
    std::ifstream mine(dir_ + "/head-000001/mine.txt");
    EXPECT_TRUE(mine.good()) << "an unrelated file in an entry directory was removed";
  } else {
    EXPECT_TRUE(logged.empty()) << "only rank 0 removes, and says so";
  }
  gyre::JobResult resumed;
  EXPECT_EQ(bulk(2, checkpoints(true), &resumed), expected);
  EXPECT_GT(resumed.loops.at(0).resumed_from, 0);
  EXPECT_LT(resumed.loops.at(0).resumed_from, 8) << "resumed from a superstep of the old run";
}

}  // namespace
