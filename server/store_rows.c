/* store_rows.c — the stored task tree (store_rows.h, schema task_rows): built from the tasks
 * table with stats.c's tree order when the session's rows_built flag says it is stale (ordered on a
 * read snapshot, written in short transactions so ingest is not held up), and read by position or
 * by task id; when it cannot be written (a read-only or full database, the lock held elsewhere
 * past the busy timeout) the tree built is kept in memory for the request instead. Which
 * positions a window shows is query_rows.c's business. Part of the store module
 * (store_internal.h). */
#include "store_rows.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "log.h"
#include "stats.h"
#include "store_internal.h"

#define TREE_MAX ((size_t)64 << 20) /* tasks a tree is built for at most (memory bound) */

void store_tree_free(store_tree *t)
{
  if(t && !t->cached)
    store_tree_drop(t);
}

void store_tree_drop(store_tree *t)
{
  if(!t)
    return;
  free(t->id);
  free(t->parent);
  free(t->depth);
  free(t->children);
  free(t->size);
  free(t->by_id);
  free(t->add);
  free(t->add_by_id);
  free(t->delta);
  free(t);
}

static int cmp_pair(const void *a, const void *b)
{
  int64_t x = (*(const int64_t (*)[2])a)[0], y = (*(const int64_t (*)[2])b)[0];
  return (x > y) - (x < y);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
  int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
  if(rc != SQLITE_OK) {
    log_msg(LOG_WARN, "store: task rows: %s", sqlite3_errmsg(db));
    sqlite3_finalize(*st);
    *st = NULL;
    return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
  }
  return 0;
}

/* The step's result as a project code (SQLITE_ROW and SQLITE_DONE are fine). */
static int step_code(sqlite3 *db, int rc)
{
  if(rc == SQLITE_ROW || rc == SQLITE_DONE)
    return 0;
  log_msg(LOG_WARN, "store: task rows: %s", sqlite3_errmsg(db));
  return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
}

/* rows_built of session sid (1: current, see BUILDING below); LS_ENOTFOUND when the session is gone. */
static int read_built(sqlite3 *db, int64_t sid, int *built)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "SELECT rows_built FROM sessions WHERE sid = ?1", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  int src = sqlite3_step(st);
  if(src == SQLITE_ROW)
    *built = sqlite3_column_int(st, 0);
  rc = src == SQLITE_DONE ? LS_ENOTFOUND : step_code(db, src);
  sqlite3_finalize(st);
  return rc;
}

/* The session's tasks as stats_task rows (created -1 when unknown, as /tasks orders them). */
static int load_tree_input(sqlite3 *db, int64_t sid, size_t max, stats_task **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "SELECT id, parent, created FROM tasks WHERE sid = ?1 AND has_task = 1", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  size_t cap = 0;
  stats_task *v = NULL;
  int src;
  while(!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
    if(*n == cap) {
      size_t ncap = cap ? cap * 2 : 1024;
      ncap = ncap > max ? max : ncap;
      stats_task *p = *n < max ? realloc(v, ncap * sizeof(*v)) : NULL;
      if(!p) {
        rc = *n < max ? LS_ENOMEM : LS_ETOOBIG;
        break;
      }
      v = p;
      cap = ncap;
    }
    v[(*n)++] = (stats_task){.id = sqlite3_column_int64(st, 0), .parent = sqlite3_column_int64(st, 1),
                             .created = store_col_opt(st, 2)};
  }
  if(!rc)
    rc = step_code(db, src);
  sqlite3_finalize(st);
  if(rc) {
    free(v);
    *n = 0;
    return rc;
  }
  *out = v;
  return 0;
}

/* The tree's shape in tree order: for the k-th row its parent's row (-1: a root), its subtree
 * size and direct children. In depth-first order a task's parent is the last task seen one level
 * up (anc[depth - 1]), and a subtree's size is summed from the end backwards, children before
 * their parent. */
typedef struct tree_shape {
  const stats_task *t;
  const size_t *order;
  size_t n;
  int64_t *size, *kids;
} tree_shape;

