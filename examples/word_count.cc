// Word count: the "hello world" of dataflow. Reads a text file in parallel, splits lines into
// words, counts them with key_by + reduce, prints the most frequent words. Runs as one process or
// under mpirun (partitions spread over the ranks); the words printed are the same.
//
//   word_count [FILE] [--top N] [--parallelism P] [--explain] [--explain-dot] [--metrics FILE]
//
// Results go to stdout (rank 0); the plan, the job summary and timings go to stderr.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>

#include "gyre/core.h"
#include "gyre/mpi/session.h"

int main(int argc, char** argv) {
  gyre::mpi::Session mpi(&argc, &argv);
  std::string path = GYRE_DATA_DIR "/text/dataflow.txt";
  std::string metrics;
  std::size_t top = 10;
  gyre::JobConfig config;
  bool explain = false;
  bool dot = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--top" && i + 1 < argc) top = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--parallelism" && i + 1 < argc) config.parallelism = std::atoi(argv[++i]);
    else if (a == "--metrics" && i + 1 < argc) metrics = argv[++i];
    else if (a == "--explain") explain = true;
    else if (a == "--explain-dot") explain = dot = true;
    else if (a == "--help" || a == "-h") {
      if (mpi.rank() == 0)
        std::cout << "usage: word_count [FILE] [--top N] [--parallelism P] [--explain] [--explain-dot] "
                     "[--metrics FILE]\n";
      return 0;
    } else path = a;
  }
  const bool root = mpi.rank() == 0;

  try {
    gyre::Environment env(config, mpi.cluster());
    using Count = std::pair<std::string, long>;
    auto counts = env.read_text_file(path)
                      .flat_map<std::string>([](const std::string& line, gyre::Emit<std::string>& emit) {
                        std::string word;
                        for (char c : line) {
                          if (std::isalpha(static_cast<unsigned char>(c)) != 0) {
                            word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
                          } else if (!word.empty()) {
                            emit(word);
                            word.clear();
                          }
                        }
                        if (!word.empty()) emit(word);
                      })
                      .name("tokenize")
                      .map([](const std::string& w) { return Count{w, 1}; })
                      .name("pair")
                      .key_by([](const Count& c) { return c.first; })
                      .reduce([](const Count& a, const Count& b) { return Count{a.first, a.second + b.second}; })
                      .name("count")
                      .collect(1);  // gathered in partition 0, on rank 0

    if (explain && root) std::cerr << env.explain(dot ? gyre::ExplainFormat::kDot : gyre::ExplainFormat::kText) << "\n";
    const gyre::JobResult result = env.run();
    if (!metrics.empty() && root) result.write_json(metrics);
    if (!root) return 0;
    std::cerr << result.summary();

    auto words = counts.values();
    std::sort(words.begin(), words.end(), [](const Count& a, const Count& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    long total = 0;
    for (const auto& w : words) total += w.second;
    std::printf("%zu distinct words, %ld words in all\n", words.size(), total);
    for (std::size_t i = 0; i < std::min(top, words.size()); ++i)
      std::printf("%8ld  %s\n", words[i].second, words[i].first.c_str());
  } catch (const gyre::Error& e) {
    // Every rank gets the same error; one line is enough.
    if (root) std::fprintf(stderr, "word_count: %s\n", e.what());
    return 1;
  }
  return 0;
}
