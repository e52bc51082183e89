// Inside the Nexmark queries: the sources (generator, file) and result sinks, shared by the
// query files. Not installed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "gyre/algorithms/nexmark.h"
#include "gyre/core.h"
#include "gyre/core/text_io.h"
#include "nexmark_csv.h"

namespace gyre::nexmark::detail {

// The three event streams of a query's input: bids on the source's main output, people and
// auctions on its side outputs (generated or read whether or not the query reads them).
struct Inputs {
  Stream<Bid> bids;
  Stream<Person> persons;
  Stream<Auction> auctions;
};
Inputs add_inputs(Environment& env, const QueryOptions& q);

// Counts what reaches it (per partition, added up at the end) and reports window ends.
template <class T, class End>
class CountSink final : public Sink<T> {
 public:
  CountSink(std::shared_ptr<std::atomic<std::uint64_t>> count, std::function<void(Timestamp)> on_window, End end)
      : count_(std::move(count)), on_window_(std::move(on_window)), end_(end) {}
  void consume(std::span<const T> in) override {
    n_ += in.size();
    if constexpr (!std::is_same_v<End, std::nullptr_t>)
      if (on_window_)
        for (const T& x : in) on_window_(end_(x));
  }
  void on_end() override {
    if (count_) count_->fetch_add(n_);
    n_ = 0;
  }

 private:
  std::shared_ptr<std::atomic<std::uint64_t>> count_;
  std::function<void(Timestamp)> on_window_;
  End end_;
  std::uint64_t n_ = 0;
};

// The query's results: CSV lines fmt(x, line) to sink.path, or counted.
template <class T, class Fmt, class End = std::nullptr_t>
void deliver(const Stream<T>& s, const ResultSink& sink, Fmt fmt, End end = nullptr) {
  if (!sink.path.empty()) {
    s.write_text(sink.path, [fmt](const T& x) {
      std::string line;
      fmt(x, line);
      return line;
    });
    return;
  }
  OperatorBuilder b(s.env(), "sink: count");
  b.input(s);
  b.sink_operator(CountSink<T, End>(sink.count, sink.on_window, end));
}

void copy_str(char* dst, std::size_t cap, const char* src);

// The windowed queries (nexmark_windows.cc).
void add_q5(const Inputs& in, const QueryOptions& q, const ResultSink& sink);
void add_q7(const Inputs& in, const QueryOptions& q, const ResultSink& sink);
void add_q8(const Inputs& in, const QueryOptions& q, const ResultSink& sink);
void add_q11(const Inputs& in, const QueryOptions& q, const ResultSink& sink);

}  // namespace gyre::nexmark::detail
