// The Nexmark sources (generator in the job, or a generated file read by line ranges) and the
// queries without windows: q0, q1, q2, q3 (incremental join), q4 (keyed state + event-time
// timers), q12 (processing-time timers). The windowed ones are in nexmark_windows.cc.
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gyre/algorithms/nexmark.h"
#include "nexmark_internal.h"

namespace gyre::nexmark {
namespace detail {

void copy_str(char* dst, std::size_t cap, const char* src) {
  const std::size_t n = ::strnlen(src, cap - 1);
  std::memcpy(dst, src, n);
  std::memset(dst + n, 0, cap - n);
}

namespace {

__extension__ typedef unsigned __int128 u128;

const OutputTag<Person>& persons_tag() {
  static const OutputTag<Person> t("persons");
  return t;
}
const OutputTag<Auction>& auctions_tag() {
  static const OutputTag<Auction> t("auctions");
  return t;
}

constexpr int kEventsPerProduce = 1024;

// Bounded out-of-orderness watermarks of one source partition: the largest timestamp seen
// minus the delay minus 1, sent when it advanced (after every produce call).
class Watermarks {
 public:
  explicit Watermarks(Timestamp delay) : delay_(delay) {}
  void see(Timestamp ts) { max_ = std::max(max_, ts); }
  void emit(SourceOutput<Bid>& out, int partition, const std::function<void(int, Timestamp)>& hook) {
    if (max_ == kMinTimestamp) return;
    const Timestamp wm = max_ - delay_ - 1;
    if (wm <= last_) return;
    last_ = wm;
    out.emit_watermark(wm);
    if (hook) hook(partition, wm);
  }
  void finish(SourceOutput<Bid>& out, int partition, const std::function<void(int, Timestamp)>& hook) {
    last_ = kMaxTimestamp;
    out.emit_watermark(kMaxTimestamp);
    if (hook) hook(partition, kMaxTimestamp);
  }

 private:
  Timestamp delay_;
  Timestamp max_ = kMinTimestamp;
  Timestamp last_ = kMinTimestamp;
};

// The generator: partition p of P makes the events i = p, p + P, p + 2P, ...
class GeneratorSource final : public Source<Bid> {
 public:
  GeneratorSource(GeneratorConfig c, Timestamp delay, std::function<void(int, Timestamp)> hook)
      : c_(c), wm_(delay), hook_(std::move(hook)) {}
  void open(OperatorContext& ctx) override {
    persons_ = &ctx.output(persons_tag());
    auctions_ = &ctx.output(auctions_tag());
    part_ = ctx.partition();
    stride_ = static_cast<std::uint64_t>(ctx.parallelism());
    next_ = static_cast<std::uint64_t>(part_);
  }
  SourceStatus produce(SourceOutput<Bid>& out) override {
    const std::uint64_t total = c_.events > 0 ? c_.events : UINT64_MAX;
    if (next_ >= total) return done(out);
    std::uint64_t limit = total;
    if (c_.emit_rate > 0) {
      const auto now = std::chrono::steady_clock::now();
      if (c_.start == std::chrono::steady_clock::time_point{}) c_.start = now;
      const double elapsed = std::chrono::duration<double>(now - c_.start).count();
      if (elapsed >= 0) limit = std::min<std::uint64_t>(limit, static_cast<std::uint64_t>(elapsed * c_.emit_rate) + 1);
      else limit = 0;
      if (next_ >= limit) return SourceStatus::kIdle;
    }
    for (int k = 0; k < kEventsPerProduce && next_ < limit; ++k, next_ += stride_) {
      switch (kind_of(next_)) {
        case EventKind::kPerson: {
          const Person p = make_person(c_, next_);
          wm_.see(p.ts);
          persons_->emit(p);
          break;
        }
        case EventKind::kAuction: {
          const Auction a = make_auction(c_, next_);
          wm_.see(a.ts);
          auctions_->emit(a);
          break;
        }
        case EventKind::kBid: {
          const Bid b = make_bid(c_, next_);
          wm_.see(b.ts);
          out.emit(b);
          break;
        }
      }
    }
    if (next_ >= total) return done(out);
    wm_.emit(out, part_, hook_);
    return SourceStatus::kMore;
  }

