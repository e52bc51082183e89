// The checkpoint store. See checkpoint_store.h.
#include "gyre/io/checkpoint_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>

#include "gyre/core/error.h"
#include "gyre/io/checksum.h"
#include "hdf5_util.h"

namespace gyre::io {
namespace {

using namespace h5;  // NOLINT(google-build-using-namespace)

constexpr const char* kManifestFormat = "gyre-checkpoint";
constexpr const char* kRankFormat = "gyre-checkpoint-part";
constexpr std::uint64_t kVersion = 2;

std::string entry_dir(const std::string& dir, const std::string& kind, int superstep) {
  char name[48];
  std::snprintf(name, sizeof name, "/%s-%06d", kind.c_str(), superstep);
  return dir + name;
}
std::string rank_file(const std::string& entry, int rank) { return entry + "/rank-" + std::to_string(rank) + ".h5"; }
std::string manifest_file(const std::string& entry) { return entry + "/MANIFEST.h5"; }
// Size and CRC-32 of a rank's file, as its rank computed them after writing it (so rank 0 need not
// read every rank's file to commit).
std::string sum_file(const std::string& entry, int rank) { return entry + "/rank-" + std::to_string(rank) + ".sum"; }
bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw Error("cannot create checkpoint directory " + path + ": " + std::strerror(errno));
}

// Writes `bytes` to `path` durably: a temporary file, written, fsync'd and renamed into place.
// Every failure (a full disk: "No space left on device") throws gyre::Error naming `path`, and
// leaves no temporary behind.
void write_file(const std::string& path, std::span<const unsigned char> bytes) {
  static std::atomic<int> counter{0};
  const std::string tmp = path + ".gyre-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  auto failed = [&](int fd) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error("cannot write checkpoint " + path + ": " + std::strerror(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) failed(fd);
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      failed(fd);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) failed(fd);
  if (::close(fd) != 0) failed(-1);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) failed(-1);
}
void write_file(const std::string& path, const std::string& text) {
  write_file(path, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
}

void sync_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Size and CRC-32 of a whole file.
std::pair<std::uint64_t, std::uint32_t> file_sum(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  return {static_cast<std::uint64_t>(st.st_size), crc32_of_file(path)};
}

void check_part_name(const std::string& name) {
  const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
  if (!ok) throw Error("checkpoint part name '" + name + "': use letters, digits, '_', '-' and '.'");
}

// Every "head-NNNNNN" / "tail-NNNNNN" directory in `dir`: (superstep, kind), ascending.
std::vector<std::pair<int, std::string>> list_entries(const std::string& dir) {
  std::vector<std::pair<int, std::string>> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    int s = 0;
    char tail = 0;
    if (std::sscanf(e->d_name, "head-%d%c", &s, &tail) == 1) out.emplace_back(s, "head");
    else if (std::sscanf(e->d_name, "tail-%d%c", &s, &tail) == 1) out.emplace_back(s, "tail");
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// A file the store writes in an entry directory: MANIFEST.h5, rank-N.h5, rank-N.sum, or a
// temporary one of those ("<name>.gyre-tmp-...").
bool own_file(const std::string& name) {
  const std::string base = name.substr(0, name.find(".gyre-tmp-"));
  if (base == "MANIFEST.h5") return true;
  int r = 0;
  char c = 0;
  char ext[4] = {};
  return std::sscanf(base.c_str(), "rank-%d.%3s%c", &r, ext, &c) == 2 && r >= 0 &&
         (std::strcmp(ext, "h5") == 0 || std::strcmp(ext, "sum") == 0) && base == "rank-" + std::to_string(r) + "." + ext;
}

// Removes an entry: its manifest first (so it stops existing at once), then the store's other
// files in it, then the directory if nothing else is left in it. True if the directory is gone.
bool remove_entry(const std::string& path) {
  std::remove(manifest_file(path).c_str());
  DIR* d = ::opendir(path.c_str());
  if (d != nullptr) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (own_file(name)) std::remove((path + "/" + name).c_str());
    }
    ::closedir(d);
  }
  return ::rmdir(path.c_str()) == 0 || errno == ENOENT;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Reads a manifest; throws gyre::Error with the reason if it is not a usable one.
struct Manifest {
  CheckpointInfo info;
  std::vector<std::uint64_t> sizes;  // per rank
  std::vector<std::uint32_t> crcs;
};
Manifest read_manifest(const std::string& path) {
  const Reader r(path);
  if (!r.has_attribute("format") || r.string_attribute("format") != kManifestFormat)
    fail(path, "not a gyre checkpoint manifest");
  if (r.integer_attribute("version") != kVersion) fail(path, "unknown checkpoint version");
  Manifest m;
  m.info.fingerprint = r.string_attribute("fingerprint");
  m.info.kind = r.string_attribute("kind");
  m.info.self_contained = r.integer_attribute("self_contained") != 0;
  m.info.superstep = static_cast<int>(r.integer_attribute("superstep"));
  m.info.ranks = static_cast<int>(r.integer_attribute("ranks"));
  m.info.partitions = static_cast<int>(r.integer_attribute("partitions"));
  const auto names = split(r.string_attribute("aggregator_names"));
  const auto values = r.read_all<double>("/aggregators");
  if (names.size() != values.size()) fail(path, "aggregator names and values differ in number");
  for (std::size_t i = 0; i < names.size(); ++i) m.info.aggregators.emplace_back(names[i], values[i]);
  const auto ranks = r.read_all<std::uint64_t>("/files/rank");
  m.sizes = r.read_all<std::uint64_t>("/files/size");
  const auto crcs = r.read_all<std::uint64_t>("/files/crc32");
  if (ranks.size() != m.sizes.size() || ranks.size() != crcs.size() ||
      ranks.size() != static_cast<std::size_t>(m.info.ranks))
    fail(path, "the file table is inconsistent");
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] != i) fail(path, "the file table is inconsistent");
    m.crcs.push_back(static_cast<std::uint32_t>(crcs[i]));
  }
  return m;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {
  if (dir_.empty()) throw Error("checkpoint directory: empty path");
}

