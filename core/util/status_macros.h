// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status, which Debian's Abseil
// (20220623) does not ship.
#ifndef QUANTD_CORE_UTIL_STATUS_MACROS_H_
#define QUANTD_CORE_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QUANTD_CONCAT_INNER(a, b) a##b
#define QUANTD_CONCAT(a, b) QUANTD_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status quantd_status_ = (expr);          \
    if (!quantd_status_.ok()) return quantd_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr, or returns
// its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  QUANTD_ASSIGN_OR_RETURN_IMPL(QUANTD_CONCAT(quantd_statusor_, __LINE__), lhs, expr)

#define QUANTD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

#endif  // QUANTD_CORE_UTIL_STATUS_MACROS_H_
