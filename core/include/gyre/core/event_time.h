// Event time: timestamps read from records, watermarks generated per partition.
//
//   auto timed = gyre::assign_timestamps(events, [](const Bid& b) { return b.ts; },
//                                        gyre::WatermarkStrategy::bounded_out_of_orderness(3'000)
//                                            .with_interval(200)      // ms of processing time
//                                            .with_idleness(5'000));  // ms without records
//
// Records carry their own event time: a user extractor ts(const T&) -> gyre::Timestamp
// (milliseconds by convention) reads it; nothing is stored beside the batches. assign_timestamps
// runs one generator per partition of `s` (forward: in the partitions of the source) and passes
// the records on unchanged, adding watermarks to the stream:
//   - monotonous():                     watermark = max timestamp seen - 1
//   - bounded_out_of_orderness(d):      watermark = max timestamp seen - d - 1
//   - custom(make):                     a WatermarkGenerator per partition (make() in each),
//                                       shown every batch's timestamps; its current_watermark()
//                                       is what is emitted.
// Watermarks never decrease. One is emitted after a batch when `interval_records` records came
// since the last one (a fast bounded input makes progress without any clock) or `interval` ms of
// processing time passed; and every `interval` ms by the operator's processing-time wake-up
// (ctx.wake_at, the runtime's timer service; no thread sleeps), so a slow stream progresses too.
// Idleness: a partition that got no record for `idleness` ms sends Event::idle() (its channels
// stop holding the watermark of the consumers back) and resumes with its next batch, which
// first sends its current watermark (an idle channel becomes active again on a watermark).
// The end of a bounded input is the watermark +inf (the runtime sends it with the end).
// Watermarks and idleness arriving from upstream pass through too: put assign_timestamps right
// after a source that emits none.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gyre/core/event.h"
#include "gyre/core/operator.h"
#include "gyre/core/stream.h"

namespace gyre {

// A user-defined watermark generator (WatermarkStrategy::custom): one per partition.
class WatermarkGenerator {
 public:
  virtual ~WatermarkGenerator() = default;
  // The timestamps of one batch, in arrival order (one call per batch, not per record).
  virtual void on_timestamps(std::span<const Timestamp> ts) = 0;
  // No record older than this will follow (kMinTimestamp: nothing known yet).
  virtual Timestamp current_watermark() const = 0;
};

struct WatermarkStrategy {
  Timestamp delay = 0;                  // bounded out-of-orderness
  Timestamp interval = 200;             // ms of processing time between watermarks
  std::uint64_t interval_records = 1024;  // ... or this many records
  Timestamp idleness = 0;               // ms without records before idle (0: never idle)
  std::function<std::unique_ptr<WatermarkGenerator>()> make;  // custom

  static WatermarkStrategy monotonous() { return {}; }
  static WatermarkStrategy bounded_out_of_orderness(Timestamp d) {
    WatermarkStrategy s;
    s.delay = d;
    return s;
  }
  static WatermarkStrategy custom(std::function<std::unique_ptr<WatermarkGenerator>()> make) {
    WatermarkStrategy s;
    s.make = std::move(make);
    return s;
  }
  WatermarkStrategy& with_interval(Timestamp ms) {
    interval = std::max<Timestamp>(1, ms);
    return *this;
  }
  WatermarkStrategy& with_record_interval(std::uint64_t n) {
    interval_records = std::max<std::uint64_t>(1, n);
    return *this;
  }
  WatermarkStrategy& with_idleness(Timestamp ms) {
    idleness = ms;
    return *this;
  }
};

namespace detail {

template <class T, class TsFn>
class TimestampAssigner final : public OneInputOperator<T, T> {
 public:
  TimestampAssigner(TsFn ts, WatermarkStrategy s) : ts_(std::move(ts)), s_(std::move(s)) {}
  TimestampAssigner(const TimestampAssigner& o) : ts_(o.ts_), s_(o.s_) {}

  void open(OperatorContext& ctx) override {
    ctx_ = &ctx;
    if (s_.make) gen_ = s_.make();
    const Timestamp now = OperatorContext::processing_time();
    last_emit_ = last_record_ = now;
    schedule(now);
  }
  void process(std::span<const T> in, Output<T>& out) override {
    if (gen_) {
      buf_.resize(in.size());
      for (std::size_t i = 0; i < in.size(); ++i) buf_[i] = ts_(in[i]);
      gen_->on_timestamps(buf_);
    } else {
      Timestamp m = max_ts_;
      for (const T& x : in) m = std::max<Timestamp>(m, ts_(x));
      max_ts_ = m;
    }
    const Timestamp now = OperatorContext::processing_time();
    last_record_ = now;
    if (idle_) {  // resume: a watermark (before the records) makes the channels active again
      idle_ = false;
      out.forward(Event::watermark(emitted_));
      schedule(now);
    }
    out.emit(in);
    records_ += in.size();
    if (records_ >= s_.interval_records || now - last_emit_ >= s_.interval) {
      emit(out, now, false);
    }
  }
  void advance_processing_time(Timestamp now, Output<T>& out) override {
    if (ended_) return;
    if (now < next_wake_) return;
    next_wake_ = kMaxTimestamp;
    if (idle_) return;  // woken again by the next batch
    emit(out, now, false);
    if (s_.idleness > 0 && now - last_record_ >= s_.idleness) {
      idle_ = true;
      out.forward(Event::idle());
      return;
    }
    schedule(now);
  }
  void on_end(Output<T>& /*out*/) override { ended_ = true; }

 private:
  Timestamp current() const {
    if (gen_) return gen_->current_watermark();
    if (max_ts_ == kMinTimestamp) return kMinTimestamp;
    return max_ts_ - s_.delay - 1;
  }
  void emit(Output<T>& out, Timestamp now, bool force) {
    const Timestamp wm = current();
    records_ = 0;
    last_emit_ = now;
    if (wm > emitted_) emitted_ = wm;
    else if (!force) return;
    out.forward(Event::watermark(emitted_));
  }
  void schedule(Timestamp now) {
    Timestamp next = now + s_.interval;
    if (s_.idleness > 0) next = std::min(next, last_record_ + s_.idleness);
    next = std::max(next, now + 1);
    if (next < next_wake_) {
      next_wake_ = next;
      ctx_->wake_at(next);
    }
  }

  TsFn ts_;
  WatermarkStrategy s_;
  std::unique_ptr<WatermarkGenerator> gen_;
  OperatorContext* ctx_ = nullptr;
  std::vector<Timestamp> buf_;
  Timestamp max_ts_ = kMinTimestamp;
  Timestamp emitted_ = kMinTimestamp;
  Timestamp last_emit_ = 0;
  Timestamp last_record_ = 0;
  Timestamp next_wake_ = kMaxTimestamp;
  std::uint64_t records_ = 0;
  bool idle_ = false;
  bool ended_ = false;
};

}  // namespace detail

// The records of `s` with watermarks from `w`, generated in each partition of `s`.
template <Record T, class TsFn>
  requires std::invocable<const TsFn&, const T&> &&
           std::convertible_to<std::invoke_result_t<const TsFn&, const T&>, Timestamp>
Stream<T> assign_timestamps(const Stream<T>& s, TsFn ts, WatermarkStrategy w = WatermarkStrategy::monotonous()) {
  const int node = s.node();
  OperatorBuilder b(s.env(), "operator");
  b.name("assign timestamps").parallelism(OperatorBuilder(s.env(), node).parallelism());
  b.input(s);
  b.one_input(detail::TimestampAssigner<T, TsFn>(std::move(ts), std::move(w)));
  return b.template stream<T>();
}

}  // namespace gyre
