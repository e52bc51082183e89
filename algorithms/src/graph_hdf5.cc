// gyre's HDF5 graphs (format: gyre/io/hdf5_graph.h): loading them in place, and `convert`.
//
// Loading: dense ids are the file's vertex indexes, so partitions are ranges of dense ids. Their
// boundaries balance vertices + in-edges (like Gemini's chunking), found by binary search on
// /in/offsets; every rank computes the same ones. Each rank then reads, for the partitions it
// owns (p % ranks), the hyperslabs of ids, offsets, neighbours and weights straight into the
// partition's vectors: no job, no records, no copy of the edges. Every slice is checked (ids
// increasing, offsets in order, neighbours in range and increasing) and the ranks agree on the
// first error, so all fail alike.
//
// Converting: rank 0 reads the text with all its threads (blocks of the file parsed in parallel
// with std::from_chars), maps ids to dense ids (a direct table when the ids are small integers,
// else a parallel sort), builds the CSR(s) by counting sorts and writes the file straight to
// disk (temporary + rename). Other ranks wait: on one machine the threads are as fast as ranks
// would be, without moving the edges between processes.
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>
#include <tbb/task_arena.h>

#include "gyre/algorithms/graph.h"
#include "gyre/core/error.h"
#include "gyre/core/runtime.h"
#include "gyre/io/graph_files.h"
#include "gyre/io/hdf5_graph.h"

namespace gyre::graph {
namespace {

using Csr = io::Hdf5GraphFile::Csr;

std::string num(std::uint64_t v) { return std::to_string(v); }

[[noreturn]] void bad(const io::Hdf5GraphFile& f, const std::string& what) { throw Error("'" + f.path() + "': " + what); }

// Threads for this rank's parallel loops: the job's slots.
int threads_of(const JobConfig& resolved) { return std::max(1, resolved.slots); }

// Partition boundaries: first[k] = the first vertex v with v + in_offsets[v] >= k (N + M) / P.
std::vector<std::uint64_t> boundaries(const io::Hdf5GraphFile& f, int parts) {
  const std::uint64_t n = f.info().vertices, m = f.info().edges;
  std::vector<std::uint64_t> first(static_cast<std::size_t>(parts) + 1, 0);
  first.back() = n;
  auto cost = [&](std::uint64_t v) {
    std::uint64_t off = 0;
    f.read_offsets(Csr::kIn, v, 1, &off);
    return v + off;
  };
  const std::uint64_t total = n + m, P = static_cast<std::uint64_t>(parts);
  for (int k = 1; k < parts; ++k) {
    const auto K = static_cast<std::uint64_t>(k);
    const std::uint64_t target = total / P * K + ((total % P) * K + P - 1) / P;  // ceil(total k / P)
    std::uint64_t lo = first[static_cast<std::size_t>(k) - 1], hi = n;  // answer in [lo, hi]
    while (lo < hi) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      if (cost(mid) >= target) hi = mid;
      else lo = mid + 1;
    }
    first[static_cast<std::size_t>(k)] = lo;
  }
  return first;
}

// Reads offsets [lo, hi] of a CSR, checks them and rebases them to 0.
std::uint64_t read_offsets(const io::Hdf5GraphFile& f, Csr csr, std::uint64_t lo, std::uint64_t hi,
                           std::vector<std::uint64_t>& out) {
  const char* name = io::Hdf5GraphFile::offsets_name(csr);
  const std::uint64_t n = f.info().vertices, m = f.info().edges;
  out.resize(hi - lo + 1);
  f.read_offsets(csr, lo, out.size(), out.data());
  if (lo == 0 && out[0] != 0) bad(f, std::string(name) + "[0] = " + num(out[0]) + ", expected 0");
  if (hi == n && out.back() != m)
    bad(f, std::string(name) + "[" + num(n) + "] = " + num(out.back()) + ", expected the number of edges " + num(m));
  for (std::size_t i = 0; i + 1 < out.size(); ++i)
    if (out[i + 1] < out[i])
      bad(f, std::string(name) + "[" + num(lo + i + 1) + "] = " + num(out[i + 1]) + " is less than [" + num(lo + i) +
                 "] = " + num(out[i]) + " (offsets must not decrease)");
    else if (out[i + 1] > m)
      bad(f, std::string(name) + "[" + num(lo + i + 1) + "] = " + num(out[i + 1]) + " is beyond the " + num(m) + " edges");
  const std::uint64_t base = out[0];
  if (base != 0)
    for (auto& o : out) o -= base;
  return base;
}

// Reads a CSR's neighbours [base, base + offsets.back()) and checks them: dense ids below N,
// strictly increasing within each vertex (sorted, no duplicates).
void read_neighbours(const io::Hdf5GraphFile& f, Csr csr, std::uint64_t lo, std::uint64_t base,
                     const std::vector<std::uint64_t>& offsets, std::vector<std::uint32_t>& out) {
  const char* name = io::Hdf5GraphFile::neighbours_name(csr);
  out.resize(offsets.back());
  f.read_neighbours(csr, base, out.size(), out.data());
  const std::uint64_t n = f.info().vertices;
  const std::size_t verts = offsets.size() - 1;
  std::atomic<std::uint64_t> bad_at{std::numeric_limits<std::uint64_t>::max()};
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, verts, 4096), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t v = r.begin(); v < r.end(); ++v)
      for (std::uint64_t e = offsets[v]; e < offsets[v + 1]; ++e)
        if (out[e] >= n || (e > offsets[v] && out[e] <= out[e - 1])) {
          std::uint64_t cur = bad_at.load();
          while (e < cur && !bad_at.compare_exchange_weak(cur, e)) {
          }
          return;
        }
  });
  const std::uint64_t e = bad_at.load();
  if (e == std::numeric_limits<std::uint64_t>::max()) return;
  const std::uint64_t v = static_cast<std::uint64_t>(std::upper_bound(offsets.begin(), offsets.end(), e) - offsets.begin()) - 1;
  if (out[e] >= n)
    bad(f, std::string(name) + "[" + num(base + e) + "] = " + num(out[e]) + " is not a vertex index (there are " +
               num(n) + " vertices)");
  bad(f, std::string(name) + "[" + num(base + e) + "] = " + num(out[e]) + " is not greater than the one before it (" +
             num(out[e - 1]) + "): vertex " + num(lo + v) + "'s list must be sorted without duplicates");
}

