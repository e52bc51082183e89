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
// Coordinates: as io::SparseRows and io::ModelFile: feature index i (0-based, i.e. the LIBSVM
// index - 1, or io::hash_feature's) is coordinate i; with a bias, coordinate `dimension` is the
// bias feature (value OnlineOptions::bias, 1 as liblinear's -B 1). Unhashed,
// the dimension grows with the largest index seen; hashed (hash_bits > 0) it is 2^hash_bits.
//
// Parallel design (add_online_training): DATA PARALLEL with a periodic merge of model deltas
// through the streaming loop's feedback edge. Every partition learns on its share of the stream
// with its own replica and, every `merge_every` examples (16384, at most publish_every / P; it
// was 4096: see bench/README.md "online"), sends the change of its state
// (FTRL: z and n; adaptive: w and G) since its last send, sparse (touched coordinates only),
// broadcast over the feedback edge. The merge is PARAMETER MIXING: every replica adds 1/P of each
// delta (its own included: it keeps 1/P of what it learned), so all replicas and the publisher
// (which adds 1/P of every delta to the start model) hold base + the mean of the replicas' moves.
// Adding the deltas whole (asynchronous sums) was measured first: the replicas run up to
// merge_every x P examples apart, each corrects the same errors, and the sum overshoots: a warm restart
// from a good model at 4 partitions fell from AUC 0.9017 to 0.868 on a9a; mixed, 0.902 (bench/
// README.md). The alternative, the model partitioned by feature across partitions, needs two
// exchanges per example (partial margins to the example's owner, the gradient back to the
// features' owners): at ~12 non-zeros an example, the round trips of a dataflow channel cost
// far more than the update itself (about 100 ns), while a delta of 16384 examples is a few
// MiB at most, sent once; it was not built (reasoned, not measured: see bench/README.md).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gyre/io/libsvm.h"
#include "gyre/io/model_file.h"

namespace gyre {
class Environment;
}

namespace gyre::algo {

enum class OnlineAlgorithm { kFtrl, kAdaptive };

const char* to_string(OnlineAlgorithm a);
// "ftrl" / "adaptive"; throws std::invalid_argument otherwise.
OnlineAlgorithm online_algorithm_from_string(const std::string& s);

struct OnlineOptions {
  OnlineAlgorithm algorithm = OnlineAlgorithm::kFtrl;
  // FTRL-Proximal.
  double alpha = 0.2;  // defaults: best one-pass AUC on a 20% holdout of a9a's train set
  double beta = 1.0;
  double l1 = 0.0;
  double l2 = 0.0;  // also adaptive: L2 on the weights (per example, as a gradient term)
  // Adaptive SGD.
  double learning_rate = 0.2;  // (same holdout)
  double initial_g2 = 1.0;  // the sum of squared gradients starts here (a prior: no huge first step)
  // Features.
  double bias = 1.0;  // <= 0: no bias feature
  int hash_bits = 0;  // 0: indices used as they are (the dimension grows)
};

// One example: label (+1/-1 or 1/0: > 0 is positive) and the feature (index, value) pairs.
struct SparseRowView {
  double label = 0;
  std::span<const std::uint32_t> index;  // 0-based (io::SparseRows), < 2^hash_bits when hashed
  std::span<const double> value;
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
  // Hints that `row` is learned next (prefetches its coordinates' state: call it one row ahead).
  void prefetch(const SparseRowView& row) const {
    for (std::uint32_t i : row.index)
      if (i < dimension_) __builtin_prefetch(&c_[i], 1);
  }

  // Current weights, coordinates as above (dimension() values, + 1 for the bias if any).
  std::vector<double> weights() const;
  // 1 + the largest feature index seen (2^hash_bits when hashed; the model's when warm-started).
  std::size_t dimension() const { return seen_; }
  const OnlineOptions& options() const { return o_; }
  std::uint64_t examples() const { return examples_; }

  // Optimiser state by name: FTRL "z", "n"; adaptive "w", "g2", "scale". Sized like weights().
  std::vector<std::pair<std::string, std::vector<double>>> state() const;
  // Continues from a model: its weights and, when present for this algorithm, its state. Without
  // state, FTRL derives z from w with n = 0 (w is reproduced exactly: see the .cc); adaptive starts
  // from w with the initial rates.
  void warm_start(std::size_t dimension, const std::vector<double>& weights,
                  const std::vector<std::pair<std::string, std::vector<double>>>& state, std::uint64_t examples);

