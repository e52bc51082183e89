// Loading a graph into partitions. See graph.h.
#include "gyre/algorithms/graph.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <limits>
#include <tuple>
#include <type_traits>
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

// Original id -> local index of one partition (open addressing, at most half full): one probe
// per edge end where a binary search over the sorted ids took ~log2(n) cache misses.
class IdIndex {
 public:
  void build(const std::vector<std::uint64_t>& ids) {
    std::size_t n = 16;
    while (n < 2 * ids.size()) n *= 2;
    slots_.assign(n, Slot{0, kNone});
    mask_ = n - 1;
    shift_ = 64 - std::countr_zero(n);
    for (std::size_t i = 0; i < ids.size(); ++i)
      for (std::size_t s = slot(ids[i]);; s = (s + 1) & mask_)
        if (slots_[s].index == kNone) {
          slots_[s] = Slot{ids[i], static_cast<std::uint32_t>(i)};
          break;
        }
  }
  // The local index of `id`, or kNone.
  std::uint32_t find(std::uint64_t id) const {
    for (std::size_t s = slot(id);; s = (s + 1) & mask_) {
      const Slot& x = slots_[s];
      if (x.index == kNone || x.id == id) return x.index;
    }
  }
  void release() { std::vector<Slot>().swap(slots_); }
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

 private:
  struct Slot {
    std::uint64_t id;
    std::uint32_t index;
  };
  std::size_t slot(std::uint64_t id) const {
    return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 60;
};

// Per partition, built by the owners' operator once its ids are sorted; read by the operators of
// the same partition once every count arrived (which the owners' count happens before).
using IdIndexes = std::vector<IdIndex>;

std::uint32_t local_index(const IdIndex& index, std::uint64_t id, const char* role, const Edge& e,
                          const SourceFiles& files) {
  const std::uint32_t i = index.find(id);
  if (i == IdIndex::kNone) missing_vertex(files, id, role, e);
  return i;
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
           std::shared_ptr<const SourceFiles> files, std::shared_ptr<IdIndexes> index)
      : g_(std::move(g)), p_(c.partition), out_(out), unique_(unique), files_(std::move(files)),
        index_(std::move(index)) {}
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
    (*index_)[static_cast<std::size_t>(p_)].build(part.ids);
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
  std::shared_ptr<IdIndexes> index_;
  IdSet ids_;
};

// Input 0: records of type In; input 1: every partition's count. Holds its records until all
// counts arrived (then the partition's sorted ids and the dense-id offsets are known), passes
// them to resolve() from then on, and calls finish() when both inputs ended.
template <class In>
class AfterCountsOp : public detail::NodeRuntime {
 public:
  AfterCountsOp(const detail::OpContext& c, std::shared_ptr<Graph> g, std::shared_ptr<IdIndexes> index)
      : g_(std::move(g)), p_(c.partition), offsets_(g_->partitions()), indexes_(std::move(index)), records_(this),
        counts_(this) {}
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
    index_ = &(*indexes_)[static_cast<std::size_t>(p_)];
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
  const IdIndex* index_ = nullptr;  // the same
  std::shared_ptr<IdIndexes> indexes_;

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

// Weights travel in the records only when the load reads them.
struct NoWeight {};
template <bool W>
using WeightOf = std::conditional_t<W, double, NoWeight>;
template <bool W>
using InEdge = std::conditional_t<W, io::WeightedEdge, io::Edge>;
template <bool W>
WeightOf<W> weight_of(const InEdge<W>& e) {
  if constexpr (W) return e.weight;
  else return NoWeight{};
}

// An edge whose source is resolved: its dense id, and both original ids.
template <bool W>
struct ArcT {
  std::uint64_t dense_src;
  std::uint64_t src;
  std::uint64_t dst;
  [[no_unique_address]] WeightOf<W> weight;
};

// A kept arc on its way back to its source's partition (for the out-edge CSR).
template <bool W>
struct OutArc {
  std::uint64_t dst;          // original target id (the order of out-edges)
  std::uint32_t partition;    // the source's partition
  std::uint32_t src_local;    // the source's local index there
  std::uint32_t dense_dst;
  [[no_unique_address]] WeightOf<W> weight;
};

// A removed duplicate arc, to its source's partition (whose out-degree counted it).
struct Fix {
  std::uint32_t partition;
  std::uint32_t src_local;
};

// Keys that are partition numbers: key k goes to partition k (k < P).
struct ToPartition {
  template <class K>
  static std::size_t of(const K& k, std::size_t n) {
    return static_cast<std::size_t>(k) % n;
  }
};

template <class T>
class Batcher {
 public:
  Batcher(detail::Input<T>* out, std::size_t batch, std::uint64_t& records_out)
      : out_(out), batch_(batch), records_out_(&records_out) {}
  void push(const T& r) {
    buf_.push_back(r);
    if (buf_.size() >= batch_) flush();
  }
  void flush() {
    if (buf_.empty()) return;
    *records_out_ += buf_.size();
    out_->push(std::span<const T>(buf_));
    buf_.clear();
  }
  void end() {
    flush();
    out_->on_event(Event::end());
  }