void read_weights(const io::Hdf5GraphFile& f, Csr csr, std::uint64_t base, std::uint64_t count, std::vector<double>& out) {
  out.resize(count);
  f.read_weights(csr, base, count, out.data());
  for (std::uint64_t e = 0; e < count; ++e)
    if (!(out[e] >= 0))  // NaN too
      bad(f, std::string(io::Hdf5GraphFile::weights_name(csr)) + "[" + num(base + e) + "] = " +
                 std::to_string(out[e]) + ": weights must be numbers >= 0");
}

// A directed file loaded undirected (weakly connected components): each vertex's neighbours are
// the union of its in- and out-neighbours (both lists sorted: merged), a weight the smaller of
// the two directions'.
void merge_directions(Partition& part, const std::vector<std::uint64_t>& out_offsets,
                      const std::vector<std::uint32_t>& out_targets, const std::vector<double>& out_weights,
                      bool weighted) {
  const std::size_t n = part.ids.size();
  const auto& io = part.in_offsets;
  const auto& is = part.in_sources;
  std::vector<std::uint64_t> off(n + 1, 0);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 4096), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t v = r.begin(); v < r.end(); ++v) {
      std::uint64_t a = io[v], b = out_offsets[v], k = 0;
      while (a < io[v + 1] || b < out_offsets[v + 1]) {
        if (b == out_offsets[v + 1] || (a < io[v + 1] && is[a] < out_targets[b])) ++a;
        else if (a == io[v + 1] || out_targets[b] < is[a]) ++b;
        else ++a, ++b;
        ++k;
      }
      off[v + 1] = k;
    }
  });
  for (std::size_t v = 0; v < n; ++v) off[v + 1] += off[v];
  std::vector<std::uint32_t> nbr(off[n]);
  std::vector<double> w(weighted ? off[n] : 0);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 4096), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t v = r.begin(); v < r.end(); ++v) {
      std::uint64_t a = io[v], b = out_offsets[v], k = off[v];
      while (a < io[v + 1] || b < out_offsets[v + 1]) {
        if (b == out_offsets[v + 1] || (a < io[v + 1] && is[a] < out_targets[b])) {
          if (weighted) w[k] = part.in_weights[a];
          nbr[k++] = is[a++];
        } else if (a == io[v + 1] || out_targets[b] < is[a]) {
          if (weighted) w[k] = out_weights[b];
          nbr[k++] = out_targets[b++];
        } else {
          if (weighted) w[k] = std::min(part.in_weights[a], out_weights[b]);
          nbr[k++] = is[a++];
          ++b;
        }
      }
    }
  });
  part.in_offsets = std::move(off);
  part.in_sources = std::move(nbr);
  part.in_weights = std::move(w);
  for (std::size_t v = 0; v < n; ++v)
    part.out_degree[v] = static_cast<std::uint32_t>(part.in_offsets[v + 1] - part.in_offsets[v]);
}

