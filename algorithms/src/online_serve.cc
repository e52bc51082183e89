// Serving (online.h): a prediction stream joined with the newest model version through
// broadcast state. Models come on a broadcast input (from a list, or a watcher polling the model
// store); each partition applies a version only if it is newer than the one it has, so the
// versions in a partition's output never go back.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <thread>

#include "gyre/algorithms/online.h"
#include "gyre/core.h"
#include "gyre/io/model_store.h"

namespace gyre::algo {
namespace detail {

// What a serving partition needs of a model version.
struct ServedModel {
  std::uint64_t version = 0;
  bool bias = false;
  std::vector<double> weights;  // dimension (+1 bias)
};

struct RowBlock {
  std::uint64_t first = 0;  // the row number of its first row
  io::SparseRows rows;
};

}  // namespace detail
}  // namespace gyre::algo

namespace gyre {
template <>
struct Codec<algo::detail::ServedModel> {
  using M = algo::detail::ServedModel;
  static void encode(const M& m, std::string& out) {
    Codec<std::uint64_t>::encode(m.version, out);
    Codec<std::uint8_t>::encode(m.bias ? 1 : 0, out);
    Codec<std::vector<double>>::encode(m.weights, out);
  }
  static const char* decode(const char* p, const char* end, M& m) {
    p = Codec<std::uint64_t>::decode(p, end, m.version);
    std::uint8_t b = 0;
    p = Codec<std::uint8_t>::decode(p, end, b);
    m.bias = b != 0;
    return Codec<std::vector<double>>::decode(p, end, m.weights);
  }
};
template <>
struct Codec<algo::detail::RowBlock> {
  using M = algo::detail::RowBlock;
  static void encode(const M& m, std::string& out) {
    Codec<std::uint64_t>::encode(m.first, out);
    Codec<std::vector<double>>::encode(m.rows.labels, out);
    Codec<std::vector<std::uint64_t>>::encode(m.rows.offsets, out);
    Codec<std::vector<std::uint32_t>>::encode(m.rows.indices, out);
    Codec<std::vector<double>>::encode(m.rows.values, out);
  }
  static const char* decode(const char* p, const char* end, M& m) {
    p = Codec<std::uint64_t>::decode(p, end, m.first);
    p = Codec<std::vector<double>>::decode(p, end, m.rows.labels);
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, m.rows.offsets);
    p = Codec<std::vector<std::uint32_t>>::decode(p, end, m.rows.indices);
    return Codec<std::vector<double>>::decode(p, end, m.rows.values);
  }
};
}  // namespace gyre

namespace gyre::algo {

using detail::RowBlock;
using detail::ServedModel;

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ServedModel served(const io::ModelFile& f) { return ServedModel{f.version, f.bias, f.weights}; }

// Partition p of P emits blocks p, p + P, ..., waiting delay_us before each.
class RowSource final : public Source<RowBlock> {
 public:
  RowSource(std::shared_ptr<const std::vector<io::SparseRows>> b, std::int64_t delay_us)
      : blocks_(std::move(b)), delay_us_(delay_us) {}
  void open(OperatorContext& ctx) override {
    next_ = static_cast<std::size_t>(ctx.partition());
    step_ = static_cast<std::size_t>(ctx.parallelism());
    first_.resize(blocks_->size() + 1, 0);
    for (std::size_t i = 0; i < blocks_->size(); ++i) first_[i + 1] = first_[i] + (*blocks_)[i].rows();
  }
  SourceStatus produce(SourceOutput<RowBlock>& out) override {
    if (next_ >= blocks_->size()) return SourceStatus::kDone;
    if (delay_us_ > 0) {
      const std::int64_t now = now_us();
      if (due_ == 0) due_ = now;
      if (now < due_) return SourceStatus::kIdle;
      due_ += delay_us_;
    }
    out.emit(RowBlock{first_[next_], (*blocks_)[next_]});
    next_ += step_;
    return SourceStatus::kMore;
  }

