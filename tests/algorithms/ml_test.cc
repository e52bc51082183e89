// Offline ML: the LIBSVM/CSV reader (file:line errors, chunks), model files (round trip, refusal
// of damaged and other-version files), TRON logistic and linear regression and k-means against
// plain serial references on random data (objective to 1e-9 relative), the same model bits at
// 1, 2 and 4 threads and ranks, and a9a's test AUC and log loss against liblinear's figures.
// Alone, and under MPI at 1, 2 and 4 ranks.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../support/error_of.h"
#include "../support/test_env.h"
#include "gyre/algorithms/ml.h"
#include "gyre/io/libsvm.h"
#include "gyre/io/model_file.h"

namespace {

namespace ml = gyre::ml;
namespace io = gyre::io;

ml::Ranks ranks() {
  if (!testenv::mpi()) return ml::Ranks::local();
  auto& s = testenv::session();
  return ml::Ranks{s.rank(), s.size(), [&s](const std::string& b) { return s.allgather_bytes(b); }, s.cluster()};
}

// GYRE_ML_RUNNER=own while it lives (unset again also when the training throws).
struct OwnRunner {
  OwnRunner() { ::setenv("GYRE_ML_RUNNER", "own", 1); }
  ~OwnRunner() { ::unsetenv("GYRE_ML_RUNNER"); }
  OwnRunner(const OwnRunner&) = delete;
  OwnRunner& operator=(const OwnRunner&) = delete;
};

// Rank 0 writes `text` to a fresh path that every rank knows.
std::string write_file(const std::string& stem, const std::string& text) {
  const std::string path = testenv::temp_path(stem);
  if (testenv::rank() == 0) {
    std::ofstream f(path, std::ios::binary);
    f << text;
  }
  testenv::barrier();
  return path;
}

// Random sparse rows: labels from a hidden linear model (logistic noise) or its value plus noise.
std::string random_libsvm(std::uint64_t seed, int rows, int dim, bool regression, bool zero_one = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<double> truth(static_cast<std::size_t>(dim));
  for (auto& t : truth) t = normal(rng);
  std::ostringstream o;
  o.precision(17);
  for (int i = 0; i < rows; ++i) {
    std::vector<std::pair<int, double>> x;
    double z = 0.3;
    for (int j = 0; j < dim; ++j)
      if (unit(rng) < 0.4) {
        const double v = std::round(normal(rng) * 100) / 100;
        x.emplace_back(j + 1, v);
        z += truth[static_cast<std::size_t>(j)] * v;
      }
    if (regression) {
      o << z + 0.1 * normal(rng);
    } else {
      const bool pos = unit(rng) < 1 / (1 + std::exp(-z));
      o << (pos ? "1" : (zero_one ? "0" : "-1"));
    }
    for (auto [j, v] : x) o << " " << j << ":" << v;
    if (i % 17 == 0) o << "  # a comment";
    o << "\n";
    if (i % 23 == 0) o << "\n# a comment line\n";
  }
  return o.str();
}

ml::LoadOptions small_chunks(int threads = 0) {
  ml::LoadOptions o;
  o.min_chunk = 512;  // many chunks even for a small file
  o.threads = threads;
  return o;
}

// ---- serial references

// Dense Newton on the whole data: minimises 0.5 w'w + C sum loss (logistic or squared).
std::vector<double> newton_reference(const io::SparseRows& r, double C, bool bias, bool logistic) {
  const std::size_t dim = r.dimension, n = dim + (bias ? 1 : 0);
  std::vector<double> w(n, 0.0);
  auto row = [&](std::uint64_t i) {
    std::vector<double> x(n, 0.0);
    for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) x[r.indices[p]] += r.values[p];
    if (bias) x[dim] = 1;
    return x;
  };
  for (int it = 0; it < 100; ++it) {
    std::vector<double> g = w;
    std::vector<double> H(n * n, 0.0);
    for (std::size_t j = 0; j < n; ++j) H[j * n + j] = 1;
    for (std::uint64_t i = 0; i < r.rows(); ++i) {
      const auto x = row(i);
      double z = 0;
      for (std::size_t j = 0; j < n; ++j) z += w[j] * x[j];
      double coef = 0, D = 1;
      if (logistic) {
        const double y = r.labels[i] > 0 ? 1 : -1;
        const double s = 1 / (1 + std::exp(-y * z));
        coef = C * (s - 1) * y;
        D = s * (1 - s);
      } else {
        coef = C * (z - r.labels[i]);
      }
      for (std::size_t a = 0; a < n; ++a) {
        g[a] += coef * x[a];
        for (std::size_t b = 0; b < n; ++b) H[a * n + b] += C * D * x[a] * x[b];
      }
    }
    double gn = 0;
    for (double v : g) gn += v * v;
    if (std::sqrt(gn) < 1e-11) break;
    // Solve H s = g by Gaussian elimination (H is positive definite).
    std::vector<double> s = g;
    for (std::size_t c = 0; c < n; ++c)
      for (std::size_t a = c + 1; a < n; ++a) {
        const double f = H[a * n + c] / H[c * n + c];
        for (std::size_t b = c; b < n; ++b) H[a * n + b] -= f * H[c * n + b];
        s[a] -= f * s[c];
      }
    for (std::size_t c = n; c-- > 0;) {
      for (std::size_t b = c + 1; b < n; ++b) s[c] -= H[c * n + b] * s[b];
      s[c] /= H[c * n + c];
    }
    for (std::size_t j = 0; j < n; ++j) w[j] -= s[j];
  }
  return w;
}

