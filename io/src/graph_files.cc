// Edge-list, vertex-file, properties and result-file I/O. See graph_files.h.
#include "gyre/io/graph_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include "gyre/core/error.h"
#include "gyre/core/text_io.h"

namespace gyre::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Bytes shown in an error message: at most 60 of them, printable ASCII as it is, everything
// else (NUL, control characters, a BOM, bytes >= 0x80) as \xNN, tab as \t.
std::string excerpt(const char* b, const char* e) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  const char* stop = b + std::min<std::ptrdiff_t>(e - b, 60);
  for (const char* p = b; p < stop; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '\t') {
      s += "\\t";
    } else if (c >= 0x20 && c < 0x7f && c != '\\') {
      s += static_cast<char>(c);
    } else if (c == '\\') {
      s += "\\\\";
    } else {
      s += "\\x";
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
  }
  if (e - b > 60) s += "...";
  return s;
}
std::string excerpt(const std::string& line) { return excerpt(line.data(), line.data() + line.size()); }

constexpr unsigned char kBom[3] = {0xef, 0xbb, 0xbf};
bool starts_with_bom(const char* b, const char* e) {
  return e - b >= 3 && std::memcmp(b, kBom, 3) == 0;
}

// Parses an unsigned decimal id at p; returns the position after it, or nullptr.
const char* parse_id(const char* p, const char* e, std::uint64_t& v) {
  const auto r = std::from_chars(p, e, v);
  if (r.ec != std::errc() || r.ptr == p) return nullptr;
  return r.ptr;
}

const char* skip_space(const char* p, const char* e) {
  while (p < e && is_space(*p)) ++p;
  return p;
}

// One data line: "src dst [weight]". Returns false for blank and comment lines; throws a
// message (without file and line) if malformed. With `weight`, the third column is required and
// stored there (a number >= 0; infinity is allowed, NaN is not).
bool parse_edge_line(const char* b, const char* e, Edge& out, double* weight) {
  const char* p = skip_space(b, e);
  if (p == e || *p == '#' || *p == '%') return false;
  if (*p == '-') throw std::string("negative vertex id: ids must be integers in [0, 2^64)");
  const char* q = parse_id(p, e, out.src);
  if (q == nullptr) {
    if (std::isdigit(static_cast<unsigned char>(*p)) != 0) throw std::string("vertex id out of range [0, 2^64)");
    throw std::string("expected 'src dst [weight]' with integer vertex ids");
  }
  if (q == e || !is_space(*q)) throw std::string("expected 'src dst [weight]' with integer vertex ids");
  p = skip_space(q, e);
  if (p < e && *p == '-') throw std::string("negative vertex id: ids must be integers in [0, 2^64)");
  q = parse_id(p, e, out.dst);
  if (q == nullptr) throw std::string("expected 'src dst [weight]': the second column is not an integer vertex id");
  p = skip_space(q, e);
  if (p == e) {
    if (weight != nullptr) throw std::string("expected 'src dst weight': the weight (third column) is missing");
    return true;
  }
  if (q == p) throw std::string("expected 'src dst [weight]' with integer vertex ids");
  // A weight: any decimal number, then nothing but blanks.
  double w = 0;
  const auto r = std::from_chars(p, e, w);
  if (r.ec != std::errc() || r.ptr == p) throw std::string("the third column (weight) is not a number");
  if (skip_space(r.ptr, e) != e) throw std::string("expected 'src dst [weight]': more than three columns");
  if (weight != nullptr) {
    if (std::isnan(w)) throw std::string("the weight (third column) is NaN");
    if (w < 0) throw std::string("negative weight: edge weights must be >= 0");
    *weight = w;
  }
  return true;
}

bool parse_edge(const char* b, const char* e, Edge& out) { return parse_edge_line(b, e, out, nullptr); }

bool parse_weighted_edge(const char* b, const char* e, WeightedEdge& out) {
  Edge x{};
  double w = 0;
  if (!parse_edge_line(b, e, x, &w)) return false;
  out = WeightedEdge{x.src, x.dst, w};
  return true;
}

