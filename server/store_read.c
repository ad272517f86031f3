/* store_read.c — the store's read side (store.h, "read side"): the read statements, prepared on
 * a connection's first use of each, and the typed row loaders over them. Which connection
 * (a pool reader, the OTLP outbox's) and its transaction are store.c's and store_outbox.c's
 * business; what the rows become is the callers'. Part of the store module (store_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"


enum rstmt {
  R_BEGIN, R_COMMIT, R_SESSION, R_SESSIONS, R_SESSIONS_NAME, R_INTERVALS, R_TASKS, R_AWAITS, R_BLOCKS,
  R_LAG, R_STEPS, R_AWAIT_ROW, R_BLOCK_ROW,
  R_SPAN_ALL, /* + kind: four statements each */
  R_SPAN_TASK = R_SPAN_ALL + INGEST_NKINDS,
  R_COUNT = R_SPAN_TASK + INGEST_NKINDS
};

#define SESSION_COLS \
  "sid, id, name, service, host, python, started_unix_ns, pid, has_meta, ended, end_t, max_t, dropped," \
  " unknown_events, n_events, n_steps, n_awaits, n_blocks, n_lag, max_step_d, max_await_d, max_block_d," \
  " max_lag_d, received_unix_ns, route, loop_no, n_blocks_elsewhere, blocked_ns_own," \
  " blocked_ns_elsewhere, fraction FROM sessions"
#define NEWEST " ORDER BY started_ns IS NULL, started_ns DESC, sid DESC LIMIT ?"

_Static_assert(R_COUNT <= STORE_READ_STATEMENTS, "store_internal.h: struct store_reader holds too few statements");

static const char *const rsql[R_COUNT] = {
  [R_BEGIN] = "BEGIN",
  [R_COMMIT] = "COMMIT",
  [R_SESSION] = "SELECT " SESSION_COLS " WHERE id = ?1",
  [R_SESSIONS] = "SELECT " SESSION_COLS NEWEST "1",
  [R_SESSIONS_NAME] = "SELECT " SESSION_COLS " WHERE instr(name, ?2) > 0" NEWEST "1",
  [R_INTERVALS] = "SELECT created, ended FROM tasks WHERE sid = ?1 AND has_task = 1",
  [R_TASKS] = "SELECT " STORE_TASK_COLS " FROM tasks WHERE sid = ?1 AND has_task = 1",
  /* an await's site (schema 13): where it waited and on what, stored once for all its awaits */
  [R_AWAITS] = "SELECT a.task, a.t, a.d, s.line, s.what, s.file, s.func FROM awaits a LEFT JOIN sites s ON s.id = a.site"
               " WHERE a.sid = ?1 AND a.d >= ?2 ORDER BY a.d DESC, a.t ASC, a.task ASC",
  [R_BLOCKS] = "SELECT task, t, d, line, file, func, src, stack, elsewhere, from_session, from_task, stack_t FROM blocks"
               " WHERE sid = ?1 ORDER BY t, rowid",
  [R_LAG] = "SELECT 0, t, d FROM lag WHERE sid = ?1 ORDER BY t, rowid",
  [R_STEPS] = "SELECT task, t, d FROM steps WHERE sid = ?1 ORDER BY task, t",
  [R_AWAIT_ROW] = "SELECT a.task, a.t, a.d, s.line, s.what, s.file, s.func FROM awaits a LEFT JOIN sites s ON s.id = a.site"
                  " WHERE a.sid = ?1 AND a.task = ?2 AND a.t = ?3",
  [R_BLOCK_ROW] = "SELECT task, t, d, line, file, func, src, stack, elsewhere, from_session, from_task, stack_t FROM blocks"
                  " WHERE rowid = ?1",
  [R_SPAN_ALL + INGEST_STEP] = "SELECT task, t, d, 0 FROM steps WHERE sid = ?1 AND t >= ?2 AND t < ?3 ORDER BY task, t",
  [R_SPAN_ALL + INGEST_AWAIT] = "SELECT task, t, d, 0 FROM awaits WHERE sid = ?1 AND t >= ?2 AND t < ?3 ORDER BY task, t",
  [R_SPAN_ALL + INGEST_BLOCK] = "SELECT task, t, d, rowid FROM blocks WHERE sid = ?1 AND t >= ?2 AND t < ?3 ORDER BY t",
  [R_SPAN_ALL + INGEST_LAG] = "SELECT 0, t, d, rowid FROM lag WHERE sid = ?1 AND t >= ?2 AND t < ?3 ORDER BY t",
  [R_SPAN_TASK + INGEST_STEP] = "SELECT task, t, d, 0 FROM steps WHERE sid = ?1 AND task = ?4 AND t >= ?2 AND t < ?3 ORDER BY t",
  [R_SPAN_TASK + INGEST_AWAIT] = "SELECT task, t, d, 0 FROM awaits WHERE sid = ?1 AND task = ?4 AND t >= ?2 AND t < ?3 ORDER BY t",
  [R_SPAN_TASK + INGEST_BLOCK] = "SELECT task, t, d, rowid FROM blocks WHERE sid = ?1 AND task = ?4 AND t >= ?2 AND t < ?3 ORDER BY t",
  [R_SPAN_TASK + INGEST_LAG] = "SELECT 0, t, d, rowid FROM lag WHERE sid = ?1 AND ?4 = 0 AND t >= ?2 AND t < ?3 ORDER BY t",
};

