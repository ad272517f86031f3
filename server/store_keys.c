/* store_keys.c — an ended session's task sort keys stored once final (store_keys.h, schema
 * task_keys), so that a page of /tasks costs the page: the keys are copied from the tasks table in
 * short write transactions on a reader's connection (as the stored tree is, store_rows.c), and a
 * page is read as an index range, its rows' tree fields from task_rows. The in-memory order is
 * query_page.c's; the JSON query.c's. Part of the store module (store_internal.h). */
#include "store_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store_internal.h"
#include "store_rows.h"

#define KEYS_STEP 256 /* rows per INSERT ... SELECT / DELETE: a multiple of the chunk's clock check */

/* The columns a page sorts by, as SQL: a fixed list, so that the name put into the SQL text is
 * never the request's. */
static const char *const key_cols[] = {"created", "id", "busy_ns", "wait_ns", "duration"};

static const char *key_col(const char *name)
{
  for(size_t i = 0; name && i < sizeof(key_cols) / sizeof(key_cols[0]); i++)
    if(!strcmp(name, key_cols[i]))
      return key_cols[i];
  return NULL;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
  int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
  if(rc == SQLITE_OK)
    return 0;
  log_msg(LOG_WARN, "store: task keys: %s", sqlite3_errmsg(db));
  sqlite3_finalize(*st);
  *st = NULL;
  return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
}

static int step_code(sqlite3 *db, int rc)
{
  if(rc == SQLITE_ROW || rc == SQLITE_DONE)
    return 0;
  log_msg(LOG_WARN, "store: task keys: %s", sqlite3_errmsg(db));
  return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
}

/* One integer from st (bound by the caller), then finalized: 0, LS_ENOTFOUND without a row. */
static int one_int(sqlite3 *db, sqlite3_stmt *st, int64_t *out)
{
  int src = sqlite3_step(st);
  if(src == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  int rc = src == SQLITE_DONE ? LS_ENOTFOUND : step_code(db, src);
  sqlite3_finalize(st);
  return rc;
}

/* ------------------------------------------------------------------ reading a page */

/* The stored count of x's keys when they and its stored tree are current: 0, LS_ENOTFOUND. Read
 * in the same snapshot as x, so a batch committed since is seen by both or neither. */
static int keys_current(sqlite3 *db, const store_session *x, int64_t *total)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "SELECT d.tasks FROM task_keys_done d JOIN sessions s ON s.sid = d.sid"
                    " WHERE d.sid = ?1 AND d.n_events = ?2 AND s.n_events = ?2 AND s.rows_built = 1"
                    " AND NOT EXISTS (SELECT 1 FROM task_rows_add WHERE sid = ?1)", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, x->n_events);
  return one_int(db, st, total);
}

/* Where task `at` is in the order (its rank, counted from 0): the rows before its (key, id).
 * LS_ENOTFOUND when it has no keys (not a listed task). Two index range counts. */
static int rank_of(sqlite3 *db, int64_t sid, const char *col, int desc, int64_t at, int64_t *rank)
{
  char sql[256];
  snprintf(sql, sizeof(sql), "SELECT %s FROM task_keys WHERE sid = ?1 AND id = ?2", col);
  sqlite3_stmt *st = NULL;
  int64_t key = 0;
  int rc = prep(db, sql, &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, at);
  if((rc = one_int(db, st, &key)))
    return rc;
  snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM task_keys WHERE sid = ?1 AND %s %s ?2)"
           " + (SELECT count(*) FROM task_keys WHERE sid = ?1 AND %s = ?2 AND id < ?3)", col, desc ? ">" : "<", col);
  if((rc = prep(db, sql, &st)))
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, key);
  sqlite3_bind_int64(st, 3, at);
  return one_int(db, st, rank);
}

