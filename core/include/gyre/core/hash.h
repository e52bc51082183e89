// Key hashing, key groups, and the name FlatMap for the table of state_table.h.
//
// gyre hashes keys with KeyHash<K>: integers and enums through a 64-bit mixer (std::hash of an
// integer is the identity, which partitions badly), strings and anything with std::hash through
// std::hash and the mixer, pairs and tuples by combining. Specialise gyre::KeyHash for your type,
// or give it std::hash. Partitioning uses the high bits of the hash, tables the low bits.
//
// Key groups: the hash exchange and keyed state share one rule. A key's key group is the top
// kKeyGroupBits bits of its 64-bit hash (key_group_of), and key group kg belongs to partition
// kg * P / kKeyGroups of an operator of parallelism P (partition_of_key_group), so partition p
// owns the contiguous range key_group_range(p, P). kKeyGroups equals the parallelism cap
// (JobConfig::kMaxParallelism), so every partition owns at least one key group, and state
// snapshotted per key group restores at any other parallelism.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/state_table.h"

namespace gyre {

inline constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

template <class K, class = void>
struct KeyHash;

template <class K>
struct KeyHash<K, std::enable_if_t<std::is_integral_v<K> || std::is_enum_v<K>>> {
  std::uint64_t operator()(K k) const { return mix64(static_cast<std::uint64_t>(k)); }
};

template <class K>
struct KeyHash<K, std::enable_if_t<!std::is_integral_v<K> && !std::is_enum_v<K> &&
                                   std::is_default_constructible_v<std::hash<K>>>> {
  std::uint64_t operator()(const K& k) const {
    return mix64(static_cast<std::uint64_t>(std::hash<K>{}(k)));
  }
};

template <class A, class B>
struct KeyHash<std::pair<A, B>> {
  std::uint64_t operator()(const std::pair<A, B>& p) const {
    return mix64(KeyHash<A>{}(p.first) * 31 + KeyHash<B>{}(p.second));
  }
};

template <class... Ts>
struct KeyHash<std::tuple<Ts...>> {
  std::uint64_t operator()(const std::tuple<Ts...>& t) const {
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    std::apply([&](const auto&... xs) { ((h = mix64(h * 31 + KeyHash<std::decay_t<decltype(xs)>>{}(xs))), ...); }, t);
    return h;
  }
};

// A type usable as a key: equality comparable, copyable and hashable by KeyHash.
template <class K>
concept Key = std::equality_comparable<K> && std::copy_constructible<K> &&
              requires(const K& k) {
                { KeyHash<K>{}(k) } -> std::convertible_to<std::uint64_t>;
              };

template <Key K>
std::uint64_t hash_key(const K& k) {
  return KeyHash<K>{}(k);
}

// 128-bit unsigned (a GCC/Clang extension; __extension__ keeps -Wpedantic quiet).
__extension__ typedef unsigned __int128 Uint128;  // NOLINT(modernize-use-using)

// Number of key groups (a fixed maximum parallelism) and the bits of a hash that select one.
inline constexpr int kKeyGroupBits = 9;
inline constexpr int kKeyGroups = 1 << kKeyGroupBits;  // 512

// Key group of a hash in [0, kKeyGroups): its top bits (tables index by the low bits).
inline constexpr int key_group_of(std::uint64_t h) {
  return static_cast<int>(h >> (64 - kKeyGroupBits));
}

// Partition in [0, parallelism) that owns key group `kg`; parallelism in [1, kKeyGroups].
inline constexpr int partition_of_key_group(int kg, int parallelism) {
  return kg * parallelism / kKeyGroups;
}

// The key groups [begin, end) that one partition owns: contiguous, never empty for
// parallelism <= kKeyGroups, together a partition of [0, kKeyGroups).
struct KeyGroupRange {
  int begin = 0;
  int end = kKeyGroups;
  constexpr bool contains(int kg) const { return kg >= begin && kg < end; }
  constexpr int size() const { return end - begin; }
  friend constexpr bool operator==(const KeyGroupRange&, const KeyGroupRange&) = default;
};

inline constexpr KeyGroupRange key_group_range(int partition, int parallelism) {
  // kg belongs to p iff p * K <= kg * P < (p + 1) * K, i.e. kg >= ceil(p * K / P).
  return {(partition * kKeyGroups + parallelism - 1) / parallelism,
          ((partition + 1) * kKeyGroups + parallelism - 1) / parallelism};
}

// Destination partition of a hash in [0, n), n <= kKeyGroups: the partition that owns the
// hash's key group. Every hash exchange routes by this, so keyed state and routing agree.
inline std::size_t hash_partition(std::uint64_t h, std::size_t n) {
  return static_cast<std::size_t>(partition_of_key_group(key_group_of(h), static_cast<int>(n)));
}

namespace detail {

// The open-addressing table of the built-in operators: the keyed-state table (state_table.h).
template <class K, class V>
using FlatMap = StateTable<K, V>;

}  // namespace detail
}  // namespace gyre