  // Delta tracking (data-parallel merge): this learner's own changes since the last
  // take_delta() (what apply_delta added meanwhile is not part of it). Tracking snapshots a
  // coordinate's state the first time an example touches it in an interval (a slot per
  // coordinate and a list of snapshots: no second array of the model's size), so the delta is
  // the current state minus the snapshot.
  void track_deltas(bool on);
  // The delta (coordinates in no particular order, each once), and the model keeps `keep` x its own
  // delta (the merge keeps 1/P of it: see the top of this file), in the same pass.
  ModelDelta take_delta(double keep = 1.0);
  // Adds scale x the delta (the merge: scale 1/P, see the top of this file).
  void apply_delta(const ModelDelta& d, double scale = 1.0);

 private:
  struct Coord {
    double a;  // FTRL: z; adaptive: w
    double b;  // FTRL: n; adaptive: G (sum of squared gradients)
  };
  std::uint32_t coord_of(std::uint32_t index);
  void grow(std::size_t dimension);
  double weight(const Coord& c, std::size_t j) const;
  double margin(const SparseRowView& row) const;
  void snapshot(std::uint32_t j);

  OnlineOptions o_;
  std::size_t dimension_ = 0;  // capacity (grows by half when unhashed)
  std::size_t seen_ = 0;
  std::vector<Coord> c_;        // dimension_ + 1 (the last: bias)
  std::vector<float> scale_;    // adaptive: the largest |x| seen per coordinate
  std::uint64_t examples_ = 0;
  // Scratch (no allocation per example).
  std::vector<std::uint32_t> j_;
  std::vector<double> x_, w_, sq_;
  // Delta tracking: bit j of bits_ says j has a snapshot (a bitmap: 2^B / 8 bytes, cache
  // resident), then at snap_[slot_[j]] (slot_ is read only for a set bit).
  struct Snapshot {
    std::uint32_t j;
    Coord old;
  };
  bool track_ = false;
  std::vector<std::uint64_t> bits_;
  std::vector<std::uint32_t> slot_;
  bool tracked(std::uint32_t j) const { return (bits_[j >> 6] >> (j & 63)) & 1u; }
  std::vector<Snapshot> snap_;
};

// Area under the ROC curve of scores against labels (> 0 positive); ties count half.
double auc(std::span<const double> score, std::span<const double> label);
// Mean log loss of probabilities against labels (> 0 positive), probabilities clipped to 1e-15.
double log_loss(std::span<const double> prob, std::span<const double> label);

// Progressive AUC and log loss of a stream of probabilities in constant memory (the streaming
// job's: no sort, no list of all predictions). BINNED: a probability p in [0, 1] falls in the bin
// of its float's top bits (sign, exponent and 10 mantissa bits: bins 2^-10 of p wide, relative),
// and the AUC is the exact tie-aware AUC of the binned scores: pairs in one bin count half. So
// it differs from auc() of the same floats by at most half the fraction of (positive, negative)
// pairs that share a bin (tie_fraction()/2: about 1e-3 of the pairs when predictions spread
// over [0.01, 0.99]). The log loss is exact (a running sum).
class ScoreHistogram {
 public:
  ScoreHistogram();
  void add(float p, bool positive) {
    const float q = p > 0.0f ? (p < 1.0f ? p : 1.0f) : 0.0f;
    std::uint32_t b;
    static_assert(sizeof(b) == sizeof(q));
    __builtin_memcpy(&b, &q, sizeof b);
    (positive ? pos_ : neg_)[b >> kShift] += 1;
    const double d = static_cast<double>(q);
    const double c = d < 1e-15 ? 1e-15 : (d > 1.0 - 1e-15 ? 1.0 - 1e-15 : d);
    loss_ += positive ? -std::log(c) : -std::log(1.0 - c);
    ++n_;
  }
  void add(const ScoreHistogram& o);
  void clear();
  std::uint64_t count() const { return n_; }
  double auc() const;
  double log_loss() const { return n_ == 0 ? 0.0 : loss_ / static_cast<double>(n_); }
  // The fraction of (positive, negative) pairs that share a bin (the AUC's uncertainty x 2).
  double tie_fraction() const;