// One vertex line: "id [properties...]".
bool parse_vertex(const char* b, const char* e, std::uint64_t& out) {
  const char* p = skip_space(b, e);
  if (p == e || *p == '#' || *p == '%') return false;
  if (*p == '-') throw std::string("negative vertex id: ids must be integers in [0, 2^64)");
  const char* q = parse_id(p, e, out);
  if (q == nullptr || (q < e && !is_space(*q))) throw std::string("expected an integer vertex id");
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Opens a regular file for reading (a pipe, FIFO or directory is refused before it is opened,
// so a FIFO cannot block).
int open_regular(const std::string& path, struct stat& st) {
  detail::check_readable(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "': " + errno_text());
  if (::fstat(fd, &st) != 0 || !detail::is_input_file(fd)) {
    const std::string why = errno_text();
    ::close(fd);
    throw Error("cannot read '" + path + "': not a regular file (" + why + ")");
  }
  return fd;
}

// Reads lines of a file: a byte range of a plain file (lines starting in [begin, end)), or all
// of a gzip file. Counts line numbers only when it needs one (an error). A UTF-8 byte order mark
// at the very start of the file is skipped.
//
// gzip input is inflated here (not through gzread, which takes a cut file for a short one): the
// stream must end with its trailer (CRC-32 and length, checked by zlib), further gzip members
// may follow (as gzip(1) allows), and anything else after the last member is an error.
class LineReader {
 public:
  LineReader(std::string path, int partition, int parallelism) : path_(std::move(path)) {
    struct stat st {};
    fd_ = open_regular(path_, st);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    unsigned char magic[2] = {0, 0};
    const ssize_t m = size >= 2 ? ::pread(fd_, magic, 2, 0) : 0;
    if (m < 0) throw Error("cannot read '" + path_ + "': " + errno_text());
    gz_ = m == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gz_ && ends_with(path_, ".gz"))
      throw Error(path_ + ": not gzip data (the name ends in .gz but the file does not start with the gzip signature "
                  "1f 8b); decompress or rename it");
    if (gz_) {
      if (partition != 0) {
        done_ = true;
        return;
      }
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) throw Error(path_ + ": cannot initialise zlib");
      zinit_ = true;
      in_.resize(1 << 20);
      return;
    }
    std::tie(file_pos_, end_) = detail::split_range(size, partition, parallelism);
    if (file_pos_ >= end_) {
      done_ = true;
      return;
    }
    if (file_pos_ > 0) {
      // A line belongs to the partition its first byte is in: unless the byte before ours is a
      // newline, skip to the next line start.
      char c = 0;
      if (::pread(fd_, &c, 1, static_cast<off_t>(file_pos_ - 1)) != 1)
        throw Error("cannot read '" + path_ + "': " + errno_text());
      skip_first_ = c != '\n';
      at_start_ = false;
    }
    buf_offset_ = file_pos_;
  }
  ~LineReader() {
    if (fd_ >= 0) ::close(fd_);
    if (zinit_) inflateEnd(&zs_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line (without its newline), or false at the end of this reader's share.
  bool next(const char*& b, const char*& e) {
    while (!done_) {
      const char* start = buf_.data() + begin_;
      const char* stop = buf_.data() + fill_;
      const void* nl = start == stop ? nullptr : std::memchr(start, '\n', static_cast<std::size_t>(stop - start));
      if (nl == nullptr && !eof_) {
        refill();
        continue;
      }
      const char* line_end = nl != nullptr ? static_cast<const char*>(nl) : stop;
      if (nl == nullptr && start == stop) {
        done_ = true;
        return false;
      }
      line_offset_ = buf_offset_ + begin_;
      if (!gz_ && line_offset_ >= end_ && !skip_first_) {
        done_ = true;
        return false;
      }
      begin_ = static_cast<std::size_t>(line_end - buf_.data()) + (nl != nullptr ? 1 : 0);
      ++lines_read_;
      if (skip_first_) {
        skip_first_ = false;
        continue;
      }
      b = start;
      e = line_end;
      if (at_start_) {
        at_start_ = false;
        if (starts_with_bom(b, e)) b += 3;
      }
      if (e > b && e[-1] == '\r') --e;
      return true;
    }
    return false;
  }

  // Lines returned or skipped so far: the number of the last line returned when reading from
  // the start of the file (partition 0).
  std::uint64_t lines_read() const { return lines_read_; }

  // "file:line" of the last line returned.
  std::string where() {
    std::uint64_t line = 0;
    if (gz_) {
      line = lines_read_;
    } else {
      // Lines before this one: count the newlines before its first byte.
      line = 1;
      std::vector<char> tmp(1 << 20);
      std::uint64_t off = 0;
      while (off < line_offset_) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(tmp.size(), line_offset_ - off));
        const ssize_t n = ::pread(fd_, tmp.data(), want, static_cast<off_t>(off));
        if (n <= 0) break;
        line += static_cast<std::uint64_t>(std::count(tmp.data(), tmp.data() + n, '\n'));
        off += static_cast<std::uint64_t>(n);
      }
    }
    return path_ + ":" + std::to_string(line);
  }

 private:
  void refill() {
    // Keep the unconsumed tail, then read more after it.
    const std::size_t keep = fill_ - begin_;
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, keep);
      buf_offset_ += begin_;
      begin_ = 0;
      fill_ = keep;
    }
    if (buf_.size() - fill_ < (1 << 19)) buf_.resize(std::max<std::size_t>(1 << 20, buf_.size() * 2));
    const std::size_t room = buf_.size() - fill_;
    std::size_t n = 0;
    if (gz_) {
      n = inflate_into(buf_.data() + fill_, room);
    } else {
      const ssize_t r = ::pread(fd_, buf_.data() + fill_, room, static_cast<off_t>(file_pos_));
      if (r < 0) throw Error("cannot read '" + path_ + "': " + errno_text());
      n = static_cast<std::size_t>(r);
      file_pos_ += n;
    }
    if (n == 0) eof_ = true;
    fill_ += n;
  }

  // Inflates into [out, out + room); returns the bytes produced, 0 at the proper end of the
  // last gzip member. Throws if the data is corrupt, cut short, or followed by non-gzip bytes.
  std::size_t inflate_into(char* out, std::size_t room) {
    zs_.next_out = reinterpret_cast<Bytef*>(out);
    zs_.avail_out = static_cast<uInt>(std::min<std::size_t>(room, std::numeric_limits<uInt>::max()));
    const uInt want = zs_.avail_out;
    while (zs_.avail_out > 0) {
      if (zs_.avail_in == 0 && !in_eof_) {
        const ssize_t r = ::read(fd_, in_.data(), in_.size());
        if (r < 0) throw Error("cannot read '" + path_ + "': " + errno_text());
        if (r == 0) {
          in_eof_ = true;
        } else {
          zs_.next_in = in_.data();
          zs_.avail_in = static_cast<uInt>(r);
          compressed_ += static_cast<std::uint64_t>(r);
        }
      }
      if (zs_.avail_in == 0 && in_eof_) {
        if (!member_ended_)
          throw Error(path_ + ": truncated gzip stream (ends after " + std::to_string(compressed_) +
                      " bytes): the file is incomplete");
        break;
      }
      if (member_ended_) {
        // More bytes after a complete member: they must be the next member.
        if (zs_.next_in[0] != 0x1f)
          throw Error(path_ + ": corrupt gzip data: bytes after the end of the gzip stream at offset " +
                      std::to_string(compressed_ - zs_.avail_in) + " are not another gzip member");
        if (inflateReset(&zs_) != Z_OK) throw Error(path_ + ": cannot reset zlib");
        member_ended_ = false;
      }
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw Error(path_ + ": corrupt gzip data: " +
                    (zs_.msg != nullptr ? std::string(zs_.msg) : "zlib error " + std::to_string(rc)) +
                    " (near compressed byte " + std::to_string(compressed_ - zs_.avail_in) + ")");
      }
    }
    return want - zs_.avail_out;
  }

  std::string path_;
  bool gz_ = false;
  int fd_ = -1;
  z_stream zs_{};
  bool zinit_ = false;
  std::vector<unsigned char> in_;  // compressed bytes (gzip)
  std::uint64_t compressed_ = 0;   // compressed bytes read so far
  bool in_eof_ = false;
  bool member_ended_ = false;      // the last inflate() reached the end of a gzip member
  std::uint64_t file_pos_ = 0;     // next byte to read (plain)
  std::uint64_t end_ = 0;          // lines starting at or after this belong to the next partition
  std::uint64_t buf_offset_ = 0;   // file offset of buf_[0] (plain)
  std::uint64_t line_offset_ = 0;
  std::uint64_t lines_read_ = 0;
  bool at_start_ = true;  // the next line starts at offset 0 of the (decompressed) file
  bool skip_first_ = false;
  bool eof_ = false;
  bool done_ = false;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t fill_ = 0;
};

