#include "gyre/core/operator.h"

#include <algorithm>

#include "gyre/core/error.h"
#include "gyre/core/stream.h"

namespace gyre {

OperatorBuilder::OperatorBuilder(Environment& env, std::string kind) : env_(&env) {
  detail::NodeSpec s;
  s.name = kind;
  s.kind = std::move(kind);
  s.parallelism = env.default_parallelism();
  s.bounded = true;
  node_ = env.add_node(std::move(s));
}

OperatorBuilder::OperatorBuilder(Environment& env, int node) : env_(&env), node_(node) {
  if (node < 0 || static_cast<std::size_t>(node) >= env.graph_.nodes.size())
    throw PlanError("OperatorBuilder: no operator " + std::to_string(node) + " in this plan");
}

detail::NodeSpec& OperatorBuilder::spec() const { return env_->node(node_); }

OperatorBuilder& OperatorBuilder::name(std::string n) {
  spec().name = std::move(n);
  return *this;
}
OperatorBuilder& OperatorBuilder::parallelism(int p) {
  spec().parallelism = p;
  return *this;
}
OperatorBuilder& OperatorBuilder::bounded(bool b) {
  spec().bounded = b;
  return *this;
}
const std::string& OperatorBuilder::name() const { return spec().name; }
int OperatorBuilder::parallelism() const { return spec().parallelism; }
bool OperatorBuilder::bounded() const { return spec().bounded; }

OperatorBuilder& OperatorBuilder::sink(bool s) {
  spec().is_sink = s;
  return *this;
}
OperatorBuilder& OperatorBuilder::needs_bounded_inputs(bool v) {
  spec().needs_bounded_inputs = v;
  return *this;
}
OperatorBuilder& OperatorBuilder::keyed(bool v) {
  spec().keyed = v;
  return *this;
}
OperatorBuilder& OperatorBuilder::allows_broadcast_build(bool v) {
  spec().allows_broadcast_build = v;
  return *this;
}
OperatorBuilder& OperatorBuilder::accepts_loop_invariant_input(bool v) {
  spec().accepts_loop_invariant_input = v;
  return *this;
}
OperatorBuilder& OperatorBuilder::solution_set_of(int head) {
  spec().solution_set_of = head;
  return *this;
}
OperatorBuilder& OperatorBuilder::loop_head(std::string loop_kind, std::shared_ptr<detail::LoopHook> hook) {
  auto& s = spec();
  s.loop_head = true;
  s.loop_kind = std::move(loop_kind);
  s.loop_hook = std::move(hook);
  return *this;
}
OperatorBuilder& OperatorBuilder::validate(std::function<void()> check) {
  spec().validate = std::move(check);
  return *this;
}

int OperatorBuilder::add_input(detail::InputRef in, int port, bool feedback) {
  if (env_->started_) throw PlanError("operators added after the job started: build a new Environment");
  auto& s = spec();
  if (port < 0) port = s.num_ports;
  s.num_ports = std::max(s.num_ports, port + 1);
  if (!feedback) s.bounded = s.bounded && in.bounded;
  const detail::NodeSpec& from = env_->node(in.node);
  detail::EdgeSpec e;
  e.from = in.node;
  e.to = node_;
  e.port = port;
  e.requested = in.partitioning;
  e.feedback = feedback;
  e.make_hash_writer = std::move(in.hash);
  e.loop_exit = from.loop_head && in.output == 1;
  e.output = in.output;
  env_->add_edge(std::move(e));
  return port;
}

OperatorBuilder& OperatorBuilder::ports(int n) {
  auto& s = spec();
  s.num_ports = std::max(s.num_ports, n);
  return *this;
}
int OperatorBuilder::ports() const { return spec().num_ports; }

int OperatorBuilder::add_output(detail::OutputSpec o) {
  auto& s = spec();
  if (!o.tag.empty() && output_index(o.tag) >= 0)
    throw PlanError("operator '" + s.name + "' has two side outputs named '" + o.tag + "'");
  s.outputs.push_back(std::move(o));
  return static_cast<int>(s.outputs.size()) - 1;
}
int OperatorBuilder::outputs() const { return static_cast<int>(spec().outputs.size()); }
int OperatorBuilder::output_index(const std::string& tag) const {
  const auto& outs = spec().outputs;
  for (std::size_t i = 0; i < outs.size(); ++i)
    if (outs[i].tag == tag) return static_cast<int>(i);
  return -1;
}

const std::type_info* OperatorBuilder::output_type(int i) const {
  return spec().outputs.at(static_cast<std::size_t>(i)).type;
}
bool OperatorBuilder::has_side_outputs() const { return spec().side_outputs; }

OperatorBuilder& OperatorBuilder::factory(detail::NodeFactory make) {
  spec().make = std::move(make);
  return *this;
}

}  // namespace gyre
