// Per-record fusion of map / filter / flat_map (and a for_each sink): fused chains give what the
// same operators give unfused, at parallelism 1, 2, 4; the plan shows one node per fused chain;
// metrics, errors, names and parallelism stay the user's.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
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

std::vector<Rec> random_recs(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Rec> v(n);
  for (auto& r : v) r = {rng() % 1000, static_cast<std::int64_t>(rng() % 2001) - 1000};
  return v;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Number of nodes in the plan, from explain's "== StreamGraph (logical plan): N operators ==".
std::size_t nodes(const std::string& plan) {
  const std::string head = "== StreamGraph (logical plan): ";
  const std::size_t p = plan.find(head);
  return p == std::string::npos ? 0 : std::stoul(plan.substr(p + head.size()));
}

class FusionTest : public ::testing::TestWithParam<int> {
 protected:
  gyre::JobConfig config() const {
    gyre::JobConfig c;
    c.parallelism = GetParam();
    c.slots = 2;
    c.batch_bytes = 512;  // many batches, partial ones
    return c;
  }
  unsigned seed() const { return 77U + static_cast<unsigned>(GetParam()); }
};

Rec f1(const Rec& r) { return {r.key * 7 + 1, r.value - 3}; }
bool g1(const Rec& r) { return (r.key + static_cast<std::uint64_t>(r.value)) % 3 != 0; }
Rec f2(const Rec& r) { return {r.key, r.value * 2}; }
bool g2(const Rec& r) { return r.value > -500; }
void fm(const Rec& r, gyre::Emit<Rec>& emit) {
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(r.key % 3); ++i) emit(Rec{r.key + 1, r.value + i});
}

// Chains of map / filter / flat_map, fused, unfused (a forward() between every two operators
// ends a fused chain) and serially, on the same random input.
TEST_P(FusionTest, ChainsGiveWhatUnfusedOperatorsGive) {
  const auto in = random_recs(30000, seed());
  for (int shape = 0; shape < 6; ++shape) {
    SCOPED_TRACE("shape " + std::to_string(shape));
    std::vector<Rec> expect;
    for (const Rec& r : in) {
      auto emit_all = [&](const Rec& x) {
        std::vector<Rec> v;
        gyre::Emit<Rec> e(&v, nullptr, ~std::size_t{0});
        fm(x, e);
        for (const auto& y : v) expect.push_back(y);
      };
      switch (shape) {
        case 0: if (g1(f1(r))) expect.push_back(f1(r)); break;
        case 1: if (g1(r) && g2(f2(r))) expect.push_back(f2(r)); break;
        case 2: emit_all(f2(f1(r))); break;
        case 3: if (g2(r)) emit_all(r); break;
        case 4: if (g1(r) && g2(r)) expect.push_back(f2(f1(r))); break;
        case 5: if (g2(f1(r))) expect.push_back(f1(r)); break;
      }
    }
    std::vector<std::vector<Rec>> got;
    for (bool fused : {true, false}) {
      auto env = testenv::make_env(config());
      auto src = env.from_collection(in);
      gyre::Collected<Rec> out(nullptr);
      auto lam = [](auto fn) { return [fn](const auto&... a) { return fn(a...); }; };
      if (fused) {
        switch (shape) {
          case 0: out = src.map(lam(f1)).filter(lam(g1)).collect(); break;
          case 1: out = src.filter(lam(g1)).map(lam(f2)).filter(lam(g2)).collect(); break;
          case 2: out = src.map(lam(f1)).map(lam(f2)).flat_map<Rec>(fm).collect(); break;
          case 3: out = src.filter(g2).flat_map<Rec>(fm).collect(); break;
          case 4: out = src.filter(lam(g1)).filter(lam(g2)).map(lam(f1)).map(lam(f2)).collect(); break;
          case 5: out = src.map(f1).filter(g2).collect(); break;
        }
      } else {
        switch (shape) {
          case 0: out = src.map(lam(f1)).forward().filter(lam(g1)).collect(); break;
          case 1: out = src.filter(lam(g1)).forward().map(lam(f2)).forward().filter(lam(g2)).collect(); break;
          case 2: out = src.map(lam(f1)).forward().map(lam(f2)).forward().flat_map<Rec>(fm).collect(); break;
          case 3: out = src.filter(g2).forward().flat_map<Rec>(fm).collect(); break;
          case 4:
            out = src.filter(lam(g1)).forward().filter(lam(g2)).forward().map(lam(f1)).forward().map(lam(f2)).collect();
            break;
          case 5: out = src.map(f1).forward().filter(g2).collect(); break;
        }
      }
      const std::string plan = env.explain();
      env.run();
      got.push_back(sorted(testenv::values(out)));
      // source, the chain (one node fused, one per operator unfused), the sink.
      const std::size_t ops[] = {2, 3, 3, 2, 4, 2};
      EXPECT_EQ(nodes(plan), fused ? 3U : 2U + ops[shape]) << plan;
    }
    EXPECT_EQ(got[0], sorted(expect));
    EXPECT_EQ(got[1], sorted(expect));
  }
}

