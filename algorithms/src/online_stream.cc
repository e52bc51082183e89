// The online training job (online.h): a LIBSVM stream into a streaming feedback loop of
// data-parallel learners that merge their model deltas over the feedback edge, and a publisher
// (parallelism 1) that keeps the merged model and publishes versions to the model store.
//
//   source (file chunks per partition | stdin on partition 0, rebalanced)
//     -> iterate(stream) head -> trainer (one replica per partition) --deltas, broadcast--> head
//                                       \--deltas + progressive predictions, gather--> publisher
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

#include "gyre/algorithms/online.h"
#include "gyre/core.h"
#include "gyre/io/libsvm.h"
#include "gyre/io/model_store.h"
#include "gyre/iterations/iterate.h"

namespace gyre::algo {
namespace detail {

enum class MsgKind : std::uint8_t { kRows, kDelta, kFinal };

// A record of the loop: a block of rows, or a replica's delta (with the progressive predictions
// of the examples behind it). Blocks, not single rows: one record per ~1000 examples.
struct OnlinePayload {
  io::SparseRows rows;
  ModelDelta delta;
  std::vector<float> pred;   // (p, y) pairs of the examples behind a delta
};

// The payload is shared, immutable once sent: a record handed to several channels (the
// broadcast of a delta, its gather to the publisher) costs a reference, not a copy of a block
// or a delta of thousands of coordinates. Across ranks the codec sends the payload itself.
struct OnlineMsg {
  MsgKind kind = MsgKind::kRows;
  std::int32_t origin = 0;   // the partition that sent a delta
  std::uint64_t base = 0;    // the batch version the sender's replica descends from
  std::shared_ptr<const OnlinePayload> body;
  // A record stands for a block of ~1000 rows or a delta of thousands of coordinates, but the
  // engine sizes batches (and so the bounded queues) by sizeof: padded so that a batch holds a
  // few records, not ~800 (which let the queues hold the whole stream's blocks: peak RSS grew
  // with the input, 260 MB at 4M rows).
  char pad[6000] = {};

  const io::SparseRows& rows() const { return body->rows; }
  const ModelDelta& delta() const { return body->delta; }
  const std::vector<float>& pred() const { return body->pred; }
};

}  // namespace detail
}  // namespace gyre::algo

namespace gyre {
template <>
struct Codec<io::SparseRows> {
  static void encode(const io::SparseRows& r, std::string& out) {
    Codec<std::vector<double>>::encode(r.labels, out);
    Codec<std::vector<std::uint64_t>>::encode(r.offsets, out);
    Codec<std::vector<std::uint32_t>>::encode(r.indices, out);
    Codec<std::vector<double>>::encode(r.values, out);
    Codec<std::uint64_t>::encode(r.dimension, out);
  }
  static const char* decode(const char* p, const char* end, io::SparseRows& r) {
    p = Codec<std::vector<double>>::decode(p, end, r.labels);
    p = Codec<std::vector<std::uint64_t>>::decode(p, end, r.offsets);
    p = Codec<std::vector<std::uint32_t>>::decode(p, end, r.indices);
    p = Codec<std::vector<double>>::decode(p, end, r.values);
    return Codec<std::uint64_t>::decode(p, end, r.dimension);
  }
};
template <>
struct Codec<algo::detail::OnlineMsg> {
  using M = algo::detail::OnlineMsg;
  static void encode(const M& m, std::string& out) {
    Codec<std::uint8_t>::encode(static_cast<std::uint8_t>(m.kind), out);
    Codec<std::int32_t>::encode(m.origin, out);
    Codec<std::uint64_t>::encode(m.base, out);
    static const algo::detail::OnlinePayload empty;
    const algo::detail::OnlinePayload& b = m.body ? *m.body : empty;
    Codec<io::SparseRows>::encode(b.rows, out);
    Codec<std::vector<std::uint32_t>>::encode(b.delta.coord, out);
    Codec<std::vector<double>>::encode(b.delta.d0, out);
    Codec<std::vector<double>>::encode(b.delta.d1, out);
    Codec<std::uint64_t>::encode(b.delta.examples, out);
    Codec<std::vector<float>>::encode(b.pred, out);
  }
  static const char* decode(const char* p, const char* end, M& m) {
    std::uint8_t k = 0;
    p = Codec<std::uint8_t>::decode(p, end, k);
    m.kind = static_cast<algo::detail::MsgKind>(k);
    p = Codec<std::int32_t>::decode(p, end, m.origin);
    p = Codec<std::uint64_t>::decode(p, end, m.base);
    auto b = std::make_shared<algo::detail::OnlinePayload>();
    p = Codec<io::SparseRows>::decode(p, end, b->rows);
    p = Codec<std::vector<std::uint32_t>>::decode(p, end, b->delta.coord);
    p = Codec<std::vector<double>>::decode(p, end, b->delta.d0);
    p = Codec<std::vector<double>>::decode(p, end, b->delta.d1);
    p = Codec<std::uint64_t>::decode(p, end, b->delta.examples);
    p = Codec<std::vector<float>>::decode(p, end, b->pred);
    m.body = std::move(b);
    return p;
  }
};
}  // namespace gyre

