/* store_maintain.c — the store's housekeeping on the write connection (store.h): purging
 * deleted sessions a budget of rows at a time, giving free pages back (incremental vacuum),
 * rebuilding endpoint rollups, retention (--max-sessions, --max-age, --max-db-size), the disk
 * reserve for a full disk, and the WAL checkpoints writer.c asks for after each group. Every
 * step runs in the caller's transaction or one of its own, short, so ingest never waits long. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "store.h"
#include "store_internal.h"

/* Up to `budget` rows of one purged session per call, in the caller's transaction. Row values
 * pick the rows by primary key (or rowid) so each statement touches at most `budget` rows. */
static const char *const purge_sql[] = {
  "DELETE FROM steps WHERE (sid, task, t) IN (SELECT sid, task, t FROM steps WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM awaits WHERE (sid, task, t) IN (SELECT sid, task, t FROM awaits WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM blocks WHERE rowid IN (SELECT rowid FROM blocks WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM lag WHERE rowid IN (SELECT rowid FROM lag WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM await_points WHERE (sid, file, line) IN (SELECT sid, file, line FROM await_points WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_rows WHERE (sid, pos) IN (SELECT sid, pos FROM task_rows WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_rows_add WHERE (sid, id) IN (SELECT sid, id FROM task_rows_add WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_rows_orphans WHERE (sid, parent, id) IN"
  " (SELECT sid, parent, id FROM task_rows_orphans WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM conc_mip WHERE (sid, level, bucket) IN (SELECT sid, level, bucket FROM conc_mip WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM session_stats WHERE sid = ?1 AND ?2 > 0",
  "DELETE FROM task_by_created WHERE (sid, created, id) IN (SELECT sid, created, id FROM task_by_created WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_by_busy WHERE (sid, busy_ns, id) IN (SELECT sid, busy_ns, id FROM task_by_busy WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_by_wait WHERE (sid, wait_ns, id) IN (SELECT sid, wait_ns, id FROM task_by_wait WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_by_duration WHERE (sid, duration, id) IN"
  " (SELECT sid, duration, id FROM task_by_duration WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM task_keys_done WHERE sid = ?1 AND ?2 > 0",
  "DELETE FROM tasks WHERE (sid, id) IN (SELECT sid, id FROM tasks WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM batches WHERE (sid, batch) IN (SELECT sid, batch FROM batches WHERE sid = ?1 LIMIT ?2)",
  /* a deleted session is not forwarded any more: its outbox goes with it */
  "DELETE FROM otlp_outbox WHERE (sid, part) IN (SELECT sid, part FROM otlp_outbox WHERE sid = ?1 LIMIT ?2)",
  "DELETE FROM otlp_sessions WHERE sid = ?1 AND ?2 > 0",
  "DELETE FROM purge WHERE sid = ?1 AND ?2 > 0",
};

static int step_sql(store *s, const char *sql, int64_t a, int64_t b, int64_t *changes)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->w, sql, -1, &st, NULL);
  if(rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, a);
    if(sqlite3_bind_parameter_count(st) >= 2)
      sqlite3_bind_int64(st, 2, b);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if(changes)
    *changes = sqlite3_changes64(s->w);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : (store_code_of(rc) ? store_code_of(rc) : LS_EIO);
}

/* One transaction removing up to `budget` rows of deleted sessions. */
static int purge_some(store *s, int64_t budget)
{
  int rc = store_begin(s);
  if(rc)
    return rc;
  int64_t sid = -1;
  rc = store_pragma_int(s->w, "SELECT coalesce(min(sid), -1) FROM purge", &sid);
  for(size_t i = 0; !rc && sid >= 0 && budget > 0 && i < sizeof(purge_sql) / sizeof(purge_sql[0]); i++) {
    int64_t n = 0;
    rc = step_sql(s, purge_sql[i], sid, budget, &n);
    budget -= n;
  }
  if(!rc && sid < 0)
    s->purge_pending = 0;
  if(!rc && sid >= 0) {
    s->vacuum_pending = 1;
    store_sites_purged(s->sites);
  }
  if(rc)
    store_rollback(s);
  else
    rc = store_commit(s);
  return rc;
}

