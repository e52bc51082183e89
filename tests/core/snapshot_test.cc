// Snapshot and restore of the built-in stateful operators (reduce, aggregate, unbounded reduce,
// join, co_group): operator instances built directly, fed the first part of a random input routed
// as the hash exchange routes it (by key group), snapshotted (every partition; the records sent
// through gyre::Codec as if across ranks), restored into instances at another parallelism, fed the
// rest and ended. The union of what both generations emitted must equal a serial reference and
// what uninterrupted instances emit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/operators.h"
#include "gyre/core/snapshot.h"
#include "gyre/core/state.h"
#include "gyre/core/stream.h"
#include "gyre/iterations/detail/solution_set.h"
#include "../support/error_of.h"

namespace {

using gyre::Event;
using gyre::EventKind;
using gyre::StateSnapshot;
using gyre::detail::NodeRuntime;
using gyre::detail::OpContext;

struct Rec {
  std::int64_t key = 0;
  std::int64_t value = 0;
  friend bool operator==(const Rec&, const Rec&) = default;
  friend auto operator<=>(const Rec&, const Rec&) = default;
};

struct Joined {
  std::int64_t key = 0;
  std::int64_t left = 0;
  std::int64_t right = 0;
  friend bool operator==(const Joined&, const Joined&) = default;
  friend auto operator<=>(const Joined&, const Joined&) = default;
};

// Per key: an order-sensitive fold of each side (so the test sees that a group keeps its order).
struct Grouped {
  std::int64_t key = 0;
  std::uint64_t left = 0;
  std::uint64_t right = 0;
  std::uint64_t left_n = 0;
  std::uint64_t right_n = 0;
  friend bool operator==(const Grouped&, const Grouped&) = default;
  friend auto operator<=>(const Grouped&, const Grouped&) = default;
};

std::uint64_t mix(std::uint64_t acc, std::int64_t v) { return acc * 1000003u + static_cast<std::uint64_t>(v); }

// Collects what an operator emits.
template <class T>
class Collect final : public gyre::detail::Input<T> {
 public:
  void push(std::span<const T> in) override { got.insert(got.end(), in.begin(), in.end()); }
  void on_event(const Event& e) override {
    if (e.kind == EventKind::kEnd) ++ends;
  }
  std::vector<T> got;
  int ends = 0;
};

// The partition of parallelism p that the hash exchange sends a key to (writers.h).
int route(std::int64_t key, int p) {
  return gyre::partition_of_key_group(gyre::key_group_of(gyre::hash_key(key)), p);
}

OpContext context(int partition, int parallelism) {
  OpContext c;
  c.name = "op under test";
  c.partition = partition;
  c.parallelism = parallelism;
  c.batch_bytes = 256;  // small batches: several per call
  return c;
}

// P instances of one operator and what each emitted.
template <class Out>
struct Instances {
  std::vector<std::unique_ptr<NodeRuntime>> ops;
  std::vector<std::unique_ptr<Collect<Out>>> outs;

  template <class Make>
  Instances(int parallelism, Make make) {
    for (int p = 0; p < parallelism; ++p) {
      outs.push_back(std::make_unique<Collect<Out>>());
      ops.push_back(make(context(p, parallelism), outs.back().get()));
    }
  }
  int parallelism() const { return static_cast<int>(ops.size()); }

  // Records routed by key to their partition, pushed in chunks of 7 (several batches).
  template <class T>
  void feed(int port, std::span<const T> records) {
    std::vector<std::vector<T>> parts(ops.size());
    for (const T& r : records) parts[static_cast<std::size_t>(route(r.key, parallelism()))].push_back(r);
    for (std::size_t p = 0; p < ops.size(); ++p) {
      auto* in = static_cast<gyre::detail::Input<T>*>(ops[p]->port(port));
      for (std::size_t i = 0; i < parts[p].size(); i += 7)
        in->push(std::span<const T>(parts[p]).subspan(i, std::min<std::size_t>(7, parts[p].size() - i)));
    }
  }
  void end(int port) {
    for (auto& op : ops) op->port(port)->on_event(Event::end());
  }

