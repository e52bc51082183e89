// The ML data sets on the ranks, scoring and evaluation. See ml.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "gyre/algorithms/ml.h"
#include "gyre/core/error.h"
#include "ml_internal.h"

namespace gyre::ml {
namespace {

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
template <class T>
std::vector<T> of_bytes(const std::string& s) {
  std::vector<T> v(s.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), s.data(), v.size() * sizeof(T));
  return v;
}

// Throws on every rank the first rank's error (in rank order: the lowest rank read the earliest
// bytes, so its error is the first in file order), if any rank has one.
void agree(const std::string& local_error, const Ranks& ranks) {
  if (ranks.size <= 1) {
    if (!local_error.empty()) throw Error(local_error);
    return;
  }
  for (const std::string& e : ranks.allgather(local_error))
    if (!e.empty()) throw Error(e);
}

}  // namespace

std::uint64_t Dataset::local_rows() const {
  std::uint64_t n = 0;
  for (const auto& c : chunks) n += c.rows();
  return n;
}

std::uint64_t Dataset::first_row() const {
  std::uint64_t n = 0;
  for (std::size_t k = 0; k < first_chunk && k < chunk_rows.size(); ++k) n += chunk_rows[k];
  return n;
}

Dataset load(const std::string& path, const LoadOptions& opts, const Ranks& ranks) {
  Dataset d;
  d.path = path;
  d.hash_bits = opts.read.hash_bits;
  std::string error;
  try {
    d.plan = io::plan_chunks(io::plan_file(path).file_bytes, opts.min_chunk, opts.max_chunks);
    d.first_chunk = d.plan.first_of(ranks.rank, ranks.size);
    const std::size_t last = d.plan.first_of(ranks.rank + 1, ranks.size);
    tbb::task_arena arena(detail::arena_threads(opts.threads));
    arena.execute([&] { d.chunks = io::read_chunks(path, d.plan, d.first_chunk, last, opts.read); });
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "cannot read '" + path + "'";
  }
  agree(error, ranks);
  // Global figures: rows per chunk, positives, dimension.
  std::vector<std::uint64_t> local;  // [dimension, positives, rows of each chunk...]
  std::uint64_t dim = 0, pos = 0;
  for (const auto& c : d.chunks) {
    dim = std::max(dim, c.dimension);
    for (double y : c.labels) pos += y > 0 ? 1 : 0;
  }
  local.push_back(dim);
  local.push_back(pos);
  for (const auto& c : d.chunks) local.push_back(c.rows());
  std::vector<std::string> parts = ranks.size <= 1 ? std::vector<std::string>{bytes_of(local)} : ranks.allgather(bytes_of(local));
  for (const std::string& p : parts) {
    const auto v = of_bytes<std::uint64_t>(p);
    d.dimension = std::max(d.dimension, v.at(0));
    d.positives += v.at(1);
    for (std::size_t i = 2; i < v.size(); ++i) {
      d.chunk_rows.push_back(v[i]);
      d.rows += v[i];
    }
  }
  if (d.hash_bits > 0) d.dimension = std::uint64_t{1} << d.hash_bits;
  return d;
}

namespace {

void check_fit(const io::ModelFile& m, const Dataset& d) {
  if (m.hash_bits != d.hash_bits)
    throw Error("'" + d.path + "': the model hashes features into " + std::to_string(m.hash_bits) +
                " bits, the data was read with " + std::to_string(d.hash_bits) + " (use --hash-bits " +
                std::to_string(m.hash_bits) + ")");
}

}  // namespace

std::vector<double> score(const io::ModelFile& m, const Dataset& d, int threads) {
  check_fit(m, d);
  std::vector<std::uint64_t> start(d.chunks.size() + 1, 0);
  for (std::size_t i = 0; i < d.chunks.size(); ++i) start[i + 1] = start[i] + d.chunks[i].rows();
  std::vector<double> out(start.back());
  tbb::task_arena arena(detail::arena_threads(threads));
  const std::uint64_t dim = m.dimension;
  if (m.kind == "logreg" || m.kind == "linreg") {
    const bool logistic = m.kind == "logreg";
    const double b = m.bias ? m.weights.back() : 0.0;
    const double* w = m.weights.data();
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, d.chunks.size(), [&](std::size_t c) {
        const io::SparseRows& r = d.chunks[c];
        double* o = out.data() + start[c];
        for (std::uint64_t i = 0; i < r.rows(); ++i) {
          double z = b;
          for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p)
            if (r.indices[p] < dim) z += w[r.indices[p]] * r.values[p];  // unknown features: ignored
          o[i] = logistic ? 1.0 / (1.0 + std::exp(-z)) : z;
        }
      });
    });
  } else if (m.kind == "kmeans") {
    const std::uint32_t k = m.k;
    std::vector<double> ct(dim * k), cn(k, 0.0);
    for (std::uint32_t c = 0; c < k; ++c)
      for (std::uint64_t j = 0; j < dim; ++j) {
        const double v = m.weights[c * dim + j];
        ct[j * k + c] = v;
        cn[c] += v * v;
      }
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, d.chunks.size(), [&](std::size_t c) {
        const io::SparseRows& r = d.chunks[c];
        std::vector<double> acc(k);
        for (std::uint64_t i = 0; i < r.rows(); ++i) {
          double xx = 0;
          const std::uint32_t best = detail::nearest(r, i, ct.data(), cn.data(), k, dim, acc.data(), xx);
          out[start[c] + i] = best;
        }
      });
    });
  } else {
    throw Error("unknown model kind '" + m.kind + "'");
  }
  return out;
}

