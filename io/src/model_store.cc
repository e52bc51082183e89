// The model store (model_store.h): versioned model files in a directory, published by link(2).
#include "gyre/io/model_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "gyre/core/error.h"

namespace gyre::io {

namespace fs = std::filesystem;

std::string version_path(const std::string& dir, std::uint64_t version) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%06llu.h5", static_cast<unsigned long long>(version));
  return (fs::path(dir) / name).string();
}

namespace {
// The version of a file named model-<digits>.h5, or 0.
std::uint64_t version_of(const std::string& name) {
  constexpr std::string_view pre = "model-", suf = ".h5";
  if (name.size() <= pre.size() + suf.size() || name.compare(0, pre.size(), pre) != 0 ||
      name.compare(name.size() - suf.size(), suf.size(), suf) != 0)
    return 0;
  std::uint64_t v = 0;
  for (std::size_t i = pre.size(); i < name.size() - suf.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    v = v * 10 + static_cast<std::uint64_t>(name[i] - '0');
  }
  return v;
}
}  // namespace

std::vector<StoredVersion> list_versions(const std::string& dir) {
  std::vector<StoredVersion> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return out;
  for (const auto& e : it) {
    const std::uint64_t v = version_of(e.path().filename().string());
    if (v > 0) out.push_back({v, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const StoredVersion& a, const StoredVersion& b) { return a.version < b.version; });
  return out;
}

std::optional<StoredVersion> latest(const std::string& dir) {
  auto all = list_versions(dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::uint64_t latest_version(const std::string& dir) {
  std::uint64_t best = 0;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return 0;
  for (const auto& e : it) best = std::max(best, version_of(e.path().filename().string()));
  return best;
}

bool is_model_store(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::uint64_t publish(const std::string& dir, ModelFile& m) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the model store: " + ec.message());
  static std::atomic<std::uint64_t> counter{0};
  const std::string tmp = (fs::path(dir) / (".tmp-model-" + std::to_string(::getpid()) + "-" +
                                             std::to_string(counter.fetch_add(1)) + ".h5"))
                              .string();
  std::uint64_t v = latest_version(dir) + 1;
  for (int attempt = 0; attempt < 1000; ++attempt, ++v) {
    m.version = v;
    write_model(tmp, m);
    const std::string final_path = version_path(dir, v);
    if (::link(tmp.c_str(), final_path.c_str()) == 0) {
      ::unlink(tmp.c_str());
      return v;
    }
    const int err = errno;
    if (err != EEXIST) {
      ::unlink(tmp.c_str());
      throw Error(final_path + ": cannot publish the model: " + std::strerror(err));
    }
    v = std::max(v, latest_version(dir));  // another writer took it: above everything present
  }
  ::unlink(tmp.c_str());
  throw Error(dir + ": cannot publish the model: no free version after 1000 attempts");
}

ModelFile read_model_or_latest(const std::string& path_or_dir) {
  if (!is_model_store(path_or_dir)) return read_model(path_or_dir);
  auto v = latest(path_or_dir);
  if (!v) throw Error(path_or_dir + ": the model store holds no model version (model-NNNNNN.h5)");
  return read_model(v->path);
}

}  // namespace gyre::io
