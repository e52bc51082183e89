// Content checksums of files: zlib's CRC-32 of a byte range, and the combination of the CRCs of
// consecutive ranges, so that ranks can each checksum a slice of one file and agree on the CRC of
// the whole (what identifies a job's input for `--resume`).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace gyre::io {

// CRC-32 of bytes [offset, offset + length) of `path` (up to its end). Throws gyre::Error naming
// the file if it cannot be read.
std::uint32_t crc32_of_file(const std::string& path, std::uint64_t offset = 0,
                            std::uint64_t length = std::numeric_limits<std::uint64_t>::max());

// The CRC-32 of A followed by B, from crc(A), crc(B) and the length of B.
std::uint32_t crc32_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b);

}  // namespace gyre::io
