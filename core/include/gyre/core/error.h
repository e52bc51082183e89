// Errors and invariant checks.
//
// - GYRE_CHECK(cond, msg): a broken invariant inside gyre; prints file, line and message, aborts.
//   The condition must have no side effects.
// - PlanError: the plan is invalid; thrown before any data moves, the message says what to change.
// - JobError: the job failed while running (a user function threw, an I/O error, ...); the
//   message names the operator, the subtask and the rank; the original exception is kept.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace gyre {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An invalid plan, found before any data moved.
class PlanError : public Error {
 public:
  using Error::Error;
};

// A job that failed while running.
class JobError : public Error {
 public:
  JobError(const std::string& message, std::string op_name, std::exception_ptr cause)
      : Error(message), op_name_(std::move(op_name)), cause_(std::move(cause)) {}
  // Name of the operator whose function threw (empty if the failure was not in an operator).
  const std::string& operator_name() const { return op_name_; }
  // The exception thrown by user code, for rethrow_exception.
  const std::exception_ptr& cause() const { return cause_; }

 private:
  std::string op_name_;
  std::exception_ptr cause_;
};

namespace detail {
[[noreturn]] void check_failed(const char* cond, const std::string& msg, const char* file,
                               int line);

// Thrown inside a running job to carry the failing operator's name up to the scheduler.
class OperatorError : public std::exception {
 public:
  OperatorError(std::string op, std::exception_ptr cause, std::string what)
      : op_(std::move(op)), cause_(std::move(cause)), what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const std::string& op() const { return op_; }
  const std::exception_ptr& cause() const { return cause_; }

 private:
  std::string op_;
  std::exception_ptr cause_;
  std::string what_;
};

// Call from inside a catch block: rethrows an OperatorError unchanged, wraps anything else
// as an OperatorError of operator `op`.
[[noreturn]] void rethrow_in_operator(const std::string& op);
}  // namespace detail
}  // namespace gyre

#define GYRE_CHECK(cond, msg)                                             \
  do {                                                                    \
    if (!(cond)) ::gyre::detail::check_failed(#cond, (msg), __FILE__, __LINE__); \
  } while (0)
