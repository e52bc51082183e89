// Vector aggregates in bulk loops (LoopContext::sum_vector): the sum's fixed order (partition
// order, so the same bits at any number of ranks; by slot with sum_vector_slots, the same bits at
// any number of partitions too), the value read in the next superstep as a
// broadcast value, Lloyd's k-means on it against a serial reference, and the plan and run-time
// errors. Alone at parallelism 1, 2, 4 and under mpirun at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gyre/iterations.h"
#include "../support/test_env.h"

namespace {

using gyre::VectorEntry;

gyre::JobConfig config(int parallelism) {
  gyre::JobConfig c;
  c.slots = 2;
  c.parallelism = std::max(parallelism, testenv::ranks());
  return c;
}

struct Tick {
  std::int64_t superstep = 0;
  double seen = 0;  // value()[0] as the body saw it in this superstep
};

// What partition p adds at index j in superstep s: magnitudes that make the order of the sum
// matter (1e16 + 1 rounds to 1e16).
double contribution(int p, std::size_t j, std::int64_t s) {
  const double big = (p % 2 == 0 ? 1e16 : 1.0) * (p % 4 < 2 ? 1.0 : -1.0);
  return big + static_cast<double>(j) * 0.25 + static_cast<double>(s);
}

// The partitions' contributions added in partition order, as the loop must.
double ordered_sum(int partitions, std::size_t j, std::int64_t s) {
  double sum = 0;
  for (int p = 0; p < partitions; ++p) sum += contribution(p, j, s);
  return sum;
}

// Emits its partition's contributions at the end of every superstep; passes the ticks on with
// the aggregate's value()[0] (the previous superstep's sum) recorded.
class Contribute final : public gyre::OneInputOperator<Tick, VectorEntry> {
 public:
  Contribute(std::size_t length, gyre::OutputTag<Tick> ticks, std::shared_ptr<std::optional<gyre::VectorAggregator>> agg)
      : length_(length), tag_(std::move(ticks)), agg_(std::move(agg)) {}
  void open(gyre::OperatorContext& ctx) override {
    partition_ = ctx.partition();
    ticks_ = &ctx.output(tag_);
  }
  void process(std::span<const Tick> in, gyre::Output<VectorEntry>&) override {
    for (Tick t : in) {
      t.superstep = superstep_ + 1;
      t.seen = (*agg_)->value()[0];
      ticks_->emit(t);
    }
  }
  void on_superstep_end(gyre::Output<VectorEntry>& out) override {
    ++superstep_;
    for (std::size_t j = 0; j < length_; ++j) out.emit(VectorEntry{j, contribution(partition_, j, superstep_)});
  }

 private:
  std::size_t length_;
  gyre::OutputTag<Tick> tag_;
  std::shared_ptr<std::optional<gyre::VectorAggregator>> agg_;
  gyre::Output<Tick>* ticks_ = nullptr;
  int partition_ = 0;
  std::int64_t superstep_ = 0;
};

class VectorAggregate : public ::testing::TestWithParam<int> {};

TEST_P(VectorAggregate, SumsInPartitionOrderAndIsReadInTheNextSuperstep) {
  const gyre::JobConfig cfg = config(GetParam());
  auto env = testenv::make_env(cfg);
  const int partitions = cfg.parallelism;
  const std::size_t length = 300;  // more values than the scalar aggregators' limit
  const int supersteps = 4;
  auto agg = std::make_shared<std::optional<gyre::VectorAggregator>>();
  const gyre::OutputTag<Tick> ticks("ticks");
  std::vector<Tick> init(static_cast<std::size_t>(partitions) * 3);
  auto result = gyre::iterate(env.from_collection(init), supersteps, [&](gyre::Stream<Tick> x, gyre::LoopContext& loop) {
    auto entries = x.process("contribute", Contribute(length, ticks, agg));
    *agg = loop.sum_vector("v", length, entries);
    return entries.side_output(ticks);
  });
  auto got = result.collect();
  env.run();
  // The last superstep's sum, the same bits on every rank.
  const auto& v = (*agg)->value();
  ASSERT_EQ(v.size(), length);
  for (std::size_t j = 0; j < length; ++j)
    ASSERT_EQ(v[j], ordered_sum(partitions, j, supersteps)) << "index " << j;
  const auto all = testenv::values(got);
  ASSERT_EQ(all.size(), init.size());
  for (const Tick& t : all) {
    // Superstep s sees the sum of superstep s - 1 (zeros before the first).
    EXPECT_EQ(t.superstep, supersteps);
    EXPECT_EQ(t.seen, ordered_sum(partitions, 0, supersteps - 1));
  }
}

// ---------------------------------------------------------------- slots

// Fills the slots s with s % partitions == its partition (slot-major entries), every superstep;
// the tick passes through.
class FillSlots final : public gyre::OneInputOperator<Tick, VectorEntry> {
 public:
  FillSlots(std::size_t length, std::size_t slots) : length_(length), slots_(slots) {}
  void open(gyre::OperatorContext& ctx) override {
    partition_ = static_cast<std::size_t>(ctx.partition());
    partitions_ = static_cast<std::size_t>(ctx.parallelism());
  }
  void process(std::span<const Tick>, gyre::Output<VectorEntry>&) override {}
  void on_superstep_end(gyre::Output<VectorEntry>& out) override {
    ++superstep_;
    for (std::size_t s = partition_; s < slots_; s += partitions_)
      for (std::size_t j = 0; j < length_; ++j)
        out.emit(VectorEntry{s * length_ + j, contribution(static_cast<int>(s), j, superstep_)});
  }

