// A concurrent union-find (disjoint sets) over the indices [0, n), for graph kernels that merge
// sets from several threads at once (connected components; see connected_components.cc).
//
//   gyre::graph::UnionFind uf(n);
//   tbb::parallel_for(..., [&](...) { uf.unite(u, v); });  // any threads, any order
//   uf.compress();                                         // then parent(x) is x's root
//
// unite() hooks the larger of the two roots under the smaller (a compare-and-swap on the root,
// retried if another thread hooked it first), so the root of a set is always its smallest index,
// whatever the order of the unions: the result does not depend on the threads' timing. find()
// halves the path it walks. Lock-free; no allocation after construction (4 bytes per index).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace gyre::graph {

class UnionFind {
 public:
  using Index = std::uint32_t;

  UnionFind() = default;
  // Every index in a set of its own (filled in parallel).
  explicit UnionFind(std::size_t n);

  std::size_t size() const { return parent_.size(); }

  // The root of x's set (its smallest index, once no unite() is running).
  Index find(Index x) {
    for (;;) {
      const Index p = load(x);
      if (p == x) return x;
      const Index gp = load(p);
      if (gp == p) return p;
      // Path halving: x skips to its grandparent (still in its set, smaller than x: no cycle,
      // whatever other threads wrote meanwhile).
      std::atomic_ref<Index>(parent_[x]).store(gp, std::memory_order_relaxed);
      x = gp;
    }
  }

  // Merges the sets of a and b; true if they were apart. Safe from any number of threads.
  bool unite(Index a, Index b) {
    for (;;) {
      a = find(a);
      b = find(b);
      if (a == b) return false;
      if (a > b) std::swap(a, b);
      Index expected = b;  // b is still a root, unless another thread hooked it meanwhile
      if (std::atomic_ref<Index>(parent_[b]).compare_exchange_weak(expected, a, std::memory_order_relaxed))
        return true;
    }
  }

  // x's parent as it is now (its root after compress(), while nothing unites).
  Index parent(Index x) const {
    return std::atomic_ref<const Index>(parent_[x]).load(std::memory_order_relaxed);
  }
  bool is_root(Index x) const { return parent(x) == x; }

  // Points every index straight at its root (in parallel, oneTBB). Not while unite() runs.
  void compress();

  // The parents, by index (roots after compress()).
  std::span<const Index> parents() const { return parent_; }

 private:
  Index load(Index x) const { return std::atomic_ref<const Index>(parent_[x]).load(std::memory_order_relaxed); }
  std::vector<Index> parent_;
};

}  // namespace gyre::graph