// Plain Lloyd from the given centroids; returns the final centroids, the last inertia in *inertia.
std::vector<double> lloyd_reference(const io::SparseRows& r, std::vector<double> c, std::uint32_t k, int steps,
                                    double* inertia) {
  const std::size_t dim = r.dimension;
  std::vector<int> assign(r.rows(), -1);
  for (int s = 0; s < steps; ++s) {
    std::vector<double> sum(k * dim, 0.0), cnt(k, 0.0);
    double in = 0;
    bool changed = false;
    for (std::uint64_t i = 0; i < r.rows(); ++i) {
      std::vector<double> x(dim, 0.0);
      for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) x[r.indices[p]] += r.values[p];
      int best = 0;
      double bd = 1e300;
      for (std::uint32_t j = 0; j < k; ++j) {
        double dd = 0;
        for (std::size_t f = 0; f < dim; ++f) dd += (x[f] - c[j * dim + f]) * (x[f] - c[j * dim + f]);
        if (dd < bd) bd = dd, best = static_cast<int>(j);
      }
      in += bd;
      changed |= assign[i] != best;
      assign[i] = best;
      for (std::size_t f = 0; f < dim; ++f) sum[static_cast<std::size_t>(best) * dim + f] += x[f];
      cnt[static_cast<std::size_t>(best)] += 1;
    }
    for (std::uint32_t j = 0; j < k; ++j)
      if (cnt[j] > 0)
        for (std::size_t f = 0; f < dim; ++f) c[j * dim + f] = sum[j * dim + f] / cnt[j];
    *inertia = in;
    if (!changed) break;
  }
  return c;
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-300); }

// ---- the reader

TEST(MlReader, ParsesLinesCommentsAndLabels) {
  io::SparseRows r;
  std::string err;
  ASSERT_TRUE(io::parse_libsvm_line("+1 1:0.5 3:-2 10:1e-3 # comment", 0, r, &err)) << err;
  ASSERT_TRUE(io::parse_libsvm_line("   ", 0, r, &err));
  ASSERT_TRUE(io::parse_libsvm_line("# only a comment", 0, r, &err));
  ASSERT_TRUE(io::parse_libsvm_line("0 2:1\r", 0, r, &err)) << err;
  ASSERT_TRUE(io::parse_libsvm_line("-1", 0, r, &err)) << err;
  ASSERT_EQ(r.rows(), 3u);
  EXPECT_EQ(r.labels, (std::vector<double>{1, 0, -1}));
  EXPECT_EQ(r.indices, (std::vector<std::uint32_t>{0, 2, 9, 1}));
  EXPECT_EQ(r.values, (std::vector<double>{0.5, -2, 1e-3, 1}));
  EXPECT_EQ(r.offsets, (std::vector<std::uint64_t>{0, 3, 4, 4}));
  EXPECT_EQ(r.dimension, 10u);
  for (const char* bad : {"x 1:2", "1 0:2", "1 3:1 2:1", "1 2:1 2:1", "1 2:abc", "1 2", "1 a:1", "1 2:nan"}) {
    EXPECT_FALSE(io::parse_libsvm_line(bad, 0, r, &err)) << bad;
    EXPECT_FALSE(err.empty());
  }
  EXPECT_EQ(r.rows(), 3u);  // failed lines leave nothing behind
  EXPECT_EQ(r.indices.size(), 4u);
  // Hashing: indices into 2^B.
  io::SparseRows h;
  ASSERT_TRUE(io::parse_libsvm_line("1 1:1 1000000:2", 4, h, &err));
  EXPECT_EQ(h.dimension, 16u);
  for (auto j : h.indices) EXPECT_LT(j, 16u);
  EXPECT_EQ(h.indices[0], io::hash_feature(1, 4));
  // CSV with a header and the label in column 1.
  io::SparseRows c;
  bool header = false;
  ASSERT_TRUE(io::parse_csv_line("a,label,b", 1, c, &err, true, &header));
  EXPECT_TRUE(header);
  ASSERT_TRUE(io::parse_csv_line("1.5, 1, 0", 1, c, &err));
  EXPECT_FALSE(io::parse_csv_line("1.5,x,0", 1, c, &err));
  EXPECT_EQ(c.rows(), 1u);
  EXPECT_EQ(c.indices, (std::vector<std::uint32_t>{0}));
}

