/* store.c — SQLite's files: schema and forward migrations, opening and closing the store, the write
 * connection only writer.c's thread uses (its statements and transactions), and the pool of read
 * connections (store.h). Batches and deletes are store_put.c's, housekeeping store_maintain.c's, the
 * read statements and row loaders store_read.c's, the OTLP outbox store_outbox.c's. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "store_internal.h"

/* Generated at build time from schema/ (server/CMakeLists.txt). */
extern const char store_schema_sql[];
typedef struct store_migration { int version; const char *sql; } store_migration;
extern const store_migration store_migrations[];
extern const size_t store_nmigrations;


static const char *const wsql[W_COUNT] = {
  /* A new session's row with its meta at once (?14: has_meta): W_SESSION_META, an UPDATE of the
   * columns two indexes hold, runs only for a session stored before (store_put_batch). */
  [W_SESSION_INS] = "INSERT INTO sessions(id, arrived_s, received_unix_ns, name, service, host, python, pid,"
                    " started_unix_ns, started_ns, route, loop_no, fraction, has_meta)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT(id) DO NOTHING",
  [W_SESSION_SID] = "SELECT sid FROM sessions WHERE id = ?1",
  [W_BATCH_INS] = "INSERT OR IGNORE INTO batches(sid, batch, events) VALUES(?1, ?2, ?3)",
  [W_SESSION_META] =
    "UPDATE sessions SET name = coalesce(?2, name), service = coalesce(?3, service),"
    " host = coalesce(?4, host), python = coalesce(?5, python), pid = coalesce(?6, pid),"
    " started_unix_ns = coalesce(?7, started_unix_ns), started_ns = coalesce(?8, started_ns),"
    " route = coalesce(?9, route), loop_no = coalesce(?10, loop_no), fraction = coalesce(?11, fraction),"
    " has_meta = 1 WHERE sid = ?1",
  /* Every right-hand side reads the row as it was before this UPDATE. */
  [W_SESSION_COUNTS] =
    "UPDATE sessions SET"
    " end_t = CASE WHEN ?2 AND (ended = 0 OR ?3 > end_t) THEN ?3 ELSE end_t END,"
    " ended = max(ended, ?2), max_t = max(max_t, ?4), dropped = min(dropped + ?5, 9007199254740991),"
    " unknown_events = unknown_events + ?6, n_events = n_events + ?7, n_steps = n_steps + ?8,"
    " n_awaits = n_awaits + ?9, n_blocks = n_blocks + ?10, n_lag = n_lag + ?11,"
    " max_step_d = max(max_step_d, ?12), max_await_d = max(max_await_d, ?13),"
    " max_block_d = max(max_block_d, ?14), max_lag_d = max(max_lag_d, ?15), arrived_s = ?16,"
    " n_blocks_elsewhere = n_blocks_elsewhere + ?17,"
    " blocked_ns_own = min(blocked_ns_own + ?18, 9007199254740991),"
    " blocked_ns_elsewhere = min(blocked_ns_elsewhere + ?19, 9007199254740991) WHERE sid = ?1",
  /* One row per task a batch names, whatever it says of it (store_put.c's put_tasks): its task
   * event (?7 = 1: parent, name, coro and created replace the row's, has_task becomes 1), its done
   * event (?15 = 1: ended, state, exc and status replace the row's), and the sums of its steps and
   * awaits stored in this batch (added; first_run the earliest). Three upserts a task before, one
   * now: on a burst of small sessions each statement is a few µs of the co-located server's CPU.
   * ?2..?14 are the row's columns in W_TASKS_8's order. */
  [W_TASK_ROW] =
    "INSERT INTO tasks(sid, id, parent, name, coro, created, has_task, ended, state, exc, status,"
    " busy_ns, wait_ns, first_run) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    " ON CONFLICT(sid, id) DO UPDATE SET"
    " parent = CASE WHEN ?7 THEN excluded.parent ELSE parent END,"
    " name = CASE WHEN ?7 THEN excluded.name ELSE name END,"
    " coro = CASE WHEN ?7 THEN excluded.coro ELSE coro END,"
    " created = CASE WHEN ?7 THEN excluded.created ELSE created END,"
    " has_task = max(has_task, ?7),"
    " ended = CASE WHEN ?15 THEN excluded.ended ELSE ended END,"
    " state = CASE WHEN ?15 THEN excluded.state ELSE state END,"
    " exc = CASE WHEN ?15 THEN excluded.exc ELSE exc END,"
    " status = CASE WHEN ?15 THEN excluded.status ELSE status END,"
    " busy_ns = busy_ns + excluded.busy_ns, wait_ns = wait_ns + excluded.wait_ns, first_run = CASE"
    "  WHEN excluded.first_run IS NULL THEN first_run"
    "  WHEN first_run IS NULL OR excluded.first_run < first_run THEN excluded.first_run"
    "  ELSE first_run END",
  /* OR IGNORE: a step or await already stored at the same (task, t) is the same event sent
   * twice; put_rows (store_put.c) counts only the rows that went in, so the task sums stay
   * consistent. */
  [W_STEP] = "INSERT OR IGNORE INTO steps(sid, task, t, d) VALUES(?1, ?2, ?3, ?4)",
  [W_AWAIT] = "INSERT OR IGNORE INTO awaits(sid, task, t, d, site) VALUES(?1, ?2, ?3, ?4, ?5)",
  [W_BLOCK] = "INSERT INTO blocks(sid, task, t, d, file, line, func, src, stack, elsewhere, from_session, from_task, stack_t)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
  [W_LAG] = "INSERT INTO lag(sid, t, d) VALUES(?1, ?2, ?3)",
  [W_POINT] = STORE_POINT_UPSERT,
  [W_DIRTY] = STORE_ROLLUP_MARK,
  [W_DUE] = STORE_ROLLUP_DUE,
  /* store_figures_due (store_series.c): once for every ended session, so kept prepared
   * (preparing its two queries there was a tenth of the server's CPU on a burst of small
   * sessions: bench/overhead/ingest_ab.py), one look at the session for both done tables. AND
   * stops at the first false term: a session under min_events reads neither. */
  [W_FIGURES_DUE] =
    "SELECT x.ended AND x.n_events >= ?2 AND"
    " (NOT EXISTS (SELECT 1 FROM session_stats t WHERE t.sid = x.sid AND t.n_events = x.n_events)"
    " OR NOT EXISTS (SELECT 1 FROM task_keys_done t WHERE t.sid = x.sid AND t.n_events = x.n_events))"
    " FROM sessions x WHERE x.id = ?1",
  /* what the tasks table's triggers did until schema 12 (put_tasks, store_put.c) */
  [W_ROWS_BUILT] = "SELECT rows_built FROM sessions WHERE sid = ?1",
  [W_TASK_OLD] = "SELECT has_task, parent, created FROM tasks WHERE sid = ?1 AND id = ?2",
  [W_ROWS_ADD] = "INSERT OR IGNORE INTO task_rows_add(sid, id) VALUES(?1, ?2)",
  [W_ROWS_STALE] = "UPDATE sessions SET rows_built = 0 WHERE sid = ?1 AND rows_built <> 0",
  /* W_STEPS_16, W_STEPS_4, W_AWAITS_16, W_AWAITS_4, W_TASKS_8/4/2: written by multi_row_sql */
};

