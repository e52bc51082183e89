// Baselines and in-process figures for bench/ml_bench.py (one process per measurement):
//
//   ml_baseline kmeans-eigen DATA.csv K ITERATIONS   hand-written Eigen Lloyd loop, one thread:
//        dense rows (label column 0 dropped), the first K rows as initial centroids; prints JSON
//        {"seconds_per_iteration": ..., "inertia": ...}
//   ml_baseline kmeans-gyre DATA.csv K ITERATIONS    gyre's Lloyd steps (gyre::ml::kmeans_lloyd,
//        one thread) from the same centroids, timed the same way (the data already parsed)
//   ml_baseline score MODEL.h5 DATA REPEAT            gyre::ml::score on parsed rows, one thread:
//        {"rows_per_second": ...}
//   ml_baseline tron DATA REPEAT THREADS              gyre::ml::train_logreg on parsed rows (the
//        data read once), REPEAT times: {"seconds": median per training, "supersteps": ...,
//        "seconds_per_superstep": ...}; GYRE_ML_RUNNER=own for the learners' own runner
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gyre/algorithms/ml.h"
#include "gyre/io/model_file.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Dense rows of a CSV (label in column 0, a header line skipped), row-major.
Eigen::MatrixXd read_dense(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<double> vals;
  long cols = -1, rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || !(std::isdigit(static_cast<unsigned char>(line[0])) || line[0] == '-')) continue;
    std::stringstream s(line);
    std::string f;
    long c = 0;
    bool first = true;
    while (std::getline(s, f, ',')) {
      if (first) {
        first = false;
        continue;
      }
      vals.push_back(std::strtod(f.c_str(), nullptr));
      ++c;
    }
    if (cols < 0) cols = c;
    ++rows;
  }
  Eigen::MatrixXd m(rows, cols);
  for (long i = 0; i < rows; ++i)
    for (long j = 0; j < cols; ++j) m(i, j) = vals[static_cast<std::size_t>(i * cols + j)];
  return m;
}

int kmeans_eigen(const std::string& path, int k, int iters) {
  const Eigen::MatrixXd x = read_dense(path);
  const long n = x.rows(), d = x.cols();
  Eigen::MatrixXd c = x.topRows(k);
  Eigen::MatrixXd sums(k, d);
  Eigen::VectorXd counts(k);
  double inertia = 0;
  const double t0 = now();
  for (int it = 0; it < iters; ++it) {
    sums.setZero();
    counts.setZero();
    inertia = 0;
    for (long i = 0; i < n; ++i) {
      Eigen::Index best = 0;
      const double dist = (c.rowwise() - x.row(i)).rowwise().squaredNorm().minCoeff(&best);
      inertia += dist;
      sums.row(best) += x.row(i);
      counts(best) += 1;
    }
    for (int j = 0; j < k; ++j)
      if (counts(j) > 0) c.row(j) = sums.row(j) / counts(j);
  }
  const double t = now() - t0;
  std::printf("{\"seconds_per_iteration\": %.9f, \"inertia\": %.10g, \"rows\": %ld, \"dimension\": %ld}\n", t / iters,
              inertia, n, d);
  return 0;
}

int kmeans_gyre(const std::string& path, int k, int iters) {
  gyre::ml::LoadOptions lo;
  lo.read.format = gyre::io::DataFormat::kCsv;
  lo.threads = 1;
  const gyre::ml::Dataset data = gyre::ml::load(path, lo, gyre::ml::Ranks::local());
  const Eigen::MatrixXd x = read_dense(path);
  std::vector<double> init(static_cast<std::size_t>(k) * data.dimension);
  for (int j = 0; j < k; ++j)
    for (std::uint64_t f = 0; f < data.dimension; ++f) init[j * data.dimension + f] = x(j, static_cast<long>(f));
  gyre::ml::KMeansOptions o;
  o.k = static_cast<std::uint32_t>(k);
  o.max_iterations = iters;
  o.threads = 1;
  const double t0 = now();
  const auto res = gyre::ml::kmeans_lloyd(data, init, o, gyre::ml::Ranks::local());
  const double t = now() - t0;
  std::printf("{\"seconds_per_iteration\": %.9f, \"inertia\": %.10g, \"iterations\": %zu}\n",
              t / static_cast<double>(res.iterations.size()), res.iterations.back().objective, res.iterations.size());
  return 0;
}

int score(const std::string& model_path, const std::string& path, int repeat) {
  const gyre::io::ModelFile m = gyre::io::read_model(model_path);
  gyre::ml::LoadOptions lo;
  lo.read.format = gyre::io::format_of(path);
  lo.read.hash_bits = m.hash_bits;
  lo.threads = 1;
  const gyre::ml::Dataset data = gyre::ml::load(path, lo, gyre::ml::Ranks::local());
  double sink = 0;
  const double t0 = now();
  for (int r = 0; r < repeat; ++r) sink += gyre::ml::score(m, data, 1)[0];
  const double t = now() - t0;
  std::printf("{\"rows_per_second\": %.6g, \"rows\": %llu, \"repeat\": %d, \"check\": %g}\n",
              static_cast<double>(data.rows) * repeat / t, static_cast<unsigned long long>(data.rows), repeat, sink);
  return 0;
}

int tron(const std::string& path, int repeat, int threads) {
  gyre::ml::LoadOptions lo;
  lo.read.format = gyre::io::format_of(path);
  lo.threads = threads;
  const gyre::ml::Dataset data = gyre::ml::load(path, lo, gyre::ml::Ranks::local());
  gyre::ml::TrainOptions o;
  o.threads = threads;
  std::vector<double> times;
  int reductions = 0;
  for (int r = 0; r < repeat; ++r) {
    const double t0 = now();
    const auto res = gyre::ml::train_logreg(data, o, gyre::ml::Ranks::local());
    times.push_back(now() - t0);
    reductions = res.vector_reductions;
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  std::printf("{\"seconds\": %.6f, \"supersteps\": %d, \"seconds_per_superstep\": %.9f, \"chunks\": %zu}\n", t,
              reductions, t / reductions, data.chunk_rows.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: ml_baseline kmeans-eigen|kmeans-gyre DATA.csv K ITERATIONS | score MODEL.h5 DATA REPEAT"
                         " | tron DATA REPEAT THREADS\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    if (mode == "kmeans-eigen") return kmeans_eigen(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
    if (mode == "kmeans-gyre") return kmeans_gyre(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
    if (mode == "score") return score(argv[2], argv[3], std::atoi(argv[4]));
    if (mode == "tron") return tron(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ml_baseline: error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "ml_baseline: unknown mode %s\n", mode.c_str());
  return 2;
}
