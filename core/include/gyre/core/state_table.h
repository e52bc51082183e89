// detail::StateTable<K, V>: the one open-addressing hash table of gyre, under keyed state
// (state.h) and the built-in folds, joins, groups and solution sets (FlatMap in hash.h is this).
//
// Linear probing over one slot array that stores each entry's 64-bit hash beside it (compared
// before the key; rehashing never calls the hash function). Erase by backward shift: no
// tombstones, so probe lengths stay short under churn. Grows at load 1/2 (at 3/4 a
// read-modify-write loop over 1M keys ran about a fifth slower, for a third less memory).
// clear() keeps the capacity; shrink_to_fit() gives it back. A table that never held an entry
// allocates nothing. The caller passes the hash (hash_key(k) for keyed state) so a hot loop hashes
// once; the top bits of the hash are the entry's key group (hash.h), handed back by
// for_each_hashed for snapshots. Not thread-safe. Pointers into the table stay valid until the
// next insertion (growth moves entries) or erase (backward shift moves entries).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace gyre::detail {

// Open-addressing hash table from K to V (see the top of the file). `h` arguments are the
// key's 64-bit hash; the same key must always come with the same hash, and the hash's top bits
// are its key group (for_each_hashed hands it back for snapshots).
template <class K, class V>
class StateTable {
 public:
  struct Entry {
    K key;
    V value;
  };
  static constexpr std::size_t npos = ~std::size_t{0};