int store_multi_rows(int which)
{
  switch(which) {
  case W_STEPS_16: case W_AWAITS_16: return 16;
  case W_TASKS_8: return 8;
  case W_STEPS_4: case W_AWAITS_4: case W_TASKS_4: return 4;
  case W_TASKS_2: return 2;
  default: return 1;
  }
}

/* The SQL of W_STEPS_16 and its kin into buf: store_multi_rows(which) rows of W_STEP's (W_AWAIT's)
 * columns in one INSERT OR IGNORE, the session ?1 shared by all (put_rows, store_put.c). A
 * statement per row cost the server more in the statement's own start and end than in its row:
 * a burst of small sessions ran 27% fewer instructions in all with 16 rows a statement. */
static const char *multi_row_sql(int which, char *buf, size_t cap)
{
  int steps = which == W_STEPS_16 || which == W_STEPS_4, tasks = which == W_TASKS_8 || which == W_TASKS_4 || which == W_TASKS_2;
  int cols = steps ? 3 : tasks ? 13 : 4;
  /* a new session's tasks: put_tasks merged each task's events into one row, so no two rows
   * share an id and there is nothing to upsert */
  size_t n = (size_t)snprintf(buf, cap, "%s",
                              steps ? "INSERT OR IGNORE INTO steps(sid, task, t, d) VALUES"
                              : tasks ? "INSERT INTO tasks(sid, id, parent, name, coro, created, has_task, ended, state,"
                                        " exc, status, busy_ns, wait_ns, first_run) VALUES"
                                    : "INSERT OR IGNORE INTO awaits(sid, task, t, d, site) VALUES");
  for(int r = 0; r < store_multi_rows(which) && n < cap; r++) {
    n += (size_t)snprintf(buf + n, cap - n, "%s(?1", r ? ", " : " ");
    for(int c = 0; c < cols && n < cap; c++)
      n += (size_t)snprintf(buf + n, cap - n, ", ?%d", 2 + r * cols + c);
    if(n < cap)
      n += (size_t)snprintf(buf + n, cap - n, ")");
  }
  return n < cap ? buf : NULL;
}