 private:
  SourceStatus done(SourceOutput<Bid>& out) {
    if (!finished_) {
      finished_ = true;
      wm_.finish(out, part_, hook_);
    }
    return SourceStatus::kDone;
  }
  GeneratorConfig c_;
  Watermarks wm_;
  std::function<void(int, Timestamp)> hook_;
  Output<Person>* persons_ = nullptr;
  Output<Auction>* auctions_ = nullptr;
  int part_ = 0;
  std::uint64_t stride_ = 1;
  std::uint64_t next_ = 0;
  bool finished_ = false;
};

// A generated file: partition p reads the lines whose first byte is in its byte range
// [size * p / P, size * (p + 1) / P), in order. A malformed line fails the job with
// "FILE:LINE: what".
class FileSource final : public Source<Bid> {
 public:
  FileSource(std::string path, Timestamp delay, std::function<void(int, Timestamp)> hook)
      : path_(std::move(path)), wm_(delay), hook_(std::move(hook)) {}
  ~FileSource() override {
    if (f_ != nullptr) std::fclose(f_);
    std::free(line_);
  }
  FileSource(const FileSource& o) : path_(o.path_), wm_(o.wm_), hook_(o.hook_) {}
  FileSource& operator=(const FileSource&) = delete;

  void open(OperatorContext& ctx) override {
    persons_ = &ctx.output(persons_tag());
    auctions_ = &ctx.output(auctions_tag());
    part_ = ctx.partition();
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) throw Error(path_ + ": cannot read it: " + std::strerror(errno));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto P = static_cast<std::uint64_t>(ctx.parallelism());
    const auto p = static_cast<std::uint64_t>(part_);
    begin_ = static_cast<std::uint64_t>((static_cast<u128>(size) * p) / P);
    end_ = static_cast<std::uint64_t>((static_cast<u128>(size) * (p + 1)) / P);
  }

  SourceStatus produce(SourceOutput<Bid>& out) override {
    if (f_ == nullptr && !start()) return done(out);
    Person pe;
    Auction au;
    Bid bi;
    for (int k = 0; k < kEventsPerProduce; ++k) {
      if (pos_ >= end_) return done(out);
      const ssize_t n = ::getline(&line_, &cap_, f_);
      if (n <= 0) return done(out);
      pos_ += static_cast<std::uint64_t>(n);
      ++line_no_;
      std::string_view line(line_, static_cast<std::size_t>(n));
      if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
      EventKind kind{};
      try {
        kind = parse_line(line, pe, au, bi);
      } catch (const std::exception& e) {
        throw Error(path_ + ":" + std::to_string(line_no_) + ": " + e.what());
      }
      switch (kind) {
        case EventKind::kPerson: wm_.see(pe.ts); persons_->emit(pe); break;
        case EventKind::kAuction: wm_.see(au.ts); auctions_->emit(au); break;
        case EventKind::kBid: wm_.see(bi.ts); out.emit(bi); break;
      }
    }
    wm_.emit(out, part_, hook_);
    return SourceStatus::kMore;
  }

