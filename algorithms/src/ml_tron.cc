// Logistic and linear regression by trust-region Newton (TRON).
//
// The method of Lin, Weng and Keerthi, "Trust region Newton method for large-scale logistic
// regression" (JMLR 9, 2008), as liblinear uses it for -s 0: an outer Newton step per iteration
// whose direction comes from conjugate gradient inside a trust region (Steihaug), the region's
// radius updated from the ratio of actual to predicted reduction. Every function value,
// gradient and Hessian-vector product is one superstep of a bulk iteration: a pass over the
// loop-invariant rows of every rank and a fixed-order vector sum (ml_bulk.cc); the outer and CG
// steps run between supersteps. Written from the paper.
#include <chrono>
#include <cmath>

#include "gyre/algorithms/ml.h"
#include "ml_internal.h"

namespace gyre::ml {
namespace {

using detail::dot;

double norm(const std::vector<double>& v) { return std::sqrt(dot(v, v)); }

// f, grad f and Hessian-vector products of 0.5 w'w + C sum loss(x_i'w) over the data set.
class Problem {
 public:
  Problem(const Dataset& d, const TrainOptions& o, bool logistic, detail::Reducer& red)
      : d_(d), C_(o.l2), bias_(o.bias), logistic_(logistic), n_(d.dimension + (o.bias ? 1 : 0)), red_(red) {
    z_.resize(d.chunks.size());
    D_.resize(d.chunks.size());
    for (std::size_t c = 0; c < d.chunks.size(); ++c) {
      z_[c].assign(d.chunks[c].rows(), 0.0);
      if (logistic_) D_[c].assign(d.chunks[c].rows(), 0.0);
    }
  }
  std::size_t n() const { return n_; }

  // Keeps every row's margin w'x_i for grad and hv.
  double fun(const std::vector<double>& w) {
    const std::uint64_t dim = d_.dimension;
    const double b = bias_ ? w[dim] : 0.0;
    const auto& s = red_.reduce(1, [&](std::size_t c, double* out) {
      const io::SparseRows& r = d_.chunks[c];
      double* z = z_[c].data();
      double loss = 0;
      for (std::uint64_t i = 0; i < r.rows(); ++i) {
        double m = b;
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) m += w[r.indices[p]] * r.values[p];
        z[i] = m;
        if (logistic_) {
          const double yz = r.labels[i] > 0 ? m : -m;
          loss += yz >= 0 ? std::log1p(std::exp(-yz)) : -yz + std::log1p(std::exp(yz));
        } else {
          const double e = m - r.labels[i];
          loss += 0.5 * e * e;
        }
      }
      out[0] = loss;
    });
    return 0.5 * dot(w, w) + C_ * s[0];
  }

  // At the w of the last fun(); also keeps the Hessian's diagonal weights.
  void grad(const std::vector<double>& w, std::vector<double>& g) {
    const std::uint64_t dim = d_.dimension;
    const auto& s = red_.reduce(n_, [&](std::size_t c, double* out) {
      const io::SparseRows& r = d_.chunks[c];
      const double* z = z_[c].data();
      double* D = logistic_ ? D_[c].data() : nullptr;
      double ob = 0;
      for (std::uint64_t i = 0; i < r.rows(); ++i) {
        double coef = 0;
        if (logistic_) {
          const double y = r.labels[i] > 0 ? 1.0 : -1.0;
          const double sig = 1.0 / (1.0 + std::exp(-y * z[i]));
          D[i] = sig * (1.0 - sig);
          coef = C_ * (sig - 1.0) * y;
        } else {
          coef = C_ * (z[i] - r.labels[i]);
        }
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) out[r.indices[p]] += coef * r.values[p];
        ob += coef;
      }
      if (bias_) out[dim] += ob;
    });
    g.resize(n_);
    for (std::size_t j = 0; j < n_; ++j) g[j] = w[j] + s[j];
  }

