// Model files: everything needed to use a trained model or to continue training it, in one HDF5
// file (readable with h5dump).
//
// Layout (format "gyre-model", format_version kModelFormatVersion):
//   attributes of /   format, format_version, kind, loss, algorithm, l2, bias, hash_bits,
//                     dimension, k, version, parent_version, data_range
//   /weights          float64[dimension (+1 with bias)]: linear models, the bias weight last;
//                     kmeans: k x dimension centroids, row-major
//   /state/<name>     float64[]: optimiser state (e.g. FTRL's z and n)
//   /params           group; one float64 attribute per optimiser parameter (alpha, beta, ...)
//   /metrics          group; one float64 attribute per training metric (objective, auc, ...)
// write_model writes a temporary file and renames it into place (nothing half-written);
// read_model throws gyre::Error naming the file and the dataset or attribute that is wrong, and
// refuses a file of another format version.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gyre::io {

inline constexpr std::uint64_t kModelFormatVersion = 1;

struct ModelFile {
  std::string kind;       // logreg | linreg | kmeans
  std::string loss;       // logistic | squared | (kmeans: "squared-distance")
  std::string algorithm;  // tron | lbfgs | ftrl | adaptive | lloyd
  double l2 = 0;          // C of liblinear's objective (0.5 w'w + C sum loss); 0: none
  bool bias = false;      // a constant feature 1 whose weight is weights.back()
  int hash_bits = 0;      // 0: feature indices as in the file
  std::uint64_t dimension = 0;  // features (without the bias)
  std::vector<double> weights;
  std::uint32_t k = 0;  // kmeans: clusters
  std::map<std::string, std::vector<double>> state;
  std::map<std::string, double> params;
  std::uint64_t version = 0;
  std::uint64_t parent_version = 0;
  std::string data_range;  // what it was trained on, e.g. "a9a:rows 0-32561"
  std::map<std::string, double> metrics;
};

void write_model(const std::string& path, const ModelFile& m);
ModelFile read_model(const std::string& path);

}  // namespace gyre::io
