// The windowed Nexmark queries on gyre's window API (gyre/core/window.h): q5, q7, q8, q11.
// Windows are [start, end) in ms of event time, aligned to 0; the default trigger (the watermark
// passing the end), no allowed lateness: with a watermark delay at least the input's disorder
// no record is late and every window fires once, on time.
#include <cstring>
#include <string>
#include <vector>

#include "gyre/core/window.h"
#include "nexmark_internal.h"

namespace gyre::nexmark::detail {
namespace {

constexpr Timestamp kSize = 10'000;

Timestamp bid_time(const Bid& b) { return b.ts; }

struct CountAgg {
  std::int64_t create() const { return 0; }
  void add(std::int64_t& acc, const Bid& /*b*/) const { ++acc; }
  void merge(std::int64_t& acc, const std::int64_t& other) const { acc += other; }
  std::int64_t result(const std::int64_t& acc) const { return acc; }
};

// Per window (keyed by its start): the items with the highest score, all ties, emitted when the
// watermark passes the window's end (the partial results of the window before it all came:
// the window operator emits them before it passes that watermark on).
template <class Item, class Score>
class WindowTop final : public KeyedOperator<Timestamp, Item, Item> {
 public:
  explicit WindowTop(Score score) : score_(score) {}
  void open(OperatorContext& ctx) override {
    best_ = &ctx.state().template value<Timestamp, std::int64_t>("best score");
    items_ = &ctx.state().template list<Timestamp, Item>("best items");
  }
  void process(std::span<const Item> in, Output<Item>& /*out*/) override {
    for (const Item& x : in) {
      const std::int64_t s = score_(x);
      std::int64_t* b = best_->find(x.start);
      if (b == nullptr || s > *b) {
        best_->set(x.start, s);
        items_->erase(x.start);
        items_->add(x.start, x);
        this->register_event_time_timer(x.start, x.end - 1);
      } else if (s == *b) {
        items_->add(x.start, x);
      }
    }
  }
  void on_timer(const Timestamp& start, Timestamp /*t*/, TimeDomain /*d*/, Output<Item>& out) override {
    for (const Item& x : items_->get(start)) out.emit(x);
    items_->erase(start);
    best_->erase(start);
  }

 private:
  Score score_;
  ValueState<Timestamp, std::int64_t>* best_ = nullptr;
  ListState<Timestamp, Item>* items_ = nullptr;
};

template <class Item, class Score>
Stream<Item> top_per_window(const Stream<Item>& s, const std::string& name, Score score) {
  return s.key_by([](const Item& x) { return x.start; }).process(name, WindowTop<Item, Score>(score));
}

}  // namespace

// q5: sliding windows of 10 s every 2 s; per window the auction(s) with the most bids. A bid is
// counted once, not in each of its five windows: bids per auction in tumbling 2 s panes (the
// window API), then each pane's count goes to the five windows that contain the pane, keyed by
// window start, where the counts are summed per auction and the top one(s) emitted when the
// watermark passes the window's end. The window operator emits a pane's count before it passes
// on the watermark that closed the pane, so every count of a window is in before its end fires.
namespace {
struct Q5Item {
  Timestamp start = 0;
  Timestamp end = 0;
  std::int64_t auction = 0;
  std::int64_t count = 0;
};
class Q5Hottest final : public KeyedOperator<Timestamp, Q5Item, Q5Item> {
 public:
  void open(OperatorContext& ctx) override {
    counts_ = &ctx.state().map<Timestamp, std::int64_t, std::int64_t>("bids per window and auction");
  }
  void process(std::span<const Q5Item> in, Output<Q5Item>& /*out*/) override {
    for (const Q5Item& x : in) {
      if (std::int64_t* n = counts_->get(x.start, x.auction)) {
        *n += x.count;
      } else {
        counts_->put(x.start, x.auction, x.count);
        register_event_time_timer(x.start, x.end - 1);
      }
    }
  }
  void on_timer(const Timestamp& start, Timestamp /*t*/, TimeDomain /*d*/, Output<Q5Item>& out) override {
    std::int64_t top = 0;
    counts_->for_each(start, [&](const std::int64_t& /*a*/, std::int64_t& n) { top = std::max(top, n); });
    counts_->for_each(start, [&](const std::int64_t& a, std::int64_t& n) {
      if (n == top) out.emit(Q5Item{start, start + kSize, a, n});
    });
    counts_->erase(start);
  }

