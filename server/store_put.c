/* store_put.c — the write side's batches and deletes on the write connection (store.h): one
 * ingested batch into its session's rows inside the writer's transaction, and sessions deleted
 * (tombstoned for store_maintain.c's purge). The connection, its statements (wsql) and
 * transactions are store.c's; the await-point upsert store_endpoints.c's. Part of the store module
 * (store_internal.h). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store_internal.h"

/* What one batch says of one task, gathered from its task, done, step and await events: a row of
 * put_tasks' single upsert (W_TASK_ROW). ord keeps the events' order among equal ids, so the last
 * task (or done) event of a task in the batch is the one kept, as when each was an upsert. */
typedef struct task_part {
  int64_t id;
  size_t ord;
  const ingest_task *task; /* NULL: not a task event */
  const ingest_done *done; /* NULL: not a done event */
  int64_t busy, wait, first; /* a stored step's d and t (first -1: none), a stored await's d */
} task_part;

static int part_cmp(const void *a, const void *b)
{
  const task_part *x = a, *y = b;
  if(x->id != y->id)
    return (x->id > y->id) - (x->id < y->id);
  return (x->ord > y->ord) - (x->ord < y->ord);
}

/* Part p added to the sum of its task's parts before it (in event order). */
static void part_add(task_part *sum, const task_part *p)
{
  if(p->task)
    sum->task = p->task;
  if(p->done)
    sum->done = p->done;
  sum->busy += p->busy;
  sum->wait += p->wait;
  if(p->first >= 0 && (sum->first < 0 || p->first < sum->first))
    sum->first = p->first;
}

/* The parts v[0..k) (in event order: ord = index) summed per task into v[0..rows), by id; returns
 * rows. A batch's task ids are nearly always a dense run (the collector numbers a session's tasks
 * from 1): then each part goes straight to its id's slot, in one pass and no sort (glibc's qsort
 * is a merge sort through malloc: 4% of the writer's samples on a burst of web-request sessions).
 * Ids spread wider, or no memory for the slots: sorted by (id, ord) and summed run by run. */
static size_t merge_parts(task_part *v, size_t k)
{
  if(k < 2)
    return k;
  int64_t lo = v[0].id, hi = v[0].id;
  for(size_t i = 1; i < k; i++) {
    lo = v[i].id < lo ? v[i].id : lo;
    hi = v[i].id > hi ? v[i].id : hi;
  }
  uint64_t span = (uint64_t)hi - (uint64_t)lo; /* hi >= lo: their difference fits unsigned */
  /* a web request's batch (~60 parts) on the stack, larger ones from the heap */
  enum { SMALL = 256 };
  uint32_t slot_small[2 * SMALL + 64];
  task_part sum_small[SMALL];
  int small = k <= SMALL;
  uint32_t *slot = NULL;
  if(span < 2 * (uint64_t)k + 64)
    slot = small ? memset(slot_small, 0, (span + 1) * sizeof(*slot)) : calloc(span + 1, sizeof(*slot));
  if(slot) {
    task_part *sum = small ? sum_small : malloc(k * sizeof(*sum));
    if(sum) {
      size_t rows = 0;
      for(size_t i = 0; i < k; i++) { /* slot: 1 + the id's row in sum, 0: none yet */
        uint32_t *at = &slot[v[i].id - lo];
        if(*at)
          part_add(&sum[*at - 1], &v[i]);
        else
          sum[rows] = v[i], *at = (uint32_t)++rows;
      }
      size_t out = 0;
      for(uint64_t d = 0; d <= span; d++)
        if(slot[d])
          v[out++] = sum[slot[d] - 1];
      if(!small) {
        free(sum);
        free(slot);
      }
      return out;
    }
    free(slot); /* not small: a small one has its sum on the stack */
  }
  qsort(v, k, sizeof(*v), part_cmp);
  size_t rows = 0;
  for(size_t i = 0; i < k;) {
    task_part sum = v[i];
    size_t j = i + 1;
    for(; j < k && v[j].id == sum.id; j++)
      part_add(&sum, &v[j]);
    v[rows++] = sum;
    i = j;
  }
  return rows;
}

/* Runs st (kept) with ?1 = a and, when st has a second parameter, ?2 = b: its first column's
 * integer in *out (0 with no row). 0 or a project code. */
static int one_int64(store *s, sqlite3_stmt *st, int64_t a, int64_t b, int64_t *out)
{
  sqlite3_bind_int64(st, 1, a);
  if(sqlite3_bind_parameter_count(st) >= 2)
    sqlite3_bind_int64(st, 2, b);
  int src = sqlite3_step(st);
  *out = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return store_wstep_rc(s, src);
}

