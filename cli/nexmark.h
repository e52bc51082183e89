// gyre nexmark: the Nexmark generator and queries from the shell (cli/nexmark.cc).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}
namespace gyre::mpi {
class Session;
}

struct NexmarkCommand {
  CLI::App* cmd = nullptr;
  CLI::App* generate = nullptr;
  std::string query;
  std::string input;
  std::string output;
  std::uint64_t events = 0;
  std::uint64_t seed = 1;
  double rate = 0;
  long long watermark_delay = 3000;
  int threads = 0;
  int parallelism = 0;
  // generate's own
  std::uint64_t gen_events = 0;
  std::uint64_t gen_seed = 1;
  std::string gen_output;
  int run(gyre::mpi::Session& mpi);
};

void add_nexmark_command(CLI::App& app, NexmarkCommand& c);