// A source of parsed lines.
template <class T, bool (*Parse)(const char*, const char*, T&)>
class ParsedLineSource final : public detail::SourceOp<T> {
 public:
  ParsedLineSource(const detail::OpContext& ctx, const std::string& path, detail::Input<T>* out)
      : detail::SourceOp<T>(ctx, out), reader_(path, ctx.partition, ctx.parallelism) {}
  detail::SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t k = 0; k < max_batches; ++k) {
      buf_.clear();
      const char* b = nullptr;
      const char* e = nullptr;
      bool more = true;
      while (buf_.size() < this->cap_ && (more = reader_.next(b, e))) {
        T v{};
        bool data = false;
        try {
          data = Parse(b, e, v);
        } catch (const std::string& msg) {
          throw Error(reader_.where() + ": " + msg + ": '" + excerpt(b, e) + "'");
        }
        if (data) buf_.push_back(v);
      }
      if (!buf_.empty()) this->emit(std::span<const T>(buf_));
      if (!more) {
        this->out_->on_event(Event::end());
        return detail::SourceStatus::kDone;
      }
    }
    return detail::SourceStatus::kMore;
  }

 private:
  LineReader reader_;
  std::vector<T> buf_;
};

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

}  // namespace

GraphFormat guess_format(const std::string& path) {
  if (ends_with(path, ".properties")) return GraphFormat::kGraphalytics;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return GraphFormat::kHdf5;
  return GraphFormat::kEdgeList;
}