  // (I + C X'DX) v at the w of the last grad().
  void hv(const std::vector<double>& v, std::vector<double>& out_v) {
    const std::uint64_t dim = d_.dimension;
    const double vb = bias_ ? v[dim] : 0.0;
    const auto& s = red_.reduce(n_, [&](std::size_t c, double* out) {
      const io::SparseRows& r = d_.chunks[c];
      const double* D = logistic_ ? D_[c].data() : nullptr;
      double ob = 0;
      for (std::uint64_t i = 0; i < r.rows(); ++i) {
        double t = vb;
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) t += v[r.indices[p]] * r.values[p];
        t *= logistic_ ? C_ * D[i] : C_;
        for (std::uint64_t p = r.offsets[i]; p < r.offsets[i + 1]; ++p) out[r.indices[p]] += t * r.values[p];
        ob += t;
      }
      if (bias_) out[dim] += ob;
    });
    out_v.resize(n_);
    for (std::size_t j = 0; j < n_; ++j) out_v[j] = v[j] + s[j];
  }

 private:
  const Dataset& d_;
  double C_;
  bool bias_;
  bool logistic_;
  std::size_t n_;
  detail::Reducer& red_;
  std::vector<std::vector<double>> z_, D_;
};

// Steihaug's truncated CG for min g's + 0.5 s'Hs within ||s|| <= delta. Returns the CG steps;
// r ends as -(g + Hs).
int trcg(Problem& prob, double delta, const std::vector<double>& g, std::vector<double>& s, std::vector<double>& r,
         bool& reach_boundary) {
  const std::size_t n = g.size();
  std::vector<double> d(n), Hd(n);
  s.assign(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) r[i] = -g[i], d[i] = r[i];
  const double cgtol = 0.1 * norm(g);
  double rTr = dot(r, r);
  int steps = 0;
  reach_boundary = false;
  while (std::sqrt(rTr) > cgtol) {
    ++steps;
    prob.hv(d, Hd);
    double alpha = rTr / dot(d, Hd);
    for (std::size_t i = 0; i < n; ++i) s[i] += alpha * d[i];
    if (norm(s) > delta) {
      reach_boundary = true;
      for (std::size_t i = 0; i < n; ++i) s[i] -= alpha * d[i];
      const double std_ = dot(s, d), sts = dot(s, s), dtd = dot(d, d), dsq = delta * delta;
      const double rad = std::sqrt(std_ * std_ + dtd * (dsq - sts));
      alpha = std_ >= 0 ? (dsq - sts) / (std_ + rad) : (rad - std_) / dtd;
      for (std::size_t i = 0; i < n; ++i) {
        s[i] += alpha * d[i];
        r[i] -= alpha * Hd[i];
      }
      break;
    }
    for (std::size_t i = 0; i < n; ++i) r[i] -= alpha * Hd[i];
    const double rnew = dot(r, r);
    const double beta = rnew / rTr;
    for (std::size_t i = 0; i < n; ++i) d[i] = r[i] + beta * d[i];
    rTr = rnew;
  }
  return steps;
}

double test_figure(const Dataset& test, const std::vector<double>& w, const TrainOptions& o, bool logistic,
                   const Ranks& ranks, std::uint64_t dim) {
  io::ModelFile m;
  m.kind = logistic ? "logreg" : "linreg";
  m.bias = o.bias;
  m.hash_bits = test.hash_bits;
  m.dimension = dim;
  m.weights = w;
  const auto metrics = evaluate(m, test, ranks, o.threads);
  return logistic ? metrics.at("auc") : metrics.at("rmse");
}

