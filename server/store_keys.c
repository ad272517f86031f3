/* store_keys.c — an ended session's task sort keys stored once final (store_keys.h, schema 010:
 * one table per key clustered in the page's order), so that a page of /tasks costs the page: the
 * keys are read on one snapshot, sorted per table and written in that order in short write
 * transactions on a reader's connection (as the stored tree is, store_rows.c); a page is read as a
 * range of one table, its rows' tree fields from task_rows. The in-memory order is query_page.c's;
 * the JSON query.c's. Part of the store module (store_internal.h). */
#include "store_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store_internal.h"
#include "store_rows.h"

#define KEYS_STEP 256 /* rows per DELETE of a table's old rows */

/* The columns a page sorts by and where their order is stored: a fixed list, so that the names
 * put into SQL text are never the request's. id sorts on the tasks table's primary key; expr is
 * the key as the tasks row gives it (?3: the session's end), for finding a task's rank. */
typedef struct key_def {
  const char *col, *table, *expr;
  int desc; /* the table's order: key descending (then id ascending) */
} key_def;
static const key_def key_defs[] = {
  {"created", "task_by_created", "coalesce(created, -1)", 0},
  {"busy_ns", "task_by_busy", "busy_ns", 1},
  {"wait_ns", "task_by_wait", "wait_ns", 1},
  {"duration", "task_by_duration", "coalesce(ended, ?3) - coalesce(created, -1)", 1},
  {"id", "tasks", "id", 0},
};
#define NKEY_TABLES 4 /* the first four have a table of their own */

static const key_def *key_of(const char *name)
{
  for(size_t i = 0; name && i < sizeof(key_defs) / sizeof(key_defs[0]); i++)
    if(!strcmp(name, key_defs[i].col))
      return &key_defs[i];
  return NULL;
}

/* The extra condition of the tasks table: only listed tasks (has_task = 1) have keys. */
static const char *listed(const key_def *k)
{
  return k->table == key_defs[NKEY_TABLES].table ? " AND has_task = 1" : "";
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

int store_keys_current(store_reader *r, const store_session *x)
{
  int64_t total = 0;
  return keys_current(r->db, x, &total) == 0;
}

/* Where task `at` is in the order of total rows (its rank, counted from 0): from its stored place
 * in the key's table (id: the rows before it, counted). LS_ENOTFOUND when it is not a listed
 * task. */
static int rank_of(sqlite3 *db, const store_session *x, const key_def *k, int desc, int64_t at, int64_t total,
                   int64_t *rank)
{
  char sql[320];
  snprintf(sql, sizeof(sql), "SELECT %s FROM tasks WHERE sid = ?1 AND id = ?2 AND has_task = 1 AND ?3 = ?3", k->expr);
  sqlite3_stmt *st = NULL;
  int64_t key = 0;
  int rc = prep(db, sql, &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, at);
  sqlite3_bind_int64(st, 3, x->end_t);
  if((rc = one_int(db, st, &key)))
    return rc;
  if(k->table == key_defs[NKEY_TABLES].table) /* id: the rows before it, counted */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM tasks WHERE sid = ?1 AND has_task = 1 AND id %s ?3 AND ?2 = ?2 AND ?4 = ?4",
             desc ? ">" : "<");
  else if(desc == k->desc) /* the table's order: its stored place, one seek */
    snprintf(sql, sizeof(sql), "SELECT pos FROM %s WHERE sid = ?1 AND %s = ?2 AND id = ?3 AND ?4 = ?4", k->table, k->col);
  else /* the other direction: the runs of equal keys reversed, each in id order. Its run is the
        * stored places [first, last]: ?4 - 1 - last rows of later runs come before it, then
        * those of its run with a smaller id. Three seeks. */
    snprintf(sql, sizeof(sql), "SELECT ?4 - 1 - (SELECT pos FROM %s WHERE sid = ?1 AND %s = ?2 ORDER BY id DESC LIMIT 1)"
             " + (SELECT pos FROM %s WHERE sid = ?1 AND %s = ?2 AND id = ?3)"
             " - (SELECT pos FROM %s WHERE sid = ?1 AND %s = ?2 ORDER BY id ASC LIMIT 1)",
             k->table, k->col, k->table, k->col, k->table, k->col);
  if((rc = prep(db, sql, &st)))
    return rc;
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, key);
  sqlite3_bind_int64(st, 3, at);
  sqlite3_bind_int64(st, 4, total);
  return one_int(db, st, rank);
}

