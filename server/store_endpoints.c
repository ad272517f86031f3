/* store_endpoints.c — the store's side of /endpoints and /compare: the per-session await-point
 * rollup kept at ingest (table await_points, schema 5), and the reads over a window of sessions
 * (newest by arrival, indexed). What the rows become is endpoints.c's and compare.c's. Part of
 * the store module (store_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

/* ---------------------------------------------------------------- write side */

/* One batch's awaits summed per (file, line) before they reach SQLite: a batch of 10,000 awaits
 * at three await points costs three upserts, not 10,000. */
typedef struct point_sum { const char *file; int64_t line; const char *what, *func; int64_t n, total, max; } point_sum;

static int str_cmp(const char *a, const char *b)
{
  if(a == b) /* a batch's strings table gives a repeated file one pointer: no strcmp for most */
    return 0;
  if(!a || !b)
    return (a != NULL) - (b != NULL);
  return strcmp(a, b);
}

static int point_cmp(const void *pa, const void *pb)
{
  const point_sum *a = pa, *b = pb;
  int c = str_cmp(a->file, b->file);
  return c ? c : (a->line > b->line) - (a->line < b->line);
}

int store_points_put(sqlite3 *db, sqlite3_stmt *st, int64_t sid, const ingest_batch *b,
                     const unsigned char *stored)
{
  if(!b->nawaits)
    return 0;
  point_sum *v = malloc(b->nawaits * sizeof(*v));
  if(!v)
    return LS_ENOMEM;
  size_t n = 0;
  for(size_t i = 0; i < b->nawaits; i++) {
    const ingest_await *x = &b->awaits[i];
    if(stored[i]) /* a repeat stored once is summed once */
      v[n++] = (point_sum){x->file, x->line, x->what, x->func, 1, x->d, x->d};
  }
  /* stable first-seen what/func is not needed: any await of the point names it */
  if(n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(v, n, sizeof(*v), point_cmp);
  int rc = 0;
  for(size_t i = 0; i < n && !rc;) {
    point_sum s = v[i];
    size_t j = i + 1;
    for(; j < n && !point_cmp(&v[j], &s); j++) {
      s.n++;
      s.total += v[j].total;
      if(v[j].max > s.max)
        s.max = v[j].max;
    }
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, s.file ? s.file : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s.line);
    store_bind_text(st, 4, s.what);
    store_bind_text(st, 5, s.func);
    sqlite3_bind_int64(st, 6, s.n);
    sqlite3_bind_int64(st, 7, s.total);
    sqlite3_bind_int64(st, 8, s.max);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if(src != SQLITE_DONE) {
      log_msg(LOG_WARN, "store: %s", sqlite3_errmsg(db));
      rc = store_code_of(src) ? store_code_of(src) : LS_EIO;
    }
    i = j;
  }
  free(v);
  return rc;
}

/* ---------------------------------------------------------------- read side */

/* The window: ended sessions with an endpoint, newest by arrival first. The second form reads
 * one endpoint through the index sessions_endpoint. ?1/?2: started_ns bounds (-1: open),
 * ?3: service (NULL: any), ?4: limit, ?5: the endpoint, ?6/?7: the sids (a rollup block). */
#define EP_COLS                                                                                    \
  "SELECT sid, id, name, route, service, end_t, max_lag_d, n_lag, coalesce(started_ns, -1), fraction" \
  " FROM sessions"
#define EP_WHERE                                                                                   \
  " ended = 1 AND coalesce(route, name) IS NOT NULL AND (?1 < 0 OR started_ns >= ?1)"             \
  " AND (?2 < 0 OR started_ns < ?2) AND (?3 IS NULL OR service IS ?3) AND sid BETWEEN ?6 AND ?7"     \
  " ORDER BY sid DESC LIMIT ?4"
static const char *const ep_sql[2] = {
  EP_COLS " WHERE" EP_WHERE,
  EP_COLS " WHERE coalesce(route, name) = ?5 AND" EP_WHERE,
};

static int prepare(store_reader *r, const char *sql, sqlite3_stmt **st)
{
  if(sqlite3_prepare_v2(r->db, sql, -1, st, NULL) == SQLITE_OK)
    return 0;
  log_msg(LOG_ERROR, "store: preparing %.60s: %s", sql, sqlite3_errmsg(r->db));
  return LS_EIO;
}

static int finish(store_reader *r, sqlite3_stmt *st, int rc)
{
  if(rc != SQLITE_DONE && rc != SQLITE_ROW)
    log_msg(LOG_WARN, "store: read: %s", sqlite3_errmsg(r->db));
  sqlite3_finalize(st);
  if(rc == SQLITE_DONE)
    return 0;
  return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
}