void CheckpointStore::write_rank(const CheckpointInfo& info, int rank, const Parts& parts) const {
  for (const auto& part : parts) check_part_name(part.first);
  make_dir(dir_);
  const std::string entry = entry_dir(dir_, info.kind, info.superstep);
  make_dir(entry);
  // An entry written again (a resumed run repeats the supersteps after its resume point) does not
  // exist until it is committed again.
  std::remove(manifest_file(entry).c_str());
  const std::string path = rank_file(entry, rank);
  std::size_t bytes_total = 0;
  for (const auto& part : parts) bytes_total += part.second.size() + 512;
  Writer w(path, Writer::Target::kMemory, bytes_total);
  w.attribute("format", kRankFormat);
  w.attribute("version", kVersion);
  w.attribute("fingerprint", info.fingerprint);
  w.attribute("kind", info.kind);
  w.attribute("superstep", static_cast<std::uint64_t>(info.superstep));
  w.attribute("rank", static_cast<std::uint64_t>(rank));
  w.group("/parts");
  for (const auto& [name, bytes] : parts)
    w.dataset(("/parts/" + name).c_str(), std::span<const std::uint8_t>(
                                              reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  const std::vector<unsigned char> image = w.image();
  write_file(path, image);
  const uLong crc = crc32(crc32(0L, Z_NULL, 0), image.data(), static_cast<uInt>(image.size()));
  write_file(sum_file(entry, rank), std::to_string(image.size()) + " " + std::to_string(crc) + "\n");
}

bool CheckpointStore::written(const CheckpointInfo& info) const {
  const std::string entry = entry_dir(dir_, info.kind, info.superstep);
  for (int r = 0; r < info.ranks; ++r)
    if (!exists(sum_file(entry, r)) || !exists(rank_file(entry, r))) return false;
  return true;
}

void CheckpointStore::commit(const CheckpointInfo& info) const {
  const std::string entry = entry_dir(dir_, info.kind, info.superstep);
  std::vector<std::uint64_t> ranks, sizes, crcs;
  for (int r = 0; r < info.ranks; ++r) {
    std::ifstream in(sum_file(entry, r));
    std::uint64_t size = 0, crc = 0;
    if (!(in >> size >> crc) || !exists(rank_file(entry, r)))
      throw Error("checkpoint " + entry + ": rank " + std::to_string(r) + "'s file is missing");
    ranks.push_back(static_cast<std::uint64_t>(r));
    sizes.push_back(size);
    crcs.push_back(crc);
  }
  {
    Writer w(manifest_file(entry), Writer::Target::kMemory);
    w.attribute("format", kManifestFormat);
    w.attribute("version", kVersion);
    w.attribute("fingerprint", info.fingerprint);
    w.attribute("kind", info.kind);
    w.attribute("self_contained", static_cast<std::uint64_t>(info.self_contained ? 1 : 0));
    w.attribute("superstep", static_cast<std::uint64_t>(info.superstep));
    w.attribute("ranks", static_cast<std::uint64_t>(info.ranks));
    w.attribute("partitions", static_cast<std::uint64_t>(info.partitions));
    std::vector<std::string> names;
    std::vector<double> values;
    for (const auto& [n, v] : info.aggregators) {
      names.push_back(n);
      values.push_back(v);
    }
    w.attribute("aggregator_names", join(names));
    w.dataset("/aggregators", values);
    w.group("/files");
    w.dataset("/files/rank", ranks);
    w.dataset("/files/size", sizes);
    w.dataset("/files/crc32", crcs);
    write_file(manifest_file(entry), w.image());
  }
  sync_dir(entry);
  sync_dir(dir_);
  if (!info.self_contained) return;
  // Keep the newest `keep` self-contained entries and what came after the oldest of them; entries
  // older than this one that never got their manifest will not get it (entries are committed in
  // order): they go too.
  const auto all = list_entries(dir_);
  int kept = 0;
  int floor = -1;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (it->first > info.superstep) continue;  // (a newer one: not ours to judge)
    const std::string e = entry_dir(dir_, it->second, it->first);
    if (!exists(manifest_file(e))) {
      if (it->first < info.superstep) remove_entry(e);
      continue;
    }
    bool self_contained = false;
    try {
      self_contained = read_manifest(manifest_file(e)).info.self_contained;
    } catch (const Error&) {
      continue;
    }
    if (self_contained && kept < keep_) {
      ++kept;
      floor = it->first;
    }
  }
  for (const auto& [s, kind] : all) {
    if (s >= floor) break;
    remove_entry(entry_dir(dir_, kind, s));
  }
}

int CheckpointStore::discard(int after) const {
  int removed = 0;
  for (const auto& [s, kind] : list_entries(dir_)) {
    const std::string e = entry_dir(dir_, kind, s);
    if (s <= after && exists(manifest_file(e))) continue;
    remove_entry(e);
    ++removed;
  }
  if (removed > 0) sync_dir(dir_);
  return removed;
}

CheckpointStorage::Listing CheckpointStore::list(const std::string& fingerprint) const {
  Listing out;
  for (const auto& [s, kind] : list_entries(dir_)) {
    const std::string e = entry_dir(dir_, kind, s);
    const std::string name = "checkpoint " + e;
    if (!exists(manifest_file(e))) {
      out.skipped.push_back(name + ": incomplete (no manifest)");
      continue;
    }
    Manifest m;
    try {
      m = read_manifest(manifest_file(e));
    } catch (const Error& err) {
      out.skipped.push_back(name + ": unreadable manifest: " + err.what());
      continue;
    }
    if (m.info.fingerprint != fingerprint)
      throw Error(name + " belongs to another job, loop or input (fingerprint '" + m.info.fingerprint +
                  "'; this run's is '" + fingerprint + "'): use another checkpoint directory, or delete it to start over");
    out.entries.push_back(Entry{std::move(m.info), e});
  }
  return out;
}

std::string CheckpointStore::verify(const Entry& entry) const {
  Manifest m;
  try {
    m = read_manifest(manifest_file(entry.path));
  } catch (const Error& err) {
    return std::string("unreadable manifest: ") + err.what();
  }
  for (int r = 0; r < m.info.ranks; ++r) {
    const std::string path = rank_file(entry.path, r);
    if (::access(path.c_str(), R_OK) != 0) return "rank " + std::to_string(r) + "'s file is missing";
    const auto [size, crc] = file_sum(path);
    const auto i = static_cast<std::size_t>(r);
    if (size != m.sizes[i])
      return "rank " + std::to_string(r) + "'s file has " + std::to_string(size) + " bytes, the manifest says " +
             std::to_string(m.sizes[i]) + " (truncated?)";
    if (crc != m.crcs[i]) return "rank " + std::to_string(r) + "'s file fails its checksum (damaged)";
  }
  return {};
}

std::map<std::string, std::string> CheckpointStore::read_parts(const Entry& entry) const {
  const Manifest m = read_manifest(manifest_file(entry.path));
  std::map<std::string, std::string> parts;
  for (int rank = 0; rank < m.info.ranks; ++rank) {
    const std::string path = rank_file(entry.path, rank);
    const Reader r(path);
    if (r.string_attribute("fingerprint") != m.info.fingerprint)
      fail(path, "belongs to another checkpoint than its manifest");
    for (const auto& name : r.children("/parts")) {
      const auto bytes = r.read_all<std::uint8_t>(("/parts/" + name).c_str());
      if (!parts.emplace(name, std::string(bytes.begin(), bytes.end())).second)
        fail(path, "part '" + name + "' also appears in another rank's file");
    }
  }
  return parts;
}

}  // namespace gyre::io