void store_reader_finalize(store_reader *r)
{
  for(int k = 0; k < R_COUNT; k++) {
    sqlite3_finalize(r->st[k]);
    r->st[k] = NULL;
  }
  store_tree_drop(r->rows_cache);
  r->rows_cache = NULL;
}

/* ---------------------------------------------------------------- rows */

static sqlite3_stmt *rstmt(store_reader *r, int which)
{
  if(!r->st[which]) {
    if(sqlite3_prepare_v3(r->db, rsql[which], -1, SQLITE_PREPARE_PERSISTENT, &r->st[which], NULL) != SQLITE_OK) {
      log_msg(LOG_ERROR, "store: preparing read %d: %s", which, sqlite3_errmsg(r->db));
      r->st[which] = NULL;
    }
  }
  else
    sqlite3_reset(r->st[which]);
  if(r->st[which])
    sqlite3_clear_bindings(r->st[which]);
  return r->st[which];
}

static int rdone(store_reader *r, sqlite3_stmt *st, int rc)
{
  sqlite3_reset(st);
  if(rc != SQLITE_DONE) {
    log_msg(LOG_WARN, "store: read: %s", sqlite3_errmsg(r->db));
    return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
  }
  return 0;
}

const char *store_col_text(sqlite3_stmt *st, int i, arena *a)
{
  const unsigned char *p = sqlite3_column_text(st, i);
  if(!p)
    return NULL;
  return arena_strndup(a, (const char *)p, (size_t)sqlite3_column_bytes(st, i));
}

int64_t store_col_opt(sqlite3_stmt *st, int i)
{
  return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

/* A growable array of rows of `size` bytes, capped so a huge session cannot exhaust memory. */
typedef struct rows { void *p; size_t n, cap, size; } rows;
#define ROWS_MAX ((size_t)64 << 20)

static void *rows_next(rows *v)
{
  if(v->n == v->cap) {
    if(v->cap >= ROWS_MAX)
      return NULL;
    size_t cap = v->cap ? v->cap * 2 : 64;
    void *p = realloc(v->p, cap * v->size);
    if(!p)
      return NULL;
    v->p = p;
    v->cap = cap;
  }
  return (char *)v->p + v->size * v->n++;
}

static void read_session(sqlite3_stmt *st, arena *a, store_session *x)
{
  x->sid = sqlite3_column_int64(st, 0);
  x->id = store_col_text(st, 1, a);
  x->name = store_col_text(st, 2, a);
  x->service = store_col_text(st, 3, a);
  x->host = store_col_text(st, 4, a);
  x->python = store_col_text(st, 5, a);
  x->started = store_col_text(st, 6, a);
  x->pid = store_col_opt(st, 7);
  x->has_meta = sqlite3_column_int(st, 8);
  x->ended = sqlite3_column_int(st, 9);
  x->end_t = sqlite3_column_int64(st, 10);
  x->max_t = sqlite3_column_int64(st, 11);
  x->dropped = sqlite3_column_int64(st, 12);
  x->unknown = sqlite3_column_int64(st, 13);
  x->n_events = sqlite3_column_int64(st, 14);
  x->n_steps = sqlite3_column_int64(st, 15);
  x->n_awaits = sqlite3_column_int64(st, 16);
  x->n_blocks = sqlite3_column_int64(st, 17);
  x->n_lag = sqlite3_column_int64(st, 18);
  for(int k = 0; k < INGEST_NKINDS; k++)
    x->max_d[k] = sqlite3_column_int64(st, 19 + k);
  x->received_ns = store_col_opt(st, 19 + INGEST_NKINDS);
  x->route = store_col_text(st, 20 + INGEST_NKINDS, a);
  x->loop = store_col_opt(st, 21 + INGEST_NKINDS);
  x->n_blocks_elsewhere = sqlite3_column_int64(st, 22 + INGEST_NKINDS);
  x->blocked_ns_own = sqlite3_column_int64(st, 23 + INGEST_NKINDS);
  x->blocked_ns_elsewhere = sqlite3_column_int64(st, 24 + INGEST_NKINDS);
  x->fraction = sqlite3_column_type(st, 25 + INGEST_NKINDS) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 25 + INGEST_NKINDS);
}

