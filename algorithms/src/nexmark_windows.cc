// The windowed Nexmark queries: q5, q7, q8, q11.
#include "nexmark_internal.h"

namespace gyre::nexmark::detail {

void add_q5(const Inputs&, const QueryOptions&, const ResultSink&) { throw PlanError("q5: not built yet"); }
void add_q7(const Inputs&, const QueryOptions&, const ResultSink&) { throw PlanError("q7: not built yet"); }
void add_q8(const Inputs&, const QueryOptions&, const ResultSink&) { throw PlanError("q8: not built yet"); }
void add_q11(const Inputs&, const QueryOptions&, const ResultSink&) { throw PlanError("q11: not built yet"); }

}  // namespace gyre::nexmark::detail
