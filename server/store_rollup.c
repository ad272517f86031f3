/* store_rollup.c — the endpoint rollups of schema 008 (ep_dirty, ep_groups, ep_points): blocks
 * of 1024 sessions marked dirty as they change, rebuilt by the writer's housekeeping from the
 * sessions' own rows through endpoints.c, and read back for /api/v1/endpoints: the window's
 * sessions from the groups' members, a block's points per group. Which groups a window holds
 * whole is query_endpoints.c's. Part of the store module. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
  if(sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
    return 0;
  log_msg(LOG_ERROR, "store: preparing %.60s: %s", sql, sqlite3_errmsg(db));
  return store_code_of(sqlite3_errcode(db)) ? store_code_of(sqlite3_errcode(db)) : LS_EIO;
}

static int code(sqlite3 *db, int src)
{
  if(src == SQLITE_DONE || src == SQLITE_ROW)
    return 0;
  log_msg(LOG_WARN, "store: rollup: %s", sqlite3_errmsg(db));
  return store_code_of(src) ? store_code_of(src) : LS_EIO;
}

/* ---------------------------------------------------------------- write side */

/* The block to rebuild next: the oldest dirty one, but while batches keep coming (not idle) never
 * the newest block, which the next batch would make dirty again: it is rebuilt once it is full or
 * the writer idles, and a window reads its at most 1024 sessions one by one meanwhile. */
int store_rollup_due(sqlite3 *db, sqlite3_stmt *st, int idle, int64_t *blk)
{
  sqlite3_bind_int(st, 1, idle);
  int src = sqlite3_step(st);
  *blk = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  int rc = code(db, src);
  sqlite3_reset(st);
  return rc;
}

static int on_await(void *ctx, const store_point *p)
{
  return ep_add_await(ctx, p->sid, p->file, p->line, p->func, p->what, p->n, p->total, p->max);
}

static int on_block(void *ctx, const store_point *p)
{
  return ep_add_block(ctx, p->sid, p->file, p->line, p->func, p->what, p->total);
}

/* Block blk's groups and points as endpoints.c sums them over its sessions (every ended session
 * with an endpoint of the block), through the read functions on the write connection. */
static int aggregate(sqlite3 *db, int64_t blk, arena *a, ep_session **rows, ep_agg *e)
{
  store_reader wr;
  memset(&wr, 0, sizeof(wr));
  wr.db = db;
  store_ep_filter f = {.limit = STORE_ROLLUP_BLOCK, .since_ns = -1, .until_ns = -1,
                       .sid_lo = blk * STORE_ROLLUP_BLOCK, .sid_hi = blk * STORE_ROLLUP_BLOCK + STORE_ROLLUP_BLOCK - 1};
  size_t n = 0;
  int rc = store_ep_sessions(&wr, &f, a, rows, &n);
  if(!rc)
    rc = ep_group_sessions(e, *rows, n);
  int64_t *sids = rc ? NULL : malloc((n ? n : 1) * sizeof(*sids));
  if(!rc && !sids)
    rc = LS_ENOMEM;
  for(size_t i = 0; !rc && i < n; i++)
    sids[i] = e->by_sid[2 * i];
  if(!rc)
    rc = store_await_points(&wr, sids, n, on_await, e);
  if(!rc)
    rc = store_block_points(&wr, sids, n, 1, on_block, e);
  if(!rc)
    rc = ep_finish(e);
  free(sids);
  return rc;
}

static int write_points(sqlite3 *db, sqlite3_stmt *st, int64_t blk, int kind, const ep_group *g,
                        const ep_point *p, size_t n)
{
  int rc = 0;
  for(size_t i = 0; i < n && !rc; i++) {
    sqlite3_bind_int64(st, 1, blk);
    sqlite3_bind_int(st, 2, kind);
    store_bind_text(st, 3, g->service);
    store_bind_text(st, 4, g->endpoint);
    store_bind_text(st, 5, p[i].file);
    sqlite3_bind_int64(st, 6, p[i].line);
    store_bind_text(st, 7, p[i].func);
    store_bind_text(st, 8, p[i].what);
    sqlite3_bind_int64(st, 9, p[i].count);
    sqlite3_bind_int64(st, 10, p[i].total);
    sqlite3_bind_int64(st, 11, p[i].max);
    sqlite3_bind_int64(st, 12, p[i].sessions);
    rc = code(db, sqlite3_step(st));
    sqlite3_reset(st);
  }
  return rc;
}

/* ep_groups.members: per session 5 little-endian int64 (schema 008), by sid ascending. The fifth,
 * flags: bit 0 routed; bits 8..27 (schema 14) the session's ep_session.ppm, 0 in members built
 * before (every session stored then was every request: the collector sent no fraction). */
