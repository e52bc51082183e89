// The checkpoint store and the choice of what to resume from: an entry exists only once its
// manifest does; the newest usable chain (head + later tails) is found; truncated or damaged rank
// files make it fall back and say why; another job's entries are refused; old entries are pruned;
// any rank reads every part.
#include <dirent.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gyre/core/checkpoint.h"
#include "gyre/core/error.h"
#include "gyre/io/checkpoint_store.h"
#include "gyre/io/checksum.h"

namespace {

using Parts = std::vector<std::pair<std::string, std::string>>;

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ckpt-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  static gyre::CheckpointInfo info(int superstep, const char* kind = "head") {
    gyre::CheckpointInfo i;
    i.fingerprint = "job-abc";
    i.kind = kind;
    i.self_contained = std::string(kind) == "head";
    i.superstep = superstep;
    i.ranks = 2;
    i.partitions = 4;
    i.aggregators = {{"residual", 0.5 / superstep}, {"active vertices", 10.0 * superstep}};
    return i;
  }
  // Two "ranks" (the store is only files; each rank writes its own), then rank 0 commits.
  static void checkpoint(const gyre::io::CheckpointStore& store, int superstep, const char* kind = "head") {
    for (int r = 0; r < 2; ++r) {
      Parts parts;
      for (int p = r; p < 4; p += 2)
        parts.emplace_back("p" + std::to_string(p) + ".state", payload(superstep, p));
      store.write_rank(info(superstep, kind), r, parts);
    }
    store.commit(info(superstep, kind));
  }
  static std::string payload(int superstep, int p) {
    std::string s(static_cast<std::size_t>(1000 + 17 * p), '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i * 31 + static_cast<std::size_t>(superstep * 7 + p)) & 0xff);
    return s;
  }
  std::string ckpt(int superstep, const char* kind = "head") const {
    char name[32];
    std::snprintf(name, sizeof name, "/%s-%06d", kind, superstep);
    return dir_ + name;
  }
  static bool contains(const std::vector<std::string>& v, const std::string& what) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(what) != std::string::npos; });
  }

  std::string dir_;
};

TEST_F(CheckpointStoreTest, NewestHeadAndItsParts) {
  gyre::io::CheckpointStore store(dir_, 3);
  EXPECT_EQ(gyre::find_recovery(store, "job-abc").superstep, 0);
  checkpoint(store, 5);
  checkpoint(store, 10);
  const auto plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 10);
  EXPECT_FALSE(plan.from_initial);
  ASSERT_EQ(plan.chain.size(), 1u);
  const auto& found = plan.chain[0];
  EXPECT_EQ(found.info.kind, "head");
  EXPECT_EQ(found.info.ranks, 2);
  EXPECT_EQ(found.info.partitions, 4);
  ASSERT_EQ(found.info.aggregators.size(), 2u);
  EXPECT_EQ(found.info.aggregators[1], (std::pair<std::string, double>{"active vertices", 100.0}));
  EXPECT_TRUE(plan.skipped.empty());
  const auto parts = store.read_parts(found);
  ASSERT_EQ(parts.size(), 4u);
  for (int p = 0; p < 4; ++p) EXPECT_EQ(parts.at("p" + std::to_string(p) + ".state"), payload(10, p));
}

TEST_F(CheckpointStoreTest, TailsAfterAHeadFormTheChain) {
  gyre::io::CheckpointStore store(dir_, 2);
  checkpoint(store, 1, "tail");
  checkpoint(store, 2, "tail");
  auto plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 2);
  EXPECT_TRUE(plan.from_initial);  // tails all the way back to the initial input
  ASSERT_EQ(plan.chain.size(), 2u);
  checkpoint(store, 3);
  checkpoint(store, 4, "tail");
  checkpoint(store, 5, "tail");
  plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 5);
  EXPECT_FALSE(plan.from_initial);
  ASSERT_EQ(plan.chain.size(), 3u);
  EXPECT_EQ(plan.chain[0].info.superstep, 3);
  EXPECT_EQ(plan.chain[0].info.kind, "head");
  EXPECT_EQ(plan.chain[2].info.superstep, 5);
  // A damaged tail in the middle: the chain ends before it.
  ASSERT_EQ(::truncate((ckpt(5, "tail") + "/rank-0.h5").c_str(), 64), 0);
  plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 4);
  EXPECT_TRUE(contains(plan.skipped, "tail-000005")) << plan.skipped.size();
}

