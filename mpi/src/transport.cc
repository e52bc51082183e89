// The MPI transport: channels between subtasks on different ranks, and the ranks' agreement on
// plan, failure and outcome.
//
// Threading: producers encode batches on their own (oneTBB) threads and start the MPI_Isend
// there (MPI_THREAD_MULTIPLE); one communication thread per rank receives (Iprobe/Recv), tests
// sends for completion and runs the end-of-job barrier. (GYRE_MPI_SEND=thread makes producers
// hand their bytes to the communication thread instead; see bench/README.md for both.) When
// there is nothing to do the thread sleeps with a short back-off instead of spinning, so it
// never competes with the compute threads. Outside a job (plan check, build agreement, final
// outcome and metrics) the calling thread makes collective calls while the communication thread
// is stopped.
//
// Flow control: every remote channel may have at most `channel_capacity` batches sent but not yet
// consumed; the consumer's gate returns a credit message when it pops one. Memory per channel is
// bounded, and since every consumer always drains its gate, no cycle of full channels can form
// among the ranks.
//
// End of job: each rank, when its own subtasks have ended, joins a non-blocking barrier and keeps
// serving messages (credits, aborts) until every rank has joined.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

#include "gyre/core/error.h"
#include "mpi_util.h"

namespace gyre::mpi {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& local) {
  int size = 1;
  check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  const int n = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<std::size_t>(size));
  check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm), "MPI_Allgather");
  std::vector<int> displs(static_cast<std::size_t>(size), 0);
  for (std::size_t i = 1; i < counts.size(); ++i) displs[i] = displs[i - 1] + counts[i - 1];
  std::string all(static_cast<std::size_t>(displs.back() + counts.back()), '\0');
  check(MPI_Allgatherv(local.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, comm),
        "MPI_Allgatherv");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < counts.size(); ++i)
    out.push_back(all.substr(static_cast<std::size_t>(displs[i]), static_cast<std::size_t>(counts[i])));
  return out;
}

namespace {

constexpr int kTag = 0x6779;
enum Kind : std::uint32_t { kData = 1, kEvent = 2, kCredit = 3, kAbort = 4, kCancel = 5 };

// Superstep allreduces carry (op, value) pairs, padded to a fixed length per loop (at least
// kReduceSlots; Hooks::collective_values) so that a rank can match another's call without knowing
// what it carried (see MpiTransport::finish).
constexpr std::size_t kReduceSlots = 64;
struct ReducePair {
  double op;
  double value;
};

void reduce_pairs(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const ReducePair*>(in);
  auto* b = static_cast<ReducePair*>(inout);
  for (int i = 0; i < *len; ++i) {
    switch (static_cast<int>(b[i].op)) {
      case 1: b[i].value = std::min(a[i].value, b[i].value); break;
      case 2: b[i].value = std::max(a[i].value, b[i].value); break;
      default: b[i].value += a[i].value;
    }
  }
}

// The pair type and the reduction, made once per process (never freed: MPI_Finalize does).
struct ReduceTypes {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op op = MPI_OP_NULL;
};
const ReduceTypes& reduce_types() {
  static const ReduceTypes t = [] {
    ReduceTypes r;
    check(MPI_Type_contiguous(2, MPI_DOUBLE, &r.type), "MPI_Type_contiguous");
    check(MPI_Type_commit(&r.type), "MPI_Type_commit");
    check(MPI_Op_create(&reduce_pairs, 1, &r.op), "MPI_Op_create");
    return r;
  }();
  return t;
}

struct Header {
  std::uint32_t kind;
  std::int32_t dst_subtask;
  std::int32_t dst_channel;  // the channel's index in the consumer's gate (JobGraph numbering)
  std::int32_t src_node;     // the producing (node, output): its index in MpiTransport::nodes_
  std::int64_t channel;  // the sender's channel id (credits go back to it)
  std::uint64_t count;   // records in a data message; an event's value (two's complement)
  std::uint32_t event;   // an event's kind (gyre::EventKind)
  std::uint32_t unused = 0;
};

std::string header_bytes(const Header& h) {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(Header));
}

class MpiTransport;

class RemoteChannel final : public detail::ChannelOut {
 public:
  RemoteChannel(MpiTransport* t, std::int64_t id, int dst_rank, int dst_subtask, int dst_channel, int src_node,
                std::function<void(const detail::BatchBase&, std::string&)> encode, std::size_t capacity,
                std::size_t record_bytes)
      : t_(t), id_(id), dst_rank_(dst_rank), dst_subtask_(dst_subtask), dst_channel_(dst_channel), src_node_(src_node),
        encode_(std::move(encode)), capacity_(capacity), record_bytes_(record_bytes) {}