 private:
  std::shared_ptr<const std::vector<io::SparseRows>> blocks_;
  std::int64_t delay_us_;
  std::vector<std::uint64_t> first_;
  std::size_t next_ = 0, step_ = 1;
  std::int64_t due_ = 0;
};

// Model versions: from a list (one per call), or by polling the store.
class ModelSource final : public Source<ServedModel> {
 public:
  ModelSource(std::shared_ptr<const std::vector<io::ModelFile>> models, ServeOptions o)
      : models_(std::move(models)), o_(std::move(o)) {}
  SourceStatus produce(SourceOutput<ServedModel>& out) override {
    if (models_) {
      if (next_ >= models_->size()) return SourceStatus::kDone;
      out.emit(served((*models_)[next_++]));
      return SourceStatus::kMore;
    }
    const std::int64_t now = now_us();
    if (now < next_poll_) return SourceStatus::kIdle;
    next_poll_ = now + o_.poll_ms * 1000;
    for (const auto& v : io::list_versions(o_.model_dir)) {
      if (v.version <= seen_) continue;
      out.emit(served(io::read_model(v.path)));
      seen_ = v.version;
    }
    if (o_.stop_after_version == 0 || seen_ >= o_.stop_after_version) return SourceStatus::kDone;
    return SourceStatus::kIdle;
  }

 private:
  std::shared_ptr<const std::vector<io::ModelFile>> models_;
  ServeOptions o_;
  std::size_t next_ = 0;
  std::uint64_t seen_ = 0;
  std::int64_t next_poll_ = 0;
};

// Rows on input 1, model versions (broadcast) on input 2; the newest version is this
// partition's broadcast state.
class Server final : public TwoInputOperator<RowBlock, ServedModel, Scored> {
 public:
  void open(OperatorContext& ctx) override { part_ = ctx.partition(); }
  void process1(std::span<const RowBlock> in, Output<Scored>& out) override {
    for (const RowBlock& b : in) {
      if (model_.version == 0) waiting_.push_back(b);
      else score(b, out);
    }
  }
  void process2(std::span<const ServedModel> in, Output<Scored>& out) override {
    for (const ServedModel& m : in)
      if (m.version > model_.version) model_ = m;  // never back to an older version
    if (model_.version > 0 && !waiting_.empty()) {
      for (const RowBlock& b : waiting_) score(b, out);
      waiting_.clear();
    }
  }
  void on_end(Output<Scored>&) override {
    if (!waiting_.empty()) throw Error("serving: the model stream ended before any model version arrived");
  }

 private:
  void score(const RowBlock& b, Output<Scored>& out) {
    const std::int64_t at = now_us();
    const std::size_t dim = model_.weights.size() - (model_.bias ? 1 : 0);
    const double bias = model_.bias ? model_.weights.back() : 0.0;
    const io::SparseRows& r = b.rows;
    for (std::uint64_t k = 0; k < r.rows(); ++k) {
      double m = bias;
      for (std::uint64_t e = r.offsets[k]; e < r.offsets[k + 1]; ++e)
        if (r.indices[e] < dim) m += model_.weights[r.indices[e]] * r.values[e];
      out.emit(Scored{b.first + k, 1.0 / (1.0 + std::exp(-m)), model_.version, part_, at});
    }
  }

  int part_ = 0;
  ServedModel model_;
  std::vector<RowBlock> waiting_;
};

}  // namespace

std::vector<Scored> serve(Environment& env, std::shared_ptr<const std::vector<io::SparseRows>> blocks,
                          std::shared_ptr<const std::vector<io::ModelFile>> models, const ServeOptions& o) {
  const int par = o.parallelism > 0 ? o.parallelism : env.default_parallelism();
  auto rows = env.source("rows to score", RowSource(blocks, o.rows_delay_us), false);
  rows.parallelism(par);
  auto versions = env.source("model versions", ModelSource(models, o), false);
  versions.parallelism(1);
  auto scored = rows.forward().connect(versions.broadcast()).process("serve newest model", Server{});
  auto got = scored.collect(1);
  env.run();
  return got.values();
}

}  // namespace gyre::algo
