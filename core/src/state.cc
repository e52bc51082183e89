// KeyedStateBackend: the named states of one operator instance, snapshot and restore by key group.
#include "gyre/core/state.h"

#include "gyre/core/config.h"

namespace gyre {

static_assert(kKeyGroups == JobConfig::kMaxParallelism,
              "every partition must own at least one key group: kKeyGroups is the parallelism cap");

const char* to_string(StateKind kind) {
  switch (kind) {
    case StateKind::kValue:
      return "value";
    case StateKind::kList:
      return "list";
    case StateKind::kMap:
      return "map";
    case StateKind::kTimers:
      return "timer";
  }
  return "unknown";
}

namespace detail {

std::uint64_t type_tag_of(std::initializer_list<const std::type_info*> types) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the type names
  for (const std::type_info* t : types) {
    for (const char* c = t->name(); *c != '\0'; ++c) h = (h ^ static_cast<unsigned char>(*c)) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
  }
  return h;
}

std::string type_names_of(std::initializer_list<const std::type_info*> types) {
  std::string s;
  for (const std::type_info* t : types) {
    if (!s.empty()) s += ", ";
    s += t->name();
  }
  return s;
}

void no_codec(const std::string& state, StateKind kind, const std::string& types) {
  throw Error("state '" + state + "' (" + to_string(kind) + " state of " + types +
              ") cannot be snapshotted: a key or value type has no gyre::Codec (or no default "
              "constructor); specialise gyre::Codec for it");
}

}  // namespace detail

KeyedStateBackend::KeyedStateBackend(int partition, int parallelism) {
  if (parallelism < 1 || parallelism > kKeyGroups || partition < 0 || partition >= parallelism)
    throw Error("keyed state: partition " + std::to_string(partition) + " of parallelism " +
                std::to_string(parallelism) + " is out of range (parallelism 1.." +
                std::to_string(kKeyGroups) + ")");
  range_ = key_group_range(partition, parallelism);
}

KeyedStateBackend::KeyedStateBackend(KeyGroupRange range) : range_(range) {
  if (range.begin < 0 || range.end > kKeyGroups || range.begin > range.end)
    throw Error("keyed state: key-group range [" + std::to_string(range.begin) + ", " +
                std::to_string(range.end) + ") is not inside [0, " + std::to_string(kKeyGroups) + ")");
}

KeyedStateBackend::KeyedStateBackend(KeyedStateBackend&&) noexcept = default;
KeyedStateBackend& KeyedStateBackend::operator=(KeyedStateBackend&&) noexcept = default;
KeyedStateBackend::~KeyedStateBackend() = default;

detail::StateBase* KeyedStateBackend::find(std::string_view name) const {
  auto it = states_.find(name);
  return it == states_.end() ? nullptr : it->second.get();
}

namespace {
void check_same(const detail::StateBase& s, const StateSnapshot& r) {
  if (r.kind != s.kind() || r.type_tag != s.type_tag())
    throw Error("state '" + s.name() + "': the snapshot holds a " + to_string(r.kind) +
                " state of other types than the " + to_string(s.kind()) + " state of " + s.type_names() +
                " this operator declares; a restored state must keep its kind and types");
}
}  // namespace

detail::StateBase& KeyedStateBackend::add(std::unique_ptr<detail::StateBase> s) {
  detail::StateBase& state = *s;
  auto p = pending_.find(state.name());
  if (p != pending_.end()) {
    for (const StateSnapshot& r : p->second) check_same(state, r);
    for (const StateSnapshot& r : p->second) state.restore_group(r.bytes.data(), r.bytes.data() + r.bytes.size());
    pending_.erase(p);
  }
  std::string name = state.name();
  states_.emplace(std::move(name), std::move(s));
  return state;
}

void KeyedStateBackend::mismatch(const detail::StateBase& s, StateKind kind, const std::string& types) {
  throw Error("state '" + s.name() + "' is declared twice with different types: first as a " +
              to_string(s.kind()) + " state of " + s.type_names() + ", now as a " + to_string(kind) +
              " state of " + types + "; give each state its own name");
}

std::vector<StateSnapshot> KeyedStateBackend::snapshot() const {
  std::vector<StateSnapshot> out;
  std::vector<std::string> groups(static_cast<std::size_t>(kKeyGroups));
  for (const auto& [name, s] : states_) {
    for (std::string& g : groups) g.clear();
    s->snapshot_into(groups);
    for (int kg = 0; kg < kKeyGroups; ++kg) {
      std::string& g = groups[static_cast<std::size_t>(kg)];
      if (g.empty()) continue;
      out.push_back(StateSnapshot{name, kg, s->kind(), s->type_tag(), std::move(g)});
      g = std::string();
    }
  }
  for (const auto& [name, records] : pending_) out.insert(out.end(), records.begin(), records.end());
  return out;
}

void KeyedStateBackend::restore(std::span<const StateSnapshot> snapshots) {
  for (const StateSnapshot& r : snapshots) {
    if (r.key_group < 0 || r.key_group >= kKeyGroups)
      throw Error("state '" + r.state + "': snapshot record of key group " + std::to_string(r.key_group) +
                  " (valid: 0.." + std::to_string(kKeyGroups - 1) + ")");
    if (!range_.contains(r.key_group)) continue;
    if (detail::StateBase* s = find(r.state)) {
      check_same(*s, r);
      s->restore_group(r.bytes.data(), r.bytes.data() + r.bytes.size());
    } else {
      pending_[r.state].push_back(r);
    }
  }
}

std::size_t KeyedStateBackend::memory_bytes() const {
  std::size_t n = 0;
  for (const auto& [name, s] : states_) n += s->memory_bytes();
  for (const auto& [name, records] : pending_)
    for (const StateSnapshot& r : records) n += r.bytes.capacity();
  return n;
}

void KeyedStateBackend::clear() {
  for (auto& [name, s] : states_) s->clear();
  pending_.clear();
}

}  // namespace gyre
