// Offline training (the batch view): L2-regularised logistic and linear regression by trust-region
// Newton (TRON, as liblinear -s 0), k-means (k-means++ initialisation, Lloyd steps), and scoring
// and evaluation of a model file (gyre/io/model_file.h).
//
// Training runs as a bulk iteration (gyre/iterations/iterate.h) over the training set. The
// training set is loop-invariant: each rank reads its run of the file's byte chunks once
// (gyre/io/libsvm.h) and keeps their CSR rows in memory for every superstep; the loop's
// partitions of a rank share its chunks out (chunk i of the rank to its i mod n-th partition). A
// superstep is one pass over the rows that yields a dense vector (a gradient, a Hessian-vector
// product, centroid sums and counts, or a loss value) as a sum over all rows of all ranks: the
// loop's vector aggregate. The sum is taken in a FIXED order: one partial vector per chunk (rows
// summed in file order inside it) in the chunk's slot (LoopContext::sum_vector_slots), the slots
// added in chunk order. A chunk's bytes depend only on the file's size, so the model is the same
// bits at any number of ranks and threads (partitions). The learner's logic (TRON's outer and CG
// steps, k-means++ choices and Lloyd updates) runs between supersteps, on every rank, from the
// aggregate: it says which vector the next superstep computes, or that the loop ends. The current
// model / direction / centroids are a broadcast value: every rank holds the same copy (it is
// computed from the same reduced vectors everywhere), and the passes read it directly.
// (GYRE_ML_RUNNER=own runs the supersteps on a plain oneTBB + allgather runner instead: the same
// sums, kept to compare against; so do vectors of more than 2^18 values over all chunks, e.g.
// hashed feature spaces, whose dense per-chunk slots make the loop's supersteps slow.)
//
// Objectives (C = l2, y in {-1, +1} from label > 0, x with a trailing 1 when bias is on):
//   logreg   0.5 w'w + C sum_i log(1 + exp(-y_i w'x_i))      (liblinear -s 0 -B 1)
//   linreg   0.5 w'w + C sum_i 0.5 (w'x_i - label_i)^2
//   kmeans   sum_i min_c ||x_i - c||^2                      (inertia)
// TRON stops when ||grad|| <= tolerance * max(min(#pos, #neg), 1) / rows * ||grad(0)|| (logreg,
// as liblinear) or tolerance * ||grad(0)|| (linreg); default tolerance 0.01.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "gyre/core/cluster.h"
#include "gyre/io/libsvm.h"
#include "gyre/io/model_file.h"