 private:
  detail::Input<T>* out_;
  std::size_t batch_;
  std::uint64_t* records_out_;
  std::vector<T> buf_;
};

// Edges by source: resolves sources to dense ids and counts out-degrees; emits arcs.
template <bool W>
class OutResolveOp final : public AfterCountsOp<InEdge<W>> {
  using Base = AfterCountsOp<InEdge<W>>;

 public:
  OutResolveOp(const detail::OpContext& c, std::shared_ptr<Graph> g, detail::Input<ArcT<W>>* out,
               std::shared_ptr<const SourceFiles> files, std::shared_ptr<IdIndexes> index)
      : Base(c, std::move(g), std::move(index)), out_(out, detail::records_per_batch<ArcT<W>>(c.batch_bytes), this->records_out),
        files_(std::move(files)) {}

 private:
  void resolve(std::span<const InEdge<W>> in) override {
    const std::uint64_t first = this->offsets_.first[static_cast<std::size_t>(this->p_)];
    Partition& part = *this->part_;
    for (const InEdge<W>& e : in) {
      const std::uint32_t l = local_index(*this->index_, e.src, "source", Edge{e.src, e.dst}, *files_);
      ++part.out_degree[l];
      out_.push(ArcT<W>{first + l, e.src, e.dst, weight_of<W>(e)});
    }
    out_.flush();
  }
  void finish() override { out_.end(); }
  Batcher<ArcT<W>> out_;
  std::shared_ptr<const SourceFiles> files_;
};

// Arcs by target: builds the in-edge CSR. Each vertex's in-edges are ordered by the sources'
// original ids, so sums over them run in the same order whatever the number of partitions or
// ranks (results identical alone and under mpirun); a repeated source is dropped (the smallest
// weight stays) unless the load keeps duplicates. Then sends every kept arc (OutCsr) or every
// dropped one (Fix) to its source's partition.
template <bool W, bool OutCsr>
class InBuildOp final : public AfterCountsOp<ArcT<W>> {
  using Base = AfterCountsOp<ArcT<W>>;
  using Back = std::conditional_t<OutCsr, OutArc<W>, Fix>;

 public:
  InBuildOp(const detail::OpContext& c, std::shared_ptr<Graph> g, detail::Input<Back>* out, bool keep_duplicates,
            std::shared_ptr<const SourceFiles> files, std::shared_ptr<IdIndexes> index)
      : Base(c, std::move(g), std::move(index)), out_(out, detail::records_per_batch<Back>(c.batch_bytes), this->records_out),
        keep_duplicates_(keep_duplicates), files_(std::move(files)) {}