TEST_F(CheckpointStoreTest, WithoutItsManifestAnEntryDoesNotExist) {
  gyre::io::CheckpointStore store(dir_);
  checkpoint(store, 5);
  // Superstep 10: both ranks wrote, rank 0 died before the manifest.
  store.write_rank(info(10), 0, {{"p0.state", payload(10, 0)}});
  store.write_rank(info(10), 1, {{"p1.state", payload(10, 1)}});
  const auto plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 5);
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_NE(plan.skipped[0].find("incomplete (no manifest)"), std::string::npos) << plan.skipped[0];
}

TEST_F(CheckpointStoreTest, TruncatedOrDamagedNewestFallsBackAndSaysWhy) {
  gyre::io::CheckpointStore store(dir_, 3);
  checkpoint(store, 5);
  checkpoint(store, 10);
  checkpoint(store, 15);
  // Truncate rank 1's file of 15; flip a byte in rank 0's file of 10.
  ASSERT_EQ(::truncate((ckpt(15) + "/rank-1.h5").c_str(), 100), 0);
  {
    std::fstream f(ckpt(10) + "/rank-0.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x5a');
  }
  const auto plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, 5);
  ASSERT_EQ(plan.skipped.size(), 2u);
  EXPECT_NE(plan.skipped[0].find("truncated"), std::string::npos) << plan.skipped[0];
  EXPECT_NE(plan.skipped[1].find("checksum"), std::string::npos) << plan.skipped[1];
  EXPECT_EQ(store.read_parts(plan.chain.at(0)).at("p2.state"), payload(5, 2));
}

TEST_F(CheckpointStoreTest, AnotherJobsCheckpointIsRefused) {
  gyre::io::CheckpointStore store(dir_);
  checkpoint(store, 5);
  try {
    gyre::find_recovery(store, "job-xyz");
    FAIL() << "another job's checkpoint was accepted";
  } catch (const gyre::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("another job"), std::string::npos) << m;
    EXPECT_NE(m.find("job-abc"), std::string::npos) << m;
    EXPECT_NE(m.find("job-xyz"), std::string::npos) << m;
  }
}

TEST_F(CheckpointStoreTest, KeepsTheNewestHeadsAndTheTailsAfterThem) {
  gyre::io::CheckpointStore store(dir_, 2);
  checkpoint(store, 5);
  checkpoint(store, 6, "tail");
  checkpoint(store, 10);
  checkpoint(store, 11, "tail");
  checkpoint(store, 15);
  checkpoint(store, 20);
  EXPECT_NE(::access(ckpt(5).c_str(), F_OK), 0);
  EXPECT_NE(::access(ckpt(6, "tail").c_str(), F_OK), 0);
  EXPECT_NE(::access(ckpt(10).c_str(), F_OK), 0);
  EXPECT_NE(::access(ckpt(11, "tail").c_str(), F_OK), 0);
  EXPECT_EQ(::access((ckpt(15) + "/MANIFEST.h5").c_str(), F_OK), 0);
  EXPECT_EQ(::access((ckpt(20) + "/MANIFEST.h5").c_str(), F_OK), 0);
}

