// Keyed state and timers of one operator instance, kept in key groups.
//
// - detail::StateTable<K, V> (state_table.h): the one open-addressing hash table under every
//   keyed state and the built-in folds, joins and groups.
// - ValueState<K, V>, ListState<K, V>, MapState<K, UK, UV>: named states of an operator
//   instance, every call with an explicit key (there is no hidden "current key").
// - TimerService<K>: event-time and processing-time timers per (key, time), deduplicated, fired
//   in time order; timers are state (snapshotted with their key's key group).
// - KeyedStateBackend: owns the named states of one operator instance, knows the key groups the
//   instance owns (key_group_range in hash.h, the rule the hash exchange routes by), and turns
//   its state into per-key-group StateSnapshot records that restore into an instance of ANY
//   parallelism: restore() keeps only the key groups the new instance owns.
//
// Contracts: not thread-safe (one backend per operator instance, used by its own worker). A
// state whose key or value type has no gyre::Codec (codec.h) works, but snapshot() throws naming
// it. References and pointers into a state stay valid until the next insertion into that state
// (growth moves entries) or erase from it (backward shift moves entries).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "gyre/core/codec.h"
#include "gyre/core/error.h"
#include "gyre/core/event.h"
#include "gyre/core/hash.h"
#include "gyre/core/state_table.h"

namespace gyre {

// What a snapshot record holds.
enum class StateKind : std::uint8_t { kValue = 1, kList = 2, kMap = 3, kTimers = 4 };
const char* to_string(StateKind kind);

// The state of one named state in one key group: the unit a snapshot moves between partitions.
// `type_tag` identifies the state's key/value types (within one build of the program).
struct StateSnapshot {
  std::string state;
  int key_group = 0;
  StateKind kind = StateKind::kValue;
  std::uint64_t type_tag = 0;
  std::string bytes;
  friend bool operator==(const StateSnapshot&, const StateSnapshot&) = default;
};

template <>
struct Codec<StateSnapshot> {
  static void encode(const StateSnapshot& s, std::string& out) {
    Codec<std::string>::encode(s.state, out);
    Codec<std::int32_t>::encode(s.key_group, out);
    Codec<std::uint8_t>::encode(static_cast<std::uint8_t>(s.kind), out);
    Codec<std::uint64_t>::encode(s.type_tag, out);
    Codec<std::string>::encode(s.bytes, out);
  }
  static const char* decode(const char* p, const char* end, StateSnapshot& s) {
    std::uint8_t kind = 0;
    p = Codec<std::string>::decode(p, end, s.state);
    p = Codec<std::int32_t>::decode(p, end, s.key_group);
    p = Codec<std::uint8_t>::decode(p, end, kind);
    s.kind = static_cast<StateKind>(kind);
    p = Codec<std::uint64_t>::decode(p, end, s.type_tag);
    return Codec<std::string>::decode(p, end, s.bytes);
  }
};

// A type a snapshot can write and read back.
template <class T>
concept Snapshottable = Encodable<T> && std::default_initializable<T>;

namespace detail {

// A number that tells the key/value types of a state apart (within one build).
std::uint64_t type_tag_of(std::initializer_list<const std::type_info*> types);
std::string type_names_of(std::initializer_list<const std::type_info*> types);

[[noreturn]] void no_codec(const std::string& state, StateKind kind, const std::string& types);

// What the backend knows of every state; the per-record calls of the states are not virtual.
class StateBase {
 public:
  StateBase(std::string name, StateKind kind, std::uint64_t type_tag, std::string type_names)
      : name_(std::move(name)), kind_(kind), type_tag_(type_tag), type_names_(std::move(type_names)) {}
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  virtual ~StateBase() = default;

  const std::string& name() const { return name_; }
  StateKind kind() const { return kind_; }
  std::uint64_t type_tag() const { return type_tag_; }
  const std::string& type_names() const { return type_names_; }

  // Keys (for timers: pending timers).
  virtual std::size_t size() const = 0;
  virtual std::size_t memory_bytes() const = 0;
  virtual void clear() = 0;
  // Appends every entry's bytes to groups[key group] (kKeyGroups strings); throws if the types
  // have no codec.
  virtual void snapshot_into(std::vector<std::string>& groups) const = 0;
  // Adds the entries of one key group's bytes (from snapshot_into); existing keys are overwritten.
  virtual void restore_group(const char* p, const char* end) = 0;

