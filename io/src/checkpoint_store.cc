// The checkpoint store. See checkpoint_store.h.
#include "gyre/io/checkpoint_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gyre/core/error.h"
#include "hdf5_util.h"

namespace gyre::io {
namespace {

using namespace h5;  // NOLINT(google-build-using-namespace)

constexpr const char* kManifestFormat = "gyre-checkpoint";
constexpr const char* kRankFormat = "gyre-checkpoint-part";
constexpr std::uint64_t kVersion = 1;

std::string checkpoint_dir(const std::string& dir, int superstep) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt-%06d", superstep);
  return dir + "/" + name;
}
std::string rank_file(const std::string& ckpt, int rank) { return ckpt + "/rank-" + std::to_string(rank) + ".h5"; }
std::string manifest_file(const std::string& ckpt) { return ckpt + "/MANIFEST.h5"; }

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw Error("cannot create checkpoint directory '" + path + "': " + std::strerror(errno));
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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "'");
  std::vector<char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    size += n;
  }
  return {size, static_cast<std::uint32_t>(crc)};
}

void check_part_name(const std::string& name) {
  const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
  if (!ok) throw Error("checkpoint part name '" + name + "': use letters, digits, '_', '-' and '.'");
}

// The superstep of every "ckpt-NNNNNN" directory in `dir`, ascending.
std::vector<int> list_checkpoints(const std::string& dir) {
  std::vector<int> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    int s = 0;
    char tail = 0;
    if (std::sscanf(e->d_name, "ckpt-%d%c", &s, &tail) == 1) out.push_back(s);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

void remove_tree(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d != nullptr) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") std::remove((path + "/" + name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
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
  std::vector<CheckpointFile> files;
};
Manifest read_manifest(const std::string& path) {
  const Reader r(path);
  if (!r.has_attribute("format") || r.string_attribute("format") != kManifestFormat)
    fail(path, "not a gyre checkpoint manifest");
  if (r.integer_attribute("version") != kVersion) fail(path, "unknown checkpoint version");
  Manifest m;
  m.info.fingerprint = r.string_attribute("fingerprint");
  m.info.kind = r.string_attribute("kind");
  m.info.superstep = static_cast<int>(r.integer_attribute("superstep"));
  m.info.ranks = static_cast<int>(r.integer_attribute("ranks"));
  m.info.partitions = static_cast<int>(r.integer_attribute("partitions"));
  const auto names = split(r.string_attribute("aggregator_names"));
  const auto values = r.read_all<double>("/aggregators");
  if (names.size() != values.size()) fail(path, "aggregator names and values differ in number");
  for (std::size_t i = 0; i < names.size(); ++i) m.info.aggregators.emplace_back(names[i], values[i]);
  const auto ranks = r.read_all<std::uint64_t>("/files/rank");
  const auto sizes = r.read_all<std::uint64_t>("/files/size");
  const auto crcs = r.read_all<std::uint64_t>("/files/crc32");
  if (ranks.size() != sizes.size() || ranks.size() != crcs.size()) fail(path, "the file table is inconsistent");
  for (std::size_t i = 0; i < ranks.size(); ++i)
    m.files.push_back({static_cast<int>(ranks[i]), sizes[i], static_cast<std::uint32_t>(crcs[i])});
  return m;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {
  if (dir_.empty()) throw Error("checkpoint directory: empty path");
}

CheckpointFile CheckpointStore::write_rank(const CheckpointInfo& info, int rank,
                                           const std::vector<std::pair<std::string, std::string>>& parts) const {
  make_dir(dir_);
  const std::string ckpt = checkpoint_dir(dir_, info.superstep);
  make_dir(ckpt);
  const std::string path = rank_file(ckpt, rank);
  {
    Writer w(path);
    w.attribute("format", kRankFormat);
    w.attribute("version", kVersion);
    w.attribute("fingerprint", info.fingerprint);
    w.attribute("superstep", static_cast<std::uint64_t>(info.superstep));
    w.attribute("rank", static_cast<std::uint64_t>(rank));
    w.group("/parts");
    for (const auto& [name, bytes] : parts) {
      check_part_name(name);
      w.dataset(("/parts/" + name).c_str(), std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
    }
    w.commit();
  }
  const auto [size, crc] = file_sum(path);
  return CheckpointFile{rank, size, crc};
}

void CheckpointStore::commit(const CheckpointInfo& info, const std::vector<CheckpointFile>& files) const {
  const std::string ckpt = checkpoint_dir(dir_, info.superstep);
  // Every rank's file must be there, as recorded, before the checkpoint may exist.
  for (const auto& f : files) {
    const auto [size, crc] = file_sum(rank_file(ckpt, f.rank));
    if (size != f.size || crc != f.crc32)
      throw Error("checkpoint " + ckpt + ": rank " + std::to_string(f.rank) + "'s file changed after it was written");
  }
  {
    Writer w(manifest_file(ckpt));
    w.attribute("format", kManifestFormat);
    w.attribute("version", kVersion);
    w.attribute("fingerprint", info.fingerprint);
    w.attribute("kind", info.kind);
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
    std::vector<std::uint64_t> ranks, sizes, crcs;
    for (const auto& f : files) {
      ranks.push_back(static_cast<std::uint64_t>(f.rank));
      sizes.push_back(f.size);
      crcs.push_back(f.crc32);
    }
    w.dataset("/files/rank", ranks);
    w.dataset("/files/size", sizes);
    w.dataset("/files/crc32", crcs);
    w.commit();
  }
  sync_dir(ckpt);
  sync_dir(dir_);
  // Keep the newest `keep` complete checkpoints; drop older ones and older incomplete ones.
  const auto all = list_checkpoints(dir_);
  int complete = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const std::string c = checkpoint_dir(dir_, *it);
    if (*it > info.superstep) continue;  // (a newer one: not ours to judge)
    const bool has_manifest = ::access(manifest_file(c).c_str(), F_OK) == 0;
    if (has_manifest && complete < keep_) {
      ++complete;
      continue;
    }
    remove_tree(c);
  }
}

std::optional<CheckpointStore::Found> CheckpointStore::latest(const std::string& fingerprint) const {
  Found found;
  const auto all = list_checkpoints(dir_);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const std::string c = checkpoint_dir(dir_, *it);
    const std::string name = "checkpoint " + c;
    if (::access(manifest_file(c).c_str(), F_OK) != 0) {
      found.skipped.push_back(name + ": incomplete (no manifest)");
      continue;
    }
    Manifest m;
    try {
      m = read_manifest(manifest_file(c));
    } catch (const Error& e) {
      found.skipped.push_back(name + ": unreadable manifest: " + e.what());
      continue;
    }
    if (m.info.fingerprint != fingerprint)
      throw Error(name + " belongs to another job, plan or input (fingerprint " + m.info.fingerprint +
                  "; this run's is " + fingerprint + "): use another checkpoint directory, or delete it to start over");
    std::string bad;
    for (const auto& f : m.files) {
      const std::string path = rank_file(c, f.rank);
      if (::access(path.c_str(), R_OK) != 0) {
        bad = "rank " + std::to_string(f.rank) + "'s file is missing";
        break;
      }
      const auto [size, crc] = file_sum(path);
      if (size != f.size) {
        bad = "rank " + std::to_string(f.rank) + "'s file has " + std::to_string(size) + " bytes, the manifest says " +
              std::to_string(f.size) + " (truncated?)";
        break;
      }
      if (crc != f.crc32) {
        bad = "rank " + std::to_string(f.rank) + "'s file fails its checksum (damaged)";
        break;
      }
    }
    if (!bad.empty()) {
      found.skipped.push_back(name + ": " + bad);
      continue;
    }
    found.info = std::move(m.info);
    found.path = c;
    return found;
  }
  return std::nullopt;
}

std::map<std::string, std::string> CheckpointStore::read_parts(const Found& checkpoint) const {
  const Manifest m = read_manifest(manifest_file(checkpoint.path));
  std::map<std::string, std::string> parts;
  for (const auto& f : m.files) {
    const std::string path = rank_file(checkpoint.path, f.rank);
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
