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

namespace gyre::io {
namespace {

constexpr const char* kFormat = "gyre-graph";
constexpr std::uint64_t kVersion = 1;

// HDF5 prints its error stack to stderr by default; gyre reports errors itself. The setting is
// per thread in a thread-safe HDF5, so every entry point calls this.
void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// An HDF5 identifier, closed with its close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    close_ = o.close_;
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

template <class T>
hid_t native() {
  if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_NATIVE_UINT32;
  else return H5T_NATIVE_DOUBLE;
}
template <class T>
hid_t stored() {
  if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_STD_U64LE;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_STD_U32LE;
  else return H5T_IEEE_F64LE;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw Error("'" + path + "': " + what); }

// ---- writing ----

class Writer {
 public:
  explicit Writer(std::string path) : path_(std::move(path)) {
    static std::atomic<int> counter{0};
    tmp_ = path_ + ".gyre-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    quiet();
    file_ = Handle(H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file_.valid()) fail(path_, "cannot create the HDF5 file (temporary '" + tmp_ + "')");
  }
  ~Writer() {
    if (!committed_) {
      file_.reset();
      std::remove(tmp_.c_str());
    }
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  hid_t file() const { return file_.get(); }

  void group(const char* name) {
    Handle g(H5Gcreate2(file_.get(), name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.valid()) fail(path_, std::string("cannot create group ") + name);
  }

  void attribute(const char* name, std::string value) {
    if (value.empty()) value.push_back('\0');  // HDF5 strings have at least one byte
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), value.size());
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    put_attribute(name, type.get(), type.get(), value.data());
  }
  void attribute(const char* name, std::uint64_t value) { put_attribute(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value); }

  template <class T>
  void dataset(const char* name, const std::vector<T>& data) {
    const hsize_t n = data.size();
    Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    Handle ds(H5Dcreate2(file_.get(), name, stored<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail(path_, std::string("cannot create dataset ") + name);
    if (n > 0 && H5Dwrite(ds.get(), native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
      fail(path_, std::string("cannot write dataset ") + name + " (disk full?)");
  }

  // Closes the file, makes it durable, and renames it into place.
  void commit() {
    if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail(path_, "cannot flush the HDF5 file");
    file_.reset();
    const int fd = ::open(tmp_.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      fail(path_, "cannot sync the written file");
    }
    ::close(fd);
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, "cannot move '" + tmp_ + "' into place");
    committed_ = true;
  }

 private:
  void put_attribute(const char* name, hid_t type, hid_t mem, const void* data) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle a(H5Acreate2(file_.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!a.valid() || H5Awrite(a.get(), mem, data) < 0)
      fail(path_, std::string("cannot write attribute ") + name);
  }

  std::string path_;
  std::string tmp_;
  Handle file_;
  bool committed_ = false;
};

// ---- reading ----

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {
    quiet();
    if (::access(path_.c_str(), R_OK) != 0) fail(path_, "cannot read the file");
    if (H5Fis_hdf5(path_.c_str()) <= 0) fail(path_, "not an HDF5 file");
    file_ = Handle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file_.valid()) fail(path_, "cannot open the HDF5 file");
  }

  const std::string& path() const { return path_; }

  bool has_attribute(const char* name) const { return H5Aexists(file_.get(), name) > 0; }

  std::string string_attribute(const char* name) const {
    Handle a = open_attribute(name);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
      fail(path_, std::string("attribute '") + name + "' is not a fixed-length string");
    const std::size_t size = H5Tget_size(type.get());
    std::string value(size, '\0');
    if (H5Aread(a.get(), type.get(), value.data()) < 0) fail(path_, std::string("cannot read attribute '") + name + "'");
    value.resize(std::min(value.size(), value.find('\0')));
    return value;
  }

  std::uint64_t integer_attribute(const char* name) const {
    Handle a = open_attribute(name);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_INTEGER) fail(path_, std::string("attribute '") + name + "' is not an integer");
    std::uint64_t v = 0;
    if (H5Aread(a.get(), H5T_NATIVE_UINT64, &v) < 0) fail(path_, std::string("cannot read attribute '") + name + "'");
    return v;
  }

