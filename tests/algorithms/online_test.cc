// Online logistic regression (speed view), the model store and serving: the streaming job
// against the serial learner on random data, a9a's one-pass AUC, warm start, refusals, versions,
// and version-tagged predictions. In one process at 1, 2, 4 partitions and under mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gyre/algorithms/online.h"
#include "gyre/io/libsvm.h"
#include "gyre/io/model_file.h"
#include "gyre/io/model_store.h"
#include "../support/test_env.h"

namespace {

using gyre::algo::OnlineAlgorithm;
using gyre::algo::OnlineLogreg;
using gyre::algo::OnlineOptions;
using gyre::algo::SparseRowView;
using gyre::io::SparseRows;

gyre::JobConfig config(int parallelism) {
  gyre::JobConfig c;
  c.slots = 2;
  c.parallelism = std::max(parallelism, testenv::ranks());
  return c;
}

const std::string kA9a = std::string(GYRE_SHARED_DATASETS) + "/ml/a9a/a9a";

// Random sparse rows from a hidden linear model (labels ±1 drawn from its probability).
SparseRows random_rows(std::uint64_t seed, std::size_t n, std::uint32_t dim) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0, 1);
  std::vector<double> w(dim);
  for (auto& x : w) x = g(rng);
  SparseRows r;
  for (std::size_t i = 0; i < n; ++i) {
    std::set<std::uint32_t> idx;
    const int nnz = 3 + static_cast<int>(rng() % 8);
    while (static_cast<int>(idx.size()) < nnz) idx.insert(static_cast<std::uint32_t>(rng() % dim));
    double m = 0;
    for (auto j : idx) {
      const double v = 0.5 + static_cast<double>(rng() % 100) / 100.0;
      r.indices.push_back(j);
      r.values.push_back(v);
      m += w[j] * v;
    }
    r.offsets.push_back(r.indices.size());
    const double p = 1 / (1 + std::exp(-m));
    r.labels.push_back(std::uniform_real_distribution<double>(0, 1)(rng) < p ? 1.0 : -1.0);
  }
  r.dimension = dim;
  return r;
}

SparseRowView row(const SparseRows& r, std::size_t k) {
  const std::size_t lo = r.offsets[k], hi = r.offsets[k + 1];
  return {r.labels[k], {r.indices.data() + lo, hi - lo}, {r.values.data() + lo, hi - lo}};
}

// Rows [from, to) of r in blocks of `rows` rows.
std::shared_ptr<std::vector<SparseRows>> blocks_of(const SparseRows& r, std::size_t rows, std::size_t from = 0,
                                                   std::size_t to = SIZE_MAX) {
  to = std::min<std::size_t>(to, r.rows());
  auto out = std::make_shared<std::vector<SparseRows>>();
  for (std::size_t s = from; s < to; s += rows) {
    SparseRows b;
    for (std::size_t k = s; k < std::min(to, s + rows); ++k) {
      for (std::size_t e = r.offsets[k]; e < r.offsets[k + 1]; ++e) {
        b.indices.push_back(r.indices[e]);
        b.values.push_back(r.values[e]);
      }
      b.offsets.push_back(b.indices.size());
      b.labels.push_back(r.labels[k]);
    }
    b.dimension = r.dimension;
    out->push_back(std::move(b));
  }
  return out;
}

double test_auc(const std::vector<double>& weights, bool bias, const SparseRows& t) {
  std::vector<double> s, y;
  const std::size_t dim = weights.size() - (bias ? 1 : 0);
  for (std::size_t k = 0; k < t.rows(); ++k) {
    double m = bias ? weights.back() : 0.0;
    for (std::size_t e = t.offsets[k]; e < t.offsets[k + 1]; ++e)
      if (t.indices[e] < dim) m += weights[t.indices[e]] * t.values[e];
    s.push_back(m);
    y.push_back(t.labels[k]);
  }
  return gyre::algo::auc(s, y);
}

std::string temp_dir(const std::string& stem) {
  const std::string d = testenv::temp_path(stem);
  if (testenv::rank() == 0) std::filesystem::remove_all(d);
  testenv::barrier();
  return d;
}

