#include "core/store/job_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/store/sqlite_stmt.h"
#include "core/util/proto_time.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace {

constexpr int kSchemaVersion = 1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  rowid INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  request_id TEXT UNIQUE,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  job BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events(
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;
)sql";

absl::StatusOr<v1::Job> ParseJob(const std::string& blob) {
  v1::Job job;
  if (!job.ParseFromString(blob)) return absl::DataLossError("job store: unreadable job record");
  return job;
}

// Page tokens are opaque to clients: "<filter fingerprint>:<last rowid>".
std::string FilterKey(const JobFilter& f) {
  std::vector<int> states(f.states.begin(), f.states.end());
  std::sort(states.begin(), states.end());
  return absl::StrCat(absl::StrJoin(states, ","), "/", static_cast<int>(f.kind));
}

std::string MakeToken(const JobFilter& f, int64_t rowid) {
  return absl::WebSafeBase64Escape(absl::StrCat(FilterKey(f), ":", rowid));
}

absl::StatusOr<int64_t> ParseToken(const JobFilter& f, std::string_view token) {
  std::string raw;
  const auto bad = absl::InvalidArgumentError("page_token is not valid for this request");
  if (!absl::WebSafeBase64Unescape(std::string(token), &raw)) return bad;
  const size_t colon = raw.rfind(':');
  if (colon == std::string::npos || raw.substr(0, colon) != FilterKey(f)) return bad;
  int64_t rowid = 0;
  if (!absl::SimpleAtoi(raw.substr(colon + 1), &rowid) || rowid <= 0) return bad;
  return rowid;
}

v1::JobEvent MakeEvent(const v1::Job& job, v1::JobEvent::Type type) {
  v1::JobEvent ev;
  ev.set_seq(job.last_event_seq());
  *ev.mutable_time() = NowProto();
  ev.set_type(type);
  *ev.mutable_job() = job;
  return ev;
}

class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  absl::Status Begin() { return SqliteExec(db_, "BEGIN IMMEDIATE"); }
  absl::Status Commit() {
    RETURN_IF_ERROR(SqliteExec(db_, "COMMIT"));
    done_ = true;
    return absl::OkStatus();
  }
  ~Transaction() {
    if (!done_) SqliteExec(db_, "ROLLBACK").IgnoreError();
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace

std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrFormat("j%016x", rng());
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, absl::StrCat("open ", path.string()));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL with synchronous=FULL: a committed event survives a crash of the
  // process and of the machine.
  RETURN_IF_ERROR(SqliteExec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  RETURN_IF_ERROR(SqliteExec(db, kSchema));
  ASSIGN_OR_RETURN(SqliteStmt get,
                   SqliteStmt::Prepare(db, "SELECT value FROM meta WHERE key='schema'"));
  ASSIGN_OR_RETURN(bool has_row, get.Step());
  if (has_row) {
    int version = 0;
    if (!absl::SimpleAtoi(get.Blob(0), &version) || version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat("job store ", path.string(), " has schema ",
                                                        get.Blob(0), "; this quantd reads schema ",
                                                        kSchemaVersion));
    }
  } else {
    ASSIGN_OR_RETURN(SqliteStmt put,
                     SqliteStmt::Prepare(db, "INSERT INTO meta(key, value) VALUES('schema', ?)"));
    put.Bind(1, std::to_string(kSchemaVersion));
    RETURN_IF_ERROR(put.Run());
  }
  return store;
}

JobStore::~JobStore() { sqlite3_close(db_); }

absl::StatusOr<v1::JobEvent> JobStore::Insert(v1::Job job) {
  absl::MutexLock lock(&mu_);
  job.set_last_event_seq(1);
  v1::JobEvent ev = MakeEvent(job, v1::JobEvent::TYPE_CREATED);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.Begin());
  ASSIGN_OR_RETURN(SqliteStmt ins,
                   SqliteStmt::Prepare(db_,
                                       "INSERT INTO jobs(id, request_id, kind, state, job) "
                                       "VALUES(?, ?, ?, ?, ?)"));
  ins.Bind(1, job.id());
  if (job.request_id().empty()) {
    ins.BindNull(2);
  } else {
    ins.Bind(2, job.request_id());
  }
  ins.Bind(3, static_cast<int64_t>(job.kind()));
  ins.Bind(4, static_cast<int64_t>(job.state()));
  ins.BindBlob(5, job.SerializeAsString());
  RETURN_IF_ERROR(ins.Run());
  ASSIGN_OR_RETURN(
      SqliteStmt ev_ins,
      SqliteStmt::Prepare(db_, "INSERT INTO events(job_id, seq, event) VALUES(?, ?, ?)"));
  ev_ins.Bind(1, job.id());
  ev_ins.Bind(2, ev.seq());
  ev_ins.BindBlob(3, ev.SerializeAsString());
  RETURN_IF_ERROR(ev_ins.Run());
  RETURN_IF_ERROR(tx.Commit());
  return ev;
}

absl::StatusOr<v1::Job> JobStore::Get(std::string_view id) const {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStmt q, SqliteStmt::Prepare(db_, "SELECT job FROM jobs WHERE id = ?"));
  q.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no job \"", std::string(id), "\""));
  return ParseJob(q.Blob(0));
}

