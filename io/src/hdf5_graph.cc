// gyre's HDF5 graph and result files. See hdf5_graph.h.
#include "gyre/io/hdf5_graph.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <limits>
#include <memory>
#include <type_traits>

#include "gyre/core/error.h"
#include "gyre/core/operators.h"
#include "gyre/core/text_io.h"
#include "hdf5_util.h"

namespace gyre::io {
namespace {

using namespace h5;  // NOLINT(google-build-using-namespace)

constexpr const char* kFormat = "gyre-graph";
constexpr std::uint64_t kVersion = 1;

Hdf5GraphInfo check_graph(const Reader& r) {
  if (!r.has_attribute("format") || r.string_attribute("format") != kFormat)
    fail(r.path(), "not a gyre graph file (no root attribute format = \"gyre-graph\"; make one with gyre convert)");
  const std::uint64_t version = r.integer_attribute("version");
  if (version != kVersion)
    fail(r.path(), "gyre graph format version " + std::to_string(version) + "; this gyre reads version " +
                       std::to_string(kVersion));
  Hdf5GraphInfo info;
  info.vertices = r.integer_attribute("vertices");
  info.edges = r.integer_attribute("edges");
  const std::uint64_t directed = r.integer_attribute("directed");
  if (directed > 1) fail(r.path(), "attribute directed = " + std::to_string(directed) + ", expected 0 or 1");
  info.directed = directed == 1;
  if (info.vertices > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
    fail(r.path(), "attribute vertices = " + std::to_string(info.vertices) +
                       ": more than the 2^32 vertices that uint32 /edges/targets can index");
  if (r.length("/vertices/ids") != info.vertices)
    fail(r.path(), "dataset /vertices/ids has " + std::to_string(r.length("/vertices/ids")) + " elements, attribute vertices says " +
                       std::to_string(info.vertices));
  if (r.length("/edges/offsets") != info.vertices + 1)
    fail(r.path(), "dataset /edges/offsets has " + std::to_string(r.length("/edges/offsets")) +
                       " elements, expected vertices + 1 = " + std::to_string(info.vertices + 1));
  if (r.length("/edges/targets") != info.edges)
    fail(r.path(), "dataset /edges/targets has " + std::to_string(r.length("/edges/targets")) + " elements, attribute edges says " +
                       std::to_string(info.edges));
  return info;
}

// Ids [first, first + n) of /vertices/ids, given with the element before them (at first - 1, if
// first > 0): the format keeps them strictly increasing, so a duplicate, an unsorted or a
// damaged id is found. Each partition checks its slice and the boundary with the one before.
void check_ids(const std::string& path, const std::uint64_t* ids, std::uint64_t first, std::uint64_t n) {
  for (std::uint64_t i = first == 0 ? 1 : 0; i < n; ++i) {
    const std::uint64_t prev = i == 0 ? ids[-1] : ids[i - 1];
    if (ids[i] <= prev)
      fail(path, "/vertices/ids[" + std::to_string(first + i) + "] = " + std::to_string(ids[i]) +
                     " is not greater than [" + std::to_string(first + i - 1) + "] = " + std::to_string(prev) +
                     " (ids must be strictly increasing)");
  }
}

// Partition p's slice of a graph file: its vertices [lo, hi), their offsets, and the id map.
struct Slice {
  explicit Slice(const std::string& path, int partition, int parallelism) : reader(path) {
    info = check_graph(reader);
    std::tie(lo, hi) = detail::split_range(info.vertices, partition, parallelism);
    ids = reader.read_all<std::uint64_t>("/vertices/ids");
    offsets.resize(hi - lo + 1);
    reader.read("/edges/offsets", lo, offsets.size(), offsets.data());
    check_ids(path, ids.data() + lo, lo, hi - lo);
    if (lo == 0 && offsets[0] != 0)
      fail(path, "/edges/offsets[0] = " + std::to_string(offsets[0]) + ", expected 0");
    for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
      const std::uint64_t at = lo + i + 1;
      if (offsets[i + 1] < offsets[i])
        fail(path, "/edges/offsets[" + std::to_string(at) + "] = " + std::to_string(offsets[i + 1]) +
                       " is less than [" + std::to_string(at - 1) + "] = " + std::to_string(offsets[i]) +
                       " (offsets must not decrease)");
      if (offsets[i + 1] > info.edges)
        fail(path, "/edges/offsets[" + std::to_string(at) + "] = " + std::to_string(offsets[i + 1]) +
                       " is beyond the " + std::to_string(info.edges) + " edges");
    }
    if (hi == info.vertices && offsets.back() != info.edges)
      fail(path, "/edges/offsets[" + std::to_string(hi) + "] = " + std::to_string(offsets.back()) +
                     ", expected the number of edges " + std::to_string(info.edges));
  }
  Reader reader;
  Hdf5GraphInfo info;
  std::uint64_t lo = 0, hi = 0;
  std::vector<std::uint64_t> ids;
  std::vector<std::uint64_t> offsets;
};

class Hdf5EdgeSource final : public detail::SourceOp<Edge> {
 public:
  Hdf5EdgeSource(const detail::OpContext& ctx, std::string path, detail::Input<Edge>* out)
      : detail::SourceOp<Edge>(ctx, out), path_(std::move(path)), partition_(ctx.partition), parallelism_(ctx.parallelism) {}

