// Text file source (parallel, split at line boundaries) and AtomicFile.
#include "gyre/core/text_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "gyre/core/error.h"

namespace gyre::detail {
namespace {

std::string errno_text() { return std::strerror(errno); }

// A regular file, or the null device (reads as empty).
bool input_kind(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return true;
  struct stat null {};
  return S_ISCHR(st.st_mode) && ::stat("/dev/null", &null) == 0 && S_ISCHR(null.st_mode) && st.st_rdev == null.st_rdev;
}

class TextFileSource final : public SourceOp<std::string> {
 public:
  TextFileSource(const OpContext& ctx, std::string path, Input<std::string>* out)
      : SourceOp<std::string>(ctx, out), path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "rb");
    if (f_ == nullptr) throw Error("cannot open '" + path_ + "': " + errno_text());
    struct stat st {};
    if (::fstat(::fileno(f_), &st) != 0) throw Error("cannot stat '" + path_ + "': " + errno_text());
    if (!input_kind(st)) throw Error("'" + path_ + "' is not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::tie(pos_, end_) = split_range(size, ctx.partition, ctx.parallelism);
    // A line belongs to the partition its first byte is in: unless we start right after a
    // newline, skip the partial line (the previous partition reads it).
    if (pos_ > 0) {
      seek(pos_ - 1);
      const int c = std::fgetc(f_);
      if (c != '\n') {
        ++pos_;
        while (true) {
          const int d = std::fgetc(f_);
          if (d == EOF) break;
          ++pos_;
          if (d == '\n') break;
        }
      }
    }
  }
  ~TextFileSource() override {
    std::free(line_);  // NOLINT(cppcoreguidelines-no-malloc): allocated by getline(3)
    if (f_ != nullptr) std::fclose(f_);
  }
  TextFileSource(const TextFileSource&) = delete;
  TextFileSource& operator=(const TextFileSource&) = delete;

  SourceStatus produce(std::size_t max_batches) override {
    for (std::size_t b = 0; b < max_batches; ++b) {
      buf_.clear();
      while (buf_.size() < cap_ && pos_ < end_) {
        const ssize_t n = ::getline(&line_, &line_cap_, f_);
        if (n < 0) {
          if (std::ferror(f_) != 0) throw Error("error reading '" + path_ + "': " + errno_text());
          pos_ = end_;
          break;
        }
        pos_ += static_cast<std::uint64_t>(n);
        std::size_t len = static_cast<std::size_t>(n);
        if (len > 0 && line_[len - 1] == '\n') --len;
        if (len > 0 && line_[len - 1] == '\r') --len;
        buf_.emplace_back(line_, len);
      }
      if (!buf_.empty()) emit(std::span<const std::string>(buf_));
      if (pos_ >= end_) {
        out_->on_event(Event::end());
        return SourceStatus::kDone;
      }
    }
    return SourceStatus::kMore;
  }

 private:
  void seek(std::uint64_t off) {
    if (::fseeko(f_, static_cast<off_t>(off), SEEK_SET) != 0)
      throw Error("cannot seek in '" + path_ + "': " + errno_text());
  }
  std::string path_;
  std::FILE* f_ = nullptr;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
  char* line_ = nullptr;
  std::size_t line_cap_ = 0;
  std::vector<std::string> buf_;
};

std::atomic<unsigned> tmp_counter{0};

}  // namespace

void check_readable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw PlanError("cannot read input file '" + path + "': " + errno_text());
  if (S_ISDIR(st.st_mode)) throw PlanError("input file '" + path + "' is a directory");
  if (!input_kind(st)) {
    const char* kind = S_ISFIFO(st.st_mode)   ? "a pipe or FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    throw PlanError("input file '" + path + "' is " + kind +
                    ": gyre reads inputs by byte range from every rank, so it needs a regular file; write the "
                    "data to a file first (e.g. 'cat > graph.txt') and pass that file");
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw PlanError("cannot read input file '" + path + "': " + errno_text());
  std::fclose(f);
}

bool is_input_file(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && input_kind(st);
}

std::unique_ptr<NodeRuntime> make_text_file_source(const OpContext& ctx, const std::string& path,
                                                   Input<std::string>* out) {
  return std::make_unique<TextFileSource>(ctx, path, out);
}

// The file an output path names: a symbolic link is written through (its target is replaced,
// not the link); anything that is not a regular file (a device such as /dev/null, a FIFO, a
// directory) is refused, since renaming over it would replace it.
std::string output_target(const std::string& path) {
  if (path.empty()) throw Error("an output file name is empty");
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return p;  // a new file
    if (S_ISREG(st.st_mode)) return p;
    if (!S_ISLNK(st.st_mode))
      throw Error("output '" + path + "' is not a regular file (" +
                  (S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a FIFO or socket") +
                  "): gyre writes a file and renames it into place, so name a file");
    std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
    const ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n < 0) throw Error("cannot read the link '" + p + "': " + std::strerror(errno));
    target.resize(static_cast<std::size_t>(n));
    if (target.empty() || target[0] != '/') {
      const auto slash = p.rfind('/');
      if (slash != std::string::npos) target = p.substr(0, slash + 1) + target;
    }
    p = target;
  }
  throw Error("output '" + path + "': too many levels of symbolic links");
}

AtomicFile::AtomicFile(std::string path) : path_(output_target(path)) {
  tmp_ = path_ + ".gyre-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(tmp_counter++);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (f_ == nullptr)
    throw Error("cannot create output file '" + path_ + "' (temporary '" + tmp_ + "'): " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (!committed_) abort();
}

void AtomicFile::write(std::string_view s) {
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size())
    throw Error("cannot write output file '" + path_ + "': " + errno_text());
}

void AtomicFile::prepare() {
  if (prepared_) return;
  if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0)
    throw Error("cannot write output file '" + path_ + "': " + errno_text());
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) throw Error("cannot close output file '" + path_ + "': " + errno_text());
  prepared_ = true;
}

void AtomicFile::commit() {
  if (committed_) return;
  prepare();
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error("cannot move '" + tmp_ + "' to '" + path_ + "': " + errno_text());
  committed_ = true;
}

void AtomicFile::abort() {
  if (f_ != nullptr) {
    std::fclose(f_);
    f_ = nullptr;
  }
  if (!committed_) std::remove(tmp_.c_str());
}

}  // namespace gyre::detail
