// Job configuration and results.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gyre {

struct JobConfig {
  // Default parallelism of operators (partitions per operator); 0 = hardware threads.
  int parallelism = 0;
  // Worker threads (slots) of this rank; 0 = hardware threads.
  int slots = 0;
  // Target size of a batch on an exchange; records per batch = max(1, batch_bytes / sizeof(T)).
  std::size_t batch_bytes = 32 * 1024;
  // Batches a producer may have queued at one consumer before it is back-pressured.
  std::size_t channel_capacity = 4;
  // For jobs with an unbounded source: a partly filled buffer is sent at the latest this long
  // after its first record was written. Zero sends every batch at once.
  std::chrono::milliseconds buffer_timeout{100};
  // How often an idle unbounded source is polled again.
  std::chrono::milliseconds idle_poll{1};
};

// Records that passed through one operator, summed over its partitions.
struct OperatorMetrics {
  int node = 0;
  std::string name;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
};

struct JobResult {
  double seconds = 0;
  bool cancelled = false;
  std::vector<OperatorMetrics> operators;
  // Largest number of batches queued at any one input gate during the run.
  std::size_t max_queued_batches = 0;
};

}  // namespace gyre
