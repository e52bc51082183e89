// Text files: the parallel line source and the atomically committed text sink.
//
// read_text_file splits a file into byte ranges at line boundaries, one per partition; a line
// belongs to the partition its first byte falls in. write_text writes to a temporary file beside
// the target and renames it into place only when the whole job succeeded; a failed or cancelled
// job leaves no output file behind.
#pragma once

#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gyre/core/concepts.h"
#include "gyre/core/operator.h"
#include "gyre/core/operators.h"

namespace gyre::detail {

// Throws PlanError naming the file if it is not a regular file (a pipe such as /dev/stdin or
// <(cmd), a FIFO, a device or a directory: inputs are split by byte range and may be read by
// several ranks, so a stream would be lost or hang) or cannot be opened for reading. Checks with
// stat(2) before opening, so a FIFO is refused without blocking. /dev/null is accepted (an empty
// input).
void check_readable(const std::string& path);
// Whether an open file is one check_readable accepts (a regular file or /dev/null).
bool is_input_file(int fd);

std::unique_ptr<NodeRuntime> make_text_file_source(const OpContext& ctx, const std::string& path,
                                                   Input<std::string>* out);

// A file written to "<path>.gyre-tmp-<pid>-<n>" and renamed to `path` on commit.
// The file an output path writes: `path` itself, or a symbolic link's target (written through);
// throws gyre::Error if it is empty or names something other than a regular file (a device,
// a FIFO, a directory), which a rename into place would replace.
std::string output_target(const std::string& path);

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view s);
  void prepare();  // flush, fsync, close; throws gyre::Error naming the file
  void commit();   // rename into place
  void abort();    // remove the temporary file

 private:
  std::string path_;
  std::string tmp_;
  std::FILE* f_ = nullptr;
  bool prepared_ = false;
  bool committed_ = false;
};

// write_text's sink: one line per record, made visible on commit.
template <class T, class Fmt>
class TextSink final : public Sink<T> {
 public:
  TextSink(const std::string& path, Fmt fmt) : fmt_(std::move(fmt)), file_(path) {}
  void consume(std::span<const T> in) override {
    for (const T& x : in) {
      line_ = fmt_(x);
      line_.push_back('\n');
      file_.write(line_);
    }
  }
  void on_end() override { file_.prepare(); }
  void commit() override { file_.commit(); }
  void abort() override { file_.abort(); }

 private:
  Fmt fmt_;
  AtomicFile file_;
  std::string line_;
};

}  // namespace gyre::detail