 private:
  // Opens the file at the first line of this partition; counts the lines before it. False if
  // the partition has no line.
  bool start() {
    f_ = std::fopen(path_.c_str(), "rb");
    if (f_ == nullptr) throw Error(path_ + ": cannot open it: " + std::strerror(errno));
    std::vector<char> buf(1 << 20);
    std::uint64_t at = 0;
    bool prev_newline = true;  // the byte before `at` ends a line
    while (at < begin_) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), begin_ - at));
      const std::size_t got = std::fread(buf.data(), 1, want, f_);
      if (got == 0) break;
      line_no_ += static_cast<std::uint64_t>(std::count(buf.data(), buf.data() + got, '\n'));
      prev_newline = buf[got - 1] == '\n';
      at += got;
    }
    pos_ = at;
    if (!prev_newline) {  // the line at begin_ started before it: the previous partition's
      const ssize_t n = ::getline(&line_, &cap_, f_);
      if (n <= 0) return false;
      pos_ += static_cast<std::uint64_t>(n);
      ++line_no_;
    }
    return pos_ < end_;
  }
  SourceStatus done(SourceOutput<Bid>& out) {
    if (!finished_) {
      finished_ = true;
      wm_.finish(out, part_, hook_);
    }
    return SourceStatus::kDone;
  }

  std::string path_;
  Watermarks wm_;
  std::function<void(int, Timestamp)> hook_;
  Output<Person>* persons_ = nullptr;
  Output<Auction>* auctions_ = nullptr;
  int part_ = 0;
  std::uint64_t begin_ = 0, end_ = 0, pos_ = 0, line_no_ = 0;
  std::FILE* f_ = nullptr;
  char* line_ = nullptr;
  std::size_t cap_ = 0;
  bool finished_ = false;
};

// ---------------------------------------------------------------- q0 .. q4, q12

void fmt_person(const Person& p, std::string& l) { append_line(p, l); }
void fmt_auction(const Auction& a, std::string& l) { append_line(a, l); }
void fmt_bid(const Bid& b, std::string& l) { append_line(b, l); }

void add_q0(const Inputs& in, const ResultSink& sink) {
  if (!sink.path.empty()) {
    // One file: the three kinds as lines, in one stream.
    auto line = [](auto fmt) {
      return [fmt](const auto& x) {
        std::string l;
        fmt(x, l);
        return l;
      };
    };
    Stream<std::string> all = Stream<std::string>(in.bids.map(line(fmt_bid)))
                                  .union_with(in.persons.map(line(fmt_person)))
                                  .union_with(in.auctions.map(line(fmt_auction)));
    all.write_text(sink.path, [](const std::string& s) { return s; });
    return;
  }
  deliver(in.bids, sink, fmt_bid);
  ResultSink counted = sink;
  counted.on_window = nullptr;
  deliver(in.persons, counted, fmt_person);
  deliver(in.auctions, counted, fmt_auction);
}

struct Q1Row {
  std::int64_t auction, bidder, price_eur;
  Timestamp ts;
};
void add_q1(const Inputs& in, const ResultSink& sink) {
  auto rows = in.bids.map([](const Bid& b) { return Q1Row{b.auction, b.bidder, b.price * 89 / 100, b.ts}; });
  deliver(Stream<Q1Row>(rows), sink, [](const Q1Row& r, std::string& l) {
    add_fields(l, r.auction, r.bidder, r.price_eur, r.ts);
  });
}

struct Q2Row {
  std::int64_t auction, price;
};
void add_q2(const Inputs& in, const ResultSink& sink) {
  auto rows = in.bids.filter([](const Bid& b) { return b.auction % 123 == 0; }).map([](const Bid& b) {
    return Q2Row{b.auction, b.price};
  });
  deliver(Stream<Q2Row>(rows), sink, [](const Q2Row& r, std::string& l) {
    add_fields(l, r.auction, r.price);
  });
}

// q3: incremental join of sellers in OR, ID or CA with their auctions in category 10, each
// match emitted once (whichever side arrives last emits it).
struct Q3Seller {
  std::int64_t id = 0;
  char name[16] = {};
  char city[16] = {};
  char state[4] = {};
  bool matches = false;  // lives in OR, ID or CA
};
struct Q3Row {
  char name[16] = {};
  char city[16] = {};
  char state[4] = {};
  std::int64_t auction = 0;
};
class Q3Join final : public TwoInputOperator<Q3Seller, Auction, Q3Row> {
 public:
  void open(OperatorContext& ctx) override {
    sellers_ = &ctx.state().value<std::int64_t, Q3Seller>("sellers");
    waiting_ = &ctx.state().list<std::int64_t, std::int64_t>("auctions without their seller yet");
  }
  void process1(std::span<const Q3Seller> in, Output<Q3Row>& out) override {
    // Every person is kept (an auction may name it later); one from another state releases the
    // auctions that waited for it without a result, so nothing waits for ever.
    for (const Q3Seller& s : in) {
      sellers_->set(s.id, s);
      if (s.matches)
        for (std::int64_t a : waiting_->get(s.id)) out.emit(row(s, a));
      waiting_->erase(s.id);
    }
  }
  void process2(std::span<const Auction> in, Output<Q3Row>& out) override {
    for (const Auction& a : in) {
      if (const Q3Seller* s = sellers_->find(a.seller)) {
        if (s->matches) out.emit(row(*s, a.id));
      } else {
        waiting_->add(a.seller, a.id);
      }
    }
  }

