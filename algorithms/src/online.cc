// Online logistic regression learners (see online.h): FTRL-Proximal, adaptive SGD, metrics.
#include "gyre/algorithms/online.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>


namespace gyre::algo {

const char* to_string(OnlineAlgorithm a) { return a == OnlineAlgorithm::kFtrl ? "ftrl" : "adaptive"; }

OnlineAlgorithm online_algorithm_from_string(const std::string& s) {
  if (s == "ftrl") return OnlineAlgorithm::kFtrl;
  if (s == "adaptive") return OnlineAlgorithm::kAdaptive;
  throw std::invalid_argument("unknown online algorithm '" + s + "' (ftrl or adaptive)");
}

namespace {
inline double sigmoid(double m) {
  if (m >= 0) return 1.0 / (1.0 + std::exp(-m));
  const double e = std::exp(m);
  return e / (1.0 + e);
}
}  // namespace

OnlineLogreg::OnlineLogreg(OnlineOptions o, std::size_t dimension) : o_(o) {
  if (o_.hash_bits > 0) dimension = std::size_t{1} << o_.hash_bits;
  grow(dimension);
  seen_ = dimension;
}

void OnlineLogreg::grow(std::size_t dimension) {
  if (dimension < dimension_ && !c_.empty()) return;
  // The bias coordinate is the last: move it to the new end.
  const Coord bias = c_.empty() ? Coord{0, o_.algorithm == OnlineAlgorithm::kAdaptive ? o_.initial_g2 : 0}
                                : c_.back();
  const float bias_scale = scale_.empty() ? 0.0f : scale_.back();
  const Coord fresh{0, o_.algorithm == OnlineAlgorithm::kAdaptive ? o_.initial_g2 : 0};
  if (!c_.empty()) c_.back() = fresh;
  c_.resize(dimension + 1, fresh);
  c_.back() = bias;
  if (o_.algorithm == OnlineAlgorithm::kAdaptive) {
    if (!scale_.empty()) scale_.back() = 0.0f;
    scale_.resize(dimension + 1, 0.0f);
    scale_.back() = bias_scale;
  }
  if (track_) {
    const bool tb = !bits_.empty() && tracked(static_cast<std::uint32_t>(dimension_));
    const std::uint32_t sb = slot_.empty() ? 0 : slot_.back();
    if (tb) bits_[dimension_ >> 6] &= ~(std::uint64_t{1} << (dimension_ & 63));
    bits_.resize((dimension + 1 + 63) / 64, 0);
    slot_.resize(dimension + 1, 0);
    if (tb) {
      bits_[dimension >> 6] |= std::uint64_t{1} << (dimension & 63);
      slot_.back() = sb;
      snap_[sb].j = static_cast<std::uint32_t>(dimension);
    }
  }
  dimension_ = dimension;
}

std::uint32_t OnlineLogreg::coord_of(std::uint32_t index) {
  if (index >= dimension_) {
    if (o_.hash_bits > 0) throw std::invalid_argument("hashed index out of range");
    grow(std::max<std::size_t>(std::size_t{index} + 1, dimension_ + dimension_ / 2));
  }
  seen_ = std::max<std::size_t>(seen_, std::size_t{index} + 1);
  return index;
}

double OnlineLogreg::weight(const Coord& c, std::size_t /*j*/) const {
  if (o_.algorithm == OnlineAlgorithm::kAdaptive) return c.a;
  const double z = c.a;
  if (std::abs(z) <= o_.l1) return 0.0;
  const double s = z < 0 ? -1.0 : 1.0;
  return -(z - s * o_.l1) / ((o_.beta + std::sqrt(c.b)) / o_.alpha + o_.l2);
}

double OnlineLogreg::margin(const SparseRowView& row) const {
  double m = 0;
  for (std::size_t k = 0; k < row.index.size(); ++k) {
    const std::uint32_t i = row.index[k];
    if (i >= dimension_) continue;  // unseen feature: weight 0
    m += weight(c_[i], i) * row.value[k];
  }
  if (o_.bias > 0) m += weight(c_.back(), dimension_) * o_.bias;
  return m;
}

double OnlineLogreg::predict(const SparseRowView& row) const { return sigmoid(margin(row)); }

inline void OnlineLogreg::snapshot(std::uint32_t j) {
  std::uint64_t& w = bits_[j >> 6];
  const std::uint64_t bit = std::uint64_t{1} << (j & 63);
  if (w & bit) return;
  w |= bit;
  slot_[j] = static_cast<std::uint32_t>(snap_.size());
  snap_.push_back(Snapshot{j, c_[j]});
}

double OnlineLogreg::learn(const SparseRowView& row) {
  // Gather the example's coordinates (growing the model first, so the bias index is final).
  j_.clear();
  x_.clear();
  for (std::size_t k = 0; k < row.index.size(); ++k) {
    j_.push_back(coord_of(row.index[k]));
    x_.push_back(row.value[k]);
  }
  if (o_.bias > 0) {
    j_.push_back(static_cast<std::uint32_t>(dimension_));
    x_.push_back(o_.bias);
  }
  const std::size_t n = j_.size();
  const double y = row.label > 0 ? 1.0 : 0.0;
  ++examples_;
  if (track_)
    for (std::size_t k = 0; k < n; ++k) snapshot(j_[k]);

  if (o_.algorithm == OnlineAlgorithm::kFtrl) {
    // w and sqrt(n) per coordinate once (the update needs both; one sqrt saved per coordinate).
    w_.resize(n);
    sq_.resize(n);
    double m = 0;
    const double inv_alpha = 1.0 / o_.alpha;
    for (std::size_t k = 0; k < n; ++k) {
      const Coord& c = c_[j_[k]];
      const double sq = std::sqrt(c.b);
      sq_[k] = sq;
      const double z = c.a;
      double w = 0;
      if (std::abs(z) > o_.l1) w = -(z - (z < 0 ? -o_.l1 : o_.l1)) / ((o_.beta + sq) * inv_alpha + o_.l2);
      w_[k] = w;
      m += w * x_[k];
    }
    const double p = sigmoid(m);
    const double g0 = p - y;
    for (std::size_t k = 0; k < n; ++k) {
      Coord& c = c_[j_[k]];
      const double g = g0 * x_[k];
      const double sigma = (std::sqrt(c.b + g * g) - sq_[k]) * inv_alpha;
      const double dz = g - sigma * w_[k];
      c.a += dz;
      c.b += g * g;
    }
    return p;
  }

  // Adaptive, normalised, implicit step.
  double m = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t j = j_[k];
    const double ax = std::abs(x_[k]);
    if (ax > scale_[j]) {
      if (scale_[j] > 0) {
        const double r = scale_[j] / ax;
        const double dw = c_[j].a * (r * r - 1.0);
        c_[j].a += dw;
      }
      scale_[j] = static_cast<float>(ax);
    }
    m += c_[j].a * x_[k];
  }
  const double p = sigmoid(m);
  const double g0 = p - y;
  w_.resize(n);  // per-coordinate rates
  double h = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t j = j_[k];
    const double g = g0 * x_[k];
    c_[j].b += g * g;
    const double s = scale_[j] > 0 ? scale_[j] : 1.0;
    w_[k] = o_.learning_rate / (std::sqrt(c_[j].b) * s);
    h += w_[k] * x_[k] * x_[k];
  }
  // Implicit step: the new margin q solves q = m - h * (sigmoid(q) - y) (Newton, from m).
  double q = m;
  for (int it = 0; it < 8; ++it) {
    const double sq = sigmoid(q);
    const double f = q - m + h * (sq - y);
    const double fp = 1.0 + h * sq * (1.0 - sq);
    const double step = f / fp;
    q -= step;
    if (std::abs(step) < 1e-12) break;
  }
  const double s = y - sigmoid(q);  // -(dloss/dmargin) at the new margin
  for (std::size_t k = 0; k < n; ++k) {
    const double dw = w_[k] * x_[k] * s;
    c_[j_[k]].a += dw;
  }
  return p;
}