int store_reserve_make(store *s)
{
  if(!s->reserve)
    return LS_ENOMEM;
  int fd = open(s->reserve, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if(fd < 0)
    return LS_EIO;
  int rc = posix_fallocate(fd, 0, RESERVE_BYTES);
  close(fd);
  if(rc != 0) {
    unlink(s->reserve);
    return LS_EBUSY;
  }
  return 0;
}

/* Replaces SQLite's automatic checkpoint (a PASSIVE one inside the commit): it only records the
 * WAL's length, and writer.c calls store_maybe_checkpoint after each group. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
  (void)db;
  (void)name;
  ((store *)arg)->wal_frames = frames;
  return SQLITE_OK;
}

void store_default_options(store_options *o, const char *path)
{
  o->path = path;
  o->readers = 4;
  o->busy_timeout_ms = 5000;
  o->wal_autocheckpoint = 4000;         /* 16 MiB of 4 KiB pages between passive checkpoints */
  o->journal_size_limit = 64ll << 20;   /* the WAL file is cut back to 64 MiB after one */
}

static int code_of(int rc)
{
  switch(rc & 0xff) {
  case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
  case SQLITE_NOMEM: return LS_ENOMEM;
  /* a full disk is "storage cannot take it" too: 503 and a retry later, not a broken batch */
  case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_FULL: return LS_EBUSY;
  case SQLITE_TOOBIG: return LS_ETOOBIG;
  /* not a fault that passes: retrying cannot help, so never "busy" (docs/RELIABILITY.md) */
  case SQLITE_CORRUPT: case SQLITE_NOTADB: return LS_ECORRUPT;
  default: return LS_EIO;
  }
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if(rc != SQLITE_OK) {
    if(err)
      snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return code_of(rc) ? code_of(rc) : LS_EIO;
  }
  return 0;
}

void store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
  if(v)
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

void store_bind_opt_i64(sqlite3_stmt *st, int i, int64_t v)
{
  if(v >= 0)
    sqlite3_bind_int64(st, i, v);
  else
    sqlite3_bind_null(st, i);
}

