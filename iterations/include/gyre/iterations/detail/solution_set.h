// The solution set of a delta iteration: one index per partition, shared (on its rank) by the
// loop head, which loads it and applies deltas between supersteps, and by the body's
// solution-set joins, which read it during supersteps. Records and the workset meet in the same
// partition because both are partitioned by the same rule on the solution-set key.
//
// Snapshots: both indexes write the same records, a value state "solution set" from key to
// record, per key group of the key (state.h), so a snapshot of either restores into either at
// any parallelism. The hash index keeps its records in a KeyedStateBackend (a partition owns the
// key groups the hash exchange sends it); the dense index, partitioned by k % P rather than by
// key group, converts when it snapshots and keeps the keys k % P == partition when it restores.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "gyre/core/concepts.h"
#include "gyre/core/error.h"
#include "gyre/core/hash.h"
#include "gyre/core/state.h"
#include "gyre/core/writers.h"

namespace gyre {

// How a delta iteration indexes its solution set.
enum class SolutionSetIndex {
  kHash,   // any key type: open-addressing hash table per partition
  kDense,  // non-negative integer keys, dense: key k lives in partition k % P at slot k / P
};

namespace detail {

// Key k of a dense index goes to partition k % n.
struct DensePartitioner {
  template <class K>
  static std::size_t of(const K& k, std::size_t n) {
    return static_cast<std::size_t>(static_cast<std::uint64_t>(k) % n);
  }
};

template <class S, class KF>
class HashSolutionIndex {
 public:
  using K = KeyOf<KF, S>;
  using Partitioner = HashPartitioner;
  static constexpr const char* kState = "solution set";
  HashSolutionIndex(KF key, int partition, int parallelism)
      : key_(std::move(key)), state_(partition, parallelism),
        map_(state_.template value<K, S>(kState).table()) {}
  void upsert(const S& s) {
    const K k = key_(s);
    bool inserted = false;
    S& slot = map_.find_or_insert(k, hash_key(k), [&] { return s; }, inserted);
    if (!inserted) slot = s;
  }
  const S* find(const K& k) const { return map_.find(k, hash_key(k)); }
  void clear() { map_.clear(); }
  template <class F>
  void for_each(F&& f) {
    map_.for_each([&](const K&, S& s) { f(std::as_const(s)); });
  }
  std::size_t size() const { return map_.size(); }

  void snapshot(std::vector<StateSnapshot>& out) const {
    std::vector<StateSnapshot> s = state_.snapshot();
    out.insert(out.end(), std::make_move_iterator(s.begin()), std::make_move_iterator(s.end()));
  }
  // Records of any partitions at any parallelism (of a hash or a dense index): keeps its own.
  void restore(std::span<const StateSnapshot> from) { state_.restore(from); }

 private:
  KF key_;
  KeyedStateBackend state_;
  StateTable<K, S>& map_;  // the "solution set" state's table
};

template <class S, class KF>
class DenseSolutionIndex {
 public:
  using K = KeyOf<KF, S>;
  using Partitioner = DensePartitioner;
  static_assert(std::is_integral_v<K>, "a dense solution-set index needs integer keys");
  DenseSolutionIndex(KF key, int partition, int parallelism)
      : key_(std::move(key)), partition_(static_cast<std::uint64_t>(partition)),
        parallelism_(static_cast<std::uint64_t>(parallelism)) {}
  void upsert(const S& s) {
    const K k = key_(s);
    if constexpr (std::is_signed_v<K>) {
      if (k < 0)
        throw Error("dense solution-set index: key " + std::to_string(k) +
                    " is negative; use SolutionSetIndex::kHash for such keys");
    }
    const std::size_t slot = static_cast<std::size_t>(static_cast<std::uint64_t>(k) / parallelism_);
    if (slot >= values_.size()) {
      values_.resize(std::max<std::size_t>(slot + 1, values_.size() * 2));
      present_.resize(values_.size(), 0);
    }
    values_[slot] = s;
    present_[slot] = 1;
  }
  const S* find(const K& k) const {
    if constexpr (std::is_signed_v<K>) {
      if (k < 0) return nullptr;
    }
    const std::size_t slot = static_cast<std::size_t>(static_cast<std::uint64_t>(k) / parallelism_);
    return slot < values_.size() && present_[slot] ? &values_[slot] : nullptr;
  }
  void clear() {
    values_.clear();
    present_.clear();
  }
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < values_.size(); ++i)
      if (present_[i]) f(std::as_const(values_[i]));
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (std::uint8_t p : present_) n += p;
    return n;
  }

  // As the hash index's: a "solution set" value state by key group (made on the spot).
  void snapshot(std::vector<StateSnapshot>& out) const {
    KeyedStateBackend all;
    auto& state = all.template value<K, S>(HashSolutionIndex<S, KF>::kState);
    for (std::size_t i = 0; i < values_.size(); ++i)
      if (present_[i]) state.set(key_(values_[i]), values_[i]);
    std::vector<StateSnapshot> s = all.snapshot();
    out.insert(out.end(), std::make_move_iterator(s.begin()), std::make_move_iterator(s.end()));
  }
  // Keeps the records whose key this partition holds (k % P), from any partitions.
  void restore(std::span<const StateSnapshot> from) {
    KeyedStateBackend all;
    auto& state = all.template value<K, S>(HashSolutionIndex<S, KF>::kState);
    all.restore(from);
    state.for_each([&](const K& k, S& s) {
      if (static_cast<std::uint64_t>(k) % parallelism_ == partition_) upsert(s);
    });
  }

 private:
  KF key_;
  std::uint64_t partition_;
  std::uint64_t parallelism_;
  std::vector<S> values_;
  std::vector<std::uint8_t> present_;
};

// The per-partition indexes of one delta iteration on this rank.
template <class Index>
class SolutionSetState {
 public:
  template <class KF>
  explicit SolutionSetState(KF key) : make_([key](int p, int n) { return std::make_unique<Index>(key, p, n); }) {}
  Index& create(int partition, int parallelism) {
    std::lock_guard lock(mu_);
    if (parts_.size() < static_cast<std::size_t>(parallelism)) parts_.resize(static_cast<std::size_t>(parallelism));
    auto& slot = parts_[static_cast<std::size_t>(partition)];
    slot = make_(partition, parallelism);
    return *slot;
  }
  // The index of `partition` (made by the head, which is built with the job before any data moves).
  Index& get(int partition) {
    std::lock_guard lock(mu_);
    GYRE_CHECK(static_cast<std::size_t>(partition) < parts_.size() && parts_[static_cast<std::size_t>(partition)],
               "solution set partition read before the loop head made it");
    return *parts_[static_cast<std::size_t>(partition)];
  }

 private:
  std::function<std::unique_ptr<Index>(int, int)> make_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Index>> parts_;
};

}  // namespace detail
}  // namespace gyre
