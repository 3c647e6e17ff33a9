// Durable job store: jobs and their events in SQLite (WAL). Every change to a
// job is stored together with an event that carries a snapshot of the job, so
// a watcher that resumes after event N misses nothing, across restarts too.
// Thread-safe.
#ifndef QUANTD_CORE_STORE_JOB_STORE_H_
#define QUANTD_CORE_STORE_JOB_STORE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "quantd/v1/quantd.pb.h"

struct sqlite3;

namespace quantd {

struct JobFilter {
  // Any of these states; all when empty.
  std::vector<v1::JobState> states;
  // This kind only; all when JOB_KIND_UNSPECIFIED.
  v1::JobKind kind = v1::JOB_KIND_UNSPECIFIED;
};

struct JobPage {
  std::vector<v1::Job> jobs;
  // Empty on the last page.
  std::string next_page_token;
};

class JobStore {
 public:
  // Opens (creating if needed) the database at `path`. INTERNAL when SQLite
  // fails, FAILED_PRECONDITION for a database of a newer schema.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::filesystem::path& path);
  ~JobStore();

  // Stores a new job (its id and, if set, request_id must be unused) and its
  // TYPE_CREATED event (seq 1). ALREADY_EXISTS when the id or the request_id
  // is taken. Returns the event; its snapshot is the stored job.
  absl::StatusOr<v1::JobEvent> Insert(v1::Job job);

  // NOT_FOUND when no job has this id.
  absl::StatusOr<v1::Job> Get(std::string_view id) const;

  // The job created with this request id, if any.
  absl::StatusOr<std::optional<v1::Job>> FindByRequestId(std::string_view request_id) const;

  // Stores *job as the job's new state and appends an event of `type`
  // carrying it, in one transaction; advances job->last_event_seq. NOT_FOUND
  // when the job was deleted.
  absl::StatusOr<v1::JobEvent> Append(v1::Job* job, v1::JobEvent::Type type);

  // Events of job `id` with seq > after_seq, oldest first, at most `limit`.
  absl::StatusOr<std::vector<v1::JobEvent>> EventsAfter(std::string_view id, int64_t after_seq,
                                                        int limit) const;

  // Newest first. page_size 0 means 50; more than 1000 is INVALID_ARGUMENT,
  // as is a page_token from a different filter or not from this store.
  absl::StatusOr<JobPage> List(const JobFilter& filter, int page_size,
                               std::string_view page_token) const;

  // Removes the job and its events. NOT_FOUND when absent.
  absl::Status Delete(std::string_view id);

  // Jobs in QUEUED or RUNNING state, oldest first.
  absl::StatusOr<std::vector<v1::Job>> Unfinished() const;

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}

  mutable absl::Mutex mu_;
  sqlite3* db_;
};

// A new random job id: "j" followed by 16 lower-case hex digits.
std::string NewJobId();

}  // namespace quantd

#endif  // QUANTD_CORE_STORE_JOB_STORE_H_