 private:
  std::string name_;
  StateKind kind_;
  std::uint64_t type_tag_;
  std::string type_names_;
};

template <class S, class... Ts>
struct StateTypes {
  static std::uint64_t tag() { return type_tag_of({&typeid(S), &typeid(Ts)...}); }
  static std::string names() { return type_names_of({&typeid(Ts)...}); }
};

template <class K>
void encode_group(std::vector<std::string>& groups, std::uint64_t h, const K& k, std::string*& out) {
  out = &groups[static_cast<std::size_t>(key_group_of(h))];
  Codec<K>::encode(k, *out);
}

}  // namespace detail

// One value per key.
template <Key K, class V>
class ValueState final : public detail::StateBase {
 public:
  static constexpr StateKind kKind = StateKind::kValue;
  using Types = detail::StateTypes<ValueState, K, V>;
  explicit ValueState(std::string name) : StateBase(std::move(name), kKind, Types::tag(), Types::names()) {}

  V* find(const K& k) { return table_.find(k, hash_key(k)); }
  const V* find(const K& k) const { return table_.find(k, hash_key(k)); }
  bool contains(const K& k) const { return find(k) != nullptr; }
  V value_or(const K& k, V fallback) const {
    const V* v = find(k);
    return v ? *v : std::move(fallback);
  }
  void set(const K& k, V v) {
    bool inserted = false;
    V& slot = table_.find_or_insert(k, hash_key(k), [&] { return std::move(v); }, inserted);
    if (!inserted) slot = std::move(v);  // make() did not run: v is intact
  }
  // The value of k, inserted as `init` (or V{}) if absent: for read-modify-write.
  V& get_or_insert(const K& k, const V& init) {
    bool inserted = false;
    return table_.find_or_insert(k, hash_key(k), [&] { return init; }, inserted);
  }
  V& operator[](const K& k) {
    bool inserted = false;
    return table_.find_or_insert(k, hash_key(k), inserted);
  }
  bool erase(const K& k) { return table_.erase(k, hash_key(k)); }
  // f(const K&, V&) for every key.
  template <class F>
  void for_each(F&& f) {
    table_.for_each(f);
  }
  template <class F>
  std::size_t erase_if(F&& pred) {
    return table_.erase_if(pred);
  }

  std::size_t size() const override { return table_.size(); }
  std::size_t memory_bytes() const override { return table_.memory_bytes(); }
  void clear() override { table_.clear(); }
  // The table underneath, for operators that hash once per record (find_or_insert with a hash).
  detail::StateTable<K, V>& table() { return table_; }

  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<K> && Snapshottable<V>) {
      table_.for_each_hashed([&](std::uint64_t h, const K& k, const V& v) {
        std::string* out = nullptr;
        detail::encode_group(groups, h, k, out);
        Codec<V>::encode(v, *out);
      });
    } else {
      (void)groups;
      detail::no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<K> && Snapshottable<V>) {
      while (p < end) {
        K k{};
        V v{};
        p = Codec<K>::decode(p, end, k);
        p = Codec<V>::decode(p, end, v);
        set(k, std::move(v));
      }
    } else {
      (void)p;
      (void)end;
      detail::no_codec(name(), kKind, type_names());
    }
  }

 private:
  detail::StateTable<K, V> table_;
};

// A list of values per key, in the order added.
template <Key K, class V>
class ListState final : public detail::StateBase {
 public:
  static constexpr StateKind kKind = StateKind::kList;
  using Types = detail::StateTypes<ListState, K, V>;
  explicit ListState(std::string name) : StateBase(std::move(name), kKind, Types::tag(), Types::names()) {}