// The manifest is plain HDF5 (what h5dump shows): attributes and the file table.
TEST_F(CheckpointStoreTest, ManifestIsPlainHdf5) {
  gyre::io::CheckpointStore store(dir_);
  checkpoint(store, 7);
  const hid_t f = H5Fopen((ckpt(7) + "/MANIFEST.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  std::uint64_t superstep = 0;
  const hid_t a = H5Aopen(f, "superstep", H5P_DEFAULT);
  ASSERT_GE(H5Aread(a, H5T_NATIVE_UINT64, &superstep), 0);
  EXPECT_EQ(superstep, 7u);
  std::uint64_t ranks[2] = {};
  const hid_t d = H5Dopen2(f, "/files/rank", H5P_DEFAULT);
  ASSERT_GE(H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ranks), 0);
  EXPECT_EQ(ranks[1], 1u);
  H5Dclose(d);
  H5Aclose(a);
  H5Fclose(f);
}

TEST_F(CheckpointStoreTest, BadPartNamesAreRefused) {
  gyre::io::CheckpointStore store(dir_);
  EXPECT_THROW(store.write_rank(info(1), 0, {{"p0/state", "x"}}), gyre::Error);
}

// ---------------------------------------------------------------- failing writes

// Files under `dir` (and its entry directories) that are temporaries left behind.
std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> out;
  std::vector<std::string> dirs{dir};
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    DIR* d = ::opendir(dirs[i].c_str());
    if (d == nullptr) continue;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (name.find(".gyre-tmp-") != std::string::npos) out.push_back(dirs[i] + "/" + name);
      if (i == 0) dirs.push_back(dirs[i] + "/" + name);
    }
    ::closedir(d);
  }
  return out;
}

// Writes ever larger entries (2 ranks, keep 2) into `dir` until a write fails: the error names
// the file and the reason, the newest committed entry is still usable, nothing temporary is left.
// (Before the store built its files in memory, HDF5 failed to flush and the process crashed in
// HDF5's shutdown at exit.)
void fills_up(const std::string& dir, const std::string& reason) {
  gyre::io::CheckpointStore store(dir, 2);
  auto info = [](int s) {
    gyre::CheckpointInfo i;
    i.fingerprint = "job-abc";
    i.kind = "head";
    i.superstep = s;
    i.ranks = 2;
    i.partitions = 2;
    return i;
  };
  int committed = 0;
  std::string error;
  for (int s = 1; s <= 100 && error.empty(); ++s) {
    try {
      for (int r = 0; r < 2; ++r)
        store.write_rank(info(s), r, {{"p" + std::to_string(r) + ".state", std::string(static_cast<std::size_t>(s) * 8000, static_cast<char>(s))}});
      store.commit(info(s));
      committed = s;
    } catch (const gyre::Error& e) {
      error = e.what();
    }
  }
  ASSERT_FALSE(error.empty()) << "no write failed: the test shows nothing";
  ASSERT_GT(committed, 0) << "nothing could be written at all: the test shows nothing (" << error << ")";
  EXPECT_NE(error.find("cannot write checkpoint " + dir + "/head-"), std::string::npos) << error;
  EXPECT_NE(error.find(reason), std::string::npos) << error;
  const auto plan = gyre::find_recovery(store, "job-abc");
  EXPECT_EQ(plan.superstep, committed) << "the newest committed entry is not usable";
  ASSERT_EQ(plan.chain.size(), 1u);
  const auto parts = store.read_parts(plan.chain[0]);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts.at("p1.state").size(), static_cast<std::size_t>(committed) * 8000);
  EXPECT_TRUE(temporaries(dir).empty()) << temporaries(dir).front();
}

// A full file system: a small tmpfs (mounting one needs root, as in CI; as another user this
// test fails, it does not skip).
class FullDiskTest : public CheckpointStoreTest {
 protected:
  void TearDown() override {
    if (mounted_) std::system(("umount '" + dir_ + "'").c_str());
    CheckpointStoreTest::TearDown();
  }
  bool mounted_ = false;
};

TEST_F(FullDiskTest, WritesFailWithTheFileAndNoSpaceLeft) {
  ASSERT_EQ(::geteuid(), 0u) << "this test mounts a small tmpfs to fill it up and needs root (CI runs as root); "
                                "CheckpointStoreTest.WritesFailAtTheFileSizeLimit covers a failing write as any user";
  ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  ASSERT_EQ(std::system(("mount -t tmpfs -o size=200k tmpfs '" + dir_ + "'").c_str()), 0)
      << "cannot mount a tmpfs at " << dir_ << " (root without CAP_SYS_ADMIN?)";
  mounted_ = true;
  fills_up(dir_ + "/ck", "No space left on device");
}