 private:
  struct Local {
    std::uint32_t dst;        // local target
    std::uint32_t dense_src;
    std::uint64_t src;        // original source id (the order of in-edges)
    [[no_unique_address]] WeightOf<W> weight;
  };
  void resolve(std::span<const ArcT<W>> in) override {
    GYRE_CHECK(this->offsets_.first.back() <= std::numeric_limits<std::uint32_t>::max(),
               "graphs of more than 4G vertices are not supported");
    const Partition& part = *this->part_;
    if (counts_.empty()) counts_.assign(part.ids.size() + 1, 0);
    for (const ArcT<W>& a : in) {
      const std::uint32_t l = local_index(*this->index_, a.dst, "target", Edge{a.src, a.dst}, *files_);
      if (chunks_.empty() || chunks_.back().size() == kChunk) chunks_.emplace_back().reserve(kChunk);
      chunks_.back().push_back(Local{l, static_cast<std::uint32_t>(a.dense_src), a.src, a.weight});
      ++counts_[l + 1];
    }
  }
  // Places the arcs by target (counting sort, chunks freed as they are placed), then orders each
  // vertex's in-edges by source id. At its peak this holds the arcs once plus 12 bytes per arc
  // (20 with weights), not a growing array of arcs and its reallocation copy.
  void finish() override {
    Partition& part = *this->part_;
    const auto& first = this->offsets_.first;
    const std::size_t n = part.ids.size();
    // The out-degree operator of this partition ended before (its arcs all came here first).
    (*this->indexes_)[static_cast<std::size_t>(this->p_)].release();
    if (counts_.empty()) counts_.assign(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) counts_[i + 1] += counts_[i];
    const std::uint64_t m = counts_[n];
    std::vector<std::uint64_t> src(m);
    part.in_sources.resize(m);
    if constexpr (W) part.in_weights.resize(m);
    std::vector<std::uint64_t> at(counts_.begin(), counts_.end() - 1);
    for (auto& chunk : chunks_) {
      for (const Local& a : chunk) {
        const std::uint64_t i = at[a.dst]++;
        src[i] = a.src;
        part.in_sources[i] = a.dense_src;
        if constexpr (W) part.in_weights[i] = a.weight;
      }
      std::vector<Local>().swap(chunk);
    }
    chunks_.clear();
    std::vector<std::uint64_t>().swap(at);
    // Per vertex: sort by (source id, weight), drop repeated sources, compact in place.
    struct Entry {
      std::uint64_t src;
      double weight;
      std::uint32_t dense;
      bool operator<(const Entry& o) const { return src != o.src ? src < o.src : weight < o.weight; }
    };
    std::vector<Entry> seg;
    std::uint64_t w = 0;  // write position
    for (std::size_t v = 0; v < n; ++v) {
      const std::uint64_t b = counts_[v], e = counts_[v + 1];
      counts_[v] = w;
      if (e - b == 1) {
        src[w] = src[b];
        part.in_sources[w] = part.in_sources[b];
        if constexpr (W) part.in_weights[w] = part.in_weights[b];
        ++w;
        continue;
      }
      seg.clear();
      for (std::uint64_t i = b; i < e; ++i) {
        double wt = 0;
        if constexpr (W) wt = part.in_weights[i];
        seg.push_back(Entry{src[i], wt, part.in_sources[i]});
      }
      std::sort(seg.begin(), seg.end());
      for (std::size_t k = 0; k < seg.size(); ++k) {
        if (!keep_duplicates_ && k > 0 && seg[k].src == seg[k - 1].src) {
          if constexpr (!OutCsr) send_back_fix(seg[k].dense, first);
          continue;
        }
        src[w] = seg[k].src;
        part.in_sources[w] = seg[k].dense;
        if constexpr (W) part.in_weights[w] = seg[k].weight;
        ++w;
      }
    }
    counts_[n] = w;
    if (w < m) {
      part.in_sources.resize(w);
      part.in_sources.shrink_to_fit();
      if constexpr (W) {
        part.in_weights.resize(w);
        part.in_weights.shrink_to_fit();
      }
    }
    // Undirected: the neighbours are the in-edges, so the degree is the in-degree.
    if (!this->g_->directed && !keep_duplicates_)
      for (std::size_t v = 0; v < n; ++v) part.out_degree[v] = static_cast<std::uint32_t>(counts_[v + 1] - counts_[v]);
    part.in_offsets = std::move(counts_);
    part.first = first[static_cast<std::size_t>(this->p_)];
    this->g_->set_first(first);
    if constexpr (OutCsr) {
      for (std::size_t v = 0; v < n; ++v)
        for (std::uint64_t i = part.in_offsets[v]; i < part.in_offsets[v + 1]; ++i) {
          const std::uint32_t s = part.in_sources[i];
          const auto q = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), s) - first.begin() - 1);
          OutArc<W> o{part.ids[v], static_cast<std::uint32_t>(q), static_cast<std::uint32_t>(s - first[q]),
                      static_cast<std::uint32_t>(part.first + v), {}};
          if constexpr (W) o.weight = part.in_weights[i];
          out_.push(o);
        }
    }
    out_.end();
  }
  void send_back_fix(std::uint32_t dense, const std::vector<std::uint64_t>& first) {
    const auto q = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), dense) - first.begin() - 1);
    out_.push(Fix{static_cast<std::uint32_t>(q), static_cast<std::uint32_t>(dense - first[q])});
  }
  static constexpr std::size_t kChunk = (std::size_t{32} << 20) / sizeof(Local);  // one mmap each
  Batcher<Back> out_;
  bool keep_duplicates_;
  std::shared_ptr<const SourceFiles> files_;
  std::vector<std::vector<Local>> chunks_;
  std::vector<std::uint64_t> counts_;  // in-degree of local vertex i at i + 1, then offsets
};

