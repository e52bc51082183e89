// The learners' supersteps as a bulk iteration (see ml.h and ml_internal.h).
//
// The loop's partial solution is one tick per partition; the training set's CSR chunks are the
// loop-invariant input, held by the rank that read them and shared out over the rank's
// partitions. Each superstep, every partition computes the partial vector the learner asked for,
// one per chunk it owns, into the chunk's slot of the loop's vector aggregate
// (LoopContext::sum_vector_slots, summed in chunk order). The learner itself (TRON, k-means) is
// straight-line code that calls reduce(); it runs on a thread of its own, one step at a time: it
// posts a request and waits, the superstep computes it, and the loop's convergence test (run on
// every rank after every superstep, with the aggregate) hands the sum back and waits until the
// learner posts the next request (the loop goes on) or returns. So the learner's logic runs
// between supersteps, and the loop and the learner never run at once: collectives the learner
// makes itself (Ranks::allgather) fall between the job's start-up and its end, when the job makes
// none on MPI_COMM_WORLD (its supersteps' allreduces use communicators of their own).
//
// The loop ends on every rank at once: a learner that returned or threw takes part in one more
// superstep, whose sum carries two counts past the learner's values (learners finished, learners
// failed). The loop ends when every rank's learner finished, or when any failed; a rank whose
// learner was still waiting then fails too ("on another rank"), so no rank waits for a
// superstep the others will not run. (A learner that fails on one rank only while the others
// are inside a collective of its own, an allgather, still leaves them waiting there, as any
// MPI program would.)
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gyre/iterations.h"
#include "ml_internal.h"

namespace gyre::ml::detail {
namespace {

// Thrown into the learner when the job ended before its sum came back.
struct JobEnded {};

// What the learner, the body's partitions and the convergence test share.
struct Steps {
  const Dataset* data = nullptr;
  std::size_t length = 0;  // the learner's values per slot; the slot has two more (see above)
  int ranks = 1;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t posted = 0;    // reduce() calls so far; superstep s computes the s-th
  std::uint64_t answered = 0;  // sums handed back
  std::size_t n = 0;           // the posted request
  const Reducer::Fill* fill = nullptr;
  bool started = false;   // the first superstep began on this rank
  bool finished = false;  // the learner returned (or threw)
  bool returned = false;  // ... normally
  bool ended = false;     // the job ended
  bool other_failed = false;  // the loop ended because a learner failed on some rank
  bool disagreed = false;     // ... because another rank's learner finished, not this one's
  std::vector<double> sum;
  std::exception_ptr error;
};

class BulkReducer final : public Reducer {
 public:
  explicit BulkReducer(Steps& s) : s_(s) {}
  const std::vector<double>& reduce(std::size_t n, const Fill& fill) override {
    if (n > s_.length)
      throw Error("vector sum of " + std::to_string(n) + " values; the loop's have " + std::to_string(s_.length));
    std::unique_lock lock(s_.mu);
    s_.n = n;
    s_.fill = &fill;
    ++s_.posted;
    ++reductions;
    s_.cv.notify_all();
    s_.cv.wait(lock, [&] { return s_.answered == s_.posted || s_.ended; });
    if (s_.answered != s_.posted) throw JobEnded{};
    out_.assign(s_.sum.begin(), s_.sum.begin() + static_cast<std::ptrdiff_t>(n));
    return out_;
  }

 private:
  Steps& s_;
  std::vector<double> out_;
};

// One partition of the body: at the end of superstep s, the s-th request on the chunks it owns
// (chunk i of the rank when i mod (the rank's partitions) is its index among them).
class Partials final : public OneInputOperator<std::uint32_t, VectorEntry> {
 public:
  explicit Partials(std::shared_ptr<Steps> s) : s_(std::move(s)) {}
  void open(OperatorContext& ctx) override {
    const int p = ctx.partition(), r = ctx.rank(), ranks = s_->ranks;
    // Partition p runs on rank p mod ranks (the plan's placement, so forward edges stay local).
    if (p % ranks != r)
      throw Error("learner loop: partition " + std::to_string(p) + " runs on rank " + std::to_string(r) +
                  ", not on rank " + std::to_string(p % ranks));
    index_ = static_cast<std::size_t>(p / ranks);
    count_ = static_cast<std::size_t>((ctx.parallelism() - r + ranks - 1) / ranks);
  }
  void process(std::span<const std::uint32_t>, Output<VectorEntry>&) override {}
  void on_superstep_end(Output<VectorEntry>& out) override {
    ++step_;
    std::size_t n = 0;
    const Reducer::Fill* fill = nullptr;
    {
      std::unique_lock lock(s_->mu);
      if (!s_->started) {
        s_->started = true;
        s_->cv.notify_all();
      }
      s_->cv.wait(lock, [&] { return s_->posted >= step_ || s_->finished || s_->ended; });
      if (s_->posted < step_) {
        // The learner finished (or failed): the rank says so once, in slot 0's two extra values.
        if (s_->finished && index_ == 0) {
          const VectorEntry flag{s_->length + (s_->error ? 1 : 0), 1.0};
          out.emit(std::span<const VectorEntry>(&flag, 1));
        }
        return;
      }
      n = s_->n;
      fill = s_->fill;
    }
    const Dataset& d = *s_->data;
    for (std::size_t i = index_; i < d.chunks.size(); i += count_) {
      buf_.assign(n, 0.0);
      (*fill)(i, buf_.data());
      const std::uint64_t base = (d.first_chunk + i) * (s_->length + 2);
      entries_.clear();
      for (std::size_t j = 0; j < n; ++j)
        if (buf_[j] != 0) entries_.push_back(VectorEntry{base + j, buf_[j]});  // x + 0 is x
      out.emit(std::span<const VectorEntry>(entries_));
    }
  }