 private:
  static Q3Row row(const Q3Seller& s, std::int64_t auction) {
    Q3Row r;
    std::memcpy(r.name, s.name, sizeof r.name);
    std::memcpy(r.city, s.city, sizeof r.city);
    std::memcpy(r.state, s.state, sizeof r.state);
    r.auction = auction;
    return r;
  }
  ValueState<std::int64_t, Q3Seller>* sellers_ = nullptr;
  ListState<std::int64_t, std::int64_t>* waiting_ = nullptr;
};
void add_q3(const Inputs& in, const ResultSink& sink) {
  auto sellers = in.persons.map([](const Person& p) {
    Q3Seller s;
    s.id = p.id;
    std::memcpy(s.name, p.name, sizeof s.name);
    std::memcpy(s.city, p.city, sizeof s.city);
    std::memcpy(s.state, p.state, sizeof s.state);
    s.matches = std::strcmp(p.state, "OR") == 0 || std::strcmp(p.state, "ID") == 0 || std::strcmp(p.state, "CA") == 0;
    return s;
  });
  auto auctions = in.auctions.filter([](const Auction& a) { return a.category == 10; });
  auto rows = Stream<Q3Seller>(sellers)
                  .key_by([](const Q3Seller& s) { return s.id; })
                  .connect(Stream<Auction>(auctions).key_by([](const Auction& a) { return a.seller; }))
                  .process("q3 join", Q3Join{});
  deliver(rows, sink, [](const Q3Row& r, std::string& l) {
    add_fields(l, r.name, r.city, r.state, r.auction);
  });
}

// q4: per auction (keyed by its id) the highest valid bid, found when the watermark passes the
// auction's end (an event-time timer); then per category the average of those prices.
struct AuctionOrBid {
  std::int64_t auction = 0;
  Timestamp ts = 0;
  std::int64_t price = 0;  // a bid's price, or the auction's reserve
  Timestamp expires = 0;   // auctions
  std::int64_t category = 0;
  bool is_auction = false;
};
struct OpenAuction {
  Timestamp ts = 0;
  std::int64_t reserve = 0;
  Timestamp expires = 0;
  std::int64_t category = 0;
  std::int64_t best = -1;
};
struct PendingBid {
  Timestamp ts = 0;
  std::int64_t price = 0;
};
struct CategoryPrice {
  std::int64_t category = 0;
  std::int64_t price = 0;
};
class Q4Winners final : public KeyedOperator<std::int64_t, AuctionOrBid, CategoryPrice> {
 public:
  void open(OperatorContext& ctx) override {
    open_ = &ctx.state().value<std::int64_t, OpenAuction>("open auctions");
    pending_ = &ctx.state().list<std::int64_t, PendingBid>("bids before their auction");
  }
  void process(std::span<const AuctionOrBid> in, Output<CategoryPrice>& /*out*/) override {
    for (const AuctionOrBid& r : in) {
      if (r.is_auction) {
        OpenAuction a{r.ts, r.price, r.expires, r.category, -1};
        for (const PendingBid& b : pending_->get(r.auction)) consider(a, b.ts, b.price);
        pending_->erase(r.auction);
        open_->set(r.auction, a);
        register_event_time_timer(r.auction, r.expires);
      } else if (OpenAuction* a = open_->find(r.auction)) {
        consider(*a, r.ts, r.price);
      } else {
        // Its auction has not arrived (or is closed): kept until the watermark passes the bid,
        // after which no auction old enough for it can come.
        pending_->add(r.auction, PendingBid{r.ts, r.price});
        register_event_time_timer(r.auction, r.ts + 1);
      }
    }
  }
  void on_timer(const std::int64_t& key, Timestamp t, TimeDomain /*d*/, Output<CategoryPrice>& out) override {
    if (OpenAuction* a = open_->find(key)) {
      if (t < a->expires) return;
      if (a->best >= 0) out.emit(CategoryPrice{a->category, a->best});
      open_->erase(key);
      return;
    }
    pending_->update(key, [t](std::vector<PendingBid>& v) {
      std::erase_if(v, [t](const PendingBid& b) { return b.ts < t; });
    });
  }