// Removed duplicates, at their source's partition: a directed graph's out-degree counted them.
class FixOp final : public detail::NodeRuntime, public detail::Input<Fix> {
 public:
  FixOp(const detail::OpContext& c, std::shared_ptr<Graph> g) : g_(std::move(g)), p_(c.partition) {}
  detail::PortBase* port(int) override { return this; }
  void push(std::span<const Fix> in) override {
    records_in += in.size();
    if (!g_->directed) return;  // the in-build set the degrees
    Partition& part = *g_->part(p_);
    for (const Fix& f : in) --part.out_degree[f.src_local];
  }
  void on_event(const Event&) override {}

 private:
  std::shared_ptr<Graph> g_;
  int p_;
};

// Kept arcs at their source's partition: the out-edge CSR, each vertex's out-edges in the order
// of the targets' original ids; the out-degrees are its row lengths.
template <bool W>
class OutBuildOp final : public detail::NodeRuntime, public detail::Input<OutArc<W>> {
 public:
  OutBuildOp(const detail::OpContext& c, std::shared_ptr<Graph> g) : g_(std::move(g)), p_(c.partition) {}
  detail::PortBase* port(int) override { return this; }
  void push(std::span<const OutArc<W>> in) override {
    records_in += in.size();
    for (const OutArc<W>& a : in) {
      if (chunks_.empty() || chunks_.back().size() == kChunk) chunks_.emplace_back().reserve(kChunk);
      chunks_.back().push_back(a);
    }
  }
  void on_event(const Event& event) override {
    if (event.kind != EventKind::kEnd) return;
    Partition& part = *g_->part(p_);
    const std::size_t n = part.ids.size();
    std::vector<std::uint64_t> off(n + 1, 0);
    for (const auto& chunk : chunks_)
      for (const OutArc<W>& a : chunk) ++off[a.src_local + 1];
    for (std::size_t i = 0; i < n; ++i) off[i + 1] += off[i];
    const std::uint64_t m = off[n];
    std::vector<std::uint64_t> at(off.begin(), off.end() - 1);
    std::vector<std::uint64_t> dst(m);
    part.out_targets.resize(m);
    if constexpr (W) part.out_weights.resize(m);
    for (auto& chunk : chunks_) {
      for (const OutArc<W>& a : chunk) {
        const std::uint64_t i = at[a.src_local]++;
        dst[i] = a.dst;
        part.out_targets[i] = a.dense_dst;
        if constexpr (W) part.out_weights[i] = a.weight;
      }
      std::vector<OutArc<W>>().swap(chunk);
    }
    chunks_.clear();
    std::vector<std::tuple<std::uint64_t, std::uint32_t, double>> seg;
    for (std::size_t v = 0; v < n; ++v) {
      const std::uint64_t b = off[v], e = off[v + 1];
      part.out_degree[v] = static_cast<std::uint32_t>(e - b);
      if (e - b < 2) continue;
      seg.clear();
      for (std::uint64_t i = b; i < e; ++i) {
        double wt = 0;
        if constexpr (W) wt = part.out_weights[i];
        seg.emplace_back(dst[i], part.out_targets[i], wt);
      }
      std::sort(seg.begin(), seg.end());
      for (std::uint64_t i = b; i < e; ++i) {
        part.out_targets[i] = std::get<1>(seg[i - b]);
        if constexpr (W) part.out_weights[i] = std::get<2>(seg[i - b]);
      }
    }
    part.out_offsets = std::move(off);
  }

