// LIBSVM / CSV parsing and the chunked parallel reader. See libsvm.h.
#include "gyre/io/libsvm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include <tbb/parallel_for.h>

#include "gyre/core/error.h"

namespace gyre::io {
namespace {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

inline const char* skip_space(const char* p, const char* e) {
  while (p < e && is_space(*p)) ++p;
  return p;
}

inline const char* token_end(const char* p, const char* e) {
  while (p < e && !is_space(*p)) ++p;
  return p;
}

bool parse_double(const char* b, const char* e, double& v) {
  if (b < e && *b == '+') ++b;  // from_chars refuses a leading '+'
  const auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e;
}

std::string quote(const char* b, const char* e) {
  std::string s(b, static_cast<std::size_t>(std::min<std::ptrdiff_t>(e - b, 40)));
  return "'" + s + (e - b > 40 ? "...'" : "'");
}

// Open file, closed on scope exit.
class File {
 public:
  explicit File(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  std::uint64_t size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error("cannot read '" + path_ + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw Error("'" + path_ + "' is not a regular file");
    return static_cast<std::uint64_t>(st.st_size);
  }
  // Reads [off, off + n) into out (fewer bytes at the end of the file).
  std::size_t read(std::uint64_t off, std::size_t n, char* out) const {
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, out + got, n - got, static_cast<off_t>(off + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw Error("cannot read '" + path_ + "': " + std::strerror(errno));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }

 private:
  std::string path_;
  int fd_;
};

// The 1-based line number of byte `pos` (counts newlines before it; only on the error path).
std::uint64_t line_of(const File& f, std::uint64_t pos) {
  std::uint64_t line = 1;
  std::vector<char> buf(std::size_t{1} << 20);
  for (std::uint64_t off = 0; off < pos;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), pos - off));
    const std::size_t got = f.read(off, want, buf.data());
    if (got == 0) break;
    line += static_cast<std::uint64_t>(std::count(buf.data(), buf.data() + got, '\n'));
    off += got;
  }
  return line;
}

// Reads the lines starting in [begin, end): the bytes from the first line start >= begin to the
// end of the last line starting before end. Returns the offset of the first byte read.
std::uint64_t read_lines(const File& f, std::uint64_t file_bytes, std::uint64_t begin, std::uint64_t end,
                         std::string& out) {
  out.clear();
  end = std::min(end, file_bytes);
  if (begin >= end) return begin;
  std::uint64_t start = begin;
  if (begin > 0) {
    // A line starts at `begin` only if the byte before it ends a line.
    std::string probe;
    char c = 0;
    f.read(begin - 1, 1, &c);
    if (c != '\n') {
      // Skip to after the next newline.
      std::uint64_t pos = begin;
      char buf[4096];
      for (;;) {
        if (pos >= end) return end;
        const std::size_t got = f.read(pos, sizeof buf, buf);
        if (got == 0) return end;
        const void* nl = std::memchr(buf, '\n', got);
        if (nl != nullptr) {
          start = pos + static_cast<std::uint64_t>(static_cast<const char*>(nl) - buf) + 1;
          break;
        }
        pos += got;
      }
      if (start >= end) return end;
    }
  }
  out.resize(static_cast<std::size_t>(end - start));
  out.resize(f.read(start, out.size(), out.data()));
  // Extend to the end of the last line.
  if (!out.empty() && out.back() != '\n') {
    std::uint64_t pos = start + out.size();
    char buf[4096];
    for (;;) {
      const std::size_t got = f.read(pos, sizeof buf, buf);
      if (got == 0) break;
      const void* nl = std::memchr(buf, '\n', got);
      if (nl != nullptr) {
        out.append(buf, static_cast<std::size_t>(static_cast<const char*>(nl) - buf) + 1);
        break;
      }
      out.append(buf, got);
      pos += got;
    }
  }
  return start;
}

SparseRows parse_text(const std::string& path, const File& f, std::uint64_t start, const std::string& text,
                      const ReadOptions& opts) {
  SparseRows rows;
  rows.labels.reserve(text.size() / 128);
  rows.offsets.reserve(text.size() / 128 + 1);
  rows.indices.reserve(text.size() / 8);
  rows.values.reserve(text.size() / 8);
  std::string error;
  std::size_t pos = 0;
  std::uint64_t local_line = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string_view line(text.data() + pos, nl - pos);
    bool ok = true;
    if (opts.format == DataFormat::kLibsvm) {
      ok = parse_libsvm_line(line, opts.hash_bits, rows, &error);
    } else {
      const std::size_t before = rows.indices.size();
      ok = parse_csv_line(line, opts.label_column, rows, &error, start == 0 && local_line == 0);
      if (ok && opts.hash_bits > 0)  // column j (1-based, labels not counted) hashes like LIBSVM index j
        for (std::size_t k = before; k < rows.indices.size(); ++k)
          rows.indices[k] = hash_feature(std::uint64_t{rows.indices[k]} + 1, opts.hash_bits);
    }
    if (!ok) {
      const std::uint64_t line_no = line_of(f, start) + local_line;
      throw Error(path + ":" + std::to_string(line_no) + ": " + error);
    }
    ++local_line;
    pos = nl + 1;
  }
  if (opts.hash_bits > 0) rows.dimension = std::uint64_t{1} << opts.hash_bits;
  return rows;
}

}  // namespace

