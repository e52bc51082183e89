// The gyre command: graph algorithms from the shell, alone or under mpirun.
//
//   gyre pagerank --input FILE [--directed|--undirected] [--damping D] [--iterations N]
//                 [--tolerance T] --output OUT
//   gyre cc       --input FILE [--directed|--undirected] --output OUT
//                 (union-find, no loop; with --checkpoint-dir: min-label propagation, a loop)
//   gyre bfs      --input FILE [--directed|--undirected] [--source S] [--direction auto|push|pull] --output OUT
//   gyre sssp     --input FILE [--directed|--undirected] [--source S] --output OUT
//   gyre cdlp     --input FILE [--directed|--undirected] [--iterations N] --output OUT
//   gyre lcc      --input FILE [--directed|--undirected] --output OUT
//     all but lcc also: [--checkpoint-dir DIR [--checkpoint-every K] [--checkpoint-mode head|tail|both]
//                 [--resume]] [--max-restarts N] [--inject-failure rank=R,superstep=S,mode=kill|throw]
//   gyre generate --kind kronecker|uniform --scale S [--edge-factor F] [--seed N] --output OUT
//   gyre convert  --input FILE [--directed|--undirected] --output OUT.h5
//   gyre explain  pagerank|cc --input FILE [--directed|--undirected]
//   gyre train    logreg|linreg|kmeans ..., gyre predict ..., gyre evaluate ...   (ML: see cli/ml.cc)
//
// FILE: an edge list (SNAP / Graphalytics .e, plain or gzip), a Graphalytics .properties file,
// or a gyre HDF5 graph (.h5, made by convert). OUT: one "id value" line per vertex, sorted by
// id (or, named *.h5, an HDF5 result file), written by rank 0 only when the run succeeded.
// Errors go to stderr (rank 0) with a non-zero exit on every rank.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>

#include "gyre/algorithms/algorithms.h"
#include "gyre/algorithms/community.h"
#include "gyre/algorithms/generators.h"
#include "gyre/algorithms/paths.h"
#include "gyre/core/error.h"
#include "gyre/core/text_io.h"
#include "gyre/io/checkpoint_store.h"
#include "gyre/io/checksum.h"
#include "gyre/io/graph_files.h"
#include "gyre/io/hdf5_graph.h"
#include "gyre/iterations/checkpoint.h"
#include "gyre/mpi/session.h"
#include "nexmark.h"
#include "ml.h"

namespace {

struct Common {
  std::string input;
  std::string output;
  std::string format = "auto";
  bool directed = false;
  bool undirected = false;
  bool keep_duplicates = false;
  int threads = 0;
  int parallelism = 0;
  std::string metrics;
  bool no_progress = false;
  // checkpoints and failures
  std::string checkpoint_dir;
  int checkpoint_every = 5;
  std::string checkpoint_mode = "both";
  bool resume = false;
  bool checkpoint_wait = false;
  int max_restarts = 3;
  std::string inject_failure;
};

enum class Output { kResult, kGraph, kNone };

// Number checks whose messages a person reads: "--threads: must be 0 or more (got -1)", not a
// 309-digit bound.
std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
CLI::Validator number_in(double lo, double hi, bool whole, const std::string& what) {
  return CLI::Validator(
      [lo, hi, whole, what](std::string& text) -> std::string {
        double v = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc() || ptr != end || !std::isfinite(v)) return "'" + text + "' is not a number";
        if (whole && v != std::floor(v)) return "'" + text + "' is not a whole number";
        if (v < lo || v > hi) return "must be " + what + " (got " + text + ")";
        return {};
      },
      what);
}
const CLI::Validator kNonNegativeInt = number_in(0, 1e9, true, "a whole number, 0 or more");
const CLI::Validator kPositiveInt = number_in(1, 1e9, true, "a whole number, 1 or more");

void add_common(CLI::App* cmd, Common& c, Output output) {
  cmd->add_option("--input", c.input, "graph file: edge list ('src dst [weight]' lines; '#'/'%' comments; plain or "
                                      "gzip), a Graphalytics .properties file, or a gyre HDF5 graph (.h5)")
      ->required();
  if (output == Output::kResult)
    cmd->add_option("--output", c.output, "result file: one 'id value' line per vertex, sorted by id; named *.h5: "
                                          "an HDF5 file with datasets /ids and /values")
        ->required();
  if (output == Output::kGraph)
    cmd->add_option("--output", c.output, "HDF5 graph file to write (*.h5): CSR + id map, see 'h5dump -H'")->required();
  cmd->add_option("--format", c.format, "input format: auto (from the extension: .properties, .h5, else an edge "
                                        "list), edgelist, graphalytics, hdf5")
      ->check(CLI::IsMember({"auto", "edgelist", "graphalytics", "hdf5"}));
  auto* d = cmd->add_flag("--directed", c.directed, "treat edges as directed (default for edge lists)");
  cmd->add_flag("--undirected", c.undirected,
                "treat every edge as going both ways (an edge listed in both directions is one edge)")
      ->excludes(d);
  cmd->add_flag("--keep-duplicates", c.keep_duplicates,
                "multigraph semantics: count every listed edge (default: the graph is simple, a duplicate edge "
                "counts once; self-loops stay edges)");
  cmd->add_option("--threads", c.threads, "worker threads per rank (default: the cores the rank sees)")
      ->check(kNonNegativeInt);
  cmd->add_option("--parallelism", c.parallelism, "partitions (default: ranks x threads)")->check(kNonNegativeInt);
  if (output != Output::kNone)
    cmd->add_option("--metrics", c.metrics,
                    output == Output::kGraph
                        ? "write the metrics of the job that reads the input as JSON ({\"jobs\": [{\"name\": \"convert\", ...}]})"
                        : "write the metrics of every job (load, then the algorithm) as JSON ({\"jobs\": [...]}; per "
                          "superstep: time, size, exchange and wire bytes, active vertices, residual)");
  cmd->add_flag("--no-progress", c.no_progress,
                "no progress line (shown on rank 0 when stdout is a terminal; under mpirun it always is one)");
  if (output != Output::kResult) return;
  cmd->add_option("--checkpoint-dir", c.checkpoint_dir,
                  "write loop checkpoints (HDF5) here; must be the same directory for every rank");
  cmd->add_option("--checkpoint-every", c.checkpoint_every, "a head checkpoint after every K-th superstep (default 5)")
      ->check(kPositiveInt);
  cmd->add_option("--checkpoint-mode", c.checkpoint_mode,
                  "head (head checkpoints only), tail (a tail log after every superstep), both (default: heads every K, "
                  "tail logs in between)")
      ->check(CLI::IsMember({"head", "tail", "both"}));
  cmd->add_flag("--checkpoint-wait", c.checkpoint_wait,
                "write and commit each checkpoint before the loop goes on (no overlap; which checkpoints exist at a "
                "failure then does not depend on timing)");
  cmd->add_flag("--resume", c.resume,
                "continue from the newest usable checkpoint in --checkpoint-dir (after a failure); only checkpoints "
                "of the same job are used: same algorithm and parameters, same input content (CRC-32 of every "
                "input file), same graph. Without --resume a run starts a new chain in the directory");
  cmd->add_option("--max-restarts", c.max_restarts,
                  "after a task failure, roll back to the last checkpoint and go on, at most N times (default 3)")
      ->check(kNonNegativeInt);
  cmd->add_option("--inject-failure", c.inject_failure,
                  "fail on purpose: rank=R,superstep=S,mode=kill (the rank dies with SIGKILL at the start of superstep "
                  "S) or mode=throw (a task of rank R throws there once; the job recovers in-process)");
}