  detail::SourceStatus produce(std::size_t max_batches) override {
    if (!slice_) {
      slice_ = std::make_unique<Slice>(path_, partition_, parallelism_);
      edge_ = slice_->offsets.front();
    }
    const Slice& s = *slice_;
    const std::uint64_t end = s.offsets.back();
    for (std::size_t k = 0; k < max_batches && edge_ < end; ++k) {
      // Targets are read in large slices (each read opens the dataset and selects a
      // hyperslab) and handed on in batches.
      if (edge_ >= read_from_ + targets_.size()) {
        read_from_ = edge_;
        targets_.resize(std::min<std::uint64_t>(kReadTargets, end - edge_));
        s.reader.read("/edges/targets", edge_, targets_.size(), targets_.data());
      }
      const std::uint64_t n = std::min<std::uint64_t>(cap_, read_from_ + targets_.size() - edge_);
      batch_.clear();
      for (std::uint64_t i = 0; i < n; ++i, ++edge_) {
        while (s.offsets[vertex_ + 1] <= edge_) ++vertex_;
        const std::uint32_t t = targets_[edge_ - read_from_];
        if (t >= s.info.vertices)
          fail(path_, "/edges/targets[" + std::to_string(edge_) + "] = " + std::to_string(t) +
                          " is not a vertex index (there are " + std::to_string(s.info.vertices) + " vertices)");
        batch_.push_back(Edge{s.ids[s.lo + vertex_], s.ids[t]});
      }
      emit(std::span<const Edge>(batch_));
    }
    if (edge_ < end) return detail::SourceStatus::kMore;
    out_->on_event(Event::end());
    return detail::SourceStatus::kDone;
  }

 private:
  std::string path_;
  int partition_;
  int parallelism_;
  std::unique_ptr<Slice> slice_;
  std::uint64_t edge_ = 0;
  std::uint64_t vertex_ = 0;  // index into the slice
  static constexpr std::uint64_t kReadTargets = std::uint64_t{1} << 20;
  std::uint64_t read_from_ = 0;          // the edge index of targets_[0]
  std::vector<std::uint32_t> targets_;
  std::vector<Edge> batch_;
};

class Hdf5VertexSource final : public detail::SourceOp<std::uint64_t> {
 public:
  Hdf5VertexSource(const detail::OpContext& ctx, std::string path, detail::Input<std::uint64_t>* out)
      : detail::SourceOp<std::uint64_t>(ctx, out), path_(std::move(path)), partition_(ctx.partition),
        parallelism_(ctx.parallelism) {}

  detail::SourceStatus produce(std::size_t max_batches) override {
    if (!started_) {
      started_ = true;
      Reader r(path_);
      const auto info = check_graph(r);
      std::tie(pos_, end_) = detail::split_range(info.vertices, partition_, parallelism_);
      // The slice and the id before it (for the ordering check at the boundary).
      const std::uint64_t from = pos_ > 0 && pos_ < end_ ? pos_ - 1 : pos_;
      ids_.resize(end_ - from);
      r.read("/vertices/ids", from, ids_.size(), ids_.data());
      first_ = from;
      if (pos_ < end_) check_ids(path_, ids_.data() + (pos_ - from), pos_, end_ - pos_);
    }
    for (std::size_t k = 0; k < max_batches && pos_ < end_; ++k) {
      const std::uint64_t n = std::min<std::uint64_t>(cap_, end_ - pos_);
      emit(std::span<const std::uint64_t>(ids_.data() + (pos_ - first_), n));
      pos_ += n;
    }
    if (pos_ < end_) return detail::SourceStatus::kMore;
    out_->on_event(Event::end());
    return detail::SourceStatus::kDone;
  }