std::vector<double> OnlineLogreg::weights() const {
  std::vector<double> w(seen_ + (o_.bias > 0 ? 1 : 0));
  for (std::size_t j = 0; j < seen_; ++j) w[j] = weight(c_[j], j);
  if (o_.bias > 0) w[seen_] = weight(c_.back(), dimension_);
  return w;
}

std::vector<std::pair<std::string, std::vector<double>>> OnlineLogreg::state() const {
  const std::size_t len = seen_ + (o_.bias > 0 ? 1 : 0);
  std::vector<double> a(len), b(len);
  for (std::size_t j = 0; j < len; ++j) {
    const Coord& c = j < seen_ ? c_[j] : c_.back();
    a[j] = c.a;
    b[j] = c.b;
  }
  if (o_.algorithm == OnlineAlgorithm::kFtrl) return {{"z", std::move(a)}, {"n", std::move(b)}};
  std::vector<double> s(len);
  for (std::size_t j = 0; j < len; ++j) s[j] = j < seen_ ? scale_[j] : scale_.back();
  return {{"w", std::move(a)}, {"g2", std::move(b)}, {"scale", std::move(s)}};
}

void OnlineLogreg::warm_start(std::size_t dimension, const std::vector<double>& weights,
                              const std::vector<std::pair<std::string, std::vector<double>>>& state,
                              std::uint64_t examples) {
  const std::size_t len = dimension + (o_.bias > 0 ? 1 : 0);
  if (weights.size() != len)
    throw std::invalid_argument("warm start: " + std::to_string(weights.size()) + " weights for dimension " +
                                std::to_string(dimension) + (o_.bias > 0 ? " + bias" : ""));
  c_.clear();
  scale_.clear();
  dimension_ = 0;
  grow(dimension);
  seen_ = dimension;
  auto find = [&](const char* name) -> const std::vector<double>* {
    for (const auto& [k, v] : state)
      if (k == name && v.size() == len) return &v;
    return nullptr;
  };
  auto at = [&](std::size_t j) -> Coord& { return j < dimension ? c_[j] : c_.back(); };
  if (o_.algorithm == OnlineAlgorithm::kFtrl) {
    const auto* z = find("z");
    const auto* n = find("n");
    for (std::size_t j = 0; j < len; ++j) {
      Coord& c = at(j);
      if (z != nullptr && n != nullptr) {
        c = Coord{(*z)[j], (*n)[j]};
      } else {
        // No FTRL state (an offline model): n = 0 and z that gives w back exactly.
        const double w = weights[j];
        c.b = 0;
        c.a = w == 0 ? 0.0 : -w * (o_.beta / o_.alpha + o_.l2) + (w > 0 ? -o_.l1 : o_.l1);
      }
    }
  } else {
    const auto* g2 = find("g2");
    const auto* sc = find("scale");
    for (std::size_t j = 0; j < len; ++j) {
      Coord& c = at(j);
      c.a = weights[j];
      c.b = g2 != nullptr ? (*g2)[j] : o_.initial_g2;
      if (sc != nullptr) (j < dimension ? scale_[j] : scale_.back()) = static_cast<float>((*sc)[j]);
    }
  }
  examples_ = examples;
}