  void add(const K& k, V v) {
    std::vector<V>& list = slot(k);
    const std::size_t cap = list.capacity();
    list.push_back(std::move(v));
    element_bytes_ += (list.capacity() - cap) * sizeof(V);
  }
  void add_all(const K& k, std::span<const V> vs) {
    std::vector<V>& list = slot(k);
    const std::size_t cap = list.capacity();
    list.insert(list.end(), vs.begin(), vs.end());
    element_bytes_ += (list.capacity() - cap) * sizeof(V);
  }
  // The values of k (empty if none); valid until the next change of this state.
  std::span<const V> get(const K& k) const {
    const std::vector<V>* list = table_.find(k, hash_key(k));
    return list ? std::span<const V>(*list) : std::span<const V>();
  }
  bool contains(const K& k) const { return table_.find(k, hash_key(k)) != nullptr; }
  // f(std::vector<V>&) edits the list of k in place (if k has one); an emptied list is erased.
  template <class F>
  void update(const K& k, F&& f) {
    const std::uint64_t h = hash_key(k);
    const std::size_t i = table_.locate(k, h);
    if (i == decltype(table_)::npos) return;
    std::vector<V>& list = table_.entry_at(i).value;
    const std::size_t cap = list.capacity();
    f(list);
    element_bytes_ = element_bytes_ + list.capacity() * sizeof(V) - cap * sizeof(V);
    if (list.empty()) erase_index(i);
  }
  bool erase(const K& k) {
    const std::size_t i = table_.locate(k, hash_key(k));
    if (i == decltype(table_)::npos) return false;
    erase_index(i);
    return true;
  }
  // f(const K&, std::span<const V>) for every key.
  template <class F>
  void for_each(F&& f) const {
    table_.for_each([&](const K& k, const std::vector<V>& list) { f(k, std::span<const V>(list)); });
  }

  std::size_t size() const override { return table_.size(); }
  std::size_t memory_bytes() const override { return table_.memory_bytes() + element_bytes_; }
  void clear() override {
    table_.clear();
    element_bytes_ = 0;
  }

  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<K> && Snapshottable<V>) {
      table_.for_each_hashed([&](std::uint64_t h, const K& k, const std::vector<V>& list) {
        std::string* out = nullptr;
        detail::encode_group(groups, h, k, out);
        Codec<std::vector<V>>::encode(list, *out);
      });
    } else {
      (void)groups;
      detail::no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<K> && Snapshottable<V>) {
      while (p < end) {
        K k{};
        std::vector<V> list;
        p = Codec<K>::decode(p, end, k);
        p = Codec<std::vector<V>>::decode(p, end, list);
        erase(k);
        if (list.empty()) continue;
        element_bytes_ += list.capacity() * sizeof(V);
        bool inserted = false;
        table_.find_or_insert(k, hash_key(k), [&] { return std::move(list); }, inserted);
      }
    } else {
      (void)p;
      (void)end;
      detail::no_codec(name(), kKind, type_names());
    }
  }

 private:
  std::vector<V>& slot(const K& k) {
    bool inserted = false;
    return table_.find_or_insert(k, hash_key(k), inserted);
  }
  void erase_index(std::size_t i) {
    element_bytes_ -= table_.entry_at(i).value.capacity() * sizeof(V);
    table_.erase_at(i);
  }

  detail::StateTable<K, std::vector<V>> table_;
  std::size_t element_bytes_ = 0;  // capacity of the lists
};

// A map from user key UK to UV per key K.
template <Key K, Key UK, class UV>
class MapState final : public detail::StateBase {
  using Inner = detail::StateTable<UK, UV>;

 public:
  static constexpr StateKind kKind = StateKind::kMap;
  using Types = detail::StateTypes<MapState, K, UK, UV>;
  explicit MapState(std::string name) : StateBase(std::move(name), kKind, Types::tag(), Types::names()) {}