static int shape_tree(tree_shape *sh)
{
  size_t n = sh->n, m = n ? n : 1;
  int64_t *pp = malloc(m * sizeof(*pp)), *anc = malloc(m * sizeof(*anc));
  sh->size = malloc(m * sizeof(*sh->size));
  sh->kids = calloc(m, sizeof(*sh->kids));
  int rc = pp && anc && sh->size && sh->kids ? 0 : LS_ENOMEM;
  for(size_t k = 0; !rc && k < n; k++) {
    int32_t d = sh->t[sh->order[k]].depth;
    pp[k] = d > 0 ? anc[d - 1] : -1;
    anc[d] = (int64_t)k;
    sh->size[k] = 1;
  }
  for(size_t k = n; !rc && k > 0; k--) {
    if(pp[k - 1] >= 0) {
      sh->size[pp[k - 1]] += sh->size[k - 1];
      sh->kids[pp[k - 1]]++;
    }
  }
  free(pp);
  free(anc);
  return rc;
}

/* rows_built values: 1 the stored tree is current but for the tasks in task_rows_add (tasks
 * that arrived since: store_rows_add.c places them); 0 stale (the triggers of the tasks table set
 * it when a task moves); BUILDING a build has started from a snapshot taken after it was set. A
 * task arriving during the build is recorded in task_rows_add, one moving makes the flag 0 again
 * (the triggers change any value but 0), so the build's last transaction knows whether what it
 * computed is still current. */
#define BUILDING 2

/* A write transaction of the build writes for about STORE_CHUNK_MS, then gives the lock up for
 * about as long as it held it (issue 14: one transaction for 1M rows held it for ~5 s). The pause
 * is what lets ingest in: SQLite's busy handler sleeps in growing steps (1, 2, 5, ... 25, 50, 100
 * ms) and never queues, so a builder that began its next transaction at once would take the
 * lock again before the sleeping writer woke, every time, for the whole build. A writer that
 * began waiting during a hold of W ms wakes within about 2W + 2 ms: the pause covers that. */
#define CHUNK_CHECK 256 /* rows between looks at the clock */

double store_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int store_chunk_over(size_t k, double t0)
{
  return k > 0 && k % CHUNK_CHECK == 0 && store_now_ms() - t0 > STORE_CHUNK_MS;
}

void store_yield_lock(double held_ms)
{
  struct timespec pause = {0, (long)((held_ms + 2.0) * 1e6)};
  if(held_ms > 998.0)
    pause = (struct timespec){1, 0};
  nanosleep(&pause, NULL);
}

typedef struct chunk_arg {
  int64_t sid;
  const tree_shape *sh;
  size_t lo, hi;   /* rows [lo, hi) written by this transaction (hi set by write_chunk) */
  int last;        /* set when hi reached the end: drops rows past it and marks the tree built */
  int force;       /* mark: build although the flag says current (the appended tasks do not fit) */
  double t0;       /* when the transaction got the lock */
  int state;       /* mark: rows_built seen; last chunk: 1 when it was marked current */
} chunk_arg;

/* First transaction of a build: sets BUILDING unless another build finished meanwhile (forced:
 * unless no appended task waits any more). */
static int mark_building(sqlite3 *db, void *arg)
{
  chunk_arg *c = arg;
  int built = 0;
  int64_t waiting = 0;
  int rc = read_built(db, c->sid, &built);
  if(!rc && built == 1 && c->force)
    rc = store_rows_added(db, c->sid, &waiting);
  if(!rc && built == 1 && waiting > 0)
    built = 2;
  c->state = built;
  sqlite3_stmt *st = NULL;
  if(!rc && built != 1)
    rc = prep(db, "UPDATE sessions SET rows_built = 2 WHERE sid = ?1", &st);
  if(st) {
    sqlite3_bind_int64(st, 1, c->sid);
    rc = step_code(db, sqlite3_step(st));
    sqlite3_finalize(st);
  }
  return rc;
}

/* The tree's orphans (a named parent not in it, or a loop broken there) by parent, replacing
 * those stored; more than ORPHANS_MAX: one row (-1, -1) for all. */