void OnlineLogreg::track_deltas(bool on) {
  track_ = on;
  bits_.assign(on ? (c_.size() + 63) / 64 : 0, 0);
  slot_.assign(on ? c_.size() : 0, 0);
  snap_.clear();
}

ModelDelta OnlineLogreg::take_delta(double keep) {
  ModelDelta d;
  // In first-touch order (not sorted: a sort cost more than it saved the receivers, whose
  // apply_delta prefetches ahead; measured, bench/README.md "online").
  const std::size_t n = snap_.size();
  d.coord.resize(n);
  d.d0.resize(n);
  d.d1.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    if (k + 32 < n) __builtin_prefetch(&c_[snap_[k + 32].j], 1);
    const Snapshot& s = snap_[k];
    const std::uint32_t j = s.j;
    Coord& c = c_[j];
    const double da = c.a - s.old.a, db = c.b - s.old.b;
    // The bias travels as coordinate 0xffffffff (dimensions differ between growing replicas).
    d.coord[k] = j == dimension_ ? 0xffffffffu : j;
    d.d0[k] = da;
    d.d1[k] = db;
    if (keep != 1.0) c = Coord{s.old.a + keep * da, s.old.b + keep * db};
    bits_[j >> 6] &= ~(std::uint64_t{1} << (j & 63));
  }
  snap_.clear();
  return d;
}