  void send(std::shared_ptr<const detail::BatchBase> batch) override;
  void send_event(const Event& event) override;
  bool has_credit(detail::Notifiable* waiter) override {
    if (capacity_ == 0) return true;  // a feedback channel: never refused
    std::lock_guard lock(mu_);
    if (outstanding_ < capacity_) return true;
    if (std::find(waiters_.begin(), waiters_.end(), waiter) == waiters_.end()) waiters_.push_back(waiter);
    return false;
  }
  void credit() {
    std::vector<detail::Notifiable*> wake;
    {
      std::lock_guard lock(mu_);
      if (outstanding_ > 0) --outstanding_;
      wake.swap(waiters_);
    }
    for (auto* w : wake) w->notify();
  }

 private:
  MpiTransport* t_;
  std::int64_t id_;
  int dst_rank_;
  int dst_subtask_;
  int dst_channel_;
  int src_node_;
  std::function<void(const detail::BatchBase&, std::string&)> encode_;
  std::size_t capacity_;
  std::size_t record_bytes_;
  std::mutex mu_;
  std::size_t outstanding_ = 0;
  std::vector<detail::Notifiable*> waiters_;
};

class MpiTransport final : public detail::Transport {
 public:
  MpiTransport() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    // Sending: producers call MPI_Isend on their own threads (MPI_THREAD_MULTIPLE), or, with
    // GYRE_MPI_SEND=thread or without MPI_THREAD_MULTIPLE, hand the bytes to the communication
    // thread. Both measured in bench/README.md: direct sends moved 20-35% more data.
    const char* mode = std::getenv("GYRE_MPI_SEND");
    int provided = 0;
    MPI_Query_thread(&provided);
    direct_send_ = provided >= MPI_THREAD_MULTIPLE && !(mode != nullptr && std::string(mode) == "thread");
  }
  ~MpiTransport() override { stop_thread(); }

  int rank() const override { return rank_; }
  int num_ranks() const override { return size_; }

  void check_plan(std::uint64_t hash) override {
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    check(MPI_Allgather(&hash, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    for (int r = 1; r < size_; ++r) {
      if (all[static_cast<std::size_t>(r)] != all[0]) {
        std::ostringstream msg;
        msg << "rank " << r << " built a different plan than rank 0 (plan hash " << std::hex
            << all[static_cast<std::size_t>(r)] << " vs " << all[0]
            << "): every rank must build the same operators, names, parallelism and edges, "
               "in the same order (same program, same arguments)";
        throw PlanError(msg.str());
      }
    }
  }

  void bind(const detail::StreamGraph& g, const detail::ExecutionGraph& eg,
            const std::vector<detail::InputGate*>& gates, Hooks hooks) override {
    stop_thread();
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");  // a fresh channel space per job
    gates_ = gates;
    hooks_ = std::move(hooks);
    rank_of_.clear();
    for (const auto& s : eg.subtasks) rank_of_.push_back(s.rank);
    // Copied, not referenced: the job may outlive the Environment that owns the graph.
    nodes_.clear();
    first_output_.clear();
    for (const auto& n : g.nodes) {
      first_output_.push_back(static_cast<int>(nodes_.size()));
      for (const auto& o : n.outputs) nodes_.push_back({n.name, o.encode, o.decode, o.record_bytes});
    }
    channels_.clear();
    capacity_ = hooks_.channel_capacity;
    wire_bytes_ = 0;
    finishing_ = false;
    outq_.clear();
    collq_.clear();
    for (auto& c : colls_)
      if (c.comm != MPI_COMM_NULL) MPI_Comm_free(&c.comm);
    colls_.assign(static_cast<std::size_t>(hooks_.collective_channels), Collective{});
    for (std::size_t c = 0; c < colls_.size() && c < hooks_.collective_values.size(); ++c)
      colls_[c].slots = std::max(kReduceSlots, hooks_.collective_values[c]);
    if (!colls_.empty()) reduce_types();
    for (auto& c : colls_) check(MPI_Comm_dup(MPI_COMM_WORLD, &c.comm), "MPI_Comm_dup");
  }

  void allreduce_async(int channel, std::vector<double> values, std::vector<ReduceOp> ops,
                       std::function<void(std::vector<double>)> done) override {
    const std::size_t slots = colls_.at(static_cast<std::size_t>(channel)).slots;
    GYRE_CHECK(values.size() <= slots && ops.size() == values.size(),
               "superstep allreduce: more than " + std::to_string(slots) + " values");
    Pending p;
    p.channel = channel;
    p.n = values.size();
    p.buf.assign(slots, ReducePair{0, 0});
    for (std::size_t i = 0; i < values.size(); ++i)
      p.buf[i] = {static_cast<double>(static_cast<int>(ops[i])), values[i]};
    p.done = std::move(done);
    {
      std::lock_guard lock(mu_);
      collq_.push_back(std::move(p));
    }
    cv_.notify_one();
  }

  void allreduce_sum(std::vector<double>& values) override {
    if (values.empty()) return;
    check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
  }

  std::unique_ptr<detail::ChannelOut> open(int src, int dst, int port, int channel, int src_node, int src_output,
                                           bool feedback) override {
    (void)src;
    (void)port;
    const int dst_rank = rank_of_.at(static_cast<std::size_t>(dst));
    if (dst_rank == rank_)
      return detail::make_local_channel(gates_.at(static_cast<std::size_t>(dst)), channel, feedback);
    const int codec = first_output_.at(static_cast<std::size_t>(src_node)) + src_output;
    const NodeCodec& node = nodes_.at(static_cast<std::size_t>(codec));
    if (!node.encode)
      throw PlanError("records of operator '" + node.name +
                      "' must go to another rank, but their type has no gyre::Codec: specialise "
                      "gyre::Codec for it (see gyre/core/codec.h)");
    const auto id = static_cast<std::int64_t>(channels_.size());
    auto ch = std::make_unique<RemoteChannel>(this, id, dst_rank, dst, channel, codec, node.encode,
                                              feedback ? 0 : capacity_, node.record_bytes);
    channels_.push_back(ch.get());
    return ch;
  }

  std::string agree(const std::string& local_error) override {
    const std::vector<std::string> all = gather_strings(MPI_COMM_WORLD, local_error);
    for (const auto& e : all)
      if (!e.empty()) return e;
    return {};
  }

  void start() override {
    stop_thread();
    thread_ = std::thread([this] { loop(); });
    running_.store(true, std::memory_order_release);
  }

  void return_credit(std::int64_t token) override {
    const auto src_rank = static_cast<int>(token >> 32);
    Header h{kCredit, 0, 0, 0, token & 0xffffffff, 0, 0};
    enqueue(src_rank, header_bytes(h));
  }

  void abort_others(const std::string& message, bool cancel) override {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      Header h{cancel ? kCancel : kAbort, 0, 0, 0, 0, 0, 0};
      enqueue(r, header_bytes(h) + message);
    }
  }

  Outcome finish(Outcome local, std::vector<double>& counters) override {
    {
      std::lock_guard lock(mu_);
      finishing_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    running_.store(false, std::memory_order_release);
    drain_collectives();
    if (!comm_error_.empty() && !local.failed) {
      local.failed = true;
      local.message = comm_error_;
    }
    // Agree on the outcome: the failure of the lowest failing rank wins.
    const int mine = local.failed ? rank_ : INT_MAX;
    int first = INT_MAX;
    check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    int cancelled = local.cancelled ? 1 : 0;
    int any_cancelled = 0;
    check(MPI_Allreduce(&cancelled, &any_cancelled, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    Outcome out;
    out.cancelled = any_cancelled != 0;
    if (first != INT_MAX) {
      out.failed = true;
      int len = static_cast<int>(local.message.size());
      check(MPI_Bcast(&len, 1, MPI_INT, first, MPI_COMM_WORLD), "MPI_Bcast");
      out.message = rank_ == first ? local.message : std::string(static_cast<std::size_t>(len), '\0');
      check(MPI_Bcast(out.message.data(), len, MPI_CHAR, first, MPI_COMM_WORLD), "MPI_Bcast");
    }
    if (!counters.empty()) {
      check(MPI_Allreduce(MPI_IN_PLACE, counters.data(), static_cast<int>(counters.size()), MPI_DOUBLE,
                          MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    }
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    channels_.clear();
    gates_.clear();
    return out;
  }

  // A failed or cancelled job may leave iterations' allreduces unmatched (some ranks posted one,
  // others did not). Every rank posts empty ones up to the largest count of any rank, then
  // waits for all, so no collective stays open. Results are dropped.
  void drain_collectives() {
    std::vector<Pending> queued;
    {
      std::lock_guard lock(mu_);
      queued.swap(collq_);
    }
    if (colls_.empty()) return;
    std::vector<long long> posted(colls_.size());
    for (std::size_t c = 0; c < colls_.size(); ++c) posted[c] = colls_[c].posted;
    for (const auto& q : queued) ++posted[static_cast<std::size_t>(q.channel)];  // posted below
    std::vector<long long> most(colls_.size());
    check(MPI_Allreduce(posted.data(), most.data(), static_cast<int>(posted.size()), MPI_LONG_LONG, MPI_MAX,
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
    for (auto& q : queued) post(q);
    for (auto& q : queued) inflight_.push_back(std::move(q));
    const ReduceTypes& rt = reduce_types();
    std::vector<std::vector<ReducePair>> dummies;
    std::vector<MPI_Request> reqs;
    for (std::size_t c = 0; c < colls_.size(); ++c) {
      for (long long k = posted[c]; k < most[c]; ++k) {
        dummies.emplace_back(colls_[c].slots, ReducePair{0, 0});
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Iallreduce(MPI_IN_PLACE, dummies.back().data(), static_cast<int>(colls_[c].slots), rt.type, rt.op,
                             colls_[c].comm, &reqs.back()),
              "MPI_Iallreduce");
      }
    }
    for (auto& f : inflight_) reqs.push_back(f.req);
    if (!reqs.empty()) check(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    // A rank with no part in a loop may end its job before it saw the loop's last allreduce
    // complete: deliver it (and, after a failure, whatever the others posted; then nobody uses it).
    std::vector<Pending> done;
    done.swap(inflight_);
    for (auto& p : done) {
      std::vector<double> result(p.n);
      for (std::size_t k = 0; k < p.n; ++k) result[k] = p.buf[k].value;
      p.done(std::move(result));
    }
    {
      std::lock_guard lock(mu_);
      collq_.clear();  // anything a late callback queued: the job is over
    }
    for (auto& c : colls_) c.posted = 0;
  }

  std::uint64_t wire_bytes() const override { return wire_bytes_.load(); }

  void enqueue(int dst_rank, std::string bytes) {
    wire_bytes_ += bytes.size();
    if (direct_send_ && running_.load(std::memory_order_acquire)) {
      std::lock_guard lock(send_mu_);
      sending_.push_back({MPI_REQUEST_NULL, std::move(bytes)});
      auto& f = sending_.back();
      check(MPI_Isend(f.bytes.data(), static_cast<int>(f.bytes.size()), MPI_BYTE, dst_rank, kTag, comm_, &f.req),
            "MPI_Isend");
      return;
    }
    {
      std::lock_guard lock(mu_);
      outq_.push_back({dst_rank, std::move(bytes)});
    }
    cv_.notify_one();
  }

 private:
  struct Out {
    int dst;
    std::string bytes;
  };
  struct InFlight {
    MPI_Request req;
    std::string bytes;
  };
  struct Pending {  // a superstep allreduce
    int channel = 0;
    std::size_t n = 0;
    std::vector<ReducePair> buf;
    std::function<void(std::vector<double>)> done;
    MPI_Request req = MPI_REQUEST_NULL;
  };
  struct Collective {
    MPI_Comm comm = MPI_COMM_NULL;
    long long posted = 0;
    std::size_t slots = kReduceSlots;  // values of every allreduce on it
  };

  void post(Pending& p) {
    const ReduceTypes& rt = reduce_types();
    auto& c = colls_.at(static_cast<std::size_t>(p.channel));
    check(MPI_Iallreduce(MPI_IN_PLACE, p.buf.data(), static_cast<int>(c.slots), rt.type, rt.op, c.comm, &p.req),
          "MPI_Iallreduce");
    ++c.posted;
  }

  // Posts queued allreduces and completes finished ones (communication thread).
  bool progress_collectives() {
    std::vector<Pending> queued;
    {
      std::lock_guard lock(mu_);
      queued.swap(collq_);
    }
    bool any = !queued.empty();
    for (auto& q : queued) {
      post(q);
      inflight_.push_back(std::move(q));
    }
    for (std::size_t i = 0; i < inflight_.size();) {
      int done = 0;
      check(MPI_Test(&inflight_[i].req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done == 0) {
        ++i;
        continue;
      }
      Pending p = std::move(inflight_[i]);
      inflight_.erase(inflight_.begin() + static_cast<std::ptrdiff_t>(i));
      std::vector<double> result(p.n);
      for (std::size_t k = 0; k < p.n; ++k) result[k] = p.buf[k].value;
      p.done(std::move(result));
      any = true;
    }
    return any;
  }

  void stop_thread() {
    running_.store(false, std::memory_order_release);
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      finishing_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void handle(int src_rank, const char* msg, std::size_t size) {
    if (size < sizeof(Header)) throw Error("corrupt message from rank " + std::to_string(src_rank));
    Header h{};
    std::memcpy(&h, msg, sizeof(Header));
    const char* payload = msg + sizeof(Header);
    const char* end = msg + size;
    if (h.kind == kData || h.kind == kEvent) {
      const auto dst = static_cast<std::size_t>(h.dst_subtask);
      if (h.dst_subtask < 0 || dst >= gates_.size() || gates_[dst] == nullptr || h.dst_channel < 0 ||
          h.dst_channel >= gates_[dst]->channels())
        throw Error("corrupt message from rank " + std::to_string(src_rank) + ": no such channel");
    }
    switch (h.kind) {
      case kData: {
        auto* gate = gates_.at(static_cast<std::size_t>(h.dst_subtask));
        const auto& decode = nodes_.at(static_cast<std::size_t>(h.src_node)).decode;
        if (!decode) throw Error("message for an operator whose records have no gyre::Codec");
        auto batch = decode(payload, end, h.count);
        gate->push(h.dst_channel, std::move(batch), (static_cast<std::int64_t>(src_rank) << 32) | h.channel);
        break;
      }
      case kEvent: {
        if (h.event >= static_cast<std::uint32_t>(kEventKinds))
          throw Error("corrupt message from rank " + std::to_string(src_rank) + ": unknown event kind");
        const Event event{static_cast<EventKind>(h.event), static_cast<std::int64_t>(h.count)};
        gates_.at(static_cast<std::size_t>(h.dst_subtask))->push_event(h.dst_channel, event);
        break;
      }
      case kCredit:
        channels_.at(static_cast<std::size_t>(h.channel))->credit();
        break;
      case kAbort:
      case kCancel:
        if (hooks_.remote_abort) hooks_.remote_abort(std::string(payload, end), h.kind == kCancel);
        break;
      default:
        throw Error("corrupt message from rank " + std::to_string(src_rank) + ": unknown kind");
    }
  }

  bool receive_all() {
    bool any = false;
    while (true) {
      int flag = 0;
      MPI_Status st;
      check(MPI_Iprobe(MPI_ANY_SOURCE, kTag, comm_, &flag, &st), "MPI_Iprobe");
      if (flag == 0) return any;
      int n = 0;
      check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count");
      if (recv_buf_size_ < static_cast<std::size_t>(n)) {  // reused; grows, never zero-filled
        recv_buf_ = std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(n));
        recv_buf_size_ = static_cast<std::size_t>(n);
      }
      check(MPI_Recv(recv_buf_.get(), n, MPI_BYTE, st.MPI_SOURCE, kTag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
      handle(st.MPI_SOURCE, recv_buf_.get(), static_cast<std::size_t>(n));
      any = true;
    }
  }

  void loop() {
    std::vector<InFlight>& sending = sending_;
    bool barrier_started = false;
    MPI_Request barrier = MPI_REQUEST_NULL;
    auto backoff = std::chrono::microseconds(0);
    auto last_progress = std::chrono::steady_clock::now();
    try {
      while (true) {
        bool progress = false;
        std::deque<Out> out;
        bool finishing = false;
        {
          std::lock_guard lock(mu_);
          out.swap(outq_);
          finishing = finishing_;
        }
        std::unique_lock send_lock(send_mu_);
        for (auto& o : out) {
          sending.push_back({MPI_REQUEST_NULL, std::move(o.bytes)});
          auto& f = sending.back();
          check(MPI_Isend(f.bytes.data(), static_cast<int>(f.bytes.size()), MPI_BYTE, o.dst, kTag, comm_, &f.req),
                "MPI_Isend");
          progress = true;
        }
        for (std::size_t i = 0; i < sending.size();) {
          int done = 0;
          check(MPI_Test(&sending[i].req, &done, MPI_STATUS_IGNORE), "MPI_Test");
          if (done != 0) {
            sending[i] = std::move(sending.back());
            sending.pop_back();
            progress = true;
          } else {
            ++i;
          }
        }
        const bool sends_pending = !sending.empty();
        send_lock.unlock();
        progress = receive_all() || progress;
        progress = progress_collectives() || progress;
        if (finishing && !barrier_started && out.empty()) {
          check(MPI_Ibarrier(comm_, &barrier), "MPI_Ibarrier");
          barrier_started = true;
        }
        if (barrier_started) {
          int done = 0;
          check(MPI_Test(&barrier, &done, MPI_STATUS_IGNORE), "MPI_Test");
          if (done != 0 && !sends_pending) {
            receive_all();  // late credits or aborts: nobody waits for them any more
            break;
          }
        }
        if (progress) {
          backoff = std::chrono::microseconds(0);
          last_progress = std::chrono::steady_clock::now();
          continue;
        }
        // A loop's allreduce is open: poll without sleeping for a while (superstep latency),
        // then fall back to the back-off (a loop over an unbounded input may wait forever).
        const bool collective_soon =
            !inflight_.empty() && std::chrono::steady_clock::now() - last_progress < std::chrono::milliseconds(2);
        if (sends_pending || collective_soon) {
          // Large messages need the progress engine on both sides (rendezvous): keep polling,
          // but give the core to compute threads that want it.
          std::this_thread::yield();
          continue;
        }
        // Idle: sleep a little (longer the longer it stays idle); new outgoing work wakes us.
        backoff = std::min(std::chrono::microseconds(50), backoff + std::chrono::microseconds(10));
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, backoff,
                     [&] { return !outq_.empty() || !collq_.empty() || (finishing_ && !barrier_started); });
      }
    } catch (const std::exception& e) {
      // A broken message or an MPI error: end the job everywhere.
      comm_error_ = "rank " + std::to_string(rank_) + ": communication failed: " + e.what();
      if (hooks_.remote_abort) hooks_.remote_abort(comm_error_, false);
      std::fprintf(stderr, "[rank %d] %s\n", rank_, comm_error_.c_str());
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
  }

  int rank_ = 0;
  int size_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<detail::InputGate*> gates_;
  Hooks hooks_;
  std::vector<int> rank_of_;
  // What crossing ranks needs of each output of each node (its records), node by node.
  struct NodeCodec {
    std::string name;
    std::function<void(const detail::BatchBase&, std::string&)> encode;
    std::function<std::shared_ptr<detail::BatchBase>(const char*, const char*, std::size_t)> decode;
    std::size_t record_bytes = 0;
  };
  std::vector<NodeCodec> nodes_;
  std::vector<int> first_output_;  // per node: the index of its output 0 in nodes_
  std::vector<RemoteChannel*> channels_;
  std::size_t capacity_ = 4;
  std::atomic<std::uint64_t> wire_bytes_{0};
  std::string comm_error_;
  bool direct_send_ = false;
  std::atomic<bool> running_{false};  // the communication thread is serving this job
  std::mutex send_mu_;  // guards sending_ (direct mode: producers add to it)
  std::vector<InFlight> sending_;
  std::unique_ptr<char[]> recv_buf_;
  std::size_t recv_buf_size_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Out> outq_;
  std::vector<Pending> collq_;    // guarded by mu_: allreduces to post
  std::vector<Pending> inflight_;  // communication thread (then finish): posted, not complete
  std::vector<Collective> colls_;  // one per iteration of the job
  bool finishing_ = false;
  std::thread thread_;
};

void RemoteChannel::send(std::shared_ptr<const detail::BatchBase> batch) {
  {
    std::lock_guard lock(mu_);
    ++outstanding_;
  }
  Header h{kData, dst_subtask_, dst_channel_, src_node_, id_, batch->size(), 0};
  std::string msg;
  msg.reserve(sizeof(Header) + batch->size() * record_bytes_);  // exact for fixed-size records
  msg.append(reinterpret_cast<const char*>(&h), sizeof(Header));  // keeps the reserved buffer
  encode_(*batch, msg);
  t_->enqueue(dst_rank_, std::move(msg));
}

void RemoteChannel::send_event(const Event& event) {
  Header h{kEvent, dst_subtask_, dst_channel_, src_node_, id_, static_cast<std::uint64_t>(event.value),
           static_cast<std::uint32_t>(event.kind)};
  t_->enqueue(dst_rank_, header_bytes(h));
}

}  // namespace

std::shared_ptr<detail::Transport> make_mpi_transport() { return std::make_shared<MpiTransport>(); }

}  // namespace gyre::mpi
