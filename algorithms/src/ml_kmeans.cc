// k-means: k-means++ initialisation (Arthur and Vassilvitskii, "k-means++: the advantages of
// careful seeding", SODA 2007) and Lloyd steps on broadcast centroids. Each Lloyd step is one
// superstep: every rank assigns its rows to the nearest centroid and sums them per cluster; the
// k x dim sums, k counts, inertia and changed-assignment count are one fixed-order vector sum
// (a superstep of the bulk iteration in ml_bulk.cc), so every rank computes the same new
// centroids.
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "gyre/algorithms/ml.h"
#include "ml_internal.h"

namespace gyre::ml {
namespace {

struct Centroids {
  std::uint32_t k;
  std::uint64_t dim;
  std::vector<double> c;   // k x dim
  std::vector<double> ct;  // dim x k
  std::vector<double> cn;  // k squared norms
  void refresh() {
    ct.assign(dim * k, 0.0);
    cn.assign(k, 0.0);
    for (std::uint32_t j = 0; j < k; ++j)
      for (std::uint64_t f = 0; f < dim; ++f) {
        const double v = c[j * dim + f];
        ct[f * k + j] = v;
        cn[j] += v * v;
      }
  }
};

// k-means++: the first centre a uniformly chosen row, each next one a row chosen with probability
// proportional to its squared distance to the nearest centre so far. Every choice is a fixed-order
// sum of per-chunk totals (so the same row at any number of ranks) and the chosen row's owner
// gives its coordinates to all.
std::vector<double> kmeans_pp(const Dataset& d, const KMeansOptions& o, const Ranks& ranks,
                              detail::Reducer& red) {
  const std::uint64_t dim = d.dimension;
  const std::uint32_t k = o.k;
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> centres;
  centres.reserve(k * dim);
  std::vector<std::vector<double>> d2(d.chunks.size());
  for (std::size_t c = 0; c < d.chunks.size(); ++c)
    d2[c].assign(d.chunks[c].rows(), std::numeric_limits<double>::infinity());
  // The row (chunk, row in chunk) that holds cumulative weight `target`; weights per chunk.
  auto pick = [&](const std::vector<double>* weights, const std::vector<double>& chunk_totals, double target) {
    // Find the chunk in global order.
    std::size_t chunk = 0;
    double acc = 0;
    for (; chunk + 1 < chunk_totals.size(); ++chunk) {
      if (acc + chunk_totals[chunk] > target) break;
      acc += chunk_totals[chunk];
    }
    while (chunk > 0 && chunk_totals[chunk] == 0) --chunk;  // never a chunk without weight
    std::vector<double> row(dim, 0.0);
    std::string mine;
    if (chunk >= d.first_chunk && chunk < d.first_chunk + d.chunks.size()) {
      const std::size_t lc = chunk - d.first_chunk;
      const io::SparseRows& r = d.chunks[lc];
      std::uint64_t i = 0;
      if (weights == nullptr) {
        i = static_cast<std::uint64_t>(target - acc);
        if (i >= r.rows()) i = r.rows() - 1;
      } else {
        double a = acc;
        for (i = 0; i + 1 < r.rows(); ++i) {
          if (a + (*weights)[i] > target && (*weights)[i] > 0) break;
          a += (*weights)[i];
        }
      }
      for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p)
        if (r.indices[p] < dim) row[r.indices[p]] += r.values[p];
      mine.assign(reinterpret_cast<const char*>(row.data()), row.size() * sizeof(double));
    }
    if (ranks.size > 1) {
      for (const std::string& p : ranks.allgather(mine))
        if (!p.empty()) std::memcpy(row.data(), p.data(), row.size() * sizeof(double));
    }
    return row;
  };
  // First centre: uniform over rows (chunk totals = rows per chunk).
  std::vector<double> rows_per_chunk(d.chunk_rows.begin(), d.chunk_rows.end());
  const double u0 = std::floor(unit(rng) * static_cast<double>(d.rows));
  std::vector<double> first = pick(nullptr, rows_per_chunk, std::min(u0, static_cast<double>(d.rows) - 0.5));
  centres.insert(centres.end(), first.begin(), first.end());
  const std::size_t total_chunks = d.plan.chunks;
  for (std::uint32_t j = 1; j < k; ++j) {
    const double* c = centres.data() + (j - 1) * dim;
    double cc = 0;
    for (std::uint64_t f = 0; f < dim; ++f) cc += c[f] * c[f];
    // Per-chunk totals of the updated distances, one slot per global chunk.
    const auto& totals = red.reduce(total_chunks, [&](std::size_t lc, double* out) {
      const io::SparseRows& r = d.chunks[lc];
      double* w = d2[lc].data();
      double t = 0;
      for (std::uint64_t i = 0; i < r.rows(); ++i) {
        double x = cc;
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) {
          const double v = r.values[p];
          x += v * v - (r.indices[p] < dim ? 2 * v * c[r.indices[p]] : 0.0);
        }
        x = std::max(x, 0.0);
        if (x < w[i]) w[i] = x;
        t += w[i];
      }
      out[d.first_chunk + lc] = t;
    });
    std::vector<double> chunk_totals = totals;
    double total = 0;
    for (double t : chunk_totals) total += t;
    std::vector<double> next;
    if (total <= 0) {  // fewer distinct points than k: repeat a row
      next = std::vector<double>(centres.begin() + static_cast<std::ptrdiff_t>((j - 1) * dim), centres.begin() + static_cast<std::ptrdiff_t>(j * dim));
      (void)unit(rng);
    } else {
      const double target = unit(rng) * total;
      // The owner needs the per-row weights of its chunk.
      std::vector<double> weights;
      std::size_t chunk = 0;
      double acc = 0;
      for (; chunk + 1 < chunk_totals.size(); ++chunk) {
        if (acc + chunk_totals[chunk] > target) break;
        acc += chunk_totals[chunk];
      }
      while (chunk > 0 && chunk_totals[chunk] == 0) --chunk;
      if (chunk >= d.first_chunk && chunk < d.first_chunk + d.chunks.size()) weights = d2[chunk - d.first_chunk];
      next = pick(&weights, chunk_totals, target);
    }
    centres.insert(centres.end(), next.begin(), next.end());
  }
  return centres;
}

