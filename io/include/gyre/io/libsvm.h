// Training data for the ML workloads: LIBSVM / SVMlight text and dense CSV, parsed into CSR rows.
//
// LIBSVM: one row a line, `label idx:val idx:val ...`, indices 1-based and strictly ascending,
// `#` starts a comment (to the end of the line), blank and comment-only lines are skipped.
// Labels are stored AS GIVEN (±1, 0/1, or any real value for regression); a classifier treats a
// label > 0 as the positive class, so ±1 and 0/1 files mean the same thing. Stored indices are
// 0-based (file index - 1). With hash_bits = B > 0 an index is replaced by
// hash(file index) mod 2^B (then rows need not be ascending and may repeat an index; a linear
// model adds repeated entries up, which is what hashing means).
//
// CSV: dense rows of numbers separated by commas, one column the label (label_column, 0-based,
// default 0); every other column j becomes feature j (columns after the label shift down by
// one); zeros are not stored. A first line that is not numeric is a header and is skipped.
//
// Parallel reading: a file is cut into CHUNKS of bytes whose size depends only on the file's
// size (plan_chunks); a chunk holds the lines whose first byte falls in it. Ranks and partitions
// take contiguous runs of chunks, and the learners reduce per-chunk partial sums in chunk order,
// so results are the same bits at any number of ranks and partitions. A malformed row throws
// gyre::Error "FILE:LINE: what".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gyre::io {

// Rows in compressed sparse row form.
struct SparseRows {
  std::vector<double> labels;                 // one per row
  std::vector<std::uint64_t> offsets{0};      // rows + 1: row r is [offsets[r], offsets[r+1])
  std::vector<std::uint32_t> indices;         // 0-based feature indices
  std::vector<double> values;                 // beside indices
  std::uint64_t dimension = 0;                // 1 + the largest index seen (2^B when hashing)

  std::uint64_t rows() const { return labels.size(); }
  std::uint64_t nonzeros() const { return indices.size(); }
  void clear() {
    labels.clear();
    offsets.assign(1, 0);
    indices.clear();
    values.clear();
    dimension = 0;
  }
  // Appends the rows of `o` after this one's.
  void append(const SparseRows& o);
};

enum class DataFormat { kLibsvm, kCsv };

struct ReadOptions {
  DataFormat format = DataFormat::kLibsvm;
  int hash_bits = 0;     // 0: indices as given; B in [1, 31]: hash(index) mod 2^B
  int label_column = 0;  // CSV only
};

// A file's format by its name: a ".csv" suffix is CSV, anything else LIBSVM.
DataFormat format_of(const std::string& path);

// The hashed index of a (1-based) file index: hash(idx) mod 2^bits (a fixed 64-bit mix; the same
// on every machine, so a hashed model is portable).
std::uint32_t hash_feature(std::uint64_t file_index, int bits);

// Parses one LIBSVM line and appends it to `out` (nothing for a blank or comment line). Returns
// false with *error set (without the file and line) if the line is malformed; `out` is then
// unchanged.
bool parse_libsvm_line(std::string_view line, int hash_bits, SparseRows& out, std::string* error);
// The same for a CSV line (`header_ok`: a non-numeric line is skipped as a header; *was_header set).
bool parse_csv_line(std::string_view line, int label_column, SparseRows& out, std::string* error,
                    bool header_ok = false, bool* was_header = nullptr);

// Byte chunks of a file: chunk k is [k * chunk_bytes, min((k + 1) * chunk_bytes, file_bytes)).
struct ChunkPlan {
  std::uint64_t file_bytes = 0;
  std::uint64_t chunk_bytes = 1;
  std::size_t chunks = 0;
  std::uint64_t begin(std::size_t k) const { return k * chunk_bytes; }
  std::uint64_t end(std::size_t k) const {
    const std::uint64_t e = (k + 1) * chunk_bytes;
    return e < file_bytes ? e : file_bytes;
  }
  // The chunks part `part` of `parts` takes: [first, last).
  std::size_t first_of(int part, int parts) const { return chunks * static_cast<std::size_t>(part) / static_cast<std::size_t>(parts); }
};
// chunk_bytes = max(min_chunk, ceil(file_bytes / max_chunks)): it depends on the size only.
ChunkPlan plan_chunks(std::uint64_t file_bytes, std::uint64_t min_chunk = std::uint64_t{256} << 10,
                      std::size_t max_chunks = 64);
// plan_chunks of the file's size; throws gyre::Error naming the file if it cannot be read.
ChunkPlan plan_file(const std::string& path);

// The rows of the lines that START in bytes [begin, end) of `path` (begin and end need not be
// line starts). Throws gyre::Error "FILE:LINE: what" for a malformed row (LINE counted from the
// file's start).
SparseRows read_range(const std::string& path, std::uint64_t begin, std::uint64_t end, const ReadOptions& opts);

// The text of those lines (into `text`); returns the file offset of its first byte. For a
// reader that parses line by line (parse_libsvm_line); on a malformed line, read_range of the
// same range throws the error with its line number.
std::uint64_t read_text_range(const std::string& path, std::uint64_t begin, std::uint64_t end, std::string& text);

// Chunks [first, last) of `plan`, each parsed on its own (in parallel on the calling process's
// threads), in chunk order. The first malformed row in file order is the one reported.
std::vector<SparseRows> read_chunks(const std::string& path, const ChunkPlan& plan, std::size_t first,
                                    std::size_t last, const ReadOptions& opts);

// The whole file in one process (tests, tools).
SparseRows read_file(const std::string& path, const ReadOptions& opts);

}  // namespace gyre::io