namespace {

// The value of graph.<name>.<key> in a properties file, and the line it is on.
class PropertyFile {
 public:
  PropertyFile(std::string path, const GraphalyticsGraph& g, const std::map<std::string, int>& lines)
      : path_(std::move(path)), g_(g), lines_(lines) {}
  const std::string* find(const std::string& key) const {
    const auto it = g_.properties.find(full(key));
    return it == g_.properties.end() ? nullptr : &it->second;
  }
  std::string get(const std::string& key) const {
    const std::string* v = find(key);
    if (v == nullptr) throw Error(path_ + ": missing '" + full(key) + "'");
    if (v->empty()) throw Error(where(key) + ": '" + full(key) + "' is empty");
    return *v;
  }
  [[noreturn]] void bad(const std::string& key, const std::string& expected) const {
    throw Error(where(key) + ": '" + full(key) + "' is '" + excerpt(*find(key)) + "', expected " + expected);
  }
  std::optional<std::uint64_t> integer(const std::string& key) const {
    const std::string* v = find(key);
    if (v == nullptr) return std::nullopt;
    std::uint64_t x = 0;
    const auto r = std::from_chars(v->data(), v->data() + v->size(), x);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size() || v->empty())
      bad(key, "an integer in [0, 2^64)");
    return x;
  }
  std::optional<double> number(const std::string& key) const {
    const std::string* v = find(key);
    if (v == nullptr) return std::nullopt;
    double x = 0;
    const auto r = std::from_chars(v->data(), v->data() + v->size(), x);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size() || v->empty()) bad(key, "a number");
    return x;
  }

 private:
  std::string full(const std::string& key) const { return "graph." + g_.name + "." + key; }
  std::string where(const std::string& key) const {
    const auto it = lines_.find(full(key));
    return it == lines_.end() ? path_ : path_ + ":" + std::to_string(it->second);
  }
  std::string path_;
  const GraphalyticsGraph& g_;
  const std::map<std::string, int>& lines_;
};