int store_ep_sessions(store_reader *r, const store_ep_filter *f, arena *a, ep_session **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  sqlite3_stmt *st = NULL;
  int rc = prepare(r, ep_sql[f->endpoint != NULL], &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, f->since_ns);
  sqlite3_bind_int64(st, 2, f->until_ns);
  if(f->service)
    sqlite3_bind_text(st, 3, f->service, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, f->limit);
  if(f->endpoint)
    sqlite3_bind_text(st, 5, f->endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, f->sid_lo);
  sqlite3_bind_int64(st, 7, f->sid_hi > 0 ? f->sid_hi : INT64_MAX);
  size_t cap = f->limit < 1024 ? (size_t)f->limit + 1 : 1024;
  ep_session *v = malloc(cap * sizeof(*v));
  if(!v) {
    sqlite3_finalize(st);
    return LS_ENOMEM;
  }
  size_t k = 0;
  while((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if(k == cap) {
      ep_session *w = realloc(v, 2 * cap * sizeof(*v));
      if(!w) {
        rc = SQLITE_NOMEM;
        break;
      }
      v = w;
      cap *= 2;
    }
    ep_session *x = &v[k++];
    x->sid = sqlite3_column_int64(st, 0);
    x->id = store_col_text(st, 1, a);
    x->name = store_col_text(st, 2, a);
    x->route = store_col_text(st, 3, a);
    x->service = store_col_text(st, 4, a);
    x->duration = sqlite3_column_int64(st, 5);
    x->lag_max = sqlite3_column_int64(st, 6);
    x->has_lag = sqlite3_column_int64(st, 7) > 0;
    x->started = sqlite3_column_int64(st, 8);
    x->ppm = share_ppm(sqlite3_column_double(st, 9)); /* NULL reads 0.0: every request */
  }
  rc = finish(r, st, rc);
  if(!rc && a->failed)
    rc = LS_ENOMEM;
  if(rc) {
    free(v);
    return rc;
  }
  *out = v;
  *n = k;
  return 0;
}

/* Rows of the sessions sids[0..n) (ascending) to fn, in sid order; the strings live until fn
 * returns. Runs of close sids are read as one range, so a dense window is a few range scans and a
 * sparse one (one endpoint among many) a lookup per session. The rows of sids between them that
 * are not in the list are skipped here: they may be sessions the caller has from elsewhere (a
 * query's sessions of groups whose points came from a block's rollup), and fed twice they were
 * counted twice (hot spots, culprits and blocks of /api/v1/endpoints, when the window cut a clean
 * block inside a group whose sessions interleave with another's). */
#define RUN_GAP 8
static int scan_points(store_reader *r, const char *sql, const int64_t *sids, size_t n,
                       store_point_fn fn, void *ctx)
{
  sqlite3_stmt *st = NULL;
  int rc = prepare(r, sql, &st);
  for(size_t i = 0; i < n && !rc;) {
    size_t j = i + 1;
    while(j < n && sids[j] - sids[j - 1] <= RUN_GAP)
      j++;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, sids[i]);
    sqlite3_bind_int64(st, 2, sids[j - 1]);
    int src;
    size_t k = i; /* rows come by sid: the list's cursor only moves forward */
    while((src = sqlite3_step(st)) == SQLITE_ROW) {
      int64_t sid = sqlite3_column_int64(st, 0);
      while(k < j && sids[k] < sid)
        k++;
      if(k == j || sids[k] != sid)
        continue;
      const char *file = (const char *)sqlite3_column_text(st, 1);
      store_point p = {
        .sid = sid,
        .file = file && *file ? file : NULL,
        .line = store_col_opt(st, 2),
        .func = (const char *)sqlite3_column_text(st, 3),
        .what = (const char *)sqlite3_column_text(st, 4),
        .n = sqlite3_column_int64(st, 5),
        .total = sqlite3_column_int64(st, 6),
        .max = sqlite3_column_int64(st, 7),
      };
      if((rc = fn(ctx, &p)))
        break;
    }
    if(!rc && src != SQLITE_DONE) {
      log_msg(LOG_WARN, "store: read: %s", sqlite3_errmsg(r->db));
      rc = store_code_of(src) ? store_code_of(src) : LS_EIO;
    }
    i = j;
  }
  sqlite3_finalize(st);
  return rc;
}

int store_await_points(store_reader *r, const int64_t *sids, size_t n, store_point_fn fn, void *ctx)
{
  return scan_points(r, "SELECT sid, file, line, func, what, n, total_ns, max_ns FROM await_points"
                        " WHERE sid BETWEEN ?1 AND ?2 ORDER BY sid", sids, n, fn, ctx);
}

int store_block_points(store_reader *r, const int64_t *sids, size_t n, int own_only, store_point_fn fn,
                       void *ctx)
{
  if(own_only)
    return scan_points(r, "SELECT sid, file, line, func, src, 1, d, d FROM blocks"
                          " WHERE sid BETWEEN ?1 AND ?2 AND elsewhere = 0 ORDER BY sid, t", sids, n, fn, ctx);
  return scan_points(r, "SELECT sid, file, line, func, src, 1, d, d FROM blocks"
                        " WHERE sid BETWEEN ?1 AND ?2 ORDER BY sid, t", sids, n, fn, ctx);
}
