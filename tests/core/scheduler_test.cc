#include "core/sched/scheduler.h"

#include <gtest/gtest.h>

namespace quantd {
namespace {

PendingJob Job(std::string id, int priority, uint64_t order, int64_t mem = 1,
               v1::DevicePreference dev = v1::DEVICE_PREFERENCE_AUTO, bool gpu_capable = true) {
  PendingJob j;
  j.job_id = std::move(id);
  j.priority = priority;
  j.order = order;
  j.memory_bytes = mem;
  j.device = dev;
  j.gpu_capable = gpu_capable;
  return j;
}

class SchedulerTest : public ::testing::Test {
 protected:
  std::vector<WorkerSlot> workers_ = {{"gpu0", true, 80, false}, {"cpu0", false, 200, false}};
  Scheduler s_;
};

TEST_F(SchedulerTest, HigherPriorityFirstThenCreationOrder) {
  workers_ = {{"cpu0", false, 200, false}};
  s_.Push(Job("a", 0, 1));
  s_.Push(Job("b", 5, 2));
  s_.Push(Job("c", 5, 3));
  s_.Push(Job("d", 0, 0));
  std::vector<std::string> order;
  while (auto a = s_.Next(workers_)) order.push_back(a->job.job_id);
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c", "d", "a"}));
}

TEST_F(SchedulerTest, PrefersAnIdleGpuForAutoJobs) {
  s_.Push(Job("a", 0, 1));
  auto a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->worker, 0u);
}

TEST_F(SchedulerTest, PlacesWhereMemoryFits) {
  s_.Push(Job("big", 0, 1, 150));
  auto a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(workers_[a->worker].id, "cpu0");
}

TEST_F(SchedulerTest, HonoursDevicePreference) {
  s_.Push(Job("cpu-only", 0, 1, 1, v1::DEVICE_PREFERENCE_CPU));
  auto a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(workers_[a->worker].id, "cpu0");
  s_.Push(Job("no-gpu-path", 0, 2, 1, v1::DEVICE_PREFERENCE_AUTO, false));
  a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(workers_[a->worker].id, "cpu0");
}

TEST_F(SchedulerTest, WaitingJobKeepsItsWorkersButOthersBackfill) {
  workers_[0].busy = true;  // gpu0 busy
  s_.Push(Job("gpu-job", 9, 1, 1, v1::DEVICE_PREFERENCE_GPU));
  s_.Push(Job("auto-job", 0, 2, 1));
  auto a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->job.job_id, "auto-job");
  EXPECT_EQ(workers_[a->worker].id, "cpu0");
  EXPECT_EQ(s_.size(), 1u);
}

TEST_F(SchedulerTest, WaitingJobGetsTheFirstWorkerThatFreesUp) {
  workers_ = {{"cpu0", false, 200, true}, {"cpu1", false, 100, false}};
  s_.Push(Job("big", 0, 1, 150));  // fits only cpu0, which is busy
  s_.Push(Job("small", 0, 2, 1));  // backfills cpu1
  s_.Push(Job("small2", 0, 3, 1));
  auto a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->job.job_id, "small");
  workers_[1].busy = true;
  EXPECT_FALSE(s_.Next(workers_));
  workers_[0].busy = false;  // cpu0 frees up: big, not small2, gets it
  a = s_.Next(workers_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->job.job_id, "big");
}

TEST_F(SchedulerTest, NothingWhenAllBusy) {
  for (auto& w : workers_) w.busy = true;
  s_.Push(Job("a", 0, 1));
  EXPECT_FALSE(s_.Next(workers_));
  EXPECT_EQ(s_.size(), 1u);
}

TEST_F(SchedulerTest, EraseRemovesQueuedJob) {
  s_.Push(Job("a", 0, 1));
  EXPECT_TRUE(s_.Erase("a"));
  EXPECT_FALSE(s_.Erase("a"));
  EXPECT_TRUE(s_.empty());
}

TEST_F(SchedulerTest, CheckPlaceableExplainsWhy) {
  EXPECT_TRUE(CheckPlaceable(Job("a", 0, 1, 100), workers_).ok());
  EXPECT_EQ(CheckPlaceable(Job("a", 0, 1, 1000), workers_).code(),
            absl::StatusCode::kResourceExhausted);
  std::vector<WorkerSlot> cpu_only = {{"cpu0", false, 200, false}};
  EXPECT_EQ(CheckPlaceable(Job("a", 0, 1, 1, v1::DEVICE_PREFERENCE_GPU), cpu_only).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