  // The length of a one-dimensional dataset.
  std::uint64_t length(const char* name) const {
    Handle ds = open(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(path_, std::string("dataset ") + name + " is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    return n;
  }

  // Elements [first, first + count) of a one-dimensional dataset, converted to T.
  template <class T>
  void read(const char* name, std::uint64_t first, std::uint64_t count, T* out) const {
    if (count == 0) return;
    Handle ds = open(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const hsize_t start = first, n = count;
    Handle mem(H5Screate_simple(1, &n, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0 ||
        H5Dread(ds.get(), native<T>(), mem.get(), space.get(), H5P_DEFAULT, out) < 0)
      fail(path_, std::string("cannot read dataset ") + name + " [" + std::to_string(first) + ", " +
                      std::to_string(first + count) + ")");
  }
  template <class T>
  std::vector<T> read_all(const char* name) const {
    std::vector<T> v(length(name));
    read(name, 0, v.size(), v.data());
    return v;
  }

 private:
  Handle open_attribute(const char* name) const {
    if (H5Aexists(file_.get(), name) <= 0) fail(path_, std::string("attribute '") + name + "' is missing");
    Handle a(H5Aopen(file_.get(), name, H5P_DEFAULT), H5Aclose);
    if (!a.valid()) fail(path_, std::string("cannot open attribute '") + name + "'");
    return a;
  }
  Handle open(const char* name) const {
    // H5Lexists needs every group on the way to exist: check "/a", then "/a/b".
    const std::string full(name);
    for (std::size_t slash = full.find('/', 1);; slash = full.find('/', slash + 1)) {
      const std::string prefix = full.substr(0, slash);
      if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) fail(path_, "dataset " + full + " is missing");
      if (slash == std::string::npos) break;
    }
    Handle ds(H5Dopen2(file_.get(), name, H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail(path_, std::string("cannot open dataset ") + name);
    return ds;
  }

  std::string path_;
  Handle file_;
};

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
  info.directed = r.integer_attribute("directed") != 0;
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

// Partition p's slice of a graph file: its vertices [lo, hi), their offsets, and the id map.
struct Slice {
  explicit Slice(const std::string& path, int partition, int parallelism) : reader(path) {
    info = check_graph(reader);
    std::tie(lo, hi) = detail::split_range(info.vertices, partition, parallelism);
    ids = reader.read_all<std::uint64_t>("/vertices/ids");
    offsets.resize(hi - lo + 1);
    reader.read("/edges/offsets", lo, offsets.size(), offsets.data());
    for (std::size_t i = 0; i + 1 < offsets.size(); ++i)
      if (offsets[i] > offsets[i + 1] || offsets[i + 1] > info.edges)
        fail(path, "dataset /edges/offsets: element " + std::to_string(lo + i + 1) + " (" + std::to_string(offsets[i + 1]) +
                       ") is smaller than the one before it or beyond the " + std::to_string(info.edges) + " edges");
    if (lo == 0 && offsets[0] != 0) fail(path, "dataset /edges/offsets: element 0 is not 0");
    if (hi == info.vertices && offsets.back() != info.edges)
      fail(path, "dataset /edges/offsets: the last element is not the number of edges");
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
      const std::uint64_t n = std::min<std::uint64_t>(cap_, end - edge_);
      targets_.resize(n);
      s.reader.read("/edges/targets", edge_, n, targets_.data());
      batch_.clear();
      for (std::uint64_t i = 0; i < n; ++i, ++edge_) {
        while (s.offsets[vertex_ + 1] <= edge_) ++vertex_;
        const std::uint32_t t = targets_[i];
        if (t >= s.info.vertices)
          fail(path_, "dataset /edges/targets: element " + std::to_string(edge_) + " is " + std::to_string(t) +
                          ", beyond the " + std::to_string(s.info.vertices) + " vertices");
        batch_.push_back(Edge{s.ids[s.lo + vertex_], s.ids[t]});
      }
      emit(std::span<const Edge>(batch_));
    }
    if (edge_ < end) return detail::SourceStatus::kMore;
    out_->end();
    return detail::SourceStatus::kDone;
  }

 private:
  std::string path_;
  int partition_;
  int parallelism_;
  std::unique_ptr<Slice> slice_;
  std::uint64_t edge_ = 0;
  std::uint64_t vertex_ = 0;  // index into the slice
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
      ids_.resize(end_ - pos_);
      r.read("/vertices/ids", pos_, ids_.size(), ids_.data());
      first_ = pos_;
    }
    for (std::size_t k = 0; k < max_batches && pos_ < end_; ++k) {
      const std::uint64_t n = std::min<std::uint64_t>(cap_, end_ - pos_);
      emit(std::span<const std::uint64_t>(ids_.data() + (pos_ - first_), n));
      pos_ += n;
    }
    if (pos_ < end_) return detail::SourceStatus::kMore;
    out_->end();
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
  detail::NodeSpec spec;
  spec.kind = "source: " + what + " '" + path + "'";
  spec.name = spec.kind;
  spec.parallelism = env.default_parallelism();
  spec.bounded = true;
  spec.make = [path, make](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
    return make(c, path, static_cast<detail::Input<T>*>(out));
  };
  spec.validate = [path] { read_hdf5_graph_info(path); };
  detail::set_output_type<T>(spec);
  return Stream<T>(&env, env.add_node(std::move(spec)));
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