  void put(const K& k, const UK& uk, UV uv) {
    bool inserted = false;
    Inner& m = table_.find_or_insert(k, hash_key(k), inserted);
    const std::size_t before = m.memory_bytes();
    UV& slot = m.find_or_insert(uk, hash_key(uk), [&] { return std::move(uv); }, inserted);
    if (!inserted) slot = std::move(uv);  // make() did not run: uv is intact
    inner_bytes_ += m.memory_bytes() - before;
  }
  UV* get(const K& k, const UK& uk) {
    Inner* m = table_.find(k, hash_key(k));
    return m ? m->find(uk, hash_key(uk)) : nullptr;
  }
  const UV* get(const K& k, const UK& uk) const {
    const Inner* m = table_.find(k, hash_key(k));
    return m ? m->find(uk, hash_key(uk)) : nullptr;
  }
  bool contains(const K& k, const UK& uk) const { return get(k, uk) != nullptr; }
  bool contains(const K& k) const { return table_.find(k, hash_key(k)) != nullptr; }
  // Entries of key k.
  std::size_t size(const K& k) const {
    const Inner* m = table_.find(k, hash_key(k));
    return m ? m->size() : 0;
  }
  // Removes one entry of k; the key goes when its last entry does.
  bool erase(const K& k, const UK& uk) {
    const std::size_t i = table_.locate(k, hash_key(k));
    if (i == Outer::npos) return false;
    Inner& m = table_.entry_at(i).value;
    if (!m.erase(uk, hash_key(uk))) return false;
    if (m.empty()) erase_index(i);
    return true;
  }
  // Removes key k with all its entries.
  bool erase(const K& k) {
    const std::size_t i = table_.locate(k, hash_key(k));
    if (i == Outer::npos) return false;
    erase_index(i);
    return true;
  }
  // f(const UK&, UV&) for every entry of k.
  template <class F>
  void for_each(const K& k, F&& f) {
    if (Inner* m = table_.find(k, hash_key(k))) m->for_each(f);
  }
  // f(const K&) for every key.
  template <class F>
  void for_each_key(F&& f) const {
    table_.for_each([&](const K& k, const Inner&) { f(k); });
  }

  // Keys K.
  std::size_t size() const override { return table_.size(); }
  std::size_t memory_bytes() const override { return table_.memory_bytes() + inner_bytes_; }
  void clear() override {
    table_.clear();
    inner_bytes_ = 0;
  }

  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<K> && Snapshottable<UK> && Snapshottable<UV>) {
      table_.for_each_hashed([&](std::uint64_t h, const K& k, const Inner& m) {
        std::string* out = nullptr;
        detail::encode_group(groups, h, k, out);
        Codec<std::uint64_t>::encode(m.size(), *out);
        m.for_each([&](const UK& uk, const UV& uv) {
          Codec<UK>::encode(uk, *out);
          Codec<UV>::encode(uv, *out);
        });
      });
    } else {
      (void)groups;
      detail::no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<K> && Snapshottable<UK> && Snapshottable<UV>) {
      while (p < end) {
        K k{};
        std::uint64_t n = 0;
        p = Codec<K>::decode(p, end, k);
        p = Codec<std::uint64_t>::decode(p, end, n);
        for (std::uint64_t i = 0; i < n; ++i) {
          UK uk{};
          UV uv{};
          p = Codec<UK>::decode(p, end, uk);
          p = Codec<UV>::decode(p, end, uv);
          put(k, uk, std::move(uv));
        }
      }
    } else {
      (void)p;
      (void)end;
      detail::no_codec(name(), kKind, type_names());
    }
  }

 private:
  using Outer = detail::StateTable<K, Inner>;
  void erase_index(std::size_t i) {
    inner_bytes_ -= table_.entry_at(i).value.memory_bytes();
    table_.erase_at(i);
  }

  Outer table_;
  std::size_t inner_bytes_ = 0;  // slot arrays of the inner tables
};

// Which clock a timer follows.
enum class TimeDomain : std::uint8_t { kEventTime = 1, kProcessingTime = 2 };

// Timers per (key, time) in two domains. A timer fires once, in time order (equal times: in the
// order of the key's hash), when the watermark (event time) or the clock (processing time)
// reaches its time; registering an existing timer again does nothing. A timer registered for a
// time the watermark already passed fires at the next advance_watermark. The callback may
// register and delete timers; one it registers at a time <= the limit fires in the same call.
template <Key K>
class TimerService final : public detail::StateBase {
 public:
  static constexpr StateKind kKind = StateKind::kTimers;
  using Types = detail::StateTypes<TimerService, K>;
  explicit TimerService(std::string name) : StateBase(std::move(name), kKind, Types::tag(), Types::names()) {}

  // True if the timer is new.
  bool register_timer(TimeDomain d, const K& k, Timestamp t) { return add(bit(d), k, hash_key(k), t); }
  bool register_event_time(const K& k, Timestamp t) { return register_timer(TimeDomain::kEventTime, k, t); }
  bool register_processing_time(const K& k, Timestamp t) {
    return register_timer(TimeDomain::kProcessingTime, k, t);
  }
  // True if there was such a timer.
  bool delete_timer(TimeDomain d, const K& k, Timestamp t) {
    const std::uint64_t kh = hash_key(k);
    const std::size_t i = locate(k, kh, t);
    const std::uint8_t b = bit(d);
    if (i == Table::npos || (table_.entry_at(i).value & b) == 0) return false;
    drop(i, b);
    Heap& heap = heaps_[index(d)];
    const std::size_t live = live_[index(d)];
    if (heap.size() > 2 * live + 1024) rebuild(d);  // deleted timers still in the heap
    return true;
  }
  bool contains(TimeDomain d, const K& k, Timestamp t) const {
    const std::size_t i = locate(k, hash_key(k), t);
    return i != Table::npos && (table_.entry_at(i).value & bit(d)) != 0;
  }