#define MEMBER_BYTES 40
#define MEMBER_PPM_SHIFT 8
#define MEMBER_PPM_MASK 0xfffff /* 20 bits: ppm < 1e6 < 2^20 */

static void put_le(unsigned char *p, int64_t v)
{
  uint64_t u = (uint64_t)v;
  for(int i = 0; i < 8; i++)
    p[i] = (unsigned char)(u >> (8 * i));
}

static int64_t get_le(const unsigned char *p)
{
  uint64_t u = 0;
  for(int i = 0; i < 8; i++)
    u |= (uint64_t)p[i] << (8 * i);
  return (int64_t)u;
}

static int by_sid(const void *pa, const void *pb)
{
  const ep_session *a = *(const ep_session *const *)pa, *b = *(const ep_session *const *)pb;
  return (a->sid > b->sid) - (a->sid < b->sid);
}

/* Group g's members blob (malloc'd, g->n * MEMBER_BYTES bytes), or NULL when memory ran out. */
static unsigned char *members_of(const ep_agg *e, const ep_group *g)
{
  const ep_session **v = malloc(g->n * sizeof(*v));
  unsigned char *m = malloc(g->n * MEMBER_BYTES);
  if(!v || !m) {
    free(v);
    free(m);
    return NULL;
  }
  for(size_t i = 0; i < g->n; i++)
    v[i] = &e->s[g->first + i];
  if(g->n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(v, g->n, sizeof(*v), by_sid);
  for(size_t i = 0; i < g->n; i++) {
    unsigned char *p = m + i * MEMBER_BYTES;
    put_le(p, v[i]->sid);
    put_le(p + 8, v[i]->duration);
    put_le(p + 16, v[i]->has_lag ? v[i]->lag_max : -1);
    put_le(p + 24, v[i]->started);
    put_le(p + 32, (int64_t)(v[i]->route != NULL) | (int64_t)v[i]->ppm << MEMBER_PPM_SHIFT);
  }
  free(v);
  return m;
}

static int write_block(sqlite3 *db, int64_t blk, const ep_agg *e)
{
  static const char *const clear[] = {
    "DELETE FROM ep_groups WHERE blk = ?1", "DELETE FROM ep_points WHERE blk = ?1",
    "DELETE FROM ep_dirty WHERE blk = ?1",
  };
  int rc = 0;
  for(size_t i = 0; i < sizeof(clear) / sizeof(clear[0]) && !rc; i++) {
    sqlite3_stmt *st = NULL;
    if(!(rc = prep(db, clear[i], &st))) {
      sqlite3_bind_int64(st, 1, blk);
      rc = code(db, sqlite3_step(st));
    }
    sqlite3_finalize(st);
  }
  sqlite3_stmt *gs = NULL, *ps = NULL;
  if(!rc)
    rc = prep(db, "INSERT INTO ep_groups(blk, service, endpoint, n, members) VALUES(?1, ?2, ?3, ?4, ?5)", &gs);
  if(!rc)
    rc = prep(db, "INSERT INTO ep_points(blk, kind, service, endpoint, file, line, func, what, n, total_ns,"
                  " max_ns, sessions) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", &ps);
  for(size_t i = 0; i < e->ng && !rc; i++) {
    const ep_group *g = &e->g[i];
    sqlite3_bind_int64(gs, 1, blk);
    store_bind_text(gs, 2, g->service);
    store_bind_text(gs, 3, g->endpoint);
    sqlite3_bind_int64(gs, 4, (int64_t)g->n);
    unsigned char *m = members_of(e, g);
    if(!m) {
      rc = LS_ENOMEM;
      break;
    }
    sqlite3_bind_blob(gs, 5, m, (int)(g->n * MEMBER_BYTES), free);
    rc = code(db, sqlite3_step(gs));
    sqlite3_reset(gs);
    if(!rc)
      rc = write_points(db, ps, blk, 0, g, g->hot, g->nhot);
    if(!rc)
      rc = write_points(db, ps, blk, 1, g, g->culprits, g->nculprits);
  }
  sqlite3_finalize(gs);
  sqlite3_finalize(ps);
  return rc;
}

int store_rollup_build(sqlite3 *db, int64_t blk)
{
  arena a;
  arena_init(&a);
  ep_session *rows = NULL;
  ep_agg e;
  memset(&e, 0, sizeof(e));
  int rc = aggregate(db, blk, &a, &rows, &e);
  if(!rc)
    rc = write_block(db, blk, &e);
  ep_free(&e);
  free(rows);
  arena_free(&a);
  return rc;
}

/* ---------------------------------------------------------------- read side */

/* Both reads name the same columns (a group row: kind 0, no point, sessions = n). */
static int read_rows(store_reader *r, const char *sql, int64_t blk, store_rollup_fn fn, void *ctx)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(r->db, sql, &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, blk);
  int src;
  while((src = sqlite3_step(st)) == SQLITE_ROW) {
    store_rollup_row x = {
      .kind = sqlite3_column_int(st, 0),
      .service = (const char *)sqlite3_column_text(st, 1),
      .endpoint = (const char *)sqlite3_column_text(st, 2),
      .p = {.file = (const char *)sqlite3_column_text(st, 3), .line = sqlite3_column_int64(st, 4),
            .func = (const char *)sqlite3_column_text(st, 5), .what = (const char *)sqlite3_column_text(st, 6),
            .n = sqlite3_column_int64(st, 7), .total = sqlite3_column_int64(st, 8),
            .max = sqlite3_column_int64(st, 9)},
      .sessions = sqlite3_column_int64(st, 10),
    };
    if((rc = fn(ctx, &x)))
      break;
  }
  if(!rc)
    rc = code(r->db, src);
  sqlite3_finalize(st);
  return rc;
}