TrainResult tron(const Dataset& d, const TrainOptions& o, const Ranks& ranks, bool logistic) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (d.rows == 0) throw Error("'" + d.path + "': no rows to train on");
  if (!(o.l2 > 0)) throw Error("--l2 must be positive (got " + std::to_string(o.l2) + ")");
  if (!(o.tolerance > 0)) throw Error("--tolerance must be positive (got " + std::to_string(o.tolerance) + ")");
  TrainResult res;
  const std::size_t n = d.dimension + (o.bias ? 1 : 0);
  std::vector<double> w(n, 0.0);
  double f = 0, gnorm = 0;
  // The learner: every fun / grad / hv is one superstep of the loop (ml_bulk.cc).
  const detail::LearnerRun run = detail::run_learner(d, ranks, o.threads, n, logistic ? "logreg" : "linreg",
                                                     [&](detail::Reducer& red) {
    Problem prob(d, o, logistic, red);

    constexpr double eta0 = 1e-4, eta1 = 0.25, eta2 = 0.75;
    constexpr double sigma1 = 0.25, sigma2 = 0.5, sigma3 = 4.0;
    std::vector<double> g(n), s(n), r(n), w_new(n);
    f = prob.fun(w);
    prob.grad(w, g);
    double delta = norm(g);
    const double gnorm0 = delta;
    gnorm = gnorm0;
    double eps = o.tolerance;
    if (logistic) {
      const double pos = static_cast<double>(d.positives), neg = static_cast<double>(d.rows - d.positives);
      eps = o.tolerance * std::max(std::min(pos, neg), 1.0) / static_cast<double>(d.rows);
    }
    auto report = [&](int iter, int cg) {
      IterationInfo info;
      info.iteration = iter;
      info.objective = f;
      info.gradient_norm = gnorm;
      info.inner_steps = cg;
      if (o.test != nullptr) {
        const double v = test_figure(*o.test, w, o, logistic, ranks, d.dimension);
        (logistic ? info.test_auc : info.test_metric) = v;
      }
      info.seconds = since();
      res.iterations.push_back(info);
      if (o.on_iteration) o.on_iteration(info);
    };
    report(0, 0);
    res.ended_by = "converged";
    int iter = 1;
    bool search = gnorm > eps * gnorm0;
    int cg_total = 0;
    while (search) {
      if (iter > o.max_iterations) {
        res.ended_by = "max iterations";
        break;
      }
      bool boundary = false;
      const int cg = trcg(prob, delta, g, s, r, boundary);
      cg_total += cg;
      for (std::size_t i = 0; i < n; ++i) w_new[i] = w[i] + s[i];
      const double gs = dot(g, s);
      const double prered = -0.5 * (gs - dot(s, r));
      const double fnew = prob.fun(w_new);
      const double actred = f - fnew;
      const double snorm = norm(s);
      if (iter == 1) delta = std::min(delta, snorm);
      const double alpha = fnew - f - gs <= 0 ? sigma3 : std::max(sigma1, -0.5 * (gs / (fnew - f - gs)));
      if (actred < eta0 * prered) delta = std::min(alpha * snorm, sigma2 * delta);
      else if (actred < eta1 * prered) delta = std::max(sigma1 * delta, std::min(alpha * snorm, sigma2 * delta));
      else if (actred < eta2 * prered) delta = std::max(sigma1 * delta, std::min(alpha * snorm, sigma3 * delta));
      else if (boundary) delta = sigma3 * delta;
      else delta = std::max(delta, std::min(alpha * snorm, sigma3 * delta));
      if (actred > eta0 * prered) {
        w.swap(w_new);
        f = fnew;
        prob.grad(w, g);
        gnorm = norm(g);
        report(iter, cg_total);
        cg_total = 0;
        ++iter;
        if (gnorm <= eps * gnorm0) break;
      }
      // A rejected step leaves the margins of w_new behind; only grad() reads them, and it runs
      // after an accepted step. hv() reads the Hessian weights of the kept w.
      if (f < -1e32) {
        res.ended_by = "objective below -1e32";
        break;
      }
      if (std::fabs(actred) <= 0 && prered <= 0) {
        res.ended_by = "no reduction predicted";
        break;
      }
      if (std::fabs(actred) <= 1e-12 * std::fabs(f) && std::fabs(prered) <= 1e-12 * std::fabs(f)) {
        res.ended_by = "reduction below 1e-12 of the objective";
        break;
      }
    }
  });

  io::ModelFile& m = res.model;
  m.kind = logistic ? "logreg" : "linreg";
  m.loss = logistic ? "logistic" : "squared";
  m.algorithm = "tron";
  m.l2 = o.l2;
  m.bias = o.bias;
  m.hash_bits = d.hash_bits;
  m.dimension = d.dimension;
  m.weights = w;
  m.version = 1;
  m.parent_version = 0;
  m.data_range = d.path + " rows 0-" + std::to_string(d.rows);
  m.params["tolerance"] = o.tolerance;
  m.metrics["objective"] = f;
  m.metrics["gradient_norm"] = gnorm;
  m.metrics["iterations"] = static_cast<double>(res.iterations.size() - 1);
  if (!res.iterations.empty() && o.test != nullptr) {
    const auto& last = res.iterations.back();
    if (logistic) m.metrics["test_auc"] = last.test_auc;
    else m.metrics["test_rmse"] = last.test_metric;
  }
  res.vector_reductions = run.reductions;
  res.loop_supersteps = run.supersteps;
  res.seconds = since();
  return res;
}

}  // namespace

TrainResult train_logreg(const Dataset& d, const TrainOptions& o, const Ranks& ranks) { return tron(d, o, ranks, true); }
TrainResult train_linreg(const Dataset& d, const TrainOptions& o, const Ranks& ranks) { return tron(d, o, ranks, false); }

}  // namespace gyre::ml