GraphalyticsParameters parameters_of(const PropertyFile& f) {
  GraphalyticsParameters p;
  p.pr_damping_factor = f.number("pr.damping-factor");
  if (p.pr_damping_factor && !(*p.pr_damping_factor >= 0.0 && *p.pr_damping_factor <= 1.0))
    f.bad("pr.damping-factor", "a number in [0, 1]");
  p.pr_num_iterations = f.integer("pr.num-iterations");
  p.bfs_source_vertex = f.integer("bfs.source-vertex");
  p.sssp_source_vertex = f.integer("sssp.source-vertex");
  p.cdlp_max_iterations = f.integer("cdlp.max-iterations");
  if (const std::string* w = f.find("sssp.weight-property")) {
    if (w->empty()) f.bad("sssp.weight-property", "the name of an edge property");
    p.sssp_weight_property = *w;
  }
  if (const std::string* names = f.find("edge-properties.names"))
    p.weighted = names->find_first_not_of(" \t,") != std::string::npos;
  return p;
}

}  // namespace

GraphalyticsGraph read_properties(const std::string& path) {
  detail::check_readable(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "': " + errno_text());
  GraphalyticsGraph g;
  std::map<std::string, int> lines;  // key -> line
  std::string line;
  int n = 0;
  auto trim = [](const std::string& s) {
    const auto a = s.find_first_not_of(" \t");
    const auto b = s.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  while (std::getline(in, line)) {
    ++n;
    if (n == 1 && starts_with_bom(line.data(), line.data() + line.size())) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == '!') continue;
    const auto eq = line.find('=');
    const std::string at = path + ":" + std::to_string(n);
    if (eq == std::string::npos) throw Error(at + ": expected 'key = value': '" + excerpt(line) + "'");
    const std::string key = trim(line.substr(0, eq));
    if (key.empty()) throw Error(at + ": no key before '=': '" + excerpt(line) + "'");
    const auto [it, fresh] = lines.emplace(key, n);
    if (!fresh)
      throw Error(at + ": '" + excerpt(key) + "' is set again (first at line " + std::to_string(it->second) + ")");
    g.properties[key] = trim(line.substr(eq + 1));
  }
  if (in.bad()) throw Error("cannot read '" + path + "': " + errno_text());
  // graph.<name>.vertex-file: the name is what sits between "graph." and ".vertex-file".
  for (const auto& [k, v] : g.properties) {
    if (k.rfind("graph.", 0) != 0 || !ends_with(k, ".vertex-file")) continue;
    const std::string name = k.substr(6, k.size() - 6 - 12);
    if (!g.name.empty() && name != g.name)
      throw Error(path + ": vertex files for two graphs ('" + excerpt(g.name) + "' and '" + excerpt(name) +
                  "'); a properties file describes one graph");
    g.name = name;
  }
  if (g.name.empty()) throw Error(path + ": no 'graph.<name>.vertex-file' entry: not a Graphalytics properties file");
  const PropertyFile f(path, g, lines);
  // File names are relative to the properties file's directory; absolute ones stay as they are.
  auto resolve = [&](const std::string& file) { return file.front() == '/' ? file : dir_of(path) + file; };
  g.vertex_file = resolve(f.get("vertex-file"));
  g.edge_file = resolve(f.get("edge-file"));
  const std::string directed = f.get("directed");
  if (directed != "true" && directed != "false") f.bad("directed", "true or false");
  g.directed = directed == "true";
  g.parameters = parameters_of(f);
  g.parameters.directed = g.directed;
  return g;
}

GraphalyticsParameters read_graphalytics_parameters(const std::string& path) { return read_properties(path).parameters; }

namespace {

// A parallel source of the lines of `path` parsed by Parse.
template <class T, bool (*Parse)(const char*, const char*, T&)>
Stream<T> parsed_source(Environment& env, const std::string& what, const std::string& path) {
  OperatorBuilder b(env, "source: " + what + " '" + path + "'");
  b.bounded(true);
  b.output<T>();
  b.factory([path](const detail::OpContext& c, const std::vector<detail::PortBase*>& outs) -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<ParsedLineSource<T, Parse>>(c, path, static_cast<detail::Input<T>*>(outs[0]));
  });
  b.validate([path] { detail::check_readable(path); });
  return b.stream<T>();
}

}  // namespace

Stream<Edge> read_edge_list(Environment& env, const std::string& path) {
  return parsed_source<Edge, &parse_edge>(env, "edge list", path);
}

Stream<WeightedEdge> read_weighted_edge_list(Environment& env, const std::string& path) {
  return parsed_source<WeightedEdge, &parse_weighted_edge>(env, "weighted edge list", path);
}