namespace gyre::ml {

// The ranks of the job, and how they exchange bytes: allgather(local) returns every rank's bytes
// in rank order, on every rank (collective). One process: Ranks::local(). `cluster`: where the
// learners' bulk iterations run (gyre::mpi::Session::cluster() under mpirun); without one of
// `size` ranks, a job of several ranks trains on the learners' own superstep runner instead.
struct Ranks {
  int rank = 0;
  int size = 1;
  std::function<std::vector<std::string>(const std::string&)> allgather;
  Cluster cluster;
  static Ranks local() { return Ranks{0, 1, [](const std::string& s) { return std::vector<std::string>{s}; }, {}}; }
};

// This rank's part of a data set, plus global figures (the same on every rank).
struct Dataset {
  std::string path;
  io::ChunkPlan plan;
  std::size_t first_chunk = 0;               // global index of chunks[0]
  std::vector<io::SparseRows> chunks;        // this rank's chunks, in file order
  std::vector<std::uint64_t> chunk_rows;     // rows of every chunk of the file (all ranks)
  std::uint64_t rows = 0;                    // all ranks
  std::uint64_t positives = 0;               // rows with label > 0, all ranks
  std::uint64_t dimension = 0;               // 1 + largest feature index, all ranks
  int hash_bits = 0;
  std::uint64_t local_rows() const;
  std::uint64_t first_row() const;           // global index of this rank's first row
};

struct LoadOptions {
  io::ReadOptions read;
  std::uint64_t min_chunk = std::uint64_t{256} << 10;  // see io::plan_chunks (tests: small)
  std::size_t max_chunks = 64;
  int threads = 0;  // 0: all the rank's cores
};

// Reads the rank's chunks of `path` (collective). Throws gyre::Error "FILE:LINE: what" on the
// rank that found a malformed row, and a gyre::Error naming the failing rank on the others.
Dataset load(const std::string& path, const LoadOptions& opts, const Ranks& ranks);

// One superstep's figures (TRON: an outer iteration; kmeans: one Lloyd step).
struct IterationInfo {
  int iteration = 0;
  double objective = 0;      // logreg/linreg objective; kmeans inertia (before the update)
  double gradient_norm = 0;  // TRON; kmeans: points that changed cluster
  int inner_steps = 0;       // TRON: CG steps (Hessian-vector products)
  double test_auc = std::numeric_limits<double>::quiet_NaN();  // logreg with a test set
  double test_metric = std::numeric_limits<double>::quiet_NaN();  // linreg test RMSE
  double seconds = 0;        // since training started
};

struct TrainOptions {
  double l2 = 1.0;           // C
  double tolerance = 0.01;   // TRON's eps
  bool bias = true;          // liblinear -B 1
  int max_iterations = 1000;
  int threads = 0;           // partitions per rank (0: all cores)
  const Dataset* test = nullptr;  // evaluated after every iteration (test_auc / test_metric)
  std::function<void(const IterationInfo&)> on_iteration;  // every rank, after every iteration
};

struct KMeansOptions {
  std::uint32_t k = 8;
  std::uint64_t seed = 1;
  int max_iterations = 100;  // Lloyd steps; stops earlier when no point changes cluster
  int threads = 0;
  std::function<void(const IterationInfo&)> on_iteration;
};

struct TrainResult {
  io::ModelFile model;
  std::vector<IterationInfo> iterations;
  std::string ended_by;  // "converged", "max iterations", ...
  int vector_reductions = 0;  // supersteps (dense vector sums over all ranks)
  int loop_supersteps = 0;    // of the bulk iteration they ran in (0: on the own runner)
  double seconds = 0;
};

TrainResult train_logreg(const Dataset& train, const TrainOptions& opts, const Ranks& ranks);
TrainResult train_linreg(const Dataset& train, const TrainOptions& opts, const Ranks& ranks);
TrainResult train_kmeans(const Dataset& train, const KMeansOptions& opts, const Ranks& ranks);
// Lloyd steps from the given centroids (k x dimension, row-major); the init is skipped.
TrainResult kmeans_lloyd(const Dataset& train, std::vector<double> centroids, const KMeansOptions& opts,
                         const Ranks& ranks);

// The model's score of every row of this rank, in row order: logreg P(label > 0), linreg the
// value, kmeans the nearest centroid's index. Features the model does not know (indices beyond
// its dimension, when not hashing) count as zero, as in liblinear; data hashed otherwise than
// the model is refused (gyre::Error).
std::vector<double> score(const io::ModelFile& model, const Dataset& data, int threads = 0);
// The scores of every rank's rows, in file order, on rank 0 (collective; empty elsewhere).
std::vector<double> gather_scores(const std::vector<double>& local, const Ranks& ranks);

// Metrics of the model on all rows of all ranks (collective; the same on every rank):
// logreg auc, log_loss, accuracy; linreg rmse; kmeans inertia (sum) and mean_inertia; all: rows.
std::map<std::string, double> evaluate(const io::ModelFile& model, const Dataset& data, const Ranks& ranks,
                                       int threads = 0);

// Area under the ROC curve of `scores` for labels > 0 (ties count one half).
double auc(std::span<const double> scores, std::span<const double> labels);

// Objectives at given weights (serial, for tests): as above, on all rows of `rows`.
double logreg_objective(const io::SparseRows& rows, std::span<const double> w, double l2, bool bias);
double linreg_objective(const io::SparseRows& rows, std::span<const double> w, double l2, bool bias);
double kmeans_inertia(const io::SparseRows& rows, std::span<const double> centroids, std::uint32_t k,
                      std::uint64_t dimension);

}  // namespace gyre::ml