 private:
  static void consider(OpenAuction& a, Timestamp ts, std::int64_t price) {
    if (price >= a.reserve && ts >= a.ts && ts < a.expires) a.best = std::max(a.best, price);
  }
  ValueState<std::int64_t, OpenAuction>* open_ = nullptr;
  ListState<std::int64_t, PendingBid>* pending_ = nullptr;
};
struct SumCount {
  std::int64_t sum = 0;
  std::int64_t count = 0;
};
struct Q4Row {
  std::int64_t category = 0;
  std::int64_t sum = 0;
  std::int64_t count = 0;
};
class Q4Average final : public KeyedOperator<std::int64_t, CategoryPrice, Q4Row> {
 public:
  void open(OperatorContext& ctx) override { sums_ = &ctx.state().value<std::int64_t, SumCount>("sums"); }
  void process(std::span<const CategoryPrice> in, Output<Q4Row>& /*out*/) override {
    for (const CategoryPrice& c : in) {
      SumCount& s = (*sums_)[c.category];
      s.sum += c.price;
      ++s.count;
    }
  }
  void on_end(Output<Q4Row>& out) override {
    sums_->for_each([&](const std::int64_t& k, SumCount& s) { out.emit(Q4Row{k, s.sum, s.count}); });
  }

 private:
  ValueState<std::int64_t, SumCount>* sums_ = nullptr;
};
void add_q4(const Inputs& in, const ResultSink& sink) {
  auto auctions = in.auctions.map([](const Auction& a) {
    return AuctionOrBid{a.id, a.ts, a.reserve, a.expires, a.category, true};
  });
  auto bids = in.bids.map([](const Bid& b) { return AuctionOrBid{b.auction, b.ts, b.price, 0, 0, false}; });
  auto winners = Stream<AuctionOrBid>(auctions)
                     .union_with(bids)
                     .key_by([](const AuctionOrBid& r) { return r.auction; })
                     .process("q4 winning bids", Q4Winners{});
  auto rows = winners.key_by([](const CategoryPrice& c) { return c.category; }).process("q4 average", Q4Average{});
  deliver(rows, sink, [](const Q4Row& r, std::string& l) { l += q4_line(r.category, r.sum, r.count); });
}

// q12: bids per bidder in processing-time windows of 10 s (wall-clock ms, aligned to 0).
struct Q12Row {
  std::int64_t bidder = 0;
  std::int64_t count = 0;
  Timestamp start = 0;
};
struct Q12Window {
  Timestamp start = 0;
  std::int64_t count = 0;
};
class Q12Counts final : public KeyedOperator<std::int64_t, Bid, Q12Row> {
 public:
  static constexpr Timestamp kSize = 10'000;
  void open(OperatorContext& ctx) override {
    windows_ = &ctx.state().value<std::int64_t, Q12Window>("windows");
    const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    offset_ = wall - OperatorContext::processing_time();
  }
  void process(std::span<const Bid> in, Output<Q12Row>& out) override {
    const Timestamp steady = processing_time();
    const Timestamp start = (steady + offset_) / kSize * kSize;
    for (const Bid& b : in) {
      Q12Window& w = (*windows_)[b.bidder];
      if (w.count > 0 && w.start != start) {
        out.emit(Q12Row{b.bidder, w.count, w.start});
        w.count = 0;
      }
      if (w.count == 0) {
        w.start = start;
        register_processing_time_timer(b.bidder, start + kSize - offset_);
      }
      ++w.count;
    }
  }
  void on_timer(const std::int64_t& key, Timestamp t, TimeDomain d, Output<Q12Row>& out) override {
    if (d != TimeDomain::kProcessingTime) return;
    Q12Window* w = windows_->find(key);
    if (w == nullptr || w->count == 0 || w->start + kSize - offset_ > t) return;
    out.emit(Q12Row{key, w->count, w->start});
    windows_->erase(key);
  }
  void on_end(Output<Q12Row>& out) override {
    windows_->for_each([&](const std::int64_t& k, Q12Window& w) {
      if (w.count > 0) out.emit(Q12Row{k, w.count, w.start});
    });
    windows_->clear();
  }