/* Sites no awaits row names any more, removed in one transaction (store_sites.c says when). */
static int sweep_sites(store *s)
{
  int rc = store_begin(s);
  int64_t removed = 0;
  if(!rc)
    rc = store_sites_sweep(s->sites, s->w, &removed);
  if(rc) {
    store_rollback(s);
    return rc;
  }
  if((rc = store_commit(s)))
    return rc;
  if(removed) {
    s->vacuum_pending = 1;
    log_msg(LOG_DEBUG, "store: removed %lld await sites no session names any more", (long long)removed);
  }
  return 0;
}

/* Gives up to `pages` free pages back to the file system (auto_vacuum = INCREMENTAL). */
static int vacuum_some(store *s, int64_t pages, int64_t *reclaimed)
{
  int64_t before = 0, after = 0, page = 0;
  int rc = store_pragma_int(s->w, "PRAGMA freelist_count", &before);
  if(!rc)
    rc = store_pragma_int(s->w, "PRAGMA page_size", &page);
  if(!rc && before == 0) {
    s->vacuum_pending = 0;
    return 0;
  }
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld)", (long long)pages);
  if(!rc)
    rc = store_exec(s->w, sql, NULL, 0);
  if(!rc)
    rc = store_pragma_int(s->w, "PRAGMA freelist_count", &after);
  if(!rc) {
    *reclaimed += (before - after) * page;
    if(after == 0)
      s->vacuum_pending = 0;
  }
  return rc;
}

/* One endpoint rollup block rebuilt, in one transaction; *rolled: one was (more may wait). While
 * batches come (not idle: one came since the last step) the newest block waits, rollup_pending
 * staying set for a quiet step. */
static int rollup_some(store *s, int idle, int *rolled)
{
  int64_t blk = -1;
  int rc = store_rollup_due(s->w, s->ws[W_DUE], idle, &blk);
  if(!rc && blk < 0 && idle)
    s->rollup_pending = 0;
  if(rc || blk < 0)
    return rc;
  if((rc = store_begin(s)))
    return rc;
  if((rc = store_rollup_build(s->w, blk))) {
    store_rollback(s);
    return rc;
  }
  if((rc = store_commit(s)))
    return rc;
  *rolled = 1;
  return 0;
}

/* Deletes the oldest sessions beyond the limits, in one transaction. */
static int apply_retention(store *s, const store_limits *l, int64_t now_s, int64_t deleted[3])
{
  int rc = store_begin(s);
  if(rc)
    return rc;
  int64_t n = 0;
  if(l->max_age_s > 0) {
    n = store_tombstone(s, "arrived_s < ?1", now_s - l->max_age_s);
    deleted[1] += n > 0 ? n : 0;
  }
  if(n >= 0 && l->max_sessions > 0) {
    n = store_tombstone(s, "sid IN (SELECT sid FROM sessions ORDER BY sid DESC LIMIT -1 OFFSET ?1)", l->max_sessions);
    deleted[0] += n > 0 ? n : 0;
  }
  /* Size: only once earlier deletes are purged, or the same excess would be counted twice.
   * Used pages (not the file, whose free pages the vacuum gives back) over the limit: delete
   * that share of the sessions, oldest first, never the newest one (it may be recording). */
  if(n >= 0 && l->max_db_bytes > 0 && !s->purge_pending) {
    int64_t pages = 0, free_pages = 0, page = 0, count = 0;
    int prc = store_pragma_int(s->w, "PRAGMA page_count", &pages);
    if(!prc)
      prc = store_pragma_int(s->w, "PRAGMA freelist_count", &free_pages);
    if(!prc)
      prc = store_pragma_int(s->w, "PRAGMA page_size", &page);
    if(!prc)
      prc = store_pragma_int(s->w, "SELECT count(*) FROM sessions", &count);
    int64_t used = (pages - free_pages) * page;
    n = prc;
    if(!prc && used > l->max_db_bytes && count > 1) {
      int64_t k = (int64_t)((double)count * (double)(used - l->max_db_bytes) / (double)used) + 1;
      if(k > count - 1)
        k = count - 1;
      n = store_tombstone(s, "sid IN (SELECT sid FROM sessions ORDER BY sid LIMIT ?1)", k);
      deleted[2] += n > 0 ? n : 0;
    }
  }
  if(n < 0) {
    store_rollback(s);
    deleted[0] = deleted[1] = deleted[2] = 0;
    return (int)n;
  }
  return store_commit(s);
}