namespace gyre::algo {

using detail::MsgKind;
using detail::OnlineMsg;

// ---------------------------------------------------------------- model files

io::ModelFile to_model_file(const OnlineLogreg& m) {
  const OnlineOptions& o = m.options();
  io::ModelFile f;
  f.kind = "logreg";
  f.loss = "logistic";
  f.algorithm = to_string(o.algorithm);
  f.l2 = o.l2;
  f.bias = o.bias > 0;
  f.hash_bits = o.hash_bits;
  f.dimension = m.dimension();
  f.weights = m.weights();
  for (auto& [name, v] : m.state()) f.state[name] = std::move(v);
  if (o.algorithm == OnlineAlgorithm::kFtrl) {
    f.params = {{"alpha", o.alpha}, {"beta", o.beta}, {"l1", o.l1}, {"l2", o.l2}};
  } else {
    f.params = {{"learning_rate", o.learning_rate}, {"initial_g2", o.initial_g2}};
  }
  f.params["examples"] = static_cast<double>(m.examples());
  return f;
}

void check_warm_start(const io::ModelFile& f, const OnlineOptions& o, const std::string& path,
                      std::uint64_t dimension) {
  auto refuse = [&](const std::string& what) {
    throw Error(path + ": cannot warm-start online logistic regression from this model: " + what);
  };
  if (f.kind != "logreg") refuse("it is a '" + f.kind + "' model, not 'logreg'");
  if (f.loss != "logistic") refuse("its loss is '" + f.loss + "', not 'logistic'");
  if (f.hash_bits != o.hash_bits)
    refuse("it hashes features into " + std::to_string(f.hash_bits) + " bits, this run into " +
           std::to_string(o.hash_bits) + " (--hash-bits)");
  if (dimension > 0 && f.dimension != dimension)
    refuse("its dimension is " + std::to_string(f.dimension) + ", this run's is " + std::to_string(dimension));
  if (f.bias != (o.bias > 0)) refuse(std::string("it ") + (f.bias ? "has" : "has no") + " bias feature, this run " +
                                     (o.bias > 0 ? "has one" : "has none"));
  const std::size_t want = f.dimension + (f.bias ? 1 : 0);
  if (f.weights.size() != want)
    refuse(std::to_string(f.weights.size()) + " weights for dimension " + std::to_string(f.dimension));
}

OnlineLogreg learner_from(const io::ModelFile& f, OnlineOptions o) {
  // The model's own regularisation and rates, unless they are another algorithm's.
  if (f.algorithm == to_string(o.algorithm)) {
    auto get = [&](const char* k, double& v) {
      if (auto it = f.params.find(k); it != f.params.end()) v = it->second;
    };
    get("alpha", o.alpha), get("beta", o.beta), get("l1", o.l1), get("l2", o.l2);
    get("learning_rate", o.learning_rate), get("initial_g2", o.initial_g2);
  }
  OnlineLogreg m(o, f.dimension);
  std::vector<std::pair<std::string, std::vector<double>>> state;
  if (f.algorithm == to_string(o.algorithm))
    for (const auto& [k, v] : f.state) state.emplace_back(k, v);
  std::uint64_t examples = 0;
  if (auto it = f.params.find("examples"); it != f.params.end()) examples = static_cast<std::uint64_t>(it->second);
  m.warm_start(f.dimension, f.weights, state, examples);
  return m;
}

namespace {

// Parameter mixing: every replica's delta counts 1/P.
double mix_of(int parallelism) { return 1.0 / static_cast<double>(parallelism); }

bool is_online(const io::ModelFile& f) { return f.algorithm == "ftrl" || f.algorithm == "adaptive"; }

// ---------------------------------------------------------------- the source

// File: partition p of P parses its run of the file's chunks (io::plan_chunks), block by block.
// "-": partition 0 reads standard input as it comes (poll: idle when nothing is there); the
// others end at once.
class LibsvmStream final : public Source<OnlineMsg> {
 public:
  LibsvmStream(std::string path, int hash_bits, std::size_t block_rows,
               std::shared_ptr<const std::vector<io::SparseRows>> blocks)
      : path_(std::move(path)), hash_bits_(hash_bits), block_rows_(block_rows), blocks_(std::move(blocks)) {}