std::vector<double> gather_scores(const std::vector<double>& local, const Ranks& ranks) {
  if (ranks.size <= 1) return local;
  std::vector<std::string> parts = ranks.allgather(ranks.rank == 0 ? std::string() : bytes_of(local));
  if (ranks.rank != 0) return {};
  std::vector<double> all = local;
  for (std::size_t r = 1; r < parts.size(); ++r) {
    const auto v = of_bytes<double>(parts[r]);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

double auc(std::span<const double> scores, std::span<const double> labels) {
  const std::size_t n = scores.size();
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return scores[a] < scores[b]; });
  double pos = 0, rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mid = 0.5 * static_cast<double>(i + 1 + j);  // the tie group's average rank (1-based)
    for (std::size_t t = i; t < j; ++t)
      if (labels[order[t]] > 0) {
        pos += 1;
        rank_sum += mid;
      }
    i = j;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

std::map<std::string, double> evaluate(const io::ModelFile& m, const Dataset& d, const Ranks& ranks, int threads) {
  const std::vector<double> s = score(m, d, threads);
  std::map<std::string, double> out;
  out["rows"] = static_cast<double>(d.rows);
  if (m.kind == "kmeans") {
    // Inertia: a fixed-order sum (per chunk, then chunks in order).
    const std::uint64_t dim = m.dimension;
    Ranks r = ranks;
    detail::ChunkReducer red(d, r, threads);
    std::vector<std::uint64_t> start(d.chunks.size() + 1, 0);
    for (std::size_t i = 0; i < d.chunks.size(); ++i) start[i + 1] = start[i] + d.chunks[i].rows();
    const auto& sum = red.sum(1, [&](std::size_t c, double* o) {
      const io::SparseRows& rows = d.chunks[c];
      for (std::uint64_t i = 0; i < rows.rows(); ++i)
        o[0] += detail::squared_distance(rows, i, m.weights.data() + static_cast<std::uint64_t>(s[start[c] + i]) * dim, dim);
    });
    out["inertia"] = sum[0];
    out["mean_inertia"] = d.rows > 0 ? sum[0] / static_cast<double>(d.rows) : 0.0;
    return out;
  }
  // All scores and labels on every rank, in file order.
  std::vector<double> labels;
  for (const auto& c : d.chunks) labels.insert(labels.end(), c.labels.begin(), c.labels.end());
  std::vector<double> all_s = s, all_y = labels;
  if (ranks.size > 1) {
    std::vector<double> pairs;
    pairs.reserve(2 * s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      pairs.push_back(s[i]);
      pairs.push_back(labels[i]);
    }
    all_s.clear();
    all_y.clear();
    for (const std::string& p : ranks.allgather(bytes_of(pairs))) {
      const auto v = of_bytes<double>(p);
      for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
        all_s.push_back(v[i]);
        all_y.push_back(v[i + 1]);
      }
    }
  }
  const double n = static_cast<double>(all_s.size());
  if (m.kind == "logreg") {
    double ll = 0, correct = 0;
    for (std::size_t i = 0; i < all_s.size(); ++i) {
      const double p = std::clamp(all_s[i], 1e-15, 1.0 - 1e-15);
      const bool y = all_y[i] > 0;
      ll -= y ? std::log(p) : std::log(1.0 - p);
      correct += (all_s[i] >= 0.5) == y ? 1 : 0;
    }
    out["auc"] = auc(all_s, all_y);
    out["log_loss"] = n > 0 ? ll / n : 0.0;
    out["accuracy"] = n > 0 ? correct / n : 0.0;
  } else {
    double se = 0;
    for (std::size_t i = 0; i < all_s.size(); ++i) se += (all_s[i] - all_y[i]) * (all_s[i] - all_y[i]);
    out["rmse"] = n > 0 ? std::sqrt(se / n) : 0.0;
  }
  return out;
}

namespace {
double margin(const io::SparseRows& r, std::uint64_t i, std::span<const double> w, bool bias) {
  const std::uint64_t dim = bias ? w.size() - 1 : w.size();
  double z = bias ? w.back() : 0.0;
  for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p)
    if (r.indices[p] < dim) z += w[r.indices[p]] * r.values[p];
  return z;
}
}  // namespace

double logreg_objective(const io::SparseRows& r, std::span<const double> w, double l2, bool bias) {
  double loss = 0, ww = 0;
  for (double x : w) ww += x * x;
  for (std::uint64_t i = 0; i < r.rows(); ++i) {
    const double yz = (r.labels[i] > 0 ? 1.0 : -1.0) * margin(r, i, w, bias);
    loss += yz >= 0 ? std::log1p(std::exp(-yz)) : -yz + std::log1p(std::exp(yz));
  }
  return 0.5 * ww + l2 * loss;
}

double linreg_objective(const io::SparseRows& r, std::span<const double> w, double l2, bool bias) {
  double loss = 0, ww = 0;
  for (double x : w) ww += x * x;
  for (std::uint64_t i = 0; i < r.rows(); ++i) {
    const double e = margin(r, i, w, bias) - r.labels[i];
    loss += 0.5 * e * e;
  }
  return 0.5 * ww + l2 * loss;
}

double kmeans_inertia(const io::SparseRows& r, std::span<const double> c, std::uint32_t k, std::uint64_t dim) {
  double total = 0;
  for (std::uint64_t i = 0; i < r.rows(); ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (std::uint32_t j = 0; j < k; ++j) best = std::min(best, detail::squared_distance(r, i, c.data() + j * dim, dim));
    total += best;
  }
  return total;
}

}  // namespace gyre::ml