// A for_each after a chain runs inside it: the whole pipeline is one loop.
TEST_P(FusionTest, SinkFusesAndCountsRecords) {
  const auto in = random_recs(20000, seed());
  auto env = testenv::make_env(config());
  std::vector<std::int64_t> sums(static_cast<std::size_t>(GetParam()) * 8, 0);
  env.from_collection(in)
      .map([](const Rec& r) { return f1(r); })
      .filter([](const Rec& r) { return g1(r); })
      .for_each([&sums](const Rec& r, int part) { sums[static_cast<std::size_t>(part) * 8] += r.value; });
  const std::string plan = env.explain();
  EXPECT_NE(plan.find("map -> filter -> sink: for_each"), std::string::npos) << plan;
  const auto result = env.run();
  std::int64_t sum = 0, expect = 0;
  std::uint64_t kept = 0;
  for (auto s : sums) sum += s;
  for (const Rec& r : in)
    if (g1(f1(r))) {
      expect += f1(r).value;
      ++kept;
    }
  EXPECT_EQ(testenv::sum_ranks(sum), expect);
  ASSERT_EQ(result.operators.size(), 2U);
  EXPECT_EQ(result.operators[1].name, "map -> filter -> sink: for_each");
  EXPECT_EQ(result.operators[1].records_in, in.size());
  EXPECT_EQ(result.operators[1].records_out, kept);
}

// Non-trivial records (strings) through the buffered paths.
TEST_P(FusionTest, StringRecords) {
  std::vector<std::string> in;
  for (int i = 0; i < 5000; ++i) in.push_back("w" + std::to_string(i * 37 % 1001));
  auto env = testenv::make_env(config());
  auto out = env.from_collection(in)
                 .map([](const std::string& s) { return s + "!"; })
                 .filter([](const std::string& s) { return s.size() % 2 == 0; })
                 .flat_map<std::string>([](const std::string& s, gyre::Emit<std::string>& emit) {
                   emit(s);
                   emit(s.substr(1));
                 })
                 .collect();
  std::atomic<std::uint64_t> n{0};
  env.from_collection(in)
      .map([](const std::string& s) { return s + "?"; })
      .filter([](const std::string& s) { return s.size() % 2 == 1; })
      .for_each([&n](const std::string& s) { n += s.size(); });
  env.run();
  std::vector<std::string> expect;
  std::uint64_t expect_n = 0;
  for (const auto& s : in) {
    const std::string t = s + "!";
    if (t.size() % 2 == 0) {
      expect.push_back(t);
      expect.push_back(t.substr(1));
    }
    const std::string u = s + "?";
    if (u.size() % 2 == 1) expect_n += u.size();
  }
  EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
  EXPECT_EQ(static_cast<std::uint64_t>(testenv::sum_ranks(static_cast<long long>(n.load()))), expect_n);
}