  void open(OperatorContext& ctx) override {
    part_ = ctx.partition();
    parts_ = ctx.parallelism();
    if (blocks_) {
      next_block_ = static_cast<std::size_t>(part_);
      return;
    }
    if (path_ == "-") return;
    plan_ = io::plan_file(path_);
    chunk_ = plan_.first_of(part_, parts_);
    chunk_end_ = plan_.first_of(part_ + 1, parts_);
  }

  SourceStatus produce(SourceOutput<OnlineMsg>& out) override {
    if (blocks_) {
      if (next_block_ >= blocks_->size()) return SourceStatus::kDone;
      auto body = std::make_shared<detail::OnlinePayload>();
      body->rows = (*blocks_)[next_block_];
      OnlineMsg m;
      m.body = std::move(body);
      out.emit(std::move(m));
      next_block_ += static_cast<std::size_t>(parts_);
      return SourceStatus::kMore;
    }
    if (path_ == "-") return produce_stdin(out);
    // A chunk's text is read at once and parsed a block at a time straight into the record
    // (no parse of the whole chunk and copy of its blocks).
    if (text_pos_ >= text_.size()) {
      if (chunk_ >= chunk_end_) return SourceStatus::kDone;
      io::read_text_range(path_, plan_.begin(chunk_), plan_.end(chunk_), text_);
      text_pos_ = 0;
      ++chunk_;
      if (text_.empty()) return SourceStatus::kMore;
    }
    auto body = std::make_shared<detail::OnlinePayload>();
    io::SparseRows& b = body->rows;
    b.labels.reserve(block_rows_);
    b.offsets.reserve(block_rows_ + 1);
    b.indices.reserve(block_rows_ * 16);
    b.values.reserve(block_rows_ * 16);
    std::string err;
    while (text_pos_ < text_.size() && b.rows() < block_rows_) {
      std::size_t nl = text_.find('\n', text_pos_);
      if (nl == std::string::npos) nl = text_.size();
      if (!io::parse_libsvm_line(std::string_view(text_).substr(text_pos_, nl - text_pos_), hash_bits_, b, &err)) {
        // The error with its line number: read_range of the chunk reports it.
        io::ReadOptions ro;
        ro.hash_bits = hash_bits_;
        io::read_range(path_, plan_.begin(chunk_ - 1), plan_.end(chunk_ - 1), ro);
        throw Error(path_ + ": " + err);
      }
      text_pos_ = nl + 1;
    }
    if (hash_bits_ > 0) b.dimension = std::uint64_t{1} << hash_bits_;
    if (b.rows() > 0) {
      OnlineMsg m;
      m.body = std::move(body);
      out.emit(std::move(m));
    }
    return SourceStatus::kMore;
  }