// ---------------------------------------------------------------- the learner alone

TEST(OnlineLearner, AucOfKnownScores) {
  const std::vector<double> s{0.1, 0.4, 0.35, 0.8}, y{-1, -1, 1, 1};
  EXPECT_DOUBLE_EQ(gyre::algo::auc(s, y), 0.75);
  const std::vector<double> tie{0.5, 0.5}, y2{-1, 1};
  EXPECT_DOUBLE_EQ(gyre::algo::auc(tie, y2), 0.5);
}

// The streaming job's progressive AUC is binned (ScoreHistogram): within half the fraction of
// pairs sharing a bin of the exact AUC of the same scores; its log loss is the exact one.
TEST(OnlineLearner, BinnedAucIsWithinItsTieBoundOfTheExactOne) {
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> s, y;
  gyre::algo::ScoreHistogram h;
  for (int i = 0; i < 20000; ++i) {
    const double p = u(g);
    const double label = u(g) < p ? 1.0 : -1.0;  // calibrated: AUC well above 0.5
    const float f = static_cast<float>(p);
    s.push_back(f), y.push_back(label);
    h.add(f, label > 0);
  }
  const double exact = gyre::algo::auc(s, y);
  EXPECT_GT(exact, 0.7);
  EXPECT_NEAR(h.auc(), exact, h.tie_fraction() / 2 + 1e-12);
  EXPECT_LT(h.tie_fraction(), 1e-3);
  EXPECT_NEAR(h.log_loss(), gyre::algo::log_loss(s, y), 1e-9);
  gyre::algo::ScoreHistogram a, b;
  for (std::size_t i = 0; i < s.size(); ++i) (i % 2 ? a : b).add(static_cast<float>(s[i]), y[i] > 0);
  a.add(b);
  EXPECT_DOUBLE_EQ(a.auc(), h.auc());
  EXPECT_EQ(a.count(), 20000u);
}

// take_delta returns the learner's own change only: what apply_delta added meanwhile stays in
// the model and out of the delta; with keep, the model keeps keep x its own change.
TEST(OnlineLearner, DeltaIsTheLearnersOwnChange) {
  const SparseRows r = random_rows(7, 600, 40), f = random_rows(8, 300, 60);
  auto row = [](const SparseRows& x, std::size_t k) {
    const std::size_t lo = x.offsets[k], hi = x.offsets[k + 1];
    return SparseRowView{x.labels[k], {x.indices.data() + lo, hi - lo}, {x.values.data() + lo, hi - lo}};
  };
  for (auto alg : {OnlineAlgorithm::kFtrl, OnlineAlgorithm::kAdaptive}) {
    for (double keep : {1.0, 0.25}) {
      OnlineOptions o;
      o.algorithm = alg;
      OnlineLogreg m(o), other(o);
      for (std::size_t k = 0; k < 200; ++k) m.learn(row(r, k));
      other.track_deltas(true);
      for (std::size_t k = 0; k < f.rows(); ++k) other.learn(row(f, k));
      const gyre::algo::ModelDelta foreign = other.take_delta();  // reaches coordinates m has not seen
      m.track_deltas(true);
      const auto s0 = m.state();
      const std::size_t d0 = m.dimension();
      for (std::size_t k = 200; k < 400; ++k) m.learn(row(r, k));
      m.apply_delta(foreign, 0.5);
      for (std::size_t k = 400; k < 600; ++k) m.learn(row(r, k));
      const gyre::algo::ModelDelta own = m.take_delta(keep);
      const auto s1 = m.state();
      // Expected: s0 + keep x own + 0.5 x foreign, coordinate by coordinate (bias last).
      const std::size_t len = s1[0].second.size(), dim = m.dimension();
      std::vector<double> want_a(len, 0.0), want_b(len, 0.0);
      auto at = [&](std::uint32_t j) { return j == 0xffffffffu ? len - 1 : std::size_t{j}; };
      for (std::size_t j = 0; j < s0[0].second.size(); ++j) {
        const std::size_t t = j + 1 == s0[0].second.size() ? len - 1 : j;
        want_a[t] = s0[0].second[j], want_b[t] = s0[1].second[j];
      }
      if (alg == OnlineAlgorithm::kAdaptive)  // unseen coordinates start at the initial rate
        for (std::size_t j = d0; j < dim; ++j) want_b[j] = o.initial_g2;
      for (std::size_t k = 0; k < own.coord.size(); ++k) {
        want_a[at(own.coord[k])] += keep * own.d0[k];
        want_b[at(own.coord[k])] += keep * own.d1[k];
      }
      for (std::size_t k = 0; k < foreign.coord.size(); ++k) {
        want_a[at(foreign.coord[k])] += 0.5 * foreign.d0[k];
        want_b[at(foreign.coord[k])] += 0.5 * foreign.d1[k];
      }
      for (std::size_t j = 0; j < len; ++j) {
        EXPECT_NEAR(s1[0].second[j], want_a[j], 1e-9) << to_string(alg) << " keep " << keep << " coordinate " << j;
        EXPECT_NEAR(s1[1].second[j], want_b[j], 1e-9) << to_string(alg) << " keep " << keep << " coordinate " << j;
      }
      EXPECT_TRUE(m.take_delta().coord.empty());  // nothing learned since
    }
  }
}

