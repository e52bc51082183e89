#include "gyre/core/error.h"

#include <cstdio>
#include <cstdlib>

namespace gyre::detail {

void check_failed(const char* cond, const std::string& msg, const char* file, int line) {
  std::fprintf(stderr, "gyre: internal check failed at %s:%d: %s (%s)\n", file, line, msg.c_str(),
               cond);
  std::fflush(stderr);
  std::abort();
}

void rethrow_in_operator(const std::string& op) {
  try {
    throw;
  } catch (const OperatorError&) {
    throw;
  } catch (const std::exception& e) {
    throw OperatorError(op, std::current_exception(), e.what());
  } catch (...) {
    throw OperatorError(op, std::current_exception(), "unknown exception");
  }
}

}  // namespace gyre::detail