bool is_graphalytics(const Common& c) {
  return c.format == "graphalytics" ||
         (c.format == "auto" && gyre::io::guess_format(c.input) == gyre::io::GraphFormat::kGraphalytics);
}

// The files a run reads: the input, and for a .properties file also its vertex and edge files.
std::vector<std::string> input_files(const Common& c) {
  std::vector<std::string> files{c.input};
  if (is_graphalytics(c)) {
    const auto g = gyre::io::read_properties(c.input);
    files.push_back(g.vertex_file);
    files.push_back(g.edge_file);
  }
  return files;
}

// True if `a` and `b` name the same file (or would: neither need exist).
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  std::error_code ea, eb;
  const auto pa = std::filesystem::weakly_canonical(std::filesystem::absolute(a), ea);
  const auto pb = std::filesystem::weakly_canonical(std::filesystem::absolute(b), eb);
  return !ea && !eb && pa == pb;
}

// A file this run will write must be writable now, not only after the computation.
void check_writable_file(const std::string& given, const char* flag) {
  std::string path;
  try {
    path = gyre::detail::output_target(given);
  } catch (const std::exception& e) {
    throw gyre::Error(std::string(flag) + ": " + e.what());
  }
  struct stat st {};
  // (output_target refused anything but a regular file or a new name.)
  if (::stat(path.c_str(), &st) == 0 && ::access(path.c_str(), W_OK) != 0)
    throw gyre::Error(std::string("cannot write ") + flag + " " + path + ": " + std::strerror(errno));
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw gyre::Error(std::string(flag) + " " + path + ": directory " + dir.string() + " does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw gyre::Error(std::string("cannot write ") + flag + " " + path + ": " + std::strerror(errno) + " (directory " +
                      dir.string() + ")");
}

// A checkpoint directory must be a writable directory, or creatable.
void check_checkpoint_dir(const std::string& path) {
  struct stat st {};
  std::filesystem::path p(path);
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw gyre::Error("--checkpoint-dir " + path + " is not a directory");
    if (::access(path.c_str(), W_OK | X_OK) != 0)
      throw gyre::Error("cannot write --checkpoint-dir " + path + ": " + std::strerror(errno));
    return;
  }
  // The nearest existing ancestor must let us create the rest.
  std::filesystem::path a = std::filesystem::absolute(p).parent_path();
  while (!a.empty() && ::stat(a.c_str(), &st) != 0) a = a.parent_path();
  if (a.empty() || !S_ISDIR(st.st_mode) || ::access(a.c_str(), W_OK | X_OK) != 0)
    throw gyre::Error("cannot create --checkpoint-dir " + path + ": " + (a.empty() ? "no parent" : a.string()) +
                      " is not a writable directory");
}

// Before anything is loaded: what the run writes must be writable and must not be what it reads
// (an --output equal to --input would overwrite the graph), nor one another.
void check_paths(const Common& c, const std::vector<std::string>& inputs, bool writes_checkpoints) {
  struct Written {
    const char* flag;
    const std::string& path;
  };
  std::vector<Written> written;
  if (!c.output.empty()) written.push_back({"--output", c.output});
  if (!c.metrics.empty()) written.push_back({"--metrics", c.metrics});
  if (writes_checkpoints && !c.checkpoint_dir.empty()) written.push_back({"--checkpoint-dir", c.checkpoint_dir});
  for (std::size_t i = 0; i < written.size(); ++i) {
    for (const auto& in : inputs)
      if (same_file(written[i].path, in))
        throw gyre::Error(std::string(written[i].flag) + " " + written[i].path + " is an input file (" + in +
                          "): it would be overwritten; choose another name");
    for (std::size_t j = 0; j < i; ++j)
      if (same_file(written[i].path, written[j].path))
        throw gyre::Error(std::string(written[i].flag) + " and " + written[j].flag + " are the same file (" +
                          written[i].path + "); choose another name for one of them");
  }
  for (const auto& w : written) {
    if (std::string(w.flag) == "--checkpoint-dir") check_checkpoint_dir(w.path);
    else check_writable_file(w.path, w.flag);
  }
}

