// A model store: a directory of versioned model files, DIR/model-000001.h5, model-000002.h5, ...
//
// Contract: a version is written once and never overwritten or changed. publish() writes the
// model to a temporary file in DIR and links it to the next free version's name (link(2) fails
// if the name exists, so two writers racing for a number never overwrite each other: the loser
// takes the next number and rewrites its file with it). Readers see a version whole or not at
// all. Each file records its version, parent version, training data range and metrics
// (model_file.h). latest() is the highest version present. Files not named model-<digits>.h5
// (temporary files, anything else) are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gyre/io/model_file.h"

namespace gyre::io {

struct StoredVersion {
  std::uint64_t version = 0;
  std::string path;
};

// DIR/model-<version, 6 digits or more>.h5
std::string version_path(const std::string& dir, std::uint64_t version);
// The versions in `dir`, ascending (empty if the directory does not exist).
std::vector<StoredVersion> list_versions(const std::string& dir);
// The newest version, if any.
std::optional<StoredVersion> latest(const std::string& dir);
// The newest version number, 0 if none (cheap: one directory scan).
std::uint64_t latest_version(const std::string& dir);
// True if `path` is a directory (a --model argument names a store rather than a file).
bool is_model_store(const std::string& path);

// Publishes `m` as a version above every existing one (creating `dir` if needed): sets
// m.version and returns it. parent_version is the caller's (0: none).
std::uint64_t publish(const std::string& dir, ModelFile& m);

// The model a --model argument names: a file, or the newest version of a store directory.
// Throws gyre::Error if a directory holds no version.
ModelFile read_model_or_latest(const std::string& path_or_dir);

}  // namespace gyre::io