int store_pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if(rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if(rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(st, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : (code_of(rc) ? code_of(rc) : LS_EIO);
}

static int target_version(void)
{
  int v = 1;
  for(size_t i = 0; i < store_nmigrations; i++)
    if(store_migrations[i].version > v)
      v = store_migrations[i].version;
  return v;
}

/* Brings the schema to target_version() inside one transaction. */
static int migrate(store *s, char *err, size_t errlen)
{
  int rc = exec_sql(s->w, "BEGIN IMMEDIATE", err, errlen);
  if(rc)
    return rc;
  int64_t uv = 0;
  rc = store_pragma_int(s->w, "PRAGMA user_version", &uv);
  int target = target_version();
  if(!rc && uv > target) {
    snprintf(err, errlen, "database schema version %lld is newer than this server's (%d)",
             (long long)uv, target);
    rc = LS_EINVAL;
  }
  if(!rc && uv == 0) {
    rc = exec_sql(s->w, store_schema_sql, err, errlen);
    uv = 1;
    if(!rc)
      log_msg(LOG_INFO, "store: created schema version 1");
  }
  for(int v = (int)uv + 1; !rc && v <= target; v++) {
    for(size_t i = 0; i < store_nmigrations && !rc; i++) {
      if(store_migrations[i].version != v)
        continue;
      rc = exec_sql(s->w, store_migrations[i].sql, err, errlen);
      if(!rc)
        log_msg(LOG_INFO, "store: migrated to schema version %d", v);
    }
  }
  if(!rc) {
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", target);
    rc = exec_sql(s->w, sql, err, errlen);
  }
  if(rc) {
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  s->version = target;
  return exec_sql(s->w, "COMMIT", err, errlen);
}

/* SQLite says "unable to open database file" for many causes, and its last errno may be that of
 * a side file (on a read-only volume, ENOENT for the -shm it could not create). So the path is
 * looked at directly: a missing directory, a read-only file system, no write permission; else the
 * errno SQLite saw. What to do about it is appended to err. */
static void explain_open_error(const char *path, int sys, char *err, size_t errlen)
{
  size_t n = strlen(err);
  char dir[4096], what[96] = "";
  struct stat st;
  struct statvfs vfs;
  if(n + 4 >= errlen || strlen(path) >= sizeof dir)
    return;
  strcpy(dir, path);
  char *slash = strrchr(dir, '/');
  if(!slash)
    strcpy(dir, ".");
  else if(slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  if(stat(dir, &st) != 0) {
    strerror_r(errno, what, sizeof what);
    snprintf(err + n, errlen - n, " (%s: %s); the directory must exist", dir, what);
  } else if(statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
    snprintf(err + n, errlen - n, " (%s is on a read-only file system); the server writes its database and "
             "the -wal and -shm files beside it: give --db a path on a writable one", dir);
  else if(access(dir, W_OK) != 0 || (access(path, F_OK) == 0 && access(path, R_OK | W_OK) != 0)) {
    strerror_r(errno, what, sizeof what);
    snprintf(err + n, errlen - n, " (%s); the server writes its database and the files beside it: "
             "give --db a path it can write", what);
  } else if(sys && strerror_r(sys, what, sizeof what) == 0)
    snprintf(err + n, errlen - n, " (%s)", what);
}

/* SQLite's process-wide settings, made once before its first connection (sqlite3_config is refused
 * once SQLite is initialised: then they stay as they were, which is only slower). Memory
 * statistics off: with them on, every allocation SQLite makes takes a global mutex and updates
 * counters nobody here reads (the server never asks sqlite3_memory_used or sqlite3_status):
 * 5.8% of the server's instructions on a burst of small sessions (bench/overhead/ingest_cg.sh). */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_settings(void)
{
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int open_conn(const char *path, int busy_ms, sqlite3 **out, char *err, size_t errlen)
{
  sqlite3 *db = NULL;
  pthread_once(&sqlite_once, sqlite_settings);
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if(rc != SQLITE_OK) {
    snprintf(err, errlen, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)); /* the caller names the path */
    explain_open_error(path, db ? sqlite3_system_errno(db) : 0, err, errlen);
    sqlite3_close(db);
    return code_of(rc) ? code_of(rc) : LS_EIO;
  }
  sqlite3_busy_timeout(db, busy_ms);
  sqlite3_extended_result_codes(db, 1);
  *out = db;
  return 0;
}

int store_open(const store_options *o, store **out, char *err, size_t errlen)
{
  *out = NULL;
  if(o->readers < 1)
    return LS_EINVAL;
  store *s = calloc(1, sizeof(*s));
  if(!s)
    return LS_ENOMEM;
  s->nreaders = o->readers;
  s->journal_size_limit = o->journal_size_limit;
  s->busy_timeout_ms = o->busy_timeout_ms;
  s->wal_autocheckpoint = o->wal_autocheckpoint;
  s->purge_pending = s->vacuum_pending = s->rollup_pending = 1; /* left over from the last run, perhaps */
  s->sites_sweep_min = STORE_SITES_SWEEP_MIN;
  size_t rn = strlen(o->path) + sizeof("-reserve");
  s->reserve = malloc(rn);
  if(s->reserve)
    snprintf(s->reserve, rn, "%s-reserve", o->path);
  s->path = strdup(o->path);
  s->readers = calloc((size_t)o->readers, sizeof(*s->readers));
  if(!s->path || !s->readers) {
    free(s->path);
    free(s->readers);
    free(s);
    return LS_ENOMEM;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->freed, NULL);

  int rc = open_conn(o->path, o->busy_timeout_ms, &s->w, err, errlen);
  char sql[256];
  /* Before anything creates a table: only then does auto_vacuum take effect without a VACUUM
   * (for a database made before schema 3, see below). INCREMENTAL: deleted pages stay free in
   * the file until store_maintain gives them back a bounded number at a time. */
  if(!rc)
    rc = exec_sql(s->w, "PRAGMA auto_vacuum = INCREMENTAL", err, errlen);
  if(!rc) {
    /* WAL, and synchronous=NORMAL said explicitly: Debian's SQLite would default WAL to FULL.
     * NORMAL keeps the database consistent on power loss and loses at most the last commits. */
    int64_t dummy;
    rc = store_pragma_int(s->w, "PRAGMA journal_mode = WAL", &dummy);
    char mode[16] = "";
    sqlite3_stmt *st = NULL;
    if(!rc && sqlite3_prepare_v2(s->w, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
       sqlite3_step(st) == SQLITE_ROW)
      snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if(!rc && strcmp(mode, "wal") != 0) {
      snprintf(err, errlen, "%s: cannot switch to WAL mode (got '%s')", o->path, mode);
      rc = LS_EIO;
    }
  }
  if(!rc) {
    snprintf(sql, sizeof(sql),
             "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = %d;"
             " PRAGMA journal_size_limit = %lld; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY",
             o->wal_autocheckpoint, (long long)o->journal_size_limit);
    rc = exec_sql(s->w, sql, err, errlen);
  }
  if(!rc)
    rc = migrate(s, err, errlen);
  int64_t av = 2;
  if(!rc)
    rc = store_pragma_int(s->w, "PRAGMA auto_vacuum", &av);
  if(!rc && av != 2) {
    /* A database created before schema 3 (auto_vacuum = NONE): the PRAGMA above only recorded
     * the wish, VACUUM rebuilds the file with it. Once, at the first start of this version; it
     * needs free disk space about the size of the database. */
    log_msg(LOG_INFO, "store: switching %s to incremental auto-vacuum (a one-time VACUUM)", o->path);
    rc = exec_sql(s->w, "VACUUM", err, errlen);
  }
  if(!rc)
    sqlite3_wal_hook(s->w, wal_hook, s);
  if(!rc)
    rc = store_sites_open(s->w, &s->sites, err, errlen);
  for(int i = 0; !rc && i < W_COUNT; i++) {
    char multi[4096];
    const char *text = wsql[i] ? wsql[i] : multi_row_sql(i, multi, sizeof(multi));
    int src = text ? sqlite3_prepare_v3(s->w, text, -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL) : SQLITE_TOOBIG;
    if(src != SQLITE_OK) {
      snprintf(err, errlen, "preparing statement %d: %s", i, sqlite3_errmsg(s->w));
      rc = code_of(src) ? code_of(src) : LS_EIO;
    }
  }
  for(int i = 0; !rc && i < s->nreaders; i++) {
    rc = open_conn(o->path, o->busy_timeout_ms, &s->readers[i].db, err, errlen);
    if(!rc)
      rc = exec_sql(s->readers[i].db, "PRAGMA query_only = 1; PRAGMA cache_size = -16384;"
                    " PRAGMA mmap_size = 268435456", err, errlen);
  }
  if(rc) {
    if(s->w && rc == LS_EIO)
      explain_open_error(o->path, sqlite3_system_errno(s->w), err, errlen);
    if(rc == LS_ECORRUPT) { /* nothing here repairs or overwrites it: say what the user can do */
      size_t n = strlen(err);
      snprintf(err + n, errlen - n, " (SQLite finds it corrupt or not an SQLite database; the server "
               "never overwrites it: move it aside, and `sqlite3 FILE .recover` may save what is "
               "readable; started again, the server creates a new database)");
    }
    store_close(s);
    return rc;
  }
  s->reserve_held = store_reserve_make(s) == 0;
  if(!s->reserve_held)
    log_msg(LOG_WARN, "store: no room for the %lld-byte reserve %s-reserve", (long long)RESERVE_BYTES, o->path);
  *out = s;
  return 0;
}

void store_close(store *s)
{
  if(!s)
    return;
  for(int i = 0; i < s->nreaders; i++) {
    store_reader_finalize(&s->readers[i]);
    sqlite3_close(s->readers[i].db);
  }
  for(int i = 0; i < W_COUNT; i++)
    sqlite3_finalize(s->ws[i]);
  store_sites_close(s->sites);
  if(s->w) {
    int rc = sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if(rc != SQLITE_OK)
      log_msg(LOG_WARN, "store: final checkpoint: %s", sqlite3_errmsg(s->w));
    sqlite3_close(s->w);
  }
  if(s->reserve_held)
    unlink(s->reserve);
  free(s->reserve);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->freed);
  free(s->readers);
  free(s->path);
  free(s);
}

void store_set_sites_sweep_min(store *s, int64_t n)
{
  s->sites_sweep_min = n;
}

const char *store_errmsg(store *s)
{
  return sqlite3_errmsg(s->w);
}

int store_schema_version(store *s)
{
  return s->version;
}

int64_t store_batch_statements(store *s)
{
  int64_t n = 0;
  for(int i = 0; i < W_COUNT; i++)
    if(i != W_DUE && s->ws[i]) /* W_DUE: the rollups' housekeeping, on the writer's own time */
      n += sqlite3_stmt_status(s->ws[i], SQLITE_STMTSTATUS_RUN, 0);
  return n + store_sites_statements(s->sites);
}

int64_t store_db_bytes(store *s)
{
  struct stat st;
  int64_t total = 0;
  if(stat(s->path, &st) == 0)
    total += (int64_t)st.st_size;
  size_t n = strlen(s->path) + 5;
  char *wal = malloc(n);
  if(wal) {
    snprintf(wal, n, "%s-wal", s->path);
    if(stat(wal, &st) == 0)
      total += (int64_t)st.st_size;
    free(wal);
  }
  return total;
}

int store_write_pragma(store *s, const char *name, int64_t *out)
{
  char sql[96];
  for(const char *p = name; *p; p++)
    if(!((*p >= 'a' && *p <= 'z') || *p == '_'))
      return LS_EINVAL;
  snprintf(sql, sizeof(sql), "PRAGMA %s", name);
  return store_pragma_int(s->w, sql, out);
}

int store_set_page_limit(store *s, int64_t pages)
{
  char sql[64];
  /* max_page_count never goes below the current page count, so 0 means "as small as now";
   * lifting the cap sets SQLite's own ceiling back. */
  snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)(pages > 0 ? pages : 0xfffffffe));
  int64_t got;
  return store_pragma_int(s->w, sql, &got);
}

/* For the store module's other files (store_internal.h). */
int store_code_of(int sqlite_rc)
{
  return code_of(sqlite_rc);
}

int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
  return exec_sql(db, sql, err, errlen);
}

int store_open_conn(store *s, sqlite3 **out, char *err, size_t errlen)
{
  return open_conn(s->path, s->busy_timeout_ms, out, err, errlen);
}

/* ---------------------------------------------------------------- write side */

int store_wstep_rc(store *s, int src)
{
  if(src == SQLITE_DONE || src == SQLITE_ROW)
    return 0;
  log_msg(LOG_WARN, "store: %s", sqlite3_errmsg(s->w));
  return code_of(src) ? code_of(src) : LS_EIO;
}

int store_wrun(store *s, sqlite3_stmt *st)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return store_wstep_rc(s, rc);
}

int store_begin(store *s)
{
  return exec_sql(s->w, "BEGIN IMMEDIATE", NULL, 0);
}

int store_commit(store *s)
{
  int rc = exec_sql(s->w, "COMMIT", NULL, 0);
  if(rc)
    store_rollback(s);
  else
    store_sites_commit(s->sites);
  return rc;
}

void store_rollback(store *s)
{
  store_sites_forget(s->sites);
  if(!sqlite3_get_autocommit(s->w))
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
}

int store_in_transaction(store *s)
{
  return !sqlite3_get_autocommit(s->w);
}

/* ---------------------------------------------------------------- read side */

store_reader *store_reader_acquire(store *s)
{
  pthread_mutex_lock(&s->lock);
  store_reader *r = NULL;
  for(;;) {
    for(int i = 0; i < s->nreaders; i++) {
      if(!s->readers[i].in_use) {
        r = &s->readers[i];
        break;
      }
    }
    if(r)
      break;
    pthread_cond_wait(&s->freed, &s->lock);
  }
  r->in_use = 1;
  pthread_mutex_unlock(&s->lock);
  /* One read transaction per request: every query of it sees the same snapshot. */
  sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
  return r;
}

void store_reader_release(store *s, store_reader *r)
{
  if(!r)
    return;
  if(!sqlite3_get_autocommit(r->db))
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
  pthread_mutex_lock(&s->lock);
  r->in_use = 0;
  pthread_cond_signal(&s->freed);
  pthread_mutex_unlock(&s->lock);
}
