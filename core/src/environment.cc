#include <algorithm>
#include <thread>

#include "gyre/core/error.h"
#include "gyre/core/stream.h"

namespace gyre {

Environment::Environment(JobConfig config) : Environment(config, Cluster::local()) {}

int JobConfig::max_slots() {
  return std::max(16, 4 * static_cast<int>(std::thread::hardware_concurrency()));
}

std::vector<std::string> JobConfig::validate() const {
  if (parallelism < 0) throw PlanError("JobConfig: parallelism " + std::to_string(parallelism) + " is negative");
  if (slots < 0) throw PlanError("JobConfig: slots (worker threads) " + std::to_string(slots) + " is negative");
  if (parallelism > kMaxParallelism)
    throw PlanError("parallelism " + std::to_string(parallelism) + ": at most " + std::to_string(kMaxParallelism) +
                    " partitions per operator (an exchange between operators of P partitions has P^2 channels)");
  if (batch_bytes == 0) throw PlanError("JobConfig: batch_bytes must be positive");
  if (channel_capacity == 0) throw PlanError("JobConfig: channel_capacity must be positive");
  std::vector<std::string> warnings;
  if (slots > max_slots())
    warnings.push_back(std::to_string(slots) + " worker threads per rank: using " + std::to_string(max_slots()) +
                       " (at most 4 per hardware thread, at least 16: more only contend for the cores)");
  return warnings;
}

JobConfig JobConfig::resolved(int ranks) const {
  validate();
  JobConfig c = *this;
  if (c.slots <= 0) c.slots = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  c.slots = std::min(c.slots, max_slots());
  // Default: one partition per slot of every rank.
  if (c.parallelism <= 0) c.parallelism = std::min(kMaxParallelism, c.slots * std::max(1, ranks));
  return c;
}

Environment::Environment(JobConfig config, Cluster cluster)
    : config_(config.resolved(cluster.ranks())), transport_(cluster.transport()) {}

Environment::~Environment() = default;

int Environment::default_parallelism() const { return config_.parallelism; }
int Environment::rank() const { return transport_->rank(); }
int Environment::num_ranks() const { return transport_->num_ranks(); }

int Environment::add_node(detail::NodeSpec spec) {
  if (started_) throw PlanError("operators added after the job started: build a new Environment");
  spec.id = static_cast<int>(graph_.nodes.size());
  graph_.nodes.push_back(std::move(spec));
  return graph_.nodes.back().id;
}

void Environment::add_edge(detail::EdgeSpec edge) { graph_.edges.push_back(std::move(edge)); }

Stream<std::string> Environment::read_text_file(std::string path) {
  auto s = add_source<std::string>("source: text file '" + path + "'", true,
                                   [path](const detail::OpContext& c, detail::Input<std::string>* out) {
                                     return detail::make_text_file_source(c, path, out);
                                   });
  OperatorBuilder(*this, s.node()).validate([path] { detail::check_readable(path); });
  return s;
}

Environment::Compiled Environment::compile() const {
  detail::validate(graph_);
  Compiled c;
  c.jg = detail::compile(graph_);
  c.eg = detail::place(graph_, c.jg, transport_->num_ranks(), config_.slots);
  return c;
}

std::string Environment::explain(ExplainFormat format) const {
  const Compiled c = compile();
  return detail::explain(graph_, c.jg, c.eg, format);
}

std::uint64_t Environment::plan_hash() const { return detail::plan_hash(graph_); }

JobHandle Environment::start() {
  if (started_)
    throw PlanError("this Environment already ran its job: build a new Environment for another job");
  // Validation may fail on one rank only (a file missing there): all ranks must learn of it,
  // or the others would wait for that rank forever.
  Compiled c;
  std::string error;
  try {
    c = compile();
  } catch (const PlanError& e) {
    error = num_ranks() > 1 ? "rank " + std::to_string(rank()) + ": " + e.what() : e.what();
  }
  error = transport_->agree(error);
  if (!error.empty()) throw PlanError(error);
  started_ = true;
  transport_->check_plan(detail::plan_hash(graph_));  // every rank built the same plan?
  return JobHandle(detail::start_job(graph_, c.jg, c.eg, config_, transport_));
}

JobResult Environment::run() { return start().wait(); }

}  // namespace gyre
