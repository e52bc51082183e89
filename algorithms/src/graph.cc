// Loading a graph into partitions. See graph.h.
#include "gyre/algorithms/graph.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <limits>
#include <utility>

#include "gyre/core/error.h"
#include "gyre/core/stream.h"
#include "gyre/io/graph_files.h"
#include "gyre/io/hdf5_graph.h"

namespace gyre::graph {
namespace {

using io::Edge;

struct Count {
  std::uint64_t partition;
  std::uint64_t n;
};

// An edge whose source is resolved: its dense id, and both original ids.
struct Arc {
  std::uint64_t dense_src;
  std::uint64_t src;
  std::uint64_t dst;
};

// Dense ids of all partitions, once every partition's count arrived.
struct Offsets {
  explicit Offsets(int parts) : counts(static_cast<std::size_t>(parts), 0), seen(static_cast<std::size_t>(parts), false) {}
  bool add(std::span<const Count> in) {
    for (const Count& c : in) {
      counts.at(c.partition) = c.n;
      if (!seen[c.partition]) {
        seen[c.partition] = true;
        ++received;
      }
    }
    if (received < counts.size()) return false;
    first.assign(counts.size() + 1, 0);
    for (std::size_t p = 0; p < counts.size(); ++p) first[p + 1] = first[p] + counts[p];
    return true;
  }
  std::vector<std::uint64_t> counts;
  std::vector<bool> seen;
  std::size_t received = 0;
  std::vector<std::uint64_t> first;
};

// The files a Graphalytics graph came from, for error messages that name a line: an edge whose
// endpoint is not in the vertex file, a vertex listed twice. Empty for other inputs.
struct SourceFiles {
  std::string edge_file;
  std::string vertex_file;
};

// An edge endpoint missing from the vertex file. The edge at hand may be the reversed copy of an
// undirected edge, so the message names the first line of the edge file with that vertex, as
// written (found by reading the file again: this is the error path only).
[[noreturn]] void missing_vertex(const SourceFiles& files, std::uint64_t id, const char* role, const Edge& e) {
  const std::string v = std::to_string(id);
  if (!files.edge_file.empty()) {
    const auto at = io::find_edge_lines(files.edge_file, id, 1);
    if (!at.empty())
      throw Error(files.edge_file + ":" + std::to_string(at[0].line) + ": edge '" + at[0].printable() + "': vertex " + v +
                  " is not in the vertex file '" + files.vertex_file + "'");
  }
  throw Error("edge " + std::to_string(e.src) + " -> " + std::to_string(e.dst) + ": its " + role + " " + v +
              " is not in the vertex file");
}

std::uint32_t local_index(const Partition& part, std::uint64_t id, const char* role, const Edge& e,
                          const SourceFiles& files) {
  const auto it = std::lower_bound(part.ids.begin(), part.ids.end(), id);
  if (it == part.ids.end() || *it != id) missing_vertex(files, id, role, e);
  return static_cast<std::uint32_t>(it - part.ids.begin());
}

// A set of 64-bit ids (open addressing): every edge brings both its ids, mostly seen before, so
// memory stays near the number of distinct ids, not of edge ends.
class IdSet {
 public:
  // Whether `id` was new.
  bool insert(std::uint64_t id) {
    if (id == kEmpty) return !std::exchange(has_empty_, true);
    if ((size_ + 1) * 2 > slots_.size()) grow();
    for (std::size_t i = slot(id);; i = (i + 1) & mask_) {
      if (slots_[i] == id) return false;
      if (slots_[i] == kEmpty) {
        slots_[i] = id;
        ++size_;
        return true;
      }
    }
  }
  std::vector<std::uint64_t> sorted() const {
    std::vector<std::uint64_t> out;
    out.reserve(size_ + (has_empty_ ? 1 : 0));
    for (const std::uint64_t id : slots_)
      if (id != kEmpty) out.push_back(id);
    if (has_empty_) out.push_back(kEmpty);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  static constexpr std::uint64_t kEmpty = std::numeric_limits<std::uint64_t>::max();
  std::size_t slot(std::uint64_t id) const {
    // Fibonacci hashing: the ids of one partition share their hash(id) % P, so mix again.
    return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow() {
    std::vector<std::uint64_t> old = std::move(slots_);
    const std::size_t n = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(n, kEmpty);
    mask_ = n - 1;
    shift_ = 64 - std::countr_zero(n);
    size_ = 0;
    for (const std::uint64_t id : old)
      if (id != kEmpty) insert(id);
  }
  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  int shift_ = 64;
  bool has_empty_ = false;
};

// Collects the ids its partition owns, sorts them, and announces the count to everyone. Ids from
// a vertex list (`unique`) must come once each; ids taken from the edges repeat.
class OwnersOp final : public detail::NodeRuntime, public detail::Input<std::uint64_t> {
 public:
  OwnersOp(const detail::OpContext& c, std::shared_ptr<Graph> g, detail::Input<Count>* out, bool unique,
           std::shared_ptr<const SourceFiles> files)
      : g_(std::move(g)), p_(c.partition), out_(out), unique_(unique), files_(std::move(files)) {}
  detail::PortBase* port(int) override { return this; }
  void push(std::span<const std::uint64_t> in) override {
    records_in += in.size();
    for (const std::uint64_t id : in)
      if (!ids_.insert(id) && unique_) duplicate(id);
  }
  void on_event(const Event& event) override {
    if (event.kind != EventKind::kEnd) return;
    Partition& part = g_->make_part(p_);
    part.ids = ids_.sorted();
    ids_ = IdSet();
    part.out_degree.assign(part.ids.size(), 0);
    const Count c{static_cast<std::uint64_t>(p_), part.ids.size()};
    out_->push(std::span<const Count>(&c, 1));
    records_out += 1;
    out_->on_event(Event::end());
  }

 private:
  [[noreturn]] void duplicate(std::uint64_t id) const {
    const std::string v = std::to_string(id);
    if (!files_->vertex_file.empty()) {
      const auto at = io::find_vertex_lines(files_->vertex_file, id, 2);
      if (at.size() == 2)
        throw Error(files_->vertex_file + ":" + std::to_string(at[1].line) + ": vertex " + v +
                    " is listed again (first at line " + std::to_string(at[0].line) + ")");
    }
    throw Error("vertex " + v + " is listed twice in the vertex list");
  }

  std::shared_ptr<Graph> g_;
  int p_;
  detail::Input<Count>* out_;
  bool unique_;
  std::shared_ptr<const SourceFiles> files_;
  IdSet ids_;
};

// Input 0: records of type In; input 1: every partition's count. Holds its records until all
// counts arrived (then the partition's sorted ids and the dense-id offsets are known), passes
// them to resolve() from then on, and calls finish() when both inputs ended.
template <class In>
class AfterCountsOp : public detail::NodeRuntime {
 public:
  AfterCountsOp(const detail::OpContext& c, std::shared_ptr<Graph> g)
      : g_(std::move(g)), p_(c.partition), offsets_(g_->partitions()), records_(this), counts_(this) {}
  detail::PortBase* port(int i) override { return i == 0 ? static_cast<detail::PortBase*>(&records_) : &counts_; }

  void on_records(std::span<const In> in) {
    records_in += in.size();
    if (part_ == nullptr) {
      if (pending_.empty() || pending_.back().size() + in.size() > kChunk) pending_.emplace_back().reserve(kChunk);
      pending_.back().insert(pending_.back().end(), in.begin(), in.end());
      return;
    }
    resolve(in);
  }
  void on_counts(std::span<const Count> in) {
    records_in += in.size();
    if (!offsets_.add(in)) return;
    part_ = g_->part(p_);
    // Chunk by chunk, each freed once resolved: what the next operator builds from them grows
    // while this shrinks.
    for (auto& chunk : pending_) {
      resolve(chunk);
      std::vector<In>().swap(chunk);
    }
    pending_.clear();
  }
  void on_input_event(const Event& event) {
    if (event.kind == EventKind::kEnd && ++ended_ == 2) finish();
  }

 protected:
  virtual void resolve(std::span<const In> in) = 0;
  virtual void finish() = 0;

  std::shared_ptr<Graph> g_;
  int p_;
  Offsets offsets_;
  Partition* part_ = nullptr;  // set once every count arrived

 private:
  // Records per pending chunk: at least 32 MB, so every chunk is its own mmap and goes back to the
  // system when freed (smaller blocks come from the heap once the allocator raised its mmap
  // threshold, and would stay in the process).
  static constexpr std::size_t kChunk = (std::size_t{32} << 20) / sizeof(In) + 1;
  std::vector<std::vector<In>> pending_;
  int ended_ = 0;
  detail::MemberPort<In, AfterCountsOp, &AfterCountsOp::on_records, &AfterCountsOp::on_input_event>
      records_;
  detail::MemberPort<Count, AfterCountsOp, &AfterCountsOp::on_counts, &AfterCountsOp::on_input_event>
      counts_;
};

// Edges by source: resolves sources to dense ids and counts out-degrees; emits arcs.
class OutResolveOp final : public AfterCountsOp<Edge> {
 public:
  OutResolveOp(const detail::OpContext& c, std::shared_ptr<Graph> g, detail::Input<Arc>* out,
               std::shared_ptr<const SourceFiles> files)
      : AfterCountsOp<Edge>(c, std::move(g)), out_(out), batch_(detail::records_per_batch<Arc>(c.batch_bytes)),
        files_(std::move(files)) {}

 private:
  void resolve(std::span<const Edge> in) override {
    const std::uint64_t first = offsets_.first[static_cast<std::size_t>(p_)];
    for (const Edge& e : in) {
      const std::uint32_t l = local_index(*part_, e.src, "source", e, *files_);
      ++part_->out_degree[l];
      buf_.push_back(Arc{first + l, e.src, e.dst});
      if (buf_.size() >= batch_) flush();
    }
    flush();
  }
  void finish() override { out_->on_event(Event::end()); }
  void flush() {
    if (buf_.empty()) return;
    records_out += buf_.size();
    out_->push(std::span<const Arc>(buf_));
    buf_.clear();
  }
  detail::Input<Arc>* out_;
  std::size_t batch_;
  std::shared_ptr<const SourceFiles> files_;
  std::vector<Arc> buf_;
};

// Arcs by target: builds the in-edge CSR. Each vertex's in-edges are ordered by the sources'
// original ids, so sums over them run in the same order whatever the number of partitions or
// ranks (results identical alone and under mpirun).
class InBuildOp final : public AfterCountsOp<Arc> {
 public:
  InBuildOp(const detail::OpContext& c, std::shared_ptr<Graph> g, std::shared_ptr<const SourceFiles> files)
      : AfterCountsOp<Arc>(c, std::move(g)), files_(std::move(files)) {}

 private:
  struct Local {
    std::uint32_t dst;        // local target
    std::uint32_t dense_src;
    std::uint64_t src;        // original source id (the order of in-edges)
  };
  void resolve(std::span<const Arc> in) override {
    GYRE_CHECK(offsets_.first.back() <= std::numeric_limits<std::uint32_t>::max(),
               "graphs of more than 4G vertices are not supported");
    if (counts_.empty()) counts_.assign(part_->ids.size() + 1, 0);
    for (const Arc& a : in) {
      const std::uint32_t l = local_index(*part_, a.dst, "target", Edge{a.src, a.dst}, *files_);
      if (chunks_.empty() || chunks_.back().size() == kChunk) chunks_.emplace_back().reserve(kChunk);
      chunks_.back().push_back(Local{l, static_cast<std::uint32_t>(a.dense_src), a.src});
      ++counts_[l + 1];
    }
  }
  // Places the arcs by target (counting sort, chunks freed as they are placed), then orders each
  // vertex's in-edges by source id. At its peak this holds the arcs once plus 12 bytes per arc,
  // not a growing array of arcs and its reallocation copy.
  void finish() override {
    const std::size_t n = part_->ids.size();
    if (counts_.empty()) counts_.assign(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) counts_[i + 1] += counts_[i];
    const std::uint64_t m = counts_[n];
    std::vector<std::uint64_t> src(m);
    part_->in_sources.resize(m);
    std::vector<std::uint64_t> at(counts_.begin(), counts_.end() - 1);
    for (auto& chunk : chunks_) {
      for (const Local& a : chunk) {
        const std::uint64_t i = at[a.dst]++;
        src[i] = a.src;
        part_->in_sources[i] = a.dense_src;
      }
      std::vector<Local>().swap(chunk);
    }
    chunks_.clear();
    std::vector<std::pair<std::uint64_t, std::uint32_t>> seg;
    for (std::size_t v = 0; v < n; ++v) {
      const std::uint64_t b = counts_[v], e = counts_[v + 1];
      if (e - b < 2) continue;
      seg.clear();
      for (std::uint64_t i = b; i < e; ++i) seg.emplace_back(src[i], part_->in_sources[i]);
      std::sort(seg.begin(), seg.end());
      for (std::uint64_t i = b; i < e; ++i) part_->in_sources[i] = seg[i - b].second;
    }
    part_->in_offsets = std::move(counts_);
    part_->first = offsets_.first[static_cast<std::size_t>(p_)];
    g_->set_first(offsets_.first);
  }
  static constexpr std::size_t kChunk = (std::size_t{32} << 20) / sizeof(Local);  // one mmap each
  std::shared_ptr<const SourceFiles> files_;
  std::vector<std::vector<Local>> chunks_;
  std::vector<std::uint64_t> counts_;  // in-degree of local vertex i at i + 1, then offsets
};

// A graph-loading operator: made by make(OpContext, outputs) as a detail::NodeRuntime.
template <class Make>
detail::NodeFactory factory(Make make) {
  return [make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
             -> std::unique_ptr<detail::NodeRuntime> { return make(c, outs); };
}

}  // namespace

namespace {

// Adds the loading operators for `edges` (and `ids`, if a vertex file gives them); returns the
// node whose output counts the arcs.
int add_load(Environment& env, const std::shared_ptr<Graph>& g, Stream<Edge> edges,
             std::optional<Stream<std::uint64_t>> vertex_ids, bool directed,
             std::shared_ptr<const SourceFiles> files) {
  g->directed = directed;
  const bool unique = vertex_ids.has_value();
  if (!directed) {
    edges = edges.flat_map<Edge>([](const Edge& e, Emit<Edge>& emit) {
      emit(e);
      if (e.src != e.dst) emit(Edge{e.dst, e.src});
    });
  }
  Stream<std::uint64_t> ids = vertex_ids ? *vertex_ids
                                         : edges.flat_map<std::uint64_t>([](const Edge& e, Emit<std::uint64_t>& emit) {
                                             emit(e.src);
                                             emit(e.dst);
                                           });
  auto identity = [](const std::uint64_t& v) { return v; };
  auto by_src = [](const Edge& e) { return e.src; };
  auto by_dst = [](const Arc& a) { return a.dst; };

  OperatorBuilder owners(env, "graph: vertex owners");
  owners.keyed();
  owners.add_input(OperatorBuilder::key_ref(ids, identity, Partitioning::kAuto), 0, false);
  owners.output<Count>();
  owners.factory(factory([g, unique, files](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
    return std::make_unique<OwnersOp>(c, g, static_cast<detail::Input<Count>*>(outs[0]), unique, files);
  }));
  const Stream<Count> counts = owners.stream<Count>();

  OperatorBuilder out_resolve(env, "graph: out-degrees");
  out_resolve.add_input(OperatorBuilder::key_ref(edges, by_src, Partitioning::kAuto), 0, false);
  out_resolve.input(counts, Partitioning::kBroadcast);
  out_resolve.output<Arc>();
  out_resolve.factory(factory([g, files](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
    return std::make_unique<OutResolveOp>(c, g, static_cast<detail::Input<Arc>*>(outs[0]), files);
  }));
  const int out_id = out_resolve.id();

  OperatorBuilder in_build(env, "graph: in-edge CSR");
  in_build.sink();
  in_build.input_by_key(out_resolve.stream<Arc>(), by_dst);  // kAuto: a fresh stream
  in_build.input(counts, Partitioning::kBroadcast);
  in_build.factory(factory([g, files](const detail::OpContext& c, const std::vector<detail::PortBase*>&) {
    return std::make_unique<InBuildOp>(c, g, files);
  }));
  return out_id;
}

// Adds the loading operators and runs the job.
void build(Environment& env, const std::shared_ptr<Graph>& g, Stream<Edge> edges,
           std::optional<Stream<std::uint64_t>> vertex_ids, bool directed, std::shared_ptr<const SourceFiles> files) {
  const int out_id = add_load(env, g, std::move(edges), std::move(vertex_ids), directed, std::move(files));
  g->load_metrics = env.run();
  for (const auto& op : g->load_metrics.operators)
    if (op.node == out_id) g->edges = op.records_out;
  GYRE_CHECK(!g->first.empty(), "graph load: no partition boundaries on this rank");
  g->vertices = g->first.back();
}

// A graph file as streams: its edges, its vertex ids (if the format lists them, isolated
// vertices included), and whether it is directed.
struct Input {
  Stream<Edge> edges;
  std::optional<Stream<std::uint64_t>> ids;
  bool directed;
  std::shared_ptr<const SourceFiles> files = std::make_shared<const SourceFiles>();
};

Input open_input(Environment& env, const LoadOptions& opts) {
  const io::GraphFormat format = opts.format ? *opts.format : io::guess_format(opts.path);
  if (format == io::GraphFormat::kHdf5) {
    // Every rank reads the attributes; each partition then reads its slice of the CSR.
    const auto info = io::read_hdf5_graph_info(opts.path);
    return Input{io::read_hdf5_edges(env, opts.path), io::read_hdf5_vertices(env, opts.path),
                 opts.directed.value_or(info.directed)};
  }
  if (format == io::GraphFormat::kGraphalytics) {
    const auto props = io::read_properties(opts.path);
    return Input{io::read_edge_list(env, props.edge_file), io::read_vertex_file(env, props.vertex_file),
                 opts.directed.value_or(props.directed),
                 std::make_shared<const SourceFiles>(SourceFiles{props.edge_file, props.vertex_file})};
  }
  return Input{io::read_edge_list(env, opts.path), std::nullopt, opts.directed.value_or(true)};
}

std::shared_ptr<Graph> make_graph(const Environment& env) {
  const int parts = env.default_parallelism();
  if (parts < env.num_ranks())  // the same on every rank: all refuse alike
    throw PlanError("graph load with " + std::to_string(parts) + " partitions on " + std::to_string(env.num_ranks()) +
                    " ranks: use at least one partition per rank");
  return std::make_shared<Graph>(parts);
}

}  // namespace

std::shared_ptr<Graph> load(const LoadOptions& opts, const JobConfig& config,
                            Cluster cluster) {
  if ((opts.format ? *opts.format : io::guess_format(opts.path)) == io::GraphFormat::kHdf5)
    return load_hdf5(opts, config, std::move(cluster));  // in place: graph_hdf5.cc
  const auto t0 = std::chrono::steady_clock::now();
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  Input in = open_input(env, opts);
  build(env, g, std::move(in.edges), std::move(in.ids), in.directed, std::move(in.files));
  g->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

std::shared_ptr<Graph> load_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                  const JobConfig& config, Cluster cluster) {
  const auto t0 = std::chrono::steady_clock::now();
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  auto stream = env.from_collection(std::move(edges)).map([](const MemoryEdge& e) { return Edge{e.src, e.dst}; });
  build(env, g, stream, std::nullopt, directed, std::make_shared<const SourceFiles>());
  g->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

std::string explain_load(const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  Input in = open_input(env, opts);
  add_load(env, g, std::move(in.edges), std::move(in.ids), in.directed, std::move(in.files));
  return env.explain();
}

// convert(): graph_hdf5.cc.

}  // namespace gyre::graph