#define ORPHANS_MAX 4096
static int put_orphans(sqlite3 *db, const tree_shape *sh, int64_t sid)
{
  sqlite3_stmt *del = NULL, *ins = NULL;
  int rc = prep(db, "DELETE FROM task_rows_orphans WHERE sid = ?1", &del);
  if(!rc)
    rc = prep(db, "INSERT OR IGNORE INTO task_rows_orphans(sid, parent, id) VALUES(?1, ?2, ?3)", &ins);
  if(!rc) {
    sqlite3_bind_int64(del, 1, sid);
    rc = step_code(db, sqlite3_step(del));
  }
  size_t k = 0;
  for(size_t i = 0; !rc && i < sh->n; i++)
    k += sh->t[i].parent != 0 && sh->t[i].eff_parent == 0;
  for(size_t i = 0; !rc && i < sh->n; i++) {
    const stats_task *x = &sh->t[i];
    if(k > ORPHANS_MAX ? i > 0 : x->parent == 0 || x->eff_parent != 0)
      continue;
    sqlite3_bind_int64(ins, 1, sid);
    sqlite3_bind_int64(ins, 2, k > ORPHANS_MAX ? -1 : x->parent);
    sqlite3_bind_int64(ins, 3, k > ORPHANS_MAX ? -1 : x->id);
    rc = step_code(db, sqlite3_step(ins));
    sqlite3_reset(ins);
  }
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  return rc;
}

/* Rows [lo, hi) of the tree, replacing what was stored at those positions; the last chunk also
 * drops positions past the end, the appended tasks it ordered and the orphans of the tree before,
 * and marks the tree current if no task moved since BUILDING. */
