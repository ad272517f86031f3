/* store_internal.h — what the store module's files (store.c, store_read.c, store_outbox.c) share
 * and no one else sees: the read connection's struct (the outbox's own connection reads through
 * the same typed loaders) and the SQLite helpers. sqlite3.h stays inside the module. */
#ifndef LS_STORE_INTERNAL_H
#define LS_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define STORE_READ_STATEMENTS 24 /* at least store_read.c's R_COUNT (checked there) */

struct store_reader {
  sqlite3 *db;
  sqlite3_stmt *st[STORE_READ_STATEMENTS]; /* prepared on first use */
  int in_use;
};

/* An SQLite result code as the project's (0, LS_EBUSY, LS_ENOMEM, LS_ETOOBIG, LS_EIO). */
int store_code_of(int sqlite_rc);
/* sqlite3_exec: 0 or a project code, with SQLite's message in err when err is not NULL. */
int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* One more connection to s's database, with s's busy timeout and extended result codes. */
int store_open_conn(store *s, sqlite3 **out, char *err, size_t errlen);
/* The await_points upsert (store_endpoints.c): one batch's stored awaits (stored[i] for await i)
 * summed per (file, line) into session sid's rows, with st prepared from STORE_POINT_UPSERT. */
#define STORE_POINT_UPSERT                                                                         \
  "INSERT INTO await_points(sid, file, line, what, func, n, total_ns, max_ns)"                     \
  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(sid, file, line) DO UPDATE SET"             \
  " n = n + excluded.n, total_ns = total_ns + excluded.total_ns,"                                  \
  " max_ns = max(max_ns, excluded.max_ns), what = coalesce(what, excluded.what),"                  \
  " func = coalesce(func, excluded.func)"
int store_points_put(sqlite3 *db, sqlite3_stmt *st, int64_t sid, const ingest_batch *b,
                     const unsigned char *stored);
/* Runs fn(db, arg) in a write transaction on r's connection (store_rows.c): ends r's read
 * transaction, lifts query_only, waits for the write lock (busy timeout), commits when fn returns
 * 0 (else rolls back), and opens a new read transaction whatever happened. fn's code, or the
 * transaction's. */
int store_write_on_reader(store_reader *r, int (*fn)(sqlite3 *db, void *arg), void *arg);
/* Marks the rollup block of session ?1 dirty (store_rollup.c), in the batch's transaction. */
#define STORE_ROLLUP_MARK "INSERT OR IGNORE INTO ep_dirty(blk) VALUES(?1 >> 10)"
_Static_assert(STORE_ROLLUP_BLOCK == 1 << 10, "STORE_ROLLUP_MARK and 008's sid >> 10 use the block size");
/* The dirty block to rebuild next (not the newest unless ?1, idle), through st prepared from
 * STORE_ROLLUP_DUE (it runs after every group of batches: kept prepared); -1 when none is due. */
#define STORE_ROLLUP_DUE                                                                           \
  "SELECT blk FROM ep_dirty WHERE ?1 OR blk < (SELECT coalesce(max(sid), 0) >> 10 FROM sessions)"  \
  " ORDER BY blk LIMIT 1"
int store_rollup_due(sqlite3 *db, sqlite3_stmt *st, int idle, int64_t *blk);
/* Rebuilds block blk's rollup from its sessions' rows, in the caller's transaction. */
int store_rollup_build(sqlite3 *db, int64_t blk);
/* Finalizes the statements r prepared (its connection stays open). */
void store_reader_finalize(store_reader *r);

#endif
