// Choosing what a resumed loop starts from. See checkpoint.h.
#include "gyre/core/checkpoint.h"

#include <algorithm>

namespace gyre {

RecoveryPlan find_recovery(const CheckpointStorage& storage, const std::string& fingerprint) {
  CheckpointStorage::Listing listing = storage.list(fingerprint);
  RecoveryPlan plan;
  std::map<int, const CheckpointStorage::Entry*> at;  // superstep -> entry (a head wins over a tail)
  for (const auto& e : listing.entries) {
    auto [it, inserted] = at.emplace(e.info.superstep, &e);
    if (!inserted && e.info.self_contained && !it->second->info.self_contained) it->second = &e;
  }
  std::map<const CheckpointStorage::Entry*, bool> good;  // verified once each
  std::vector<std::string> bad;
  auto usable = [&](const CheckpointStorage::Entry* e) {
    auto it = good.find(e);
    if (it != good.end()) return it->second;
    const std::string why = storage.verify(*e);
    if (!why.empty()) bad.push_back("checkpoint " + e->path + ": " + why);
    return good[e] = why.empty();
  };
  for (auto t = at.rbegin(); t != at.rend(); ++t) {
    std::vector<CheckpointStorage::Entry> chain;
    bool ok = true;
    bool from_initial = false;
    for (int s = t->first;; --s) {
      if (s == 0) {
        from_initial = true;
        break;
      }
      const auto it = at.find(s);
      if (it == at.end() || !usable(it->second)) {
        ok = false;
        break;
      }
      chain.push_back(*it->second);
      if (it->second->info.self_contained) break;
    }
    if (!ok) continue;
    std::reverse(chain.begin(), chain.end());
    plan.superstep = t->first;
    plan.from_initial = from_initial;
    plan.chain = std::move(chain);
    break;
  }
  plan.skipped = std::move(listing.skipped);
  plan.skipped.insert(plan.skipped.end(), bad.begin(), bad.end());
  return plan;
}

}  // namespace gyre