 private:
  std::size_t length_, slots_, partition_ = 0, partitions_ = 1;
  std::int64_t superstep_ = 0;
};

TEST_P(VectorAggregate, SlotsSumInSlotOrderWhateverTheParallelism) {
  const gyre::JobConfig cfg = config(GetParam());
  auto env = testenv::make_env(cfg);
  const std::size_t length = 70, slots = 7;
  const int supersteps = 3;
  auto agg = std::make_shared<std::optional<gyre::VectorAggregator>>();
  std::vector<Tick> init(static_cast<std::size_t>(cfg.parallelism));
  gyre::iterate(env.from_collection(init), supersteps, [&](gyre::Stream<Tick> x, gyre::LoopContext& loop) {
    *agg = loop.sum_vector_slots("v", length, slots, x.process("fill", FillSlots(length, slots)));
    return x.map([](const Tick& t) { return t; });
  }).collect();
  env.run();
  // The slots added in slot order: the same bits at 1, 2 and 4 partitions and ranks (the
  // magnitudes make another order give other bits).
  const auto& v = (*agg)->value();
  ASSERT_EQ(v.size(), length);
  for (std::size_t j = 0; j < length; ++j)
    ASSERT_EQ(v[j], ordered_sum(static_cast<int>(slots), j, supersteps)) << "index " << j;
  // No slots, or an index beyond slots x length: refused.
  auto env2 = testenv::make_env(cfg);
  EXPECT_THROW(gyre::iterate(env2.from_collection(init), 2,
                             [&](gyre::Stream<Tick> x, gyre::LoopContext& loop) {
                               loop.sum_vector_slots("v", 4, 0, x.map([](const Tick&) { return VectorEntry{0, 1.0}; }));
                               return x.map([](const Tick& t) { return t; });
                             }),
               gyre::PlanError);
  auto env3 = testenv::make_env(cfg);
  gyre::iterate(env3.from_collection(init), 2, [&](gyre::Stream<Tick> x, gyre::LoopContext& loop) {
    loop.sum_vector_slots("w", 4, 2, x.map([](const Tick&) { return VectorEntry{8, 1.0}; }));
    return x.map([](const Tick& t) { return t; });
  }).collect();
  try {
    env3.run();
    ADD_FAILURE() << "an index beyond slots x length ran";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("vector aggregator 'w' got index 8, its length is 8"), std::string::npos)
        << e.what();
  }
}

// ---------------------------------------------------------------- k-means

struct Point {
  double x = 0, y = 0;
};
struct Unit {
  int unused = 0;
};
using Centroids = std::vector<Point>;

// Sums per centroid c: [3c] x, [3c + 1] y, [3c + 2] count; [3k] squared distances.
Centroids update(const std::vector<double>& sums, Centroids c) {
  for (std::size_t i = 0; i < c.size(); ++i)
    if (sums[3 * i + 2] > 0) c[i] = {sums[3 * i] / sums[3 * i + 2], sums[3 * i + 1] / sums[3 * i + 2]};
  return c;
}
std::vector<double> assign(std::span<const Point> points, const Centroids& c) {
  std::vector<double> s(3 * c.size() + 1, 0.0);
  for (const Point& p : points) {
    std::size_t best = 0;
    double bd = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < c.size(); ++i) {
      const double d = (p.x - c[i].x) * (p.x - c[i].x) + (p.y - c[i].y) * (p.y - c[i].y);
      if (d < bd) best = i, bd = d;
    }
    s[3 * best] += p.x;
    s[3 * best + 1] += p.y;
    s[3 * best + 2] += 1;
    s[3 * c.size()] += bd;
  }
  return s;
}