 private:
  MapState<Timestamp, std::int64_t, std::int64_t>* counts_ = nullptr;
};
}  // namespace
void add_q5(const Inputs& in, const QueryOptions& /*q*/, const ResultSink& sink) {
  constexpr Timestamp kSlide = 2'000;
  auto panes = window(in.bids.key_by([](const Bid& b) { return b.auction; }), bid_time, TumblingWindows{kSlide})
                   .aggregate("q5 bids per auction and 2 s pane", CountAgg{});
  auto per_window = panes.flat_map<Q5Item>([](const WindowResult<std::int64_t, std::int64_t>& p, auto& emit) {
    for (Timestamp s = p.start; s > p.start - kSize; s -= kSlide) emit(Q5Item{s, s + kSize, p.key, p.value});
  });
  auto hot = per_window.key_by([](const Q5Item& x) { return x.start; }).process("q5 hottest auctions", Q5Hottest{});
  deliver(
      hot, sink,
      [](const Q5Item& r, std::string& l) {
        add_fields(l, r.start, r.end, r.auction, r.count);
      },
      [](const Q5Item& r) { return r.end; });
}

// q7: tumbling windows of 10 s; the highest bid(s) of each: per bucket of auctions and window
// first (a window aggregate keeping the tied best bids; auction % 128: a few keys per partition,
// so the watermark closing a window fires 128 windows, not one per auction that had bids, some
// thousands, which delayed the result by several ms), then per window.
namespace {
constexpr std::int64_t kQ7Buckets = 128;
struct Q7Item {
  Timestamp start = 0;
  Timestamp end = 0;
  std::int64_t auction = 0;
  std::int64_t bidder = 0;
  std::int64_t price = 0;
};
struct MaxBids {
  std::vector<Bid> create() const { return {}; }
  void add(std::vector<Bid>& acc, const Bid& b) const {
    if (acc.empty() || b.price > acc.front().price) {
      acc.clear();
      acc.push_back(b);
    } else if (b.price == acc.front().price) {
      acc.push_back(b);
    }
  }
  void merge(std::vector<Bid>& acc, const std::vector<Bid>& other) const {
    for (const Bid& b : other) add(acc, b);
  }
  std::vector<Bid> result(const std::vector<Bid>& acc) const { return acc; }
};
}  // namespace
void add_q7(const Inputs& in, const QueryOptions& /*q*/, const ResultSink& sink) {
  auto best = window(in.bids.key_by([](const Bid& b) { return b.auction % kQ7Buckets; }), bid_time,
                     TumblingWindows{kSize})
                  .aggregate("q7 highest bids per auction bucket and window", MaxBids{});
  auto items = best.flat_map<Q7Item>([](const WindowResult<std::int64_t, std::vector<Bid>>& r, auto& emit) {
    for (const Bid& b : r.value) emit(Q7Item{r.start, r.end, b.auction, b.bidder, b.price});
  });
  auto top = top_per_window(items, "q7 highest bids", [](const Q7Item& x) { return x.price; });
  deliver(
      top, sink,
      [](const Q7Item& r, std::string& l) {
        add_fields(l, r.start, r.end, r.auction, r.bidder, r.price);
      },
      [](const Q7Item& r) { return r.end; });
}

// q8: tumbling windows of 10 s; people who joined and opened an auction in the same window
// (people by id and auctions by seller in one keyed stream).
namespace {
struct PersonOrAuction {
  std::int64_t person = 0;
  Timestamp ts = 0;
  bool is_person = false;
  char name[16] = {};
};
struct NewUser {
  bool joined = false;
  bool sold = false;
  char name[16] = {};
};
struct NewUserAgg {
  NewUser create() const { return {}; }
  void add(NewUser& acc, const PersonOrAuction& r) const {
    if (r.is_person) {
      acc.joined = true;
      std::memcpy(acc.name, r.name, sizeof acc.name);
    } else {
      acc.sold = true;
    }
  }
  void merge(NewUser& acc, const NewUser& o) const {
    if (o.joined) {
      acc.joined = true;
      std::memcpy(acc.name, o.name, sizeof acc.name);
    }
    acc.sold = acc.sold || o.sold;
  }
  NewUser result(const NewUser& acc) const { return acc; }
};
struct Q8Row {
  std::int64_t person = 0;
  char name[16] = {};
  Timestamp start = 0;
  Timestamp end = 0;
};
}  // namespace
void add_q8(const Inputs& in, const QueryOptions& /*q*/, const ResultSink& sink) {
  auto people = in.persons.map([](const Person& p) {
    PersonOrAuction r;
    r.person = p.id;
    r.ts = p.ts;
    r.is_person = true;
    std::memcpy(r.name, p.name, sizeof r.name);
    return r;
  });
  auto sellers = in.auctions.map([](const Auction& a) {
    PersonOrAuction r;
    r.person = a.seller;
    r.ts = a.ts;
    return r;
  });
  auto both = Stream<PersonOrAuction>(people).union_with(sellers);
  auto users = window(both.key_by([](const PersonOrAuction& r) { return r.person; }),
                      [](const PersonOrAuction& r) { return r.ts; }, TumblingWindows{kSize})
                   .aggregate("q8 new users per window", NewUserAgg{});
  auto rows = users.flat_map<Q8Row>([](const WindowResult<std::int64_t, NewUser>& r, auto& emit) {
    if (!r.value.joined || !r.value.sold) return;
    Q8Row row;
    row.person = r.key;
    std::memcpy(row.name, r.value.name, sizeof row.name);
    row.start = r.start;
    row.end = r.end;
    emit(row);
  });
  deliver(
      rows, sink,
      [](const Q8Row& r, std::string& l) {
        add_fields(l, r.person, r.name, r.start);
      },
      [](const Q8Row& r) { return r.end; });
}

// q11: session windows of each bidder with a 10 s gap; bids per session.
namespace {
struct Q11Row {
  std::int64_t bidder = 0;
  std::int64_t count = 0;
  Timestamp start = 0;
  Timestamp end = 0;
};
}  // namespace
void add_q11(const Inputs& in, const QueryOptions& /*q*/, const ResultSink& sink) {
  auto sessions = window(in.bids.key_by([](const Bid& b) { return b.bidder; }), bid_time, SessionWindows{kSize})
                      .aggregate("q11 bids per session", CountAgg{});
  auto rows = sessions.map([](const WindowResult<std::int64_t, std::int64_t>& r) {
    return Q11Row{r.key, r.value, r.start, r.end};
  });
  deliver(
      Stream<Q11Row>(rows), sink,
      [](const Q11Row& r, std::string& l) {
        add_fields(l, r.bidder, r.count, r.start, r.end);
      },
      [](const Q11Row& r) { return r.end; });
}

}  // namespace gyre::nexmark::detail