/* The ids of the rows [from, from + limit) in the order: *ids malloc'd. */
static int page_ids(sqlite3 *db, int64_t sid, const char *col, int desc, int64_t from, int64_t limit,
                    int64_t **ids, size_t *n)
{
  *ids = NULL;
  *n = 0;
  char sql[256];
  if(!strcmp(col, "id"))
    snprintf(sql, sizeof(sql), "SELECT id FROM task_keys WHERE sid = ?1 ORDER BY id %s LIMIT ?2 OFFSET ?3",
             desc ? "DESC" : "ASC");
  else
    snprintf(sql, sizeof(sql), "SELECT id FROM task_keys WHERE sid = ?1 ORDER BY %s %s, id ASC LIMIT ?2 OFFSET ?3",
             col, desc ? "DESC" : "ASC");
  sqlite3_stmt *st = NULL;
  int rc = prep(db, sql, &st);
  if(rc)
    return rc;
  int64_t *v = malloc((size_t)(limit > 0 ? limit : 1) * sizeof(*v));
  if(!v) {
    sqlite3_finalize(st);
    return LS_ENOMEM;
  }
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, limit);
  sqlite3_bind_int64(st, 3, from);
  size_t k = 0;
  int src;
  while((src = sqlite3_step(st)) == SQLITE_ROW && k < (size_t)limit)
    v[k++] = sqlite3_column_int64(st, 0);
  rc = step_code(db, src);
  sqlite3_finalize(st);
  if(rc) {
    free(v);
    return rc;
  }
  *ids = v;
  *n = k;
  return 0;
}

/* The statements one row of a page takes: its task's fields, its place in the tree, a child by
 * position (the children of the row at pos p are at p + 1, then each after the last's subtree). */
enum { P_TASK, P_ROW, P_CHILD, P_COUNT };
static const char *const page_sql[P_COUNT] = {
  [P_TASK] = "SELECT " STORE_TASK_COLS " FROM tasks WHERE sid = ?1 AND id = ?2",
  /* INDEXED BY: without it SQLite 3.40 scans the session by the primary key (sid, pos), 11 ms a
   * row at 100k tasks (store_rows.c says the same) */
  [P_ROW] = "SELECT pos, parent, depth, children, size FROM task_rows INDEXED BY task_rows_id WHERE sid = ?1 AND id = ?2",
  [P_CHILD] = "SELECT id, size FROM task_rows WHERE sid = ?1 AND pos = ?2",
};

/* Fills one row of the page: LS_ENOTFOUND when the task or its tree row is missing (the stored
 * tree and keys disagree: the caller sorts in memory). */
static int page_row(sqlite3 *db, sqlite3_stmt *const *st, int64_t sid, int64_t id, arena *a, store_page_task *o)
{
  memset(o, 0, sizeof(*o));
  sqlite3_stmt *t = st[P_TASK], *w = st[P_ROW], *c = st[P_CHILD];
  sqlite3_bind_int64(t, 1, sid);
  sqlite3_bind_int64(t, 2, id);
  int src = sqlite3_step(t);
  if(src == SQLITE_ROW)
    store_read_task(t, a, &o->t);
  int rc = src == SQLITE_DONE ? LS_ENOTFOUND : step_code(db, src);
  sqlite3_reset(t);
  if(rc)
    return rc;
  sqlite3_bind_int64(w, 1, sid);
  sqlite3_bind_int64(w, 2, id);
  int64_t pos = 0, nkids = 0, size = 0;
  src = sqlite3_step(w);
  if(src == SQLITE_ROW) {
    pos = sqlite3_column_int64(w, 0);
    o->parent = sqlite3_column_int64(w, 1);
    o->depth = sqlite3_column_int64(w, 2);
    nkids = sqlite3_column_int64(w, 3);
    size = sqlite3_column_int64(w, 4);
  }
  rc = src == SQLITE_DONE ? LS_ENOTFOUND : step_code(db, src);
  sqlite3_reset(w);
  if(rc)
    return rc;
  int64_t *kids = arena_alloc(a, (size_t)(nkids > 0 ? nkids : 1) * sizeof(*kids));
  if(!kids)
    return LS_ENOMEM;
  /* children in tree order: hop from subtree to subtree, bounded by the stored counts */
  int64_t p = pos + 1, k = 0;
  while(!rc && k < nkids && p < pos + size) {
    sqlite3_bind_int64(c, 1, sid);
    sqlite3_bind_int64(c, 2, p);
    src = sqlite3_step(c);
    if(src == SQLITE_ROW) {
      kids[k++] = sqlite3_column_int64(c, 0);
      int64_t sz = sqlite3_column_int64(c, 1);
      p += sz > 0 ? sz : 1;
    }
    rc = src == SQLITE_DONE ? LS_ENOTFOUND : step_code(db, src);
    sqlite3_reset(c);
  }
  if(!rc && k != nkids)
    rc = LS_ENOTFOUND;
  o->children = kids;
  o->nchildren = (size_t)k;
  return rc;
}

