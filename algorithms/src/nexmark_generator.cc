// The Nexmark generator (Beam's semantics, gyre's code) and the event file format.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "gyre/algorithms/nexmark.h"
#include "gyre/core/error.h"
#include "gyre/core/text_io.h"
#include "nexmark_csv.h"

namespace gyre::nexmark {
namespace {

__extension__ typedef unsigned __int128 u128;

// splitmix64: a tiny, fast generator; one fresh stream per (seed, event, purpose).
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0.
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>((static_cast<u128>(next()) * n) >> 64); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

Rng rng_for(std::uint64_t seed, std::uint64_t i, std::uint64_t salt) {
  Rng r{seed * 0xD1B54A32D192ED03ULL ^ salt};
  r.next();
  r.s ^= i * 0xA24BAED4963EE407ULL;
  r.next();
  return r;
}
constexpr std::uint64_t kSaltTime = 0x5EEDu;
constexpr std::uint64_t kSaltData = 0xDA7Au;

// Writes s into dst[cap] (NUL-terminated, cut to fit).
void put(char* dst, std::size_t cap, std::string_view s) {
  const std::size_t n = std::min(s.size(), cap - 1);
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

// A random string of 3 .. max_len-1 characters, letters and (about 1 in 13) spaces, trimmed;
// 16 random bits per character (8 for the space, 8 for the letter). Returns its length.
std::size_t next_string(Rng& r, int max_len, char* dst, std::size_t cap) {
  const int len = 3 + static_cast<int>(r.below(static_cast<std::uint64_t>(max_len - 3)));
  char buf[128];
  std::uint64_t x = 0;
  for (int k = 0; k < len; ++k) {
    if ((k & 3) == 0) x = r.next();
    const auto bits = static_cast<std::uint32_t>(x & 0xFFFFu);
    x >>= 16;
    buf[k] = (((bits & 0xFFu) * 13) >> 8) == 0 ? ' ' : static_cast<char>('a' + (((bits >> 8) * 26) >> 8));
  }
  int b = 0, e = len;
  while (b < e && buf[b] == ' ') ++b;
  while (e > b && buf[e - 1] == ' ') --e;
  put(dst, cap, std::string_view(buf + b, static_cast<std::size_t>(e - b)));
  return std::min(static_cast<std::size_t>(e - b), cap - 1);
}

// Appends to a fixed buffer (cut to fit, NUL-terminated).
struct Appender {
  char* p;
  char* end;  // the last byte (kept for the NUL)
  Appender(char* dst, std::size_t cap) : p(dst), end(dst + cap - 1) { *p = '\0'; }
  Appender& operator<<(std::string_view s) {
    const std::size_t n = std::min(s.size(), static_cast<std::size_t>(end - p));
    std::memcpy(p, s.data(), n);
    p += n;
    *p = '\0';
    return *this;
  }
  Appender& operator<<(unsigned v) {
    char buf[12];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return *this << std::string_view(buf, static_cast<std::size_t>(r.ptr - buf));
  }
};

// 10^(6u) * 100, rounded.
std::int64_t next_price(Rng& r) {
  constexpr double kLog2Of10 = 3.321928094887362347870319429489;
  return static_cast<std::int64_t>(std::exp2(r.unit() * 6.0 * kLog2Of10) * 100.0 + 0.5);
}

std::int64_t last_base0_person(std::uint64_t i) { return static_cast<std::int64_t>(i / kProportionDenominator); }
std::int64_t last_base0_auction(std::uint64_t i) {
  std::int64_t epoch = static_cast<std::int64_t>(i / kProportionDenominator);
  std::int64_t off = static_cast<std::int64_t>(i % kProportionDenominator);
  if (off < 1) {  // a person: the last auction of the previous epoch
    --epoch;
    off = 2;
  } else if (off >= 4) {  // a bid: the last auction of this epoch
    off = 2;
  } else {
    off -= 1;
  }
  return epoch * 3 + off;
}
// One of the active people, or a few not created yet.
std::int64_t next_base0_person(const GeneratorConfig& c, std::uint64_t i, Rng& r) {
  const std::int64_t people = last_base0_person(i) + 1;
  const std::int64_t active = std::min<std::int64_t>(people, c.num_active_people);
  const auto n = static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(active + 10)));
  return people - active + n;
}
// One of the auctions probably still open, or a few not created yet.
std::int64_t next_base0_auction(const GeneratorConfig& c, std::uint64_t i, Rng& r) {
  const std::int64_t last = last_base0_auction(i);
  const std::int64_t lo = std::max<std::int64_t>(last - c.num_in_flight_auctions, 0);
  return lo + static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(last - lo + 1 + 10)));
}