 private:
  static constexpr std::size_t kChunk = (std::size_t{32} << 20) / sizeof(OutArc<W>);
  std::shared_ptr<Graph> g_;
  int p_;
  std::vector<std::vector<OutArc<W>>> chunks_;
};

// A graph-loading operator: made by make(OpContext, outputs) as a detail::NodeRuntime.
template <class Make>
detail::NodeFactory factory(Make make) {
  return [make](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs)
             -> std::unique_ptr<detail::NodeRuntime> { return make(c, outs); };
}

}  // namespace

namespace {

// What a load job builds besides the in-edge CSR.
struct Shape {
  bool directed = true;
  bool out_edges = false;
  bool keep_duplicates = false;
};

// The nodes whose metrics count the graph's arcs.
struct LoadNodes {
  int arcs = -1;  // arcs before duplicate removal (records out)
  int back = -1;  // removed duplicates (Fix) or kept arcs (out-edge CSR), records in
  bool back_is_kept = false;
};

// Adds the loading operators for `edges` (and `ids`, if a vertex file gives them).
template <bool W>
LoadNodes add_load(Environment& env, const std::shared_ptr<Graph>& g, Stream<InEdge<W>> edges,
                   std::optional<Stream<std::uint64_t>> vertex_ids, const Shape& shape,
                   std::shared_ptr<const SourceFiles> files) {
  g->directed = shape.directed;
  g->weighted = W;
  g->has_out_edges = !shape.directed || shape.out_edges;
  const bool unique = vertex_ids.has_value();
  if (!shape.directed) {
    edges = edges.template flat_map<InEdge<W>>([](const InEdge<W>& e, Emit<InEdge<W>>& emit) {
      emit(e);
      if (e.src != e.dst) {
        InEdge<W> r = e;
        std::swap(r.src, r.dst);
        emit(r);
      }
    });
  }
  Stream<std::uint64_t> ids = vertex_ids ? *vertex_ids
                                         : edges.template flat_map<std::uint64_t>(
                                               [](const InEdge<W>& e, Emit<std::uint64_t>& emit) {
                                                 emit(e.src);
                                                 emit(e.dst);
                                               });
  auto identity = [](const std::uint64_t& v) { return v; };
  auto by_src = [](const InEdge<W>& e) { return e.src; };
  auto by_dst = [](const ArcT<W>& a) { return a.dst; };

  OperatorBuilder owners(env, "graph: vertex owners");
  owners.keyed();
  owners.add_input(OperatorBuilder::key_ref(ids, identity, Partitioning::kAuto), 0, false);
  owners.output<Count>();
  auto index = std::make_shared<IdIndexes>(static_cast<std::size_t>(g->partitions()));
  owners.factory(factory([g, unique, files, index](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
    return std::make_unique<OwnersOp>(c, g, static_cast<detail::Input<Count>*>(outs[0]), unique, files, index);
  }));
  const Stream<Count> counts = owners.stream<Count>();

  OperatorBuilder out_resolve(env, "graph: out-degrees");
  out_resolve.add_input(OperatorBuilder::key_ref(edges, by_src, Partitioning::kAuto), 0, false);
  out_resolve.input(counts, Partitioning::kBroadcast);
  out_resolve.output<ArcT<W>>();
  out_resolve.factory(factory([g, files, index](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
    return std::make_unique<OutResolveOp<W>>(c, g, static_cast<detail::Input<ArcT<W>>*>(outs[0]), files, index);
  }));
  LoadNodes nodes;
  nodes.arcs = out_resolve.id();

  auto by_partition = [](const auto& r) { return static_cast<std::uint64_t>(r.partition); };
  const bool keep = shape.keep_duplicates;
  if (shape.directed && shape.out_edges) {
    OperatorBuilder in_build(env, "graph: in-edge CSR");
    in_build.input_by_key(out_resolve.stream<ArcT<W>>(), by_dst);  // kAuto: a fresh stream
    in_build.input(counts, Partitioning::kBroadcast);
    in_build.output<OutArc<W>>();
    in_build.factory(factory([g, keep, files, index](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
      return std::make_unique<InBuildOp<W, true>>(c, g, static_cast<detail::Input<OutArc<W>>*>(outs[0]), keep, files,
                                                  index);
    }));
    OperatorBuilder out_build(env, "graph: out-edge CSR");
    out_build.sink();
    out_build.input_by_key<OutArc<W>, decltype(by_partition), ToPartition>(in_build.stream<OutArc<W>>(), by_partition);
    out_build.factory(factory([g](const detail::OpContext& c, const std::vector<detail::PortBase*>&) {
      return std::make_unique<OutBuildOp<W>>(c, g);
    }));
    nodes.back = out_build.id();
    nodes.back_is_kept = true;
  } else {
    OperatorBuilder in_build(env, "graph: in-edge CSR");
    in_build.input_by_key(out_resolve.stream<ArcT<W>>(), by_dst);
    in_build.input(counts, Partitioning::kBroadcast);
    in_build.output<Fix>();
    in_build.factory(factory([g, keep, files, index](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) {
      return std::make_unique<InBuildOp<W, false>>(c, g, static_cast<detail::Input<Fix>*>(outs[0]), keep, files, index);
    }));
    OperatorBuilder fix(env, "graph: out-degrees of removed duplicates");
    fix.sink();
    fix.input_by_key<Fix, decltype(by_partition), ToPartition>(in_build.stream<Fix>(), by_partition);
    fix.factory(factory([g](const detail::OpContext& c, const std::vector<detail::PortBase*>&) {
      return std::make_unique<FixOp>(c, g);
    }));
    nodes.back = fix.id();
  }
  return nodes;
}

// Adds the loading operators and runs the job.
template <bool W>
void build(Environment& env, const std::shared_ptr<Graph>& g, Stream<InEdge<W>> edges,
           std::optional<Stream<std::uint64_t>> vertex_ids, const Shape& shape,
           std::shared_ptr<const SourceFiles> files) {
  const LoadNodes nodes = add_load<W>(env, g, std::move(edges), std::move(vertex_ids), shape, std::move(files));
  g->load_metrics = env.run();
  std::uint64_t arcs = 0, back = 0;
  for (const auto& op : g->load_metrics.operators) {
    if (op.node == nodes.arcs) arcs = op.records_out;
    if (op.node == nodes.back) back = op.records_in;
  }
  g->edges = nodes.back_is_kept ? back : arcs - back;
  GYRE_CHECK(!g->first.empty(), "graph load: no partition boundaries on this rank");
  g->vertices = g->first.back();
}

// A graph file as streams: its edges, its vertex ids (if the format lists them, isolated
// vertices included), and whether it is directed.
template <bool W>
struct Input {
  Stream<InEdge<W>> edges;
  std::optional<Stream<std::uint64_t>> ids;
  bool directed;
  std::shared_ptr<const SourceFiles> files = std::make_shared<const SourceFiles>();
};

template <bool W>
Stream<InEdge<W>> edge_list(Environment& env, const std::string& path) {
  if constexpr (W) return io::read_weighted_edge_list(env, path);
  else return io::read_edge_list(env, path);
}

template <bool W>
Input<W> open_input(Environment& env, const LoadOptions& opts) {
  const io::GraphFormat format = opts.format ? *opts.format : io::guess_format(opts.path);
  if (format == io::GraphFormat::kHdf5)  // load() and explain_load() take the in-place path
    throw PlanError("'" + opts.path + "': an HDF5 graph is loaded in place, not by a dataflow job");
  if (format == io::GraphFormat::kGraphalytics) {
    const auto props = io::read_properties(opts.path);
    return Input<W>{edge_list<W>(env, props.edge_file), io::read_vertex_file(env, props.vertex_file),
                    opts.directed.value_or(props.directed),
                    std::make_shared<const SourceFiles>(SourceFiles{props.edge_file, props.vertex_file})};
  }
  return Input<W>{edge_list<W>(env, opts.path), std::nullopt, opts.directed.value_or(true)};
}

std::shared_ptr<Graph> make_graph(const Environment& env) {
  const int parts = env.default_parallelism();
  if (parts < env.num_ranks())  // the same on every rank: all refuse alike
    throw PlanError("graph load with " + std::to_string(parts) + " partitions on " + std::to_string(env.num_ranks()) +
                    " ranks: use at least one partition per rank");
  return std::make_shared<Graph>(parts);
}

Shape shape_of(const LoadOptions& opts, bool directed) {
  return Shape{directed, opts.out_edges, opts.keep_duplicates};
}

template <bool W>
std::shared_ptr<Graph> load_file(const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  const auto t0 = std::chrono::steady_clock::now();
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  Input<W> in = open_input<W>(env, opts);
  build<W>(env, g, std::move(in.edges), std::move(in.ids), shape_of(opts, in.directed), std::move(in.files));
  g->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

template <bool W>
std::shared_ptr<Graph> load_memory(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                   const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  const auto t0 = std::chrono::steady_clock::now();
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  auto stream = env.from_collection(std::move(edges)).map([](const MemoryEdge& e) {
    if constexpr (W) return io::WeightedEdge{e.src, e.dst, e.weight};
    else return Edge{e.src, e.dst};
  });
  build<W>(env, g, stream, std::nullopt, shape_of(opts, directed), std::make_shared<const SourceFiles>());
  g->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

}  // namespace

std::shared_ptr<Graph> load(const LoadOptions& opts, const JobConfig& config,
                            Cluster cluster) {
  if ((opts.format ? *opts.format : io::guess_format(opts.path)) == io::GraphFormat::kHdf5)
    return load_hdf5(opts, config, std::move(cluster));  // in place: graph_hdf5.cc
  return opts.weighted ? load_file<true>(opts, config, std::move(cluster))
                       : load_file<false>(opts, config, std::move(cluster));
}

std::shared_ptr<Graph> load_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                  const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  return opts.weighted ? load_memory<true>(std::move(edges), directed, opts, config, std::move(cluster))
                       : load_memory<false>(std::move(edges), directed, opts, config, std::move(cluster));
}

std::shared_ptr<Graph> load_edges(std::shared_ptr<const std::vector<MemoryEdge>> edges, bool directed,
                                  const JobConfig& config, Cluster cluster) {
  return load_edges(std::move(edges), directed, LoadOptions{}, config, std::move(cluster));
}

std::string explain_load(const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  if ((opts.format ? *opts.format : io::guess_format(opts.path)) == io::GraphFormat::kHdf5) {
    // No dataflow job: each rank reads its partitions' slices of the CSRs (graph_hdf5.cc).
    const auto info = io::read_hdf5_graph_info(opts.path);
    const int parallelism = Environment(config, cluster).default_parallelism();
    return "(no dataflow job) each rank reads its partitions' slices of '" + opts.path +
           "' in place (gyre HDF5 graph format 2): " + std::to_string(info.vertices) + " vertices, " +
           std::to_string(info.edges) + " edges, " + (info.directed ? "directed" : "undirected") +
           (info.directed && opts.directed && !*opts.directed ? " (read undirected: both directions)" : "") +
           (info.weighted ? ", weighted" : "") + "; " + std::to_string(parallelism) +
           " partitions, ranges of dense ids balanced by vertices + edges\n";
  }
  Environment env(config, std::move(cluster));
  auto g = make_graph(env);
  if (opts.weighted) {
    Input<true> in = open_input<true>(env, opts);
    add_load<true>(env, g, std::move(in.edges), std::move(in.ids), shape_of(opts, in.directed), std::move(in.files));
  } else {
    Input<false> in = open_input<false>(env, opts);
    add_load<false>(env, g, std::move(in.edges), std::move(in.ids), shape_of(opts, in.directed), std::move(in.files));
  }
  return env.explain();
}

// convert(): graph_hdf5.cc.

}  // namespace gyre::graph