/* A task row as it was before this batch's upsert: what 009's triggers saw as OLD. */
typedef struct old_task {
  int exists, has_task, created_null;
  int64_t parent, created;
} old_task;

static int task_old(store *s, int64_t sid, int64_t id, old_task *o)
{
  sqlite3_stmt *st = s->ws[W_TASK_OLD];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, id);
  int src = sqlite3_step(st);
  if(src == SQLITE_ROW)
    *o = (old_task){1, sqlite3_column_int(st, 0), sqlite3_column_type(st, 2) == SQLITE_NULL,
                    sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)};
  sqlite3_reset(st);
  return store_wstep_rc(s, src);
}

/* After task row x's upsert in a session whose rows were built (*built: its rows_built, not 0),
 * what 009's triggers did: a row now listed (inserted with its task event, or has_task 0 -> 1)
 * goes to task_rows_add while rows_built is 1 or 2 (task_rows_new, task_rows_announced); a listed
 * task whose parent or created changed makes rows_built 0 (task_rows_moved), and *built with it. */
static int rows_after(store *s, int64_t sid, const task_part *x, const old_task *o, int64_t *built)
{
  const ingest_task *t = x->task;
  if(!t && !(o->exists && o->has_task))
    return 0; /* not listed before or now */
  int64_t ignored;
  if(!o->exists || !o->has_task) /* listed from now on: t is its task event */
    return *built == 1 || *built == 2 ? one_int64(s, s->ws[W_ROWS_ADD], sid, x->id, &ignored) : 0;
  if(t && (o->parent != t->parent || o->created_null || o->created != t->t)) {
    *built = 0;
    return one_int64(s, s->ws[W_ROWS_STALE], sid, 0, &ignored);
  }
  return 0;
}

/* Binds a merged task row's 13 columns (W_TASKS_8's order: id, parent, name, coro, created,
 * has_task, ended, state, exc, status, busy_ns, wait_ns, first_run) to st from parameter p on. */
static void bind_task_row(sqlite3_stmt *st, int p, const task_part *x)
{
  const ingest_task *t = x->task;
  const ingest_done *d = x->done;
  sqlite3_bind_int64(st, p, x->id);
  sqlite3_bind_int64(st, p + 1, t ? t->parent : 0);
  store_bind_text(st, p + 2, t ? t->name : NULL);
  store_bind_text(st, p + 3, t ? t->coro : NULL);
  if(t) /* any value: not store_bind_opt_i64, for which -1 means absent */
    sqlite3_bind_int64(st, p + 4, t->t);
  else
    sqlite3_bind_null(st, p + 4);
  sqlite3_bind_int(st, p + 5, t != NULL);
  if(d)
    sqlite3_bind_int64(st, p + 6, d->t);
  else
    sqlite3_bind_null(st, p + 6);
  store_bind_text(st, p + 7, d ? d->state : NULL);
  store_bind_text(st, p + 8, d ? d->exc : NULL);
  store_bind_opt_i64(st, p + 9, d ? d->status : -1);
  sqlite3_bind_int64(st, p + 10, x->busy);
  sqlite3_bind_int64(st, p + 11, x->wait);
  store_bind_opt_i64(st, p + 12, x->first);
}

/* One row per task the batch names: its last task event, its last done event, and the sums of
 * its steps and awaits that went in (stored[i]: step i, then await i - nsteps; a repeat stored
 * before is not summed again), an upsert each (W_TASK_ROW), or for a new session (fresh) plain
 * inserts several to a statement. Runs after the steps and awaits are stored. */