void fill_partition(const io::Hdf5GraphFile& f, const LoadOptions& opts, std::uint64_t lo, std::uint64_t hi, Partition& part) {
  const auto& info = f.info();
  const std::uint64_t n = hi - lo;
  part.first = lo;
  // Ids, with the one before them for the ordering check at the boundary.
  std::vector<std::uint64_t>& ids = part.ids;
  ids.resize(n);
  f.read_ids(lo, n, ids.data());
  std::uint64_t prev = 0;
  if (lo > 0 && n > 0) f.read_ids(lo - 1, 1, &prev);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t before = i > 0 ? ids[i - 1] : prev;
    if ((i > 0 || lo > 0) && ids[i] <= before)
      bad(f, "/vertices/ids[" + num(lo + i) + "] = " + num(ids[i]) + " is not greater than [" + num(lo + i - 1) +
                 "] = " + num(before) + " (ids must be strictly increasing)");
  }
  const std::uint64_t in_base = read_offsets(f, Csr::kIn, lo, hi, part.in_offsets);
  read_neighbours(f, Csr::kIn, lo, in_base, part.in_offsets, part.in_sources);
  if (opts.weighted) read_weights(f, Csr::kIn, in_base, part.in_sources.size(), part.in_weights);
  part.out_degree.resize(n);
  if (!info.directed) {
    for (std::uint64_t i = 0; i < n; ++i)
      part.out_degree[i] = static_cast<std::uint32_t>(part.in_offsets[i + 1] - part.in_offsets[i]);
    return;
  }
  if (opts.directed && !*opts.directed) {  // a directed file loaded undirected
    std::vector<std::uint64_t> out_offsets;
    std::vector<std::uint32_t> out_targets;
    std::vector<double> out_weights;
    const std::uint64_t out_base = read_offsets(f, Csr::kOut, lo, hi, out_offsets);
    read_neighbours(f, Csr::kOut, lo, out_base, out_offsets, out_targets);
    if (opts.weighted) read_weights(f, Csr::kOut, out_base, out_targets.size(), out_weights);
    merge_directions(part, out_offsets, out_targets, out_weights, opts.weighted);
    return;
  }
  std::vector<std::uint64_t> scratch;
  std::vector<std::uint64_t>& out_offsets = opts.out_edges ? part.out_offsets : scratch;
  const std::uint64_t out_base = read_offsets(f, Csr::kOut, lo, hi, out_offsets);
  for (std::uint64_t i = 0; i < n; ++i) part.out_degree[i] = static_cast<std::uint32_t>(out_offsets[i + 1] - out_offsets[i]);
  if (!opts.out_edges) return;
  read_neighbours(f, Csr::kOut, lo, out_base, part.out_offsets, part.out_targets);
  if (opts.weighted) read_weights(f, Csr::kOut, out_base, part.out_targets.size(), part.out_weights);
}

}  // namespace

std::shared_ptr<Graph> load_hdf5(const LoadOptions& opts, const JobConfig& config, Cluster cluster) {
  const auto t0 = std::chrono::steady_clock::now();
  const int ranks = cluster.ranks(), rank = cluster.rank();
  const JobConfig resolved = config.resolved(ranks);
  const int parts = resolved.parallelism;
  if (parts < ranks)  // the same on every rank: all refuse alike
    throw PlanError("graph load with " + std::to_string(parts) + " partitions on " + std::to_string(ranks) +
                    " ranks: use at least one partition per rank");
  auto g = std::make_shared<Graph>(parts);
  std::string error;
  bool f_directed = true;
  try {
    const io::Hdf5GraphFile f(opts.path);
    const auto& info = f.info();
    f_directed = info.directed;
    if (opts.directed && *opts.directed && !info.directed)
      bad(f, "the graph is stored undirected; to load it directed, convert the edge list again with --directed");
    if (opts.weighted && !info.weighted)
      bad(f, "the graph has no weights (it was converted from an input without a weight column)");
    if (opts.keep_duplicates)
      bad(f, "gyre HDF5 graphs are stored simple (gyre convert removed duplicate edges); load the text edge list "
             "to keep duplicates");
    g->vertices = info.vertices;
    g->edges = info.edges;
    g->directed = opts.directed.value_or(info.directed);
    g->weighted = opts.weighted;
    g->has_out_edges = !g->directed || opts.out_edges;
    const auto first = boundaries(f, parts);
    g->set_first(first);
    tbb::task_arena arena(threads_of(resolved));
    arena.execute([&] {
      for (int p = rank; p < parts; p += ranks)
        fill_partition(f, opts, first[static_cast<std::size_t>(p)], first[static_cast<std::size_t>(p) + 1], g->make_part(p));
    });
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "graph load failed";
  }
  // Every rank gives up together, with the first error of any rank.
  error = cluster.transport()->agree(error);
  if (!error.empty()) throw Error(error);
  if (g->directed != f_directed) {
    // Arcs after merging the directions: summed over the partitions of every rank.
    std::vector<double> arcs{0};
    for (int p = rank; p < parts; p += ranks) arcs[0] += static_cast<double>(g->part(p)->in_sources.size());
    cluster.transport()->allreduce_sum(arcs);
    g->edges = static_cast<std::uint64_t>(arcs[0]);
  }
  g->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g->load_metrics.seconds = g->load_seconds;  // no job ran: the metrics' "load" is the read itself
  return g;
}