TEST(OnlineLearner, FtrlStateRoundTripsThroughAModelFile) {
  const SparseRows r = random_rows(3, 2000, 50);
  for (auto alg : {OnlineAlgorithm::kFtrl, OnlineAlgorithm::kAdaptive}) {
    OnlineOptions o;
    o.algorithm = alg;
    OnlineLogreg a(o), b(o);
    for (std::size_t k = 0; k < 1000; ++k) a.learn(row(r, k));
    const std::string path = testenv::temp_path("online-roundtrip") + ".h5";
    if (testenv::rank() == 0) gyre::io::write_model(path, gyre::algo::to_model_file(a));
    testenv::barrier();
    OnlineLogreg c = gyre::algo::learner_from(gyre::io::read_model(path), o);
    for (std::size_t k = 1000; k < 2000; ++k) EXPECT_EQ(a.learn(row(r, k)), c.learn(row(r, k)));
    EXPECT_EQ(a.weights(), c.weights());
    testenv::barrier();
    if (testenv::rank() == 0) std::filesystem::remove(path);
  }
}

TEST(OnlineLearner, WarmStartRefusesAnotherLossDimensionOrHashing) {
  OnlineOptions o;
  gyre::io::ModelFile f;
  f.kind = "linreg";
  f.loss = "squared";
  f.bias = true;
  f.dimension = 3;
  f.weights = {1, 2, 3, 4};
  auto message = [&](std::uint64_t dim = 0) {
    try {
      gyre::algo::check_warm_start(f, o, "m.h5", dim);
    } catch (const gyre::Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message().find("'linreg' model, not 'logreg'"), std::string::npos) << message();
  f.kind = "logreg";
  EXPECT_NE(message().find("loss is 'squared', not 'logistic'"), std::string::npos) << message();
  f.loss = "logistic";
  EXPECT_EQ(message(), "accepted");
  EXPECT_NE(message(5).find("dimension is 3, this run's is 5"), std::string::npos) << message(5);
  o.hash_bits = 18;
  EXPECT_NE(message().find("hashes features into 0 bits, this run into 18"), std::string::npos) << message();
}

// ---------------------------------------------------------------- the model store

TEST(ModelStore, VersionsAreNeverOverwrittenAndLatestIsTheHighest) {
  const std::string dir = temp_dir("online-store");
  if (testenv::rank() == 0) {
    EXPECT_FALSE(gyre::io::latest(dir).has_value());
    gyre::io::ModelFile m;
    m.kind = "logreg", m.loss = "logistic", m.algorithm = "ftrl", m.dimension = 2, m.bias = true;
    m.weights = {1, 2, 3};
    // Four writers race for numbers: every version is written once, all distinct.
    std::vector<std::thread> ts;
    std::vector<std::vector<std::uint64_t>> got(4);
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        gyre::io::ModelFile mine = m;
        for (int i = 0; i < 5; ++i) {
          mine.weights[0] = t * 100 + i;
          got[static_cast<std::size_t>(t)].push_back(gyre::io::publish(dir, mine));
        }
      });
    for (auto& t : ts) t.join();
    std::set<std::uint64_t> all;
    for (auto& g : got) all.insert(g.begin(), g.end());
    EXPECT_EQ(all.size(), 20u);
    EXPECT_EQ(*all.rbegin(), 20u);
    const auto vs = gyre::io::list_versions(dir);
    ASSERT_EQ(vs.size(), 20u);
    for (const auto& v : vs) EXPECT_EQ(gyre::io::read_model(v.path).version, v.version);
    EXPECT_EQ(gyre::io::latest(dir)->version, 20u);
    EXPECT_EQ(gyre::io::read_model_or_latest(dir).version, 20u);
    std::filesystem::remove_all(dir);
  }
  testenv::barrier();
}

