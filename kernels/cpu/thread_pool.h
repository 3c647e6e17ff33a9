// A fixed pool of worker threads for data-parallel loops.
#ifndef QUANTD_KERNELS_CPU_THREAD_POOL_H_
#define QUANTD_KERNELS_CPU_THREAD_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quantd {

class ThreadPool {
 public:
  // `threads` workers in all, counting the thread that calls ParallelFor
  // (so threads - 1 are started); 0 means std::thread::hardware_concurrency.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that run a ParallelFor, the caller included.
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) for every i in [0, n), each once, spread over the pool and
  // the calling thread, in increasing order of claim; returns when all calls
  // have returned. fn must not throw. Calls from several threads are
  // serialised.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunTasks();

  std::mutex call_mu_;  // one ParallelFor at a time
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t next_ = 0;      // next index to claim (guarded by mu_)
  int64_t finished_ = 0;  // indices whose call returned
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace quantd

#endif  // QUANTD_KERNELS_CPU_THREAD_POOL_H_
