// Weakly connected components: a delta iteration. See algorithms.h.
#include <algorithm>
#include <optional>
#include <span>

#include "gyre/algorithms/algorithms.h"
#include "gyre/core/error.h"
#include "gyre/io/graph_files.h"
#include "gyre/iterations.h"

namespace gyre::graph {
namespace {

struct Label {
  std::uint64_t vertex;
  std::uint64_t label;
};

}  // namespace

namespace {

// The delta iteration over `edges` (and the ids of a vertex file, if any).
Result run_cc(Environment& env, Stream<io::Edge> edges, std::optional<Stream<std::uint64_t>> vertex_ids,
              JobResult* metrics) {
  // Weak connectivity: every edge in both directions.
  auto arcs = edges.flat_map<io::Edge>([](const io::Edge& e, Emit<io::Edge>& emit) {
    emit(e);
    if (e.src != e.dst) emit(io::Edge{e.dst, e.src});
  });
  Stream<std::uint64_t> ids = vertex_ids ? *vertex_ids : arcs.map([](const io::Edge& e) { return e.src; });
  auto vertices = ids.map([](const std::uint64_t& v) { return Label{v, v}; })
                      .key_by([](const Label& l) { return l.vertex; })
                      .reduce([](const Label& a, const Label&) { return a; })  // distinct
                      .name("cc: vertices");
  auto vertex = [](const Label& l) { return l.vertex; };
  auto labels = iterate_delta(
      vertices, vertices, vertex, 1 << 30,
      [&](auto& solution, Stream<Label> changed, LoopContext&) {
        auto offers = changed.join(arcs, vertex, [](const io::Edge& e) { return e.src; },
                                   [](const Label& l, const io::Edge& e) { return Label{e.dst, l.label}; })
                          .name("cc: offer label to neighbours");
        auto improved = solution.template co_group<Label>(
            offers, vertex,
            [](const std::uint64_t& v, std::span<const Label> in, const Label* cur, Emit<Label>& emit) {
              if (cur == nullptr) return;  // an edge to a vertex missing from the vertex file
              std::uint64_t best = cur->label;
              for (const Label& o : in) best = std::min(best, o.label);
              if (best < cur->label) emit(Label{v, best});
            });
        return DeltaStep<Label, Label>{improved, improved};
      },
      "connected components");
  auto out = labels.map([](const Label& l) { return std::pair<std::uint64_t, double>{l.vertex, static_cast<double>(l.label)}; })
                 .collect(1);
  JobResult r = env.run();
  if (metrics != nullptr) *metrics = std::move(r);
  Result result = out.values();
  std::sort(result.begin(), result.end());
  return result;
}

}  // namespace

Result connected_components(const LoadOptions& input, const JobConfig& config,
                            std::shared_ptr<detail::Transport> transport, JobResult* metrics) {
  Environment env(config, std::move(transport));
  std::string edge_file = input.path;
  std::optional<Stream<std::uint64_t>> ids;
  if (io::guess_format(input.path) == io::GraphFormat::kGraphalytics) {
    const auto props = io::read_properties(input.path);
    edge_file = props.edge_file;
    ids = io::read_vertex_file(env, props.vertex_file);
  } else if (io::guess_format(input.path) == io::GraphFormat::kHdf5) {
    throw PlanError("'" + input.path + "': the HDF5 graph format is not implemented yet; use an edge list or a "
                    "Graphalytics .properties file");
  }
  return run_cc(env, io::read_edge_list(env, edge_file), ids, metrics);
}

Result connected_components_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, const JobConfig& config,
                                  std::shared_ptr<detail::Transport> transport, JobResult* metrics) {
  Environment env(config, std::move(transport));
  auto stream = env.from_collection(std::move(edges)).map([](const MemoryEdge& e) { return io::Edge{e.src, e.dst}; });
  return run_cc(env, stream, std::nullopt, metrics);
}

}  // namespace gyre::graph
