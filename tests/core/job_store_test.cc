#include "core/store/job_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "core/util/proto_time.h"

namespace quantd {
namespace {

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/jobstore-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    auto s = JobStore::Open(dir_ / "jobs.db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  v1::Job NewJob(std::string request_id = "", v1::JobKind kind = v1::JOB_KIND_QUANTIZE) {
    v1::Job job;
    job.set_id(NewJobId());
    job.set_kind(kind);
    job.set_state(v1::JOB_STATE_QUEUED);
    job.set_request_id(request_id);
    job.mutable_spec()->mutable_quantize()->set_model("m");
    *job.mutable_create_time() = NowProto();
    return job;
  }

  std::filesystem::path dir_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, InsertThenGetReturnsTheJobWithFirstEvent) {
  v1::Job job = NewJob();
  auto ev = store_->Insert(job);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->seq(), 1);
  EXPECT_EQ(ev->type(), v1::JobEvent::TYPE_CREATED);
  auto got = store_->Get(job.id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id(), job.id());
  EXPECT_EQ(got->last_event_seq(), 1);
}

TEST_F(JobStoreTest, GetUnknownIsNotFound) {
  EXPECT_EQ(store_->Get("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, DuplicateRequestIdIsRejected) {
  ASSERT_TRUE(store_->Insert(NewJob("r1")).ok());
  EXPECT_EQ(store_->Insert(NewJob("r1")).status().code(), absl::StatusCode::kAlreadyExists);
  auto found = store_->FindByRequestId("r1");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  auto none = store_->FindByRequestId("r2");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(JobStoreTest, AppendStoresEventsInOrderAndSurvivesReopen) {
  v1::Job job = NewJob();
  ASSERT_TRUE(store_->Insert(job).ok());
  job.set_last_event_seq(1);
  job.set_state(v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(store_->Append(&job, v1::JobEvent::TYPE_STARTED).ok());
  job.mutable_progress()->set_fraction(0.5);
  ASSERT_TRUE(store_->Append(&job, v1::JobEvent::TYPE_PROGRESS).ok());
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(store_->Append(&job, v1::JobEvent::TYPE_SUCCEEDED).ok());
  EXPECT_EQ(job.last_event_seq(), 4);

  store_.reset();
  auto reopened = JobStore::Open(dir_ / "jobs.db");
  ASSERT_TRUE(reopened.ok());
  store_ = *std::move(reopened);
  auto events = store_->EventsAfter(job.id(), 1, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].seq(), 2);
  EXPECT_EQ((*events)[0].type(), v1::JobEvent::TYPE_STARTED);
  EXPECT_DOUBLE_EQ((*events)[1].job().progress().fraction(), 0.5);
  EXPECT_EQ((*events)[2].job().state(), v1::JOB_STATE_SUCCEEDED);
  auto got = store_->Get(job.id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got->last_event_seq(), 4);
}

TEST_F(JobStoreTest, AppendToDeletedJobIsNotFound) {
  v1::Job job = NewJob();
  ASSERT_TRUE(store_->Insert(job).ok());
  ASSERT_TRUE(store_->Delete(job.id()).ok());
  job.set_last_event_seq(1);
  EXPECT_EQ(store_->Append(&job, v1::JobEvent::TYPE_STARTED).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(job.last_event_seq(), 1);
  EXPECT_EQ(store_->Delete(job.id()).code(), absl::StatusCode::kNotFound);
  auto events = store_->EventsAfter(job.id(), 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

TEST_F(JobStoreTest, ListPagesNewestFirstAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    v1::Job job = NewJob("", i % 2 ? v1::JOB_KIND_EVALUATE : v1::JOB_KIND_QUANTIZE);
    ids.push_back(job.id());
    ASSERT_TRUE(store_->Insert(job).ok());
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->List({}, 3, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& j : page->jobs) seen.push_back(j.id());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(seen[i], ids[6 - i]);

  JobFilter evals;
  evals.kind = v1::JOB_KIND_EVALUATE;
  auto page = store_->List(evals, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 3u);
  JobFilter done;
  done.states = {v1::JOB_STATE_SUCCEEDED};
  page = store_->List(done, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());
}

TEST_F(JobStoreTest, ListRejectsBadTokensAndSizes) {
  ASSERT_TRUE(store_->Insert(NewJob()).ok());
  ASSERT_TRUE(store_->Insert(NewJob()).ok());
  auto page = store_->List({}, 1, "");
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_page_token.empty());
  JobFilter other;
  other.kind = v1::JOB_KIND_EVALUATE;
  EXPECT_EQ(store_->List(other, 1, page->next_page_token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List({}, 1, "garbage!").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List({}, 1001, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, UnfinishedListsQueuedAndRunningOldestFirst) {
  v1::Job a = NewJob(), b = NewJob(), c = NewJob();
  ASSERT_TRUE(store_->Insert(a).ok());
  ASSERT_TRUE(store_->Insert(b).ok());
  ASSERT_TRUE(store_->Insert(c).ok());
  b.set_last_event_seq(1);
  b.set_state(v1::JOB_STATE_FAILED);
  ASSERT_TRUE(store_->Append(&b, v1::JobEvent::TYPE_FAILED).ok());
  c.set_last_event_seq(1);
  c.set_state(v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(store_->Append(&c, v1::JobEvent::TYPE_STARTED).ok());
  auto jobs = store_->Unfinished();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id(), a.id());
  EXPECT_EQ((*jobs)[1].id(), c.id());
}

TEST_F(JobStoreTest, NewJobIdsAreUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(NewJobId());
  EXPECT_EQ(ids.size(), 10000u);
}

TEST_F(JobStoreTest, CorruptDatabaseFileIsAnError) {
  const auto path = dir_ / "bad.db";
  FILE* f = fopen(path.c_str(), "wb");
  fputs("this is not a sqlite database, just text that is long enough to matter......", f);
  fclose(f);
  EXPECT_FALSE(JobStore::Open(path).ok());
}

}  // namespace
}  // namespace quantd