 private:
  std::string path_;
  int partition_;
  int parallelism_;
  bool started_ = false;
  std::uint64_t pos_ = 0, end_ = 0, first_ = 0;
  std::vector<std::uint64_t> ids_;
};

template <class T, class Make>
Stream<T> hdf5_source(Environment& env, const std::string& what, const std::string& path, Make make) {
  OperatorBuilder b(env, "source: " + what + " '" + path + "'");
  b.bounded(true);
  b.output<T>();
  b.factory([path, make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) -> std::unique_ptr<detail::NodeRuntime> {
    return make(c, path, static_cast<detail::Input<T>*>(outs[0]));
  });
  b.validate([path] { read_hdf5_graph_info(path); });
  return b.stream<T>();
}

template <class V>
void write_values(const std::string& path, const std::string& algorithm,
                  const std::vector<std::pair<std::uint64_t, V>>& rows) {
  std::vector<std::uint64_t> ids(rows.size());
  std::vector<V> values(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) std::tie(ids[i], values[i]) = rows[i];
  Writer w(path);
  w.attribute("format", "gyre-result");
  w.attribute("algorithm", algorithm);
  w.dataset("/ids", ids);
  w.dataset("/values", values);
  w.commit();
}

}  // namespace

Hdf5Graph make_hdf5_graph(std::vector<std::uint64_t> ids, const std::vector<Edge>& edges, bool directed) {
  for (const Edge& e : edges) {
    ids.push_back(e.src);
    ids.push_back(e.dst);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.size() > std::numeric_limits<std::uint32_t>::max())
    throw Error("graphs of more than 4G vertices are not supported by the HDF5 graph format");
  auto index = [&](std::uint64_t id) {
    return static_cast<std::uint32_t>(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  };
  Hdf5Graph g;
  g.directed = directed;
  g.offsets.assign(ids.size() + 1, 0);
  std::vector<std::uint32_t> src(edges.size());
  for (std::size_t i = 0; i < edges.size(); ++i) {
    src[i] = index(edges[i].src);
    ++g.offsets[src[i] + 1];
  }
  for (std::size_t v = 0; v < ids.size(); ++v) g.offsets[v + 1] += g.offsets[v];
  g.targets.resize(edges.size());
  std::vector<std::uint64_t> at(g.offsets.begin(), g.offsets.end() - 1);
  for (std::size_t i = 0; i < edges.size(); ++i) g.targets[at[src[i]]++] = index(edges[i].dst);
  g.ids = std::move(ids);
  return g;
}

void write_hdf5_graph(const std::string& path, const Hdf5Graph& g, const std::string& source) {
  Writer w(path);
  w.attribute("format", kFormat);
  w.attribute("version", kVersion);
  w.attribute("directed", std::uint64_t{g.directed ? 1u : 0u});
  w.attribute("vertices", static_cast<std::uint64_t>(g.ids.size()));
  w.attribute("edges", static_cast<std::uint64_t>(g.targets.size()));
  w.attribute("source", source);
  w.group("/vertices");
  w.group("/edges");
  w.dataset("/vertices/ids", g.ids);
  w.dataset("/edges/offsets", g.offsets);
  w.dataset("/edges/targets", g.targets);
  w.commit();
}

Hdf5GraphInfo read_hdf5_graph_info(const std::string& path) {
  detail::check_readable(path);
  const Reader r(path);
  return check_graph(r);
}

Stream<Edge> read_hdf5_edges(Environment& env, const std::string& path) {
  return hdf5_source<Edge>(env, "HDF5 graph edges", path, [](const detail::OpContext& c, const std::string& p, detail::Input<Edge>* out) {
    return std::make_unique<Hdf5EdgeSource>(c, p, out);
  });
}

Stream<std::uint64_t> read_hdf5_vertices(Environment& env, const std::string& path) {
  return hdf5_source<std::uint64_t>(env, "HDF5 graph vertices", path,
                                    [](const detail::OpContext& c, const std::string& p, detail::Input<std::uint64_t>* out) {
                                      return std::make_unique<Hdf5VertexSource>(c, p, out);
                                    });
}

void write_hdf5_values(const std::string& path, const std::string& algorithm,
                       const std::vector<std::pair<std::uint64_t, double>>& rows) {
  write_values(path, algorithm, rows);
}

void write_hdf5_values(const std::string& path, const std::string& algorithm,
                       const std::vector<std::pair<std::uint64_t, std::uint64_t>>& rows) {
  write_values(path, algorithm, rows);
}

std::vector<std::pair<std::uint64_t, double>> read_hdf5_values(const std::string& path) {
  detail::check_readable(path);
  const Reader r(path);
  if (!r.has_attribute("format") || r.string_attribute("format") != "gyre-result")
    fail(path, "not a gyre result file (no root attribute format = \"gyre-result\")");
  const auto ids = r.read_all<std::uint64_t>("/ids");
  const auto values = r.read_all<double>("/values");
  if (ids.size() != values.size()) fail(path, "datasets /ids and /values differ in length");
  std::vector<std::pair<std::uint64_t, double>> rows(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) rows[i] = {ids[i], values[i]};
  return rows;
}

}  // namespace gyre::io