int store_keys_page(store_reader *r, const store_session *x, const store_page_ask *q, arena *a,
                    store_page_task **rows, size_t *n, int64_t *total, int64_t *from)
{
  *rows = NULL;
  *n = 0;
  const char *col = key_col(q->col);
  if(!col)
    return LS_EINVAL;
  sqlite3 *db = r->db;
  int rc = keys_current(db, x, total);
  if(rc)
    return rc;
  /* the window query_page_window gives the in-memory order */
  int64_t f = q->offset < *total ? q->offset : *total, rank = 0;
  if(q->at > 0) {
    rc = rank_of(db, x->sid, col, q->desc, q->at, &rank);
    if(!rc)
      f = rank / q->limit * q->limit;
    else if(rc == LS_ENOTFOUND)
      rc = 0;
    if(rc)
      return rc;
  }
  *from = f;
  int64_t *ids = NULL;
  size_t k = 0;
  rc = page_ids(db, x->sid, col, q->desc, f, q->limit, &ids, &k);
  sqlite3_stmt *st[P_COUNT] = {NULL};
  for(int i = 0; !rc && i < P_COUNT; i++)
    rc = prep(db, page_sql[i], &st[i]);
  store_page_task *v = NULL;
  if(!rc && !(v = malloc((k ? k : 1) * sizeof(*v))))
    rc = LS_ENOMEM;
  for(size_t i = 0; !rc && i < k; i++)
    rc = page_row(db, st, x->sid, ids[i], a, &v[i]);
  if(!rc && a->failed)
    rc = LS_ENOMEM;
  for(int i = 0; i < P_COUNT; i++)
    sqlite3_finalize(st[i]);
  free(ids);
  if(rc) {
    free(v);
    return rc;
  }
  *rows = v;
  *n = k;
  return 0;
}

/* ------------------------------------------------------------------ storing the keys */

int store_keys_due(store *s, const char *id, int64_t min_events)
{
  return store_done_due(s, id, min_events, "task_keys_done");
}

/* The state of one session's copy across its write transactions. */
typedef struct keys_arg {
  int64_t sid, n_events, end;
  int cleared;     /* the old keys are gone */
  int64_t last_id; /* the keys of tasks up to this id are in */
  int64_t rows;    /* keys written */
  int done;        /* every key and the task_keys_done row are in */
  double t0;       /* when this transaction got the write lock */
} keys_arg;

/* Runs st (bound by the caller) to its end and resets it: 0 or a code; *changes rows it changed. */
static int run_counted(sqlite3 *db, sqlite3_stmt *st, int64_t *changes)
{
  int rc = step_code(db, sqlite3_step(st));
  sqlite3_reset(st);
  *changes = rc ? 0 : sqlite3_changes64(db);
  return rc;
}

/* One transaction of about STORE_CHUNK_MS: the old keys dropped first (task_keys_done before them,
 * so a reader never takes a half-dropped set for current), then the tasks' keys in id order, then
 * the task_keys_done row once every key is in. */