TEST_P(FusionTest, MetricsOfAFusedNode) {
  auto env = testenv::make_env(config());
  auto out = env.generate(10000, [](std::uint64_t i) { return i; })
                 .map([](std::uint64_t i) { return i * 3; })
                 .filter([](std::uint64_t i) { return i % 4 == 0; })
                 .name("quarter")
                 .collect();
  const auto result = env.run();
  ASSERT_EQ(result.operators.size(), 3U);
  EXPECT_EQ(result.operators[1].name, "map -> quarter");
  EXPECT_EQ(result.operators[1].records_in, 10000U);
  EXPECT_EQ(result.operators[1].records_out, 2500U);
  EXPECT_EQ(result.operators[2].records_in, 2500U);
  EXPECT_EQ(testenv::values(out).size(), 2500U);
}

// Each operator of a chain keeps its name; the node is named after them, its kind after theirs.
TEST_P(FusionTest, NamesOfAFusedChain) {
  auto env = testenv::make_env(config());
  env.from_collection(random_recs(100, seed()))
      .map([](const Rec& r) { return r; })
      .name("parse")
      .filter([](const Rec&) { return true; })
      .name("keep")
      .map([](const Rec& r) { return r.value; })
      .collect();
  const std::string plan = env.explain();
  EXPECT_NE(plan.find("map -> filter -> map 'parse -> keep -> map'"), std::string::npos) << plan;
  EXPECT_EQ(nodes(plan), 3U) << plan;
  env.run();
}

// The error names the operator whose function threw, inside a fused chain too.
TEST_P(FusionTest, ErrorNamesTheOperatorInTheChain) {
  if (testenv::mpi()) GTEST_SKIP() << "errors: in one process";
  for (int which = 0; which < 3; ++which) {
    auto env = testenv::make_env(config());
    env.generate(10000, [](std::uint64_t i) { return i; })
        .map([which](std::uint64_t i) {
          if (which == 0 && i == 777) throw std::runtime_error("bad map");
          return i;
        })
        .name("parse")
        .filter([which](std::uint64_t i) {
          if (which == 1 && i == 777) throw std::runtime_error("bad filter");
          return true;
        })
        .name("keep")
        .for_each([which](std::uint64_t i) {
          if (which == 2 && i == 777) throw std::runtime_error("bad sink");
        });
    try {
      env.run();
      ADD_FAILURE() << "run() should throw";
    } catch (const gyre::JobError& e) {
      const char* names[] = {"parse", "keep", "sink: for_each"};
      EXPECT_EQ(e.operator_name(), names[which]) << e.what();
      EXPECT_NE(std::string(e.what()).find("operator '" + std::string(names[which]) + "'"), std::string::npos)
          << e.what();
    }
  }
}

// A stream inside a chain used a second time: the chain splits, both consumers get its records.
TEST_P(FusionTest, SecondConsumerOfAStageSplitsTheChain) {
  const auto in = random_recs(20000, seed());
  auto env = testenv::make_env(config());
  auto mapped = env.from_collection(in).map([](const Rec& r) { return f1(r); });
  auto a = mapped.filter([](const Rec& r) { return g1(r); }).map([](const Rec& r) { return f2(r); }).collect();
  auto b = mapped.filter([](const Rec& r) { return g2(r); }).collect();
  auto c = mapped.collect();
  const std::string plan = env.explain();
  env.run();
  std::vector<Rec> ea, eb, ec;
  for (const Rec& r : in) {
    const Rec m = f1(r);
    if (g1(m)) ea.push_back(f2(m));
    if (g2(m)) eb.push_back(m);
    ec.push_back(m);
  }
  EXPECT_EQ(sorted(testenv::values(a)), sorted(ea));
  EXPECT_EQ(sorted(testenv::values(b)), sorted(eb));
  EXPECT_EQ(sorted(testenv::values(c)), sorted(ec));
  // map; filter (split off) and map; filter; three sinks; the source.
  EXPECT_NE(plan.find("] map "), std::string::npos) << plan;
}