  // Every partition's snapshot, sent through Codec<StateSnapshot> as to another rank.
  std::vector<StateSnapshot> snapshot() const {
    std::vector<StateSnapshot> all;
    for (const auto& op : ops) {
      EXPECT_TRUE(op->stateful());
      op->snapshot(all);
    }
    std::string bytes;
    gyre::Codec<std::vector<StateSnapshot>>::encode(all, bytes);
    std::vector<StateSnapshot> back;
    const char* end = gyre::Codec<std::vector<StateSnapshot>>::decode(bytes.data(), bytes.data() + bytes.size(), back);
    EXPECT_EQ(end, bytes.data() + bytes.size());
    EXPECT_EQ(back, all);
    for (const StateSnapshot& s : back) EXPECT_EQ(route_of_group(s.key_group), true);
    return back;
  }
  void restore(const std::vector<StateSnapshot>& from) {
    for (auto& op : ops) op->restore(from);
  }
  std::vector<Out> emitted() const {
    std::vector<Out> all;
    for (const auto& o : outs) all.insert(all.end(), o->got.begin(), o->got.end());
    return all;
  }
  int ends() const {
    int n = 0;
    for (const auto& o : outs) n += o->ends;
    return n;
  }

 private:
  static bool route_of_group(int kg) { return kg >= 0 && kg < gyre::kKeyGroups; }
};

std::vector<Rec> random_records(std::size_t n, std::int64_t keys, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Rec> v(n);
  for (Rec& r : v) r = Rec{static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(keys)),
                           static_cast<std::int64_t>(rng() % 1000)};
  return v;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

template <class T>
std::span<const T> head(const std::vector<T>& v, std::size_t n) {
  return std::span<const T>(v).first(n);
}
template <class T>
std::span<const T> tail(const std::vector<T>& v, std::size_t n) {
  return std::span<const T>(v).subspan(n);
}

const int kOld[] = {1, 2, 4};
const int kNew[] = {1, 2, 3, 5};

// ---- reduce, aggregate, unbounded reduce ----

auto key_of = [](const Rec& r) { return r.key; };
auto first_rec = [](const Rec& x) { return x; };
auto add_rec = [](Rec& acc, const Rec& x) { acc.value += x.value; };
auto rec_result = [](const std::int64_t&, const Rec& acc) { return acc; };
auto first_acc = [](const Rec& x) { return mix(7, x.value); };
auto add_acc = [](std::uint64_t& acc, const Rec& x) { acc = mix(acc, x.value); };
auto acc_result = [](const std::int64_t& k, const std::uint64_t& acc) { return std::pair<std::int64_t, std::uint64_t>(k, acc); };

template <bool kBounded>
using ReduceOp = gyre::detail::KeyedFoldOp<kBounded, Rec, decltype(key_of), Rec, Rec, decltype(first_rec),
                                           decltype(add_rec), decltype(rec_result)>;
using AggOut = std::pair<std::int64_t, std::uint64_t>;
using AggregateOp = gyre::detail::KeyedFoldOp<true, Rec, decltype(key_of), std::uint64_t, AggOut,
                                              decltype(first_acc), decltype(add_acc), decltype(acc_result)>;

template <bool kBounded>
auto make_reduce = [](const OpContext& c, gyre::detail::Input<Rec>* out) -> std::unique_ptr<NodeRuntime> {
  return std::make_unique<ReduceOp<kBounded>>(c, key_of, first_rec, add_rec, rec_result, out);
};
auto make_aggregate = [](const OpContext& c, gyre::detail::Input<AggOut>* out) -> std::unique_ptr<NodeRuntime> {
  return std::make_unique<AggregateOp>(c, key_of, first_acc, add_acc, acc_result, out);
};

// Feeds [0, cut) to `old_p` instances, snapshots, restores into `new_p`, feeds the rest, ends;
// returns what both generations emitted (old first).
template <class Out, class Make>
std::pair<std::vector<Out>, std::vector<Out>> run_one_input(Make make, const std::vector<Rec>& input,
                                                             std::size_t cut, int old_p, int new_p) {
  Instances<Out> before(old_p, make);
  before.feed(0, head(input, cut));
  const std::vector<StateSnapshot> snap = before.snapshot();
  Instances<Out> after(new_p, make);
  after.restore(snap);
  after.feed(0, tail(input, cut));
  after.end(0);
  EXPECT_EQ(before.ends(), 0);
  EXPECT_EQ(after.ends(), new_p);
  return {before.emitted(), after.emitted()};
}

template <class Out, class Make>
std::vector<Out> run_uninterrupted(Make make, const std::vector<Rec>& input, int p) {
  Instances<Out> ops(p, make);
  ops.feed(0, std::span<const Rec>(input));
  ops.end(0);
  return ops.emitted();
}

TEST(Snapshot, ReduceRestoresAtEveryParallelism) {
  const std::vector<Rec> input = random_records(3000, 200, 1);
  std::map<std::int64_t, std::int64_t> sums;
  for (const Rec& r : input) sums[r.key] += r.value;
  std::vector<Rec> reference;
  for (auto [k, v] : sums) reference.push_back(Rec{k, v});
  for (int old_p : kOld) {
    EXPECT_EQ(sorted(run_uninterrupted<Rec>(make_reduce<true>, input, old_p)), reference);
    for (int new_p : kNew) {
      SCOPED_TRACE("reduce " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      auto [before, after] = run_one_input<Rec>(make_reduce<true>, input, 1700, old_p, new_p);
      EXPECT_TRUE(before.empty());  // a bounded fold emits at the end only
      EXPECT_EQ(sorted(after), reference);
    }
  }
}

TEST(Snapshot, AggregateKeepsEachKeysOrderAcrossRestore) {
  const std::vector<Rec> input = random_records(3000, 150, 2);
  std::map<std::int64_t, std::uint64_t> acc;
  for (const Rec& r : input) {
    auto it = acc.find(r.key);
    if (it == acc.end()) acc[r.key] = mix(7, r.value);
    else it->second = mix(it->second, r.value);
  }
  std::vector<AggOut> reference(acc.begin(), acc.end());
  for (int old_p : kOld) {
    EXPECT_EQ(sorted(run_uninterrupted<AggOut>(make_aggregate, input, old_p)), reference);
    for (int new_p : kNew) {
      SCOPED_TRACE("aggregate " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      auto [before, after] = run_one_input<AggOut>(make_aggregate, input, 1234, old_p, new_p);
      EXPECT_TRUE(before.empty());
      EXPECT_EQ(sorted(after), reference);
    }
  }
}

// An unbounded reduce emits the new value of each key a batch touched: replaying both
// generations' changelogs in order gives the serial sums, and the first value a restored instance
// emits for a key continues the sum from before the snapshot.
TEST(Snapshot, UnboundedReduceContinuesItsChangelog) {
  const std::vector<Rec> input = random_records(3000, 120, 3);
  std::map<std::int64_t, std::int64_t> sums;
  for (const Rec& r : input) sums[r.key] += r.value;
  for (int old_p : kOld) {
    for (int new_p : kNew) {
      SCOPED_TRACE("unbounded reduce " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      const std::size_t cut = 1500;
      auto [before, after] = run_one_input<Rec>(make_reduce<false>, input, cut, old_p, new_p);
      EXPECT_FALSE(before.empty());
      std::map<std::int64_t, std::int64_t> last;
      for (const Rec& r : before) last[r.key] = r.value;
      std::map<std::int64_t, std::int64_t> first_sum;  // sums over the whole first part
      for (std::size_t i = 0; i < cut; ++i) first_sum[input[i].key] += input[i].value;
      EXPECT_EQ(last, first_sum);
      for (const Rec& r : after) last[r.key] = r.value;
      EXPECT_EQ(last, sums);
      // Every value after the restore includes the key's sum before it.
      std::map<std::int64_t, std::int64_t> seen;
      for (const Rec& r : after) {
        if (seen.emplace(r.key, r.value).second) {
          EXPECT_GE(r.value, first_sum[r.key]);  // values are >= 0
        }
      }
    }
  }
}

// ---- join ----

auto join_f = [](const Rec& l, const Rec& r) { return Joined{l.key, l.value, r.value}; };
using JoinOp = gyre::detail::HashJoinOp<Rec, Rec, decltype(key_of), decltype(key_of), decltype(join_f)>;
auto make_join = [](const OpContext& c, gyre::detail::Input<Joined>* out) -> std::unique_ptr<NodeRuntime> {
  return std::make_unique<JoinOp>(c, key_of, key_of, join_f, out);
};

std::vector<Joined> serial_join(const std::vector<Rec>& probe, const std::vector<Rec>& build) {
  std::vector<Joined> out;
  for (const Rec& l : probe)
    for (const Rec& r : build)
      if (l.key == r.key) out.push_back(join_f(l, r));
  return sorted(out);
}

// Snapshot while the build side is incomplete: the build rows so far and the probe records held.
TEST(Snapshot, JoinMidBuildKeepsBuildRowsAndHeldProbes) {
  const std::vector<Rec> probe = random_records(1500, 90, 4);
  const std::vector<Rec> build = random_records(400, 70, 5);  // duplicate keys: chains
  const std::vector<Joined> reference = serial_join(probe, build);
  for (int old_p : kOld) {
    for (int new_p : kNew) {
      SCOPED_TRACE("join " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      Instances<Joined> before(old_p, make_join);
      before.feed(1, head(build, 250));
      before.feed(0, head(probe, 800));
      const std::vector<StateSnapshot> snap = before.snapshot();
      EXPECT_TRUE(before.emitted().empty());  // everything held for the build side
      Instances<Joined> after(new_p, make_join);
      after.restore(snap);
      after.feed(0, tail(probe, 800));
      after.feed(1, tail(build, 250));
      after.end(0);
      after.end(1);
      EXPECT_EQ(after.ends(), new_p);
      EXPECT_EQ(sorted(after.emitted()), reference);
    }
  }
}

// Snapshot after the build side ended: the probes so far were answered; the restored instances
// get the build rows back and answer the rest once their (empty) build input ends again.
TEST(Snapshot, JoinAfterBuildAnswersTheRest) {
  const std::vector<Rec> probe = random_records(1500, 90, 6);
  const std::vector<Rec> build = random_records(300, 60, 7);
  const std::vector<Joined> reference = serial_join(probe, build);
  for (int old_p : kOld) {
    {
      Instances<Joined> all(old_p, make_join);
      all.feed(0, std::span<const Rec>(probe));
      all.feed(1, std::span<const Rec>(build));
      all.end(1);
      all.end(0);
      EXPECT_EQ(sorted(all.emitted()), reference);
    }
    for (int new_p : kNew) {
      SCOPED_TRACE("join " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      Instances<Joined> before(old_p, make_join);
      before.feed(1, std::span<const Rec>(build));
      before.end(1);
      before.feed(0, head(probe, 700));
      const std::vector<StateSnapshot> snap = before.snapshot();
      Instances<Joined> after(new_p, make_join);
      after.restore(snap);
      after.feed(0, tail(probe, 700));
      after.end(1);
      after.end(0);
      std::vector<Joined> got = before.emitted();
      EXPECT_EQ(got.size(), serial_join(std::vector<Rec>(probe.begin(), probe.begin() + 700), build).size());
      const std::vector<Joined> rest = after.emitted();
      got.insert(got.end(), rest.begin(), rest.end());
      EXPECT_EQ(sorted(got), reference);
    }
  }
}

// ---- co_group ----

auto group_f = [](const std::int64_t& k, std::span<const Rec> l, std::span<const Rec> r, auto& emit) {
  Grouped g{k, 7, 7, l.size(), r.size()};
  for (const Rec& x : l) g.left = mix(g.left, x.value);
  for (const Rec& x : r) g.right = mix(g.right, x.value);
  emit(g);
};
using GroupOp = gyre::detail::CoGroupOp<Rec, Rec, decltype(key_of), decltype(key_of), Grouped, decltype(group_f)>;
auto make_group = [](const OpContext& c, gyre::detail::Input<Grouped>* out) -> std::unique_ptr<NodeRuntime> {
  return std::make_unique<GroupOp>(c, key_of, key_of, group_f, out);
};

TEST(Snapshot, CoGroupKeepsBothGroupsInOrder) {
  const std::vector<Rec> left = random_records(1200, 80, 8);
  const std::vector<Rec> right = random_records(900, 100, 9);
  std::map<std::int64_t, Grouped> ref;
  auto slot = [&](std::int64_t k) -> Grouped& { return ref.try_emplace(k, Grouped{k, 7, 7, 0, 0}).first->second; };
  for (const Rec& x : left) {
    Grouped& g = slot(x.key);
    g.left = mix(g.left, x.value);
    ++g.left_n;
  }
  for (const Rec& x : right) {
    Grouped& g = slot(x.key);
    g.right = mix(g.right, x.value);
    ++g.right_n;
  }
  std::vector<Grouped> reference;
  for (auto& [k, g] : ref) reference.push_back(g);
  for (int old_p : kOld) {
    {
      Instances<Grouped> all(old_p, make_group);
      all.feed(0, std::span<const Rec>(left));
      all.feed(1, std::span<const Rec>(right));
      all.end(0);
      all.end(1);
      EXPECT_EQ(sorted(all.emitted()), reference);
    }
    for (int new_p : kNew) {
      SCOPED_TRACE("co_group " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      Instances<Grouped> before(old_p, make_group);
      before.feed(0, head(left, 500));
      before.feed(1, head(right, 600));
      const std::vector<StateSnapshot> snap = before.snapshot();
      Instances<Grouped> after(new_p, make_group);
      after.restore(snap);
      after.feed(1, tail(right, 600));
      after.feed(0, tail(left, 500));
      after.end(0);
      after.end(1);
      EXPECT_TRUE(before.emitted().empty());
      EXPECT_EQ(after.ends(), new_p);
      EXPECT_EQ(sorted(after.emitted()), reference);
    }
  }
}

// ---- the delta iteration's solution set (both indexes) ----

using HashIndex = gyre::detail::HashSolutionIndex<Rec, decltype(key_of)>;
using DenseIndex = gyre::detail::DenseSolutionIndex<Rec, decltype(key_of)>;

template <class Index>
std::vector<std::unique_ptr<Index>> indexes(int parallelism) {
  std::vector<std::unique_ptr<Index>> v;
  for (int p = 0; p < parallelism; ++p) v.push_back(std::make_unique<Index>(key_of, p, parallelism));
  return v;
}
// Upserts records into the partition the index's partitioner (the loop's exchange) picks.
template <class Index>
void upsert(std::vector<std::unique_ptr<Index>>& parts, std::span<const Rec> records) {
  for (const Rec& r : records) parts[Index::Partitioner::of(r.key, parts.size())]->upsert(r);
}
template <class Index>
std::vector<Rec> contents(std::vector<std::unique_ptr<Index>>& parts) {
  std::vector<Rec> all;
  for (auto& p : parts) p->for_each([&](const Rec& r) { all.push_back(r); });
  return sorted(all);
}

template <class From, class To>
void solution_set_round_trip(std::uint32_t seed) {
  const std::vector<Rec> input = random_records(2000, 300, seed);
  std::map<std::int64_t, std::int64_t> last;
  for (const Rec& r : input) last[r.key] = r.value;
  std::vector<Rec> reference;
  for (auto [k, v] : last) reference.push_back(Rec{k, v});
  for (int old_p : kOld) {
    for (int new_p : kNew) {
      SCOPED_TRACE("solution set " + std::to_string(old_p) + " -> " + std::to_string(new_p));
      auto before = indexes<From>(old_p);
      upsert(before, head(input, 1100));
      std::vector<StateSnapshot> snap;
      for (auto& p : before) p->snapshot(snap);
      std::string bytes;
      gyre::Codec<std::vector<StateSnapshot>>::encode(snap, bytes);
      std::vector<StateSnapshot> back;
      gyre::Codec<std::vector<StateSnapshot>>::decode(bytes.data(), bytes.data() + bytes.size(), back);
      auto after = indexes<To>(new_p);
      for (auto& p : after) p->restore(back);
      std::size_t restored = 0;
      for (auto& p : after) restored += p->size();
      std::size_t held = 0;
      for (auto& p : before) held += p->size();
      EXPECT_EQ(restored, held);
      upsert(after, tail(input, 1100));
      EXPECT_EQ(contents(after), reference);
      for (std::size_t p = 0; p < after.size(); ++p)  // each record where the exchange sends its key
        after[p]->for_each([&](const Rec& r) { EXPECT_EQ(To::Partitioner::of(r.key, after.size()), p); });
    }
  }
}

TEST(Snapshot, HashSolutionSetRestoresAtEveryParallelism) { solution_set_round_trip<HashIndex, HashIndex>(13); }
TEST(Snapshot, DenseSolutionSetRestoresAtEveryParallelism) { solution_set_round_trip<DenseIndex, DenseIndex>(14); }
TEST(Snapshot, SolutionSetSnapshotsMoveBetweenIndexKinds) {
  solution_set_round_trip<DenseIndex, HashIndex>(15);
  solution_set_round_trip<HashIndex, DenseIndex>(16);
}

// ---- a job snapshotted at a barrier, and another job restored from it ----

// Emits its partition's share of `data`; with `barrier`, Event::barrier(1) halfway through it.
class HalfwaySource final : public NodeRuntime, public gyre::detail::SourceBase {
 public:
  HalfwaySource(const OpContext& ctx, std::shared_ptr<const std::vector<Rec>> data, bool barrier,
                gyre::detail::Input<Rec>* out)
      : data_(std::move(data)), barrier_(barrier), out_(out) {
    std::tie(pos_, end_) = gyre::detail::split_range(data_->size(), ctx.partition, ctx.parallelism);
    mid_ = barrier ? pos_ + (end_ - pos_) / 2 : end_;
  }
  gyre::detail::PortBase* port(int) override { return nullptr; }
  gyre::detail::SourceBase* source() override { return this; }
  gyre::detail::SourceStatus produce(std::size_t) override {
    const std::size_t stop = pos_ < mid_ ? mid_ : end_;
    const std::size_t n = std::min<std::size_t>(16, stop - pos_);
    if (n > 0) out_->push(std::span<const Rec>(data_->data() + pos_, n));
    pos_ += n;
    if (pos_ == mid_ && barrier_ && !sent_) {
      out_->on_event(Event::barrier(1));
      sent_ = true;
    }
    if (pos_ < end_) return gyre::detail::SourceStatus::kMore;
    out_->on_event(Event::end());
    return gyre::detail::SourceStatus::kDone;
  }
  // What the sources of parallelism p emit after the barrier.
  static std::vector<Rec> after_barrier(const std::vector<Rec>& data, int p) {
    std::vector<Rec> rest;
    for (int i = 0; i < p; ++i) {
      auto [lo, hi] = gyre::detail::split_range(data.size(), i, p);
      rest.insert(rest.end(), data.begin() + static_cast<std::ptrdiff_t>(lo + (hi - lo) / 2),
                  data.begin() + static_cast<std::ptrdiff_t>(hi));
    }
    return rest;
  }

 private:
  std::shared_ptr<const std::vector<Rec>> data_;
  bool barrier_;
  gyre::detail::Input<Rec>* out_;
  std::size_t pos_ = 0, mid_ = 0, end_ = 0;
  bool sent_ = false;
};

constexpr int kSourceParallelism = 2;

gyre::Stream<Rec> halfway_source(gyre::Environment& env, const std::string& name, std::vector<Rec> data, bool barrier) {
  gyre::OperatorBuilder b(env, "source: halfway");
  b.name(name).parallelism(kSourceParallelism).bounded(true);
  b.output<Rec>();
  auto shared = std::make_shared<const std::vector<Rec>>(std::move(data));
  b.factory([shared, barrier](const OpContext& c, const std::vector<gyre::detail::PortBase*>& outs)
                -> std::unique_ptr<NodeRuntime> {
    return std::make_unique<HalfwaySource>(c, shared, barrier, static_cast<gyre::detail::Input<Rec>*>(outs[0]));
  });
  return b.stream<Rec>();
}

struct JobOut {
  std::vector<Rec> sums;
  std::vector<Joined> joined;
  std::vector<Grouped> groups;
};

// probe -> reduce; probe join build; probe co_group build: every stateful operator in one job.
JobOut run_job(gyre::JobConfig cfg, const std::vector<Rec>& probe, const std::vector<Rec>& build, bool barrier) {
  gyre::Environment env(std::move(cfg));
  auto a = halfway_source(env, "probe", probe, barrier);
  auto b = halfway_source(env, "build", build, barrier);
  auto sums = a.key_by(key_of).reduce([](const Rec& x, const Rec& y) { return Rec{x.key, x.value + y.value}; }).collect();
  auto joined = a.join(b, key_of, key_of, join_f).collect();
  // Records of a key come from two source partitions in no fixed order: sums, not an ordered fold.
  auto group_sums = [](const std::int64_t& k, std::span<const Rec> l, std::span<const Rec> r, auto& emit) {
    Grouped g{k, 0, 0, l.size(), r.size()};
    for (const Rec& x : l) g.left += static_cast<std::uint64_t>(x.value);
    for (const Rec& x : r) g.right += static_cast<std::uint64_t>(x.value);
    emit(g);
  };
  auto groups = a.co_group<Grouped>(b, key_of, key_of, group_sums).collect();
  env.run();
  return {sorted(sums.values()), sorted(joined.values()), sorted(groups.values())};
}

TEST(Snapshot, JobRestoredFromABarrierAtAnotherParallelism) {
  const std::vector<Rec> probe = random_records(4000, 300, 17);
  const std::vector<Rec> build = random_records(900, 250, 18);
  const std::vector<Rec> probe_rest = HalfwaySource::after_barrier(probe, kSourceParallelism);
  const std::vector<Rec> build_rest = HalfwaySource::after_barrier(build, kSourceParallelism);
  for (int p1 : {1, 2, 4}) {
    gyre::JobConfig cfg;
    cfg.parallelism = p1;
    cfg.snapshots = std::make_shared<gyre::SnapshotStore>();
    const JobOut full = run_job(cfg, probe, build, true);
    EXPECT_EQ(full.joined, serial_join(probe, build));
    ASSERT_EQ(cfg.snapshots->barriers(), std::vector<std::int64_t>{1});
    ASSERT_TRUE(cfg.snapshots->complete(1));
    auto snap = std::make_shared<const gyre::JobSnapshot>(cfg.snapshots->snapshot(1));
    EXPECT_EQ(snap->nodes.size(), 3u);  // reduce, join, co_group
    for (int p2 : {1, 3}) {
      SCOPED_TRACE("job " + std::to_string(p1) + " -> " + std::to_string(p2));
      gyre::JobConfig again;
      again.parallelism = p2;
      again.restore_from = snap;
      const JobOut restored = run_job(again, probe_rest, build_rest, false);
      EXPECT_EQ(restored.sums, full.sums);
      EXPECT_EQ(restored.joined, full.joined);
      EXPECT_EQ(restored.groups, full.groups);
    }
  }
  // Without the snapshot the second half alone gives less.
  gyre::JobConfig plain;
  plain.parallelism = 2;
  EXPECT_NE(run_job(plain, probe_rest, build_rest, false).sums, run_job(plain, probe, build, false).sums);
}

// A snapshot restores into the plan that took it only: a node of another name is refused.
TEST(Snapshot, RestoreIntoAnotherPlanFails) {
  gyre::JobSnapshot snap;
  snap.barrier = 1;
  snap.nodes[2] = gyre::JobSnapshot::Node{"something else", 1, 1, {}};
  gyre::JobConfig cfg;
  cfg.parallelism = 1;
  cfg.restore_from = std::make_shared<const gyre::JobSnapshot>(snap);
  const std::vector<Rec> in = random_records(10, 5, 19);
  const std::string msg = testenv::error_of([&] { run_job(cfg, in, in, false); });
  EXPECT_NE(msg.find("something else"), std::string::npos) << msg;
  EXPECT_NE(msg.find("restore a snapshot into the plan that took it"), std::string::npos) << msg;
}

// ---- what a snapshot holds, and errors ----

TEST(Snapshot, RecordsAreByKeyGroupAndNamedByState) {
  const std::vector<Rec> probe = random_records(200, 40, 10);
  const std::vector<Rec> build = random_records(100, 30, 11);
  Instances<Joined> join(2, make_join);
  join.feed(1, std::span<const Rec>(build));
  join.feed(0, std::span<const Rec>(probe));
  std::map<std::string, int> records;
  for (const auto& op : join.ops) {
    std::vector<StateSnapshot> s;
    op->snapshot(s);
    for (const StateSnapshot& r : s) {
      ++records[r.state];
      EXPECT_EQ(r.kind, gyre::StateKind::kList);
    }
  }
  EXPECT_GT(records["build"], 0);
  EXPECT_GT(records["probe.held"], 0);
  EXPECT_EQ(records.count("probe.invariant"), 0u);  // empty states write no records

  // Every record of partition p is of a key group p owns.
  Instances<Rec> reduce(3, make_reduce<true>);
  reduce.feed(0, std::span<const Rec>(probe));
  for (int p = 0; p < 3; ++p) {
    std::vector<StateSnapshot> s;
    reduce.ops[static_cast<std::size_t>(p)]->snapshot(s);
    EXPECT_FALSE(s.empty());
    for (const StateSnapshot& r : s) {
      EXPECT_EQ(r.state, "fold");
      EXPECT_EQ(gyre::partition_of_key_group(r.key_group, 3), p);
    }
  }
}

// A stateless operator has nothing to snapshot.
TEST(Snapshot, StatelessOperatorsSnapshotNothing) {
  Collect<Rec> out;
  auto f = [](const Rec& r) { return r; };
  gyre::detail::MapOp<Rec, Rec, decltype(f)> map(context(0, 1), f, &out);
  EXPECT_FALSE(map.stateful());
  std::vector<StateSnapshot> s;
  map.snapshot(s);
  EXPECT_TRUE(s.empty());
  map.restore(s);
}

struct NoCodec {
  std::int64_t key = 0;
  std::string text;  // not trivially copyable, and no gyre::Codec
};

TEST(Snapshot, StateWithoutCodecNamesTheState) {
  auto key = [](const NoCodec& r) { return r.key; };
  auto first = [](const NoCodec& x) { return x; };
  auto update = [](NoCodec& acc, const NoCodec& x) { acc.text += x.text; };
  auto result = [](const std::int64_t&, const NoCodec& acc) { return acc; };
  Collect<NoCodec> out;
  gyre::detail::KeyedFoldOp<true, NoCodec, decltype(key), NoCodec, NoCodec, decltype(first), decltype(update),
                            decltype(result)>
      op(context(0, 1), key, first, update, result, &out);
  const std::vector<NoCodec> in = {{1, "a"}, {2, "b"}};
  op.push(std::span<const NoCodec>(in));
  std::vector<StateSnapshot> s;
  const std::string msg = testenv::error_of([&] { op.snapshot(s); });
  EXPECT_NE(msg.find("state 'fold'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gyre::Codec"), std::string::npos) << msg;
}

// Restoring a snapshot of one operator into an operator of other types fails naming the state.
TEST(Snapshot, RestoreIntoOtherTypesFails) {
  Instances<Rec> reduce(1, make_reduce<true>);
  const std::vector<Rec> in = random_records(50, 10, 12);
  reduce.feed(0, std::span<const Rec>(in));
  const std::vector<StateSnapshot> snap = reduce.snapshot();
  Instances<AggOut> agg(1, make_aggregate);
  const std::string msg = testenv::error_of([&] { agg.restore(snap); });
  EXPECT_NE(msg.find("state 'fold'"), std::string::npos) << msg;
}

}  // namespace