 private:
  SourceStatus produce_stdin(SourceOutput<OnlineMsg>& out) {
    if (part_ != 0 || eof_) return SourceStatus::kDone;
    pollfd pfd{0, POLLIN, 0};
    bool got = false;
    while (::poll(&pfd, 1, got ? 0 : 1) > 0) {
      char buf[1 << 16];
      const ssize_t n = ::read(0, buf, sizeof(buf));
      if (n <= 0) {
        eof_ = true;
        break;
      }
      got = true;
      buf_.append(buf, static_cast<std::size_t>(n));
      if (buf_.size() > (1u << 20)) break;
    }
    // Whole lines into a block.
    std::size_t start = 0;
    for (;;) {
      const std::size_t nl = buf_.find('\n', start);
      if (nl == std::string::npos) break;
      parse_line(std::string_view(buf_).substr(start, nl - start));
      start = nl + 1;
      if (block_.rows() >= block_rows_) flush_block(out);
    }
    buf_.erase(0, start);
    if (eof_ && !buf_.empty()) {
      parse_line(buf_);
      buf_.clear();
    }
    if (block_.rows() > 0) flush_block(out);
    if (eof_) return SourceStatus::kDone;
    return got ? SourceStatus::kMore : SourceStatus::kIdle;
  }
  void parse_line(std::string_view line) {
    ++line_;
    std::string err;
    if (!io::parse_libsvm_line(line, hash_bits_, block_, &err))
      throw Error("<stdin>:" + std::to_string(line_) + ": " + err);
  }
  void flush_block(SourceOutput<OnlineMsg>& out) {
    auto body = std::make_shared<detail::OnlinePayload>();
    body->rows = std::move(block_);
    block_.clear();
    OnlineMsg m;
    m.body = std::move(body);
    out.emit(std::move(m));
  }

  std::string path_;
  int hash_bits_;
  std::size_t block_rows_;
  std::shared_ptr<const std::vector<io::SparseRows>> blocks_;
  int part_ = 0, parts_ = 1;
  std::size_t next_block_ = 0;
  io::ChunkPlan plan_;
  std::size_t chunk_ = 0, chunk_end_ = 0;
  std::string text_;
  std::size_t text_pos_ = 0;
  // stdin
  std::string buf_;
  io::SparseRows block_;
  std::uint64_t line_ = 0;
  bool eof_ = false;
};

// ---------------------------------------------------------------- the trainer

struct Shared {
  OnlineStreamOptions o;
  std::shared_ptr<const io::ModelFile> warm;  // null: cold start
};

// Reads a newer batch version from the store, if there is one above `known`.
std::shared_ptr<const io::ModelFile> newer_batch(const std::string& dir, std::uint64_t& known,
                                                 const std::set<std::uint64_t>* own) {
  if (dir.empty()) return nullptr;
  const std::uint64_t v = io::latest_version(dir);
  if (v <= known) return nullptr;
  known = v;
  if (own != nullptr && own->count(v) > 0) return nullptr;
  auto f = std::make_shared<io::ModelFile>(io::read_model(io::version_path(dir, v)));
  if (is_online(*f)) return nullptr;
  return f;
}

class Trainer final : public OneInputOperator<OnlineMsg, OnlineMsg> {
 public:
  explicit Trainer(std::shared_ptr<const Shared> s) : s_(std::move(s)) {}

  void open(OperatorContext& ctx) override {
    part_ = ctx.partition();
    mix_ = mix_of(ctx.parallelism());
    model_ = s_->warm ? learner_from(*s_->warm, s_->o.learner) : OnlineLogreg(s_->o.learner);
    model_.track_deltas(true);
    known_ = s_->o.model_dir.empty() ? 0 : io::latest_version(s_->o.model_dir);
  }

  void process(std::span<const OnlineMsg> in, Output<OnlineMsg>& out) override {
    for (const OnlineMsg& m : in) {
      if (m.kind == MsgKind::kDelta) {
        if (m.origin != part_ && m.base == base_) model_.apply_delta(m.delta(), mix_);
        continue;
      }
      const io::SparseRows& r = m.rows();
      for (std::uint64_t k = 0; k < r.rows(); ++k) {
        const std::size_t lo = r.offsets[k], hi = r.offsets[k + 1];
        SparseRowView row{r.labels[k], std::span<const std::uint32_t>(r.indices.data() + lo, hi - lo),
                          std::span<const double>(r.values.data() + lo, hi - lo)};
        if (k + 1 < r.rows())
          model_.prefetch({0, std::span<const std::uint32_t>(r.indices.data() + hi, r.offsets[k + 2] - hi), {}});
        const double p = model_.learn(row);
        pred_.push_back(static_cast<float>(p));
        pred_.push_back(r.labels[k] > 0 ? 1.0f : 0.0f);
        if (++since_ >= s_->o.merge_every) send(out, MsgKind::kDelta);
      }
    }
  }