int store_find_session(store_reader *r, const char *id, arena *a, store_session *out)
{
  sqlite3_stmt *st = rstmt(r, R_SESSION);
  if(!st)
    return LS_EIO;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  if(rc == SQLITE_ROW) {
    read_session(st, a, out);
    sqlite3_reset(st);
    return a->failed ? LS_ENOMEM : 0;
  }
  return rc == SQLITE_DONE ? (sqlite3_reset(st), LS_ENOTFOUND) : rdone(r, st, rc);
}

int store_list_sessions(store_reader *r, const char *name_sub, int limit, arena *a,
                        store_session **out, size_t *n)
{
  sqlite3_stmt *st = rstmt(r, name_sub ? R_SESSIONS_NAME : R_SESSIONS);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int(st, 1, limit);
  if(name_sub)
    sqlite3_bind_text(st, 2, name_sub, -1, SQLITE_TRANSIENT);
  rows v = {NULL, 0, 0, sizeof(store_session)};
  int rc;
  while((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_session *x = rows_next(&v);
    if(!x) {
      sqlite3_reset(st);
      free(v.p);
      return LS_ENOMEM;
    }
    read_session(st, a, x);
  }
  rc = rdone(r, st, rc);
  if(!rc && a->failed)
    rc = LS_ENOMEM;
  if(rc) {
    free(v.p);
    return rc;
  }
  *out = v.p;
  *n = v.n;
  return 0;
}

/* The common loop of the row loaders below: step, append a row, fill it. */
#define LOAD_ROWS(r, st, type, outp, np, a, FILL)          \
  do {                                                     \
    rows v_ = {NULL, 0, 0, sizeof(type)};                  \
    int rc_;                                               \
    while((rc_ = sqlite3_step(st)) == SQLITE_ROW) {        \
      type *x = rows_next(&v_);                            \
      if(!x) {                                             \
        sqlite3_reset(st);                                 \
        free(v_.p);                                        \
        return LS_ENOMEM;                                  \
      }                                                    \
      FILL;                                                \
    }                                                      \
    rc_ = rdone(r, st, rc_);                               \
    if(!rc_ && (a) && ((arena *)(a))->failed)              \
      rc_ = LS_ENOMEM;                                     \
    if(rc_) {                                              \
      free(v_.p);                                          \
      return rc_;                                          \
    }                                                      \
    *(outp) = v_.p;                                        \
    *(np) = v_.n;                                          \
    return 0;                                              \
  } while(0)

int store_load_intervals(store_reader *r, int64_t sid, stats_interval **out, size_t *n)
{
  sqlite3_stmt *st = rstmt(r, R_INTERVALS);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  arena *none = NULL;
  LOAD_ROWS(r, st, stats_interval, out, n, none, {
    x->created = sqlite3_column_int64(st, 0);
    x->ended = store_col_opt(st, 1);
  });
}

int store_load_tasks(store_reader *r, int64_t sid, arena *a, store_task **out, size_t *n)
{
  sqlite3_stmt *st = rstmt(r, R_TASKS);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  LOAD_ROWS(r, st, store_task, out, n, a, store_read_task(st, a, x));
}

void store_read_task(sqlite3_stmt *st, arena *a, store_task *x)
{
  x->id = sqlite3_column_int64(st, 0);
  x->parent = sqlite3_column_int64(st, 1);
  x->created = store_col_opt(st, 2);
  x->first_run = store_col_opt(st, 3);
  x->ended = store_col_opt(st, 4);
  x->busy_ns = sqlite3_column_int64(st, 5);
  x->wait_ns = sqlite3_column_int64(st, 6);
  x->name = store_col_text(st, 7, a);
  x->coro = store_col_text(st, 8, a);
  x->state = store_col_text(st, 9, a);
  x->exc = store_col_text(st, 10, a);
  x->status = store_col_opt(st, 11);
}

static void read_await(sqlite3_stmt *st, arena *a, store_await *x)
{
  x->task = sqlite3_column_int64(st, 0);
  x->t = sqlite3_column_int64(st, 1);
  x->d = sqlite3_column_int64(st, 2);
  x->line = store_col_opt(st, 3);
  x->what = store_col_text(st, 4, a);
  x->file = store_col_text(st, 5, a);
  x->func = store_col_text(st, 6, a);
}

static void read_block(sqlite3_stmt *st, arena *a, store_block *x)
{
  x->task = sqlite3_column_int64(st, 0);
  x->t = sqlite3_column_int64(st, 1);
  x->d = sqlite3_column_int64(st, 2);
  x->line = store_col_opt(st, 3);
  x->file = store_col_text(st, 4, a);
  x->func = store_col_text(st, 5, a);
  x->src = store_col_text(st, 6, a);
  x->stack = store_col_text(st, 7, a);
  x->elsewhere = sqlite3_column_int(st, 8);
  x->from_session = store_col_text(st, 9, a);
  x->from_task = store_col_opt(st, 10);
  x->stack_t = store_col_opt(st, 11);
}

int store_load_awaits(store_reader *r, int64_t sid, int64_t min_d, arena *a, store_await **out,
                      size_t *n)
{
  sqlite3_stmt *st = rstmt(r, R_AWAITS);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, min_d);
  LOAD_ROWS(r, st, store_await, out, n, a, read_await(st, a, x));
}