  StateTable() noexcept = default;
  StateTable(const StateTable&) = delete;
  StateTable& operator=(const StateTable&) = delete;
  StateTable(StateTable&& o) noexcept { take(o); }
  StateTable& operator=(StateTable&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  ~StateTable() { release(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t capacity() const { return capacity_; }
  // Bytes of the slot array (what the table itself allocated; not heap memory owned by K or V).
  std::size_t memory_bytes() const { return capacity_ * sizeof(Slot); }

  // Index of the slot holding a key equal under `eq` (called with the stored key), or npos.
  template <class Eq>
  std::size_t locate(std::uint64_t h, Eq&& eq) const {
    h = stored_hash(h);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == h && eq(s.entry.key)) return i;
      if (s.hash == 0) return npos;
    }
  }
  std::size_t locate(const K& k, std::uint64_t h) const {
    return locate(h, [&](const K& x) { return x == k; });
  }

  V* find(const K& k, std::uint64_t h) {
    const std::size_t i = locate(k, h);
    return i == npos ? nullptr : &slots_[i].entry.value;
  }
  const V* find(const K& k, std::uint64_t h) const {
    const std::size_t i = locate(k, h);
    return i == npos ? nullptr : &slots_[i].entry.value;
  }

  // The value for `k`, constructed from make() if absent; `inserted` tells which.
  template <class Make>
  V& find_or_insert(const K& k, std::uint64_t h, Make&& make, bool& inserted) {
    if ((size_ + 1) * 2 > capacity_) rehash(std::max<std::size_t>(kMinCapacity, capacity_ * 2));
    h = stored_hash(h);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.hash == h && s.entry.key == k) {
        inserted = false;
        return s.entry.value;
      }
      if (s.hash == 0) {
        ::new (static_cast<void*>(&s.entry)) Entry{k, make()};
        s.hash = h;
        ++size_;
        inserted = true;
        return s.entry.value;
      }
    }
  }
  V& find_or_insert(const K& k, std::uint64_t h, bool& inserted) {
    return find_or_insert(k, h, [] { return V{}; }, inserted);
  }

  bool erase(const K& k, std::uint64_t h) {
    const std::size_t i = locate(k, h);
    if (i == npos) return false;
    erase_at(i);
    return true;
  }

  // Brings the home slot of hash h into the cache (for loops that know their next keys).
  void prefetch(std::uint64_t h) const { __builtin_prefetch(&slots_[stored_hash(h) & mask_]); }

  // Slot access by index (from locate): the entry must be live.
  Entry& entry_at(std::size_t i) { return slots_[i].entry; }
  const Entry& entry_at(std::size_t i) const { return slots_[i].entry; }
  std::uint64_t hash_at(std::size_t i) const { return slots_[i].hash; }

  // Removes the entry in slot i and shifts the rest of its cluster back (backward-shift
  // deletion: an entry moves into the hole when its home slot is at or before the hole).
  void erase_at(std::size_t i) {
    slots_[i].entry.~Entry();
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      Slot& sj = slots_[j];
      if (sj.hash == 0) break;
      const std::size_t home = sj.hash & mask_;
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        Slot& si = slots_[i];
        ::new (static_cast<void*>(&si.entry)) Entry(std::move(sj.entry));
        si.hash = sj.hash;
        sj.entry.~Entry();
        i = j;
      }
    }
    slots_[i].hash = 0;
    --size_;
  }

  // Erases every entry for which pred(const K&, V&) is true; visits each entry once.
  template <class Pred>
  std::size_t erase_if(Pred&& pred) {
    if (size_ == 0) return 0;
    // Start after an empty slot: entries shift back only within their cluster, so none crosses
    // the start and none is visited twice or skipped.
    std::size_t start = 0;
    while (slots_[start].hash != 0) ++start;
    std::size_t erased = 0;
    for (std::size_t n = 1; n <= capacity_; ++n) {
      const std::size_t i = (start + n) & mask_;
      while (slots_[i].hash != 0 && pred(std::as_const(slots_[i].entry.key), slots_[i].entry.value)) {
        erase_at(i);
        ++erased;
      }
    }
    return erased;
  }

  // f(const K&, V&) for every entry, in slot order. No insert or erase inside f.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].hash != 0) f(std::as_const(slots_[i].entry.key), slots_[i].entry.value);
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].hash != 0) f(slots_[i].entry.key, slots_[i].entry.value);
  }
  // f(std::uint64_t hash, const K&, const V&): the stored hash gives the key group.
  template <class F>
  void for_each_hashed(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].hash != 0) f(slots_[i].hash, slots_[i].entry.key, slots_[i].entry.value);
  }

  // Removes every entry, keeps the capacity.
  void clear() {
    if (size_ == 0) return;
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].hash != 0) {
        slots_[i].entry.~Entry();
        slots_[i].hash = 0;
      }
    }
    size_ = 0;
  }
  // Capacity for n entries without growing.
  void reserve(std::size_t n) {
    const std::size_t cap = capacity_for(n);
    if (cap > capacity_) rehash(cap);
  }
  // Down to the smallest capacity that holds the entries (none at all when empty).
  void shrink_to_fit() {
    const std::size_t cap = size_ == 0 ? 0 : capacity_for(size_);
    if (cap < capacity_) rehash(cap);
  }

  // Forward iteration over live entries (Entry& with .key and .value). No insert or erase while
  // iterating.
  template <bool kConst>
  class Iterator {
    using SlotPtr = std::conditional_t<kConst, const void*, void*>;

   public:
    using value_type = Entry;
    using reference = std::conditional_t<kConst, const Entry&, Entry&>;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    reference operator*() const { return table_->slots_[i_].entry; }
    auto* operator->() const { return &table_->slots_[i_].entry; }
    Iterator& operator++() {
      ++i_;
      skip();
      return *this;
    }
    Iterator operator++(int) {
      Iterator t = *this;
      ++*this;
      return t;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.i_ == b.i_; }

   private:
    friend class StateTable;
    using Table = std::conditional_t<kConst, const StateTable, StateTable>;
    Iterator(Table* t, std::size_t i) : table_(t), i_(i) { skip(); }
    void skip() {
      while (i_ < table_->capacity_ && table_->slots_[i_].hash == 0) ++i_;
    }
    Table* table_ = nullptr;
    std::size_t i_ = 0;
  };
  Iterator<false> begin() { return {this, 0}; }
  Iterator<false> end() { return {this, capacity_}; }
  Iterator<true> begin() const { return {this, 0}; }
  Iterator<true> end() const { return {this, capacity_}; }

 private:
  static constexpr std::size_t kMinCapacity = 8;

  struct Slot {
    std::uint64_t hash = 0;  // 0: empty (a real hash of 0 is stored as 1: same key group)
    union {
      Entry entry;
    };
    Slot() noexcept {}
    ~Slot() {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
  };

  static constexpr std::uint64_t stored_hash(std::uint64_t h) {
    return h | static_cast<std::uint64_t>(h == 0);
  }
  static std::size_t capacity_for(std::size_t n) {
    std::size_t cap = kMinCapacity;
    while (n * 2 > cap) cap *= 2;
    return cap;
  }
  static Slot* empty_slots() {
    static Slot empty;  // the one slot of every table without an array: never written
    return &empty;
  }

  void rehash(std::size_t cap) {
    Slot* old = slots_;
    const std::size_t old_cap = capacity_;
    if (cap == 0) {
      slots_ = empty_slots();
      mask_ = 0;
    } else {
      slots_ = new Slot[cap];
      mask_ = cap - 1;
    }
    capacity_ = cap;
    for (std::size_t i = 0; i < old_cap; ++i) {
      Slot& s = old[i];
      if (s.hash == 0) continue;
      std::size_t j = s.hash & mask_;
      while (slots_[j].hash != 0) j = (j + 1) & mask_;
      ::new (static_cast<void*>(&slots_[j].entry)) Entry(std::move(s.entry));
      slots_[j].hash = s.hash;
      s.entry.~Entry();
    }
    if (old_cap != 0) delete[] old;
  }
  void release() {
    clear();
    if (capacity_ != 0) delete[] slots_;
    slots_ = empty_slots();
    capacity_ = 0;
    mask_ = 0;
  }
  void take(StateTable& o) {
    slots_ = o.slots_;
    capacity_ = o.capacity_;
    size_ = o.size_;
    mask_ = o.mask_;
    o.slots_ = empty_slots();
    o.capacity_ = 0;
    o.size_ = 0;
    o.mask_ = 0;
  }

  Slot* slots_ = empty_slots();
  std::size_t capacity_ = 0;  // 0 or a power of two
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
};

}  // namespace gyre::detail
