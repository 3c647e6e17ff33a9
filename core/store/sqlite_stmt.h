// A small RAII wrapper around a prepared SQLite statement.
#ifndef QUANTD_CORE_STORE_SQLITE_STMT_H_
#define QUANTD_CORE_STORE_SQLITE_STMT_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace quantd {

// INTERNAL with SQLite's message for `db`, prefixed by `what`.
absl::Status SqliteError(sqlite3* db, std::string_view what);

// Runs SQL without results (may hold several statements).
absl::Status SqliteExec(sqlite3* db, const char* sql);

class SqliteStmt {
 public:
  // INTERNAL when the SQL does not compile.
  static absl::StatusOr<SqliteStmt> Prepare(sqlite3* db, std::string_view sql);
  SqliteStmt(SqliteStmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt() { sqlite3_finalize(stmt_); }

  // Parameters are 1-based, as in SQLite.
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }

  // true when a row is ready, false when done; ALREADY_EXISTS for a
  // constraint violation, INTERNAL otherwise.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows.
  absl::Status Run();

  // Columns are 0-based.
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Blob(int col) const;

 private:
  SqliteStmt(sqlite3* db, sqlite3_stmt* s) : db_(db), stmt_(s) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

}  // namespace quantd

#endif  // QUANTD_CORE_STORE_SQLITE_STMT_H_
