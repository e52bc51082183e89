// Batches and ports: the unit of data movement.
//
// Operators receive and emit batches (contiguous arrays of records) through ports; a port is
// one virtual call per batch, never per record. A PortBase is the type-erased side used by the
// scheduler and the channels; Input<T> is the typed side operators implement.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace gyre::detail {

class BatchBase {
 public:
  virtual ~BatchBase() = default;
  virtual std::size_t size() const = 0;
};

template <class T>
class Batch final : public BatchBase {
 public:
  Batch() = default;
  explicit Batch(std::vector<T> d) : data(std::move(d)) {}
  std::size_t size() const override { return data.size(); }
  std::vector<T> data;
};

// Type-erased input port.
class PortBase {
 public:
  virtual ~PortBase() = default;
  virtual void push_batch(const BatchBase& batch) = 0;
  // End of this input: no more batches will come.
  virtual void end() = 0;
  // Inside an iteration: every producer finished the current superstep (or termination-detection
  // round) on this input. Operators in the loop finish the superstep and pass the event on;
  // operators outside any loop never see it.
  virtual void superstep_end() = 0;
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
  void end() override {
    for (auto* o : outs_) o->end();
  }
  void superstep_end() override {
    for (auto* o : outs_) o->superstep_end();
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
    buf_->push_back(std::forward<V>(v));
    ++emitted_;
    if (buf_->size() >= limit_) flush();
  }
  std::vector<U>* buf_;
  detail::Input<U>* out_;
  std::size_t limit_;
  std::size_t emitted_ = 0;
};

}  // namespace gyre