static int put_tasks(store *s, int64_t sid, const ingest_batch *b, int fresh, const unsigned char *stored)
{
  size_t n = b->ntasks + b->ndones + b->nsteps + b->nawaits;
  if(!n)
    return 0;
  task_part *v = malloc(n * sizeof(*v));
  if(!v)
    return LS_ENOMEM;
  size_t k = 0;
  for(size_t i = 0; i < b->ntasks; i++)
    v[k] = (task_part){b->tasks[i].id, k, &b->tasks[i], NULL, 0, 0, -1}, k++;
  for(size_t i = 0; i < b->ndones; i++)
    v[k] = (task_part){b->dones[i].id, k, NULL, &b->dones[i], 0, 0, -1}, k++;
  for(size_t i = 0; i < b->nsteps; i++)
    if(stored[i])
      v[k] = (task_part){b->steps[i].id, k, NULL, NULL, b->steps[i].d, 0, b->steps[i].t}, k++;
  for(size_t i = 0; i < b->nawaits; i++)
    if(stored[b->nsteps + i])
      v[k] = (task_part){b->awaits[i].id, k, NULL, NULL, 0, b->awaits[i].d, -1}, k++;
  size_t rows = merge_parts(v, k); /* v[0 .. rows - 1]: one merged row per task, by id */
  /* a new session has no task rows: 8, 4 or 2 plain inserts to a statement, then upserts */
  static const int multi[] = {W_TASKS_8, W_TASKS_4, W_TASKS_2};
  int rc = 0;
  size_t i = 0;
  for(size_t m = 0; fresh && m < sizeof(multi) / sizeof(multi[0]) && !rc; m++) {
    size_t per = (size_t)store_multi_rows(multi[m]);
    sqlite3_stmt *st = s->ws[multi[m]];
    for(; rows - i >= per && !rc; i += per) {
      sqlite3_bind_int64(st, 1, sid);
      for(size_t r = 0; r < per; r++)
        bind_task_row(st, 2 + (int)r * 13, &v[i + r]);
      rc = store_wrun(s, st);
    }
  }
  /* 009's triggers, done here (012): they matter only while the session's rows_built is not 0
   * (its rows were built), which only a session stored before can have: read once a batch */
  int64_t built = 0;
  if(!fresh && i < rows && !rc)
    rc = one_int64(s, s->ws[W_ROWS_BUILT], sid, 0, &built);
  sqlite3_stmt *st = s->ws[W_TASK_ROW];
  for(; i < rows && !rc; i++) {
    old_task old = {0};
    if(built)
      rc = task_old(s, sid, v[i].id, &old);
    if(rc)
      break;
    sqlite3_bind_int64(st, 1, sid);
    bind_task_row(st, 2, &v[i]);
    sqlite3_bind_int(st, 15, v[i].done != NULL);
    rc = store_wrun(s, st);
    if(!rc && built)
      rc = rows_after(s, sid, &v[i], &old, &built);
  }
  free(v);
  return rc;
}

/* Binds a meta's ten fields to st from parameter p on (name, service, host, python, pid,
 * started_unix_ns, started_ns, route, loop_no, fraction: W_SESSION_META's and W_SESSION_INS's
 * order); an absent meta binds NULLs. */
static void bind_meta(sqlite3_stmt *st, int p, const ingest_meta *m)
{
  int on = m->present;
  store_bind_text(st, p, on ? m->name : NULL);
  store_bind_text(st, p + 1, on ? m->service : NULL);
  store_bind_text(st, p + 2, on ? m->host : NULL);
  store_bind_text(st, p + 3, on ? m->python : NULL);
  store_bind_opt_i64(st, p + 4, on ? m->pid : -1);
  store_bind_text(st, p + 5, on ? m->started : NULL);
  store_bind_opt_i64(st, p + 6, on ? m->started_ns : -1);
  store_bind_text(st, p + 7, on ? m->route : NULL);
  store_bind_opt_i64(st, p + 8, on ? m->loop : -1);
  if(on && m->fraction > 0)
    sqlite3_bind_double(st, p + 9, m->fraction);
  else
    sqlite3_bind_null(st, p + 9);
}

static int put_session(store *s, int64_t sid, const ingest_batch *b, int fresh, int64_t nsteps, int64_t nawaits)
{
  int rc;
  sqlite3_stmt *st;
  if(b->meta.present && !fresh) { /* a new session's row was inserted with its meta */
    st = s->ws[W_SESSION_META];
    sqlite3_bind_int64(st, 1, sid);
    bind_meta(st, 2, &b->meta);
    if((rc = store_wrun(s, st)))
      return rc;
  }
  st = s->ws[W_SESSION_COUNTS];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int(st, 2, b->has_end);
  sqlite3_bind_int64(st, 3, b->end_t);
  sqlite3_bind_int64(st, 4, b->max_t);
  sqlite3_bind_int64(st, 5, b->dropped);
  sqlite3_bind_int64(st, 6, b->unknown);
  sqlite3_bind_int64(st, 7, (int64_t)b->events);
  sqlite3_bind_int64(st, 8, nsteps);
  sqlite3_bind_int64(st, 9, nawaits);
  sqlite3_bind_int64(st, 10, (int64_t)b->nblocks);
  sqlite3_bind_int64(st, 11, (int64_t)b->nlags);
  for(int k = 0; k < INGEST_NKINDS; k++)
    sqlite3_bind_int64(st, 12 + k, b->max_d[k]);
  sqlite3_bind_int64(st, 16, (int64_t)time(NULL));
  /* the split of lost time: blocks from elsewhere and each kind's sum, saturating at 2^53 - 1
   * as every sum of the contract does (each d < 2^53, so one addition cannot overflow) */
  int64_t n_else = 0, ns_own = 0, ns_else = 0;
  for(size_t i = 0; i < b->nblocks; i++) {
    int64_t *sum = b->blocks[i].elsewhere ? &ns_else : &ns_own;
    n_else += b->blocks[i].elsewhere;
    *sum += b->blocks[i].d;
    if(*sum > INGEST_MAX_INT)
      *sum = INGEST_MAX_INT;
  }
  sqlite3_bind_int64(st, 17, n_else);
  sqlite3_bind_int64(st, 18, ns_own);
  sqlite3_bind_int64(st, 19, ns_else);
  return store_wrun(s, st);
}