// ---------------------------------------------------------------- convert

namespace {

constexpr std::uint64_t kNoOffset = std::numeric_limits<std::uint64_t>::max();

std::string errno_text() { return std::strerror(errno); }

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// A line's bytes for an error message, control and non-ASCII bytes as \xNN, at most 200 bytes.
std::string excerpt(const char* b, const char* e) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (const char* p = b; p < e && p < b + 200; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  if (e - b > 200) out += "...";
  return out;
}

// An open text file, read in blocks by many threads (pread).
class TextFile {
 public:
  explicit TextFile(std::string path) : path_(std::move(path)) {
    detail::check_readable(path_);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error("cannot open '" + path_ + "': " + errno_text());
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error("cannot read '" + path_ + "': " + errno_text());
    size_ = static_cast<std::uint64_t>(st.st_size);
    unsigned char magic[2] = {0, 0};
    gzip_ = size_ >= 2 && ::pread(fd_, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  }
  ~TextFile() { ::close(fd_); }
  TextFile(const TextFile&) = delete;
  TextFile& operator=(const TextFile&) = delete;

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  bool gzip() const { return gzip_; }

  // Appends bytes [from, from + n) (fewer at the end of the file) to `out`.
  void read(std::uint64_t from, std::uint64_t n, std::vector<char>& out) const {
    const std::size_t at = out.size();
    out.resize(at + n);
    std::uint64_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, out.data() + at + got, n - got, static_cast<off_t>(from + got));
      if (r < 0) throw Error("cannot read '" + path_ + "': " + errno_text());
      if (r == 0) break;
      got += static_cast<std::uint64_t>(r);
    }
    out.resize(at + got);
  }

  // The 1-based number of the line starting at byte `offset` (error paths only).
  std::uint64_t line_at(std::uint64_t offset) const {
    std::uint64_t line = 1;
    std::vector<char> buf;
    for (std::uint64_t pos = 0; pos < offset;) {
      buf.clear();
      read(pos, std::min<std::uint64_t>(offset - pos, 1 << 22), buf);
      if (buf.empty()) break;
      line += static_cast<std::uint64_t>(std::count(buf.begin(), buf.end(), '\n'));
      pos += buf.size();
    }
    return line;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool gzip_ = false;
};

// What the threads parsed from one block of the file (the lines starting in it).
struct Parsed {
  std::vector<std::uint32_t> pairs;  // edges: src, dst; vertex files: ids
  std::vector<std::uint64_t> wide;   // the same when an id does not fit 32 bits (second pass)
  std::vector<double> weights;
  std::uint64_t max_id = 0;
  bool too_wide = false;                    // an id >= 2^32 (narrow pass)
  std::uint64_t first_data = kNoOffset;     // file offset of the first data line
  bool first_has_weight = false;
  std::uint64_t first_unweighted = kNoOffset;  // of the first data line without a weight
  std::uint64_t error_at = kNoOffset;       // of the first malformed line
  std::string error;
};

constexpr std::uint64_t kBlock = std::uint64_t{8} << 20;

// Parses every line of `file` with parse(line_begin, line_end, offset, Parsed&) -> false to stop
// the block (an error recorded). Blocks in parallel; lines belong to the block their first byte
// is in.
template <class Parse>
std::vector<Parsed> parse_blocks(const TextFile& file, Parse parse) {
  const std::uint64_t blocks = std::max<std::uint64_t>(1, (file.size() + kBlock - 1) / kBlock);
  std::vector<Parsed> out(blocks);
  tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, blocks, 1), [&](const tbb::blocked_range<std::uint64_t>& r) {
    std::vector<char> buf;
    for (std::uint64_t b = r.begin(); b < r.end(); ++b) {
      const std::uint64_t begin = b * kBlock, end = std::min(file.size(), begin + kBlock);
      if (begin >= end) continue;
      buf.clear();
      // One byte before (is our first line a continuation?), the block, then up to the end of
      // its last line.
      const std::uint64_t from = begin > 0 ? begin - 1 : 0;
      file.read(from, end - from, buf);
      for (std::uint64_t pos = end; pos < file.size() && (buf.empty() || buf.back() != '\n');) {
        const std::size_t had = buf.size();
        file.read(pos, 1 << 16, buf);
        const void* nl = std::memchr(buf.data() + had, '\n', buf.size() - had);
        pos += buf.size() - had;
        if (nl != nullptr) {
          buf.resize(static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data()) + 1);
          break;
        }
        if (buf.size() == had) break;
      }
      const char* data = buf.data();
      const char* stop = data + buf.size();
      const char* p = data;
      if (begin > 0) {
          // Past the newline ending the previous block's line (buf[0] is the byte before ours).
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(stop - p));
        p = nl == nullptr ? stop : static_cast<const char*>(nl) + 1;
      }
      Parsed& out_b = out[b];
      while (p < stop) {
        const std::uint64_t offset = from + static_cast<std::uint64_t>(p - data);
        if (offset >= end) break;
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(stop - p));
        const char* line_end = nl == nullptr ? stop : static_cast<const char*>(nl);
        const char* lb = p;
        if (offset == 0 && line_end - lb >= 3 && std::memcmp(lb, "\xEF\xBB\xBF", 3) == 0) lb += 3;  // BOM
        const char* le = line_end;
        if (le > lb && le[-1] == '\r') --le;
        if (!parse(lb, le, offset, out_b)) break;
        p = line_end + 1;
      }
      // Exact sizes (a grown vector holds up to twice what it needs): the blocks are the
      // largest thing held until the CSR is built.
      out_b.pairs.shrink_to_fit();
      out_b.wide.shrink_to_fit();
      out_b.weights.shrink_to_fit();
    }
  });
  return out;
}

