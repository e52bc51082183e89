// Edge-list, vertex-file, properties and result-file I/O. See graph_files.h.
#include "gyre/io/graph_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gyre/core/error.h"
#include "gyre/core/text_io.h"

namespace gyre::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// A line shown in an error message: at most 60 characters.
std::string excerpt(const char* b, const char* e) {
  std::string s(b, std::min<std::size_t>(static_cast<std::size_t>(e - b), 60));
  if (e - b > 60) s += "...";
  return s;
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
// message (without file and line) if malformed.
bool parse_edge(const char* b, const char* e, Edge& out) {
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
  if (p == e) return true;
  if (q == p) throw std::string("expected 'src dst [weight]' with integer vertex ids");
  // A weight: any decimal number, then nothing but blanks.
  double w = 0;
  const auto r = std::from_chars(p, e, w);
  if (r.ec != std::errc() || r.ptr == p) throw std::string("the third column (weight) is not a number");
  if (skip_space(r.ptr, e) != e) throw std::string("expected 'src dst [weight]': more than three columns");
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

bool is_gzip(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  unsigned char m[2] = {0, 0};
  const std::size_t n = std::fread(m, 1, 2, f);
  std::fclose(f);
  return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

// Reads lines of a file: a byte range of a plain file (lines starting in [begin, end)), or all
// of a gzip file. Counts line numbers only when it needs one (an error).
class LineReader {
 public:
  LineReader(std::string path, int partition, int parallelism) : path_(std::move(path)) {
    gz_ = is_gzip(path_);
    if (gz_) {
      if (partition != 0) {
        done_ = true;
        return;
      }
      gzf_ = gzopen(path_.c_str(), "rb");
      if (gzf_ == nullptr) throw Error("cannot open '" + path_ + "': " + errno_text());
      gzbuffer(gzf_, 1 << 20);
      return;
    }
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error("cannot open '" + path_ + "': " + errno_text());
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error("cannot stat '" + path_ + "': " + errno_text());
    const auto size = static_cast<std::uint64_t>(st.st_size);
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
    }
    buf_offset_ = file_pos_;
  }
  ~LineReader() {
    if (fd_ >= 0) ::close(fd_);
    if (gzf_ != nullptr) gzclose(gzf_);
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
      if (e > b && e[-1] == '\r') --e;
      return true;
    }
    return false;
  }

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
    long n = 0;
    if (gz_) {
      n = gzread(gzf_, buf_.data() + fill_, static_cast<unsigned>(room));
      if (n < 0) {
        int err = 0;
        const char* msg = gzerror(gzf_, &err);
        throw Error("cannot read '" + path_ + "': " + (msg != nullptr ? msg : "gzip error"));
      }
    } else {
      n = static_cast<long>(::pread(fd_, buf_.data() + fill_, room, static_cast<off_t>(file_pos_)));
      if (n < 0) throw Error("cannot read '" + path_ + "': " + errno_text());
      file_pos_ += static_cast<std::uint64_t>(n);
    }
    if (n == 0) eof_ = true;
    fill_ += static_cast<std::size_t>(n);
  }

  std::string path_;
  bool gz_ = false;
  gzFile gzf_ = nullptr;
  int fd_ = -1;
  std::uint64_t file_pos_ = 0;    // next byte to read (plain)
  std::uint64_t end_ = 0;         // lines starting at or after this belong to the next partition
  std::uint64_t buf_offset_ = 0;  // file offset of buf_[0] (plain)
  std::uint64_t line_offset_ = 0;
  std::uint64_t lines_read_ = 0;
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
        this->out_->end();
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

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

GraphFormat guess_format(const std::string& path) {
  if (ends_with(path, ".properties")) return GraphFormat::kGraphalytics;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return GraphFormat::kHdf5;
  return GraphFormat::kEdgeList;
}

GraphalyticsGraph read_properties(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read '" + path + "': " + errno_text());
  GraphalyticsGraph g;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw Error(path + ":" + std::to_string(n) + ": expected 'key = value': '" + line + "'");
    auto trim = [](std::string s) {
      const auto a = s.find_first_not_of(" \t");
      const auto b = s.find_last_not_of(" \t");
      return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    };
    g.properties[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  // graph.<name>.vertex-file: the name is what sits between "graph." and ".vertex-file".
  for (const auto& [k, v] : g.properties) {
    if (k.rfind("graph.", 0) == 0 && ends_with(k, ".vertex-file")) g.name = k.substr(6, k.size() - 6 - 12);
  }
  if (g.name.empty()) throw Error(path + ": no 'graph.<name>.vertex-file' entry: not a Graphalytics properties file");
  auto get = [&](const std::string& key) {
    const auto it = g.properties.find("graph." + g.name + "." + key);
    if (it == g.properties.end()) throw Error(path + ": missing 'graph." + g.name + "." + key + "'");
    return it->second;
  };
  g.vertex_file = dir_of(path) + get("vertex-file");
  g.edge_file = dir_of(path) + get("edge-file");
  const std::string directed = get("directed");
  if (directed != "true" && directed != "false")
    throw Error(path + ": 'graph." + g.name + ".directed' is '" + directed + "', expected true or false");
  g.directed = directed == "true";
  return g;
}

namespace {

// A parallel source of the lines of `path` parsed by Parse.
template <class T, bool (*Parse)(const char*, const char*, T&)>
Stream<T> parsed_source(Environment& env, const std::string& what, const std::string& path) {
  detail::NodeSpec spec;
  spec.kind = "source: " + what + " '" + path + "'";
  spec.name = spec.kind;
  spec.parallelism = env.default_parallelism();
  spec.bounded = true;
  spec.make = [path](const detail::OpContext& c, detail::PortBase* out) -> std::unique_ptr<detail::NodeRuntime> {
    return std::make_unique<ParsedLineSource<T, Parse>>(c, path, static_cast<detail::Input<T>*>(out));
  };
  spec.validate = [path] { detail::check_readable(path); };
  detail::set_output_type<T>(spec);
  return Stream<T>(&env, env.add_node(std::move(spec)));
}

}  // namespace

Stream<Edge> read_edge_list(Environment& env, const std::string& path) {
  return parsed_source<Edge, &parse_edge>(env, "edge list", path);
}

Stream<std::uint64_t> read_vertex_file(Environment& env, const std::string& path) {
  return parsed_source<std::uint64_t, &parse_vertex>(env, "vertex file", path);
}

std::vector<Edge> read_edge_list_serial(const std::string& path) {
  detail::check_readable(path);
  LineReader r(path, 0, 1);
  std::vector<Edge> out;
  const char* b = nullptr;
  const char* e = nullptr;
  while (r.next(b, e)) {
    Edge x{};
    try {
      if (parse_edge(b, e, x)) out.push_back(x);
    } catch (const std::string& msg) {
      throw Error(r.where() + ": " + msg + ": '" + excerpt(b, e) + "'");
    }
  }
  return out;
}

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
