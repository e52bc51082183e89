#include "gyre/core/fusion.h"

#include <memory>

namespace gyre::detail {

std::string fused_label(const FusionInfo& fi, bool names) {
  std::string s;
  for (const auto& st : fi.stages) {
    if (!s.empty()) s += " -> ";
    s += names ? *st.name : st.kind;
  }
  return s;
}

namespace {

// A stage's spec as a node of its own: its name, the chain's parallelism and boundedness.
NodeSpec stage_node(const NodeSpec& proto, const NodeSpec& chain, const std::string& kind, const std::string& name) {
  NodeSpec s = proto;
  s.kind = kind;
  s.name = name;
  s.parallelism = chain.parallelism;
  s.bounded = chain.bounded;
  s.fusion.reset();
  return s;
}

int add(StreamGraph& g, NodeSpec spec) {
  spec.id = static_cast<int>(g.nodes.size());
  g.nodes.push_back(std::move(spec));
  return g.nodes.back().id;
}

}  // namespace

void split_fused(StreamGraph& g, int node, int stage) {
  const auto x = static_cast<std::size_t>(node);
  // Copies: g.nodes grows below.
  const NodeSpec chain = g.nodes[x];
  GYRE_CHECK(chain.fusion && chain.fusion->moved.empty(), "split of a node without a whole fused chain");
  const FusionInfo fi = *chain.fusion;
  const int n = static_cast<int>(fi.stages.size());
  GYRE_CHECK(stage >= 1 && stage < n, "split of a fused chain outside it");

  std::vector<std::pair<int, int>> moved(static_cast<std::size_t>(n));
  // Stages 1..stage, still fused, in a new node that takes over the chain's input edges.
  auto head = std::make_shared<FusionInfo>();
  head->stages.assign(fi.stages.begin(), fi.stages.begin() + stage);
  const auto& last_kept = fi.stages[static_cast<std::size_t>(stage - 1)];
  NodeSpec p = stage_node(last_kept.prefix, chain, fused_label(*head, false), fused_label(*head, true));
  p.fusion = head;
  const int first = add(g, std::move(p));
  for (auto& e : g.edges)
    if (e.to == node) e.to = first;
  for (int i = 0; i < stage; ++i) moved[static_cast<std::size_t>(i)] = {first, i + 1};

  // The later stages one node each; the last one keeps the id (and the consumers) of `node`.
  int prev = first;
  for (int i = stage; i < n; ++i) {
    const auto& st = fi.stages[static_cast<std::size_t>(i)];
    NodeSpec s = stage_node(st.alone, chain, st.kind, *st.name);
    int id = node;
    if (i + 1 < n) {
      id = add(g, std::move(s));
    } else {
      s.id = node;
      g.nodes[x] = std::move(s);
    }
    g.edges.push_back({prev, id, 0, st.input, false, {}});
    moved[static_cast<std::size_t>(i)] = {id, 0};
    prev = id;
  }
  auto rest = std::make_shared<FusionInfo>();
  rest->moved = std::move(moved);
  g.nodes[x].fusion = std::move(rest);
}

}  // namespace gyre::detail