void OnlineLogreg::apply_delta(const ModelDelta& d, double scale) {
  const std::size_t n = d.coord.size();
  constexpr std::size_t kAhead = 32;  // prefetch distance (entries): a miss is ~30 entries' work
  // The model never grows from a hashed delta: the plain loop.
  if (o_.hash_bits > 0 && !track_) {
    const std::uint32_t bias = static_cast<std::uint32_t>(dimension_);
    for (std::size_t k = 0; k < n; ++k) {
      if (k + kAhead < n) __builtin_prefetch(&c_[std::min(d.coord[k + kAhead], bias)], 1);
      const std::uint32_t j = std::min(d.coord[k], bias);  // 0xffffffff: the bias
      c_[j].a += scale * d.d0[k];
      c_[j].b += scale * d.d1[k];
    }
    return;
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (k + kAhead < n && d.coord[k + kAhead] < dimension_) __builtin_prefetch(&c_[d.coord[k + kAhead]], 1);
    std::uint32_t j = d.coord[k];
    if (j == 0xffffffffu) {
      j = static_cast<std::uint32_t>(dimension_);
    } else if (j >= dimension_) {
      grow(std::max<std::size_t>(std::size_t{j} + 1, dimension_ + dimension_ / 2));
    }
    if (d.coord[k] != 0xffffffffu) seen_ = std::max<std::size_t>(seen_, std::size_t{j} + 1);
    const double da = scale * d.d0[k], db = scale * d.d1[k];
    c_[j].a += da;
    c_[j].b += db;
    // Not this learner's own change: its snapshot moves with it.
    if (track_ && tracked(j)) {
      Snapshot& s = snap_[slot_[j]];
      s.old.a += da;
      s.old.b += db;
    }
  }
}

double auc(std::span<const double> score, std::span<const double> label) {
  const std::size_t n = score.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
  double pos = 0, neg = 0, rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t k = i;
    while (k < n && score[order[k]] == score[order[i]]) ++k;
    const double mid = (static_cast<double>(i) + static_cast<double>(k - 1)) / 2.0 + 1.0;  // 1-based average rank
    for (std::size_t t = i; t < k; ++t)
      if (label[order[t]] > 0) rank_sum += mid, ++pos;
      else ++neg;
    i = k;
  }
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

double log_loss(std::span<const double> prob, std::span<const double> label) {
  double s = 0;
  for (std::size_t i = 0; i < prob.size(); ++i) {
    const double p = std::clamp(prob[i], 1e-15, 1.0 - 1e-15);
    s -= label[i] > 0 ? std::log(p) : std::log(1.0 - p);
  }
  return prob.empty() ? 0.0 : s / static_cast<double>(prob.size());
}

ScoreHistogram::ScoreHistogram() : pos_((0x3f800000u >> kShift) + 1, 0), neg_((0x3f800000u >> kShift) + 1, 0) {}

void ScoreHistogram::add(const ScoreHistogram& o) {
  for (std::size_t b = 0; b < pos_.size(); ++b) pos_[b] += o.pos_[b], neg_[b] += o.neg_[b];
  loss_ += o.loss_;
  n_ += o.n_;
}

void ScoreHistogram::clear() {
  std::fill(pos_.begin(), pos_.end(), std::uint64_t{0});
  std::fill(neg_.begin(), neg_.end(), std::uint64_t{0});
  loss_ = 0;
  n_ = 0;
}

double ScoreHistogram::auc() const {
  // Bins ascend with p: each positive beats the negatives of the bins below and ties its own.
  double below = 0, sum = 0, pos = 0;
  for (std::size_t b = 0; b < pos_.size(); ++b) {
    const auto p = static_cast<double>(pos_[b]), q = static_cast<double>(neg_[b]);
    sum += p * (below + q / 2.0);
    below += q;
    pos += p;
  }
  if (pos == 0 || below == 0) return 0.5;
  return sum / (pos * below);
}

double ScoreHistogram::tie_fraction() const {
  double same = 0, pos = 0, neg = 0;
  for (std::size_t b = 0; b < pos_.size(); ++b) {
    same += static_cast<double>(pos_[b]) * static_cast<double>(neg_[b]);
    pos += static_cast<double>(pos_[b]);
    neg += static_cast<double>(neg_[b]);
  }
  return pos == 0 || neg == 0 ? 0.0 : same / (pos * neg);
}

}  // namespace gyre::algo