Timestamp nominal_time(const GeneratorConfig& c, std::uint64_t i) {
  const auto d = static_cast<std::uint64_t>(c.inter_event_delay_us);
  if (i < (1ULL << 40) && d < (1ULL << 20)) return static_cast<Timestamp>(i * d / 1000);
  return static_cast<Timestamp>((static_cast<u128>(i) * static_cast<std::uint64_t>(c.inter_event_delay_us)) / 1000);
}

constexpr const char* kFirst[] = {"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"};
constexpr const char* kLast[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"};
constexpr const char* kCities[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
                                   "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"};
constexpr const char* kStates[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
constexpr const char* kChannels[] = {"Google", "Facebook", "Baidu", "Apple"};

}  // namespace

EventKind kind_of(std::uint64_t i) {
  const auto r = i % kProportionDenominator;
  return r < 1 ? EventKind::kPerson : r < 4 ? EventKind::kAuction : EventKind::kBid;
}

Timestamp event_time(const GeneratorConfig& c, std::uint64_t i) {
  const Timestamp t = nominal_time(c, i);
  Rng r = rng_for(c.seed, i, kSaltTime);
  if (c.max_delay_ms <= 0 || r.unit() >= c.prob_delayed) return t;
  const auto d = 1 + static_cast<Timestamp>(r.below(static_cast<std::uint64_t>(c.max_delay_ms)));
  return std::max<Timestamp>(0, t - d);
}

Person make_person(const GeneratorConfig& c, std::uint64_t i) {
  Rng r = rng_for(c.seed, i, kSaltData);
  Person p;
  p.ts = event_time(c, i);
  p.id = last_base0_person(i) + kFirstPersonId;
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%s %s", kFirst[r.below(11)], kLast[r.below(9)]);
  put(p.name, sizeof p.name, std::string_view(buf, static_cast<std::size_t>(n)));
  char user[8], host[8];
  next_string(r, 7, user, sizeof user);
  next_string(r, 5, host, sizeof host);
  const int m = std::snprintf(buf, sizeof buf, "%s@%s.com", user, host);
  put(p.email, sizeof p.email, std::string_view(buf, static_cast<std::size_t>(m)));
  std::snprintf(p.credit_card, sizeof p.credit_card, "%04u %04u %04u %04u", static_cast<unsigned>(r.below(10000)),
                static_cast<unsigned>(r.below(10000)), static_cast<unsigned>(r.below(10000)),
                static_cast<unsigned>(r.below(10000)));
  put(p.city, sizeof p.city, kCities[r.below(10)]);
  put(p.state, sizeof p.state, kStates[r.below(6)]);
  return p;
}

Auction make_auction(const GeneratorConfig& c, std::uint64_t i) {
  Rng r = rng_for(c.seed, i, kSaltData);
  Auction a;
  a.ts = event_time(c, i);
  a.id = last_base0_auction(i) + kFirstAuctionId;
  std::int64_t seller = 0;
  if (r.below(static_cast<std::uint64_t>(c.hot_sellers_ratio)) > 0) seller = (last_base0_person(i) / 100) * 100;
  else seller = next_base0_person(c, i, r);
  a.seller = seller + kFirstPersonId;
  a.category = kFirstCategory + static_cast<std::int64_t>(r.below(5));
  a.initial_bid = next_price(r);
  // Auctions last on average until num_in_flight_auctions more auctions exist.
  const std::uint64_t ahead = static_cast<std::uint64_t>(c.num_in_flight_auctions) * kProportionDenominator / 3;
  const Timestamp horizon = nominal_time(c, i + ahead) - a.ts;
  a.expires = a.ts + 1 + static_cast<Timestamp>(r.below(static_cast<std::uint64_t>(std::max<Timestamp>(horizon * 2, 1))));
  next_string(r, 20, a.item_name, sizeof a.item_name);
  next_string(r, 100, a.description, sizeof a.description);
  a.reserve = a.initial_bid + next_price(r);
  return a;
}

Bid make_bid(const GeneratorConfig& c, std::uint64_t i) {
  Rng r = rng_for(c.seed, i, kSaltData);
  Bid b;
  b.ts = event_time(c, i);
  std::int64_t auction = 0;
  if (r.below(static_cast<std::uint64_t>(c.hot_auction_ratio)) > 0) auction = (last_base0_auction(i) / 100) * 100;
  else auction = next_base0_auction(c, i, r);
  b.auction = auction + kFirstAuctionId;
  std::int64_t bidder = 0;
  if (r.below(static_cast<std::uint64_t>(c.hot_bidders_ratio)) > 0) bidder = (last_base0_person(i) / 100) * 100 + 1;
  else bidder = next_base0_person(c, i, r);
  b.bidder = bidder + kFirstPersonId;
  b.price = next_price(r);
  // Channel and url (Nexmark's Flink variant adds them): mostly one of four named channels.
  char a1[8], a2[8], a3[8];
  const std::size_t n1 = next_string(r, 5, a1, sizeof a1);
  const std::size_t n2 = next_string(r, 5, a2, sizeof a2);
  const std::size_t n3 = next_string(r, 5, a3, sizeof a3);
  for (char* s : {a1, a2, a3})
    for (char* q = s; *q; ++q)
      if (*q == ' ') *q = '_';
  Appender url(b.url, sizeof b.url);
  url << "https://www.nexmark.com/" << std::string_view(a1, n1) << "/" << std::string_view(a2, n2) << "/";
  if (r.below(10) > 0) {
    put(b.channel, sizeof b.channel, kChannels[r.below(4)]);
    url << std::string_view(a3, n3) << "/item.htm?query=1";
  } else {
    const auto id = static_cast<unsigned>(r.below(10000));
    Appender(b.channel, sizeof b.channel) << "channel-" << id;
    url << "item.htm?channel_id=" << id;
  }
  return b;
}

// ---------------------------------------------------------------- the file format

namespace detail {
void add_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
void add_str(std::string& out, const char* s) { out.append(s, ::strnlen(s, 256)); }
}  // namespace detail

using detail::add_fields;

void append_line(const Person& p, std::string& out) {
  out += "P,";
  add_fields(out, p.ts, p.id, p.name, p.email, p.credit_card, p.city, p.state);
}
void append_line(const Auction& a, std::string& out) {
  out += "A,";
  add_fields(out, a.ts, a.id, a.item_name, a.description, a.initial_bid, a.reserve, a.expires, a.seller, a.category);
}
void append_line(const Bid& b, std::string& out) {
  out += "B,";
  add_fields(out, b.ts, b.auction, b.bidder, b.price, b.channel, b.url);
}

namespace {
constexpr int kMaxFields = 10;

std::int64_t field_int(std::string_view f, const char* what) {
  std::int64_t v = 0;
  const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
  if (f.empty() || r.ec != std::errc() || r.ptr != f.data() + f.size())
    throw Error(std::string(what) + ": '" + std::string(f.substr(0, 40)) + "' is not an integer");
  return v;
}
Timestamp field_ts(std::string_view f, const char* what) {
  const std::int64_t v = field_int(f, what);
  if (v < 0) throw Error(std::string(what) + ": " + std::to_string(v) + " is negative");
  return v;
}
void field_str(std::string_view f, char* dst, std::size_t cap, const char* what) {
  if (f.size() >= cap)
    throw Error(std::string(what) + ": " + std::to_string(f.size()) + " characters, at most " + std::to_string(cap - 1));
  if (f.find('\0') != std::string_view::npos) throw Error(std::string(what) + ": contains a NUL byte");
  std::memcpy(dst, f.data(), f.size());
  std::memset(dst + f.size(), 0, cap - f.size());
}
}  // namespace

EventKind parse_line(std::string_view line, Person& p, Auction& a, Bid& b) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view f[kMaxFields + 1];
  int n = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    if (n == kMaxFields + 1) {
      n = kMaxFields + 2;  // too many
      break;
    }
    f[n++] = line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  auto need = [&](int want, const char* layout) {
    if (n != want)
      throw Error(std::string("expected ") + std::to_string(want) + " comma-separated fields (" + layout + "), got " +
                  (n > kMaxFields + 1 ? std::string("more") : std::to_string(n)));
  };
  if (f[0] == "P") {
    need(8, "P,ts,id,name,email,credit_card,city,state");
    p.ts = field_ts(f[1], "ts");
    p.id = field_int(f[2], "id");
    field_str(f[3], p.name, sizeof p.name, "name");
    field_str(f[4], p.email, sizeof p.email, "email");
    field_str(f[5], p.credit_card, sizeof p.credit_card, "credit_card");
    field_str(f[6], p.city, sizeof p.city, "city");
    field_str(f[7], p.state, sizeof p.state, "state");
    return EventKind::kPerson;
  }
  if (f[0] == "A") {
    need(10, "A,ts,id,item_name,description,initial_bid,reserve,expires,seller,category");
    a.ts = field_ts(f[1], "ts");
    a.id = field_int(f[2], "id");
    field_str(f[3], a.item_name, sizeof a.item_name, "item_name");
    field_str(f[4], a.description, sizeof a.description, "description");
    a.initial_bid = field_int(f[5], "initial_bid");
    a.reserve = field_int(f[6], "reserve");
    a.expires = field_ts(f[7], "expires");
    a.seller = field_int(f[8], "seller");
    a.category = field_int(f[9], "category");
    return EventKind::kAuction;
  }
  if (f[0] == "B") {
    need(7, "B,ts,auction,bidder,price,channel,url");
    b.ts = field_ts(f[1], "ts");
    b.auction = field_int(f[2], "auction");
    b.bidder = field_int(f[3], "bidder");
    b.price = field_int(f[4], "price");
    field_str(f[5], b.channel, sizeof b.channel, "channel");
    field_str(f[6], b.url, sizeof b.url, "url");
    return EventKind::kBid;
  }
  if (line.empty()) throw Error("empty line (expected an event: P, A or B)");
  throw Error("unknown event type '" + std::string(f[0].substr(0, 20)) + "' (expected P, A or B)");
}

void write_events(const GeneratorConfig& c, const std::string& path) {
  gyre::detail::AtomicFile file(path);
  std::string buf;
  buf.reserve(1 << 20);
  for (std::uint64_t i = 0; i < c.events; ++i) {
    switch (kind_of(i)) {
      case EventKind::kPerson: append_line(make_person(c, i), buf); break;
      case EventKind::kAuction: append_line(make_auction(c, i), buf); break;
      case EventKind::kBid: append_line(make_bid(c, i), buf); break;
    }
    buf += '\n';
    if (buf.size() >= (1u << 20) - 512) {
      file.write(buf);
      buf.clear();
    }
  }
  file.write(buf);
  file.prepare();
  file.commit();
}

}  // namespace gyre::nexmark