// What identifies the input of a run: the size and CRC-32 of every input file. Each rank
// checksums a slice and the slices are combined, so the cost is a read of the input shared by
// the ranks (against parsing it).
std::string content_identity(const std::vector<std::string>& files, const gyre::mpi::Session& mpi) {
  std::string id;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) throw gyre::Error("cannot read " + f + ": " + std::strerror(errno));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto ranks = static_cast<std::uint64_t>(mpi.size());
    const auto r = static_cast<std::uint64_t>(mpi.rank());
    const std::uint64_t begin = size / ranks * r + std::min(r, size % ranks);
    const std::uint64_t end = begin + size / ranks + (r < size % ranks ? 1 : 0);
    const std::uint32_t mine = gyre::io::crc32_of_file(f, begin, end - begin);
    const auto all = mpi.allgather(std::vector<long long>{static_cast<long long>(mine)});
    std::uint32_t crc = 0;
    for (std::uint64_t q = 0; q < ranks; ++q) {
      const std::uint64_t len = size / ranks + (q < size % ranks ? 1 : 0);
      crc = q == 0 ? static_cast<std::uint32_t>(all[q])
                   : gyre::io::crc32_combine(crc, static_cast<std::uint32_t>(all[q]), len);
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, " (%llu bytes, crc32 %08x)", static_cast<unsigned long long>(size), crc);
    id += (id.empty() ? "" : ", ") + std::filesystem::path(f).filename().string() + buf;
  }
  return id;
}

// Checkpoint settings of a run; `what` names the algorithm and every parameter that changes the
// result, `input` the content of the input files.
gyre::graph::RecoveryOptions recovery_options(const Common& c, const std::string& what, const std::string& input,
                                              const gyre::graph::Graph& g, bool root) {
  gyre::graph::RecoveryOptions r;
  r.max_restarts = c.max_restarts;
  if (c.checkpoint_dir.empty()) {
    if (c.resume) throw gyre::Error("--resume needs --checkpoint-dir (where the checkpoints are)");
    return r;
  }
  r.checkpoint.storage = std::make_shared<gyre::io::CheckpointStore>(c.checkpoint_dir);
  r.checkpoint.every = c.checkpoint_every;
  r.checkpoint.mode = c.checkpoint_mode == "head"   ? gyre::CheckpointMode::kHead
                      : c.checkpoint_mode == "tail" ? gyre::CheckpointMode::kTail
                                                    : gyre::CheckpointMode::kBoth;
  r.checkpoint.resume = c.resume;
  r.checkpoint.wait = c.checkpoint_wait;
  r.checkpoint.fingerprint = what + " on " + input + ", format " + c.format + ", " + std::to_string(g.vertices) +
                             " vertices, " + std::to_string(g.edges) + (g.directed ? " directed" : " undirected") +
                             " edges";
  if (root) r.checkpoint.log = [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
  return r;
}

gyre::graph::LoadOptions load_options(const Common& c) {
  gyre::graph::LoadOptions o;
  o.path = c.input;
  if (c.format == "edgelist") o.format = gyre::io::GraphFormat::kEdgeList;
  if (c.format == "graphalytics") o.format = gyre::io::GraphFormat::kGraphalytics;
  if (c.format == "hdf5") o.format = gyre::io::GraphFormat::kHdf5;
  if (c.directed) o.directed = true;
  if (c.undirected) o.directed = false;
  o.keep_duplicates = c.keep_duplicates;
  return o;
}

gyre::JobConfig job_config(const Common& c) {
  gyre::JobConfig cfg;
  cfg.slots = c.threads;
  cfg.parallelism = c.parallelism;
  return cfg;
}

// Text, or HDF5 for a name ending in .h5 / .hdf5.
template <class V>
void write_result(const std::string& path, const char* algorithm, const std::vector<std::pair<std::uint64_t, V>>& rows) {
  if (gyre::io::guess_format(path) == gyre::io::GraphFormat::kHdf5) gyre::io::write_hdf5_values(path, algorithm, rows);
  else gyre::io::write_id_values(path, rows);
}

// The rank mpirun gave this process, from the environment (before MPI, for parse errors).
int launcher_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}


// ---------------------------------------------------------------- bfs / sssp (paths)
// The two traversal commands, kept apart from the others: their options, then the run.

struct PathsCommand {
  explicit PathsCommand(const char* n) : name(n) {}
  const char* name;  // "bfs" or "sssp"
  CLI::App* cmd = nullptr;
  Common opts;
  std::uint64_t source = 0;
  CLI::Option* source_opt = nullptr;
  std::string direction = "auto";  // bfs
};

void add_paths_command(CLI::App& app, PathsCommand& pc) {
  const bool bfs = std::string(pc.name) == "bfs";
  pc.cmd = app.add_subcommand(
      pc.name, bfs ? "breadth-first search: hops from --source (LDBC Graphalytics BFS; unreached vertices: "
                     "9223372036854775807); direction-optimising (top-down while the frontier is small, bottom-up "
                     "while it is large)"
                   : "single-source shortest paths: the least sum of edge weights (the edge list's third column) "
                     "from --source (LDBC Graphalytics SSSP; unreached vertices: infinity)");
  add_common(pc.cmd, pc.opts, Output::kResult);
  pc.source_opt = pc.cmd->add_option("--source", pc.source,
                                     std::string("source vertex id (default: ") + pc.name +
                                         ".source-vertex of a .properties input); must be a vertex of the graph");
  if (bfs)
    pc.cmd
        ->add_option("--direction", pc.direction,
                     "auto (default: push from the frontier or pull into unreached vertices, chosen per superstep), "
                     "push (top-down only) or pull (bottom-up only); the result is the same")
        ->check(CLI::IsMember({"auto", "push", "pull"}));
  pc.cmd->footer(bfs ? "Edges are followed from source to target (--undirected: both ways). Values: hop counts, one "
                       "'id hops' line per vertex, sorted by id."
                     : "Weights must be non-negative; a line without a weight is an error. An edge listed twice keeps "
                       "its smallest weight. Values: '%.15e' distances, one 'id distance' line per vertex, sorted by "
                       "id.");
}