int store_release_reserve(store *s)
{
  if(!s->reserve_held || (sqlite3_extended_errcode(s->w) & 0xff) != SQLITE_FULL)
    return 0;
  unlink(s->reserve);
  s->reserve_held = 0;
  log_msg(LOG_WARN, "store: disk full: released the %lld-byte reserve for deletes and housekeeping",
          (long long)RESERVE_BYTES);
  /* the WAL may hold pages past the database's end: copy them back now there is room */
  sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  return 1;
}

int store_maintain(store *s, const store_limits *l, int64_t now_s, int idle, int64_t deleted[3],
                   int64_t *reclaimed)
{
  int rc = 0, rolled = 0;
  /* quiet: no batch since the last step, so the newest rollup block may be rebuilt too */
  int quiet = idle || !s->batch_since_maintain;
  s->batch_since_maintain = 0;
  int limited = l && (l->max_sessions > 0 || l->max_age_s > 0 || l->max_db_bytes > 0);
  if(limited && now_s >= s->next_retention_s) {
    s->next_retention_s = now_s + 1;
    rc = apply_retention(s, l, now_s, deleted);
  }
  if(!rc && s->purge_pending)
    rc = purge_some(s, 5000);
  else if(!rc && store_sites_sweep_due(s->sites, s->sites_sweep_min))
    rc = sweep_sites(s);
  else if(!rc && s->vacuum_pending)
    rc = vacuum_some(s, 1024, reclaimed); /* 4 MiB of 4 KiB pages a step */
  else if(!rc && s->rollup_pending)
    rc = rollup_some(s, quiet, &rolled);
  if(!rc)
    rc = store_maybe_checkpoint(s, idle ? 0 : s->wal_autocheckpoint);
  if(rc && store_release_reserve(s))
    return 1; /* try again at once, with the room */
  if(rc)
    return rc;
  int pending = s->purge_pending || s->vacuum_pending || rolled;
  if(!pending && !s->reserve_held && idle && store_reserve_make(s) == 0) {
    s->reserve_held = 1;
    log_msg(LOG_INFO, "store: the disk reserve is allocated again");
  }
  return pending;
}

int64_t store_wal_bytes(store *s)
{
  struct stat st;
  size_t n = strlen(s->path) + 5;
  char *wal = malloc(n);
  if(!wal)
    return -1;
  snprintf(wal, n, "%s-wal", s->path);
  int64_t size = stat(wal, &st) == 0 ? (int64_t)st.st_size : 0;
  free(wal);
  return size;
}

int store_maybe_checkpoint(store *s, int pages)
{
  if(s->wal_frames <= pages)
    return 0;
  /* RESTART, not PASSIVE: PASSIVE copies the WAL back but the WAL only starts over from its
   * beginning when no reader still reads from it, which under a steady stream of overlapping
   * requests never happens, and the file grows without bound (225 MB in issue 11). RESTART
   * waits for the readers holding old snapshots to finish (read transactions last one request)
   * while new readers read from the database file, so the next commit writes from the start of
   * the file again. It waits at most 200 ms here, not the writer's busy_timeout, so ingest is
   * not held up; if busy, the next commit tries again. Not TRUNCATE: the WAL file's space is
   * kept (up to journal_size_limit) so a delete on a full disk has room to be written. */
  sqlite3_busy_timeout(s->w, 200);
  int log_pages = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_RESTART, &log_pages, &done);
  sqlite3_busy_timeout(s->w, s->busy_timeout_ms);
  if(rc == SQLITE_OK) {
    s->wal_frames = 0;
    return 0;
  }
  if((rc & 0xff) == SQLITE_BUSY)
    return 0; /* readers still on old snapshots; what could be copied back was */
  log_msg(LOG_WARN, "store: checkpoint: %s", sqlite3_errmsg(s->w));
  return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
}