// One id at p: returns the position after it, or nullptr with a message in `why`.
const char* parse_id(const char* p, const char* e, std::uint64_t& v, const char*& why) {
  if (p < e && *p == '-') {
    why = "negative vertex id: ids must be integers in [0, 2^64)";
    return nullptr;
  }
  const auto r = std::from_chars(p, e, v);
  if (r.ec == std::errc::result_out_of_range) {
    why = "vertex id out of range [0, 2^64)";
    return nullptr;
  }
  if (r.ec != std::errc() || r.ptr == p || (r.ptr < e && !is_blank(*r.ptr))) {
    why = nullptr;
    return nullptr;
  }
  return r.ptr;
}

const char* skip_blanks(const char* p, const char* e) {
  while (p < e && is_blank(*p)) ++p;
  return p;
}

bool fail_line(Parsed& out, std::uint64_t offset, const char* b, const char* e, const std::string& why) {
  out.error_at = offset;
  out.error = why + ": '" + excerpt(b, e) + "'";
  return false;
}

// Edge-list lines: "src dst [weight]", '#' and '%' comments, blank lines. `wide`: store 64-bit ids.
auto edge_parser(bool wide, bool keep_weights) {
  return [wide, keep_weights](const char* b, const char* e, std::uint64_t offset, Parsed& out) {
    const char* p = skip_blanks(b, e);
    if (p == e || *p == '#' || *p == '%') return true;
    std::uint64_t s = 0, d = 0;
    const char* why = nullptr;
    const char* q = parse_id(p, e, s, why);
    if (q == nullptr || q == e)
      return fail_line(out, offset, b, e, why != nullptr ? why : "expected 'src dst [weight]' with integer vertex ids");
    p = skip_blanks(q, e);
    q = parse_id(p, e, d, why);
    if (q == nullptr)
      return fail_line(out, offset, b, e,
                       why != nullptr ? why : "expected 'src dst [weight]': the second column is not an integer vertex id");
    p = skip_blanks(q, e);
    bool has_weight = false;
    double w = 1;
    if (p < e) {
      const auto r = std::from_chars(p, e, w);
      if (r.ec != std::errc() || r.ptr == p || (r.ptr < e && !is_blank(*r.ptr)))
        return fail_line(out, offset, b, e, "the third column (weight) is not a number");
      if (skip_blanks(r.ptr, e) != e)
        return fail_line(out, offset, b, e, "expected 'src dst [weight]': more than three columns");
      has_weight = true;
      if (keep_weights && !(w >= 0))
        return fail_line(out, offset, b, e, "the weight must be a number >= 0 (or infinity)");
    }
    if (out.first_data == kNoOffset) {
      out.first_data = offset;
      out.first_has_weight = has_weight;
    }
    if (!has_weight && out.first_unweighted == kNoOffset) out.first_unweighted = offset;
    out.max_id = std::max({out.max_id, s, d});
    if (wide) {
      out.wide.push_back(s);
      out.wide.push_back(d);
    } else {
      if (std::max(s, d) > std::numeric_limits<std::uint32_t>::max()) {
        out.too_wide = true;
        return false;
      }
      out.pairs.push_back(static_cast<std::uint32_t>(s));
      out.pairs.push_back(static_cast<std::uint32_t>(d));
    }
    if (keep_weights) out.weights.push_back(w);
    return true;
  };
}

// Vertex-file lines: "id [properties...]".
auto vertex_parser(bool wide) {
  return [wide](const char* b, const char* e, std::uint64_t offset, Parsed& out) {
    const char* p = skip_blanks(b, e);
    if (p == e || *p == '#' || *p == '%') return true;
    std::uint64_t v = 0;
    const char* why = nullptr;
    if (parse_id(p, e, v, why) == nullptr) return fail_line(out, offset, b, e, why != nullptr ? why : "expected an integer vertex id");
    if (out.first_data == kNoOffset) out.first_data = offset;
    out.max_id = std::max(out.max_id, v);
    if (wide) {
      out.wide.push_back(v);
    } else {
      if (v > std::numeric_limits<std::uint32_t>::max()) {
        out.too_wide = true;
        return false;
      }
      out.pairs.push_back(static_cast<std::uint32_t>(v));
    }
    return true;
  };
}