TEST(MlReader, MalformedRowNamesFileAndLine) {
  std::string text = random_libsvm(3, 200, 6, false);
  // Put a bad row deep into the file (in a later chunk).
  std::size_t pos = 0;
  int line = 1;
  while (line < 150) pos = text.find('\n', pos) + 1, ++line;
  text.insert(pos, "1 4:1 2:1\n");
  const std::string path = write_file("ml_bad.svm", text);
  const std::string err = testenv::error_of([&] { ml::load(path, small_chunks(), ranks()); });
  EXPECT_EQ(err, path + ":150: feature index 2 after 4 (indices must be strictly ascending)");
  const std::string whole = testenv::error_of([&] { io::read_file(path, {}); });
  EXPECT_EQ(whole, err);
}

TEST(MlReader, ChunksCoverEveryRowOnce) {
  const std::string path = write_file("ml_rows.svm", random_libsvm(4, 500, 7, false));
  const io::SparseRows all = io::read_file(path, {});
  const ml::Dataset d = ml::load(path, small_chunks(), ranks());
  EXPECT_GT(d.plan.chunks, 8u);
  EXPECT_EQ(d.rows, all.rows());
  EXPECT_EQ(d.dimension, all.dimension);
  // This rank's rows are the file's rows from first_row() on.
  std::uint64_t at = d.first_row();
  for (const auto& c : d.chunks)
    for (std::uint64_t i = 0; i < c.rows(); ++i, ++at) {
      ASSERT_EQ(c.labels[i], all.labels[at]);
      ASSERT_EQ(c.offsets[i + 1] - c.offsets[i], all.offsets[at + 1] - all.offsets[at]);
    }
}

// ---- model files

io::ModelFile sample_model() {
  io::ModelFile m;
  m.kind = "logreg";
  m.loss = "logistic";
  m.algorithm = "ftrl";
  m.l2 = 0.5;
  m.bias = true;
  m.hash_bits = 3;
  m.dimension = 8;
  m.weights = {1, 2, 3, 4, 5, 6, 7, 8.5, -1e-300};
  m.state["z"] = {1, 2};
  m.state["n"] = {3, 4, 5};
  m.params["alpha"] = 0.1;
  m.version = 7;
  m.parent_version = 6;
  m.data_range = "stream rows 100-200";
  m.metrics["auc"] = 0.9;
  return m;
}

TEST(MlModelFile, RoundTripAndRefusals) {
  if (testenv::rank() != 0) return;
  const std::string path = ::testing::TempDir() + "/ml_model_" + std::to_string(::getpid()) + ".h5";
  const io::ModelFile m = sample_model();
  io::write_model(path, m);
  const io::ModelFile r = io::read_model(path);
  EXPECT_EQ(r.kind, m.kind);
  EXPECT_EQ(r.loss, m.loss);
  EXPECT_EQ(r.algorithm, m.algorithm);
  EXPECT_EQ(r.l2, m.l2);
  EXPECT_EQ(r.bias, m.bias);
  EXPECT_EQ(r.hash_bits, m.hash_bits);
  EXPECT_EQ(r.dimension, m.dimension);
  EXPECT_EQ(r.weights, m.weights);
  EXPECT_EQ(r.state, m.state);
  EXPECT_EQ(r.params, m.params);
  EXPECT_EQ(r.version, m.version);
  EXPECT_EQ(r.parent_version, m.parent_version);
  EXPECT_EQ(r.data_range, m.data_range);
  EXPECT_EQ(r.metrics, m.metrics);
  // Another format version is refused.
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    const std::uint64_t two = 2;
    H5Awrite(a, H5T_NATIVE_UINT64, &two);
    H5Aclose(a);
    H5Fclose(f);
  }
  EXPECT_EQ(testenv::error_of([&] { io::read_model(path); }),
            "'" + path + "': model format version 2, but this gyre reads version 1");
  // A damaged file: cut in half.
  io::write_model(path, m);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  const std::string err = testenv::error_of([&] { io::read_model(path); });
  EXPECT_NE(err, "(no error)");
  EXPECT_NE(err.find(path), std::string::npos) << err;
  // Weights that do not fit the dimension.
  io::ModelFile bad = m;
  bad.weights.pop_back();
  io::write_model(path, bad);
  EXPECT_NE(testenv::error_of([&] { io::read_model(path); }).find("dataset /weights has 8 values"), std::string::npos);
  std::remove(path.c_str());
}

