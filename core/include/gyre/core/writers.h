// Exchange writers: the sending side of forward, hash, broadcast, rebalance and gather edges.
// They pack records into batches of about batch_bytes and hand full batches to channels; a
// partly filled batch goes out at end of input or when the runtime's buffer timeout fires.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <span>
#include <vector>

#include "gyre/core/hash.h"
#include "gyre/core/plan.h"

namespace gyre::detail {

template <class T>
std::size_t records_per_batch(std::size_t batch_bytes) {
  return std::max<std::size_t>(1, batch_bytes / sizeof(T));
}

// One buffer: forward and gather (one channel), rebalance (round robin per batch),
// broadcast (every batch to every channel, shared, not copied).
template <class T>
class SingleWriter final : public Input<T>, public WriterBase {
 public:
  SingleWriter(Partitioning kind, std::vector<ChannelOut*> channels, std::size_t batch_bytes)
      : kind_(kind), channels_(std::move(channels)), cap_(records_per_batch<T>(batch_bytes)) {}

  void push(std::span<const T> records) override {
    std::size_t i = 0;
    while (i < records.size()) {
      if (!cur_) start();
      const std::size_t take = std::min(records.size() - i, cap_ - cur_->data.size());
      cur_->data.insert(cur_->data.end(), records.begin() + static_cast<std::ptrdiff_t>(i),
                        records.begin() + static_cast<std::ptrdiff_t>(i + take));
      i += take;
      if (cur_->data.size() >= cap_) send();
    }
  }
  // Records buffered before an event go first: events stay in order with their channel's data.
  void on_event(const Event& event) override {
    if (cur_ && !cur_->data.empty()) send();
    for (auto* c : channels_) c->send_event(event);
  }
  PortBase* port() override { return static_cast<Input<T>*>(this); }
  bool pending(std::chrono::steady_clock::time_point& since) const override {
    if (!cur_ || cur_->data.empty()) return false;
    since = since_;
    return true;
  }
  void flush_partial() override {
    if (cur_ && !cur_->data.empty()) send();
  }
  const std::vector<ChannelOut*>& channels() const override { return channels_; }

 private:
  void start() {
    cur_ = std::make_shared<Batch<T>>();
    cur_->data.reserve(cap_);
    since_ = std::chrono::steady_clock::now();
  }
  void send() {
    std::shared_ptr<const BatchBase> b = std::move(cur_);
    cur_.reset();
    switch (kind_) {
      case Partitioning::kBroadcast:
        for (auto* c : channels_) c->send(b);
        break;
      case Partitioning::kRebalance:
        channels_[next_]->send(std::move(b));
        next_ = (next_ + 1) % channels_.size();
        break;
      default:
        channels_[0]->send(std::move(b));
    }
  }

  Partitioning kind_;
  std::vector<ChannelOut*> channels_;
  std::size_t cap_;
  std::shared_ptr<Batch<T>> cur_;
  std::chrono::steady_clock::time_point since_;
  std::size_t next_ = 0;
};

// Where a key goes: by default the high bits of its hash.
struct HashPartitioner {
  template <class K>
  static std::size_t of(const K& k, std::size_t n) {
    return hash_partition(hash_key(k), n);
  }
};

// Hash partitioning on a key: one buffer per destination.
template <class T, class KF, class Part = HashPartitioner>
class HashWriter final : public Input<T>, public WriterBase {
 public:
  HashWriter(KF key, std::vector<ChannelOut*> channels, std::size_t batch_bytes)
      : key_(std::move(key)),
        channels_(std::move(channels)),
        cap_(records_per_batch<T>(batch_bytes)),
        bufs_(channels_.size()) {}

  void push(std::span<const T> records) override {
    const std::size_t n = channels_.size();
    for (const T& r : records) {
      const std::size_t d = Part::of(key_(r), n);
      auto& b = bufs_[d];
      if (!b) start(d);
      b->data.push_back(r);
      if (b->data.size() >= cap_) send(d);
    }
  }
  void on_event(const Event& event) override {
    flush_partial();
    for (auto* c : channels_) c->send_event(event);
  }
  PortBase* port() override { return static_cast<Input<T>*>(this); }
  bool pending(std::chrono::steady_clock::time_point& since) const override {
    if (open_ == 0) return false;
    since = since_;
    return true;
  }
  void flush_partial() override {
    for (std::size_t d = 0; d < bufs_.size(); ++d)
      if (bufs_[d]) send(d);
  }
  const std::vector<ChannelOut*>& channels() const override { return channels_; }

 private:
  void start(std::size_t d) {
    bufs_[d] = std::make_shared<Batch<T>>();
    bufs_[d]->data.reserve(cap_);
    if (open_++ == 0) since_ = std::chrono::steady_clock::now();
  }
  void send(std::size_t d) {
    std::shared_ptr<const BatchBase> b = std::move(bufs_[d]);
    bufs_[d].reset();
    --open_;
    channels_[d]->send(std::move(b));
  }

  KF key_;
  std::vector<ChannelOut*> channels_;
  std::size_t cap_;
  std::vector<std::shared_ptr<Batch<T>>> bufs_;
  std::size_t open_ = 0;  // buffers holding records
  std::chrono::steady_clock::time_point since_;
};

template <class T>
WriterFactory single_writer_factory() {
  return [](Partitioning kind, std::vector<ChannelOut*> channels,
            std::size_t batch_bytes) -> std::unique_ptr<WriterBase> {
    return std::make_unique<SingleWriter<T>>(kind, std::move(channels), batch_bytes);
  };
}

template <class T, class KF, class Part = HashPartitioner>
WriterFactory hash_writer_factory(KF key) {
  return [key](Partitioning, std::vector<ChannelOut*> channels,
               std::size_t batch_bytes) -> std::unique_ptr<WriterBase> {
    return std::make_unique<HashWriter<T, KF, Part>>(key, std::move(channels), batch_bytes);
  };
}

}  // namespace gyre::detail