  void on_end(Output<OnlineMsg>& out) override { send(out, MsgKind::kFinal); }

 private:
  void send(Output<OnlineMsg>& out, MsgKind kind) {
    OnlineMsg d;
    d.kind = kind;
    d.origin = part_;
    d.base = base_;
    // This replica keeps 1/P of its own delta, as every other replica adds 1/P of it.
    auto body = std::make_shared<detail::OnlinePayload>();
    body->delta = model_.take_delta(mix_);
    body->delta.examples = since_;
    body->pred = std::move(pred_);
    d.body = std::move(body);
    pred_.clear();
    since_ = 0;
    out.emit(std::move(d));
    // A batch retrain published a newer version: continue from it (the deltas learned since
    // this replica's last send on the old model are dropped with it).
    if (kind == MsgKind::kDelta && s_->o.follow_store) {
      if (auto f = newer_batch(s_->o.model_dir, known_, nullptr)) {
        model_ = learner_from(*f, s_->o.learner);
        model_.track_deltas(true);
        base_ = f->version;
      }
    }
  }

  std::shared_ptr<const Shared> s_;
  int part_ = 0;
  OnlineLogreg model_;
  std::uint64_t since_ = 0;
  std::vector<float> pred_;
  double mix_ = 1.0;         // 1/P
  std::uint64_t base_ = 0;   // the batch version this replica descends from (0: the start model)
  std::uint64_t known_ = 0;  // the newest store version looked at
};

}  // namespace

// ---------------------------------------------------------------- the publisher

struct OnlineStreamJob::Impl {
  std::shared_ptr<const Shared> s;
  std::mutex mu;
  OnlineLogreg merged;
  std::uint64_t base = 0;       // the batch version `merged` descends from
  double mix = 1.0;             // 1/P
  std::uint64_t last_version = 0;  // the last version published (or the warm start's)
  std::uint64_t known = 0;      // the newest store version looked at
  std::set<std::uint64_t> own;  // versions this job published
  std::uint64_t examples = 0, last_examples = 0;
  // Progressive predictions (binned: see ScoreHistogram): since the last version, and all.
  ScoreHistogram win, all;
  std::chrono::steady_clock::time_point last_publish = std::chrono::steady_clock::now();
  bool finished = false;
  bool root = false;
  OnlineStreamResult result;

  void on_delta(const OnlineMsg& m) {
    std::lock_guard<std::mutex> lock(mu);
    if (m.base != base) return;  // learned on a model a batch version replaced
    merged.apply_delta(m.delta(), mix);
    examples += m.delta().examples;
    const std::vector<float>& pred = m.pred();
    for (std::size_t i = 0; i + 1 < pred.size(); i += 2) win.add(pred[i], pred[i + 1] > 0);
    const auto& o = s->o;
    const bool by_count = o.publish_every > 0 && examples - last_examples >= o.publish_every;
    const bool by_time = o.publish_ms > 0 && std::chrono::steady_clock::now() - last_publish >=
                                                 std::chrono::milliseconds(o.publish_ms);
    if (by_count || by_time) publish();
  }