// The first error of any block, as "file:line: message".
void throw_first_error(const TextFile& file, const std::vector<Parsed>& blocks) {
  const Parsed* first = nullptr;
  for (const Parsed& b : blocks)
    if (b.error_at != kNoOffset && (first == nullptr || b.error_at < first->error_at)) first = &b;
  if (first != nullptr) throw Error(file.path() + ":" + num(file.line_at(first->error_at)) + ": " + first->error);
}

template <class Parse>
std::vector<Parsed> parse_text(const TextFile& file, Parse narrow, Parse wide, bool& is_wide) {
  auto blocks = parse_blocks(file, narrow);
  throw_first_error(file, blocks);
  is_wide = std::any_of(blocks.begin(), blocks.end(), [](const Parsed& b) { return b.too_wide; });
  if (!is_wide) return blocks;
  blocks = parse_blocks(file, wide);
  throw_first_error(file, blocks);
  return blocks;
}

// A line of an edge list naming vertex `id`, for the error "not in the vertex file".
[[noreturn]] void missing_vertex(const std::string& edge_file, const std::string& vertex_file, std::uint64_t id) {
  const auto at = io::find_edge_lines(edge_file, id, 1);
  if (!at.empty())
    throw Error(edge_file + ":" + num(at[0].line) + ": edge '" + at[0].printable() + "': vertex " + num(id) +
                " is not in the vertex file '" + vertex_file + "'");
  throw Error(edge_file + ": vertex " + num(id) + " is not in the vertex file '" + vertex_file + "'");
}

[[noreturn]] void duplicate_vertex(const std::string& vertex_file, std::uint64_t id) {
  const auto at = io::find_vertex_lines(vertex_file, id, 2);
  if (at.size() == 2)
    throw Error(vertex_file + ":" + num(at[1].line) + ": vertex " + num(id) + " is listed again (first at line " +
                num(at[0].line) + ")");
  throw Error(vertex_file + ": vertex " + num(id) + " is listed twice");
}

struct TextGraph {
  std::string edge_file;
  std::string vertex_file;  // empty: the vertices are the edges' endpoints
  bool directed = true;
  std::optional<bool> weighted;  // .properties: decided; edge lists: from the first data line
};

// Whether the first data line of an edge list has a third column (read from the start).
bool first_line_has_weight(const TextFile& f) {
  std::vector<char> buf;
  std::uint64_t pos = 0;
  bool at_start = true;
  for (;;) {
    const std::size_t had = buf.size();
    f.read(pos, 1 << 16, buf);
    pos += buf.size() - had;
    const bool eof = buf.size() == had;
    std::size_t b = 0;
    for (;;) {
      const void* nl = std::memchr(buf.data() + b, '\n', buf.size() - b);
      if (nl == nullptr && !eof) break;
      const std::size_t e = nl == nullptr ? buf.size() : static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
      const char* lb = buf.data() + b;
      const char* le = buf.data() + e;
      if (at_start && le - lb >= 3 && std::memcmp(lb, "\xEF\xBB\xBF", 3) == 0) lb += 3;
      at_start = false;
      Parsed probe;
      if (edge_parser(true, false)(lb, le, 0, probe) && probe.first_data != kNoOffset) return probe.first_has_weight;
      if (probe.error_at != kNoOffset) return false;  // reported by the full parse
      if (nl == nullptr) return false;
      b = e + 1;
    }
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(b));
    if (eof) return false;
  }
}