  // Raises the watermark to t and fires f(const K&, Timestamp) for every event-time timer at or
  // before t. Returns the number fired.
  template <class F>
  std::size_t advance_watermark(Timestamp t, F&& f) {
    watermark_ = std::max(watermark_, t);
    return fire(TimeDomain::kEventTime, t, f);
  }
  // Fires f(const K&, Timestamp) for every processing-time timer at or before `now`.
  template <class F>
  std::size_t fire_processing(Timestamp now, F&& f) {
    return fire(TimeDomain::kProcessingTime, now, f);
  }
  Timestamp current_watermark() const { return watermark_; }
  // Earliest pending timer of the domain, kMaxTimestamp if none (for the runtime's wake-up).
  Timestamp next_time(TimeDomain d) {
    Heap& heap = heaps_[index(d)];
    while (!heap.empty()) {
      const Pending& top = heap.front();
      const std::size_t i = locate(top.key, top.hash, top.time);
      if (i != Table::npos && (table_.entry_at(i).value & bit(d)) != 0) return top.time;
      std::pop_heap(heap.begin(), heap.end(), Later{});
      heap.pop_back();
    }
    return kMaxTimestamp;
  }
  Timestamp next_processing_time() { return next_time(TimeDomain::kProcessingTime); }
  Timestamp next_event_time() { return next_time(TimeDomain::kEventTime); }
  // Pending timers of one domain.
  std::size_t size(TimeDomain d) const { return live_[index(d)]; }

  // Pending timers, both domains.
  std::size_t size() const override { return live_[0] + live_[1]; }
  std::size_t memory_bytes() const override {
    return table_.memory_bytes() + (heaps_[0].capacity() + heaps_[1].capacity()) * sizeof(Pending);
  }
  // Drops every timer (the watermark stays).
  void clear() override {
    table_.clear();
    for (Heap& h : heaps_) h.clear();
    live_[0] = live_[1] = 0;
  }

  void snapshot_into(std::vector<std::string>& groups) const override {
    if constexpr (Snapshottable<K>) {
      table_.for_each_hashed([&](std::uint64_t h, const TimerKey& tk, std::uint8_t domains) {
        std::string* out = nullptr;
        detail::encode_group(groups, h, tk.first, out);
        Codec<Timestamp>::encode(tk.second, *out);
        Codec<std::uint8_t>::encode(domains, *out);
      });
    } else {
      (void)groups;
      detail::no_codec(name(), kKind, type_names());
    }
  }
  void restore_group(const char* p, const char* end) override {
    if constexpr (Snapshottable<K>) {
      while (p < end) {
        K k{};
        Timestamp t = 0;
        std::uint8_t domains = 0;
        p = Codec<K>::decode(p, end, k);
        p = Codec<Timestamp>::decode(p, end, t);
        p = Codec<std::uint8_t>::decode(p, end, domains);
        const std::uint64_t kh = hash_key(k);
        for (TimeDomain d : {TimeDomain::kEventTime, TimeDomain::kProcessingTime})
          if ((domains & bit(d)) != 0) add(bit(d), k, kh, t);
      }
    } else {
      (void)p;
      (void)end;
      detail::no_codec(name(), kKind, type_names());
    }
  }

 private:
  using TimerKey = std::pair<K, Timestamp>;
  using Table = detail::StateTable<TimerKey, std::uint8_t>;  // value: domains (bits)
  struct Pending {
    Timestamp time;
    std::uint64_t hash;  // hash_key of the key
    K key;
  };
  struct Later {
    bool operator()(const Pending& a, const Pending& b) const {
      return a.time != b.time ? a.time > b.time : a.hash > b.hash;
    }
  };
  using Heap = std::vector<Pending>;