/* A step's or an await's key and its place in the batch, to find repeats within one batch. */
typedef struct row_key { int64_t id, t; size_t i; } row_key;

static int key_cmp(const void *a, const void *b)
{
  const row_key *x = a, *y = b;
  if(x->id != y->id)
    return (x->id > y->id) - (x->id < y->id);
  if(x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  return (x->i > y->i) - (x->i < y->i);
}

/* Up to this many keys, first_of_each finds repeats in a hash set on the stack. */
#define FIRST_SMALL 256

/* stored[i] = 1 for the first of each (task, t) among the n keys, 0 for its repeats: what
 * INSERT OR IGNORE keeps of them in a session that has no rows yet. Up to FIRST_SMALL keys (a web
 * request's batch has ~20 of each kind) a hash set of their indexes, in one pass: glibc's qsort is
 * a merge sort through malloc, 2% of the writer's samples on a burst of such sessions; more, sorted
 * by (id, t, i), so the first of a run is the first in the batch. */
static void first_of_each(row_key *k, size_t n, unsigned char *stored)
{
  if(n <= FIRST_SMALL) {
    uint16_t set[2 * FIRST_SMALL] = {0}; /* 1 + the index of a key; 0: empty */
    size_t mask = 2 * FIRST_SMALL - 1;
    for(size_t i = 0; i < n; i++) {
      uint64_t h = ((uint64_t)k[i].id * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)k[i].t * 0xc2b2ae3d27d4eb4full);
      size_t at = (size_t)(h >> 40) & mask;
      while(set[at] && (k[set[at] - 1].id != k[i].id || k[set[at] - 1].t != k[i].t))
        at = (at + 1) & mask;
      stored[k[i].i] = !set[at];
      if(!set[at])
        set[at] = (uint16_t)(i + 1);
    }
    return;
  }
  qsort(k, n, sizeof(*k), key_cmp);
  for(size_t j = 0; j < n; j++)
    stored[k[j].i] = !j || k[j].id != k[j - 1].id || k[j].t != k[j - 1].t;
}

/* Binds row r of a step (await) to st at its place among st's rows (the first at ?2). */
static void bind_step(sqlite3_stmt *st, int r, const ingest_step *x)
{
  int p = 2 + r * 3;
  sqlite3_bind_int64(st, p, x->id);
  sqlite3_bind_int64(st, p + 1, x->t);
  sqlite3_bind_int64(st, p + 2, x->d);
}

/* An await's row names its site (store_sites.c) where it waited and on what. */
static void bind_await(sqlite3_stmt *st, int r, const ingest_await *x, int64_t site)
{
  int p = 2 + r * 4;
  sqlite3_bind_int64(st, p, x->id);
  sqlite3_bind_int64(st, p + 1, x->t);
  sqlite3_bind_int64(st, p + 2, x->d);
  sqlite3_bind_int64(st, p + 3, site);
}

/* The n steps (awaits: steps NULL, sites[i] await i's site) of a batch into session sid; stored[i]
 * says whether row i went in (a repeat of a row stored before, by this batch or an earlier one,
 * does not).
 *
 * In a session this batch created (fresh: its sid is new, AUTOINCREMENT never reuses one, so no
 * row of it exists) the rows that go in are known beforehand, the first of each (task, t), and go
 * 16 or 4 to a statement; the count of rows each statement stored is checked against them. In a
 * session stored before, a row may repeat one already there: one statement a row, whose change
 * count tells. */