int store_rollup_groups(store_reader *r, int64_t blk, store_rollup_fn fn, void *ctx)
{
  /* a dirty block has no usable rollup: no rows, so its sessions are read one by one */
  return read_rows(r, "SELECT 0, service, endpoint, NULL, -1, NULL, NULL, 0, 0, 0, n FROM ep_groups WHERE blk = ?1"
                      " AND NOT EXISTS (SELECT 1 FROM ep_dirty WHERE blk = ?1)", blk, fn, ctx);
}

int store_rollup_points(store_reader *r, int64_t blk, store_rollup_fn fn, void *ctx)
{
  return read_rows(r, "SELECT kind, service, endpoint, file, line, func, what, n, total_ns, max_ns, sessions"
                      " FROM ep_points WHERE blk = ?1 ORDER BY rowid", blk, fn, ctx);
}

/* ---------------------------------------------------------------- the window from the rollups */

/* A growable array of the window's sessions, newest first. */
typedef struct win_rows { ep_session *v; size_t n, cap; } win_rows;

static int win_reserve(win_rows *w, size_t more)
{
  if(w->n + more <= w->cap)
    return 0;
  size_t cap = w->cap ? w->cap : 1024;
  while(cap < w->n + more)
    cap *= 2;
  ep_session *v = realloc(w->v, cap * sizeof(*v));
  if(!v)
    return LS_ENOMEM;
  w->v = v;
  w->cap = cap;
  return 0;
}

static int newest_first(const void *pa, const void *pb)
{
  const ep_session *a = pa, *b = pb;
  return (a->sid < b->sid) - (a->sid > b->sid);
}

/* One clean block's group rows: its members that pass the filter's time bounds, newest first,
 * the newest `room` of them appended to w. st is positioned on the block's first row; returns
 * with it on the next block's (or done: *more 0). */
static int take_clean(sqlite3_stmt *st, int *more, const store_ep_filter *f, arena *a, win_rows *w,
                      int64_t room)
{
  int64_t blk = sqlite3_column_int64(st, 0);
  size_t from = w->n;
  int rc = 0, src = SQLITE_ROW;
  for(; src == SQLITE_ROW && sqlite3_column_int64(st, 0) == blk; src = sqlite3_step(st)) {
    const unsigned char *m = sqlite3_column_blob(st, 3);
    size_t k = (size_t)sqlite3_column_bytes(st, 3) / MEMBER_BYTES;
    const char *svc = (const char *)sqlite3_column_text(st, 1);
    const char *ep = (const char *)sqlite3_column_text(st, 2);
    svc = svc ? arena_strndup(a, svc, strlen(svc)) : NULL;
    ep = ep ? arena_strndup(a, ep, strlen(ep)) : NULL;
    if(a->failed || (rc = win_reserve(w, k)))
      return LS_ENOMEM;
    for(size_t i = 0; i < k; i++, m += MEMBER_BYTES) {
      int64_t started = get_le(m + 24), lag = get_le(m + 16);
      if((f->since_ns >= 0 && (started < 0 || started < f->since_ns)) ||
         (f->until_ns >= 0 && (started < 0 || started >= f->until_ns)))
        continue;
      int64_t flags = get_le(m + 32);
      int routed = flags & 1;
      /* id and a routed session's name are read later, for the few sessions the answer names */
      w->v[w->n++] = (ep_session){.sid = get_le(m), .duration = get_le(m + 8), .lag_max = lag > 0 ? lag : 0,
                                  .has_lag = lag >= 0, .started = started, .service = svc,
                                  .ppm = (int32_t)((flags >> MEMBER_PPM_SHIFT) & MEMBER_PPM_MASK),
                                  .route = routed ? ep : NULL, .name = routed ? NULL : ep};
    }
  }
  *more = src == SQLITE_ROW;
  if(src != SQLITE_ROW && src != SQLITE_DONE)
    return LS_EIO;
  /* only a block the limit cuts needs its newest first; the rest stay in group order (the
   * grouping sorts by sid what it needs) */
  size_t got = w->n - from;
  if((int64_t)got > room) {
    qsort(w->v + from, got, sizeof(*w->v), newest_first);
    w->n = from + (size_t)room;
  }
  return 0;
}