// Reads the text graph into a file-layout graph (rank 0, its threads).
io::Hdf5Graph read_text_graph(const TextGraph& in) {
  const TextFile ef(in.edge_file);
  std::optional<TextFile> vf;
  if (!in.vertex_file.empty()) vf.emplace(in.vertex_file);
  if (ef.gzip() || (vf && vf->gzip())) {
    // Compressed input: the serial reader (it checks the gzip stream), without weights.
    if (in.weighted.value_or(false))
      throw PlanError("'" + in.edge_file + "': weighted gzip input is not supported by convert: decompress it first");
    std::vector<std::uint64_t> ids;
    if (vf) {
      Environment env(JobConfig{}, Cluster::local());
      auto v = io::read_vertex_file(env, in.vertex_file).collect(1);
      env.run();
      ids = v.values();
    }
    std::vector<std::uint64_t> listed = ids;
    std::sort(listed.begin(), listed.end());
    if (const auto d = std::adjacent_find(listed.begin(), listed.end()); d != listed.end())
      throw Error("'" + in.vertex_file + "': vertex " + std::to_string(*d) + " is listed twice");
    auto g = io::make_hdf5_graph(std::move(ids), io::read_edge_list_serial(in.edge_file), in.directed);
    if (vf && g.ids.size() != listed.size()) {  // make_hdf5_graph added an edge's endpoint
      for (const std::uint64_t id : g.ids)
        if (!std::binary_search(listed.begin(), listed.end(), id))
          throw Error("'" + in.edge_file + "': an edge names vertex " + std::to_string(id) +
                      ", which is not in the vertex file '" + in.vertex_file + "'");
    }
    return g;
  }
  const bool weighted = in.weighted ? *in.weighted : first_line_has_weight(ef);
  bool wide = false, vwide = false;
  auto blocks = parse_text(ef, edge_parser(false, weighted), edge_parser(true, weighted), wide);
  if (weighted) {
    std::uint64_t at = kNoOffset;
    for (const Parsed& b : blocks) at = std::min(at, b.first_unweighted);
    if (at != kNoOffset)
      throw Error(ef.path() + ":" + num(ef.line_at(at)) + ": no weight: the graph is weighted (" +
                  (in.weighted ? "its .properties file names an edge property" : "the first edge has a third column") +
                  "), so every edge needs one");
  }
  std::vector<Parsed> vblocks;
  if (vf) {
    vblocks = parse_text(*vf, vertex_parser(false), vertex_parser(true), vwide);
    if (vwide && !wide) {
      blocks = parse_blocks(ef, edge_parser(true, weighted));
      wide = true;
    } else if (wide && !vwide) {
      vblocks = parse_blocks(*vf, vertex_parser(true));
      vwide = true;
    }
  }
  std::uint64_t edges = 0, listed = 0, max_id = 0;
  for (const Parsed& b : blocks) {
    edges += (wide ? b.wide.size() : b.pairs.size()) / 2;
    max_id = std::max(max_id, b.max_id);
  }
  for (const Parsed& b : vblocks) {
    listed += vwide ? b.wide.size() : b.pairs.size();
    max_id = std::max(max_id, b.max_id);
  }
  const bool any = edges > 0 || listed > 0;
  std::vector<std::uint64_t> ids;
  const std::uint64_t table_limit = 16 * (2 * edges + listed) + (std::uint64_t{1} << 26);
  if (!wide && (!any || max_id < table_limit)) {
    // Small integer ids: a table id -> dense id (first 0/1 marks), filled in parallel.
    std::vector<std::uint32_t> table(any ? max_id + 1 : 0, 0);
    auto mark = [&](std::uint32_t v) { std::atomic_ref<std::uint32_t>(table[v]).store(1, std::memory_order_relaxed); };
    std::atomic<std::uint64_t> dup{kNoOffset}, missing{kNoOffset};
    auto note = [](std::atomic<std::uint64_t>& slot, std::uint64_t id) {
      std::uint64_t cur = slot.load();
      while (id < cur && !slot.compare_exchange_weak(cur, id)) {
      }
    };
    const std::size_t nb = blocks.size(), nvb = vblocks.size();
    if (vf) {
      tbb::parallel_for(std::size_t{0}, nvb, [&](std::size_t b) {
        for (const std::uint32_t v : vblocks[b].pairs)
          if (std::atomic_ref<std::uint32_t>(table[v]).exchange(1, std::memory_order_relaxed) != 0) note(dup, v);
      });
      if (dup.load() != kNoOffset) duplicate_vertex(in.vertex_file, dup.load());
      vblocks.clear();
      tbb::parallel_for(std::size_t{0}, nb, [&](std::size_t b) {
        for (const std::uint32_t v : blocks[b].pairs)
          if (table[v] == 0) note(missing, v);
      });
      if (missing.load() != kNoOffset) missing_vertex(in.edge_file, in.vertex_file, missing.load());
    } else {
      tbb::parallel_for(std::size_t{0}, nb, [&](std::size_t b) {
        for (const std::uint32_t v : blocks[b].pairs) mark(v);
      });
    }
    std::uint64_t count = 0;
    for (const std::uint32_t t : table) count += t;
    if (count > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
      throw Error(in.edge_file + ": more than 2^32 vertices: not supported by the HDF5 graph format");
    ids.reserve(count);
    for (std::uint64_t id = 0; id < table.size(); ++id)
      if (table[id] != 0) {
        table[id] = static_cast<std::uint32_t>(ids.size());
        ids.push_back(id);
      }
    tbb::parallel_for(std::size_t{0}, nb, [&](std::size_t b) {
      for (std::uint32_t& v : blocks[b].pairs) v = table[v];
    });
  } else {
    // Large or 64-bit ids: sorted and deduplicated in parallel, then looked up.
    if (!wide) {  // widen (narrow blocks with a large id range)
      for (Parsed& b : blocks) {
        b.wide.assign(b.pairs.begin(), b.pairs.end());
        std::vector<std::uint32_t>().swap(b.pairs);
      }
      for (Parsed& b : vblocks) {
        b.wide.assign(b.pairs.begin(), b.pairs.end());
        std::vector<std::uint32_t>().swap(b.pairs);
      }
    }
    const auto& from = vf ? vblocks : blocks;
    for (const Parsed& b : from) ids.insert(ids.end(), b.wide.begin(), b.wide.end());
    tbb::parallel_sort(ids.begin(), ids.end());
    if (vf) {
      const auto d = std::adjacent_find(ids.begin(), ids.end());
      if (d != ids.end()) duplicate_vertex(in.vertex_file, *d);
      vblocks.clear();
    } else {
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    }
    if (ids.size() > std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1)
      throw Error(in.edge_file + ": more than 2^32 vertices: not supported by the HDF5 graph format");
    std::atomic<std::uint64_t> missing{kNoOffset};
    tbb::parallel_for(std::size_t{0}, blocks.size(), [&](std::size_t b) {
      Parsed& pb = blocks[b];
      pb.pairs.resize(pb.wide.size());
      for (std::size_t i = 0; i < pb.wide.size(); ++i) {
        const auto it = std::lower_bound(ids.begin(), ids.end(), pb.wide[i]);
        if (it == ids.end() || *it != pb.wide[i]) {
          std::uint64_t cur = missing.load();
          while (pb.wide[i] < cur && !missing.compare_exchange_weak(cur, pb.wide[i])) {
          }
          continue;
        }
        pb.pairs[i] = static_cast<std::uint32_t>(it - ids.begin());
      }
      std::vector<std::uint64_t>().swap(pb.wide);
    });
    if (missing.load() != kNoOffset) missing_vertex(in.edge_file, in.vertex_file, missing.load());
  }
  std::vector<std::vector<std::uint32_t>> pairs(blocks.size());
  std::vector<std::vector<double>> weights(weighted ? blocks.size() : 0);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    pairs[b] = std::move(blocks[b].pairs);
    if (weighted) weights[b] = std::move(blocks[b].weights);
  }
  blocks.clear();
  return io::build_hdf5_graph(std::move(ids), pairs, weighted ? &weights : nullptr, in.directed);
}

}  // namespace

