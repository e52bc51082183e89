// Plan validation, chaining (StreamGraph -> JobGraph), placement (-> ExecutionGraph), explain.
#include "gyre/core/plan.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "gyre/core/error.h"
#include "gyre/core/hash.h"

namespace gyre {

const char* to_string(Partitioning p) {
  switch (p) {
    case Partitioning::kAuto: return "auto";
    case Partitioning::kForward: return "forward";
    case Partitioning::kHash: return "hash";
    case Partitioning::kBroadcast: return "broadcast";
    case Partitioning::kRebalance: return "rebalance";
    case Partitioning::kGather: return "gather";
  }
  return "?";
}

namespace detail {
namespace {

std::string describe(const NodeSpec& n) {
  std::ostringstream s;
  s << n.kind;
  if (n.name != n.kind) s << " '" << n.name << "'";
  s << " (node " << n.id << ")";
  return s.str();
}

// The partitioning an edge gets when the user did not choose one.
Partitioning resolve(const StreamGraph& g, const EdgeSpec& e) {
  const NodeSpec& from = g.nodes[static_cast<std::size_t>(e.from)];
  const NodeSpec& to = g.nodes[static_cast<std::size_t>(e.to)];
  if (e.requested != Partitioning::kAuto) {
    if (e.requested == Partitioning::kRebalance && to.parallelism == 1) return Partitioning::kGather;
    return e.requested;
  }
  if (e.make_hash_writer) {
    // A broadcast-build join keeps its probe side where it is (other operators with a broadcast
    // input still hash their keyed inputs).
    const bool broadcast_build = to.allows_broadcast_build &&
                                 std::any_of(g.edges.begin(), g.edges.end(), [&](const EdgeSpec& o) {
                                   return o.to == e.to && o.port != e.port && o.requested == Partitioning::kBroadcast;
                                 });
    if (!broadcast_build) return Partitioning::kHash;
  }
  if (from.parallelism == to.parallelism) return Partitioning::kForward;
  if (to.parallelism == 1) return Partitioning::kGather;
  return Partitioning::kRebalance;
}

// Nodes in topological order over the non-feedback edges (shorter than the graph if those edges
// form a cycle).
std::vector<int> topological_order(const StreamGraph& g) {
  std::vector<int> indeg(g.nodes.size(), 0);
  for (const auto& e : g.edges)
    if (!e.feedback) ++indeg[static_cast<std::size_t>(e.to)];
  std::vector<int> ready;
  for (std::size_t i = g.nodes.size(); i-- > 0;)
    if (indeg[i] == 0) ready.push_back(static_cast<int>(i));
  std::vector<int> order;
  while (!ready.empty()) {
    const int v = ready.back();
    ready.pop_back();
    order.push_back(v);
    for (const auto& e : g.edges)
      if (!e.feedback && e.from == v && --indeg[static_cast<std::size_t>(e.to)] == 0) ready.push_back(e.to);
  }
  return order;
}

// Nodes reachable from `from` over edges that pass `ok`, forwards or backwards.
std::vector<bool> reach(const StreamGraph& g, int from, bool backwards,
                        const std::function<bool(const EdgeSpec&)>& ok) {
  std::vector<bool> seen(g.nodes.size(), false);
  std::vector<int> stack{from};
  seen[static_cast<std::size_t>(from)] = true;
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    for (const auto& e : g.edges) {
      if (!ok(e)) continue;
      const int a = backwards ? e.to : e.from;
      const int b = backwards ? e.from : e.to;
      if (a != v || seen[static_cast<std::size_t>(b)]) continue;
      seen[static_cast<std::size_t>(b)] = true;
      stack.push_back(b);
    }
  }
  return seen;
}

struct LoopScopes {
  std::vector<int> loop_of;                 // per node: head of its loop or -1
  std::vector<std::vector<bool>> forward;   // per head (indexed by node): reachable from it
};

// A loop's body: the nodes reachable from its head (not through its exit edges or any feedback
// edge) from which the head is reachable again (through the feedback edges).
LoopScopes loop_scopes(const StreamGraph& g) {
  LoopScopes ls;
  ls.loop_of.assign(g.nodes.size(), -1);
  ls.forward.resize(g.nodes.size());
  for (const auto& h : g.nodes) {
    if (!h.loop_head) continue;
    auto fwd = reach(g, h.id, false, [](const EdgeSpec& e) { return !e.feedback && !e.loop_exit; });
    const auto back = reach(g, h.id, true, [](const EdgeSpec& e) { return !e.loop_exit; });
    for (std::size_t v = 0; v < g.nodes.size(); ++v) {
      if (!fwd[v] || !back[v]) continue;
      if (ls.loop_of[v] >= 0 && ls.loop_of[v] != h.id)
        throw PlanError(describe(g.nodes[v]) + " is inside two iterations ('" +
                        g.nodes[static_cast<std::size_t>(ls.loop_of[v])].name + "' and '" + h.name +
                        "'): nested or overlapping iterations are not supported");
      ls.loop_of[v] = h.id;
    }
    ls.forward[static_cast<std::size_t>(h.id)] = std::move(fwd);
  }
  return ls;
}

void validate_loops(const StreamGraph& g) {
  const LoopScopes ls = loop_scopes(g);
  for (const auto& h : g.nodes) {
    if (!h.loop_head) continue;
    const auto& fwd = ls.forward[static_cast<std::size_t>(h.id)];
    const std::string loop = "iteration '" + h.name + "'";
    for (const auto& n : g.nodes) {
      const auto v = static_cast<std::size_t>(n.id);
      if (!fwd[v] || n.id == h.id) continue;
      if (ls.loop_of[v] != h.id && h.loop_kind != "streaming")
        throw PlanError(describe(n) + " in the body of " + loop +
                        " does not lead back into the loop: a bulk or delta iteration's body may "
                        "only compute its next state, termination criterion and aggregators; use "
                        "the iteration's result for anything else");
    }
  }
  for (const auto& e : g.edges) {
    const NodeSpec& from = g.nodes[static_cast<std::size_t>(e.from)];
    const NodeSpec& to = g.nodes[static_cast<std::size_t>(e.to)];
    const int lf = ls.loop_of[static_cast<std::size_t>(e.from)];
    const int lt = ls.loop_of[static_cast<std::size_t>(e.to)];
    if (e.feedback) {
      if (!to.loop_head || lf != to.id)
        throw PlanError("the feedback stream of iteration '" + to.name + "' (" + describe(from) +
                        ") is not computed from the loop's head: close the loop with a stream "
                        "derived from the head");
      continue;
    }
    if (lt < 0 || to.loop_head || lf == lt) continue;
    // An input from outside the loop into its body.
    const std::string loop = "iteration '" + g.nodes[static_cast<std::size_t>(lt)].name + "'";
    if (lf >= 0)
      throw PlanError(describe(to) + " in " + loop + " reads " + describe(from) +
                      " of another iteration: use that iteration's result instead");
    if (!to.accepts_loop_invariant_input)
      throw PlanError(describe(to) + " in " + loop + " reads " + describe(from) +
                      " from outside the loop: only a join takes loop-invariant inputs (they are "
                      "partitioned and indexed once and kept across supersteps)");
  }
  for (const auto& n : g.nodes) {
    if (n.solution_set_of < 0) continue;
    const NodeSpec& h = g.nodes[static_cast<std::size_t>(n.solution_set_of)];
    if (ls.loop_of[static_cast<std::size_t>(n.id)] != h.id)
      throw PlanError(describe(n) + " reads the solution set of iteration '" + h.name +
                      "' but is not inside its body: join or co_group the solution set only with "
                      "streams computed from that iteration's workset");
    if (n.parallelism != h.parallelism)
      throw PlanError(describe(n) + " reads the solution set of iteration '" + h.name +
                      "' with parallelism " + std::to_string(n.parallelism) +
                      ", but the solution set has " + std::to_string(h.parallelism) +
                      " partitions: do not change the parallelism of solution-set operators");
  }
}

}  // namespace

std::vector<int> destinations(Partitioning kind, int p, int consumer_parallelism) {
  if (kind == Partitioning::kForward) return {p};
  if (kind == Partitioning::kGather) return {0};
  std::vector<int> all(static_cast<std::size_t>(consumer_parallelism));
  for (int q = 0; q < consumer_parallelism; ++q) all[static_cast<std::size_t>(q)] = q;
  return all;
}

void validate(const StreamGraph& g) {
  if (g.nodes.empty()) throw PlanError("the plan is empty: add a source, operators and a sink");
  bool any_sink = false;
  for (const auto& n : g.nodes) {
    if (n.parallelism < 1 || n.parallelism > JobConfig::kMaxParallelism)
      throw PlanError(describe(n) + " has parallelism " + std::to_string(n.parallelism) + ": set a parallelism between 1 and " +
                      std::to_string(JobConfig::kMaxParallelism) +
                      " (an exchange between operators of P partitions has P^2 channels)");
    any_sink = any_sink || n.is_sink;
    bool consumed = false;
    std::vector<int> inputs(static_cast<std::size_t>(n.num_ports), 0);
    for (const auto& e : g.edges) {
      if (e.from == n.id) consumed = true;
      if (e.to == n.id) ++inputs[static_cast<std::size_t>(e.port)];
    }
    if (!n.is_sink && !consumed)
      throw PlanError(describe(n) + " has no consumer: its output goes nowhere; add a sink "
                      "(collect, for_each, write_text) or remove it");
    for (std::size_t p = 0; p < inputs.size(); ++p)
      if (inputs[p] == 0)
        throw PlanError(describe(n) + " input " + std::to_string(p) + " is not connected");
    if (n.validate) n.validate();
  }
  if (!any_sink) throw PlanError("the plan has no sink: add collect(), for_each() or write_text()");

  for (const auto& e : g.edges) {
    const NodeSpec& from = g.nodes[static_cast<std::size_t>(e.from)];
    const NodeSpec& to = g.nodes[static_cast<std::size_t>(e.to)];
    const Partitioning k = resolve(g, e);
    if (k == Partitioning::kForward && from.parallelism != to.parallelism)
      throw PlanError("forward edge from " + describe(from) + " (parallelism " +
                      std::to_string(from.parallelism) + ") to " + describe(to) + " (parallelism " +
                      std::to_string(to.parallelism) +
                      "): a forward edge needs equal parallelism; set it equal or call "
                      "rebalance() instead of forward()");
    if (to.needs_bounded_inputs && !from.bounded)
      throw PlanError(describe(to) + " needs bounded inputs but input " + std::to_string(e.port) +
                      " comes from the unbounded " + describe(from) +
                      ": join and co_group a bounded stream (a collection, a file, a generator "
                      "with a count)");
    if (to.keyed && k != Partitioning::kHash) {
      const bool ok_broadcast_join =
          to.allows_broadcast_build &&
          ((e.port == 1 && k == Partitioning::kBroadcast) ||
           (e.port == 0 && k != Partitioning::kBroadcast && k != Partitioning::kHash));
      if (!ok_broadcast_join)
        throw PlanError(describe(to) + " input " + std::to_string(e.port) + " is partitioned by " +
                        to_string(k) +
                        ", but a keyed operator needs its inputs hash-partitioned on the key "
                        "(or, for a join, the build side (input 1) broadcast): remove the "
                        "explicit " + std::string(to_string(k)) + "()");
    }
  }

  // Without feedback edges the graph must be acyclic (loops close only through feedback edges).
  if (topological_order(g).size() != g.nodes.size())
    throw PlanError("the plan has a cycle that is not closed by a feedback edge: build loops with "
                    "the iteration API");
  validate_loops(g);
}

JobGraph compile(const StreamGraph& g) {
  JobGraph jg;
  const std::size_t n = g.nodes.size();
  std::vector<int> in_edges(n, 0);
  for (const auto& e : g.edges) ++in_edges[static_cast<std::size_t>(e.to)];

  jg.edges.resize(g.edges.size());
  std::vector<int> chained_parent(n, -1);
  for (std::size_t i = 0; i < g.edges.size(); ++i) {
    const EdgeSpec& e = g.edges[i];
    ResolvedEdge& re = jg.edges[i];
    re.edge = static_cast<int>(i);
    re.kind = resolve(g, e);
    const NodeSpec& from = g.nodes[static_cast<std::size_t>(e.from)];
    const NodeSpec& to = g.nodes[static_cast<std::size_t>(e.to)];
    // Chain: forward, equal parallelism, the consumer has this one input, not a loop edge.
    re.chained = re.kind == Partitioning::kForward && from.parallelism == to.parallelism &&
                 in_edges[static_cast<std::size_t>(e.to)] == 1 && !e.feedback &&
                 to.num_ports == 1;
    if (re.chained) chained_parent[static_cast<std::size_t>(e.to)] = e.from;
  }

  jg.loop_of = loop_scopes(g).loop_of;

  // Node ids are in creation order, which is topological for plans built through the API, but
  // do not rely on it.
  jg.task_of_node.assign(n, -1);
  for (int v : topological_order(g)) {
    const int parent = chained_parent[static_cast<std::size_t>(v)];
    if (parent < 0) {
      Task t;
      t.id = static_cast<int>(jg.tasks.size());
      t.head = v;
      t.parallelism = g.nodes[static_cast<std::size_t>(v)].parallelism;
      t.nodes.push_back(v);
      jg.task_of_node[static_cast<std::size_t>(v)] = t.id;
      jg.tasks.push_back(std::move(t));
    } else {
      const int t = jg.task_of_node[static_cast<std::size_t>(parent)];
      jg.task_of_node[static_cast<std::size_t>(v)] = t;
      jg.tasks[static_cast<std::size_t>(t)].nodes.push_back(v);
    }
  }
  // Channel numbering, per consumer task: the head's incoming edges in edge order, per producer
  // partition (forward: one producer). Deterministic from the plan, so every rank agrees.
  for (std::size_t i = 0; i < g.edges.size(); ++i) {
    ResolvedEdge& re = jg.edges[i];
    if (re.chained) continue;
    const EdgeSpec& e = g.edges[i];
    Task& t = jg.tasks[static_cast<std::size_t>(jg.task_of_node[static_cast<std::size_t>(e.to)])];
    re.first_channel = t.channels;
    t.channels += re.kind == Partitioning::kForward ? 1 : g.nodes[static_cast<std::size_t>(e.from)].parallelism;
  }
  return jg;
}

ExecutionGraph place(const StreamGraph& /*g*/, const JobGraph& jg, int num_ranks, int slots) {
  ExecutionGraph eg;
  eg.num_ranks = std::max(1, num_ranks);
  eg.slots = std::max(1, slots);
  std::vector<int> next_slot(static_cast<std::size_t>(eg.num_ranks), 0);
  for (const auto& t : jg.tasks) {
    eg.first_subtask.push_back(static_cast<int>(eg.subtasks.size()));
    for (int p = 0; p < t.parallelism; ++p) {
      SubtaskPlacement pl;
      pl.task = t.id;
      pl.partition = p;
      pl.rank = p % eg.num_ranks;  // partition p of every task on the same rank: forward stays local
      pl.slot = next_slot[static_cast<std::size_t>(pl.rank)]++ % eg.slots;
      eg.subtasks.push_back(pl);
    }
  }
  return eg;
}

namespace {

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string label(const NodeSpec& n) { return n.name == n.kind ? n.kind : n.kind + " '" + n.name + "'"; }

}  // namespace

std::string explain(const StreamGraph& g, const JobGraph& jg, const ExecutionGraph& eg,
                    ExplainFormat format) {
  std::ostringstream o;
  if (format == ExplainFormat::kText) {
    o << "== StreamGraph (logical plan): " << g.nodes.size() << " operators ==\n";
    for (const auto& n : g.nodes) {
      o << "  [" << n.id << "] " << label(n) << "  parallelism=" << n.parallelism
        << (n.bounded ? "  bounded" : "  unbounded");
      const int loop = jg.loop_of[static_cast<std::size_t>(n.id)];
      if (n.loop_head) o << "  (loop head)";
      else if (loop >= 0) o << "  (in iteration '" << g.nodes[static_cast<std::size_t>(loop)].name << "')";
      o << "\n";
      for (std::size_t i = 0; i < g.edges.size(); ++i) {
        const auto& e = g.edges[i];
        if (e.to != n.id) continue;
        o << "        <- [" << e.from << "] " << to_string(jg.edges[i].kind)
          << (e.feedback ? " (feedback)" : "") << (e.loop_exit ? " (loop result)" : "")
          << (n.num_ports > 1 ? " into input " + std::to_string(e.port) : "") << "\n";
      }
    }
    // Loops: head, body, tail (the feedback edges' sources), and the loop-invariant sub-plans
    // (everything upstream of an input that enters the body from outside, computed once).
    for (const auto& h : g.nodes) {
      if (!h.loop_head) continue;
      o << "== " << h.loop_kind << " iteration '" << h.name << "' ==\n  head: [" << h.id << "]\n  body:";
      for (const auto& n : g.nodes)
        if (jg.loop_of[static_cast<std::size_t>(n.id)] == h.id && n.id != h.id) o << " [" << n.id << "]";
      o << "\n";
      for (const auto& e : g.edges)
        if (e.feedback && e.to == h.id)
          o << "  tail: [" << e.from << "] -> feedback edge -> head input " << e.port << "\n";
      for (const auto& e : g.edges)
        if (e.loop_exit && e.from == h.id) o << "  result: [" << e.to << "]\n";
      for (const auto& e : g.edges) {
        if (jg.loop_of[static_cast<std::size_t>(e.to)] != h.id || e.to == h.id ||
            jg.loop_of[static_cast<std::size_t>(e.from)] == h.id)
          continue;
        const auto up = reach(g, e.from, true, [](const EdgeSpec& x) { return !x.feedback; });
        o << "  loop-invariant input of [" << e.to << "] (computed once, kept across supersteps):";
        for (std::size_t v = 0; v < up.size(); ++v)
          if (up[v]) o << " [" << v << "]";
        o << "\n";
      }
    }
    o << "== JobGraph: " << jg.tasks.size() << " tasks (chained operators run in one task, "
      << "no serialisation between them) ==\n";
    for (const auto& t : jg.tasks) {
      o << "  task " << t.id << "  parallelism=" << t.parallelism << ": ";
      for (std::size_t i = 0; i < t.nodes.size(); ++i)
        o << (i ? " -> " : "") << label(g.nodes[static_cast<std::size_t>(t.nodes[i])]);
      o << "\n";
      for (std::size_t i = 0; i < g.edges.size(); ++i) {
        const auto& e = g.edges[i];
        if (jg.edges[i].chained || jg.task_of_node[static_cast<std::size_t>(e.from)] != t.id) continue;
        o << "        => task " << jg.task_of_node[static_cast<std::size_t>(e.to)] << " via "
          << to_string(jg.edges[i].kind) << (e.feedback ? " (feedback)" : "") << "\n";
      }
    }
    o << "== ExecutionGraph: " << eg.subtasks.size() << " subtasks on " << eg.num_ranks
      << " rank(s) x " << eg.slots << " slot(s) ==\n";
    for (const auto& s : eg.subtasks)
      o << "  task " << s.task << " subtask " << s.partition << " -> rank " << s.rank << " slot "
        << s.slot << "\n";
    return o.str();
  }

  o << "digraph gyre {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n";
  o << "  subgraph cluster_stream {\n    label=\"StreamGraph\";\n";
  for (const auto& n : g.nodes)
    o << "    s" << n.id << " [label=\"" << dot_escape(label(n)) << "\\np=" << n.parallelism << "\""
      << (n.loop_head ? ", shape=doubleoctagon" : jg.loop_of[static_cast<std::size_t>(n.id)] >= 0 ? ", style=rounded" : "")
      << "];\n";
  for (std::size_t i = 0; i < g.edges.size(); ++i) {
    const auto& e = g.edges[i];
    o << "    s" << e.from << " -> s" << e.to << " [label=\"" << to_string(jg.edges[i].kind) << "\""
      << (e.feedback ? ", style=dashed, constraint=false" : "") << "];\n";
  }
  o << "  }\n  subgraph cluster_job {\n    label=\"JobGraph\";\n";
  for (const auto& t : jg.tasks) {
    std::string l;
    for (std::size_t i = 0; i < t.nodes.size(); ++i)
      l += (i ? " -> " : "") + label(g.nodes[static_cast<std::size_t>(t.nodes[i])]);
    o << "    t" << t.id << " [label=\"task " << t.id << ": " << dot_escape(l) << "\\np=" << t.parallelism
      << "\"];\n";
  }
  for (std::size_t i = 0; i < g.edges.size(); ++i) {
    if (jg.edges[i].chained) continue;
    const auto& e = g.edges[i];
    o << "    t" << jg.task_of_node[static_cast<std::size_t>(e.from)] << " -> t"
      << jg.task_of_node[static_cast<std::size_t>(e.to)] << " [label=\"" << to_string(jg.edges[i].kind)
      << "\"" << (e.feedback ? ", style=dashed, constraint=false" : "") << "];\n";
  }
  o << "  }\n  subgraph cluster_exec {\n    label=\"ExecutionGraph\";\n";
  for (std::size_t i = 0; i < eg.subtasks.size(); ++i) {
    const auto& s = eg.subtasks[i];
    o << "    x" << i << " [label=\"task " << s.task << "[" << s.partition << "]\\nrank " << s.rank
      << " slot " << s.slot << "\"];\n";
  }
  for (std::size_t i = 0; i < g.edges.size(); ++i) {
    if (jg.edges[i].chained) continue;
    const auto& e = g.edges[i];
    const auto& re = jg.edges[i];
    const auto& from_t = jg.tasks[static_cast<std::size_t>(jg.task_of_node[static_cast<std::size_t>(e.from)])];
    const auto& to_t = jg.tasks[static_cast<std::size_t>(jg.task_of_node[static_cast<std::size_t>(e.to)])];
    for (int p = 0; p < from_t.parallelism; ++p) {
      for (int q : destinations(re.kind, p, to_t.parallelism))
        o << "    x" << eg.subtask_id(from_t.id, p) << " -> x" << eg.subtask_id(to_t.id, q) << ";\n";
    }
  }
  o << "  }\n}\n";
  return o.str();
}

std::uint64_t plan_hash(const StreamGraph& g) {
  std::uint64_t h = 0x6779726570ULL;  // "gyrep"
  auto add = [&](std::uint64_t v) { h = mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2))); };
  auto add_str = [&](const std::string& s) { add(std::hash<std::string>{}(s)); };
  for (const auto& n : g.nodes) {
    add_str(n.kind);
    add_str(n.name);
    add(static_cast<std::uint64_t>(n.parallelism));
    add(static_cast<std::uint64_t>(n.num_ports));
  }
  for (const auto& e : g.edges) {
    add(static_cast<std::uint64_t>(e.from));
    add(static_cast<std::uint64_t>(e.to));
    add(static_cast<std::uint64_t>(e.port));
    add(static_cast<std::uint64_t>(e.requested));
    add(e.feedback ? 1 : 0);
    add(e.loop_exit ? 1 : 0);
  }
  return h;
}

}  // namespace detail
}  // namespace gyre

namespace gyre {
const char* to_string(EventKind kind) {
  switch (kind) {
    case EventKind::kEnd: return "end";
    case EventKind::kSuperstepEnd: return "superstep end";
    case EventKind::kWatermark: return "watermark";
    case EventKind::kIdle: return "idle";
    case EventKind::kBarrier: return "barrier";
  }
  return "unknown event";
}
}  // namespace gyre
