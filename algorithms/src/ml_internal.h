// Internal to the ML learners: the fixed-order vector sum over chunks and ranks (see ml.h).
#pragma once

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gyre/algorithms/ml.h"
#include "gyre/core/error.h"

namespace gyre::ml::detail {

// Threads of a rank's arena: `threads`, or all the rank may use (never more than a
// tbb::global_control allows).
inline int arena_threads(int threads) {
  const int allowed = static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
  const int want = threads > 0 ? threads : tbb::this_task_arena::max_concurrency();
  return std::max(1, std::min(want, allowed));
}

// What a learner's superstep is: reduce(n, fill) sums one dense vector of n values per chunk
// (fill(i, out) adds local chunk i's partial into out[0, n), zeroed before) over all chunks of
// all ranks, in chunk order: the same bits whatever the number of ranks and threads. Collective.
class Reducer {
 public:
  using Fill = std::function<void(std::size_t, double*)>;
  virtual ~Reducer() = default;
  virtual const std::vector<double>& reduce(std::size_t n, const Fill& fill) = 0;
  int reductions = 0;
};

// Runs driver(reducer) with every reduce() one superstep of a bulk iteration over the data set's
// chunks (ml_bulk.cc); `length`: the most values a reduce() asks for. Without a cluster of the
// ranks' size (or with GYRE_ML_RUNNER=own), on a ChunkReducer.
struct LearnerRun {
  int reductions = 0;
  int supersteps = 0;  // of the bulk iteration (0: it ran on a ChunkReducer)
};
LearnerRun run_learner(const Dataset& d, const Ranks& ranks, int threads, std::size_t length, const std::string& name,
                const std::function<void(Reducer&)>& driver);

// The learners' own runner: a oneTBB loop over the rank's chunks and one allgather per sum.
class ChunkReducer final : public Reducer {
 public:
  ChunkReducer(const Dataset& d, const Ranks& ranks, int threads)
      : local_(d.chunks.size()), ranks_(ranks), arena_(arena_threads(threads)) {}

  // fill(i, out) adds local chunk i's partial into out[0, n) (zeroed before). Collective.
  template <class F>
  const std::vector<double>& sum(std::size_t n, F&& fill) {
    ++reductions;
    partials_.assign(local_ * n, 0.0);
    arena_.execute([&] {
      tbb::parallel_for(std::size_t{0}, local_, [&](std::size_t i) { fill(i, partials_.data() + i * n); });
    });
    result_.assign(n, 0.0);
    auto add_all = [&](const double* p, std::size_t chunks) {
      for (std::size_t c = 0; c < chunks; ++c)
        for (std::size_t j = 0; j < n; ++j) result_[j] += p[c * n + j];
    };
    if (ranks_.size <= 1) {
      add_all(partials_.data(), local_);
      return result_;
    }
    std::string bytes(reinterpret_cast<const char*>(partials_.data()), partials_.size() * sizeof(double));
    const std::vector<std::string> all = ranks_.allgather(bytes);
    std::vector<double> buf;
    for (const std::string& part : all) {
      if (part.size() % (n * sizeof(double)) != 0) throw Error("vector sum: ranks disagree on the vector length");
      buf.resize(part.size() / sizeof(double));
      if (!part.empty()) std::memcpy(buf.data(), part.data(), part.size());
      add_all(buf.data(), buf.size() / n);
    }
    return result_;
  }

  const std::vector<double>& reduce(std::size_t n, const Fill& fill) override { return sum(n, fill); }

  // Runs f(i) for every local chunk on the arena's threads (no reduction).
  template <class F>
  void for_each(F&& f) {
    arena_.execute([&] { tbb::parallel_for(std::size_t{0}, local_, [&](std::size_t i) { f(i); }); });
  }


 private:
  std::size_t local_;
  const Ranks& ranks_;
  tbb::task_arena arena_;
  std::vector<double> partials_;
  std::vector<double> result_;
};

// ||x_i - c||^2 for a dense centroid c of `dim` values (features >= dim are ignored).
inline double squared_distance(const io::SparseRows& r, std::uint64_t i, const double* c, std::uint64_t dim) {
  double s = 0;
  for (std::uint64_t j = 0; j < dim; ++j) s += c[j] * c[j];
  for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) {
    const std::uint32_t j = r.indices[p];
    if (j >= dim) {
      s += r.values[p] * r.values[p];
      continue;
    }
    s += r.values[p] * r.values[p] - 2 * r.values[p] * c[j];
  }
  return s;
}

// The nearest of k centroids to row i: ct is the centroids transposed (dim x k), cn their squared
// norms; acc holds k scratch values. ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2 (the lowest index
// wins a tie); xx gets ||x||^2, acc[best] + xx is the squared distance.
inline std::uint32_t nearest(const io::SparseRows& r, std::uint64_t i, const double* ct, const double* cn,
                             std::uint32_t k, std::uint64_t dim, double* acc, double& xx) {
  for (std::uint32_t c = 0; c < k; ++c) acc[c] = cn[c];
  xx = 0;
  for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) {
    const double v = r.values[p];
    xx += v * v;
    const std::uint32_t j = r.indices[p];
    if (j >= dim) continue;
    const double m = -2 * v;
    const double* row = ct + static_cast<std::uint64_t>(j) * k;
    for (std::uint32_t c = 0; c < k; ++c) acc[c] += m * row[c];
  }
  std::uint32_t best = 0;
  for (std::uint32_t c = 1; c < k; ++c)
    if (acc[c] < acc[best]) best = c;
  return best;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace gyre::ml::detail