 private:
  ValueState<std::int64_t, Q12Window>* windows_ = nullptr;
  Timestamp offset_ = 0;
};
void add_q12(const Inputs& in, const ResultSink& sink) {
  auto rows = in.bids.key_by([](const Bid& b) { return b.bidder; }).process("q12 processing-time windows", Q12Counts{});
  deliver(rows, sink, [](const Q12Row& r, std::string& l) {
    add_fields(l, r.bidder, r.count, r.start);
  });
}

}  // namespace

Inputs add_inputs(Environment& env, const QueryOptions& q) {
  // A paced generator is a live source: unbounded (buffer timeouts apply), ending after
  // `events`.
  const bool live = q.input.empty() && q.gen.emit_rate > 0;
  Stream<Bid> bids = q.input.empty()
                         ? env.source("nexmark generator", GeneratorSource(q.gen, q.watermark_delay, q.on_source_watermark),
                                      !live && q.gen.events > 0)
                         : env.source("nexmark file " + q.input, FileSource(q.input, q.watermark_delay, q.on_source_watermark),
                                      true);
  return Inputs{bids, bids.side_output(persons_tag()), bids.side_output(auctions_tag())};
}

}  // namespace detail

std::string q4_line(std::int64_t category, std::int64_t sum, std::int64_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%" PRId64 ",%.3f", category, static_cast<double>(sum) / static_cast<double>(count));
  return buf;
}

bool is_query(const std::string& q) {
  for (const char* k : {"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11", "q12"})
    if (q == k) return true;
  return false;
}

JobResult run_query(const QueryOptions& q, const ResultSink& sink, const JobConfig& config, const Cluster& cluster) {
  if (!is_query(q.query))
    throw PlanError("unknown query '" + q.query + "' (q0, q1, q2, q3, q4, q5, q7, q8, q11 or q12)");
  if (q.input.empty() && q.gen.events == 0) throw PlanError("no events: give an input file or a number of events");
  if (q.watermark_delay < 0) throw PlanError("the watermark delay must be 0 or more");
  if (!q.input.empty()) gyre::detail::check_readable(q.input);
  Environment env(config, cluster);
  const detail::Inputs in = detail::add_inputs(env, q);
  if (q.query == "q0") detail::add_q0(in, sink);
  else if (q.query == "q1") detail::add_q1(in, sink);
  else if (q.query == "q2") detail::add_q2(in, sink);
  else if (q.query == "q3") detail::add_q3(in, sink);
  else if (q.query == "q4") detail::add_q4(in, sink);
  else if (q.query == "q5") detail::add_q5(in, q, sink);
  else if (q.query == "q7") detail::add_q7(in, q, sink);
  else if (q.query == "q8") detail::add_q8(in, q, sink);
  else if (q.query == "q11") detail::add_q11(in, q, sink);
  else detail::add_q12(in, sink);
  try {
    return env.run();
  } catch (const JobError& e) {
    // The user's error (a malformed line: "FILE:LINE: what"), without the operator's name.
    if (e.cause()) {
      try {
        std::rethrow_exception(e.cause());
      } catch (const Error& inner) {
        throw Error(inner.what());
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace gyre::nexmark