static int put_keys(sqlite3 *db, void *arg)
{
  keys_arg *a = arg;
  a->t0 = store_now_ms();
  sqlite3_stmt *del = NULL, *ins = NULL, *last = NULL, *fin = NULL;
  int rc = prep(db, "DELETE FROM task_keys WHERE (sid, id) IN (SELECT sid, id FROM task_keys WHERE sid = ?1 LIMIT ?2)", &del);
  if(!rc)
    rc = prep(db, "INSERT INTO task_keys(sid, id, created, busy_ns, wait_ns, duration)"
                  " SELECT sid, id, coalesce(created, -1), busy_ns, wait_ns, coalesce(ended, ?3) - coalesce(created, -1)"
                  " FROM tasks WHERE sid = ?1 AND has_task = 1 AND id > ?2 ORDER BY id LIMIT ?4", &ins);
  if(!rc)
    rc = prep(db, "SELECT coalesce(max(id), ?2) FROM task_keys WHERE sid = ?1", &last);
  if(!rc)
    rc = prep(db, "INSERT OR REPLACE INTO task_keys_done(sid, n_events, tasks) VALUES(?1, ?2, ?3)", &fin);
  if(!rc && !a->cleared) {
    sqlite3_stmt *undo = NULL;
    rc = prep(db, "DELETE FROM task_keys_done WHERE sid = ?1", &undo);
    if(!rc) {
      sqlite3_bind_int64(undo, 1, a->sid);
      rc = step_code(db, sqlite3_step(undo));
    }
    sqlite3_finalize(undo);
  }
  size_t k = 0;
  int64_t changes = 0;
  while(!rc && !a->cleared && !store_chunk_over(k, a->t0)) {
    sqlite3_bind_int64(del, 1, a->sid);
    sqlite3_bind_int64(del, 2, KEYS_STEP);
    rc = run_counted(db, del, &changes);
    k += KEYS_STEP;
    a->cleared = !rc && changes < KEYS_STEP;
  }
  while(!rc && a->cleared && !a->done && !store_chunk_over(k, a->t0)) {
    sqlite3_bind_int64(ins, 1, a->sid);
    sqlite3_bind_int64(ins, 2, a->last_id);
    sqlite3_bind_int64(ins, 3, a->end);
    sqlite3_bind_int64(ins, 4, KEYS_STEP);
    rc = run_counted(db, ins, &changes);
    k += KEYS_STEP;
    a->rows += changes;
    if(!rc && changes) {
      sqlite3_bind_int64(last, 1, a->sid);
      sqlite3_bind_int64(last, 2, a->last_id);
      rc = step_code(db, sqlite3_step(last));
      a->last_id = rc ? a->last_id : sqlite3_column_int64(last, 0);
      sqlite3_reset(last);
    }
    if(!rc && changes < KEYS_STEP) {
      sqlite3_bind_int64(fin, 1, a->sid);
      sqlite3_bind_int64(fin, 2, a->n_events);
      sqlite3_bind_int64(fin, 3, a->rows);
      rc = run_counted(db, fin, &changes);
      a->done = !rc;
    }
  }
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  sqlite3_finalize(last);
  sqlite3_finalize(fin);
  return rc;
}

/* The keys of x written, as of x's event count (a batch arriving meanwhile leaves them stale:
 * task_keys_done names the count they are of). */
static int write_keys(store_reader *r, const store_session *x)
{
  keys_arg a = {.sid = x->sid, .n_events = x->n_events, .end = x->end_t};
  double t0 = store_now_ms(), longest = 0;
  size_t writes = 0;
  int rc = 0;
  for(;;) {
    rc = store_write_on_reader(r, put_keys, &a);
    double held = store_now_ms() - a.t0;
    longest = held > longest ? held : longest;
    writes++;
    if(rc || a.done)
      break;
    store_yield_lock(held);
  }
  if(!rc)
    log_msg(LOG_INFO, "store: task keys of session %s: %lld rows in %.0f ms (%zu write transactions, longest %.1f ms)",
            x->id, (long long)a.rows, store_now_ms() - t0, writes, longest);
  return rc;
}

/* A stored tree with tasks appended to it is read through memory (store_rows_add.c), the page
 * reads task_rows: such a tree is marked stale, to be built again whole. */
static int drop_appended(sqlite3 *db, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "UPDATE sessions SET rows_built = 0 WHERE sid = ?1 AND rows_built = 1"
                    " AND EXISTS (SELECT 1 FROM task_rows_add WHERE sid = ?1)", &st);
  if(!rc) {
    sqlite3_bind_int64(st, 1, *(const int64_t *)arg);
    rc = step_code(db, sqlite3_step(st));
  }
  sqlite3_finalize(st);
  return rc;
}

/* 0 when x's keys are stored as of its event count, else LS_ENOTFOUND (or an error). */
static int keys_stored(sqlite3 *db, const store_session *x)
{
  sqlite3_stmt *st = NULL;
  int64_t total = 0;
  int rc = prep(db, "SELECT tasks FROM task_keys_done WHERE sid = ?1 AND n_events = ?2", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, x->n_events);
  return one_int(db, st, &total);
}

int store_keys_prepare(store *s, const char *id)
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int rc = store_find_session(r, id, &ar, &x);
  if(!rc && x.ended) {
    rc = keys_stored(r->db, &x);
    if(rc == LS_ENOTFOUND)
      rc = write_keys(r, &x);
    if(!rc)
      rc = store_write_on_reader(r, drop_appended, &x.sid);
    int built = 0;
    int64_t rows = 0;
    store_tree *mem = NULL;
    if(!rc)
      rc = store_rows_ensure(r, x.sid, STORE_TREE_MEM_MAX, &built, &rows, &mem);
    store_tree_free(mem);
  }
  if(rc)
    log_msg(LOG_WARN, "store: the task keys of session %s were not stored (%s); its tables sort in memory", id,
            ls_strerror(rc));
  arena_free(&ar);
  store_reader_release(s, r);
  return rc;
}