void SparseRows::append(const SparseRows& o) {
  const std::uint64_t base = indices.size();
  labels.insert(labels.end(), o.labels.begin(), o.labels.end());
  for (std::size_t r = 1; r < o.offsets.size(); ++r) offsets.push_back(base + o.offsets[r]);
  indices.insert(indices.end(), o.indices.begin(), o.indices.end());
  values.insert(values.end(), o.values.begin(), o.values.end());
  dimension = std::max(dimension, o.dimension);
}

DataFormat format_of(const std::string& path) {
  return path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0 ? DataFormat::kCsv : DataFormat::kLibsvm;
}

std::uint32_t hash_feature(std::uint64_t file_index, int bits) {
  // splitmix64's finaliser: every bit of the index reaches every bit of the hash.
  std::uint64_t z = file_index + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<std::uint32_t>(z & ((std::uint64_t{1} << bits) - 1));
}

bool parse_libsvm_line(std::string_view line, int hash_bits, SparseRows& out, std::string* error) {
  const char* p = line.data();
  const char* e = p + line.size();
  if (const void* hash = std::memchr(p, '#', line.size()); hash != nullptr) e = static_cast<const char*>(hash);
  p = skip_space(p, e);
  if (p == e) return true;  // blank or comment
  const char* t = token_end(p, e);
  double label = 0;
  const std::ptrdiff_t lt = t - p;  // fast path: +1, -1, 1, 0
  if (lt == 1 && (*p == '1' || *p == '0')) {
    label = *p == '1' ? 1.0 : 0.0;
  } else if (lt == 2 && (*p == '+' || *p == '-') && p[1] == '1') {
    label = *p == '+' ? 1.0 : -1.0;
  } else if (!parse_double(p, t, label) || !std::isfinite(label)) {
    if (error) *error = "bad label " + quote(p, t) + " (expected a number, then idx:value pairs)";
    return false;
  }
  const std::size_t first = out.indices.size();
  std::uint64_t prev = 0;
  std::uint64_t dim = out.dimension;
  auto undo = [&] {
    out.indices.resize(first);
    out.values.resize(first);
  };
  for (p = skip_space(t, e); p < e; p = skip_space(t, e)) {
    t = token_end(p, e);
    const char* colon = static_cast<const char*>(std::memchr(p, ':', static_cast<std::size_t>(t - p)));
    if (colon == nullptr) {
      undo();
      if (error) *error = "bad feature " + quote(p, t) + " (expected idx:value)";
      return false;
    }
    if (colon - p == 3 && std::memcmp(p, "qid", 3) == 0) continue;  // SVMlight query id: not a feature
    std::uint64_t idx = 0;
    // Fast path: up to 10 plain digits (no overflow of 64 bits); anything else from_chars.
    bool digits = colon > p && colon - p <= 10;
    for (const char* q = p; digits && q < colon; ++q) {
      const unsigned d = static_cast<unsigned>(*q) - '0';
      if (d > 9) digits = false;
      idx = idx * 10 + d;
    }
    const auto r = digits ? std::from_chars_result{colon, std::errc()} : std::from_chars(p, colon, idx);
    if (r.ec != std::errc() || r.ptr != colon) {
      undo();
      if (error) *error = "bad feature index " + quote(p, colon) + " (expected a positive integer)";
      return false;
    }
    if (idx == 0 || idx > std::numeric_limits<std::uint32_t>::max()) {
      undo();
      if (error) *error = "feature index " + std::to_string(idx) + " out of range (indices are 1-based, at most 2^32 - 1)";
      return false;
    }
    if (idx <= prev) {
      undo();
      if (error)
        *error = "feature index " + std::to_string(idx) + " after " + std::to_string(prev) +
                 " (indices must be strictly ascending)";
      return false;
    }
    double v = 1.0;  // fast path: "idx:1", a binary feature
    if (!(t - colon == 2 && colon[1] == '1') && (!parse_double(colon + 1, t, v) || !std::isfinite(v))) {
      undo();
      if (error) *error = "bad value " + quote(colon + 1, t) + " of feature " + std::to_string(idx);
      return false;
    }
    prev = idx;
    if (hash_bits > 0) {
      out.indices.push_back(hash_feature(idx, hash_bits));
    } else {
      out.indices.push_back(static_cast<std::uint32_t>(idx - 1));
      dim = std::max(dim, idx);
    }
    out.values.push_back(v);
  }
  out.labels.push_back(label);
  out.offsets.push_back(out.indices.size());
  out.dimension = hash_bits > 0 ? std::uint64_t{1} << hash_bits : dim;
  return true;
}

