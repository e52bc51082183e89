// Control events: what travels in order with the data of a channel besides batches.
//
// One type for every kind, so that a channel, the MPI transport and the input gate move an event
// without knowing what it means. The meaning (how events of several channels align into one event
// for an operator input) is known in one place: the runtime's input aligner (runtime.cc). Operators
// see aligned events through PortBase::on_event; the public operator API turns them into
// on_end / on_superstep_end / on_watermark calls.
#pragma once

#include <cstdint>
#include <limits>

namespace gyre {

// Event time, in whatever unit the job's timestamps use (milliseconds by convention).
using Timestamp = std::int64_t;
inline constexpr Timestamp kMinTimestamp = std::numeric_limits<Timestamp>::min();
inline constexpr Timestamp kMaxTimestamp = std::numeric_limits<Timestamp>::max();

enum class EventKind : std::uint8_t {
  kEnd = 0,           // the producer will send nothing more on this channel
  kSuperstepEnd = 1,  // inside a loop: the producer finished the current superstep
  kWatermark = 2,     // value: no record older than this will follow on the channel
  kIdle = 3,          // the channel sends no watermarks for now (until its next watermark)
  kBarrier = 4,       // value: checkpoint id; everything before it belongs to that checkpoint
};
inline constexpr int kEventKinds = 5;

const char* to_string(EventKind kind);

struct Event {
  EventKind kind = EventKind::kEnd;
  std::int64_t value = 0;

  static constexpr Event end() { return {EventKind::kEnd, 0}; }
  static constexpr Event superstep_end() { return {EventKind::kSuperstepEnd, 0}; }
  static constexpr Event watermark(Timestamp t) { return {EventKind::kWatermark, t}; }
  static constexpr Event idle() { return {EventKind::kIdle, 0}; }
  static constexpr Event barrier(std::int64_t id) { return {EventKind::kBarrier, id}; }
  friend constexpr bool operator==(const Event&, const Event&) = default;
};

}  // namespace gyre