int store_load_blocks(store_reader *r, int64_t sid, arena *a, store_block **out, size_t *n)
{
  sqlite3_stmt *st = rstmt(r, R_BLOCKS);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  LOAD_ROWS(r, st, store_block, out, n, a, read_block(st, a, x));
}

static int load_steps_like(store_reader *r, int which, int64_t sid, store_step **out, size_t *n)
{
  sqlite3_stmt *st = rstmt(r, which);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  arena *none = NULL;
  LOAD_ROWS(r, st, store_step, out, n, none, {
    x->task = sqlite3_column_int64(st, 0);
    x->t = sqlite3_column_int64(st, 1);
    x->d = sqlite3_column_int64(st, 2);
  });
}

int store_load_lag(store_reader *r, int64_t sid, store_step **out, size_t *n)
{
  return load_steps_like(r, R_LAG, sid, out, n);
}

int store_load_steps(store_reader *r, int64_t sid, store_step **out, size_t *n)
{
  return load_steps_like(r, R_STEPS, sid, out, n);
}

int store_scan_spans(store_reader *r, int64_t sid, int kind, const int64_t *tasks, size_t ntasks,
                     int64_t lo, int64_t hi, store_span **out, size_t *n)
{
  if(kind < 0 || kind >= INGEST_NKINDS)
    return LS_EINVAL;
  rows v = {NULL, 0, 0, sizeof(store_span)};
  size_t lanes = tasks ? ntasks : 1;
  int rc = 0;
  for(size_t i = 0; i < lanes && !rc; i++) {
    sqlite3_stmt *st = rstmt(r, (tasks ? R_SPAN_TASK : R_SPAN_ALL) + kind);
    if(!st) {
      rc = LS_EIO;
      break;
    }
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    if(tasks)
      sqlite3_bind_int64(st, 4, tasks[i]);
    int src;
    while((src = sqlite3_step(st)) == SQLITE_ROW) {
      store_span *x = rows_next(&v);
      if(!x) {
        src = SQLITE_NOMEM;
        break;
      }
      x->task = sqlite3_column_int64(st, 0);
      x->t = sqlite3_column_int64(st, 1);
      x->d = sqlite3_column_int64(st, 2);
      x->rowid = sqlite3_column_int64(st, 3);
    }
    rc = src == SQLITE_NOMEM ? (sqlite3_reset(st), LS_ENOMEM) : rdone(r, st, src);
  }
  if(rc) {
    free(v.p);
    return rc;
  }
  *out = v.p;
  *n = v.n;
  return 0;
}

int store_await_at(store_reader *r, int64_t sid, int64_t task, int64_t t, arena *a, store_await *out)
{
  sqlite3_stmt *st = rstmt(r, R_AWAIT_ROW);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, task);
  sqlite3_bind_int64(st, 3, t);
  int rc = sqlite3_step(st);
  if(rc == SQLITE_ROW) {
    read_await(st, a, out);
    sqlite3_reset(st);
    return a->failed ? LS_ENOMEM : 0;
  }
  return rc == SQLITE_DONE ? (sqlite3_reset(st), LS_ENOTFOUND) : rdone(r, st, rc);
}

int store_block_by_rowid(store_reader *r, int64_t rowid, arena *a, store_block *out)
{
  sqlite3_stmt *st = rstmt(r, R_BLOCK_ROW);
  if(!st)
    return LS_EIO;
  sqlite3_bind_int64(st, 1, rowid);
  int rc = sqlite3_step(st);
  if(rc == SQLITE_ROW) {
    read_block(st, a, out);
    sqlite3_reset(st);
    return a->failed ? LS_ENOMEM : 0;
  }
  return rc == SQLITE_DONE ? (sqlite3_reset(st), LS_ENOTFOUND) : rdone(r, st, rc);
}