bool parse_csv_line(std::string_view line, int label_column, SparseRows& out, std::string* error, bool header_ok,
                    bool* was_header) {
  if (was_header) *was_header = false;
  const char* p = line.data();
  const char* e = p + line.size();
  while (e > p && is_space(e[-1])) --e;
  p = skip_space(p, e);
  if (p == e || *p == '#') return true;
  const std::size_t first = out.indices.size();
  double label = 0;
  bool have_label = false;
  int col = 0;
  std::uint64_t feature = 0;
  for (const char* b = p;; ++col) {
    const char* c = static_cast<const char*>(std::memchr(b, ',', static_cast<std::size_t>(e - b)));
    const char* fe = c ? c : e;
    const char* fb = skip_space(b, fe);
    const char* fz = fe;
    while (fz > fb && is_space(fz[-1])) --fz;
    double v = 0;
    if (!parse_double(fb, fz, v) || !std::isfinite(v)) {
      out.indices.resize(first);
      out.values.resize(first);
      if (header_ok) {
        if (was_header) *was_header = true;
        return true;
      }
      if (error) *error = "bad number " + quote(fb, fz) + " in column " + std::to_string(col + 1);
      return false;
    }
    if (col == label_column) {
      label = v;
      have_label = true;
    } else {
      if (v != 0) {
        out.indices.push_back(static_cast<std::uint32_t>(feature));
        out.values.push_back(v);
      }
      ++feature;
    }
    if (!c) break;
    b = c + 1;
  }
  if (!have_label) {
    out.indices.resize(first);
    out.values.resize(first);
    if (error) *error = "no label column " + std::to_string(label_column + 1) + " (the row has " + std::to_string(col + 1) + " columns)";
    return false;
  }
  out.labels.push_back(label);
  out.offsets.push_back(out.indices.size());
  out.dimension = std::max(out.dimension, feature);
  return true;
}

ChunkPlan plan_chunks(std::uint64_t file_bytes, std::uint64_t min_chunk, std::size_t max_chunks) {
  ChunkPlan p;
  p.file_bytes = file_bytes;
  p.chunk_bytes = std::max<std::uint64_t>({min_chunk, (file_bytes + max_chunks - 1) / max_chunks, 1});
  p.chunks = static_cast<std::size_t>((file_bytes + p.chunk_bytes - 1) / p.chunk_bytes);
  return p;
}

ChunkPlan plan_file(const std::string& path) {
  File f(path);
  return plan_chunks(f.size());
}

std::uint64_t read_text_range(const std::string& path, std::uint64_t begin, std::uint64_t end, std::string& text) {
  File f(path);
  return read_lines(f, f.size(), begin, end, text);
}

SparseRows read_range(const std::string& path, std::uint64_t begin, std::uint64_t end, const ReadOptions& opts) {
  File f(path);
  const std::uint64_t size = f.size();
  std::string text;
  const std::uint64_t start = read_lines(f, size, begin, end, text);
  return parse_text(path, f, start, text, opts);
}

std::vector<SparseRows> read_chunks(const std::string& path, const ChunkPlan& plan, std::size_t first, std::size_t last,
                                    const ReadOptions& opts) {
  File f(path);
  const std::uint64_t size = f.size();
  if (size != plan.file_bytes) throw Error("'" + path + "' changed while it was read");
  std::vector<SparseRows> out(last > first ? last - first : 0);
  std::vector<std::string> errors(out.size());
  tbb::parallel_for(std::size_t{0}, out.size(), [&](std::size_t i) {
    try {
      std::string text;
      const std::uint64_t start = read_lines(f, size, plan.begin(first + i), plan.end(first + i), text);
      out[i] = parse_text(path, f, start, text, opts);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  return out;
}

SparseRows read_file(const std::string& path, const ReadOptions& opts) {
  const ChunkPlan plan = plan_file(path);
  SparseRows all;
  if (opts.hash_bits > 0) all.dimension = std::uint64_t{1} << opts.hash_bits;
  for (const SparseRows& c : read_chunks(path, plan, 0, plan.chunks, opts)) all.append(c);
  return all;
}

}  // namespace gyre::io