Stream<std::uint64_t> read_vertex_file(Environment& env, const std::string& path) {
  return parsed_source<std::uint64_t, &parse_vertex>(env, "vertex file", path);
}

namespace {
template <class T, bool (*Parse)(const char*, const char*, T&)>
std::vector<T> read_serial(const std::string& path) {
  detail::check_readable(path);
  LineReader r(path, 0, 1);
  std::vector<T> out;
  const char* b = nullptr;
  const char* e = nullptr;
  while (r.next(b, e)) {
    T x{};
    try {
      if (Parse(b, e, x)) out.push_back(x);
    } catch (const std::string& msg) {
      throw Error(r.where() + ": " + msg + ": '" + excerpt(b, e) + "'");
    }
  }
  return out;
}
}  // namespace

std::vector<Edge> read_edge_list_serial(const std::string& path) { return read_serial<Edge, &parse_edge>(path); }
std::vector<WeightedEdge> read_weighted_edge_list_serial(const std::string& path) {
  return read_serial<WeightedEdge, &parse_weighted_edge>(path);
}

namespace {

// The first `max` data lines of `path` (read from its start, serially) for which Match holds.
template <class T, bool (*Parse)(const char*, const char*, T&), class Match>
std::vector<LineRef> find_lines(const std::string& path, std::size_t max, Match match) {
  LineReader r(path, 0, 1);
  std::vector<LineRef> out;
  const char* b = nullptr;
  const char* e = nullptr;
  while (out.size() < max && r.next(b, e)) {
    T x{};
    bool data = false;
    try {
      data = Parse(b, e, x);
    } catch (const std::string&) {
      continue;  // a malformed line is reported by the reader itself
    }
    if (data && match(x)) out.push_back(LineRef{r.lines_read(), std::string(b, e)});
  }
  return out;
}

}  // namespace

std::vector<LineRef> find_edge_lines(const std::string& path, std::uint64_t id, std::size_t max) {
  return find_lines<Edge, &parse_edge>(path, max, [id](const Edge& x) { return x.src == id || x.dst == id; });
}

std::vector<LineRef> find_vertex_lines(const std::string& path, std::uint64_t id, std::size_t max) {
  return find_lines<std::uint64_t, &parse_vertex>(path, max, [id](std::uint64_t x) { return x == id; });
}

std::string LineRef::printable() const { return excerpt(text); }

std::vector<std::pair<std::uint64_t, double>> read_id_values(const std::string& path) {
  detail::check_readable(path);
  LineReader r(path, 0, 1);
  std::vector<std::pair<std::uint64_t, double>> out;
  const char* b = nullptr;
  const char* e = nullptr;
  while (r.next(b, e)) {
    const char* p = skip_space(b, e);
    if (p == e || *p == '#') continue;
    std::uint64_t id = 0;
    double v = 0;
    const char* q = parse_id(p, e, id);
    if (q != nullptr) q = skip_space(q, e);
    std::from_chars_result fr{};
    if (q != nullptr) fr = std::from_chars(q, e, v);
    if (q == nullptr || fr.ec != std::errc() || fr.ptr == q || skip_space(fr.ptr, e) != e)
      throw Error(r.where() + ": expected 'id value': '" + excerpt(b, e) + "'");
    out.emplace_back(id, v);
  }
  return out;
}

namespace {

template <class V, class Format>
void write_rows(const std::string& path, const std::vector<std::pair<std::uint64_t, V>>& rows, Format format) {
  detail::AtomicFile f(path);
  std::string chunk;
  for (const auto& [id, v] : rows) {
    chunk += std::to_string(id);
    chunk += ' ';
    format(v, chunk);
    chunk += '\n';
    if (chunk.size() > (1 << 20)) {
      f.write(chunk);
      chunk.clear();
    }
  }
  f.write(chunk);
  f.prepare();
  f.commit();
}

}  // namespace

void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, double>>& rows) {
  write_rows(path, rows, [](double v, std::string& out) {
    char num[64];
    const int n = std::snprintf(num, sizeof num, "%.17g", v);
    out.append(num, static_cast<std::size_t>(n));
  });
}

void write_id_values(const std::string& path, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& rows) {
  write_rows(path, rows, [](std::uint64_t v, std::string& out) { out += std::to_string(v); });
}

}  // namespace gyre::io