// "id value" lines, Graphalytics style, or an HDF5 result file (*.h5).
void write_paths_result(const std::string& path, const char* algorithm, const gyre::graph::Levels& rows) {
  if (gyre::io::guess_format(path) == gyre::io::GraphFormat::kHdf5) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> u(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) u[i] = {rows[i].first, static_cast<std::uint64_t>(rows[i].second)};
    gyre::io::write_hdf5_values(path, algorithm, u);
    return;
  }
  gyre::io::write_id_values(path, [&] {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> u(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) u[i] = {rows[i].first, static_cast<std::uint64_t>(rows[i].second)};
    return u;
  }());
}
void write_paths_result(const std::string& path, const char* algorithm, const gyre::graph::Distances& rows) {
  if (gyre::io::guess_format(path) == gyre::io::GraphFormat::kHdf5) {
    gyre::io::write_hdf5_values(path, algorithm, rows);
    return;
  }
  gyre::detail::AtomicFile f(path);
  std::string chunk;
  char num[64];
  for (const auto& [id, d] : rows) {
    chunk += std::to_string(id);
    if (std::isinf(d)) {
      chunk += " infinity\n";
    } else {
      const int n = std::snprintf(num, sizeof num, " %.15e\n", d);
      chunk.append(num, static_cast<std::size_t>(n));
    }
    if (chunk.size() > (1 << 20)) {
      f.write(chunk);
      chunk.clear();
    }
  }
  f.write(chunk);
  f.prepare();
  f.commit();
}