  static constexpr std::uint8_t bit(TimeDomain d) { return static_cast<std::uint8_t>(d); }
  static constexpr std::size_t index(TimeDomain d) { return d == TimeDomain::kEventTime ? 0 : 1; }
  // The table's hash of (key, time): the key's key group in the top bits, a mix of both below.
  static std::uint64_t timer_hash(std::uint64_t kh, Timestamp t) {
    constexpr std::uint64_t kGroup = ~std::uint64_t{0} << (64 - kKeyGroupBits);
    return (kh & kGroup) | (mix64(kh ^ (static_cast<std::uint64_t>(t) * 0x9e3779b97f4a7c15ULL)) & ~kGroup);
  }
  std::size_t locate(const K& k, std::uint64_t kh, Timestamp t) const {
    return table_.locate(timer_hash(kh, t), [&](const TimerKey& tk) { return tk.second == t && tk.first == k; });
  }
  bool add(std::uint8_t b, const K& k, std::uint64_t kh, Timestamp t) {
    bool inserted = false;
    std::uint8_t& domains = table_.find_or_insert(TimerKey{k, t}, timer_hash(kh, t), inserted);
    if ((domains & b) != 0) return false;
    domains = static_cast<std::uint8_t>(domains | b);
    const TimeDomain d = static_cast<TimeDomain>(b);
    Heap& heap = heaps_[index(d)];
    heap.push_back(Pending{t, kh, k});
    std::push_heap(heap.begin(), heap.end(), Later{});
    ++live_[index(d)];
    return true;
  }
  void drop(std::size_t i, std::uint8_t b) {
    std::uint8_t& domains = table_.entry_at(i).value;
    domains = static_cast<std::uint8_t>(domains & ~b);
    if (domains == 0) table_.erase_at(i);
    --live_[index(static_cast<TimeDomain>(b))];
  }
  // Pops due timers one by one; when many are due (more than a sixteenth of the heap), takes
  // the rest of the due ones out in one pass, sorts them and fires them in order, merged with
  // any the callback registers meanwhile (a pop costs log n cache misses, a sort does not).
  template <class F>
  std::size_t fire(TimeDomain d, Timestamp limit, F& f) {
    Heap& heap = heaps_[index(d)];
    std::size_t fired = 0;
    std::size_t pops_left = heap.size() / 16 + 64;
    while (!heap.empty() && heap.front().time <= limit) {
      if (pops_left == 0) {
        fired += fire_sorted(d, limit, f);
        pops_left = ~std::size_t{0};
        continue;
      }
      --pops_left;
      fired += fire_top(d, f);
    }
    return fired;
  }
  template <class F>
  std::size_t fire_top(TimeDomain d, F& f) {
    Heap& heap = heaps_[index(d)];
    std::pop_heap(heap.begin(), heap.end(), Later{});
    Pending p = std::move(heap.back());
    heap.pop_back();
    return fire_one(d, p, f);
  }
  template <class F>
  std::size_t fire_one(TimeDomain d, const Pending& p, F& f) {
    const std::uint8_t b = bit(d);
    const std::size_t i = locate(p.key, p.hash, p.time);
    if (i == Table::npos || (table_.entry_at(i).value & b) == 0) return 0;  // deleted
    drop(i, b);
    f(std::as_const(p.key), p.time);
    return 1;
  }
  template <class F>
  std::size_t fire_sorted(TimeDomain d, Timestamp limit, F& f) {
    Heap& heap = heaps_[index(d)];
    Heap due;
    auto mid = std::partition(heap.begin(), heap.end(), [&](const Pending& p) { return p.time > limit; });
    due.assign(std::make_move_iterator(mid), std::make_move_iterator(heap.end()));
    heap.erase(mid, heap.end());
    std::make_heap(heap.begin(), heap.end(), Later{});
    std::sort(due.begin(), due.end(), [](const Pending& a, const Pending& b) { return Later{}(b, a); });
    constexpr std::size_t kAhead = 8;
    std::size_t fired = 0;
    for (std::size_t n = 0; n < due.size(); ++n) {
      if (n + kAhead < due.size()) {
        const Pending& q = due[n + kAhead];
        table_.prefetch(timer_hash(q.hash, q.time));
      }
      // Timers the callback registered before this one go first.
      while (!heap.empty() && heap.front().time <= limit && Later{}(due[n], heap.front())) fired += fire_top(d, f);
      fired += fire_one(d, due[n], f);
    }
    return fired;
  }
  // The heap of one domain again from the table (drops deleted timers).
  void rebuild(TimeDomain d) {
    Heap& heap = heaps_[index(d)];
    heap.clear();
    const std::uint8_t b = bit(d);
    table_.for_each([&](const TimerKey& tk, std::uint8_t domains) {
      if ((domains & b) != 0) heap.push_back(Pending{tk.second, hash_key(tk.first), tk.first});
    });
    std::make_heap(heap.begin(), heap.end(), Later{});
  }