 private:
  static constexpr int kShift = 13;  // float bits >> 13: 1.0f is bin 0x1fc00
  std::vector<std::uint64_t> pos_, neg_;  // 64-bit: a stream may run for days
  double loss_ = 0;
  std::uint64_t n_ = 0;
};


// ---------------------------------------------------------------- the streaming job

struct OnlineStreamOptions {
  OnlineOptions learner;
  std::string input;  // a LIBSVM file read once as a stream, or "-": standard input (until closed)
  std::string model_dir;   // the model store versions are published to ("": none)
  std::string warm_start;  // a model file to continue from ("": none)
  std::uint64_t publish_every = 0;  // publish a version every N examples (0: at the end only)
  std::int64_t publish_ms = 0;      // and/or every T ms (0: off)
  std::uint64_t merge_every = 16384;  // examples a partition learns between sending its deltas
  // (the cost of a merge grows with the coordinates touched in it, fewer per example the longer
  // the interval on a heavy-tailed feature law; a9a's one-pass AUC at 2 and 4 partitions held)
  std::size_t block_rows = 1024;     // rows per record of the stream
  bool follow_store = true;  // continue from a newer batch version that appears in model_dir
  int parallelism = 0;       // 0: the environment's
};

struct PublishedVersion {
  std::uint64_t version = 0;
  std::uint64_t parent_version = 0;
  std::uint64_t examples_from = 0, examples_to = 0;  // merged examples [from, to) of the stream
  double auc = 0, log_loss = 0;  // progressive, over the examples since the previous version
  std::string path;
};

// Filled as the job runs (versions) and by finish(); meaningful on rank 0 (where the publisher,
// a parallelism-1 operator, runs); examples and progressive figures are rank 0's view of all.
struct OnlineStreamResult {
  std::vector<PublishedVersion> versions;
  std::uint64_t examples = 0;
  double progressive_auc = 0, progressive_log_loss = 0;
  io::ModelFile model;  // the merged model at the end (also published when model_dir is set)
  bool has_model = false;
};

class OnlineStreamJob {
 public:
  // After env.run(): merges the last deltas, publishes the final version (if anything was
  // learned since the last one) and returns the result.
  const OnlineStreamResult& finish();
  struct Impl;
  std::shared_ptr<Impl> impl;
};

// Adds the online training job to `env` (run it with env.run()). Throws gyre::Error for a
// warm-start model of another kind, loss or dimension / hashing, naming which.
OnlineStreamJob add_online_training(Environment& env, const OnlineStreamOptions& o,
                                    std::shared_ptr<const std::vector<io::SparseRows>> blocks = nullptr);

// The model file of a learner's current state (kind logreg, loss logistic, its algorithm,
// parameters and state).
io::ModelFile to_model_file(const OnlineLogreg& m);
// Checks that `f` can warm-start a learner with options `o` (kind, loss, hashing; dimension when
// `dimension` > 0) and throws gyre::Error saying which field differs.
void check_warm_start(const io::ModelFile& f, const OnlineOptions& o, const std::string& path,
                      std::uint64_t dimension = 0);
// A learner continuing from `f` (weights, and state when it is this algorithm's).
OnlineLogreg learner_from(const io::ModelFile& f, OnlineOptions o);

// ---------------------------------------------------------------- serving

// One scored row: its position in the prediction stream, the probability, the model version
// that computed it, and the partition that did.
struct Scored {
  std::uint64_t row = 0;
  double score = 0;
  std::uint64_t version = 0;
  std::int32_t partition = 0;
  std::int64_t at_us = 0;  // system clock (us), when its block was scored
};

// A prediction stream joined with a stream of model versions through broadcast state: every
// partition keeps the newest version it has received (an older one arriving later is ignored,
// so versions never go back in a partition's output) and scores its rows with it; rows that
// come before any model wait for the first. `rows`: blocks of rows (first row number in each
// block's stream order: blocks[i] starts at row first_row[i]); `models`: model files in arrival
// order, or read from `model_dir` by a watcher polling every poll_ms until stop_after_version
// is seen. Returns the scored rows of every partition (on every rank: gathered).
struct ServeOptions {
  std::string model_dir;
  int poll_ms = 5;
  std::uint64_t stop_after_version = 0;   // the watcher ends after this version (0: after one scan)
  std::int64_t rows_delay_us = 0;          // the row source waits this long between blocks
  int parallelism = 0;
};
std::vector<Scored> serve(Environment& env, std::shared_ptr<const std::vector<io::SparseRows>> blocks,
                          std::shared_ptr<const std::vector<io::ModelFile>> models, const ServeOptions& o);

}  // namespace gyre::algo
