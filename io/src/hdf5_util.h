// HDF5 helpers shared by the io module's file formats (internal; not installed): identifiers
// closed by RAII, a writer that commits by rename, a reader with errors naming the file.
#pragma once

#include <fcntl.h>
#include <hdf5.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/error.h"
#include "gyre/core/text_io.h"

namespace gyre::io::h5 {

// HDF5 prints its error stack to stderr by default; gyre reports errors itself. The setting is
// per thread in a thread-safe HDF5, so every entry point calls this.
inline void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// An HDF5 identifier, closed with its close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    close_ = o.close_;
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

template <class T>
hid_t native() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_NATIVE_UINT32;
  else return H5T_NATIVE_DOUBLE;
}
template <class T>
hid_t stored() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_STD_U8LE;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_STD_U64LE;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_STD_U32LE;
  else return H5T_IEEE_F64LE;
}

[[noreturn]] inline void fail(const std::string& path, const std::string& what) { throw Error("'" + path + "': " + what); }

// ---- writing ----

// Writes an HDF5 file. It is always built in memory (HDF5's core driver): on disk, a flush or
// close that fails (a full disk) leaves HDF5 1.10 with a file it can neither close nor forget,
// and its shutdown at exit crashes. kDisk: commit() then writes the bytes to a temporary, fsyncs
// and renames it into place (detail::AtomicFile), so a full disk is an error naming the file.
// kMemory: image() gives the bytes for the caller to write (the checkpoint store).
// kDirect (large files: graphs): HDF5 writes straight into the temporary on disk (no copy of the
// data in memory), after a check that the file system has `size_hint` bytes free plus a margin,
// so a full disk is an error before HDF5 writes anything; commit() closes, fsyncs and renames.
// A temporary left by an error is removed.
class Writer {
 public:
  enum class Target { kDisk, kMemory, kDirect };
  // kMemory: `size_hint` is the expected file size (the in-memory file grows by that much).
  explicit Writer(std::string path, Target target = Target::kDisk, std::size_t size_hint = 0)
      : path_(std::move(path)), target_(target) {
    static std::atomic<int> counter{0};
    tmp_ = path_ + ".gyre-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    quiet();
    if (target_ == Target::kDirect) {
      check_free_space(size_hint + (std::size_t{64} << 10) + size_hint / 64);
      file_ = Handle(H5Fcreate(tmp_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
      if (!file_.valid()) fail(path_, "cannot create the temporary file '" + tmp_ + "'");
      created_ = true;
      return;
    }
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), std::max<std::size_t>(size_hint + (64u << 10), 1u << 20), 0) < 0)
      fail(path_, "cannot set up an in-memory HDF5 file");
    file_ = Handle(H5Fcreate(tmp_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file_.valid()) fail(path_, "cannot create an in-memory HDF5 file (out of memory?)");
  }
  ~Writer() {
    if (created_) {
      file_.reset();
      std::remove(tmp_.c_str());
    }
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  hid_t file() const { return file_.get(); }

  void group(const char* name) {
    Handle g(H5Gcreate2(file_.get(), name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.valid()) fail(path_, std::string("cannot create group ") + name);
  }

  void attribute(const char* name, std::string value) {
    if (value.empty()) value.push_back('\0');  // HDF5 strings have at least one byte
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), value.size());
    H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
    put_attribute(name, type.get(), type.get(), value.data());
  }
  void attribute(const char* name, std::uint64_t value) { put_attribute(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value); }