ConvertStats convert(const LoadOptions& input, const std::string& output, const JobConfig& config,
                     Cluster cluster) {
  if (io::guess_format(output) != io::GraphFormat::kHdf5)
    throw PlanError("convert writes gyre HDF5 graphs: name the output file '*.h5' (got '" + output + "')");
  if (input.keep_duplicates)
    throw PlanError("convert stores the simple graph (a duplicate edge once): --keep-duplicates is for loading a "
                    "text graph as a multigraph");
  const auto t0 = std::chrono::steady_clock::now();
  const JobConfig resolved = config.resolved(cluster.ranks());
  ConvertStats stats;
  std::string error;
  if (cluster.rank() == 0) {
    try {
      TextGraph in;
      const io::GraphFormat format = input.format ? *input.format : io::guess_format(input.path);
      if (format == io::GraphFormat::kHdf5)
        throw PlanError("convert: '" + input.path + "' is already a gyre HDF5 graph; convert reads edge lists and "
                        "Graphalytics .properties files");
      if (format == io::GraphFormat::kGraphalytics) {
        const auto props = io::read_properties(input.path);
        in.edge_file = props.edge_file;
        in.vertex_file = props.vertex_file;
        in.directed = input.directed.value_or(props.directed);
        in.weighted = props.parameters.weighted;
      } else {
        in.edge_file = input.path;
        in.directed = input.directed.value_or(true);
      }
      if (input.weighted) in.weighted = true;
      tbb::task_arena arena(threads_of(resolved));
      io::Hdf5Graph g;
      arena.execute([&] { g = read_text_graph(in); });
      io::write_hdf5_graph(output, g, input.path);
      stats.vertices = g.ids.size();
      stats.edges = g.directed ? g.edges() : (g.edges() + [&] {
        // An undirected edge once: arcs, with self-loops (stored once) counted twice, halved.
        std::uint64_t loops = 0;
        for (std::size_t v = 0; v + 1 < g.in_offsets.size(); ++v)
          loops += std::binary_search(g.in_sources.begin() + static_cast<std::ptrdiff_t>(g.in_offsets[v]),
                                      g.in_sources.begin() + static_cast<std::ptrdiff_t>(g.in_offsets[v + 1]),
                                      static_cast<std::uint32_t>(v));
        return loops;
      }()) / 2;
      stats.directed = g.directed;
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "convert failed";
    }
  }
  error = cluster.transport()->agree(error);
  if (!error.empty()) throw Error(error);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace gyre::graph