absl::StatusOr<std::optional<v1::Job>> JobStore::FindByRequestId(
    std::string_view request_id) const {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStmt q,
                   SqliteStmt::Prepare(db_, "SELECT job FROM jobs WHERE request_id = ?"));
  q.Bind(1, request_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<v1::Job>();
  ASSIGN_OR_RETURN(v1::Job job, ParseJob(q.Blob(0)));
  return std::optional<v1::Job>(std::move(job));
}

absl::StatusOr<v1::JobEvent> JobStore::Append(v1::Job* job, v1::JobEvent::Type type) {
  absl::MutexLock lock(&mu_);
  job->set_last_event_seq(job->last_event_seq() + 1);
  v1::JobEvent ev = MakeEvent(*job, type);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.Begin());
  ASSIGN_OR_RETURN(SqliteStmt up,
                   SqliteStmt::Prepare(db_, "UPDATE jobs SET state = ?, job = ? WHERE id = ?"));
  up.Bind(1, static_cast<int64_t>(job->state()));
  up.BindBlob(2, job->SerializeAsString());
  up.Bind(3, job->id());
  RETURN_IF_ERROR(up.Run());
  if (sqlite3_changes(db_) != 1) {
    job->set_last_event_seq(job->last_event_seq() - 1);
    return absl::NotFoundError(absl::StrCat("no job \"", job->id(), "\""));
  }
  ASSIGN_OR_RETURN(
      SqliteStmt ins,
      SqliteStmt::Prepare(db_, "INSERT INTO events(job_id, seq, event) VALUES(?, ?, ?)"));
  ins.Bind(1, job->id());
  ins.Bind(2, ev.seq());
  ins.BindBlob(3, ev.SerializeAsString());
  absl::Status s = ins.Run();
  if (s.ok()) s = tx.Commit();
  if (!s.ok()) {
    job->set_last_event_seq(job->last_event_seq() - 1);
    return s;
  }
  return ev;
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStore::EventsAfter(std::string_view id,
                                                                int64_t after_seq,
                                                                int limit) const {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStmt q, SqliteStmt::Prepare(db_,
                                                     "SELECT event FROM events WHERE job_id = ? "
                                                     "AND seq > ? ORDER BY seq LIMIT ?"));
  q.Bind(1, id);
  q.Bind(2, after_seq);
  q.Bind(3, static_cast<int64_t>(limit));
  std::vector<v1::JobEvent> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    v1::JobEvent ev;
    if (!ev.ParseFromString(q.Blob(0))) {
      return absl::DataLossError("job store: unreadable event record");
    }
    out.push_back(std::move(ev));
  }
  return out;
}

absl::StatusOr<JobPage> JobStore::List(const JobFilter& filter, int page_size,
                                       std::string_view page_token) const {
  if (page_size < 0 || page_size > 1000) {
    return absl::InvalidArgumentError("page_size must be between 0 and 1000");
  }
  if (page_size == 0) page_size = 50;
  int64_t before = INT64_MAX;
  if (!page_token.empty()) {
    ASSIGN_OR_RETURN(before, ParseToken(filter, page_token));
  }
  std::string sql = "SELECT rowid, job FROM jobs WHERE rowid < ?";
  if (!filter.states.empty()) {
    std::vector<int> states(filter.states.begin(), filter.states.end());
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(states, ","), ")");
  }
  if (filter.kind != v1::JOB_KIND_UNSPECIFIED) {
    absl::StrAppend(&sql, " AND kind = ", static_cast<int>(filter.kind));
  }
  absl::StrAppend(&sql, " ORDER BY rowid DESC LIMIT ?");
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStmt q, SqliteStmt::Prepare(db_, sql));
  q.Bind(1, before);
  q.Bind(2, static_cast<int64_t>(page_size) + 1);
  JobPage page;
  int64_t last_rowid = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = MakeToken(filter, last_rowid);
      break;
    }
    last_rowid = q.Int(0);
    ASSIGN_OR_RETURN(v1::Job job, ParseJob(q.Blob(1)));
    page.jobs.push_back(std::move(job));
  }
  return page;
}

absl::Status JobStore::Delete(std::string_view id) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  RETURN_IF_ERROR(tx.Begin());
  ASSIGN_OR_RETURN(SqliteStmt del, SqliteStmt::Prepare(db_, "DELETE FROM jobs WHERE id = ?"));
  del.Bind(1, id);
  RETURN_IF_ERROR(del.Run());
  if (sqlite3_changes(db_) != 1)
    return absl::NotFoundError(absl::StrCat("no job \"", std::string(id), "\""));
  ASSIGN_OR_RETURN(SqliteStmt dev, SqliteStmt::Prepare(db_, "DELETE FROM events WHERE job_id = ?"));
  dev.Bind(1, id);
  RETURN_IF_ERROR(dev.Run());
  return tx.Commit();
}

absl::StatusOr<std::vector<v1::Job>> JobStore::Unfinished() const {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SqliteStmt q, SqliteStmt::Prepare(
                                     db_, absl::StrCat("SELECT job FROM jobs WHERE state IN (",
                                                       static_cast<int>(v1::JOB_STATE_QUEUED), ",",
                                                       static_cast<int>(v1::JOB_STATE_RUNNING),
                                                       ") ORDER BY rowid")));
  std::vector<v1::Job> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(v1::Job job, ParseJob(q.Blob(0)));
    out.push_back(std::move(job));
  }
  return out;
}

}  // namespace quantd