  Table table_;
  Heap heaps_[2];
  std::size_t live_[2] = {0, 0};
  Timestamp watermark_ = kMinTimestamp;
};

// The keyed state of one operator instance (partition `partition` of `parallelism`).
class KeyedStateBackend {
 public:
  KeyedStateBackend() = default;  // all key groups (parallelism 1)
  KeyedStateBackend(int partition, int parallelism);
  explicit KeyedStateBackend(KeyGroupRange range);
  KeyedStateBackend(const KeyedStateBackend&) = delete;
  KeyedStateBackend& operator=(const KeyedStateBackend&) = delete;
  KeyedStateBackend(KeyedStateBackend&&) noexcept;
  KeyedStateBackend& operator=(KeyedStateBackend&&) noexcept;
  ~KeyedStateBackend();

  KeyGroupRange key_groups() const { return range_; }
  bool owns(int key_group) const { return range_.contains(key_group); }

  // The state called `name`, created on first use. The same name again returns the same state;
  // with another kind or other types it throws gyre::Error naming the state.
  template <Key K, class V>
  ValueState<K, V>& value(std::string_view name) {
    return declare<ValueState<K, V>>(name);
  }
  template <Key K, class V>
  ListState<K, V>& list(std::string_view name) {
    return declare<ListState<K, V>>(name);
  }
  template <Key K, Key UK, class UV>
  MapState<K, UK, UV>& map(std::string_view name) {
    return declare<MapState<K, UK, UV>>(name);
  }
  template <Key K>
  TimerService<K>& timers(std::string_view name = "timers") {
    return declare<TimerService<K>>(name);
  }
  // A state of an own class S (derived from detail::StateBase, with kKind and Types as the states
  // above have), made as S(name, args...) on first use: for an operator whose hot path wants
  // another layout than the value/list/map states (the built-in join's build side).
  template <class S, class... Args>
    requires std::derived_from<S, detail::StateBase>
  S& custom(std::string_view name, Args&&... args) {
    return declare<S>(name, std::forward<Args>(args)...);
  }

  // Every state's entries, one record per (state, non-empty key group), states in name order.
  // Restored-but-undeclared state is included as it came. Throws if a state has no codec.
  std::vector<StateSnapshot> snapshot() const;
  // Adds the records of owned key groups from snapshots of any partitions at any parallelism;
  // the rest are ignored. Records of a state not declared yet wait for its declaration. A kind
  // or type mismatch with a declared state throws naming the state.
  void restore(std::span<const StateSnapshot> snapshots);

  // Bytes held by all states (slot arrays, list elements, timer heaps).
  std::size_t memory_bytes() const;
  // Empties every state, keeping capacity.
  void clear();
  std::size_t state_count() const { return states_.size(); }

 private:
  template <class S, class... Args>
  S& declare(std::string_view name, Args&&... args) {
    if (detail::StateBase* s = find(name)) {
      if (s->kind() != S::kKind || s->type_tag() != S::Types::tag())
        mismatch(*s, S::kKind, S::Types::names());
      return static_cast<S&>(*s);
    }
    return static_cast<S&>(add(std::make_unique<S>(std::string(name), std::forward<Args>(args)...)));
  }
  detail::StateBase* find(std::string_view name) const;
  detail::StateBase& add(std::unique_ptr<detail::StateBase> s);
  [[noreturn]] static void mismatch(const detail::StateBase& s, StateKind kind, const std::string& types);

  KeyGroupRange range_;
  std::map<std::string, std::unique_ptr<detail::StateBase>, std::less<>> states_;
  std::map<std::string, std::vector<StateSnapshot>, std::less<>> pending_;  // restored, not declared
};

}  // namespace gyre
