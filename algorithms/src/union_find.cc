// The concurrent union-find's parallel parts. See union_find.h.
#include "gyre/algorithms/union_find.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace gyre::graph {

UnionFind::UnionFind(std::size_t n) : parent_(n) {
  if (n > std::numeric_limits<Index>::max())
    throw std::length_error("UnionFind: " + std::to_string(n) + " indices do not fit in 32 bits");
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1 << 16), [this](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i < r.end(); ++i) parent_[i] = static_cast<Index>(i);
  });
}

void UnionFind::compress() {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, parent_.size(), 1 << 14),
                    [this](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i < r.end(); ++i) {
                        const auto x = static_cast<Index>(i);
                        const Index root = find(x);
                        if (load(x) != root) std::atomic_ref<Index>(parent_[i]).store(root, std::memory_order_relaxed);
                      }
                    });
}

}  // namespace gyre::graph
