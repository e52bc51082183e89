// Every operator on randomised input against a plain serial reference, at parallelism 1, 2, 4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "gyre/core.h"
#include "../support/test_env.h"

namespace {

struct Rec {
  std::uint64_t key;
  std::int64_t value;
  bool operator==(const Rec&) const = default;
  bool operator<(const Rec& o) const { return key != o.key ? key < o.key : value < o.value; }
};

std::vector<Rec> random_recs(std::size_t n, std::uint64_t keys, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Rec> v(n);
  for (auto& r : v) r = {rng() % keys, static_cast<std::int64_t>(rng() % 2001) - 1000};
  return v;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Serial reference of a per-key sum.
std::vector<Rec> key_sums(const std::vector<Rec>& in) {
  std::map<std::uint64_t, std::int64_t> ref;
  for (const auto& r : in) ref[r.key] += r.value;
  std::vector<Rec> out;
  for (const auto& [k, v] : ref) out.push_back({k, v});
  return out;
}

// key_by -> reduce(sum) in `env` against the serial reference.
void expect_key_sums(gyre::Environment& env, const std::vector<Rec>& in) {
  auto out = env.from_collection(in)
                 .key_by([](const Rec& r) { return r.key; })
                 .reduce([](const Rec& a, const Rec& b) { return Rec{a.key, a.value + b.value}; })
                 .collect();
  env.run();
  EXPECT_EQ(sorted(testenv::values(out)), key_sums(in));
}

class OperatorTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::JobConfig config() const {
    gyre::JobConfig c;
    c.parallelism = GetParam();
    c.slots = 2;
    c.batch_bytes = 512;  // small batches: many batches, many exchanges, partial buffers
    return c;
  }
  unsigned seed() const { return 1234U + static_cast<unsigned>(GetParam()); }
};

TEST_P(OperatorTest, MapFilterChain) {
  const auto in = random_recs(20000, 1000, seed());
  auto env = testenv::make_env(config());
  auto out = env.from_collection(in)
                 .map([](const Rec& r) { return Rec{r.key, r.value * 3 + 1}; })
                 .filter([](const Rec& r) { return r.value % 2 == 0; })
                 .collect();
  env.run();
  std::vector<Rec> expect;
  for (const auto& r : in) {
    const Rec m{r.key, r.value * 3 + 1};
    if (m.value % 2 == 0) expect.push_back(m);
  }
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, FlatMapWithStrings) {
  std::mt19937 rng(seed());
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) {
    std::string l;
    const int words = static_cast<int>(rng() % 6);
    for (int w = 0; w < words; ++w) l += "w" + std::to_string(rng() % 50) + " ";
    lines.push_back(l);
  }
  auto env = testenv::make_env(config());
  auto out = env.from_collection(lines)
                 .flat_map<std::string>([](const std::string& l, gyre::Emit<std::string>& emit) {
                   std::size_t i = 0;
                   while (i < l.size()) {
                     const std::size_t j = l.find(' ', i);
                     if (j > i) emit(l.substr(i, j - i));
                     i = j + 1;
                   }
                 })
                 .collect();
  env.run();
  std::vector<std::string> expect;
  for (const auto& l : lines) {
    std::size_t i = 0;
    while (i < l.size()) {
      const std::size_t j = l.find(' ', i);
      if (j > i) expect.push_back(l.substr(i, j - i));
      i = j + 1;
    }
  }
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, KeyByReduce) {
  auto env = testenv::make_env(config());
  expect_key_sums(env, random_recs(50000, 777, seed()));
}

TEST_P(OperatorTest, KeyByPartitionPutsEveryKeyInOnePartition) {
  const auto in = random_recs(20000, 500, seed());
  auto env = testenv::make_env(config());
  using Seen = std::pair<std::uint64_t, std::int64_t>;  // key, partition that saw it
  std::mutex mu;
  std::vector<Seen> seen;
  env.from_collection(in)
      .key_by([](const Rec& r) { return r.key; })
      .partition()
      .for_each([&](const Rec& r, int part) {
        std::lock_guard lock(mu);
        seen.emplace_back(r.key, part);
      });
  env.run();
  const auto all = testenv::gather(seen);
  ASSERT_EQ(all.size(), in.size());
  std::map<std::uint64_t, std::set<std::int64_t>> parts;
  for (const auto& [k, p] : all) parts[k].insert(p);
  for (const auto& [k, ps] : parts) EXPECT_EQ(ps.size(), 1U) << "key " << k << " in " << ps.size() << " partitions";
  std::set<std::int64_t> used;
  for (const auto& [k, ps] : parts) used.insert(*ps.begin());
  EXPECT_EQ(static_cast<int>(used.size()), GetParam()) << "500 keys should reach every partition";
}

