// Serial references over a graph: the ids that occur in its edges, ascending (the vertices the
// graph layer sees), and each id's index among them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace testenv {

struct DenseIds {
  template <class Edges>
  explicit DenseIds(const Edges& edges) {
    for (const auto& e : edges) {
      ids.push_back(e.src);
      ids.push_back(e.dst);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  std::size_t operator()(std::uint64_t id) const {
    return static_cast<std::size_t>(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  }
  std::size_t size() const { return ids.size(); }
  std::vector<std::uint64_t> ids;
};

}  // namespace testenv