  template <class T>
  void dataset(const char* name, const std::vector<T>& data) {
    dataset(name, std::span<const T>(data));
  }
  template <class T>
  void dataset(const char* name, std::span<const T> data) {
    const hsize_t n = data.size();
    Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    Handle ds(H5Dcreate2(file_.get(), name, stored<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail(path_, std::string("cannot create dataset ") + name);
    if (n > 0 && H5Dwrite(ds.get(), native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
      fail(path_, std::string("cannot write dataset ") + name + " (disk full?)");
  }

  // kMemory: the whole file's bytes; closes it (nothing more can be written).
  std::vector<unsigned char> image() {
    if (target_ != Target::kMemory) fail(path_, "a file for the disk is written with commit()");
    return bytes();
  }

  // kDisk: writes the file durably (temporary, fsync, rename); throws gyre::Error naming it.
  void commit() {
    if (target_ == Target::kDirect) {
      if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail(path_, "cannot write the file (disk full?)");
      file_.reset();
      const int fd = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC);
      const bool synced = fd >= 0 && ::fsync(fd) == 0;
      if (fd >= 0) ::close(fd);
      if (!synced) fail(path_, "cannot fsync the temporary file '" + tmp_ + "'");
      if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, "cannot rename the temporary file into place");
      created_ = false;
      return;
    }
    if (target_ != Target::kDisk) fail(path_, "an in-memory HDF5 file is written with image()");
    const std::vector<unsigned char> b = bytes();
    detail::AtomicFile out(path_);
    out.write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    out.commit();
  }

 private:
  std::vector<unsigned char> bytes() {
    if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail(path_, "cannot flush the in-memory HDF5 file");
    const ssize_t size = H5Fget_file_image(file_.get(), nullptr, 0);
    if (size < 0) fail(path_, "cannot get the image of the in-memory HDF5 file");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
    if (H5Fget_file_image(file_.get(), bytes.data(), bytes.size()) != size)
      fail(path_, "cannot get the image of the in-memory HDF5 file");
    file_.reset();
    return bytes;
  }

  void put_attribute(const char* name, hid_t type, hid_t mem, const void* data) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle a(H5Acreate2(file_.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!a.valid() || H5Awrite(a.get(), mem, data) < 0)
      fail(path_, std::string("cannot write attribute ") + name);
  }

  void check_free_space(std::size_t need) const {
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0)
      fail(path_, "cannot create the file: directory '" + dir + "': " + std::strerror(errno));
    const auto free_bytes = static_cast<unsigned long long>(st.f_bavail) * st.f_frsize;
    if (free_bytes < need)
      throw Error("cannot write output file '" + path_ + "': No space left on device (about " +
                  std::to_string(need >> 10) + " kB needed, " + std::to_string(free_bytes >> 10) + " kB free)");
  }

  std::string path_;
  Target target_;
  std::string tmp_;
  Handle file_;
  bool created_ = false;  // kDirect: the temporary exists on disk
};

// ---- reading ----

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {
    quiet();
    if (::access(path_.c_str(), R_OK) != 0) fail(path_, "cannot read the file");
    if (H5Fis_hdf5(path_.c_str()) <= 0) fail(path_, "not an HDF5 file");
    file_ = Handle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file_.valid()) fail(path_, "cannot open the HDF5 file");
  }

  const std::string& path() const { return path_; }
  hid_t file() const { return file_.get(); }

  bool has_attribute(const char* name) const { return H5Aexists(file_.get(), name) > 0; }

  std::string string_attribute(const char* name) const {
    Handle a = open_attribute(name);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
      fail(path_, std::string("attribute '") + name + "' is not a fixed-length string");
    const std::size_t size = H5Tget_size(type.get());
    std::string value(size, '\0');
    if (H5Aread(a.get(), type.get(), value.data()) < 0) fail(path_, std::string("cannot read attribute '") + name + "'");
    value.resize(std::min(value.size(), value.find('\0')));
    return value;
  }

  std::uint64_t integer_attribute(const char* name) const {
    Handle a = open_attribute(name);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_INTEGER) fail(path_, std::string("attribute '") + name + "' is not an integer");
    std::uint64_t v = 0;
    if (H5Aread(a.get(), H5T_NATIVE_UINT64, &v) < 0) fail(path_, std::string("cannot read attribute '") + name + "'");
    return v;
  }

  // The names in a group, in name order.
  std::vector<std::string> children(const char* group) const {
    Handle g(H5Gopen2(file_.get(), group, H5P_DEFAULT), H5Gclose);
    if (!g.valid()) fail(path_, std::string("group ") + group + " is missing");
    std::vector<std::string> names;
    auto add = +[](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
      static_cast<std::vector<std::string>*>(out)->emplace_back(name);
      return 0;
    };
    if (H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, add, &names) < 0)
      fail(path_, std::string("cannot list group ") + group);
    return names;
  }

  // The length of a one-dimensional dataset.
  std::uint64_t length(const char* name) const {
    Handle ds = open(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(path_, std::string("dataset ") + name + " is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    return n;
  }

  // Elements [first, first + count) of a one-dimensional dataset, converted to T.
  template <class T>
  void read(const char* name, std::uint64_t first, std::uint64_t count, T* out) const {
    if (count == 0) return;
    Handle ds = open(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const hsize_t start = first, n = count;
    Handle mem(H5Screate_simple(1, &n, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0 ||
        H5Dread(ds.get(), native<T>(), mem.get(), space.get(), H5P_DEFAULT, out) < 0)
      fail(path_, std::string("cannot read dataset ") + name + " [" + std::to_string(first) + ", " +
                      std::to_string(first + count) + ")");
  }
  template <class T>
  std::vector<T> read_all(const char* name) const {
    std::vector<T> v(length(name));
    read(name, 0, v.size(), v.data());
    return v;
  }

 private:
  Handle open_attribute(const char* name) const {
    if (H5Aexists(file_.get(), name) <= 0) fail(path_, std::string("attribute '") + name + "' is missing");
    Handle a(H5Aopen(file_.get(), name, H5P_DEFAULT), H5Aclose);
    if (!a.valid()) fail(path_, std::string("cannot open attribute '") + name + "'");
    return a;
  }
  Handle open(const char* name) const {
    // H5Lexists needs every group on the way to exist: check "/a", then "/a/b".
    const std::string full(name);
    for (std::size_t slash = full.find('/', 1);; slash = full.find('/', slash + 1)) {
      const std::string prefix = full.substr(0, slash);
      if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) fail(path_, "dataset " + full + " is missing");
      if (slash == std::string::npos) break;
    }
    Handle ds(H5Dopen2(file_.get(), name, H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail(path_, std::string("cannot open dataset ") + name);
    return ds;
  }

  std::string path_;
  Handle file_;
};

}  // namespace gyre::io::h5