/* A dirty block's sessions, read one by one (store_ep_sessions), the newest `room`. */
static int take_dirty(store_reader *r, int64_t blk, const store_ep_filter *f, arena *a, win_rows *w,
                      int64_t room)
{
  store_ep_filter g = *f;
  g.limit = room;
  g.sid_lo = blk * STORE_ROLLUP_BLOCK;
  g.sid_hi = g.sid_lo + STORE_ROLLUP_BLOCK - 1;
  ep_session *v = NULL;
  size_t n = 0;
  int rc = store_ep_sessions(r, &g, a, &v, &n);
  if(!rc && n && !(rc = win_reserve(w, n))) { /* n 0: w->v may be NULL, no memcpy through it */
    memcpy(w->v + w->n, v, n * sizeof(*v));
    w->n += n;
  }
  free(v);
  return rc;
}

int store_ep_window(store_reader *r, const store_ep_filter *f, arena *a, ep_session **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  win_rows w = {0};
  sqlite3_stmt *dq = NULL, *gq = NULL;
  int rc = prep(r->db, "SELECT blk FROM ep_dirty ORDER BY blk DESC", &dq);
  if(!rc)
    rc = prep(r->db, "SELECT blk, service, endpoint, members FROM ep_groups WHERE (?1 IS NULL OR service IS ?1)"
                     " AND (?2 IS NULL OR endpoint = ?2) AND NOT EXISTS (SELECT 1 FROM ep_dirty d WHERE d.blk = ep_groups.blk)"
                     " ORDER BY blk DESC", &gq);
  if(!rc) {
    if(f->service)
      sqlite3_bind_text(gq, 1, f->service, -1, SQLITE_STATIC);
    if(f->endpoint)
      sqlite3_bind_text(gq, 2, f->endpoint, -1, SQLITE_STATIC);
  }
  /* blocks newest first: a dirty one read session by session, a clean one from its group rows */
  int dsrc = rc ? SQLITE_DONE : sqlite3_step(dq), gsrc = rc ? SQLITE_DONE : sqlite3_step(gq);
  while(!rc && (int64_t)w.n < f->limit && (dsrc == SQLITE_ROW || gsrc == SQLITE_ROW)) {
    int64_t db = dsrc == SQLITE_ROW ? sqlite3_column_int64(dq, 0) : -1;
    int64_t gb = gsrc == SQLITE_ROW ? sqlite3_column_int64(gq, 0) : -1;
    int64_t room = f->limit - (int64_t)w.n;
    if(db >= gb) {
      rc = take_dirty(r, db, f, a, &w, room);
      dsrc = sqlite3_step(dq);
    } else {
      int more = 0;
      rc = take_clean(gq, &more, f, a, &w, room);
      gsrc = more ? SQLITE_ROW : SQLITE_DONE;
    }
  }
  if(!rc && ((dsrc != SQLITE_ROW && dsrc != SQLITE_DONE) || (gsrc != SQLITE_ROW && gsrc != SQLITE_DONE)))
    rc = code(r->db, dsrc != SQLITE_ROW && dsrc != SQLITE_DONE ? dsrc : gsrc);
  sqlite3_finalize(dq);
  sqlite3_finalize(gq);
  if(rc) {
    free(w.v);
    return rc;
  }
  *out = w.v;
  *n = w.n;
  return 0;
}

int store_ep_names(store_reader *r, ep_session *x, size_t n, arena *a)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(r->db, "SELECT id, name FROM sessions WHERE sid = ?1", &st);
  for(size_t i = 0; i < n && !rc; i++) {
    if(x[i].id)
      continue;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, x[i].sid);
    int src = sqlite3_step(st);
    if(src == SQLITE_ROW) {
      const char *id = (const char *)sqlite3_column_text(st, 0), *name = (const char *)sqlite3_column_text(st, 1);
      x[i].id = id ? arena_strndup(a, id, strlen(id)) : NULL;
      if(name)
        x[i].name = arena_strndup(a, name, strlen(name));
      if(a->failed)
        rc = LS_ENOMEM;
    } else {
      rc = code(r->db, src == SQLITE_DONE ? SQLITE_CORRUPT : src); /* a member of a clean block is stored */
    }
  }
  sqlite3_finalize(st);
  return rc;
}