TEST_P(OperatorTest, KeyByAggregateWithStringKeys) {
  const auto in = random_recs(30000, 300, seed());
  auto env = testenv::make_env(config());
  struct MinMax {
    std::int64_t lo = INT64_MAX;
    std::int64_t hi = INT64_MIN;
    std::int64_t n = 0;
  };
  auto out = env.from_collection(in)
                 .key_by([](const Rec& r) { return "k" + std::to_string(r.key % 97); })
                 .aggregate(MinMax{}, [](MinMax& a, const Rec& r) {
                   a.lo = std::min(a.lo, r.value);
                   a.hi = std::max(a.hi, r.value);
                   ++a.n;
                 })
                 .collect();
  env.run();
  std::map<std::string, MinMax> ref;
  for (const auto& r : in) {
    auto& a = ref["k" + std::to_string(r.key % 97)];
    a.lo = std::min(a.lo, r.value);
    a.hi = std::max(a.hi, r.value);
    ++a.n;
  }
  auto got = testenv::values(out);
  ASSERT_EQ(got.size(), ref.size());
  for (const auto& [k, a] : got) {
    ASSERT_TRUE(ref.count(k)) << k;
    EXPECT_EQ(a.lo, ref[k].lo);
    EXPECT_EQ(a.hi, ref[k].hi);
    EXPECT_EQ(a.n, ref[k].n);
  }
}

TEST_P(OperatorTest, GeneratorUnionAndDifferentParallelism) {
  auto env = testenv::make_env(config());
  auto a = env.generate(10000, [](std::uint64_t i) { return static_cast<std::int64_t>(i); });
  auto b = env.generate(5000, [](std::uint64_t i) { return -static_cast<std::int64_t>(i) - 1; });
  b.parallelism(1);  // a rebalance edge into the union when parallelism > 1
  auto out = a.union_with(b).map([](std::int64_t x) { return x * 2; }).collect();
  env.run();
  std::vector<std::int64_t> expect;
  for (std::int64_t i = 0; i < 10000; ++i) expect.push_back(i * 2);
  for (std::int64_t i = 0; i < 5000; ++i) expect.push_back((-i - 1) * 2);
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, HashJoin) {
  const auto left = random_recs(20000, 500, seed());
  const auto right = random_recs(3000, 700, seed() + 1);
  auto env = testenv::make_env(config());
  auto l = env.from_collection(left);
  auto r = env.from_collection(right);
  auto out = l.join(r, [](const Rec& x) { return x.key; }, [](const Rec& y) { return y.key; },
                    [](const Rec& x, const Rec& y) { return Rec{x.key, x.value * 10000 + y.value}; })
                 .collect();
  env.run();
  std::multimap<std::uint64_t, std::int64_t> idx;
  for (const auto& y : right) idx.emplace(y.key, y.value);
  std::vector<Rec> expect;
  for (const auto& x : left) {
    auto [lo, hi] = idx.equal_range(x.key);
    for (auto it = lo; it != hi; ++it) expect.push_back({x.key, x.value * 10000 + it->second});
  }
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, BroadcastJoinAndSelfJoinFromOneSource) {
  const auto in = random_recs(8000, 400, seed());
  auto env = testenv::make_env(config());
  auto src = env.from_collection(in);
  auto small = src.filter([](const Rec& r) { return r.value > 900; });
  // Both join inputs come from one source: the probe side must not be refused while the build
  // side is still arriving (that would deadlock).
  auto out = src.join(small.broadcast(), [](const Rec& x) { return x.key; },
                      [](const Rec& y) { return y.key; },
                      [](const Rec& x, const Rec& y) { return Rec{x.key, x.value + y.value}; })
                 .collect();
  env.run();
  std::multimap<std::uint64_t, std::int64_t> idx;
  for (const auto& y : in)
    if (y.value > 900) idx.emplace(y.key, y.value);
  std::vector<Rec> expect;
  for (const auto& x : in) {
    auto [lo, hi] = idx.equal_range(x.key);
    for (auto it = lo; it != hi; ++it) expect.push_back({x.key, x.value + it->second});
  }
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, CoGroup) {
  const auto left = random_recs(6000, 300, seed());
  const auto right = random_recs(4000, 400, seed() + 7);
  auto env = testenv::make_env(config());
  using Out = std::pair<std::uint64_t, std::pair<std::int64_t, std::int64_t>>;  // key, (sumL, countR)
  auto out = env.from_collection(left)
                 .co_group<Out>(env.from_collection(right), [](const Rec& x) { return x.key; },
                                [](const Rec& y) { return y.key; },
                                [](const std::uint64_t& k, std::span<const Rec> ls, std::span<const Rec> rs,
                                   gyre::Emit<Out>& emit) {
                                  std::int64_t s = 0;
                                  for (const auto& l : ls) s += l.value;
                                  emit(Out{k, {s, static_cast<std::int64_t>(rs.size())}});
                                })
                 .collect();
  env.run();
  std::map<std::uint64_t, std::pair<std::int64_t, std::int64_t>> ref;
  for (const auto& l : left) ref[l.key].first += l.value;
  for (const auto& r : right) ref[r.key].second += 1;
  std::vector<Out> expect(ref.begin(), ref.end());
  EXPECT_EQ(sorted(testenv::values(out)), expect);
}