// ---------------------------------------------------------------- the streaming job

class OnlineStream : public ::testing::TestWithParam<int> {};

// At one partition the job is the serial learner (the publisher's merged model is the sum of
// the replica's deltas); at more, data parallel: every example learned once, a model as good.
TEST_P(OnlineStream, MatchesTheSerialLearner) {
  const SparseRows train = random_rows(11, 6000, 200), test = random_rows(12, 3000, 200);
  for (auto alg : {OnlineAlgorithm::kFtrl, OnlineAlgorithm::kAdaptive}) {
    OnlineOptions lo;
    lo.algorithm = alg;
    OnlineLogreg serial(lo);
    for (std::size_t k = 0; k < train.rows(); ++k) serial.learn(row(train, k));
    const double want = test_auc(serial.weights(), true, test);

    auto env = testenv::make_env(config(GetParam()));
    gyre::algo::OnlineStreamOptions o;
    o.learner = lo;
    o.merge_every = 256;
    o.block_rows = 100;
    auto job = gyre::algo::add_online_training(env, o, blocks_of(train, 100));
    env.run();
    const auto& r = job.finish();
    if (testenv::rank() != 0) continue;
    EXPECT_EQ(r.examples, train.rows());
    ASSERT_TRUE(r.has_model);
    const double got = test_auc(r.model.weights, true, test);
    if (env.default_parallelism() == 1) {
      const auto w = serial.weights();
      ASSERT_EQ(r.model.weights.size(), w.size());
      for (std::size_t j = 0; j < w.size(); ++j) EXPECT_NEAR(r.model.weights[j], w[j], 1e-9 * (1 + std::abs(w[j])));
    } else {
      EXPECT_NEAR(got, want, 0.01) << to_string(alg);
    }
  }
}

// One pass over a9a, evaluated on a9a.t (VW 9.11: 0.9019; the target 0.9012), at 1, 2 and 4
// partitions (data parallel: replicas mixed every merge_every (16384) examples each).
TEST_P(OnlineStream, A9aOnePassAuc) {
  const SparseRows test = gyre::io::read_file(kA9a + ".t", {});
  for (auto alg : {OnlineAlgorithm::kFtrl, OnlineAlgorithm::kAdaptive}) {
    auto env = testenv::make_env(config(GetParam()));
    gyre::algo::OnlineStreamOptions o;
    o.learner.algorithm = alg;
    o.input = kA9a;
    auto job = gyre::algo::add_online_training(env, o);
    env.run();
    const auto& r = job.finish();
    if (testenv::rank() != 0) continue;
    EXPECT_EQ(r.examples, 32561u);
    const double a = test_auc(r.model.weights, true, test);
    std::printf("a9a one pass, %s, %d partitions: test AUC %.4f, progressive AUC %.4f\n", to_string(alg),
                env.default_parallelism(), a, r.progressive_auc);
    EXPECT_GE(a, 0.9012) << to_string(alg);
  }
}

