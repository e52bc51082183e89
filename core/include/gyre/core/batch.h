// Batches and ports: the unit of data movement.
//
// Operators receive and emit batches (contiguous arrays of records) through ports; a port is
// one virtual call per batch, never per record. A PortBase is the type-erased side used by the
// scheduler and the channels; Input<T> is the typed side operators implement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "gyre/core/event.h"

namespace gyre {

// What one record of type T stands for in the metrics: by default one record of sizeof(T) bytes.
// A type that packs many logical records into one (a block of vertex values) specializes it, so
// that operator record counts and exchanged bytes count what it holds:
//   template <> struct RecordExtent<MyBlock> {
//     static constexpr bool kPacked = true;
//     static std::uint64_t records(const MyBlock&);  // logical records in it
//     static std::uint64_t bytes(const MyBlock&);    // bytes of them, as held in memory
//   };
template <class T>
struct RecordExtent {
  static constexpr bool kPacked = false;
};

}  // namespace gyre

namespace gyre::detail {

// Logical records in `r` (see RecordExtent): r.size() unless T packs several.
template <class T>
std::uint64_t logical_records(std::span<const T> r) {
  if constexpr (RecordExtent<T>::kPacked) {
    std::uint64_t n = 0;
    for (const T& x : r) n += RecordExtent<T>::records(x);
    return n;
  } else {
    return r.size();
  }
}
template <class T>
std::uint64_t logical_records(const std::vector<T>& r) {
  return logical_records(std::span<const T>(r));
}
template <class T>
std::uint64_t logical_records_of(const T& r) {
  if constexpr (RecordExtent<T>::kPacked) return RecordExtent<T>::records(r);
  else return 1;
}

// Bytes of the logical records in `r`, as held in memory.
template <class T>
std::uint64_t logical_bytes(std::span<const T> r) {
  if constexpr (RecordExtent<T>::kPacked) {
    std::uint64_t n = 0;
    for (const T& x : r) n += RecordExtent<T>::bytes(x);
    return n;
  } else {
    return r.size() * sizeof(T);
  }
}

class BatchBase {
 public:
  virtual ~BatchBase() = default;
  virtual std::size_t size() const = 0;
  // The bytes of its logical records (see RecordExtent).
  virtual std::uint64_t bytes() const = 0;
};

template <class T>
class Batch final : public BatchBase {
 public:
  Batch() = default;
  explicit Batch(std::vector<T> d) : data(std::move(d)) {}
  std::size_t size() const override { return data.size(); }
  std::uint64_t bytes() const override { return logical_bytes(std::span<const T>(data)); }
  std::vector<T> data;
};

// Type-erased input port.
class PortBase {
 public:
  virtual ~PortBase() = default;
  virtual void push_batch(const BatchBase& batch) = 0;
  // A control event, aligned over every channel of this input by the runtime (event.h):
  // kEnd: no more batches will come. kSuperstepEnd (inside an iteration): every producer
  // finished the current superstep (or termination-detection round); operators in the loop
  // finish the superstep and pass it on, operators outside any loop never see it.
  // kWatermark: the minimum over the input's channels advanced. kBarrier: every channel of the
  // operator delivered this checkpoint barrier.
  virtual void on_event(const Event& event) = 0;
};

// Typed input port.
template <class T>
class Input : public PortBase {
 public:
  virtual void push(std::span<const T> records) = 0;
  void push_batch(const BatchBase& batch) final {
    const auto& b = static_cast<const Batch<T>&>(batch);
    push(std::span<const T>(b.data));
  }
};

// Fans a stream out to several downstream ports (an operator with several consumers).
template <class T>
class Tee final : public Input<T> {
 public:
  explicit Tee(std::vector<Input<T>*> outs) : outs_(std::move(outs)) {}
  void push(std::span<const T> records) override {
    for (auto* o : outs_) o->push(records);
  }
  void on_event(const Event& event) override {
    for (auto* o : outs_) o->on_event(event);
  }

 private:
  std::vector<Input<T>*> outs_;
};

}  // namespace gyre::detail

namespace gyre {

// Handed to flat_map / co_group functions: call it once per output record. Output goes
// downstream in batches as it fills.
template <class U>
class Emit {
 public:
  Emit(std::vector<U>* buf, detail::Input<U>* out, std::size_t limit)
      : buf_(buf), out_(out), limit_(limit) {}
  void operator()(const U& v) { emplace(v); }
  void operator()(U&& v) { emplace(std::move(v)); }

  // Records emitted so far.
  std::size_t emitted() const { return emitted_; }
  // Logical records emitted so far (see RecordExtent; the metrics count these).
  std::uint64_t emitted_records() const {
    if constexpr (RecordExtent<U>::kPacked) return logical_;
    else return emitted_;
  }

  // Pushes what is buffered downstream (gyre calls this; user code need not).
  void flush() {
    if (!buf_->empty()) {
      out_->push(std::span<const U>(*buf_));
      buf_->clear();
    }
  }

 private:
  template <class V>
  void emplace(V&& v) {
    if constexpr (RecordExtent<U>::kPacked) logical_ += RecordExtent<U>::records(v);
    buf_->push_back(std::forward<V>(v));
    ++emitted_;
    if (buf_->size() >= limit_) flush();
  }
  std::vector<U>* buf_;
  detail::Input<U>* out_;
  std::size_t limit_;
  std::size_t emitted_ = 0;
  std::uint64_t logical_ = 0;
};

}  // namespace gyre
