// Online learning benchmarks (issue 16): the learner's throughput on parsed rows, and the
// latency from publishing a model version to the first prediction that uses it.
//
//   online_bench learn DATA.svm [--hash-bits B] [--algorithm ftrl|adaptive]
//       parse once, then one pass of the serial learner: rows/s of each step
//   online_bench latency [--versions N] [--interval-ms T] [--poll-ms P] [--buffer-timeout-ms B]
//       a serving job (store watcher -> broadcast -> scoring partitions) while a thread
//       publishes N versions T ms apart into a temporary store; prints the latency from the
//       start of each publish (write + link) to the first prediction carrying that version
//
// The throughput of the whole streaming job from LIBSVM text is the gyre command's
// (bench/README.md "Online training").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gyre/algorithms/online.h"
#include "gyre/core.h"
#include "gyre/io/libsvm.h"
#include "gyre/io/model_store.h"

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int learn(int argc, char** argv) {
  if (argc < 3) return 2;
  gyre::algo::OnlineOptions o;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--hash-bits") o.hash_bits = std::atoi(argv[i + 1]);
    else if (a == "--algorithm") o.algorithm = gyre::algo::online_algorithm_from_string(argv[i + 1]);
  }
  gyre::io::ReadOptions ro;
  ro.hash_bits = o.hash_bits;
  const auto t0 = std::chrono::steady_clock::now();
  const auto plan = gyre::io::plan_file(argv[2]);
  gyre::io::SparseRows all;
  for (std::size_t k = 0; k < plan.chunks; ++k) all.append(gyre::io::read_range(argv[2], plan.begin(k), plan.end(k), ro));
  const auto t1 = std::chrono::steady_clock::now();
  gyre::algo::OnlineLogreg m(o);
  for (std::size_t k = 0; k < all.rows(); ++k) {
    const std::size_t lo = all.offsets[k], hi = all.offsets[k + 1];
    m.learn({all.labels[k], {all.indices.data() + lo, hi - lo}, {all.values.data() + lo, hi - lo}});
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double a = std::chrono::duration<double>(t1 - t0).count(), b = std::chrono::duration<double>(t2 - t1).count();
  const double r = static_cast<double>(all.rows());
  std::printf("%llu rows, %.2f nnz/row: parse %.3f s (%.0f rows/s, one thread), learn (%s) %.3f s (%.0f rows/s)\n",
              static_cast<unsigned long long>(all.rows()), static_cast<double>(all.nonzeros()) / r, a, r / a,
              to_string(o.algorithm), b, r / b);
  return 0;
}

int latency(int argc, char** argv) {
  int versions = 10, interval_ms = 100, poll_ms = 2, buffer_ms = 100;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--versions") versions = std::atoi(argv[i + 1]);
    else if (a == "--interval-ms") interval_ms = std::atoi(argv[i + 1]);
    else if (a == "--poll-ms") poll_ms = std::atoi(argv[i + 1]);
    else if (a == "--buffer-timeout-ms") buffer_ms = std::atoi(argv[i + 1]);
  }
  const std::string dir = (std::filesystem::temp_directory_path() / ("online-bench-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  // A model to publish: 2^16 weights.
  gyre::io::ModelFile m;
  m.kind = "logreg", m.loss = "logistic", m.algorithm = "ftrl", m.bias = true, m.dimension = 1 << 16;
  m.weights.assign((1 << 16) + 1, 0.01);
  gyre::io::publish(dir, m);  // version 1 before the job starts
  // Rows: blocks of 64 rows, one block per partition every 500 us, for the whole run.
  auto blocks = std::make_shared<std::vector<gyre::io::SparseRows>>();
  const int n_blocks = (versions + 2) * interval_ms * 2 * 2;
  for (int b = 0; b < n_blocks; ++b) {
    gyre::io::SparseRows r;
    for (int k = 0; k < 64; ++k) {
      for (int e = 0; e < 12; ++e) r.indices.push_back(static_cast<std::uint32_t>((b * 64 + k) * 13 + e) % (1 << 16)), r.values.push_back(1.0);
      r.offsets.push_back(r.indices.size());
      r.labels.push_back(1);
    }
    blocks->push_back(std::move(r));
  }
  std::map<std::uint64_t, std::int64_t> published;
  std::thread publisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    for (int v = 0; v < versions; ++v) {
      const std::int64_t t = now_us();
      gyre::io::ModelFile x = m;
      x.weights[0] = v;
      const std::uint64_t got = gyre::io::publish(dir, x);
      published[got] = t;
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  });
  gyre::JobConfig c;
  c.buffer_timeout = std::chrono::milliseconds(buffer_ms);
  gyre::Environment env(c);
  gyre::algo::ServeOptions so;
  so.model_dir = dir;
  so.poll_ms = poll_ms;
  so.stop_after_version = static_cast<std::uint64_t>(versions) + 1;
  so.rows_delay_us = 500;
  const auto scored = gyre::algo::serve(env, blocks, nullptr, so);
  publisher.join();
  std::map<std::uint64_t, std::int64_t> first;
  for (const auto& s : scored) {
    auto it = first.find(s.version);
    if (it == first.end() || s.at_us < it->second) first[s.version] = s.at_us;
  }
  std::vector<double> lat;
  for (const auto& [v, t] : published)
    if (first.count(v) > 0) lat.push_back(static_cast<double>(first[v] - t) / 1000.0);
  std::sort(lat.begin(), lat.end());
  if (lat.empty()) {
    std::printf("no version reached a prediction\n");
    return 1;
  }
  std::printf("%zu versions (2^16 weights) published %d ms apart, watcher polling every %d ms, %d partitions: "
              "buffer timeout %d ms: publish -> first prediction median %.2f ms, max %.2f ms\n",
              lat.size(), interval_ms, poll_ms, env.default_parallelism(), buffer_ms, lat[lat.size() / 2], lat.back());
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "learn") return learn(argc, argv);
    if (mode == "latency") return latency(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "online_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: online_bench learn DATA.svm [--hash-bits B] [--algorithm A] | latency [--versions N] "
                       "[--interval-ms T] [--poll-ms P]\n");
  return 2;
}
