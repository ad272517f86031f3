/* store_rollup.c — the endpoint rollups of schema 007 (ep_dirty, ep_groups, ep_points): blocks
 * of 1024 sessions marked dirty as they change, rebuilt by the writer's housekeeping from the
 * sessions' own rows through endpoints.c, and read back per block for /api/v1/endpoints. Which
 * blocks a window may take whole is query_endpoints.c's. Part of the store module. */
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

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
  if(v)
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
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
    bind_opt_text(st, 3, g->service);
    bind_opt_text(st, 4, g->endpoint);
    bind_opt_text(st, 5, p[i].file);
    sqlite3_bind_int64(st, 6, p[i].line);
    bind_opt_text(st, 7, p[i].func);
    bind_opt_text(st, 8, p[i].what);
    sqlite3_bind_int64(st, 9, p[i].count);
    sqlite3_bind_int64(st, 10, p[i].total);
    sqlite3_bind_int64(st, 11, p[i].max);
    sqlite3_bind_int64(st, 12, p[i].sessions);
    rc = code(db, sqlite3_step(st));
    sqlite3_reset(st);
  }
  return rc;
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
    rc = prep(db, "INSERT INTO ep_groups(blk, service, endpoint, n) VALUES(?1, ?2, ?3, ?4)", &gs);
  if(!rc)
    rc = prep(db, "INSERT INTO ep_points(blk, kind, service, endpoint, file, line, func, what, n, total_ns,"
                  " max_ns, sessions) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", &ps);
  for(size_t i = 0; i < e->ng && !rc; i++) {
    const ep_group *g = &e->g[i];
    sqlite3_bind_int64(gs, 1, blk);
    bind_opt_text(gs, 2, g->service);
    bind_opt_text(gs, 3, g->endpoint);
    sqlite3_bind_int64(gs, 4, (int64_t)g->n);
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
