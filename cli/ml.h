// gyre train / predict / evaluate: the ML commands (offline training; see cli/ml.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace gyre::mpi {
class Session;
}

struct MlCommands {
  CLI::App* train = nullptr;
  CLI::App* train_logreg = nullptr;
  CLI::App* train_linreg = nullptr;
  CLI::App* train_kmeans = nullptr;
  CLI::App* predict = nullptr;
  CLI::App* evaluate = nullptr;

  // Shared by the commands.
  std::string input;
  std::string test;
  std::string output;
  std::string model;
  std::string metrics;
  int threads = 0;
  int hash_bits = 0;
  int label_column = 0;
  bool no_progress = false;
  // train logreg / linreg
  double l2 = 1.0;
  double tolerance = 0.01;
  bool no_bias = false;
  int max_iterations = 1000;
  // train logreg --online
  bool online = false;
  std::string warm_start;
  std::string algorithm = "ftrl";
  std::string model_dir;
  std::uint64_t publish_every = 0;
  std::int64_t publish_ms = 0;
  // train kmeans
  std::uint32_t k = 0;
  std::uint64_t seed = 1;
  int iterations = 100;

  bool parsed() const;
  int run(gyre::mpi::Session& mpi);
};

void add_ml_commands(CLI::App& app, MlCommands& c);