 private:
  std::shared_ptr<Steps> s_;
  std::size_t index_ = 0, count_ = 1;
  std::uint64_t step_ = 0;
  std::vector<double> buf_;
  std::vector<VectorEntry> entries_;
};

bool own_runner() {
  const char* v = std::getenv("GYRE_ML_RUNNER");
  return v != nullptr && std::string(v) == "own";
}

}  // namespace

LearnerRun run_learner(const Dataset& d, const Ranks& ranks, int threads, std::size_t length, const std::string& name,
                const std::function<void(Reducer&)>& driver) {
  // Every head partition holds, zeroes and reports slots x length values each superstep: past
  // 2^18 (2 MB; hashed feature spaces), the own runner (one partial per local chunk) instead.
  // (a9a hashed to 2^20 features in 9 chunks took 63 s on the loop against 4.5 s on the own
  // runner: the loop's dense per-slot vectors are the cost; sparse slots are not done yet.)
  const std::size_t slots = std::max<std::size_t>(d.plan.chunks, d.chunk_rows.size());
  const std::size_t slot_values = slots * (std::max<std::size_t>(length, 1) + 2);
  if (own_runner() || (ranks.size > 1 && ranks.cluster.ranks() != ranks.size) || slot_values > (std::size_t{1} << 18)) {
    ChunkReducer red(d, ranks, threads);
    driver(red);
    return LearnerRun{red.reductions, 0};
  }
  auto s = std::make_shared<Steps>();
  s->data = &d;
  s->length = std::max<std::size_t>(length, 1);
  s->ranks = ranks.size;
  // Every rank must build the same plan: the fewest threads any rank has.
  int per_rank = arena_threads(threads);
  if (ranks.size > 1)
    for (const std::string& t : ranks.allgather(std::to_string(per_rank))) per_rank = std::min(per_rank, std::stoi(t));
  JobConfig cfg;
  cfg.slots = per_rank;
  cfg.parallelism = per_rank * ranks.size;
  Environment env = ranks.size > 1 ? Environment(cfg, ranks.cluster) : Environment(cfg);
  std::vector<std::uint32_t> ticks(static_cast<std::size_t>(cfg.parallelism), 0);
  iterate(env.from_collection(ticks), std::numeric_limits<int>::max(),
          [&](Stream<std::uint32_t> tick, LoopContext& loop) {
            auto entries = tick.process("partials", Partials(s));
            VectorAggregator sums =
                loop.sum_vector_slots("sums", s->length + 2, std::max<std::size_t>(slots, 1), entries);
            // After every superstep, on every rank (all see the same sum): the sum to the
            // learner; the loop goes on while it asks for another, and for one superstep more
            // once it finished, which tells the other ranks.
            loop.converge_when([s, sums] {
              std::unique_lock lock(s->mu);
              s->sum = sums.value();
              const double finished = s->sum[s->length], failed = s->sum[s->length + 1];
              if (failed > 0 || finished > 0) {
                // Some learner finished or failed in the superstep just done: the loop ends
                // everywhere. Learners still waiting for a sum fail (reduce sees `ended`).
                if (failed > 0) s->other_failed = true;
                else if (!s->finished) s->disagreed = true;
                return true;
              }
              if (s->finished) return false;  // failed before its first request: say so next
              s->answered = s->posted;
              s->cv.notify_all();
              s->cv.wait(lock, [&] { return s->posted > s->answered || s->finished; });
              return false;
            });
            return tick.map([](std::uint32_t t) { return t; });
          },
          IterationOptions(name))
      .collect();

  BulkReducer red(*s);
  std::thread learner([&] {
    try {
      // Not before the job runs on this rank: the learner may take part in collectives of
      // its own (an allgather of a chosen row, a test-set evaluation), which must not overlap
      // the job's start-up collectives.
      {
        std::unique_lock lock(s->mu);
        s->cv.wait(lock, [&] { return s->started || s->ended; });
        if (!s->started) throw JobEnded{};
      }
      driver(red);
      std::lock_guard lock(s->mu);
      s->returned = true;
    } catch (const JobEnded&) {
    } catch (...) {
      std::lock_guard lock(s->mu);
      s->error = std::current_exception();
    }
    std::lock_guard lock(s->mu);
    s->finished = true;
    s->cv.notify_all();
  });
  std::exception_ptr job_error;
  int supersteps = 0;
  try {
    const JobResult r = env.run();
    if (!r.loops.empty()) supersteps = r.loops.front().supersteps;
  } catch (...) {
    job_error = std::current_exception();
  }
  {
    std::lock_guard lock(s->mu);
    s->ended = true;
    s->cv.notify_all();
  }
  learner.join();
  if (s->error) std::rethrow_exception(s->error);
  if (job_error) std::rethrow_exception(job_error);
  if (s->other_failed) throw Error(name + ": the learner failed on another rank");
  if (s->disagreed) throw Error(name + ": the ranks' learners disagreed on when to stop");
  if (!s->returned) throw Error(name + ": the loop ended before the learner did");
  return LearnerRun{red.reductions, supersteps};
}

}  // namespace gyre::ml::detail
