// Cooperative cancellation: long loops call Check() between tensors or layers.
#ifndef QUANTD_CORE_UTIL_CANCEL_H_
#define QUANTD_CORE_UTIL_CANCEL_H_

#include <atomic>

#include "absl/status/status.h"

namespace quantd {

class CancelToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // CANCELLED once Cancel() was called, else OK.
  absl::Status Check() const {
    return cancelled() ? absl::CancelledError("job cancelled") : absl::OkStatus();
  }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace quantd

#endif  // QUANTD_CORE_UTIL_CANCEL_H_