class Lloyd final : public gyre::TwoInputOperator<Point, Unit, VectorEntry> {
 public:
  Lloyd(Centroids init, std::shared_ptr<std::optional<gyre::VectorAggregator>> sums)
      : c_(std::move(init)), sums_(std::move(sums)) {}
  void process1(std::span<const Point> in, gyre::Output<VectorEntry>&) override {
    points_.insert(points_.end(), in.begin(), in.end());
  }
  void process2(std::span<const Unit>, gyre::Output<VectorEntry>&) override {}
  void on_superstep_end(gyre::Output<VectorEntry>& out) override {
    if (++step_ > 1) c_ = update((*sums_)->value(), c_);
    const auto s = assign(points_, c_);
    for (std::size_t i = 0; i < s.size(); ++i) out.emit(VectorEntry{i, s[i]});
  }

 private:
  std::vector<Point> points_;
  Centroids c_;
  std::shared_ptr<std::optional<gyre::VectorAggregator>> sums_;
  int step_ = 0;
};

TEST_P(VectorAggregate, KMeansMatchesASerialLloyd) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0, 1);
  std::vector<Point> points(3000);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const double c = static_cast<double>(i % 4) * 5;
    points[i] = {c + noise(rng), std::cos(c) * 5 + noise(rng)};
  }
  const Centroids init = {{0, 0}, {1, 1}, {2, 0}, {3, 1}};
  const int steps = 8;
  // Serial reference: the same steps.
  Centroids want = init;
  std::vector<double> want_sums;
  for (int s = 1; s <= steps; ++s) {
    if (s > 1) want = update(want_sums, want);
    want_sums = assign(points, want);
  }

  const gyre::JobConfig cfg = config(GetParam());
  auto env = testenv::make_env(cfg);
  auto sums = std::make_shared<std::optional<gyre::VectorAggregator>>();
  auto pts = env.from_collection(points);
  std::vector<Unit> units(static_cast<std::size_t>(cfg.parallelism));
  gyre::iterate(env.from_collection(units), steps, [&](gyre::Stream<Unit> u, gyre::LoopContext& loop) {
    *sums = loop.sum_vector("sums", 3 * init.size() + 1, pts.connect(u).process("lloyd", Lloyd(init, sums)));
    return u.map([](const Unit& x) { return x; });
  }).collect();
  const auto r = env.run();
  EXPECT_EQ(r.loops.at(0).supersteps, steps);
  const auto& got = (*sums)->value();
  ASSERT_EQ(got.size(), want_sums.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want_sums[i], 1e-9 * std::max(1.0, std::abs(want_sums[i]))) << "sum " << i;
}

TEST_P(VectorAggregate, RefusesAnotherParallelismAndAnIndexOutOfRange) {
  const gyre::JobConfig cfg = config(GetParam());
  {
    auto env = testenv::make_env(cfg);
    std::vector<Unit> units(4);
    EXPECT_THROW(gyre::iterate(env.from_collection(units), 2,
                               [&](gyre::Stream<Unit> u, gyre::LoopContext& loop) {
                                 auto e = u.map([](const Unit&) { return VectorEntry{0, 1.0}; });
                                 e.parallelism(cfg.parallelism + 1);
                                 loop.sum_vector("v", 4, e);
                                 return u.map([](const Unit& x) { return x; });
                               }),
                 gyre::PlanError);
  }
  auto env = testenv::make_env(cfg);
  std::vector<Unit> units(4);
  gyre::iterate(env.from_collection(units), 2, [&](gyre::Stream<Unit> u, gyre::LoopContext& loop) {
    loop.sum_vector("v", 4, u.map([](const Unit&) { return VectorEntry{7, 1.0}; }));
    return u.map([](const Unit& x) { return x; });
  }).collect();
  try {
    env.run();
    ADD_FAILURE() << "an index beyond the vector's length ran";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("vector aggregator 'v' got index 7, its length is 4"), std::string::npos)
        << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Parallelism, VectorAggregate, ::testing::Values(1, 2, 4));

}  // namespace