// ---- learners

void expect_same_bits(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(double)), 0) << what << " [" << i << "]: " << a[i] << " vs " << b[i];
}

void check_linear(bool logistic, bool zero_one) {
  const std::string path =
      write_file(logistic ? "ml_logreg.svm" : "ml_linreg.svm", random_libsvm(11, 600, 9, !logistic, zero_one));
  const io::SparseRows all = io::read_file(path, {});
  ml::TrainOptions o;
  o.l2 = 0.7;
  o.tolerance = 1e-9;
  std::vector<double> first;
  for (int threads : {1, 2, 4}) {
    o.threads = threads;
    const ml::Dataset d = ml::load(path, small_chunks(threads), ranks());
    const ml::TrainResult res = logistic ? ml::train_logreg(d, o, ranks()) : ml::train_linreg(d, o, ranks());
    if (first.empty()) first = res.model.weights;
    else expect_same_bits(res.model.weights, first, "weights at another thread count");
    EXPECT_GT(res.vector_reductions, 3);
    // Every reduction a superstep of the bulk iteration; the loop ends after the last.
    EXPECT_EQ(res.loop_supersteps, res.vector_reductions + 1);  // + the superstep that ends it
    // The learners' own runner (GYRE_ML_RUNNER=own) against the bulk iteration: the same sums.
    if (threads == 2) {
      const OwnRunner env;
      const ml::TrainResult own = logistic ? ml::train_logreg(d, o, ranks()) : ml::train_linreg(d, o, ranks());
      expect_same_bits(own.model.weights, first, "weights on the own runner vs the bulk iteration");
      EXPECT_EQ(own.vector_reductions, res.vector_reductions);
      EXPECT_EQ(own.loop_supersteps, 0);
    }
  }
  // One process on the whole file (no ranks): the same bits as the ranks together.
  const ml::Dataset alone = ml::load(path, small_chunks(), ml::Ranks::local());
  const ml::TrainResult solo = logistic ? ml::train_logreg(alone, o, ml::Ranks::local()) : ml::train_linreg(alone, o, ml::Ranks::local());
  expect_same_bits(solo.model.weights, first, "weights alone vs on the ranks");
  // Against the serial Newton reference: the same objective to 1e-9.
  const std::vector<double> ref = newton_reference(all, o.l2, true, logistic);
  const double f_ref = logistic ? ml::logreg_objective(all, ref, o.l2, true) : ml::linreg_objective(all, ref, o.l2, true);
  const double f = logistic ? ml::logreg_objective(all, first, o.l2, true) : ml::linreg_objective(all, first, o.l2, true);
  EXPECT_LT(rel(f, f_ref), 1e-9) << f << " vs " << f_ref;
  EXPECT_LT(rel(solo.iterations.back().objective, f_ref), 1e-9);
  // Scores: the serial formula.
  const std::vector<double> s = ml::gather_scores(ml::score(solo.model, alone), ml::Ranks::local());
  ASSERT_EQ(s.size(), all.rows());
  for (std::uint64_t i = 0; i < all.rows(); i += 37) {
    double z = first.back();
    for (std::uint64_t p = all.offsets[i]; p < all.offsets[i + 1]; ++p) z += first[all.indices[p]] * all.values[p];
    EXPECT_NEAR(s[i], logistic ? 1 / (1 + std::exp(-z)) : z, 1e-12);
  }
}