/* The ids of the rows [from, from + limit) in the order: *ids malloc'd. */
static int page_ids(sqlite3 *db, int64_t sid, const key_def *k, int desc, int64_t from, int64_t limit,
                    int64_t **ids, size_t *n)
{
  *ids = NULL;
  *n = 0;
  char sql[256];
  if(k->table != key_defs[NKEY_TABLES].table && desc == k->desc) /* the stored order: a seek to pos */
    snprintf(sql, sizeof(sql), "SELECT id FROM %s INDEXED BY %s_pos WHERE sid = ?1 AND pos >= ?3 ORDER BY pos LIMIT ?2",
             k->table, k->table);
  else
    snprintf(sql, sizeof(sql), "SELECT id FROM %s WHERE sid = ?1%s ORDER BY %s %s%s LIMIT ?2 OFFSET ?3", k->table,
             listed(k), k->col, desc ? "DESC" : "ASC", strcmp(k->col, "id") ? ", id ASC" : "");
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
  size_t got = 0;
  int src;
  while((src = sqlite3_step(st)) == SQLITE_ROW && got < (size_t)limit)
    v[got++] = sqlite3_column_int64(st, 0);
  rc = step_code(db, src);
  sqlite3_finalize(st);
  if(rc) {
    free(v);
    return rc;
  }
  *ids = v;
  *n = got;
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
  const key_def *col = key_of(q->col);
  if(!col)
    return LS_EINVAL;
  sqlite3 *db = r->db;
  int rc = keys_current(db, x, total);
  if(rc)
    return rc;
  /* the window query_page_window gives the in-memory order */
  int64_t f = q->offset < *total ? q->offset : *total, rank = 0;
  if(q->at > 0) {
    rc = rank_of(db, x, col, q->desc, q->at, *total, &rank);
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

/* A task's key in one of the tables, and its id. */
typedef struct key_row { int64_t key, id; } key_row;

static int cmp_key_asc(const void *a, const void *b)
{
  const key_row *x = a, *y = b;
  if(x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

static int cmp_key_desc(const void *a, const void *b)
{
  const key_row *x = a, *y = b;
  if(x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* The keys of a session's listed tasks as of one read snapshot: key[t][i] of task id[i] for the
 * tables t = 0..NKEY_TABLES (malloc'd, freed by keys_free). */
typedef struct task_keys {
  size_t n;
  int64_t *id, *key[NKEY_TABLES];
} task_keys;

static void keys_free(task_keys *k)
{
  free(k->id);
  for(int t = 0; t < NKEY_TABLES; t++)
    free(k->key[t]);
}

#define KEYS_MAX ((size_t)64 << 20) /* tasks at most (memory: 40 bytes each, then 16 a table) */

/* Reads them on r's open read transaction (the snapshot x was read on, so they are as of
 * x->n_events). */
static int keys_load(sqlite3 *db, const store_session *x, task_keys *k)
{
  memset(k, 0, sizeof(*k));
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "SELECT id, coalesce(created, -1), busy_ns, wait_ns, coalesce(ended, ?2) - coalesce(created, -1)"
                    " FROM tasks WHERE sid = ?1 AND has_task = 1", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, x->sid);
  sqlite3_bind_int64(st, 2, x->end_t);
  size_t cap = 0;
  int src;
  while(!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
    if(k->n == cap) {
      size_t ncap = cap ? 2 * cap : 4096;
      if(ncap > KEYS_MAX) {
        rc = LS_ETOOBIG;
        break;
      }
      int64_t *p = realloc(k->id, ncap * sizeof(*p));
      if(p)
        k->id = p;
      for(int t = 0; p && t < NKEY_TABLES; t++) {
        p = realloc(k->key[t], ncap * sizeof(*p));
        if(p)
          k->key[t] = p;
      }
      if(!p) {
        rc = LS_ENOMEM;
        break;
      }
      cap = ncap;
    }
    k->id[k->n] = sqlite3_column_int64(st, 0);
    for(int t = 0; t < NKEY_TABLES; t++)
      k->key[t][k->n] = sqlite3_column_int64(st, 1 + t);
    k->n++;
  }
  if(!rc)
    rc = step_code(db, src);
  sqlite3_finalize(st);
  if(rc)
    keys_free(k);
  return rc;
}

/* The state of one session's copy across its write transactions: phase t < NKEY_TABLES clears
 * table t's old rows, NKEY_TABLES + t writes table t from sorted (next: rows written), then the
 * task_keys_done row (done). */
typedef struct keys_arg {
  int64_t sid, n_events;
  const task_keys *k;
  int phase;
  key_row *sorted; /* the current table's rows in its order (phase >= NKEY_TABLES) */
  size_t next;
  int done;
  double t0;       /* when this transaction got the write lock */
} keys_arg;

/* Runs st (bound by the caller) and resets it: 0 or a code; *changes rows it changed. */
static int run_counted(sqlite3 *db, sqlite3_stmt *st, int64_t *changes)
{
  int rc = step_code(db, sqlite3_step(st));
  sqlite3_reset(st);
  *changes = rc ? 0 : sqlite3_changes64(db);
  return rc;
}

/* Table t's rows in its order, in a->sorted. */
static int sort_table(keys_arg *a, int t)
{
  const task_keys *k = a->k;
  free(a->sorted);
  a->sorted = malloc((k->n ? k->n : 1) * sizeof(*a->sorted));
  if(!a->sorted)
    return LS_ENOMEM;
  for(size_t i = 0; i < k->n; i++)
    a->sorted[i] = (key_row){k->key[t][i], k->id[i]};
  qsort(a->sorted, k->n, sizeof(*a->sorted), key_defs[t].desc ? cmp_key_desc : cmp_key_asc);
  a->next = 0;
  return 0;
}

/* 1 when the transaction that began at t0 should commit now. */
static int time_up(double t0)
{
  return store_now_ms() - t0 > STORE_CHUNK_MS;
}

/* Some of phase a->phase, until it ends or the transaction's time is up. */
static int keys_phase(sqlite3 *db, keys_arg *a)
{
  char sql[256];
  sqlite3_stmt *st = NULL;
  int64_t changes = 0;
  int rc = 0;
  if(a->phase < NKEY_TABLES) {
    const key_def *k = &key_defs[a->phase];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE (sid, %s, id) IN (SELECT sid, %s, id FROM %s WHERE sid = ?1 LIMIT %d)",
             k->table, k->col, k->col, k->table, KEYS_STEP);
    rc = prep(db, sql, &st);
    for(changes = KEYS_STEP; !rc && changes == KEYS_STEP && !time_up(a->t0);) {
      sqlite3_bind_int64(st, 1, a->sid);
      rc = run_counted(db, st, &changes);
    }
    if(!rc && changes < KEYS_STEP && ++a->phase == NKEY_TABLES)
      rc = sort_table(a, 0);
  }
  else if(a->phase < 2 * NKEY_TABLES) {
    int t = a->phase - NKEY_TABLES;
    snprintf(sql, sizeof(sql), "INSERT INTO %s(sid, %s, id, pos) VALUES(?1, ?2, ?3, ?4)", key_defs[t].table, key_defs[t].col);
    rc = prep(db, sql, &st);
    /* in the table's own order: each row goes after the last, pages fill one after another */
    for(size_t i = 0; !rc && a->next < a->k->n && !store_chunk_over(++i, a->t0); a->next++) {
      sqlite3_bind_int64(st, 1, a->sid);
      sqlite3_bind_int64(st, 2, a->sorted[a->next].key);
      sqlite3_bind_int64(st, 3, a->sorted[a->next].id);
      sqlite3_bind_int64(st, 4, (int64_t)a->next);
      rc = run_counted(db, st, &changes);
    }
    if(!rc && a->next == a->k->n && ++a->phase < 2 * NKEY_TABLES)
      rc = sort_table(a, a->phase - NKEY_TABLES);
  }
  else {
    rc = prep(db, "INSERT OR REPLACE INTO task_keys_done(sid, n_events, tasks) VALUES(?1, ?2, ?3)", &st);
    if(!rc) {
      sqlite3_bind_int64(st, 1, a->sid);
      sqlite3_bind_int64(st, 2, a->n_events);
      sqlite3_bind_int64(st, 3, (int64_t)a->k->n);
      rc = run_counted(db, st, &changes);
    }
    a->done = !rc;
  }
  sqlite3_finalize(st);
  return rc;
}

/* One transaction of about STORE_CHUNK_MS: the task_keys_done row goes first (a reader never takes
 * a half-written set for current), then the old rows, then each table in its order, then the
 * task_keys_done row once every row is in. */
static int put_keys(sqlite3 *db, void *arg)
{
  keys_arg *a = arg;
  a->t0 = store_now_ms();
  int rc = 0;
  if(a->phase == 0) {
    sqlite3_stmt *st = NULL;
    rc = prep(db, "DELETE FROM task_keys_done WHERE sid = ?1", &st);
    if(!rc) {
      sqlite3_bind_int64(st, 1, a->sid);
      rc = step_code(db, sqlite3_step(st));
    }
    sqlite3_finalize(st);
  }
  while(!rc && !a->done && !time_up(a->t0))
    rc = keys_phase(db, a);
  return rc;
}

/* The keys of x written, as of x's event count (a batch arriving meanwhile leaves them stale:
 * task_keys_done names the count they are of). */
static int write_keys(store_reader *r, const store_session *x, const atomic_int *stop)
{
  task_keys k;
  double t0 = store_now_ms(), longest = 0;
  int rc = keys_load(r->db, x, &k);
  if(rc)
    return rc;
  double t1 = store_now_ms();
  keys_arg a = {.sid = x->sid, .n_events = x->n_events, .k = &k};
  size_t writes = 0;
  for(;;) {
    rc = store_write_on_reader(r, put_keys, &a);
    double held = store_now_ms() - a.t0;
    longest = held > longest ? held : longest;
    writes++;
    if(rc || a.done)
      break;
    if(atomic_load(stop)) {
      rc = LS_ESTOPPED;
      break;
    }
    store_yield_lock(held);
  }
  if(!rc)
    log_msg(LOG_INFO, "store: task keys of session %s: %zu tasks in %.0f ms (read %.0f ms, %zu write transactions,"
            " longest %.1f ms)", x->id, k.n, store_now_ms() - t0, t1 - t0, writes, longest);
  free(a.sorted);
  keys_free(&k);
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

int store_keys_prepare(store *s, const char *id, const atomic_int *stop)
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int rc = store_find_session(r, id, &ar, &x);
  if(!rc && x.ended) {
    /* the tree first: the page's lanes (/rows) come before its table */
    int built = 0;
    int64_t rows = 0;
    store_tree *mem = NULL;
    rc = store_write_on_reader(r, drop_appended, &x.sid);
    if(!rc)
      rc = store_rows_ensure(r, x.sid, STORE_TREE_MEM_MAX, &built, &rows, &mem);
    store_tree_free(mem);
    /* the keys of the session as of a new snapshot, read with it (the writes above ended the
     * one x came from) */
    if(!rc && atomic_load(stop))
      rc = LS_ESTOPPED;
    if(!rc)
      rc = store_find_session(r, id, &ar, &x); /* LS_ENOTFOUND: deleted meanwhile */
    int stored = rc ? rc : keys_stored(r->db, &x);
    if(!rc && stored == LS_ENOTFOUND)
      rc = write_keys(r, &x, stop);
    else if(!rc)
      rc = stored;
  }
  if(rc && rc != LS_ESTOPPED && rc != LS_ENOTFOUND)
    log_msg(LOG_WARN, "store: the task keys of session %s were not stored (%s); its tables sort in memory", id,
            ls_strerror(rc));
  arena_free(&ar);
  store_reader_release(s, r);
  return rc;
}
