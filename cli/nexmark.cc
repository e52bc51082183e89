// gyre nexmark generate --events N [--seed S] --output FILE
// gyre nexmark --query qN (--input FILE | --events N [--seed S] [--rate R]) [--watermark-delay MS]
//              --output OUT [--threads T] [--parallelism P]
// The generator and queries are in gyre/algorithms/nexmark.h; this file is the command line.
#include "nexmark.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "gyre/algorithms/nexmark.h"
#include "gyre/core/error.h"
#include "gyre/core/text_io.h"
#include "gyre/mpi/session.h"

namespace {

// Refuses an output that cannot be written (before any work), or that is the input.
void check_output(const std::string& out, const std::string& in) {
  std::string target;
  try {
    target = gyre::detail::output_target(out);
  } catch (const std::exception& e) {
    throw gyre::Error(std::string("--output: ") + e.what());
  }
  struct stat a {}, b {};
  if (!in.empty() && ::stat(target.c_str(), &a) == 0 && ::stat(in.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
      a.st_dev == b.st_dev)
    throw gyre::Error("--output " + out + " is the input file");
  std::string dir = target.substr(0, target.find_last_of('/') == std::string::npos ? 0 : target.find_last_of('/'));
  if (dir.empty()) dir = target.find('/') == 0 ? "/" : ".";
  if (::access(dir.c_str(), W_OK | X_OK) != 0) throw gyre::Error("--output " + out + ": cannot write in " + dir);
}

}  // namespace

void add_nexmark_command(CLI::App& app, NexmarkCommand& c) {
  c.cmd = app.add_subcommand(
      "nexmark",
      "the Nexmark streaming benchmark: its generator (Beam's semantics and default parameters) and queries q0, q1, q2, "
      "q3, q4, q5, q7, q8, q11, q12 as gyre jobs");
  c.cmd->require_subcommand(0, 1);
  c.cmd->add_option("--query", c.query, "q0 (events as read), q1 (bids in euro), q2 (bids of auctions % 123 == 0), "
                                        "q3 (local item suggestion: join), q4 (average winning price per category), "
                                        "q5 (hot items), q7 (highest bid), q8 (new users), q11 (user sessions), q12 "
                                        "(processing-time windows)");
  auto* input = c.cmd->add_option("--input", c.input, "a file written by 'gyre nexmark generate' (read in parallel)");
  auto* events = c.cmd->add_option("--events", c.events, "generate this many events in the job instead");
  input->excludes(events);
  c.cmd->add_option("--seed", c.seed, "the generator's seed (default 1)")->needs(events);
  c.cmd->add_option("--rate", c.rate, "emit R events per second of processing time, as a live source (default: as fast "
                                      "as possible; event time is the generator's own, 10,000 events per second)")
      ->needs(events)
      ->check(CLI::PositiveNumber);
  c.cmd->add_option("--watermark-delay", c.watermark_delay,
                    "bounded out-of-orderness of the watermarks in ms (default 3000, the generator's largest delay)")
      ->check(CLI::NonNegativeNumber);
  c.cmd->add_option("--output", c.output, "the query's results as CSV lines (any order), written when the job ends");
  c.cmd->add_option("--threads", c.threads, "worker threads per rank (default: the cores the rank sees)")
      ->check(CLI::NonNegativeNumber);
  c.cmd->add_option("--parallelism", c.parallelism, "partitions (default: ranks x threads)")->check(CLI::NonNegativeNumber);
  c.generate = c.cmd->add_subcommand("generate", "write Nexmark events, one per line in arrival order: "
                                                 "P,ts,id,name,email,credit_card,city,state / "
                                                 "A,ts,id,item_name,description,initial_bid,reserve,expires,seller,category / "
                                                 "B,ts,auction,bidder,price,channel,url (ts, expires: ms of event time)");
  c.generate->add_option("--events", c.gen_events, "how many events")->required()->check(CLI::PositiveNumber);
  c.generate->add_option("--seed", c.gen_seed, "random seed (default 1)");
  c.generate->add_option("--output", c.gen_output, "file to write")->required();
}

int NexmarkCommand::run(gyre::mpi::Session& mpi) {
  const bool root = mpi.rank() == 0;
  if (generate->parsed()) {
    // Rank 0 writes the file (event i depends only on the seed and i).
    long long failed = 0;
    if (root) {
      try {
        check_output(gen_output, "");
        gyre::nexmark::GeneratorConfig g;
        g.seed = gen_seed;
        g.events = gen_events;
        gyre::nexmark::write_events(g, gen_output);
        std::fprintf(stderr, "wrote %llu events to %s\n", static_cast<unsigned long long>(gen_events), gen_output.c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "gyre: error: %s\n", e.what());
        failed = 1;
      }
    }
    return mpi.allreduce_sum(failed) != 0 ? 1 : 0;
  }
  // Usage errors (exit 2) the option parser does not catch.
  std::string usage;
  if (query.empty()) usage = "--query is required (or the subcommand 'generate')";
  else if (!gyre::nexmark::is_query(query)) usage = "--query " + query + ": not one of q0, q1, q2, q3, q4, q5, q7, q8, q11, q12";
  else if (input.empty() && events == 0) usage = "give --input FILE or --events N";
  else if (output.empty()) usage = "--output is required";
  if (!usage.empty()) {
    if (root) std::fprintf(stderr, "gyre: error: nexmark: %s\n", usage.c_str());
    return 2;
  }
  try {
    check_output(output, input);
    gyre::nexmark::QueryOptions q;
    q.query = query;
    q.input = input;
    q.gen.events = events;
    q.gen.seed = seed;
    q.gen.emit_rate = rate;
    q.watermark_delay = watermark_delay;
    gyre::nexmark::ResultSink sink;
    sink.path = output;
    gyre::JobConfig cfg;
    cfg.slots = threads;
    cfg.parallelism = parallelism;
    const gyre::JobResult r = gyre::nexmark::run_query(q, sink, cfg, mpi.cluster());
    if (root) {
      std::uint64_t results = 0;
      for (const auto& op : r.operators)
        if (op.name.rfind("sink: text file", 0) == 0) results += op.records_in;
      std::fprintf(stderr, "nexmark %s: %llu results in %.3f s on %d rank(s); wrote %s\n", query.c_str(),
                   static_cast<unsigned long long>(results), r.seconds, mpi.size(), output.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return 1;
  }
}
