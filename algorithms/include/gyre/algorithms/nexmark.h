// Nexmark: the streaming benchmark's events, its generator and queries as gyre jobs.
//
// The generator follows Beam's Nexmark generator with its default parameters (learned from
// Beam's GeneratorConfig / Person- / Auction- / BidGenerator; gyre's own code and random
// numbers, so the values differ from Beam's but the distributions are the same):
//  - event i (0, 1, 2, ...) is a person if i % 50 == 0, an auction if i % 50 in 1..3, else a bid;
//    person ids and auction ids count up from 1000 in event order, categories are 10..14;
//  - event time: i * 100 us (Beam's default rate, 10,000 events per second of event time),
//    in ms; about 10% of the events are delayed: their timestamp is 1..3000 ms earlier than
//    their place in the stream says (out of order by up to 3 s); never below 0;
//  - hot keys as Beam: a bid is for a hot auction with probability 1/2 (else one of the last
//    100 auctions or the 10 next ones), by a hot bidder with probability 3/4; an auction has a
//    hot seller with probability 3/4 (else one of the last 1000 people or the 10 next ones);
//    prices 10^(6u) * 100 rounded, reserve = initial bid + such a price, auctions last
//    1 ms .. 2 x the time until 100 more auctions exist.
// Event i depends only on (seed, i): the stream is the same at any number of partitions and
// ranks (partition p of P generates the events i with i % P == p, in order).
//
// Records are trivially copyable (fixed-size strings, NUL-terminated, never containing a comma).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gyre/core/cluster.h"
#include "gyre/core/config.h"
#include "gyre/core/event.h"

namespace gyre::nexmark {

struct Person {
  Timestamp ts = 0;
  std::int64_t id = 0;
  char name[16] = {};
  char email[16] = {};
  char credit_card[20] = {};
  char city[16] = {};
  char state[4] = {};
};

struct Auction {
  Timestamp ts = 0;
  std::int64_t id = 0;
  char item_name[20] = {};
  char description[100] = {};
  std::int64_t initial_bid = 0;
  std::int64_t reserve = 0;
  Timestamp expires = 0;
  std::int64_t seller = 0;
  std::int64_t category = 0;
};

struct Bid {
  Timestamp ts = 0;
  std::int64_t auction = 0;
  std::int64_t bidder = 0;
  std::int64_t price = 0;
  char channel[16] = {};
  char url[64] = {};
};

enum class EventKind : std::uint8_t { kPerson, kAuction, kBid };

inline constexpr std::int64_t kFirstPersonId = 1000;
inline constexpr std::int64_t kFirstAuctionId = 1000;
inline constexpr std::int64_t kFirstCategory = 10;
inline constexpr int kProportionDenominator = 50;  // person : auction : bid = 1 : 3 : 46

struct GeneratorConfig {
  std::uint64_t seed = 1;
  std::uint64_t events = 0;                // how many (0: unbounded)
  std::int64_t inter_event_delay_us = 100;  // event time between events (10,000 per second)
  double emit_rate = 0;                     // events per second of processing time (0: as fast as possible)
  int hot_auction_ratio = 2;
  int hot_sellers_ratio = 4;
  int hot_bidders_ratio = 4;
  int num_active_people = 1000;
  int num_in_flight_auctions = 100;
  double prob_delayed = 0.1;
  Timestamp max_delay_ms = 3000;
  // With emit_rate: event i is due at start + i / emit_rate (start: this time if set, else when
  // the partition first produces).
  std::chrono::steady_clock::time_point start{};
};

EventKind kind_of(std::uint64_t i);
// Event i's timestamp (ms of event time).
Timestamp event_time(const GeneratorConfig& c, std::uint64_t i);
// Event i, which must be of the kind asked for (kind_of(i)).
Person make_person(const GeneratorConfig& c, std::uint64_t i);
Auction make_auction(const GeneratorConfig& c, std::uint64_t i);
Bid make_bid(const GeneratorConfig& c, std::uint64_t i);

// The file format of `gyre nexmark generate` (one event per line, arrival order):
//   P,ts,id,name,email,credit_card,city,state
//   A,ts,id,item_name,description,initial_bid,reserve,expires,seller,category
//   B,ts,auction,bidder,price,channel,url
void append_line(const Person& p, std::string& out);
void append_line(const Auction& a, std::string& out);
void append_line(const Bid& b, std::string& out);
// Parses one line (without its newline) into the matching record; returns its kind. Throws
// gyre::Error "what" (no file or line: the caller adds them) if it is malformed.
EventKind parse_line(std::string_view line, Person& p, Auction& a, Bid& b);

// Writes the first `c.events` events to `path` (atomically: temporary file + rename).
void write_events(const GeneratorConfig& c, const std::string& path);

// ---------------------------------------------------------------- queries

struct QueryOptions {
  std::string query;        // "q0" .. "q12" (q0, q1, q2, q3, q4, q5, q7, q8, q11, q12)
  std::string input;        // a generated file (read in parallel by line ranges), or empty:
  GeneratorConfig gen;      // the generator in the job
  Timestamp watermark_delay = 3000;  // bounded out-of-orderness of the watermarks (ms)
  // For the benchmark: called by every source partition with each watermark it sends.
  std::function<void(int partition, Timestamp watermark)> on_source_watermark;
};

// Where a query's results go.
struct ResultSink {
  // CSV lines (the CLI's format), written to this file when the job succeeded; or, if empty,
  std::string path;
  // counted here (the benchmark), and
  std::shared_ptr<std::atomic<std::uint64_t>> count;
  // for windowed queries, called with the window's end as each result arrives (any thread).
  std::function<void(Timestamp window_end)> on_window;
};

// The known query names.
bool is_query(const std::string& q);
// Builds the query as a job and runs it; throws gyre::Error (a malformed input line:
// "FILE:LINE: what") or gyre::PlanError.
JobResult run_query(const QueryOptions& q, const ResultSink& sink, const JobConfig& config,
                    const Cluster& cluster = Cluster::local());

// The queries' CSV formats, for tests: one line per result, no newline.
std::string q4_line(std::int64_t category, std::int64_t sum, std::int64_t count);

}  // namespace gyre::nexmark