// Lloyd steps, one reduction each.
TrainResult lloyd(const Dataset& d, std::vector<double> init, const KMeansOptions& o, detail::Reducer& red) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const std::uint64_t dim = d.dimension;
  const std::uint32_t k = o.k;
  const int reductions0 = red.reductions;
  Centroids cs{k, dim, std::move(init), {}, {}};
  cs.refresh();
  std::vector<std::vector<std::uint32_t>> assign(d.chunks.size());
  for (std::size_t c = 0; c < d.chunks.size(); ++c) assign[c].assign(d.chunks[c].rows(), k);  // k: none yet
  TrainResult res;
  res.ended_by = "max iterations";
  const std::size_t len = k * dim + k + 2;  // sums, counts, inertia, changed
  double inertia = 0;
  for (int it = 1; it <= o.max_iterations; ++it) {
    const auto& s = red.reduce(len, [&](std::size_t c, double* out) {
      const io::SparseRows& r = d.chunks[c];
      std::vector<double> acc(k);
      double in = 0, changed = 0;
      std::uint32_t* a = assign[c].data();
      for (std::uint64_t i = 0; i < r.rows(); ++i) {
        double xx = 0;
        const std::uint32_t best = detail::nearest(r, i, cs.ct.data(), cs.cn.data(), k, dim, acc.data(), xx);
        in += std::max(acc[best] + xx, 0.0);
        if (a[i] != best) {
          changed += 1;
          a[i] = best;
        }
        double* sum = out + static_cast<std::uint64_t>(best) * dim;
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p)
          if (r.indices[p] < dim) sum[r.indices[p]] += r.values[p];
        out[k * dim + best] += 1;
      }
      out[k * dim + k] += in;
      out[k * dim + k + 1] += changed;
    });
    inertia = s[k * dim + k];
    const double changed = s[k * dim + k + 1];
    for (std::uint32_t j = 0; j < k; ++j) {
      const double n = s[k * dim + j];
      if (n == 0) continue;  // an empty cluster keeps its centroid
      for (std::uint64_t f = 0; f < dim; ++f) cs.c[j * dim + f] = s[j * dim + f] / n;
    }
    cs.refresh();
    IterationInfo info;
    info.iteration = it;
    info.objective = inertia;
    info.gradient_norm = changed;
    info.seconds = since();
    res.iterations.push_back(info);
    if (o.on_iteration) o.on_iteration(info);
    if (changed == 0) {
      res.ended_by = "converged";
      break;
    }
  }
  io::ModelFile& m = res.model;
  m.kind = "kmeans";
  m.loss = "squared-distance";
  m.algorithm = "lloyd";
  m.hash_bits = d.hash_bits;
  m.dimension = dim;
  m.k = k;
  m.weights = cs.c;
  m.version = 1;
  m.data_range = d.path + " rows 0-" + std::to_string(d.rows);
  m.params["seed"] = static_cast<double>(o.seed);
  m.metrics["inertia"] = inertia;
  m.metrics["iterations"] = static_cast<double>(res.iterations.size());
  res.vector_reductions = red.reductions - reductions0;
  res.seconds = since();
  return res;
}

std::size_t lloyd_length(const KMeansOptions& o, std::uint64_t dim) { return o.k * dim + o.k + 2; }

}  // namespace

TrainResult kmeans_lloyd(const Dataset& d, std::vector<double> init, const KMeansOptions& o, const Ranks& ranks) {
  const std::uint64_t dim = d.dimension;
  if (init.size() != o.k * dim) throw Error("kmeans: " + std::to_string(init.size()) + " initial values for k x dimension = " + std::to_string(o.k * dim));
  TrainResult res;
  // Every Lloyd step is one superstep of the loop (ml_bulk.cc).
  const detail::LearnerRun run = detail::run_learner(d, ranks, o.threads, lloyd_length(o, dim), "kmeans",
                                                     [&](detail::Reducer& red) { res = lloyd(d, std::move(init), o, red); });
  res.loop_supersteps = run.supersteps;
  return res;
}

TrainResult train_kmeans(const Dataset& d, const KMeansOptions& o, const Ranks& ranks) {
  if (o.k == 0) throw Error("--k must be at least 1");
  if (d.rows < o.k)
    throw Error("'" + d.path + "': " + std::to_string(d.rows) + " rows, fewer than k = " + std::to_string(o.k));
  const auto t0 = std::chrono::steady_clock::now();
  TrainResult res;
  // k-means++ choices and Lloyd steps: supersteps of one loop.
  const std::size_t length = std::max<std::size_t>(lloyd_length(o, d.dimension), d.plan.chunks);
  const detail::LearnerRun run = detail::run_learner(d, ranks, o.threads, length, "kmeans", [&](detail::Reducer& red) {
    std::vector<double> init = kmeans_pp(d, o, ranks, red);
    res = lloyd(d, std::move(init), o, red);
  });
  res.vector_reductions = run.reductions;
  res.loop_supersteps = run.supersteps;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace gyre::ml