  void publish() {
    const auto& o = s->o;
    // A batch version appeared: the next versions descend from it.
    if (o.follow_store) {
      if (auto f = newer_batch(o.model_dir, known, &own)) {
        merged = learner_from(*f, o.learner);
        base = f->version;
        last_version = f->version;
        all.add(win);
        win.clear();
        last_examples = examples;
        return;
      }
    }
    io::ModelFile f = to_model_file(merged);
    f.parent_version = last_version;
    f.data_range = (o.input.empty() ? std::string("stream") : o.input) + ": examples " +
                   std::to_string(last_examples) + "-" + std::to_string(examples);
    const double a = win.auc(), l = win.log_loss();
    f.metrics = {{"examples", static_cast<double>(examples - last_examples)},
                 {"examples_total", static_cast<double>(examples)},
                 {"progressive_auc", a},
                 {"progressive_log_loss", l}};
    PublishedVersion pv;
    pv.parent_version = last_version;
    pv.examples_from = last_examples;
    pv.examples_to = examples;
    pv.auc = a;
    pv.log_loss = l;
    if (!o.model_dir.empty()) {
      pv.version = io::publish(o.model_dir, f);
      pv.path = io::version_path(o.model_dir, pv.version);
      own.insert(pv.version);
      known = std::max(known, pv.version);
    } else {
      pv.version = last_version + 1;
      f.version = pv.version;
    }
    last_version = pv.version;
    result.versions.push_back(pv);
    result.model = std::move(f);
    result.has_model = true;
    last_examples = examples;
    all.add(win);
    win.clear();
    last_publish = std::chrono::steady_clock::now();
  }
};

const OnlineStreamResult& OnlineStreamJob::finish() {
  Impl& j = *impl;
  std::lock_guard<std::mutex> lock(j.mu);
  if (!j.finished) {
    j.finished = true;
    // The publisher (parallelism 1) runs on rank 0: only there is anything merged or published.
    if (j.root && (j.examples > j.last_examples || !j.result.has_model)) j.publish();
    j.result.examples = j.examples;
    ScoreHistogram total = j.all;
    total.add(j.win);  // (empty unless nothing was published at the end: not rank 0)
    j.result.progressive_auc = total.auc();
    j.result.progressive_log_loss = total.log_loss();
  }
  return j.result;
}

OnlineStreamJob add_online_training(Environment& env, const OnlineStreamOptions& o,
                                    std::shared_ptr<const std::vector<io::SparseRows>> blocks) {
  auto shared = std::make_shared<Shared>();
  shared->o = o;
  if (!o.warm_start.empty()) {
    auto f = std::make_shared<io::ModelFile>(io::read_model(o.warm_start));
    check_warm_start(*f, o.learner, o.warm_start);
    shared->warm = f;
  }
  OnlineStreamJob job;
  job.impl = std::make_shared<OnlineStreamJob::Impl>();
  auto& impl = *job.impl;
  impl.s = shared;
  impl.merged = shared->warm ? learner_from(*shared->warm, o.learner) : OnlineLogreg(o.learner);
  // The parent of the first version: the warm start's version if it is one of this store's
  // (a restart), else none (a model file from elsewhere, e.g. an offline model).
  impl.last_version = 0;
  if (shared->warm && !o.model_dir.empty()) {
    std::error_code ec;
    if (std::filesystem::equivalent(std::filesystem::path(o.warm_start).parent_path(), o.model_dir, ec))
      impl.last_version = shared->warm->version;
  }
  impl.known = o.model_dir.empty() ? 0 : io::latest_version(o.model_dir);

  const int par = o.parallelism > 0 ? o.parallelism : env.default_parallelism();
  impl.mix = mix_of(par);
  // Versions every N examples need the deltas at least that often: P replicas each send after
  // N / P of their own.
  if (o.publish_every > 0)
    shared->o.merge_every = std::min<std::uint64_t>(
        o.merge_every, std::max<std::uint64_t>(1, o.publish_every / static_cast<std::uint64_t>(par)));
  auto src = env.source("libsvm stream", LibsvmStream(o.input, o.learner.hash_bits, o.block_rows, blocks));
  src.parallelism(par);
  auto loop = gyre::iterate(o.input == "-" && !blocks ? src.rebalance() : src.forward(),
                            [par] {
                              IterationOptions io("online logreg");
                              io.parallelism = par;
                              return io;
                            }());
  auto trained = loop.head().process("online trainer", Trainer(shared));
  loop.close_with(trained.filter([](const OnlineMsg& m) { return m.kind == MsgKind::kDelta; }).broadcast());
  std::shared_ptr<OnlineStreamJob::Impl> handle = job.impl;
  trained.gather().for_each([handle](const OnlineMsg& m) { handle->on_delta(m); }, 1);
  impl.root = env.rank() == 0;
  return job;
}

}  // namespace gyre::algo
