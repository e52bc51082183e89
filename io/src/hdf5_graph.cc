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
#include <cstring>
#include <type_traits>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "gyre/core/error.h"
#include "gyre/core/operators.h"
#include "gyre/core/text_io.h"
#include "hdf5_util.h"

namespace gyre::io {
namespace {

using namespace h5;  // NOLINT(google-build-using-namespace)

constexpr const char* kFormat = "gyre-graph";
constexpr std::uint64_t kVersion = 2;

std::string num(std::uint64_t v) { return std::to_string(v); }

Hdf5GraphInfo check_graph(const Reader& r) {
  if (!r.has_attribute("format") || r.string_attribute("format") != kFormat)
    fail(r.path(), "not a gyre graph file (no root attribute format = \"gyre-graph\"; make one with gyre convert)");
  const std::uint64_t version = r.integer_attribute("version");
  if (version == 1)
    fail(r.path(), "gyre graph format version 1 (made by an older gyre convert); this gyre reads version 2: run "
                   "gyre convert again on the original edge list");
  if (version != kVersion)
    fail(r.path(), "gyre graph format version " + num(version) + "; this gyre reads version " + num(kVersion));
  Hdf5GraphInfo info;
  info.vertices = r.integer_attribute("vertices");
  info.edges = r.integer_attribute("edges");
  auto flag = [&](const char* name) {
    const std::uint64_t v = r.integer_attribute(name);
    if (v > 1) fail(r.path(), std::string("attribute ") + name + " = " + num(v) + ", expected 0 or 1");
    return v == 1;
  };
  info.directed = flag("directed");
  info.weighted = flag("weighted");
  if (info.vertices > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
    fail(r.path(), "attribute vertices = " + num(info.vertices) +
                       ": more than the 2^32 vertices that uint32 dense ids can index");
  auto expect = [&](const char* name, std::uint64_t n, const char* what) {
    const std::uint64_t got = r.length(name);
    if (got != n)
      fail(r.path(), std::string("dataset ") + name + " has " + num(got) + " elements, expected " + what + " = " + num(n));
  };
  expect("/vertices/ids", info.vertices, "vertices");
  expect("/in/offsets", info.vertices + 1, "vertices + 1");
  expect("/in/sources", info.edges, "edges");
  if (info.weighted) expect("/in/weights", info.edges, "edges");
  if (info.directed) {
    expect("/out/offsets", info.vertices + 1, "vertices + 1");
    expect("/out/targets", info.edges, "edges");
    if (info.weighted) expect("/out/weights", info.edges, "edges");
  }
  return info;
}

// Ids [first, first + n) of /vertices/ids, given with the element before them (at first - 1, if
// first > 0): the format keeps them strictly increasing, so a duplicate, an unsorted or a
// damaged id is found. Each partition checks its slice and the boundary with the one before.
void check_ids(const std::string& path, const std::uint64_t* ids, std::uint64_t first, std::uint64_t n) {
  for (std::uint64_t i = first == 0 ? 1 : 0; i < n; ++i) {
    const std::uint64_t prev = i == 0 ? ids[-1] : ids[i - 1];
    if (ids[i] <= prev)
      fail(path, "/vertices/ids[" + num(first + i) + "] = " + num(ids[i]) + " is not greater than [" +
                     num(first + i - 1) + "] = " + num(prev) + " (ids must be strictly increasing)");
  }
}

// Partition p's slice of a graph file (for the stream sources): its vertices [lo, hi), their
// in-edge offsets, and the id map.
struct Slice {
  explicit Slice(const std::string& path, int partition, int parallelism) : reader(path) {
    info = check_graph(reader);
    std::tie(lo, hi) = detail::split_range(info.vertices, partition, parallelism);
    ids = reader.read_all<std::uint64_t>("/vertices/ids");
    offsets.resize(hi - lo + 1);
    reader.read("/in/offsets", lo, offsets.size(), offsets.data());
    check_ids(path, ids.data() + lo, lo, hi - lo);
    if (lo == 0 && offsets[0] != 0) fail(path, "/in/offsets[0] = " + num(offsets[0]) + ", expected 0");
    for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
      const std::uint64_t at = lo + i + 1;
      if (offsets[i + 1] < offsets[i])
        fail(path, "/in/offsets[" + num(at) + "] = " + num(offsets[i + 1]) + " is less than [" + num(at - 1) +
                       "] = " + num(offsets[i]) + " (offsets must not decrease)");
      if (offsets[i + 1] > info.edges)
        fail(path, "/in/offsets[" + num(at) + "] = " + num(offsets[i + 1]) + " is beyond the " + num(info.edges) + " edges");
    }
    if (hi == info.vertices && offsets.back() != info.edges)
      fail(path, "/in/offsets[" + num(hi) + "] = " + num(offsets.back()) + ", expected the number of edges " +
                     num(info.edges));
  }
  Reader reader;
  Hdf5GraphInfo info;
  std::uint64_t lo = 0, hi = 0;
  std::vector<std::uint64_t> ids;
  std::vector<std::uint64_t> offsets;
};

// The stored arcs as edges: source -> vertex of each in-edge; an undirected graph's edges once
// (source <= vertex).
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
      if (edge_ >= read_from_ + sources_.size()) {
        read_from_ = edge_;
        sources_.resize(std::min<std::uint64_t>(kReadSources, end - edge_));
        s.reader.read("/in/sources", edge_, sources_.size(), sources_.data());
      }
      const std::uint64_t n = std::min<std::uint64_t>(cap_, read_from_ + sources_.size() - edge_);
      batch_.clear();
      for (std::uint64_t i = 0; i < n; ++i, ++edge_) {
        while (s.offsets[vertex_ + 1] <= edge_) ++vertex_;
        const std::uint32_t u = sources_[edge_ - read_from_];
        if (u >= s.info.vertices)
          fail(path_, "/in/sources[" + num(edge_) + "] = " + num(u) + " is not a vertex index (there are " +
                          num(s.info.vertices) + " vertices)");
        const std::uint64_t v = s.lo + vertex_;
        if (!s.info.directed && u > v) continue;
        batch_.push_back(Edge{s.ids[u], s.ids[v]});
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
  static constexpr std::uint64_t kReadSources = std::uint64_t{1} << 20;
  std::uint64_t read_from_ = 0;  // the edge index of sources_[0]
  std::vector<std::uint32_t> sources_;
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

// Sorts each vertex's neighbours (by dense id = by original id), removes duplicates (keeping the
// smallest weight) and compacts the CSR in place.
void sort_and_dedupe(std::vector<std::uint64_t>& offsets, std::vector<std::uint32_t>& nbr, std::vector<double>* w) {
  const std::size_t n = offsets.size() - 1;
  std::vector<std::uint64_t> kept(n + 1, 0);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1024), [&](const tbb::blocked_range<std::size_t>& r) {
    std::vector<std::pair<std::uint32_t, double>> seg;
    for (std::size_t v = r.begin(); v < r.end(); ++v) {
      const std::uint64_t b = offsets[v], e = offsets[v + 1];
      std::uint32_t* p = nbr.data() + b;
      if (w == nullptr) {
        std::sort(p, p + (e - b));
        kept[v + 1] = static_cast<std::uint64_t>(std::unique(p, p + (e - b)) - p);
        continue;
      }
      seg.clear();
      for (std::uint64_t i = b; i < e; ++i) seg.emplace_back(nbr[i], (*w)[i]);
      std::sort(seg.begin(), seg.end());  // by neighbour, then weight: the first is the smallest
      std::uint64_t k = 0;
      for (std::size_t i = 0; i < seg.size(); ++i) {
        if (i > 0 && seg[i].first == seg[i - 1].first) continue;
        nbr[b + k] = seg[i].first;
        (*w)[b + k] = seg[i].second;
        ++k;
      }
      kept[v + 1] = k;
    }
  });
  for (std::size_t v = 0; v < n; ++v) kept[v + 1] += kept[v];
  // Move each segment down to its new place (never above its old one: in order, in place).
  for (std::size_t v = 0; v < n; ++v) {
    const std::uint64_t len = kept[v + 1] - kept[v];
    if (kept[v] == offsets[v] || len == 0) continue;
    std::memmove(nbr.data() + kept[v], nbr.data() + offsets[v], len * sizeof(std::uint32_t));
    if (w != nullptr) std::memmove(w->data() + kept[v], w->data() + offsets[v], len * sizeof(double));
  }
  nbr.resize(kept[n]);
  if (w != nullptr) w->resize(kept[n]);
  offsets = std::move(kept);
}

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
  if (ids.size() > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
    throw Error("graphs of more than 2^32 vertices are not supported by the HDF5 graph format");
  auto index = [&](std::uint64_t id) {
    return static_cast<std::uint32_t>(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  };
  std::vector<std::vector<std::uint32_t>> pairs(1);
  pairs[0].resize(edges.size() * 2);
  for (std::size_t i = 0; i < edges.size(); ++i) {
    pairs[0][2 * i] = index(edges[i].src);
    pairs[0][2 * i + 1] = index(edges[i].dst);
  }
  return build_hdf5_graph(std::move(ids), pairs, nullptr, directed);
}

Hdf5Graph build_hdf5_graph(std::vector<std::uint64_t> ids, std::vector<std::vector<std::uint32_t>>& pairs,
                           std::vector<std::vector<double>>* weights, bool directed) {
  if (ids.size() > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
    throw Error("graphs of more than 2^32 vertices are not supported by the HDF5 graph format");
  GYRE_CHECK(weights == nullptr || weights->size() == pairs.size(), "build_hdf5_graph: weights and pairs differ");
  const std::size_t n = ids.size();
  Hdf5Graph g;
  g.directed = directed;
  g.weighted = weights != nullptr;
  g.ids = std::move(ids);
  // Counting sort of the arcs by key (the source for out-edges, the target for in-edges; an
  // undirected edge both ways, a self-loop once), then each list sorted and deduplicated.
  auto place = [&](bool by_src, bool both, std::vector<std::uint64_t>& offsets, std::vector<std::uint32_t>& nbr,
                   std::vector<double>& w) {
    const int key = by_src ? 0 : 1;
    offsets.assign(n + 1, 0);
    for (const auto& block : pairs) {
      GYRE_CHECK(block.size() % 2 == 0, "build_hdf5_graph: a block of pairs has an odd length");
      for (std::size_t i = 0; i < block.size(); i += 2) {
        ++offsets[block[i + key] + 1];
        if (both && block[i] != block[i + 1]) ++offsets[block[i + 1 - key] + 1];
      }
    }
    for (std::size_t v = 0; v < n; ++v) offsets[v + 1] += offsets[v];
    nbr.resize(offsets[n]);
    if (weights != nullptr) w.resize(offsets[n]);
    std::vector<std::uint64_t> at(offsets.begin(), offsets.end() - 1);
    for (std::size_t b = 0; b < pairs.size(); ++b) {
      const auto& block = pairs[b];
      const double* wb = weights != nullptr ? (*weights)[b].data() : nullptr;
      for (std::size_t i = 0; i < block.size(); i += 2) {
        const std::uint32_t k0 = block[i + key], k1 = block[i + 1 - key];
        std::uint64_t k = at[k0]++;
        nbr[k] = k1;
        if (wb != nullptr) w[k] = wb[i / 2];
        if (both && k0 != k1) {
          k = at[k1]++;
          nbr[k] = k0;
          if (wb != nullptr) w[k] = wb[i / 2];
        }
      }
      // Freed as placed: the CSR grows while the blocks shrink.
      std::vector<std::uint32_t>().swap(pairs[b]);
      if (weights != nullptr) std::vector<double>().swap((*weights)[b]);
    }
  };
  if (!directed) {
    place(false, true, g.in_offsets, g.in_sources, g.in_weights);
    sort_and_dedupe(g.in_offsets, g.in_sources, g.weighted ? &g.in_weights : nullptr);
    return g;
  }
  place(true, false, g.out_offsets, g.out_targets, g.out_weights);
  sort_and_dedupe(g.out_offsets, g.out_targets, g.weighted ? &g.out_weights : nullptr);
  // The in-edge CSR is the transpose: visiting sources in order lists every vertex's in-edges
  // sorted by source, and without duplicates since the out-lists have none.
  const std::uint64_t arcs = g.out_targets.size();
  g.in_offsets.assign(n + 1, 0);
  for (std::uint64_t e = 0; e < arcs; ++e) ++g.in_offsets[g.out_targets[e] + 1];
  for (std::size_t v = 0; v < n; ++v) g.in_offsets[v + 1] += g.in_offsets[v];
  g.in_sources.resize(arcs);
  if (g.weighted) g.in_weights.resize(arcs);
  std::vector<std::uint64_t> at(g.in_offsets.begin(), g.in_offsets.end() - 1);
  for (std::size_t u = 0; u < n; ++u)
    for (std::uint64_t e = g.out_offsets[u]; e < g.out_offsets[u + 1]; ++e) {
      const std::uint64_t k = at[g.out_targets[e]]++;
      g.in_sources[k] = static_cast<std::uint32_t>(u);
      if (g.weighted) g.in_weights[k] = g.out_weights[e];
    }
  return g;
}

void write_hdf5_graph(const std::string& path, const Hdf5Graph& g, const std::string& source) {
  const std::uint64_t n = g.ids.size(), m = g.edges();
  GYRE_CHECK(g.in_offsets.size() == n + 1, "write_hdf5_graph: /in/offsets must have N + 1 elements");
  std::size_t bytes = n * 8 + (n + 1) * 8 + m * 4 + (g.weighted ? m * 8 : 0);
  if (g.directed) bytes *= 2;
  Writer w(path, Writer::Target::kDirect, bytes);
  w.attribute("format", kFormat);
  w.attribute("version", kVersion);
  w.attribute("directed", std::uint64_t{g.directed ? 1u : 0u});
  w.attribute("weighted", std::uint64_t{g.weighted ? 1u : 0u});
  w.attribute("vertices", n);
  w.attribute("edges", m);
  w.attribute("source", source);
  w.group("/vertices");
  w.dataset("/vertices/ids", g.ids);
  w.group("/in");
  w.dataset("/in/offsets", g.in_offsets);
  w.dataset("/in/sources", g.in_sources);
  if (g.weighted) w.dataset("/in/weights", g.in_weights);
  if (g.directed) {
    GYRE_CHECK(g.out_offsets.size() == n + 1 && g.out_targets.size() == m, "write_hdf5_graph: bad out-edge CSR");
    w.group("/out");
    w.dataset("/out/offsets", g.out_offsets);
    w.dataset("/out/targets", g.out_targets);
    if (g.weighted) w.dataset("/out/weights", g.out_weights);
  }
  w.commit();
}

Hdf5GraphInfo read_hdf5_graph_info(const std::string& path) {
  detail::check_readable(path);
  const Reader r(path);
  return check_graph(r);
}

struct Hdf5GraphFile::Impl {
  explicit Impl(const std::string& p) : reader(p) { info = check_graph(reader); }
  Reader reader;
  Hdf5GraphInfo info;
};

Hdf5GraphFile::Hdf5GraphFile(const std::string& path) {
  detail::check_readable(path);
  impl_ = std::make_unique<Impl>(path);
}
Hdf5GraphFile::~Hdf5GraphFile() = default;
const std::string& Hdf5GraphFile::path() const { return impl_->reader.path(); }
const Hdf5GraphInfo& Hdf5GraphFile::info() const { return impl_->info; }
const char* Hdf5GraphFile::offsets_name(Csr csr) { return csr == Csr::kIn ? "/in/offsets" : "/out/offsets"; }
const char* Hdf5GraphFile::neighbours_name(Csr csr) { return csr == Csr::kIn ? "/in/sources" : "/out/targets"; }
const char* Hdf5GraphFile::weights_name(Csr csr) { return csr == Csr::kIn ? "/in/weights" : "/out/weights"; }
void Hdf5GraphFile::read_ids(std::uint64_t first, std::uint64_t n, std::uint64_t* out) const {
  impl_->reader.read("/vertices/ids", first, n, out);
}
void Hdf5GraphFile::read_offsets(Csr csr, std::uint64_t first, std::uint64_t n, std::uint64_t* out) const {
  impl_->reader.read(offsets_name(csr), first, n, out);
}
void Hdf5GraphFile::read_neighbours(Csr csr, std::uint64_t first, std::uint64_t n, std::uint32_t* out) const {
  impl_->reader.read(neighbours_name(csr), first, n, out);
}
void Hdf5GraphFile::read_weights(Csr csr, std::uint64_t first, std::uint64_t n, double* out) const {
  impl_->reader.read(weights_name(csr), first, n, out);
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