static int write_chunk(sqlite3 *db, void *arg)
{
  chunk_arg *c = arg;
  const tree_shape *sh = c->sh;
  c->t0 = store_now_ms();
  sqlite3_stmt *ins = NULL, *del = NULL, *mark = NULL;
  int rc = prep(db, "INSERT OR REPLACE INTO task_rows(sid, pos, id, parent, depth, children, size)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)", &ins);
  size_t k = c->lo;
  for(; !rc && k < sh->n; k++) {
    if(store_chunk_over(k - c->lo, c->t0))
      break;
    const stats_task *x = &sh->t[sh->order[k]];
    sqlite3_bind_int64(ins, 1, c->sid);
    sqlite3_bind_int64(ins, 2, (int64_t)k);
    sqlite3_bind_int64(ins, 3, x->id);
    sqlite3_bind_int64(ins, 4, x->eff_parent);
    sqlite3_bind_int64(ins, 5, x->depth);
    sqlite3_bind_int64(ins, 6, sh->kids[k]);
    sqlite3_bind_int64(ins, 7, sh->size[k]);
    rc = step_code(db, sqlite3_step(ins));
    sqlite3_reset(ins);
  }
  c->hi = k;
  c->last = k == sh->n;
  if(!rc && c->last)
    rc = prep(db, "DELETE FROM task_rows WHERE sid = ?1 AND pos >= ?2", &del);
  if(!rc && c->last) {
    sqlite3_bind_int64(del, 1, c->sid);
    sqlite3_bind_int64(del, 2, (int64_t)sh->n);
    rc = step_code(db, sqlite3_step(del));
  }
  if(!rc && c->last)
    rc = put_orphans(db, sh, c->sid);
  if(!rc && c->last)
    rc = store_rows_drop_added(db, c->sid);
  if(!rc && c->last)
    rc = prep(db, "UPDATE sessions SET rows_built = 1 WHERE sid = ?1 AND rows_built = 2", &mark);
  if(!rc && c->last) {
    sqlite3_bind_int64(mark, 1, c->sid);
    rc = step_code(db, sqlite3_step(mark));
    c->state = !rc && sqlite3_changes(db) == 1;
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(del);
  sqlite3_finalize(mark);
  return rc;
}

/* One build at a time in this process: a second request for a stale tree waits here, then finds
 * it built (mark_building reads the flag in its own transaction). */
static pthread_mutex_t build_mu = PTHREAD_MUTEX_INITIALIZER;

/* A write the storage refused for now (read-only or full database, the lock held elsewhere past
 * the busy timeout): the tree is served from memory instead. A corrupt file or no memory is not. */
static int write_refused(int rc)
{
  return rc == LS_EBUSY || rc == LS_EIO;
}

/* The tree of sh kept in memory (the caller's, store_tree_free). */
static int keep_tree(const tree_shape *sh, store_tree **out)
{
  size_t n = sh->n, m = n ? n : 1;
  store_tree *t = calloc(1, sizeof(*t));
  if(t) {
    t->n = n;
    t->id = malloc(m * sizeof(*t->id));
    t->parent = malloc(m * sizeof(*t->parent));
    t->depth = malloc(m * sizeof(*t->depth));
    t->children = malloc(m * sizeof(*t->children));
    t->size = malloc(m * sizeof(*t->size));
    t->by_id = malloc(m * sizeof(*t->by_id));
  }
  if(!t || !t->id || !t->parent || !t->depth || !t->children || !t->size || !t->by_id) {
    store_tree_free(t);
    return LS_ENOMEM;
  }
  for(size_t k = 0; k < n; k++) {
    const stats_task *x = &sh->t[sh->order[k]];
    t->id[k] = x->id;
    t->parent[k] = x->eff_parent;
    t->depth[k] = x->depth;
    t->children[k] = sh->kids[k];
    t->size[k] = sh->size[k];
    t->by_id[k][0] = x->id;
    t->by_id[k][1] = (int64_t)k;
  }
  qsort(t->by_id, n, sizeof(*t->by_id), cmp_pair);
  *out = t;
  return 0;
}

/* Said once per process: a database that refuses writes refuses every build. */
static atomic_int told_in_memory;

/* The build: the tasks are read and ordered on a read snapshot taken after BUILDING was set (no
 * lock held), then written STORE_CHUNK_MS at a time, pausing between the transactions. Readers of
 * the tree never see it half written: while the flag is not 1 they come here and wait for
 * build_mu. When the storage refuses the writes, the ordered tree goes to *mem instead (at most
 * mem_max tasks, else LS_EBUSY), and the flag stays as it is for the next request to try. */
static int build_tree(store_reader *r, int64_t sid, int force, size_t mem_max, int *built, store_tree **mem)
{
  double t0 = store_now_ms(), longest = 0;
  chunk_arg c = {.sid = sid, .force = force};
  int rc = store_write_on_reader(r, mark_building, &c), refused = 0;
  if(!rc && c.state == 1)
    return 0;
  if(write_refused(rc)) {
    refused = rc;
    rc = 0;
  }
  if(rc)
    return rc;
  stats_task *t = NULL;
  size_t n = 0, *order = NULL, writes = 0;
  tree_shape sh = {0};
  rc = load_tree_input(r->db, sid, refused ? mem_max : TREE_MAX, &t, &n);
  if(!rc && !(order = malloc((n ? n : 1) * sizeof(*order))))
    rc = LS_ENOMEM;
  if(!rc)
    rc = stats_task_tree(t, n, order);
  sh = (tree_shape){.t = t, .order = order, .n = n};
  if(!rc)
    rc = shape_tree(&sh);
  double t1 = store_now_ms();
  for(size_t lo = 0; !rc && !refused;) {
    c = (chunk_arg){.sid = sid, .sh = &sh, .lo = lo};
    rc = store_write_on_reader(r, write_chunk, &c);
    double held = store_now_ms() - c.t0;
    longest = held > longest ? held : longest;
    writes++;
    if(write_refused(rc) && n <= mem_max) {
      refused = rc;
      rc = 0;
    }
    if(rc || refused || c.last)
      break;
    lo = c.hi;
    store_yield_lock(held);
  }
  if(!rc && refused) {
    rc = keep_tree(&sh, mem);
    if(!rc && atomic_exchange(&told_in_memory, 1) == 0)
      log_msg(LOG_WARN, "store: the task tree of session %lld cannot be stored (%s): /rows orders it in memory for"
              " each request until it can (sessions of up to %zu tasks; larger ones are answered 503)",
              (long long)sid, ls_strerror(refused), mem_max);
  }
  else if(!rc) {
    *built = 1;
    log_msg(LOG_INFO, "store: task rows of session %lld: %zu rows in %.0f ms (read and order %.0f ms,"
            " %zu write transactions, longest %.1f ms)%s", (long long)sid, n, store_now_ms() - t0, t1 - t0,
            writes, longest, c.state ? "" : "; tasks moved meanwhile, stale again");
  }
  if(rc == LS_ETOOBIG) /* more tasks than a tree in memory may hold: busy, as the storage is */
    rc = LS_EBUSY;
  free(sh.size);
  free(sh.kids);
  free(order);
  free(t);
  return rc;
}

/* The reader's connection is query_only between requests; for a build it writes, in a
 * transaction that waits for the write lock as long as the writer would (busy timeout). With
 * the writer's durability (synchronous NORMAL: no fsync per commit, SQLite's default in WAL is
 * FULL) and no checkpoint of its own after the commit: checkpoints are the writer's
 * (store_maybe_checkpoint), and one here made a build's commit take 100+ ms. */
int store_write_on_reader(store_reader *r, int (*fn)(sqlite3 *db, void *arg), void *arg)
{
  sqlite3 *db = r->db;
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  int rc = store_exec(db, "PRAGMA query_only = 0; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0", NULL, 0);
  if(!rc)
    rc = store_exec(db, "BEGIN IMMEDIATE", NULL, 0);
  if(!rc) {
    rc = fn(db, arg);
    if(!rc)
      rc = store_exec(db, "COMMIT", NULL, 0);
    if(rc)
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  int qrc = store_exec(db, "PRAGMA query_only = 1", NULL, 0);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  return rc ? rc : qrc;
}

int store_rows_current(store_reader *r, int64_t sid)
{
  int ok = 0;
  return read_built(r->db, sid, &ok) == 0 && ok == 1;
}

/* Rows of the stored tree (its last position + 1). */
static int stored_rows(sqlite3 *db, int64_t sid, int64_t *n)
{
  *n = 0;
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "SELECT pos FROM task_rows WHERE sid = ?1 ORDER BY pos DESC LIMIT 1", &st);
  if(!rc) {
    sqlite3_bind_int64(st, 1, sid);
    int src = sqlite3_step(st);
    if(src == SQLITE_ROW)
      *n = sqlite3_column_int64(st, 0) + 1;
    rc = step_code(db, src);
    sqlite3_finalize(st);
  }
  return rc;
}

int store_rows_ensure(store_reader *r, int64_t sid, size_t mem_max, int *built, int64_t *rows, store_tree **mem)
{
  *built = 0;
  *rows = 0;
  *mem = NULL;
  int ok = 0, force = 0;
  int64_t stored = 0;
  int rc = read_built(r->db, sid, &ok);
  /* current: the tasks that arrived since are placed in it (unless they do not fit: rebuilt) */
  if(!rc && ok == 1)
    rc = stored_rows(r->db, sid, &stored);
  if(!rc && ok == 1) {
    rc = store_rows_extend(r, sid, stored, mem);
    force = rc == STORE_ROWS_REBUILD;
    if(force)
      rc = 0;
    if(!rc && !force) {
      *rows = *mem ? (int64_t)((*mem)->stored + (*mem)->k) : stored;
      return 0;
    }
  }
  if(!rc) {
    pthread_mutex_lock(&build_mu);
    rc = build_tree(r, sid, force, mem_max, built, mem);
    pthread_mutex_unlock(&build_mu);
  }
  if(!rc && *mem) {
    *rows = (int64_t)(*mem)->n;
    return 0;
  }
  if(!rc)
    rc = stored_rows(r->db, sid, &stored);
  /* what arrived during the build: placed in the tree just built, as above */
  if(!rc)
    rc = store_rows_extend(r, sid, stored, mem);
  if(rc == STORE_ROWS_REBUILD) /* left for the next request: this one built already */
    rc = 0;
  *rows = *mem ? (int64_t)((*mem)->stored + (*mem)->k) : stored;
  return rc;
}

/* Row k of a tree in memory (shape only). */
static void mem_row(const store_tree *t, size_t k, store_row *x)
{
  x->pos = (int64_t)k;
  x->id = t->id[k];
  x->parent = t->parent[k];
  x->depth = t->depth[k];
  x->children = t->children[k];
  x->size = t->size[k];
}

static int mem_find(const store_tree *t, int64_t id, store_row *x)
{
  size_t lo = 0, hi = t->n;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(t->by_id[mid][0] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  if(lo < t->n && t->by_id[lo][0] == id)
    mem_row(t, (size_t)t->by_id[lo][1], x);
  return 0;
}

int store_rows_find_many(store_reader *r, int64_t sid, const store_tree *mem, const int64_t *ids, size_t n,
                         store_row *out)
{
  if(mem && mem->add)
    return store_rows_added_find(r, sid, mem, ids, n, out);
  if(mem) {
    for(size_t i = 0; i < n; i++) {
      memset(&out[i], 0, sizeof(out[i]));
      mem_find(mem, ids[i], &out[i]);
    }
    return 0;
  }
  sqlite3_stmt *st = NULL;
  int rc = prep(r->db, /* INDEXED BY: without it SQLite 3.40 scans the session by its primary key (sid, pos) */
                "SELECT pos, parent, depth, children, size FROM task_rows INDEXED BY task_rows_id WHERE sid = ?1 AND id = ?2", &st);
  for(size_t i = 0; !rc && i < n; i++) {
    memset(&out[i], 0, sizeof(out[i]));
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, ids[i]);
    int src = sqlite3_step(st);
    if(src == SQLITE_ROW) {
      out[i].id = ids[i];
      out[i].pos = sqlite3_column_int64(st, 0);
      out[i].parent = sqlite3_column_int64(st, 1);
      out[i].depth = sqlite3_column_int64(st, 2);
      out[i].children = sqlite3_column_int64(st, 3);
      out[i].size = sqlite3_column_int64(st, 4);
    }
    rc = step_code(r->db, src);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

int store_rows_find(store_reader *r, int64_t sid, const store_tree *mem, int64_t id, store_row *out)
{
  int rc = store_rows_find_many(r, sid, mem, &id, 1, out);
  return !rc && out->id == 0 ? LS_ENOTFOUND : rc;
}

/* The task's own fields of a row, from columns base.. of st (as both reads below select them). */
#define TASK_COLS "t.created, t.first_run, t.ended, t.busy_ns, t.wait_ns, t.status, t.name, t.coro, t.state, t.exc"
static void task_cols(sqlite3_stmt *st, int base, arena *a, store_row *x)
{
  x->created = store_col_opt(st, base);
  x->first_run = store_col_opt(st, base + 1);
  x->ended = store_col_opt(st, base + 2);
  x->busy_ns = sqlite3_column_int64(st, base + 3);
  x->wait_ns = sqlite3_column_int64(st, base + 4);
  x->status = store_col_opt(st, base + 5);
  x->name = store_col_text(st, base + 6, a);
  x->coro = store_col_text(st, base + 7, a);
  x->state = store_col_text(st, base + 8, a);
  x->exc = store_col_text(st, base + 9, a);
}

/* store_rows_scan of a tree in memory: the shape from it, each task's fields by its id. */
int store_rows_task_fields(store_reader *r, int64_t sid, store_row *x, size_t n, arena *a)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(r->db, "SELECT " TASK_COLS " FROM tasks t WHERE t.sid = ?1 AND t.id = ?2", &st);
  for(size_t i = 0; !rc && i < n; i++) {
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, x[i].id);
    int src = sqlite3_step(st);
    if(src == SQLITE_ROW)
      task_cols(st, 0, a, &x[i]);
    rc = step_code(r->db, src);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

static int mem_scan(store_reader *r, int64_t sid, const store_tree *mem, int64_t lo, int64_t hi, size_t max,
                    arena *a, store_row *out, size_t *n)
{
  for(int64_t k = lo < 0 ? 0 : lo; k < hi && k < (int64_t)mem->n && *n < max; k++) {
    store_row *x = &out[(*n)++];
    memset(x, 0, sizeof(*x));
    mem_row(mem, (size_t)k, x);
  }
  return store_rows_task_fields(r, sid, out, *n, a);
}

int store_rows_scan(store_reader *r, int64_t sid, const store_tree *mem, int64_t lo, int64_t hi, size_t max,
                    arena *a, store_row *out, size_t *n)
{
  *n = 0;
  if(max == 0 || lo >= hi)
    return 0;
  int rc = 0;
  if(mem && mem->add)
    rc = store_rows_added_scan(r, sid, mem, lo, hi, max, a, out, n);
  else if(mem)
    rc = mem_scan(r, sid, mem, lo, hi, max, a, out, n);
  else {
    sqlite3_stmt *st = NULL;
    /* CROSS JOIN: task_rows outside, so the scan follows (sid, pos) and each task is one lookup */
    rc = prep(r->db, "SELECT r.pos, r.id, r.parent, r.depth, r.children, r.size, " TASK_COLS
                     " FROM task_rows r CROSS JOIN tasks t ON t.sid = r.sid AND t.id = r.id"
                     " WHERE r.sid = ?1 AND r.pos >= ?2 AND r.pos < ?3 ORDER BY r.pos LIMIT ?4", &st);
    if(rc)
      return rc;
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    sqlite3_bind_int64(st, 4, (int64_t)max);
    int src;
    while((src = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
      store_row *x = &out[(*n)++];
      x->pos = sqlite3_column_int64(st, 0);
      x->id = sqlite3_column_int64(st, 1);
      x->parent = sqlite3_column_int64(st, 2);
      x->depth = sqlite3_column_int64(st, 3);
      x->children = sqlite3_column_int64(st, 4);
      x->size = sqlite3_column_int64(st, 5);
      task_cols(st, 6, a, x);
    }
    rc = step_code(r->db, src);
    sqlite3_finalize(st);
  }
  if(!rc && a->failed)
    rc = LS_ENOMEM;
  return rc;
}