TEST_P(OperatorTest, BroadcastDeliversEveryRecordToEveryPartition) {
  auto env = testenv::make_env(config());
  auto out = env.generate(1000, [](std::uint64_t i) { return i; })
                 .broadcast()
                 .map([](std::uint64_t i) { return i; })
                 .collect();
  env.run();
  std::vector<std::uint64_t> expect;
  for (int p = 0; p < GetParam(); ++p)
    for (std::uint64_t i = 0; i < 1000; ++i) expect.push_back(i);
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
}

TEST_P(OperatorTest, RebalanceSpreadsSkewedInput) {
  auto env = testenv::make_env(config());
  std::vector<std::atomic<int>> seen(4);
  auto src = env.generate(20000, [](std::uint64_t i) { return i; });
  src.parallelism(1);  // all records start in one partition
  src.rebalance().for_each([&seen](std::uint64_t, int partition) { seen[static_cast<std::size_t>(partition)]++; },
                           GetParam());
  env.run();
  long long total = 0;
  for (int p = 0; p < GetParam(); ++p) {
    const long long n = testenv::sum_ranks(seen[static_cast<std::size_t>(p)]);
    total += n;
    EXPECT_GT(n, 0) << "partition " << p << " got nothing";
  }
  EXPECT_EQ(total, 20000);
}

TEST_P(OperatorTest, FanOutToTwoConsumers) {
  const auto in = random_recs(5000, 100, seed());
  auto env = testenv::make_env(config());
  auto src = env.from_collection(in);
  auto pos = src.filter([](const Rec& r) { return r.value >= 0; }).collect();
  auto sums = src.key_by([](const Rec& r) { return r.key; })
                  .reduce([](const Rec& a, const Rec& b) { return Rec{a.key, a.value + b.value}; })
                  .collect();
  env.run();
  std::vector<Rec> expect_pos;
  for (const auto& r : in)
    if (r.value >= 0) expect_pos.push_back(r);
  EXPECT_EQ(sorted(testenv::values(pos)), sorted(expect_pos));
  EXPECT_EQ(sorted(testenv::values(sums)), key_sums(in));
}

TEST_P(OperatorTest, TextFileInTextFileOut) {
  const std::string in_path = testenv::temp_path("gyre_in_" + std::to_string(GetParam()) + ".txt");
  const std::string out_path = testenv::temp_path("gyre_out_" + std::to_string(GetParam()) + ".txt");
  std::vector<std::string> lines;
  {
    std::mt19937 rng(seed());
    std::ofstream f(testenv::rank() == 0 ? in_path : "/dev/null");  // one writer, all ranks read
    for (int i = 0; i < 5000; ++i) {
      std::string l = "line " + std::to_string(i) + std::string(rng() % 40, 'x');
      if (i % 37 == 0) l.clear();  // empty lines are lines too
      lines.push_back(l);
      f << l << (i % 11 == 0 ? "\r\n" : "\n");
    }
  }
  testenv::barrier();
  auto env = testenv::make_env(config());
  env.read_text_file(in_path).map([](const std::string& s) { return s + "!"; }).write_text(out_path, [](const std::string& s) { return s; });
  env.run();
  testenv::barrier();  // rank 0 holds the sink; its file is in place once rank 0 returns
  std::vector<std::string> got;
  std::ifstream f(out_path);
  for (std::string l; std::getline(f, l);) got.push_back(l);
  std::vector<std::string> expect;
  for (const auto& l : lines) expect.push_back(l + "!");
  EXPECT_EQ(sorted(got), sorted(expect));
  testenv::barrier();
  if (testenv::rank() == 0) {
    std::remove(in_path.c_str());
    std::remove(out_path.c_str());
  }
}

TEST_P(OperatorTest, MetricsCountRecords) {
  auto env = testenv::make_env(config());
  env.generate(10000, [](std::uint64_t i) { return i; })
      .name("numbers")
      .filter([](std::uint64_t i) { return i % 4 == 0; })
      .name("quarter")
      .for_each([](std::uint64_t) {});
  const auto result = env.run();
  // The filter and the sink run fused: one operator, the records in of the filter and out of it
  // (into the sink function).
  ASSERT_EQ(result.operators.size(), 2U);
  EXPECT_EQ(result.operators[0].records_out, 10000U);
  EXPECT_EQ(result.operators[1].name, "quarter -> sink: for_each");
  EXPECT_EQ(result.operators[1].records_in, 10000U);
  EXPECT_EQ(result.operators[1].records_out, 2500U);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, OperatorTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

// Four partitions of every operator on a single slot: cooperative scheduling never needs a
// thread per subtask.
TEST(Scheduling, ManySubtasksOnOneSlot) {
  gyre::JobConfig c;
  c.parallelism = 4;
  c.slots = 1;
  c.batch_bytes = 256;
  auto env = testenv::make_env(c);
  expect_key_sums(env, random_recs(20000, 100, 99));
}

}  // namespace
