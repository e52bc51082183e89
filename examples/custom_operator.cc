// A user-written keyed operator with state and a timer: deduplication with expiry.
//
// A click stream carries duplicates (a client retries); within `ttl` of event time a click id
// counts once, after that it counts again. The operator keeps, per click id, the event time until
// which later copies are dropped (keyed value state), and an event-time timer at that time that
// erases the entry, so the state stays as small as the ids seen in the last `ttl`. Whether a copy
// is a duplicate is decided from the record's own time, not from when the timer fired, so the
// output matches the serial reference at any parallelism (the generated clicks depend on it);
// the timer only frees memory.
//
//   custom_operator [--clicks N] [--ttl MS] [--parallelism P]
//
// It checks its output against a serial reference and exits 1 if they differ.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "gyre/core.h"

namespace {

struct Click {
  std::uint64_t id;     // duplicates share it
  gyre::Timestamp time;  // event time (ms)
};

// Partition p of P emits clicks i = p, p + P, ... with time i; ids are drawn per partition, so
// all copies of an id come from one partition, in time order. A watermark every 256 clicks.
class Clicks final : public gyre::Source<Click> {
 public:
  explicit Clicks(std::uint64_t n) : n_(n) {}
  void open(gyre::OperatorContext& ctx) override {
    next_ = static_cast<std::uint64_t>(ctx.partition());
    step_ = static_cast<std::uint64_t>(ctx.parallelism());
  }
  gyre::SourceStatus produce(gyre::SourceOutput<Click>& out) override {
    for (int k = 0; k < 256 && next_ < n_; ++k, next_ += step_) out.emit(click(next_, step_));
    if (next_ >= n_) return gyre::SourceStatus::kDone;
    out.emit_watermark(static_cast<gyre::Timestamp>(next_));  // no older click follows here
    return gyre::SourceStatus::kMore;
  }
  static Click click(std::uint64_t i, std::uint64_t partitions) {
    const std::uint64_t p = i % partitions;
    return Click{p * 1'000'000 + gyre::mix64(i) % 4000, static_cast<gyre::Timestamp>(i)};
  }

 private:
  std::uint64_t n_;
  std::uint64_t next_ = 0;
  std::uint64_t step_ = 1;
};

class Dedup final : public gyre::KeyedOperator<std::uint64_t, Click, Click> {
 public:
  explicit Dedup(gyre::Timestamp ttl) : ttl_(ttl) {}
  void open(gyre::OperatorContext& ctx) override {
    until_ = &ctx.state().value<std::uint64_t, gyre::Timestamp>("drop copies until");
  }
  void process(std::span<const Click> in, gyre::Output<Click>& out) override {
    for (const Click& c : in) {
      const gyre::Timestamp* until = until_->find(c.id);
      if (until != nullptr && c.time < *until) continue;  // a copy within ttl
      until_->set(c.id, c.time + ttl_);
      register_event_time_timer(c.id, c.time + ttl_);
      out.emit(c);
    }
  }
  // The watermark passed an entry's time: no copy can still be dropped by it (a newer click of
  // the id moved it later and registered its own timer).
  void on_timer(const std::uint64_t& id, gyre::Timestamp time, gyre::TimeDomain, gyre::Output<Click>&) override {
    const gyre::Timestamp* until = until_->find(id);
    if (until != nullptr && *until <= time) until_->erase(id);
  }
  void on_end(gyre::Output<Click>&) override { left_ += until_->size(); }

  static inline std::atomic<std::uint64_t> left_{0};  // entries left at the end, all partitions (0 expected)

 private:
  gyre::Timestamp ttl_;
  gyre::ValueState<std::uint64_t, gyre::Timestamp>* until_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 200'000;
  gyre::Timestamp ttl = 5'000;
  gyre::JobConfig config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--clicks") n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--ttl") ttl = std::strtoll(argv[i + 1], nullptr, 10);
    else if (a == "--parallelism") config.parallelism = std::atoi(argv[i + 1]);
    else {
      std::cerr << "usage: custom_operator [--clicks N] [--ttl MS] [--parallelism P]\n";
      return 2;
    }
  }
  try {
    gyre::Environment env(config);
    const auto partitions = static_cast<std::uint64_t>(env.default_parallelism());
    auto unique = env.source("clicks", Clicks(n), /*bounded=*/true)
                      .key_by([](const Click& c) { return c.id; })
                      .process("dedup", Dedup(ttl))
                      .collect();
    env.run();

    // Serial reference: the same rule over each id's clicks in time order.
    std::map<std::uint64_t, gyre::Timestamp> until;
    std::uint64_t want = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const Click c = Clicks::click(i, partitions);
      auto it = until.find(c.id);
      if (it != until.end() && c.time < it->second) continue;
      until[c.id] = c.time + ttl;
      ++want;
    }
    const std::size_t got = unique.values().size();
    std::cout << n << " clicks, " << got << " after deduplication (reference " << want << "), "
              << Dedup::left_.load() << " state entries left after the end\n";
    if (got != want || Dedup::left_ != 0) {
      std::cerr << "custom_operator: result differs from the serial reference\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "custom_operator: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
