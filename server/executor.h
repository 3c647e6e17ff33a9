// A fixed pool of threads for work that must not run on gRPC's callback
// threads (store access, planning that reads model headers).
#ifndef QUANTD_SERVER_EXECUTOR_H_
#define QUANTD_SERVER_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace quantd {

class Executor {
 public:
  explicit Executor(int threads);
  // Runs the queued work, then joins the threads.
  ~Executor();
  void Submit(std::function<void()> fn);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_EXECUTOR_H_