// RLIMIT_FSIZE makes write() fail (EFBIG) past a file size, as any user.
TEST_F(CheckpointStoreTest, WritesFailAtTheFileSizeLimit) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 60000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  fills_up(dir_, "File too large");
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
}

// discard: entries after a superstep and incomplete ones go, only the store's own files; a
// commit also removes older entries that never got their manifest.
TEST_F(CheckpointStoreTest, DiscardRemovesOnlyTheStoresOwnFiles) {
  gyre::io::CheckpointStore store(dir_, 5);
  checkpoint(store, 3);
  store.write_rank(info(4), 0, {});  // incomplete, older than the next commit
  checkpoint(store, 6);
  struct stat st {};
  EXPECT_NE(::stat(ckpt(4).c_str(), &st), 0) << "an incomplete entry older than a commit is left";
  checkpoint(store, 9);
  store.write_rank(info(12), 0, {});  // incomplete
  std::ofstream(dir_ + "/notes.txt") << "not the store's\n";
  std::ofstream(ckpt(6) + "/mine.txt") << "not the store's either\n";
  ASSERT_EQ(::mkdir((dir_ + "/head-extra").c_str(), 0755), 0);

  EXPECT_EQ(store.discard(6), 2);  // 9 (after 6) and 12 (incomplete)
  EXPECT_EQ(gyre::find_recovery(store, "job-abc").superstep, 6);
  EXPECT_NE(::stat(ckpt(9).c_str(), &st), 0);
  EXPECT_NE(::stat(ckpt(12).c_str(), &st), 0);

  EXPECT_EQ(store.discard(-1), 2);  // 3 and 6
  EXPECT_EQ(gyre::find_recovery(store, "job-abc").superstep, 0);
  EXPECT_NE(::stat(ckpt(3).c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/notes.txt").c_str(), &st), 0) << "an unrelated file was removed";
  EXPECT_EQ(::stat((ckpt(6) + "/mine.txt").c_str(), &st), 0) << "an unrelated file in an entry was removed";
  EXPECT_NE(::stat((ckpt(6) + "/MANIFEST.h5").c_str(), &st), 0);
  EXPECT_NE(::stat((ckpt(6) + "/rank-0.h5").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir_ + "/head-extra").c_str(), &st), 0) << "an unrelated directory was removed";
}

}  // namespace

// The CRC-32 of a file from the CRCs of its slices (what ranks compute for --resume's input
// identity) equals the CRC of the whole, for any cut; a changed byte changes it.
TEST(FileChecksum, SlicesCombineToTheWhole) {
  const std::string path = ::testing::TempDir() + "/crc." + std::to_string(::getpid());
  std::string bytes;
  for (std::uint32_t i = 0; i < 300'000; ++i) bytes.push_back(static_cast<char>((i * 7919U) % 251U));
  std::ofstream(path, std::ios::binary) << bytes;
  const std::uint32_t whole = gyre::io::crc32_of_file(path);
  for (std::uint64_t parts : {1U, 2U, 3U, 7U}) {
    const std::uint64_t n = bytes.size();
    std::uint32_t crc = 0;
    for (std::uint64_t q = 0; q < parts; ++q) {
      const std::uint64_t begin = n * q / parts, end = n * (q + 1) / parts;
      const std::uint32_t c = gyre::io::crc32_of_file(path, begin, end - begin);
      crc = q == 0 ? c : gyre::io::crc32_combine(crc, c, end - begin);
    }
    EXPECT_EQ(crc, whole) << parts << " slices";
  }
  bytes[150'000] = static_cast<char>(bytes[150'000] ^ 1);
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_NE(gyre::io::crc32_of_file(path), whole);
  std::remove(path.c_str());
  EXPECT_THROW(gyre::io::crc32_of_file(path), gyre::Error);
}