static int put_steps_or_awaits(store *s, int64_t sid, const ingest_step *steps, const ingest_await *awaits,
                               const int64_t *sites, size_t n, int fresh, unsigned char *stored)
{
  int multi[2] = {steps ? W_STEPS_16 : W_AWAITS_16, steps ? W_STEPS_4 : W_AWAITS_4};
  if(fresh && n >= 4) {
    row_key small[FIRST_SMALL];
    row_key *k = n <= FIRST_SMALL ? small : malloc(n * sizeof(*k));
    if(!k)
      return LS_ENOMEM;
    for(size_t i = 0; i < n; i++)
      k[i] = steps ? (row_key){steps[i].id, steps[i].t, i} : (row_key){awaits[i].id, awaits[i].t, i};
    first_of_each(k, n, stored);
    if(k != small)
      free(k);
  }
  size_t i = 0;
  int rc = 0;
  for(int m = 0; fresh && m < 2 && !rc; m++) {
    int rows = store_multi_rows(multi[m]);
    sqlite3_stmt *st = s->ws[multi[m]];
    for(; n - i >= (size_t)rows && !rc; i += (size_t)rows) {
      int expect = 0;
      sqlite3_bind_int64(st, 1, sid);
      for(int r = 0; r < rows; r++) {
        if(steps)
          bind_step(st, r, &steps[i + (size_t)r]);
        else
          bind_await(st, r, &awaits[i + (size_t)r], sites[i + (size_t)r]);
        expect += stored[i + (size_t)r];
      }
      rc = store_wrun(s, st);
      if(!rc && sqlite3_changes(s->w) != expect) {
        log_msg(LOG_ERROR, "store: session %lld stored %d of %d new %s", (long long)sid, sqlite3_changes(s->w), expect,
                steps ? "steps" : "awaits");
        rc = LS_EIO; /* not expected ever: the batch is refused rather than its sums left wrong */
      }
    }
  }
  sqlite3_stmt *st = s->ws[steps ? W_STEP : W_AWAIT];
  for(; i < n && !rc; i++) {
    sqlite3_bind_int64(st, 1, sid);
    if(steps)
      bind_step(st, 0, &steps[i]);
    else
      bind_await(st, 0, &awaits[i], sites[i]);
    rc = store_wrun(s, st);
    stored[i] = !rc && sqlite3_changes(s->w) > 0;
  }
  return rc;
}

static int put_rows(store *s, int64_t sid, const ingest_batch *b, int fresh)
{
  int rc = 0;
  sqlite3_stmt *st;
  unsigned char *stored = malloc(b->nsteps + b->nawaits + 1);
  int64_t *sites = malloc((b->nawaits + 1) * sizeof(*sites));
  if(!stored || !sites) {
    free(stored);
    free(sites);
    return LS_ENOMEM;
  }
  rc = put_steps_or_awaits(s, sid, b->steps, NULL, NULL, b->nsteps, fresh, stored);
  if(!rc)
    rc = store_sites_resolve(s->sites, s->w, b->awaits, b->nawaits, sites);
  if(!rc)
    rc = put_steps_or_awaits(s, sid, NULL, b->awaits, sites, b->nawaits, fresh, stored + b->nsteps);
  free(sites);
  int64_t nsteps = 0, nawaits = 0;
  for(size_t i = 0; i < b->nsteps + b->nawaits; i++)
    *(i < b->nsteps ? &nsteps : &nawaits) += stored[i];
  if(!rc)
    rc = put_tasks(s, sid, b, fresh, stored);
  if(!rc)
    rc = store_points_put(s->w, s->ws[W_POINT], sid, b, stored + b->nsteps);
  free(stored);
  st = s->ws[W_BLOCK];
  for(size_t i = 0; i < b->nblocks && !rc; i++) {
    const ingest_block *x = &b->blocks[i];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, x->id);
    sqlite3_bind_int64(st, 3, x->t);
    sqlite3_bind_int64(st, 4, x->d);
    store_bind_text(st, 5, x->file);
    store_bind_opt_i64(st, 6, x->line);
    store_bind_text(st, 7, x->func);
    store_bind_text(st, 8, x->src);
    sqlite3_bind_text(st, 9, b->stacks + x->stack_off, (int)x->stack_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 10, x->elsewhere);
    store_bind_text(st, 11, x->from_session);
    store_bind_opt_i64(st, 12, x->elsewhere && x->from_task > 0 ? x->from_task : -1);
    store_bind_opt_i64(st, 13, x->stack_t);
    rc = store_wrun(s, st);
  }
  st = s->ws[W_LAG];
  for(size_t i = 0; i < b->nlags && !rc; i++) {
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, b->lags[i].t);
    sqlite3_bind_int64(st, 3, b->lags[i].d);
    rc = store_wrun(s, st);
  }
  if(!rc)
    rc = put_session(s, sid, b, fresh, nsteps, nawaits);
  return rc;
}