// Train on a9a's first half, publish, then (a) continue on the second half in the same learner
// and (b) restart from the published file: the restarted model loses at most 0.0005 test AUC.
TEST_P(OnlineStream, WarmStartFromTheStoreLosesNoAuc) {
  const SparseRows train = gyre::io::read_file(kA9a, {}), test = gyre::io::read_file(kA9a + ".t", {});
  const std::size_t half = train.rows() / 2;
  const std::string dir = temp_dir("online-warm");
  // (a) one run over both halves, the second half after a publish.
  auto env = testenv::make_env(config(GetParam()));
  gyre::algo::OnlineStreamOptions o;
  o.model_dir = dir;
  auto first = gyre::algo::add_online_training(env, o, blocks_of(train, 1024, 0, half));
  env.run();
  first.finish();
  testenv::barrier();
  auto latest = gyre::io::latest(dir);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->version, 1u);
  // (b) restart from the stored version.
  auto env2 = testenv::make_env(config(GetParam()));
  gyre::algo::OnlineStreamOptions o2 = o;
  o2.warm_start = latest->path;
  auto second = gyre::algo::add_online_training(env2, o2, blocks_of(train, 1024, half));
  env2.run();
  const auto& r2 = second.finish();
  testenv::barrier();
  if (testenv::rank() == 0) {
    EXPECT_EQ(r2.versions.back().parent_version, 1u);
    EXPECT_EQ(r2.versions.back().version, 2u);
    // The continued run: the serial learner over both halves (the job at one partition is it).
    OnlineLogreg cont{OnlineOptions{}};
    for (std::size_t k = 0; k < train.rows(); ++k) cont.learn(row(train, k));
    const double a_cont = test_auc(cont.weights(), true, test), a_warm = test_auc(r2.model.weights, true, test);
    EXPECT_EQ(r2.examples, train.rows() - half);
    std::printf("warm start: continued %.5f, restarted from version 1 %.5f\n", a_cont, a_warm);
    EXPECT_GE(a_warm, a_cont - 0.0005);
    std::filesystem::remove_all(dir);
  }
  testenv::barrier();
}

INSTANTIATE_TEST_SUITE_P(Partitions, OnlineStream, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

// ---------------------------------------------------------------- serving

class Serving : public ::testing::TestWithParam<int> {};

// Rows scored while versions 1..6 arrive on the broadcast input: every prediction names its
// version, is that version's score, and a partition's versions never go back.
TEST_P(Serving, PredictionsCarryMonotoneVersions) {
  const SparseRows rows = random_rows(21, 4000, 30);
  auto models = std::make_shared<std::vector<gyre::io::ModelFile>>();
  std::mt19937_64 rng(5);
  for (std::uint64_t v : {1, 2, 4, 3, 5, 6}) {  // 3 arrives after 4: never applied after it
    gyre::io::ModelFile m;
    m.kind = "logreg", m.bias = true, m.dimension = 30, m.version = v;
    for (int j = 0; j < 31; ++j) m.weights.push_back(static_cast<double>(rng() % 100) / 50.0 - 1.0);
    models->push_back(m);
  }
  std::map<std::uint64_t, const gyre::io::ModelFile*> by_version;
  for (const auto& m : *models) by_version[m.version] = &m;
  auto env = testenv::make_env(config(GetParam()));
  gyre::algo::ServeOptions so;
  so.rows_delay_us = 200;
  auto got = gyre::algo::serve(env, blocks_of(rows, 50), models, so);
  if (testenv::rank() != 0) return;
  ASSERT_EQ(got.size(), rows.rows());
  // In collected order: each partition's records arrive in the order it emitted them.
  std::map<int, std::uint64_t> last;
  std::set<std::uint64_t> seen_rows;
  for (const auto& s : got) {
    ASSERT_GE(s.version, last[s.partition]) << "partition " << s.partition << " went back";
    last[s.partition] = s.version;
    seen_rows.insert(s.row);
    const auto& m = *by_version.at(s.version);
    double z = m.weights.back();
    for (std::size_t e = rows.offsets[s.row]; e < rows.offsets[s.row + 1]; ++e) z += m.weights[rows.indices[e]] * rows.values[e];
    EXPECT_NEAR(s.score, 1 / (1 + std::exp(-z)), 1e-12);
  }
  EXPECT_EQ(seen_rows.size(), rows.rows());
}

INSTANTIATE_TEST_SUITE_P(Partitions, Serving, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "p" + std::to_string(p.param); });

}  // namespace
