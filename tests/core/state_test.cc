// Keyed state and timers (state.h): the table against std::unordered_map on random operations,
// memory accounting, key-group routing against the hash exchange, snapshots restored at other
// parallelisms, timers (order, dedup, delete, both domains, snapshot), and the errors a user reads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gyre/core/state.h"
#include "gyre/core/writers.h"
#include "../support/error_of.h"

namespace {

using gyre::detail::StateTable;

// Random inserts, updates, erases and erase_if against std::unordered_map. `bad_hash` makes long
// clusters (and wrap-around at the end of the slot array, and hash 0) to test backward shift.
template <class HashFn>
void random_table_ops(HashFn hash, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  StateTable<std::uint64_t, std::uint64_t> t;
  std::unordered_map<std::uint64_t, std::uint64_t> ref;
  for (int round = 0; round < 20000; ++round) {
    const std::uint64_t k = rng() % 3000;
    const auto op = rng() % 10;
    if (op < 5) {
      bool inserted = false;
      std::uint64_t& v = t.find_or_insert(k, hash(k), [&] { return k * 3; }, inserted);
      EXPECT_EQ(inserted, ref.find(k) == ref.end());
      if (inserted) ref[k] = k * 3;
      v += 1;
      ref[k] += 1;
    } else if (op < 8) {
      EXPECT_EQ(t.erase(k, hash(k)), ref.erase(k) == 1);
    } else if (op < 9) {
      const std::uint64_t* v = t.find(k, hash(k));
      auto it = ref.find(k);
      ASSERT_EQ(v != nullptr, it != ref.end());
      if (v) {
        EXPECT_EQ(*v, it->second);
      }
    } else if (round % 97 == 0) {
      const std::uint64_t m = rng() % 7 + 2;
      const std::size_t n = t.erase_if([&](std::uint64_t key, std::uint64_t&) { return key % m == 0; });
      std::size_t rn = 0;
      for (auto it = ref.begin(); it != ref.end();) {
        if (it->first % m == 0) {
          it = ref.erase(it);
          ++rn;
        } else {
          ++it;
        }
      }
      EXPECT_EQ(n, rn);
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  // Every key once, with its value, by for_each and by the iterator.
  std::map<std::uint64_t, std::uint64_t> seen;
  t.for_each([&](std::uint64_t k, std::uint64_t& v) { EXPECT_TRUE(seen.emplace(k, v).second); });
  EXPECT_EQ(seen, (std::map<std::uint64_t, std::uint64_t>(ref.begin(), ref.end())));
  std::size_t n = 0;
  for (const auto& e : t) {
    EXPECT_EQ(ref.at(e.key), e.value);
    ++n;
  }
  EXPECT_EQ(n, ref.size());
  for (const auto& [k, v] : ref) ASSERT_NE(t.find(k, hash(k)), nullptr) << k;
}

TEST(StateTable, RandomOperationsMatchUnorderedMap) {
  random_table_ops([](std::uint64_t k) { return gyre::hash_key(k); }, 1);
}

TEST(StateTable, RandomOperationsWithCollidingHashes) {
  // 40 distinct hashes for 3000 keys, one of them 0, several near the end of the slot array.
  random_table_ops([](std::uint64_t k) { return (k % 40) * 0x0400000000000001ULL + ~std::uint64_t{0} * (k % 3 == 0); }, 2);
  random_table_ops([](std::uint64_t k) { return k % 5 == 0 ? 0 : ~std::uint64_t{0} - k % 4; }, 3);
}

TEST(StateTable, ClearKeepsCapacityAndShrinkToFitGivesItBack) {
  StateTable<std::uint64_t, std::uint64_t> t;
  EXPECT_EQ(t.capacity(), 0U);
  EXPECT_EQ(t.memory_bytes(), 0U);
  EXPECT_EQ(t.find(7, gyre::hash_key(std::uint64_t{7})), nullptr);  // no array yet
  bool inserted = false;
  for (std::uint64_t k = 0; k < 100000; ++k) t.find_or_insert(k, gyre::hash_key(k), inserted) = k;
  const std::size_t cap = t.capacity();
  EXPECT_GE(cap, t.size() * 2);
  EXPECT_EQ(t.memory_bytes(), cap * (3 * sizeof(std::uint64_t)));
  t.clear();
  EXPECT_EQ(t.size(), 0U);
  EXPECT_EQ(t.capacity(), cap);  // FlatMap::clear shrank to 16 slots: not this table
  EXPECT_EQ(t.find(5, gyre::hash_key(std::uint64_t{5})), nullptr);
  for (std::uint64_t k = 0; k < 100000; ++k) t.find_or_insert(k, gyre::hash_key(k), inserted) = k + 1;
  EXPECT_EQ(t.capacity(), cap);  // refilled without growing
  for (std::uint64_t k = 0; k < 99990; ++k) EXPECT_TRUE(t.erase(k, gyre::hash_key(k)));
  EXPECT_EQ(t.capacity(), cap);  // erase does not shrink on its own
  t.shrink_to_fit();
  EXPECT_EQ(t.capacity(), 32U);  // 10 entries at load <= 1/2
  for (std::uint64_t k = 99990; k < 100000; ++k) EXPECT_EQ(*t.find(k, gyre::hash_key(k)), k + 1);
  t.reserve(1000);
  EXPECT_GE(t.capacity(), 1000U * 2);
  EXPECT_EQ(t.size(), 10U);
  t.clear();
  t.shrink_to_fit();
  EXPECT_EQ(t.capacity(), 0U);
  EXPECT_EQ(t.memory_bytes(), 0U);
}

TEST(StateTable, NonTrivialKeysAndValuesAndMoves) {
  StateTable<std::string, std::vector<std::string>> t;
  std::unordered_map<std::string, std::vector<std::string>> ref;
  std::mt19937_64 rng(4);
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "key-" + std::to_string(rng() % 700);
    if (rng() % 4 == 0) {
      EXPECT_EQ(t.erase(k, gyre::hash_key(k)), ref.erase(k) == 1);
    } else {
      bool inserted = false;
      t.find_or_insert(k, gyre::hash_key(k), inserted).push_back(std::to_string(i));
      ref[k].push_back(std::to_string(i));
    }
  }
  StateTable<std::string, std::vector<std::string>> moved(std::move(t));
  EXPECT_EQ(t.size(), 0U);  // NOLINT(bugprone-use-after-move): a moved-from table is empty
  ASSERT_EQ(moved.size(), ref.size());
  for (const auto& [k, v] : ref) EXPECT_EQ(*moved.find(k, gyre::hash_key(k)), v);
  StateTable<std::string, std::vector<std::string>> assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.size(), ref.size());
  assigned.clear();  // destroys the strings (ASan checks)
}

// ---- key groups and routing ----

TEST(KeyGroups, RangesPartitionTheKeyGroupsAtEveryParallelism) {
  static_assert(gyre::kKeyGroups == gyre::JobConfig::kMaxParallelism);
  for (int p = 1; p <= gyre::kKeyGroups; ++p) {
    int next = 0;
    for (int i = 0; i < p; ++i) {
      const gyre::KeyGroupRange r = gyre::key_group_range(i, p);
      ASSERT_EQ(r.begin, next) << i << " of " << p;
      ASSERT_GT(r.size(), 0) << i << " of " << p;
      for (int kg = r.begin; kg < r.end; ++kg) ASSERT_EQ(gyre::partition_of_key_group(kg, p), i);
      next = r.end;
    }
    ASSERT_EQ(next, gyre::kKeyGroups);
  }
}

TEST(KeyGroups, TheHashExchangeRoutesByKeyGroup) {
  std::mt19937_64 rng(5);
  for (int p : {1, 2, 3, 4, 5, 7, 64, 100, 511, 512}) {
    for (int i = 0; i < 2000; ++i) {
      const std::uint64_t k = rng();
      const int kg = gyre::key_group_of(gyre::hash_key(k));
      const auto d = gyre::detail::HashPartitioner::of(k, static_cast<std::size_t>(p));
      ASSERT_EQ(d, static_cast<std::size_t>(gyre::partition_of_key_group(kg, p)));
      ASSERT_EQ(d, gyre::hash_partition(gyre::hash_key(k), static_cast<std::size_t>(p)));
      ASSERT_TRUE(gyre::key_group_range(static_cast<int>(d), p).contains(kg));
      const std::string s = std::to_string(k);
      ASSERT_TRUE(gyre::key_group_range(static_cast<int>(gyre::detail::HashPartitioner::of(s, static_cast<std::size_t>(p))), p)
                      .contains(gyre::key_group_of(gyre::hash_key(s))));
    }
  }
  // Key groups are used evenly by a mixed hash.
  std::vector<int> count(gyre::kKeyGroups);
  for (std::uint64_t k = 0; k < 512 * 200; ++k) ++count[static_cast<std::size_t>(gyre::key_group_of(gyre::hash_key(k)))];
  EXPECT_GT(*std::min_element(count.begin(), count.end()), 120);
  EXPECT_LT(*std::max_element(count.begin(), count.end()), 290);
}

// ---- state handles ----

TEST(KeyedState, ValueStateOperations) {
  gyre::KeyedStateBackend b;
  auto& v = b.value<std::uint64_t, std::int64_t>("sum");
  EXPECT_EQ(&v, (&b.value<std::uint64_t, std::int64_t>("sum")));  // same name, same state
  EXPECT_EQ(v.find(1), nullptr);
  EXPECT_EQ(v.value_or(1, -5), -5);
  v.set(1, 10);
  v[2] += 3;
  v.get_or_insert(3, 100) += 1;
  v.get_or_insert(3, 100) += 1;
  EXPECT_EQ(*v.find(1), 10);
  EXPECT_EQ(v.value_or(2, 0), 3);
  EXPECT_EQ(*v.find(3), 102);
  EXPECT_TRUE(v.contains(3));
  EXPECT_EQ(v.size(), 3U);
  EXPECT_TRUE(v.erase(1));
  EXPECT_FALSE(v.erase(1));
  EXPECT_FALSE(v.contains(1));
  std::int64_t total = 0;
  v.for_each([&](std::uint64_t, std::int64_t& x) { total += x; });
  EXPECT_EQ(total, 105);
  EXPECT_EQ(v.erase_if([](std::uint64_t k, std::int64_t&) { return k == 2; }), 1U);
  EXPECT_EQ(v.size(), 1U);
  EXPECT_EQ(b.state_count(), 1U);
}

TEST(KeyedState, ListAndMapStateAgainstReference) {
  gyre::KeyedStateBackend b;
  auto& l = b.list<std::string, int>("events");
  auto& m = b.map<std::uint64_t, std::string, double>("table");
  std::map<std::string, std::vector<int>> lref;
  std::map<std::uint64_t, std::map<std::string, double>> mref;
  std::mt19937_64 rng(6);
  for (int i = 0; i < 20000; ++i) {
    const std::string k = "k" + std::to_string(rng() % 200);
    const std::uint64_t mk = rng() % 100;
    const std::string uk = "u" + std::to_string(rng() % 30);
    switch (rng() % 8) {
      case 0:
        EXPECT_EQ(l.erase(k), lref.erase(k) == 1);
        break;
      case 1:
        l.update(k, [](std::vector<int>& xs) { xs.erase(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(xs.size() / 2 + 1)); });
        if (auto it = lref.find(k); it != lref.end()) {
          it->second.erase(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(it->second.size() / 2 + 1));
          if (it->second.empty()) lref.erase(it);
        }
        break;
      case 2:
        EXPECT_EQ(m.erase(mk, uk), mref.count(mk) && mref[mk].erase(uk) == 1);
        if (mref.count(mk) && mref[mk].empty()) mref.erase(mk);
        break;
      case 3:
        if (rng() % 10 == 0) {
          EXPECT_EQ(m.erase(mk), mref.erase(mk) == 1);
        }
        break;
      case 4:
      case 5:
        m.put(mk, uk, static_cast<double>(i));
        mref[mk][uk] = static_cast<double>(i);
        break;
      default:
        l.add(k, i);
        lref[k].push_back(i);
    }
  }
  ASSERT_EQ(l.size(), lref.size());
  for (const auto& [k, xs] : lref) {
    const auto got = l.get(k);
    EXPECT_EQ(std::vector<int>(got.begin(), got.end()), xs);
  }
  EXPECT_TRUE(l.get("absent").empty());
  ASSERT_EQ(m.size(), mref.size());
  for (const auto& [k, inner] : mref) {
    EXPECT_EQ(m.size(k), inner.size());
    std::map<std::string, double> got;
    m.for_each(k, [&](const std::string& uk, double& uv) { got[uk] = uv; });
    EXPECT_EQ(got, inner);
    for (const auto& [uk, uv] : inner) EXPECT_EQ(*m.get(k, uk), uv);
  }
  EXPECT_EQ(m.get(1000, "u1"), nullptr);
}

TEST(KeyedState, MemoryAccountingGrowsAndShrinks) {
  gyre::KeyedStateBackend b;
  auto& v = b.value<std::uint64_t, std::uint64_t>("v");
  auto& l = b.list<std::uint64_t, std::uint64_t>("l");
  auto& m = b.map<std::uint64_t, std::uint64_t, std::uint64_t>("m");
  EXPECT_EQ(b.memory_bytes(), 0U);
  for (std::uint64_t k = 0; k < 10000; ++k) v[k] = k;
  const std::size_t v_bytes = v.memory_bytes();
  EXPECT_GE(v_bytes, 10000U * 3 * sizeof(std::uint64_t));
  EXPECT_LE(v_bytes, 10000U * 3 * sizeof(std::uint64_t) * 4);
  for (std::uint64_t k = 0; k < 1000; ++k)
    for (std::uint64_t j = 0; j < 100; ++j) l.add(k, j);
  EXPECT_GE(l.memory_bytes(), 100000U * sizeof(std::uint64_t));  // the elements count
  const std::size_t l_full = l.memory_bytes();
  for (std::uint64_t k = 0; k < 1000; k += 2) l.erase(k);
  EXPECT_LT(l.memory_bytes(), l_full * 3 / 4);  // erased lists give their elements back
  for (std::uint64_t k = 0; k < 100; ++k)
    for (std::uint64_t j = 0; j < 100; ++j) m.put(k, j, j);
  const std::size_t m_full = m.memory_bytes();
  EXPECT_GE(m_full, 10000U * 3 * sizeof(std::uint64_t));
  for (std::uint64_t k = 0; k < 50; ++k) m.erase(k);
  EXPECT_LT(m.memory_bytes(), m_full * 3 / 4);
  EXPECT_EQ(b.memory_bytes(), v.memory_bytes() + l.memory_bytes() + m.memory_bytes());
  b.clear();
  EXPECT_EQ(v.size() + l.size() + m.size(), 0U);
  EXPECT_EQ(v.memory_bytes(), v_bytes);  // clear keeps the table
  EXPECT_LT(l.memory_bytes(), l_full / 4);  // only the slot array is left
}

// ---- snapshots ----

// One partition's states: value, list, map and timers of the keys routed to it.
struct Job {
  gyre::ValueState<std::uint64_t, std::uint64_t>* value;
  gyre::ListState<std::uint64_t, std::string>* list;
  gyre::MapState<std::string, std::uint64_t, std::string>* map;
  gyre::TimerService<std::uint64_t>* timers;
  explicit Job(gyre::KeyedStateBackend& b)
      : value(&b.value<std::uint64_t, std::uint64_t>("count")),
        list(&b.list<std::uint64_t, std::string>("seen")),
        map(&b.map<std::string, std::uint64_t, std::string>("names")),
        timers(&b.timers<std::uint64_t>()) {}
};

std::size_t part(std::uint64_t h, int p) {
  return static_cast<std::size_t>(gyre::partition_of_key_group(gyre::key_group_of(h), p));
}

// The state of keys 0..n-1, each on the partition the hash exchange sends it to.
std::vector<std::unique_ptr<gyre::KeyedStateBackend>> fill(int p, std::uint64_t n) {
  std::vector<std::unique_ptr<gyre::KeyedStateBackend>> parts;
  for (int i = 0; i < p; ++i) parts.push_back(std::make_unique<gyre::KeyedStateBackend>(i, p));
  for (std::uint64_t k = 0; k < n; ++k) {
    Job v(*parts[gyre::detail::HashPartitioner::of(k, static_cast<std::size_t>(p))]);
    v.value->set(k, k * k);
    for (std::uint64_t j = 0; j < k % 4; ++j) v.list->add(k, std::to_string(k + j));
    if (k % 3 == 0) v.timers->register_event_time(k, static_cast<gyre::Timestamp>(k % 50));
    if (k % 5 == 0) v.timers->register_processing_time(k, static_cast<gyre::Timestamp>(1000 + k));
    const std::string sk = "s" + std::to_string(k % 500);
    Job w(*parts[gyre::detail::HashPartitioner::of(sk, static_cast<std::size_t>(p))]);
    w.map->put(sk, k, std::to_string(k));
  }
  return parts;
}

TEST(Snapshot, TakenAtThreeRestoresAtOneTwoAndFive) {
  constexpr std::uint64_t kKeys = 5000;
  auto old = fill(3, kKeys);
  std::vector<gyre::StateSnapshot> all;
  for (auto& b : old) {
    auto s = b->snapshot();
    for (const auto& r : s) EXPECT_TRUE(b->owns(r.key_group));
    all.insert(all.end(), s.begin(), s.end());
  }
  // Through the codec, as between ranks.
  std::string wire;
  gyre::Codec<std::vector<gyre::StateSnapshot>>::encode(all, wire);
  std::vector<gyre::StateSnapshot> back;
  EXPECT_EQ(gyre::Codec<std::vector<gyre::StateSnapshot>>::decode(wire.data(), wire.data() + wire.size(), back),
            wire.data() + wire.size());
  EXPECT_EQ(back, all);

  for (int p : {1, 2, 5}) {
    auto expect = fill(p, kKeys);  // the state a job at parallelism p would have built
    for (int i = 0; i < p; ++i) {
      gyre::KeyedStateBackend b(i, p);
      b.restore(back);
      Job got(b);
      Job want(*expect[static_cast<std::size_t>(i)]);
      ASSERT_EQ(got.value->size(), want.value->size()) << i << " of " << p;
      want.value->for_each([&](std::uint64_t k, std::uint64_t& x) {
        EXPECT_EQ(part(gyre::hash_key(k), p), static_cast<std::size_t>(i));
        ASSERT_NE(got.value->find(k), nullptr) << k;
        EXPECT_EQ(*got.value->find(k), x);
      });
      ASSERT_EQ(got.list->size(), want.list->size());
      want.list->for_each([&](std::uint64_t k, std::span<const std::string> xs) {
        const auto g = got.list->get(k);
        EXPECT_EQ(std::vector<std::string>(g.begin(), g.end()), std::vector<std::string>(xs.begin(), xs.end()));
      });
      ASSERT_EQ(got.map->size(), want.map->size());
      want.map->for_each_key([&](const std::string& k) {
        EXPECT_EQ(got.map->size(k), want.map->size(k));
        want.map->for_each(k, [&](std::uint64_t uk, std::string& uv) { EXPECT_EQ(*got.map->get(k, uk), uv); });
      });
      EXPECT_EQ(got.timers->size(gyre::TimeDomain::kEventTime), want.timers->size(gyre::TimeDomain::kEventTime));
      EXPECT_EQ(got.timers->size(gyre::TimeDomain::kProcessingTime),
                want.timers->size(gyre::TimeDomain::kProcessingTime));
      std::vector<std::pair<gyre::Timestamp, std::uint64_t>> fg, fw;
      got.timers->advance_watermark(gyre::kMaxTimestamp, [&](std::uint64_t k, gyre::Timestamp t) { fg.emplace_back(t, k); });
      want.timers->advance_watermark(gyre::kMaxTimestamp, [&](std::uint64_t k, gyre::Timestamp t) { fw.emplace_back(t, k); });
      EXPECT_EQ(fg, fw);  // same timers, same order
      fg.clear();
      fw.clear();
      EXPECT_EQ(got.timers->next_processing_time(), want.timers->next_processing_time());
      got.timers->fire_processing(gyre::kMaxTimestamp, [&](std::uint64_t k, gyre::Timestamp t) { fg.emplace_back(t, k); });
      want.timers->fire_processing(gyre::kMaxTimestamp, [&](std::uint64_t k, gyre::Timestamp t) { fw.emplace_back(t, k); });
      EXPECT_EQ(fg, fw);
    }
  }
}

TEST(Snapshot, RestoreBeforeDeclarationAndSnapshotOfUndeclaredState) {
  gyre::KeyedStateBackend a;
  a.value<std::uint64_t, std::uint64_t>("x").set(7, 70);
  a.list<std::uint64_t, std::uint64_t>("y").add(7, 1);
  const auto snap = a.snapshot();
  gyre::KeyedStateBackend b;
  b.restore(snap);  // nothing declared yet
  const auto again = b.snapshot();  // undeclared restored state is kept
  EXPECT_EQ(again.size(), snap.size());
  EXPECT_EQ((*b.value<std::uint64_t, std::uint64_t>("x").find(7)), 70U);
  EXPECT_EQ((b.list<std::uint64_t, std::uint64_t>("y").get(7).size()), 1U);
  EXPECT_EQ(b.snapshot(), snap);
}

struct NoCodec {
  std::string s;
  bool operator==(const NoCodec&) const = default;
};

TEST(Snapshot, ErrorsNameTheState) {
  gyre::KeyedStateBackend b;
  b.value<std::uint64_t, NoCodec>("sessions").set(1, NoCodec{"a"});  // works without a codec
  EXPECT_EQ((b.value<std::uint64_t, NoCodec>("sessions").find(1)->s), "a");
  const std::string e = testenv::error_of([&] { (void)b.snapshot(); });
  EXPECT_NE(e.find("state 'sessions'"), std::string::npos) << e;
  EXPECT_NE(e.find("gyre::Codec"), std::string::npos) << e;

  const std::string twice = testenv::error_of([&] { b.list<std::uint64_t, NoCodec>("sessions"); });
  EXPECT_NE(twice.find("state 'sessions' is declared twice"), std::string::npos) << twice;
  const std::string types = testenv::error_of([&] { b.value<std::uint64_t, int>("sessions"); });
  EXPECT_NE(types.find("state 'sessions' is declared twice"), std::string::npos) << types;

  gyre::KeyedStateBackend a;
  a.value<std::uint64_t, std::uint64_t>("n").set(1, 1);
  gyre::KeyedStateBackend c;
  c.list<std::uint64_t, std::uint64_t>("n");
  const std::string kind = testenv::error_of([&] { c.restore(a.snapshot()); });
  EXPECT_NE(kind.find("state 'n': the snapshot holds a value state"), std::string::npos) << kind;
  gyre::KeyedStateBackend d;
  d.restore(a.snapshot());
  const std::string late = testenv::error_of([&] { d.value<std::uint64_t, std::int32_t>("n"); });
  EXPECT_NE(late.find("state 'n'"), std::string::npos) << late;
  EXPECT_THROW(gyre::KeyedStateBackend(3, 3), gyre::Error);
  EXPECT_THROW(gyre::KeyedStateBackend(0, 513), gyre::Error);
}

// ---- timers ----

TEST(Timers, FireInTimeOrderOnceAndNotAfterDelete) {
  gyre::TimerService<std::uint64_t> t("t");
  EXPECT_TRUE(t.register_event_time(1, 30));
  EXPECT_TRUE(t.register_event_time(2, 10));
  EXPECT_FALSE(t.register_event_time(2, 10));  // dedup per (key, time)
  EXPECT_TRUE(t.register_event_time(2, 20));
  EXPECT_TRUE(t.register_event_time(3, 20));
  EXPECT_TRUE(t.register_event_time(4, 40));
  EXPECT_TRUE(t.register_processing_time(2, 10));  // another domain: its own timer
  EXPECT_EQ(t.size(), 6U);
  EXPECT_TRUE(t.delete_timer(gyre::TimeDomain::kEventTime, 1, 30));
  EXPECT_FALSE(t.delete_timer(gyre::TimeDomain::kEventTime, 1, 30));
  EXPECT_TRUE(t.contains(gyre::TimeDomain::kProcessingTime, 2, 10));
  EXPECT_FALSE(t.contains(gyre::TimeDomain::kEventTime, 1, 30));
  EXPECT_EQ(t.next_event_time(), 10);
  std::vector<std::pair<gyre::Timestamp, std::uint64_t>> fired;
  auto rec = [&](std::uint64_t k, gyre::Timestamp ts) { fired.emplace_back(ts, k); };
  EXPECT_EQ(t.advance_watermark(9, rec), 0U);
  EXPECT_EQ(t.advance_watermark(30, rec), 3U);
  ASSERT_EQ(fired.size(), 3U);
  EXPECT_EQ(fired[0], (std::pair<gyre::Timestamp, std::uint64_t>{10, 2}));
  EXPECT_EQ(fired[1].first, 20);
  EXPECT_EQ(fired[2].first, 20);
  EXPECT_EQ(t.current_watermark(), 30);
  EXPECT_EQ(t.advance_watermark(35, rec), 0U);  // fired timers are gone
  EXPECT_EQ(t.advance_watermark(20, rec), 0U);
  EXPECT_EQ(t.current_watermark(), 35);
  // A timer the watermark already passed fires at the next advance.
  t.register_event_time(9, 5);
  EXPECT_EQ(t.advance_watermark(35, rec), 1U);
  // Re-registered after delete: fires once.
  t.register_event_time(5, 50);
  t.delete_timer(gyre::TimeDomain::kEventTime, 5, 50);
  t.register_event_time(5, 50);
  fired.clear();
  EXPECT_EQ(t.advance_watermark(100, rec), 2U);  // (5, 50) and (4, 40)
  EXPECT_EQ(fired[0].first, 40);
  EXPECT_EQ(fired[1].first, 50);
  EXPECT_EQ(t.size(gyre::TimeDomain::kEventTime), 0U);
  // Processing time: next_processing_time for the wake-up.
  t.register_processing_time(3, 5);
  EXPECT_EQ(t.next_processing_time(), 5);
  t.delete_timer(gyre::TimeDomain::kProcessingTime, 3, 5);
  EXPECT_EQ(t.next_processing_time(), 10);  // the deleted one does not wake anyone
  fired.clear();
  EXPECT_EQ(t.fire_processing(10, rec), 1U);
  EXPECT_EQ(t.next_processing_time(), gyre::kMaxTimestamp);
  EXPECT_EQ(t.size(), 0U);
}

TEST(Timers, CallbackMayRegisterAndDelete) {
  gyre::TimerService<std::string> t("t");
  t.register_event_time("a", 1);
  t.register_event_time("b", 2);
  t.register_event_time("c", 3);
  std::vector<std::string> fired;
  t.advance_watermark(10, [&](const std::string& k, gyre::Timestamp ts) {
    fired.push_back(k + std::to_string(ts));
    if (k == "a" && ts == 1) {
      t.delete_timer(gyre::TimeDomain::kEventTime, "c", 3);
      t.register_event_time("a", 5);   // inside the limit: fires in this call
      t.register_event_time("a", 50);  // beyond it: stays
    }
  });
  EXPECT_EQ(fired, (std::vector<std::string>{"a1", "b2", "a5"}));
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(t.next_event_time(), 50);
}

TEST(Timers, RandomAgainstReference) {
  gyre::TimerService<std::uint64_t> t("t");
  std::set<std::pair<gyre::Timestamp, std::uint64_t>> ref;
  std::mt19937_64 rng(8);
  gyre::Timestamp wm = 0;
  for (int i = 0; i < 50000; ++i) {
    const std::uint64_t k = rng() % 300;
    const auto ts = static_cast<gyre::Timestamp>(wm + static_cast<gyre::Timestamp>(rng() % 100));
    switch (rng() % 6) {
      case 0:
        EXPECT_EQ(t.delete_timer(gyre::TimeDomain::kEventTime, k, ts), ref.erase({ts, k}) == 1);
        break;
      case 1: {
        wm += static_cast<gyre::Timestamp>(rng() % 10);
        std::vector<std::pair<gyre::Timestamp, std::uint64_t>> got;
        t.advance_watermark(wm, [&](std::uint64_t key, gyre::Timestamp x) { got.emplace_back(x, key); });
        std::vector<std::pair<gyre::Timestamp, std::uint64_t>> want;
        while (!ref.empty() && ref.begin()->first <= wm) {
          want.push_back(*ref.begin());
          ref.erase(ref.begin());
        }
        std::vector<gyre::Timestamp> gt, wt;
        for (auto& g : got) gt.push_back(g.first);
        for (auto& w : want) wt.push_back(w.first);
        EXPECT_EQ(gt, wt);  // time order
        std::sort(got.begin(), got.end());
        EXPECT_EQ(got, want);
        break;
      }
      default:
        EXPECT_EQ(t.register_event_time(k, ts), ref.insert({ts, k}).second);
    }
    ASSERT_EQ(t.size(), ref.size());
  }
}

// Many due at once (the sorted path) with deleted timers and a callback that registers timers
// inside the limit and deletes some that are due: same timers fired as a std::set reference, in
// time order.
TEST(Timers, ManyDueWithDeletesAndCallbacksMatchReference) {
  gyre::TimerService<std::uint64_t> t("t");
  std::set<std::pair<gyre::Timestamp, std::uint64_t>> ref;
  std::mt19937_64 rng(9);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t k = rng() % 5000;
    const auto ts = static_cast<gyre::Timestamp>(rng() % 1000);
    t.register_event_time(k, ts);
    ref.insert({ts, k});
  }
  for (int i = 0; i < 5000; ++i) {
    const std::uint64_t k = rng() % 5000;
    const auto ts = static_cast<gyre::Timestamp>(rng() % 1000);
    EXPECT_EQ(t.delete_timer(gyre::TimeDomain::kEventTime, k, ts), ref.erase({ts, k}) == 1);
  }
  // The callback's effect depends only on (key, time), so the reference can replay it.
  auto effect = [](std::uint64_t k, gyre::Timestamp ts, auto&& reg, auto&& del) {
    if (k % 7 == 0 && ts < 900) reg(k + 1, ts + 3);
    if (k % 11 == 0) del(k + 2, ts + 1);
  };
  std::vector<std::pair<gyre::Timestamp, std::uint64_t>> got, want;
  const gyre::Timestamp limit = 950;
  t.advance_watermark(limit, [&](std::uint64_t k, gyre::Timestamp ts) {
    got.emplace_back(ts, k);
    effect(
        k, ts, [&](std::uint64_t k2, gyre::Timestamp t2) { t.register_event_time(k2, t2); },
        [&](std::uint64_t k2, gyre::Timestamp t2) { t.delete_timer(gyre::TimeDomain::kEventTime, k2, t2); });
  });
  while (!ref.empty() && ref.begin()->first <= limit) {
    const auto [ts, k] = *ref.begin();
    ref.erase(ref.begin());
    want.emplace_back(ts, k);
    effect(
        k, ts, [&](std::uint64_t k2, gyre::Timestamp t2) { ref.insert({t2, k2}); },
        [&](std::uint64_t k2, gyre::Timestamp t2) { ref.erase({t2, k2}); });
  }
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end(), [](const auto& a, const auto& b) { return a.first < b.first; }));
  EXPECT_EQ(got.size(), want.size());
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(t.size(), ref.size());
}

TEST(Timers, AMillionRegisteredAndFiredInOrder) {
  gyre::TimerService<std::uint64_t> t("t");
  constexpr std::uint64_t kN = 1000000;
  // Processor time, not wall time: the test machine is shared.
  const std::clock_t start = std::clock();
  for (std::uint64_t k = 0; k < kN; ++k) t.register_event_time(k, static_cast<gyre::Timestamp>(gyre::mix64(k) % 100000));
  std::uint64_t sum = 0;
  gyre::Timestamp last = gyre::kMinTimestamp;
  bool ordered = true;
  const std::size_t fired = t.advance_watermark(gyre::kMaxTimestamp, [&](std::uint64_t k, gyre::Timestamp ts) {
    sum += k;
    ordered = ordered && ts >= last;
    last = ts;
  });
  const double s = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  EXPECT_EQ(fired, kN);
  EXPECT_TRUE(ordered);
  EXPECT_EQ(sum, kN * (kN - 1) / 2);
  EXPECT_EQ(t.size(), 0U);
  // Speed is measured by bench/core_bench (f), not asserted here (sanitizer builds are slow).
  std::printf("1M timers registered and fired in %.3f s\n", s);
}

}  // namespace