int run_paths(PathsCommand& pc, gyre::mpi::Session& mpi) {
  const bool root = mpi.rank() == 0;
  const bool bfs = std::string(pc.name) == "bfs";
  const Common& c = pc.opts;
  try {
    if (!c.inject_failure.empty()) gyre::inject_failure(gyre::parse_injected_failure(c.inject_failure));
    if (c.resume && c.checkpoint_dir.empty()) throw gyre::Error("--resume needs --checkpoint-dir (where the checkpoints are)");
    const std::vector<std::string> inputs = input_files(c);
    check_paths(c, inputs, true);
    // The source: --source, else the .properties file's.
    std::uint64_t source = pc.source;
    if (pc.source_opt->count() == 0) {
      std::optional<std::uint64_t> from;
      if (is_graphalytics(c)) {
        const auto p = gyre::io::read_graphalytics_parameters(c.input);
        from = bfs ? p.bfs_source_vertex : p.sssp_source_vertex;
      }
      if (!from)
        throw gyre::Error(std::string("--source is required (") +
                          (is_graphalytics(c) ? c.input + " has no " + pc.name + ".source-vertex" : "or a .properties input with " + std::string(pc.name) + ".source-vertex") + ")");
      source = *from;
      if (root) std::fprintf(stderr, "%s: source %llu from %s\n", pc.name, static_cast<unsigned long long>(source), c.input.c_str());
    }
    const std::string input_id = c.checkpoint_dir.empty() ? std::string() : content_identity(inputs, mpi);
    gyre::graph::LoadOptions in = load_options(c);
    in.out_edges = true;   // push over out-edges (directed graphs)
    in.weighted = !bfs;    // sssp: the third column
    auto g = gyre::graph::load(in, job_config(c), mpi.cluster());
    if (g->vertices == 0) throw gyre::Error(c.input + ": the graph has no vertices (an empty or comments-only file?)");
    if (root)
      std::fprintf(stderr, "loaded %llu vertices, %llu edges (%s) in %.3f s\n", static_cast<unsigned long long>(g->vertices),
                   static_cast<unsigned long long>(g->edges), g->directed ? "directed" : "undirected", g->load_seconds);
    const bool progress = root && ::isatty(STDOUT_FILENO) != 0 && !c.no_progress;
    gyre::graph::PathOptions opts;
    opts.source = source;
    opts.direction = pc.direction == "push"   ? gyre::graph::Direction::kPush
                     : pc.direction == "pull" ? gyre::graph::Direction::kPull
                                              : gyre::graph::Direction::kAuto;
    opts.on_superstep = [progress, name = pc.name](const gyre::SuperstepMetrics& m) {
      if (!progress) return;
      double active = 0;
      for (const auto& [k, v] : m.aggregators)
        if (k == "active vertices") active = v;
      std::fprintf(stderr, "\r%s: superstep %d, %.1f ms, active vertices %.0f   ", name, m.superstep, m.seconds * 1e3, active);
      std::fflush(stderr);
    };
    const std::string what = std::string(pc.name) + " source=" + std::to_string(source);
    opts.recovery = recovery_options(c, what, input_id, *g, root);
    gyre::JobResult metrics;
    std::string details;
    std::function<void()> commit;
    if (bfs) {
      auto levels = gyre::graph::bfs(*g, opts, job_config(c), mpi.cluster(), &metrics);
      std::size_t reached = 0;
      std::int64_t depth = 0;
      for (const auto& [v, h] : levels)
        if (h != gyre::graph::kUnreachable) ++reached, depth = std::max(depth, h);
      details = ", " + std::to_string(reached) + " reached (depth " + std::to_string(depth) + ")";
      commit = [&c, rows = std::move(levels)] { write_paths_result(c.output, "bfs", rows); };
    } else {
      auto dist = gyre::graph::sssp(*g, opts, job_config(c), mpi.cluster(), &metrics);
      std::size_t reached = 0;
      for (const auto& [v, d] : dist) reached += std::isinf(d) ? 0 : 1;
      details = ", " + std::to_string(reached) + " reached";
      commit = [&c, rows = std::move(dist)] { write_paths_result(c.output, "sssp", rows); };
    }
    if (progress) std::fprintf(stderr, "\n");
    if (root) {
      // The metrics first: a result file in place means the whole command succeeded.
      if (!c.metrics.empty()) gyre::write_jobs_json(c.metrics, {{"load", g->load_metrics}, {pc.name, metrics}});
      commit();
      const auto& loop = metrics.loops.at(0);
      std::string recovered;
      if (loop.resumed_from > 0) recovered += ", resumed after superstep " + std::to_string(loop.resumed_from);
      if (metrics.restarts > 0) recovered += ", " + std::to_string(metrics.restarts) + " restart(s)";
      std::fprintf(stderr, "%s: %llu vertices%s, %d supersteps (%s%s), %.3f s on %d rank(s); wrote %s\n", pc.name,
                   static_cast<unsigned long long>(g->vertices), details.c_str(), loop.supersteps, loop.ended_by.c_str(),
                   recovered.c_str(), metrics.seconds, mpi.size(), c.output.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return 1;
  }
}
// ---------------------------------------------------------------- end of bfs / sssp

// ---------------------------------------------------------------- cdlp and lcc (community kernels)
//   gyre cdlp --input FILE [--directed|--undirected] [--iterations N] --output OUT
//   gyre lcc  --input FILE [--directed|--undirected] --output OUT

struct CommunityCommands {
  CLI::App* cdlp = nullptr;
  CLI::App* lcc = nullptr;
  Common cdlp_opts, lcc_opts;
  int iterations = 10;
  CLI::Option* iterations_opt = nullptr;
  // The parsed one's options, or nullptr.
  const Common* parsed() const { return cdlp->parsed() ? &cdlp_opts : lcc->parsed() ? &lcc_opts : nullptr; }
};

void add_community_commands(CLI::App& app, CommunityCommands& c) {
  c.cdlp = app.add_subcommand("cdlp", "community detection by label propagation (LDBC Graphalytics CDLP): each vertex "
                                      "takes the most frequent label of its in- and out-neighbours, the smallest on "
                                      "ties; labels start as the vertex ids");
  add_common(c.cdlp, c.cdlp_opts, Output::kResult);
  c.iterations_opt =
      c.cdlp
          ->add_option("--iterations", c.iterations,
                       "number of iterations, run exactly (default 10, or cdlp.max-iterations of a .properties input)")
          ->check(kNonNegativeInt);
  c.lcc = app.add_subcommand("lcc", "local clustering coefficient (LDBC Graphalytics LCC): arcs among a vertex's "
                                    "distinct neighbours over |N|(|N|-1); 0 with fewer than 2 neighbours");
  add_common(c.lcc, c.lcc_opts, Output::kResult);
}

int run_community(CommunityCommands& c, gyre::mpi::Session& mpi) {
  const bool root = mpi.rank() == 0;
  const bool is_cdlp = c.cdlp->parsed();
  const Common& o = is_cdlp ? c.cdlp_opts : c.lcc_opts;
  const char* what = is_cdlp ? "cdlp" : "lcc";
  try {
    if (!is_cdlp && (!o.checkpoint_dir.empty() || o.resume || !o.inject_failure.empty()))
      throw gyre::Error("lcc is not a loop: it has no checkpoints (--checkpoint-dir, --resume, --inject-failure)");
    if (!o.inject_failure.empty()) gyre::inject_failure(gyre::parse_injected_failure(o.inject_failure));
    if (o.resume && o.checkpoint_dir.empty()) throw gyre::Error("--resume needs --checkpoint-dir (where the checkpoints are)");
    const std::vector<std::string> inputs = input_files(o);
    check_paths(o, inputs, is_cdlp);
    const std::string input_id = o.checkpoint_dir.empty() ? std::string() : content_identity(inputs, mpi);
    if (is_cdlp && is_graphalytics(o) && c.iterations_opt->count() == 0) {
      const auto p = gyre::io::read_graphalytics_parameters(o.input);
      if (p.cdlp_max_iterations) {
        if (*p.cdlp_max_iterations > 1'000'000'000)
          throw gyre::Error(o.input + ": cdlp.max-iterations = " + std::to_string(*p.cdlp_max_iterations) +
                            " is more than 10^9");
        c.iterations = static_cast<int>(*p.cdlp_max_iterations);
        if (root) std::fprintf(stderr, "cdlp: from %s: iterations %d\n", o.input.c_str(), c.iterations);
      }
    }
    gyre::graph::LoadOptions in = load_options(o);
    in.out_edges = true;  // both directions of a directed graph
    auto g = gyre::graph::load(in, job_config(o), mpi.cluster());
    if (g->vertices == 0) throw gyre::Error(o.input + ": the graph has no vertices (an empty or comments-only file?)");
    if (root)
      std::fprintf(stderr, "loaded %llu vertices, %llu edges (%s) in %.3f s\n",
                   static_cast<unsigned long long>(g->vertices), static_cast<unsigned long long>(g->edges),
                   g->directed ? "directed" : "undirected", g->load_seconds);
    const bool progress = root && ::isatty(STDOUT_FILENO) != 0 && !o.no_progress;
    gyre::JobResult metrics;
    std::string summary;
    std::function<void()> commit_output;
    if (is_cdlp) {
      gyre::graph::CdlpOptions opts;
      opts.iterations = c.iterations;
      const int total = c.iterations;
      opts.on_superstep = [progress, total](const gyre::SuperstepMetrics& m) {
        if (!progress) return;
        double active = 0;
        for (const auto& [name, v] : m.aggregators)
          if (name == "active vertices") active = v;
        std::fprintf(stderr, "\rcdlp: superstep %d/%d, %.1f ms, labels changed %.0f   ", m.superstep, total,
                     m.seconds * 1e3, active);
        std::fflush(stderr);
      };
      opts.recovery = recovery_options(o, "cdlp iterations=" + std::to_string(c.iterations), input_id, *g, root);
      auto labels = gyre::graph::cdlp(*g, opts, job_config(o), mpi.cluster(), &metrics);
      if (root) {
        std::map<std::uint64_t, std::uint64_t> sizes;
        for (const auto& [v, label] : labels) ++sizes[label];
        std::uint64_t largest = 0, largest_label = 0;
        for (const auto& [label, n] : sizes)
          if (n > largest) largest = n, largest_label = label;
        const auto& loop = metrics.loops.at(0);
        std::string recovered;
        if (loop.resumed_from > 0) recovered += ", resumed after superstep " + std::to_string(loop.resumed_from);
        if (metrics.restarts > 0) recovered += ", " + std::to_string(metrics.restarts) + " restart(s)";
        summary = std::to_string(labels.size()) + " vertices, " + std::to_string(sizes.size()) +
                  " communities (largest: " + std::to_string(largest) + " vertices, label " +
                  std::to_string(largest_label) + "), " + std::to_string(loop.supersteps) + " supersteps" + recovered;
      }
      commit_output = [&o, rows = std::move(labels)] { write_result(o.output, "cdlp", rows); };
    } else {
      auto coefficients = gyre::graph::lcc(*g, job_config(o), mpi.cluster(), &metrics);
      if (root) {
        double sum = 0;
        for (const auto& [v, x] : coefficients) sum += x;
        char buf[64];
        std::snprintf(buf, sizeof buf, ", mean %.6g", coefficients.empty() ? 0.0 : sum / static_cast<double>(coefficients.size()));
        summary = std::to_string(coefficients.size()) + " vertices" + buf;
      }
      commit_output = [&o, rows = std::move(coefficients)] { write_result(o.output, "lcc", rows); };
    }
    if (progress) std::fprintf(stderr, "\n");
    if (root) {
      // The metrics first: a result file in place means the whole command succeeded.
      if (!o.metrics.empty()) gyre::write_jobs_json(o.metrics, {{"load", g->load_metrics}, {what, metrics}});
      commit_output();
      std::fprintf(stderr, "%s: %s, %.3f s on %d rank(s); wrote %s\n", what, summary.c_str(), metrics.seconds,
                   mpi.size(), o.output.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return 1;
  }
}
// ---------------------------------------------------------------- end of cdlp and lcc

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gyre: iterative graph processing on a batch/stream dataflow engine"};
  app.require_subcommand(1);
  Common pr_opts, cc_opts;
  gyre::graph::PageRankOptions pr;
  auto* pagerank = app.add_subcommand("pagerank", "PageRank (LDBC Graphalytics semantics)");
  add_common(pagerank, pr_opts, Output::kResult);
  auto* damping_opt =
      pagerank
          ->add_option("--damping", pr.damping,
                       "damping factor d (default 0.85, or pr.damping-factor of a .properties input)")
          ->check(number_in(0, 1, false, "between 0 and 1"));
  auto* iterations_opt =
      pagerank
          ->add_option("--iterations", pr.iterations,
                       "number of iterations (default 20, or pr.num-iterations of a .properties input)")
          ->check(kNonNegativeInt);
  pagerank->add_option("--tolerance", pr.tolerance,
                       "stop early once the L1 change of an iteration is below this (default: never)")
      ->check(number_in(0, HUGE_VAL, false, "0 or more"));
  auto* cc = app.add_subcommand(
      "cc", "weakly connected components: label = smallest vertex id of the component. A union-find kernel with no "
            "loop (a failure reruns it whole, --max-restarts); with --checkpoint-dir cc runs min-label propagation "
            "instead, a loop of supersteps that checkpoints and resumes (slower)");
  add_common(cc, cc_opts, Output::kResult);
  Common convert_opts, explain_opts;
  auto* convert = app.add_subcommand("convert", "convert a graph file to gyre's HDF5 graph format (the simple "
                                                "graph's CSRs; each rank then reads only its part of it)");
  add_common(convert, convert_opts, Output::kGraph);
  std::string explain_what;
  auto* explain = app.add_subcommand("explain", "print the plans of an algorithm's jobs (load, then the iteration) "
                                                "without running them");
  explain->add_option("algorithm", explain_what, "pagerank or cc")->required()->check(CLI::IsMember({"pagerank", "cc"}));
  add_common(explain, explain_opts, Output::kNone);
  gyre::graph::GeneratorOptions gen;
  std::string gen_output;
  auto* generate = app.add_subcommand("generate", "write a synthetic graph as an edge list (deterministic for a seed)");
  generate->add_option("--kind", gen.kind, "kronecker (Graph500: A=0.57, B=0.19, C=0.19) or uniform")
      ->check(CLI::IsMember({"kronecker", "uniform"}));
  generate->add_option("--scale", gen.scale, "2^scale vertex ids (default 16)")->check(CLI::Range(1, 31));
  generate->add_option("--edge-factor", gen.edge_factor, "edges per vertex id (default 16)")->check(kPositiveInt);
  generate->add_option("--seed", gen.seed, "random seed (default 1)");
  generate->add_option("--output", gen_output, "edge-list file to write")->required();
  PathsCommand bfs_cmd("bfs"), sssp_cmd("sssp");  // bfs / sssp (paths)
  add_paths_command(app, bfs_cmd);
  add_paths_command(app, sssp_cmd);
  CommunityCommands community;  // cdlp, lcc
  add_community_commands(app, community);
  NexmarkCommand nexmark;  // nexmark (cli/nexmark.cc)
  add_nexmark_command(app, nexmark);
  MlCommands ml;  // train, predict, evaluate
  add_ml_commands(app, ml);

  // Arguments first: --help and usage errors need no MPI (and no 0.3 s of MPI start-up).
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2 (CLI11's own codes are 100-120).
    const int code = launcher_rank() == 0 ? app.exit(e) : e.get_exit_code();
    return code == 0 ? 0 : 2;
  }
  gyre::mpi::Session mpi(&argc, &argv);
  const bool root = mpi.rank() == 0;

  // Settings the library refuses or adjusts (JobConfig::validate).
  if (const Common* opts = pagerank->parsed()  ? &pr_opts
                           : cc->parsed()      ? &cc_opts
                           : convert->parsed() ? &convert_opts
                           : explain->parsed() ? &explain_opts
                           : bfs_cmd.cmd->parsed()  ? &bfs_cmd.opts
                           : sssp_cmd.cmd->parsed() ? &sssp_cmd.opts
                           : community.parsed() != nullptr ? community.parsed()
                                               : nullptr) {
    try {
      for (const auto& w : job_config(*opts).validate())
        if (root) std::fprintf(stderr, "gyre: warning: --threads: %s\n", w.c_str());
    } catch (const std::exception& e) {
      if (root) std::fprintf(stderr, "gyre: error: --%s\n", e.what());
      return 2;
    }
  }

  if (nexmark.cmd->parsed()) return nexmark.run(mpi);  // nexmark (cli/nexmark.cc)

  if (generate->parsed()) {
    // Rank 0 writes the file; edge i depends only on the seed and i, so the file is the same
    // whatever the number of ranks.
    // Every rank learns whether rank 0 succeeded, so that all exit alike.
    long long failed = 0;
    if (root) {
      try {
        check_writable_file(gen_output, "--output");
        if (gen_output.size() > 3 && gen_output.compare(gen_output.size() - 3, 3, ".gz") == 0)
          throw gyre::Error("--output " + gen_output + ": generate writes plain text; name it without .gz (or gzip it after)");
        const auto edges = gyre::graph::generate_edges(gen);
        gyre::graph::write_edge_list(gen_output, edges,
                                     "# gyre generate --kind " + gen.kind + " --scale " + std::to_string(gen.scale) +
                                         " --edge-factor " + std::to_string(gen.edge_factor) + " --seed " +
                                         std::to_string(gen.seed) + "\n");
        std::fprintf(stderr, "wrote %zu edges to %s\n", edges.size(), gen_output.c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "gyre: error: %s\n", e.what());
        failed = 1;
      }
    }
    return mpi.allreduce_sum(failed) != 0 ? 1 : 0;
  }

  if (convert->parsed()) {
    try {
      check_paths(convert_opts, input_files(convert_opts), false);
      const auto st = gyre::graph::convert(load_options(convert_opts), convert_opts.output, job_config(convert_opts),
                                           mpi.cluster());
      if (root)
        std::fprintf(stderr, "wrote %llu vertices, %llu edges (%s) to %s in %.3f s\n",
                     static_cast<unsigned long long>(st.vertices), static_cast<unsigned long long>(st.edges),
                     st.directed ? "directed" : "undirected", convert_opts.output.c_str(), st.seconds);
      if (root && !convert_opts.metrics.empty()) gyre::write_jobs_json(convert_opts.metrics, {{"convert", st.metrics}});
      return 0;
    } catch (const std::exception& e) {
      if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
      return 1;
    }
  }

  if (community.parsed() != nullptr) return run_community(community, mpi);
  if (ml.parsed()) return ml.run(mpi);

  if (explain->parsed()) {
    try {
      gyre::graph::LoadOptions in = load_options(explain_opts);
      if (explain_what == "cc") in.directed = false;
      const gyre::JobConfig cfg = job_config(explain_opts);
      const std::string load = gyre::graph::explain_load(in, cfg, mpi.cluster());
      const std::string run = explain_what == "pagerank" ? gyre::graph::explain_pagerank(pr, cfg, mpi.cluster())
                                                         : gyre::graph::explain_connected_components(cfg, mpi.cluster());
      if (root) std::printf("job 1: load the graph\n%s\njob 2: %s\n%s", load.c_str(), explain_what.c_str(), run.c_str());
      return 0;
    } catch (const std::exception& e) {
      if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
      return 1;
    }
  }

  if (bfs_cmd.cmd->parsed()) return run_paths(bfs_cmd, mpi);    // bfs / sssp (paths)
  if (sssp_cmd.cmd->parsed()) return run_paths(sssp_cmd, mpi);

  // A progress line on rank 0 when stdout is a terminal.
  const bool progress = root && ::isatty(STDOUT_FILENO) != 0 && !pr_opts.no_progress && !cc_opts.no_progress;
  auto show = [progress](const char* what, int total) {
    return [progress, what, total](const gyre::SuperstepMetrics& m) {
      if (!progress) return;
      std::string figures;  // the vertex program's aggregators: active vertices, residual
      char buf[96];
      for (const auto& [name, v] : m.aggregators) {
        std::snprintf(buf, sizeof buf, name == "residual" ? ", %s %.3g" : ", %s %.0f", name.c_str(), v);
        figures += buf;
      }
      if (total > 0) std::fprintf(stderr, "\r%s: superstep %d/%d, %.1f ms%s   ", what, m.superstep, total, m.seconds * 1e3, figures.c_str());
      else std::fprintf(stderr, "\r%s: superstep %d, %.1f ms%s   ", what, m.superstep, m.seconds * 1e3, figures.c_str());
      std::fflush(stderr);
    };
  };

  try {
    const Common& run_opts = pagerank->parsed() ? pr_opts : cc_opts;
    if (!run_opts.inject_failure.empty()) gyre::inject_failure(gyre::parse_injected_failure(run_opts.inject_failure));
    if (run_opts.resume && run_opts.checkpoint_dir.empty())
      throw gyre::Error("--resume needs --checkpoint-dir (where the checkpoints are)");
    // Before anything is loaded: outputs writable and not inputs, checkpoint directory usable.
    const std::vector<std::string> inputs = input_files(run_opts);
    check_paths(run_opts, inputs, true);
    // Only with checkpoints: the input's content identifies the job for --resume.
    const std::string input_id = run_opts.checkpoint_dir.empty() ? std::string() : content_identity(inputs, mpi);
    auto loaded = [root, &run_opts](const gyre::graph::Graph& g) {
      // An empty graph is a failed download or a wrong file, not a result.
      if (g.vertices == 0) throw gyre::Error(run_opts.input + ": the graph has no vertices (an empty or comments-only file?)");
      if (is_graphalytics(run_opts)) {
        const auto props = gyre::io::read_properties(run_opts.input);
        const auto it = props.properties.find("graph." + props.name + ".meta.vertices");
        if (it != props.properties.end() && it->second != std::to_string(g.vertices))
          throw gyre::Error(run_opts.input + ": meta.vertices = " + it->second + " but " + props.vertex_file + " has " +
                            std::to_string(g.vertices) + " vertices (a cut or wrong vertex file?)");
      }
      if (root)
        std::fprintf(stderr, "loaded %llu vertices, %llu edges (%s) in %.3f s\n",
                     static_cast<unsigned long long>(g.vertices), static_cast<unsigned long long>(g.edges),
                     g.directed ? "directed" : "undirected", g.load_seconds);
    };
    gyre::JobResult metrics;
    gyre::JobResult load_metrics;
    std::size_t vertices = 0;
    std::string metrics_path;
    std::string output;
    std::string details;  // the command's own summary figures
    std::function<void()> commit_output;  // rank 0 writes the result (after the metrics)
    if (pagerank->parsed()) {
      metrics_path = pr_opts.metrics;
      output = pr_opts.output;
      // A Graphalytics graph brings its parameters; flags override them.
      if (is_graphalytics(pr_opts)) {
        const auto p = gyre::io::read_graphalytics_parameters(pr_opts.input);
        std::string from;
        if (damping_opt->count() == 0 && p.pr_damping_factor) {
          pr.damping = *p.pr_damping_factor;
          from += " damping " + format_number(pr.damping);
        }
        if (iterations_opt->count() == 0 && p.pr_num_iterations) {
          if (*p.pr_num_iterations > 1'000'000'000)
            throw gyre::Error(pr_opts.input + ": pr.num-iterations = " + std::to_string(*p.pr_num_iterations) +
                              " is more than 10^9");
          pr.iterations = static_cast<int>(*p.pr_num_iterations);
          from += " iterations " + std::to_string(pr.iterations);
        }
        if (root && !from.empty()) std::fprintf(stderr, "pagerank: from %s:%s\n", pr_opts.input.c_str(), from.c_str());
      }
      auto g = gyre::graph::load(load_options(pr_opts), job_config(pr_opts), mpi.cluster());
      loaded(*g);
      load_metrics = g->load_metrics;
      pr.on_superstep = show("pagerank", pr.iterations);
      char params[160];
      std::snprintf(params, sizeof params, "pagerank damping=%.17g iterations=%d tolerance=%.17g", pr.damping,
                    pr.iterations, pr.tolerance);
      pr.recovery = recovery_options(pr_opts, params, input_id, *g, root);
      auto ranks = gyre::graph::pagerank(*g, pr, job_config(pr_opts), mpi.cluster(), &metrics);
      vertices = ranks.size();
      commit_output = [&output, rows = std::move(ranks)] { write_result(output, "pagerank", rows); };
    } else {
      metrics_path = cc_opts.metrics;
      output = cc_opts.output;
      gyre::graph::LoadOptions in = load_options(cc_opts);
      in.directed = false;  // weak connectivity
      auto g = gyre::graph::load(in, job_config(cc_opts), mpi.cluster());
      loaded(*g);
      load_metrics = g->load_metrics;
      auto labels = gyre::graph::connected_components(*g, job_config(cc_opts), mpi.cluster(), &metrics,
                                                            show("cc", 0),
                                                            recovery_options(cc_opts, "cc", input_id, *g, root));
      if (root) {
        std::map<std::uint64_t, std::uint64_t> sizes;
        for (const auto& [v, label] : labels) ++sizes[label];
        std::uint64_t largest = 0, largest_label = 0;
        for (const auto& [label, n] : sizes)
          if (n > largest) largest = n, largest_label = label;
        details = ", " + std::to_string(sizes.size()) + " components (largest: " + std::to_string(largest) +
                  " vertices, label " + std::to_string(largest_label) + ")";
      }
      vertices = labels.size();
      commit_output = [&output, rows = std::move(labels)] { write_result(output, "connected components", rows); };
    }
    if (progress) std::fprintf(stderr, "\n");
    if (root) {
      // The metrics first: a result file in place means the whole command succeeded.
      if (!metrics_path.empty())
        gyre::write_jobs_json(metrics_path, {{"load", load_metrics}, {pagerank->parsed() ? "pagerank" : "cc", metrics}});
      commit_output();
      std::string recovered;
      if (metrics.restarts > 0) recovered += ", " + std::to_string(metrics.restarts) + " restart(s)";
      if (metrics.loops.empty()) {  // cc's union-find: no loop
        std::fprintf(stderr, "%s: %zu vertices%s, union-find (no loop%s), %.3f s on %d rank(s); wrote %s\n",
                     pagerank->parsed() ? "pagerank" : "cc", vertices, details.c_str(), recovered.c_str(),
                     metrics.seconds, mpi.size(), output.c_str());
        return 0;
      }
      const auto& loop = metrics.loops.at(0);
      if (loop.resumed_from > 0) recovered = ", resumed after superstep " + std::to_string(loop.resumed_from) + recovered;
      std::fprintf(stderr, "%s: %zu vertices%s, %d supersteps (%s%s), %.3f s on %d rank(s); wrote %s\n",
                   pagerank->parsed() ? "pagerank" : "cc", vertices, details.c_str(), loop.supersteps,
                   loop.ended_by.c_str(), recovered.c_str(), metrics.seconds, mpi.size(), output.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "gyre: error: %s\n", e.what());
    return 1;
  }
}