// Two sinks on one fused chain: the first fused, the second splits it again.
TEST_P(FusionTest, TwoSinksOnOneChain) {
  const auto in = random_recs(10000, seed());
  auto env = testenv::make_env(config());
  auto s = env.from_collection(in).map([](const Rec& r) { return f1(r); }).filter([](const Rec& r) { return g1(r); });
  std::atomic<std::int64_t> x{0}, y{0};
  s.for_each([&x](const Rec& r) { x += r.value; });
  s.for_each([&y](const Rec& r) { y += r.value; });
  env.run();
  std::int64_t expect = 0;
  for (const Rec& r : in)
    if (g1(f1(r))) expect += f1(r).value;
  EXPECT_EQ(testenv::sum_ranks(x.load()), expect);
  EXPECT_EQ(testenv::sum_ranks(y.load()), expect);
}

// Parallelism: a stage given its own parallelism after fusing is split off (it runs at what the
// user set, the rest at theirs); after a stage with its own parallelism nothing fuses into it.
TEST_P(FusionTest, ParallelismIsTheUsers) {
  const int p = GetParam();
  const auto in = random_recs(10000, seed());
  std::vector<Rec> expect;
  for (const Rec& r : in)
    if (g1(f1(r))) expect.push_back(f1(r));
  {
    auto env = testenv::make_env(config());
    auto out = env.from_collection(in)
                   .map([](const Rec& r) { return f1(r); })
                   .filter([](const Rec& r) { return g1(r); })
                   .parallelism(p + 1)
                   .collect();
    const std::string plan = env.explain();
    EXPECT_NE(plan.find("parallelism=" + std::to_string(p) + ": source: collection -> map"), std::string::npos)
        << plan;
    EXPECT_NE(plan.find("parallelism=" + std::to_string(p + 1) + ": filter"), std::string::npos) << plan;
    env.run();
    EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
  }
  {
    auto env = testenv::make_env(config());
    auto out = env.from_collection(in)
                   .map([](const Rec& r) { return f1(r); })
                   .parallelism(p + 1)
                   .filter([](const Rec& r) { return g1(r); })
                   .collect();
    const std::string plan = env.explain();
    EXPECT_NE(plan.find("parallelism=" + std::to_string(p + 1) + ": map"), std::string::npos) << plan;
    EXPECT_NE(plan.find("parallelism=" + std::to_string(p) + ": filter"), std::string::npos) << plan;
    env.run();
    EXPECT_EQ(sorted(testenv::values(out)), sorted(expect));
  }
  {
    // A sink of another parallelism stays a node of its own.
    auto env = testenv::make_env(config());
    std::atomic<std::uint64_t> n{0};
    env.from_collection(in)
        .map([](const Rec& r) { return f1(r); })
        .filter([](const Rec& r) { return g1(r); })
        .for_each([&n](const Rec&) { ++n; }, p + 1);
    const std::string plan = env.explain();
    EXPECT_NE(plan.find("parallelism=" + std::to_string(p + 1) + ": sink: for_each"), std::string::npos) << plan;
    env.run();
    EXPECT_EQ(static_cast<std::size_t>(testenv::sum_ranks(static_cast<long long>(n.load()))), expect.size());
  }
}

// node() hands the node's id out: the chain ends there (what follows is not fused into it).
// flat_map ends a chain too.
TEST_P(FusionTest, ChainEnds) {
  auto env = testenv::make_env(config());
  auto s = env.from_collection(random_recs(1000, seed())).map([](const Rec& r) { return f1(r); });
  (void)s.node();
  s.filter([](const Rec& r) { return g1(r); }).collect();
  env.from_collection(random_recs(1000, seed()))
      .map([](const Rec& r) { return f2(r); })
      .flat_map<Rec>(fm)
      .map([](const Rec& r) { return r.value; })
      .collect();
  const std::string plan = env.explain();
  const std::string p = "parallelism=" + std::to_string(GetParam()) + ": ";
  EXPECT_NE(plan.find(p + "source: collection -> map -> filter -> sink: collect"), std::string::npos) << plan;
  EXPECT_NE(plan.find(p + "source: collection -> map -> flat_map -> map -> sink: collect"), std::string::npos) << plan;
  EXPECT_NE(plan.find("] map -> flat_map "), std::string::npos) << plan;
  EXPECT_EQ(nodes(plan), 8U) << plan;
  env.run();
}

INSTANTIATE_TEST_SUITE_P(Parallelism, FusionTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