// A learner that throws on the last rank only (its on_iteration callback, after the second
// iteration): every rank ends with an error, the last with its own, the others saying it failed
// on another rank; none waits for a superstep the others do not run.
TEST(MlTron, FailureOnOneRankEndsEveryRank) {
  const std::string path = write_file("ml_fail.svm", random_libsvm(13, 400, 7, false, false));
  const ml::Dataset d = ml::load(path, small_chunks(2), ranks());
  ml::TrainOptions o;
  o.threads = 2;
  o.tolerance = 1e-12;
  const int last = testenv::mpi() ? testenv::session().size() - 1 : 0;
  o.on_iteration = [&](const ml::IterationInfo& it) {
    if (it.iteration == 2 && testenv::rank() == last) throw gyre::Error("stop here");
  };
  const std::string err = testenv::error_of([&] { ml::train_logreg(d, o, ranks()); });
  if (testenv::rank() == last) {
    EXPECT_NE(err.find("stop here"), std::string::npos) << err;
  } else {
    EXPECT_NE(err.find("failed on another rank"), std::string::npos) << err;
  }
}

TEST(MlTron, LogisticRegressionMatchesSerialReference) { check_linear(true, false); }
TEST(MlTron, LogisticRegressionZeroOneLabels) { check_linear(true, true); }
TEST(MlTron, LinearRegressionMatchesSerialReference) { check_linear(false, false); }

TEST(MlKMeans, LloydMatchesSerialReferenceAndRanks) {
  const std::string path = write_file("ml_kmeans.svm", random_libsvm(21, 700, 5, true));
  const io::SparseRows all = io::read_file(path, {});
  ml::KMeansOptions o;
  o.k = 4;
  o.seed = 5;
  o.max_iterations = 50;
  std::vector<double> first;
  for (int threads : {1, 2, 4}) {
    o.threads = threads;
    const ml::Dataset d = ml::load(path, small_chunks(threads), ranks());
    const ml::TrainResult res = ml::train_kmeans(d, o, ranks());
    EXPECT_EQ(res.loop_supersteps, res.vector_reductions + 1);  // + the superstep that ends it
    if (first.empty()) first = res.model.weights;
    else expect_same_bits(res.model.weights, first, "centroids at another thread count");
    if (threads == 4) {
      const OwnRunner env;
      const ml::TrainResult own = ml::train_kmeans(d, o, ranks());
      expect_same_bits(own.model.weights, first, "centroids on the own runner vs the bulk iteration");
      EXPECT_EQ(own.vector_reductions, res.vector_reductions);
    }
  }
  const ml::Dataset alone = ml::load(path, small_chunks(), ml::Ranks::local());
  const ml::TrainResult solo = ml::train_kmeans(alone, o, ml::Ranks::local());
  expect_same_bits(solo.model.weights, first, "centroids alone vs on the ranks");
  // Lloyd from fixed initial centroids against the serial loop.
  std::vector<double> init(first.size());
  for (std::size_t i = 0; i < init.size(); ++i) init[i] = std::sin(static_cast<double>(i) * 1.7);
  const ml::Dataset d = ml::load(path, small_chunks(), ranks());
  const ml::TrainResult res = ml::kmeans_lloyd(d, init, o, ranks());
  double ref_inertia = 0;
  const std::vector<double> ref = lloyd_reference(all, init, o.k, o.max_iterations, &ref_inertia);
  EXPECT_LT(rel(res.iterations.back().objective, ref_inertia), 1e-9);
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(res.model.weights[i], ref[i], 1e-9 * (1 + std::fabs(ref[i])));
  EXPECT_LT(rel(ml::kmeans_inertia(all, res.model.weights, o.k, all.dimension), ref_inertia), 1e-9);
  const auto m = ml::evaluate(res.model, d, ranks());
  EXPECT_LT(rel(m.at("inertia"), ref_inertia), 1e-9);
}

#ifdef GYRE_SHARED_DATASETS
TEST(MlA9a, OfflineLogisticRegressionMeetsLiblinear) {
  const std::string dir = std::string(GYRE_SHARED_DATASETS) + "/ml/a9a/";
  if (!std::ifstream(dir + "a9a")) GTEST_SKIP() << "no " << dir << "a9a";
  ml::LoadOptions lo;
  const ml::Dataset train = ml::load(dir + "a9a", lo, ranks());
  const ml::Dataset test = ml::load(dir + "a9a.t", lo, ranks());
  ml::TrainOptions o;  // C = 1, eps = 0.01, bias: liblinear -s 0 -B 1
  const ml::TrainResult res = ml::train_logreg(train, o, ranks());
  const auto m = ml::evaluate(res.model, test, ranks());
  EXPECT_GE(m.at("auc"), 0.9020);
  EXPECT_LE(m.at("log_loss"), 0.3242);
  EXPECT_EQ(m.at("rows"), 16281);
}
#endif

}  // namespace
