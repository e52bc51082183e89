// Online logistic regression (the speed view): FTRL-Proximal and adaptive per-coordinate SGD,
// one example at a time, sparse updates, and the streaming job that runs them over ranks.
//
// Learner (OnlineLogreg): a plain per-coordinate model on a sparse-row view (label, indices,
// values). learn() returns the probability it predicted *before* the update (progressive
// validation), so the AUC of those predictions is the one-pass online AUC.
//   - FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013):
//     per coordinate z, n; w = 0 if |z| <= l1 else -(z - sgn(z) l1) / ((beta + sqrt(n)) / alpha + l2).
//   - Adaptive: per-coordinate AdaGrad rates (sum of squared gradients), normalised by the largest
//     |x_i| seen per coordinate (a coordinate's weight is rescaled when its scale grows), and an
//     implicit step on the margin (the prediction moves by the step solved at the new margin, so a
//     large rate never overshoots the label: importance-safe like VW's invariant update, though not
//     VW's closed form). In the spirit of VW's default (--adaptive --normalized --invariant).
// Coordinates: feature index i (1-based in LIBSVM) is coordinate i - 1; with a bias, coordinate
// `dimension` is the bias feature (value OnlineOptions::bias, 1 as liblinear's -B 1). Unhashed,
// the dimension grows with the largest index seen; hashed (hash_bits > 0) it is 2^hash_bits.
//
// Parallel design (OnlineTrainer / train_online_stream): DATA PARALLEL with a periodic merge of
// model deltas through the streaming loop's feedback edge. Every partition learns on its share of
// the stream with its own replica and, every `merge_every` examples, sends the change of its
// additive state (FTRL: z and n; adaptive: w and G) since its last send, sparse (touched
// coordinates only), broadcast over the feedback edge; the other replicas add it. The rejected
// alternative, the model partitioned by feature, needs two exchanges per example (partial margins
// to the example's owner, the gradient back): measured in bench/README.md ("online"), the
// round trips cost more than the whole update, while the merged deltas of a block of examples
// are a few hundred KiB. FTRL's z and n are sums of per-example terms, so the merge of deltas is
// exact up to staleness (each replica sees the others' examples up to merge_every late).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gyre::algo {

enum class OnlineAlgorithm { kFtrl, kAdaptive };

const char* to_string(OnlineAlgorithm a);
// "ftrl" / "adaptive"; throws std::invalid_argument otherwise.
OnlineAlgorithm online_algorithm_from_string(const std::string& s);

struct OnlineOptions {
  OnlineAlgorithm algorithm = OnlineAlgorithm::kFtrl;
  // FTRL-Proximal.
  double alpha = 0.1;
  double beta = 1.0;
  double l1 = 0.0;
  double l2 = 0.0;  // also adaptive: L2 on the weights (per example, as a gradient term)
  // Adaptive SGD.
  double learning_rate = 0.5;
  double initial_g2 = 1.0;  // the sum of squared gradients starts here (a prior: no huge first step)
  // Features.
  double bias = 1.0;  // <= 0: no bias feature
  int hash_bits = 0;  // 0: indices used as they are (the dimension grows)
};

// One example: label (+1/-1 or 1/0: > 0 is positive) and the feature (index, value) pairs.
struct SparseRowView {
  double label = 0;
  std::span<const std::uint32_t> index;  // 1-based LIBSVM indices (hashed or not: see hash_bits)
  std::span<const float> value;
};

// A sparse change of the additive state: coordinate, and the change of the two state arrays.
struct ModelDelta {
  std::vector<std::uint32_t> coord;
  std::vector<double> d0;  // FTRL: dz; adaptive: dw
  std::vector<double> d1;  // FTRL: dn; adaptive: dG
  std::uint64_t examples = 0;  // examples behind it
};

class OnlineLogreg {
 public:
  explicit OnlineLogreg(OnlineOptions o = {}, std::size_t dimension = 0);

  // Learns one example; returns P(y = +1) predicted before the update.
  double learn(const SparseRowView& row);
  // P(y = +1) under the current weights.
  double predict(const SparseRowView& row) const;

  // Current weights, coordinates as above (dimension() values, + 1 for the bias if any).
  std::vector<double> weights() const;
  std::size_t dimension() const { return dimension_; }
  const OnlineOptions& options() const { return o_; }
  std::uint64_t examples() const { return examples_; }

  // Optimiser state by name: FTRL "z", "n"; adaptive "w", "g2", "scale". Sized like weights().
  std::vector<std::pair<std::string, std::vector<double>>> state() const;
  // Continues from a model: its weights and, when present for this algorithm, its state. Without
  // state, FTRL derives z from w with n = 0 (w is reproduced exactly: see the .cc); adaptive starts
  // from w with the initial rates.
  void warm_start(std::size_t dimension, const std::vector<double>& weights,
                  const std::vector<std::pair<std::string, std::vector<double>>>& state, std::uint64_t examples);

  // Delta tracking (data-parallel merge): changes since the last take_delta().
  void track_deltas(bool on);
  ModelDelta take_delta();
  void apply_delta(const ModelDelta& d);

 private:
  struct Coord {
    double a;  // FTRL: z; adaptive: w
    double b;  // FTRL: n; adaptive: G (sum of squared gradients)
  };
  std::uint32_t coord_of(std::uint32_t index);
  void grow(std::size_t dimension);
  double weight(const Coord& c, std::size_t j) const;
  double margin(const SparseRowView& row) const;
  void touch(std::uint32_t j, double da, double db);

  OnlineOptions o_;
  std::size_t dimension_ = 0;
  std::vector<Coord> c_;        // dimension_ + 1 (the last: bias)
  std::vector<float> scale_;    // adaptive: the largest |x| seen per coordinate
  std::uint64_t examples_ = 0;
  // Scratch (no allocation per example).
  std::vector<std::uint32_t> j_;
  std::vector<double> x_, w_;
  // Delta tracking.
  bool track_ = false;
  std::vector<Coord> delta_;
  std::vector<std::uint8_t> touched_;
  std::vector<std::uint32_t> touched_list_;
};

// Area under the ROC curve of scores against labels (> 0 positive); ties count half.
double auc(std::span<const double> score, std::span<const double> label);
// Mean log loss of probabilities against labels (> 0 positive), probabilities clipped to 1e-15.
double log_loss(std::span<const double> prob, std::span<const double> label);

// Parses one LIBSVM row "label idx:val ..." (a '#' starts a comment) into `index`/`value`
// (cleared first; hashed into 2^hash_bits when hash_bits > 0, the hash of the index as a 1-based
// index). Returns false for a blank/comment line; throws std::invalid_argument with what is wrong.
bool parse_libsvm_row(std::string_view line, double& label, std::vector<std::uint32_t>& index,
                      std::vector<float>& value, int hash_bits = 0);

}  // namespace gyre::algo
