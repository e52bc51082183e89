#include "gyre/io/checksum.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "gyre/core/error.h"

namespace gyre::io {

std::uint32_t crc32_of_file(const std::string& path, std::uint64_t offset, std::uint64_t length) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
  std::vector<unsigned char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::uint64_t pos = offset;
  std::uint64_t left = length;
  while (left > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw Error("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;  // end of file
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    pos += static_cast<std::uint64_t>(n);
    left -= static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return static_cast<std::uint32_t>(crc);
}

std::uint32_t crc32_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b) {
  return static_cast<std::uint32_t>(::crc32_combine(crc_a, crc_b, static_cast<z_off_t>(length_b)));
}

}  // namespace gyre::io