int store_put_batch(store *s, const ingest_batch *b, int *duplicate, int *created)
{
  *duplicate = 0;
  *created = 0;
  sqlite3_stmt *st = s->ws[W_SESSION_INS];
  sqlite3_bind_text(st, 1, b->session, -1, SQLITE_STATIC);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  sqlite3_bind_int64(st, 2, (int64_t)now.tv_sec);
  /* the session's start as well as the server can tell (migration 004): now, less the events
   * this batch carries, which had happened by the time it was sent */
  int64_t received = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - b->max_t;
  sqlite3_bind_int64(st, 3, received > 0 ? received : 0);
  bind_meta(st, 4, &b->meta);
  sqlite3_bind_int(st, 14, b->meta.present);
  int rc = store_wrun(s, st);
  if(!rc)
    *created = sqlite3_changes(s->w) > 0;
  /* a new row's sid is its rowid (INTEGER PRIMARY KEY): no lookup by id */
  int64_t sid = *created ? sqlite3_last_insert_rowid(s->w) : -1;
  if(!rc && !*created) {
    st = s->ws[W_SESSION_SID];
    sqlite3_bind_text(st, 1, b->session, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if(src == SQLITE_ROW)
      sid = sqlite3_column_int64(st, 0);
    else
      rc = store_code_of(src) ? store_code_of(src) : LS_EIO;
    sqlite3_reset(st);
  }
  if(!rc) {
    st = s->ws[W_BATCH_INS];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, b->batch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)b->events);
    rc = store_wrun(s, st);
  }
  /* stored before: nothing was written (a session that holds the batch existed already, and the
   * insert above left it as it was) */
  if(!rc && sqlite3_changes(s->w) == 0)
    *duplicate = 1;
  else if(!rc)
    rc = put_rows(s, sid, b, *created);
  if(!rc && !*duplicate) { /* its endpoint rollup is out of date until rebuilt */
    sqlite3_bind_int64(s->ws[W_DIRTY], 1, sid);
    rc = store_wrun(s, s->ws[W_DIRTY]);
    s->rollup_pending = s->batch_since_maintain = 1;
  }
  if(rc)
    *created = 0;
  return rc;
}

/* Makes the sessions matching `where` (SQL over sessions; ?1 bound to `arg`) deleted: their
 * sids go to purge and their sessions rows go, in the caller's transaction. Returns the number
 * deleted, or a negative code. The rows themselves are removed later by store_maintain, a
 * bounded number per transaction, so this writes a few pages however large the sessions are. */
int64_t store_tombstone(store *s, const char *where, int64_t arg)
{
  char sql[3][256];
  snprintf(sql[0], sizeof(sql[0]), "INSERT OR IGNORE INTO purge(sid) SELECT sid FROM sessions WHERE %s", where);
  /* their endpoint rollup blocks are rebuilt without them */
  snprintf(sql[1], sizeof(sql[1]), "INSERT OR IGNORE INTO ep_dirty(blk) SELECT sid >> 10 FROM sessions WHERE %s", where);
  snprintf(sql[2], sizeof(sql[2]), "DELETE FROM sessions WHERE %s", where);
  int64_t n = 0;
  for(int i = 0; i < 3; i++) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->w, sql[i], -1, &st, NULL);
    if(rc == SQLITE_OK) {
      if(sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, arg);
      rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if(rc != SQLITE_DONE)
      return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
    n = sqlite3_changes64(s->w);
  }
  if(n)
    s->purge_pending = s->rollup_pending = 1;
  return n;
}

int store_delete_session(store *s, const char *id)
{
  sqlite3_stmt *st = s->ws[W_SESSION_SID];
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  int src = sqlite3_step(st);
  int64_t sid = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if(src != SQLITE_ROW)
    return src == SQLITE_DONE ? LS_ENOTFOUND : (store_code_of(src) ? store_code_of(src) : LS_EIO);
  int64_t n = store_tombstone(s, "sid = ?1", sid);
  return n < 0 ? (int)n : 0;
}
