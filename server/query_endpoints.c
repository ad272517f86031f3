/* query_endpoints.c — GET /api/v1/endpoints (query.h): the window's parameters → the store's
 * sessions (store_endpoints.c) → endpoints.c's groups, their points from the rollups of the
 * blocks the window holds whole (store_rollup.c) and from the other sessions one by one → the
 * JSON of docs/api.md. The window's sessions of clean blocks come from the rollups' members too
 * (store_ep_window), named (id, name) only where the answer shows them. */
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "query.h"

#define TOP_DEFAULT 5
#define TOP_MAX 100

typedef struct window {
  store_ep_filter f;
  const char *since, *until; /* as given, echoed */
  int64_t top;
} window;

static int parse_window(const query_args *a, window *w, char *detail, size_t dlen)
{
  memset(w, 0, sizeof(*w));
  w->f.limit = 1000;
  w->f.since_ns = w->f.until_ns = -1;
  w->top = TOP_DEFAULT;
  const char *v = query_arg(a, "limit");
  if(v && query_parse_i64(v, 1, 100000, &w->f.limit))
    return query_invalid(detail, dlen, "limit: expected an integer in [1, 100000]");
  if((v = query_arg(a, "top")) && query_parse_i64(v, 1, TOP_MAX, &w->top))
    return query_invalid(detail, dlen, "top: expected an integer in [1, 100]");
  if((w->since = query_arg(a, "since_unix_ns")) && query_parse_i64(w->since, 0, INT64_MAX, &w->f.since_ns))
    return query_invalid(detail, dlen, "since_unix_ns: expected a decimal integer in [0, 2^63)");
  if((w->until = query_arg(a, "until_unix_ns")) && query_parse_i64(w->until, 0, INT64_MAX, &w->f.until_ns))
    return query_invalid(detail, dlen, "until_unix_ns: expected a decimal integer in [0, 2^63)");
  w->f.service = query_arg(a, "service");
  w->f.endpoint = query_arg(a, "endpoint");
  if(w->f.endpoint && !*w->f.endpoint)
    w->f.endpoint = NULL;
  return 0;
}

static int on_await(void *ctx, const store_point *p)
{
  return ep_add_await(ctx, p->sid, p->file, p->line, p->func, p->what, p->n, p->total, p->max);
}

static int on_block(void *ctx, const store_point *p)
{
  return ep_add_block(ctx, p->sid, p->file, p->line, p->func, p->what, p->total);
}

/* Per block of the window: how many of its sessions each group has, and which groups it holds
 * whole (all of the block's sessions of that group, the block not dirty): their points come from
 * the rollup, summed per block already. */
typedef struct block_pass {
  ep_agg *e;
  int64_t *cnt, *rep;  /* per group: the window's sessions in this block, one of them */
  unsigned char *whole;
  size_t *touched, nt; /* the groups with sessions in this block */
  size_t last;         /* the group the previous point matched (points come group by group) */
} block_pass;

static int same(const char *a, const char *b)
{
  return a && b ? !strcmp(a, b) : a == b;
}

/* The group of the window's block matching (service, endpoint), or ng when none. */
static size_t match(block_pass *b, const char *service, const char *endpoint)
{
  const ep_group *g = b->e->g;
  if(b->last < b->e->ng && same(g[b->last].service, service) && same(g[b->last].endpoint, endpoint))
    return b->last;
  for(size_t i = 0; i < b->nt; i++)
    if(same(g[b->touched[i]].service, service) && same(g[b->touched[i]].endpoint, endpoint))
      return b->last = b->touched[i];
  return b->e->ng;
}

static int on_rollup_group(void *ctx, const store_rollup_row *x)
{
  block_pass *b = ctx;
  size_t g = match(b, x->service, x->endpoint);
  if(g < b->e->ng && b->cnt[g] == x->sessions)
    b->whole[g] = 1;
  return 0;
}

static int on_rollup_point(void *ctx, const store_rollup_row *x)
{
  block_pass *b = ctx;
  size_t g = match(b, x->service, x->endpoint);
  if(g >= b->e->ng || !b->whole[g])
    return 0;
  return ep_add_summed(b->e, b->rep[g], x->kind, x->p.file, x->p.line, x->p.func, x->p.what, x->p.n,
                       x->p.total, x->p.max, x->sessions);
}

/* Feeds e the await points and own blocks of its n sessions: per block of sids, the groups the
 * window holds whole from the rollup, the rest one session at a time. */
static int gather_points(store_reader *r, ep_agg *e, size_t n)
{
  block_pass b = {.e = e, .last = (size_t)-1};
  size_t ng = e->ng ? e->ng : 1;
  int64_t *raw = malloc((n ? n : 1) * sizeof(*raw));
  b.cnt = calloc(ng, sizeof(*b.cnt));
  b.rep = calloc(ng, sizeof(*b.rep));
  b.whole = calloc(ng, 1);
  b.touched = malloc(ng * sizeof(*b.touched));
  int rc = raw && b.cnt && b.rep && b.whole && b.touched ? 0 : LS_ENOMEM;
  size_t nraw = 0;
  for(size_t i = 0; i < n && !rc;) {
    int64_t blk = e->by_sid[2 * i] / STORE_ROLLUP_BLOCK;
    size_t j = i;
    b.nt = 0;
    for(; j < n && e->by_sid[2 * j] / STORE_ROLLUP_BLOCK == blk; j++) {
      size_t g = (size_t)e->by_sid[2 * j + 1];
      if(!b.cnt[g]++) {
        b.rep[g] = e->by_sid[2 * j];
        b.touched[b.nt++] = g;
      }
    }
    rc = store_rollup_groups(r, blk, on_rollup_group, &b);
    int any = 0;
    for(size_t k = 0; k < b.nt; k++)
      any |= b.whole[b.touched[k]];
    if(!rc && any)
      rc = store_rollup_points(r, blk, on_rollup_point, &b);
    for(size_t k = i; k < j; k++)
      if(!b.whole[e->by_sid[2 * k + 1]])
        raw[nraw++] = e->by_sid[2 * k];
    for(size_t k = 0; k < b.nt; k++)
      b.cnt[b.touched[k]] = b.whole[b.touched[k]] = 0;
    i = j;
  }
  if(!rc)
    rc = store_await_points(r, raw, nraw, on_await, e);
  if(!rc)
    rc = store_block_points(r, raw, nraw, 1, on_block, e);
  free(raw);
  free(b.cnt);
  free(b.rep);
  free(b.whole);
  free(b.touched);
  return rc;
}

static void session_ref(jbuf *o, const ep_session *x)
{
  jbuf_key(o, "id", 0); jbuf_str(o, x->id);
  jbuf_key(o, "name", 1); jbuf_str(o, x->name);
  jbuf_key(o, "duration_ns", 1); jbuf_i64(o, x->duration);
  jbuf_putc(o, '}');
}

static void points_json(jbuf *o, const char *key, const char *what, const ep_point *p, size_t n, int64_t top)
{
  jbuf_key(o, key, 1);
  jbuf_putc(o, '[');
  for(size_t i = 0; i < n && (int64_t)i < top; i++) {
    jbuf_puts(o, i ? ",{" : "{");
    jbuf_key(o, "file", 0); jbuf_str(o, p[i].file);
    jbuf_key(o, "line", 1);
    if(p[i].line >= 0)
      jbuf_i64(o, p[i].line);
    else
      jbuf_puts(o, "null");
    jbuf_key(o, "func", 1); jbuf_str(o, p[i].func);
    jbuf_key(o, what, 1); jbuf_str(o, p[i].what);
    jbuf_key(o, "count", 1); jbuf_i64(o, p[i].count);
    jbuf_key(o, "total_ns", 1); jbuf_i64(o, p[i].total);
    jbuf_key(o, "max_ns", 1); jbuf_i64(o, p[i].max);
    jbuf_key(o, "sessions", 1); jbuf_i64(o, p[i].sessions);
    jbuf_putc(o, '}');
  }
  jbuf_putc(o, ']');
}

static void group_json(jbuf *o, const ep_agg *e, const ep_group *g, int64_t top)
{
  jbuf_key(o, "service", 0); jbuf_str(o, g->service);
  jbuf_key(o, "endpoint", 1); jbuf_str(o, g->endpoint);
  jbuf_key(o, "templated", 1); jbuf_puts(o, g->templated ? "true" : "false");
  jbuf_key(o, "count", 1); jbuf_i64(o, (int64_t)g->n);
  /* what the count stands for when requests were recorded as a share (meta.fraction) */
  jbuf_key(o, "requests", 1); jbuf_i64(o, ep_requests(g->requests_u));
  jbuf_key(o, "sampled", 1); jbuf_i64(o, g->sampled);
  jbuf_key(o, "duration", 1);
  jbuf_puts(o, "{\"p50_ns\":"); jbuf_i64(o, g->p50);
  jbuf_puts(o, ",\"p95_ns\":"); jbuf_i64(o, g->p95);
  jbuf_puts(o, ",\"max_ns\":"); jbuf_i64(o, g->max);
  jbuf_putc(o, '}');
  jbuf_key(o, "lag", 1);
  jbuf_puts(o, "{\"sessions\":"); jbuf_i64(o, g->lag_sessions);
  jbuf_puts(o, ",\"p95_ms\":"); jbuf_f64(o, (double)g->lag_p95 / 1e6, 6);
  jbuf_putc(o, '}');
  jbuf_key(o, "blocks", 1);
  jbuf_puts(o, "{\"count\":"); jbuf_i64(o, g->blocks);
  jbuf_puts(o, ",\"total_ns\":"); jbuf_i64(o, g->block_total);
  jbuf_putc(o, '}');
  points_json(o, "hotspots", "what", g->hot, g->nhot, top);
  points_json(o, "culprits", "src", g->culprits, g->nculprits, top);
  /* slowest first: the group's sessions are by duration ascending */
  jbuf_key(o, "slowest", 1);
  jbuf_putc(o, '[');
  for(size_t i = 0; i < g->n && (int64_t)i < top; i++) {
    jbuf_puts(o, i ? ",{" : "{");
    session_ref(o, &e->s[g->first + g->n - 1 - i]);
  }
  jbuf_putc(o, ']');
  jbuf_key(o, "median", 1);
  jbuf_putc(o, '{');
  session_ref(o, &e->s[g->median]);
}

int query_endpoints(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  (void)id;
  window w;
  int rc = parse_window(a, &w, detail, dlen);
  if(rc)
    return rc;
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  ep_session *rows = NULL;
  size_t n = 0;
  ep_agg e;
  memset(&e, 0, sizeof(e));
  rc = store_ep_window(r, &w.f, &ar, &rows, &n);
  if(!rc)
    rc = ep_group_sessions(&e, rows, n);
  if(!rc)
    rc = gather_points(r, &e, n);
  if(!rc)
    rc = ep_finish(&e);
  /* the sessions the answer names: each group's slowest and its median */
  for(size_t i = 0; !rc && i < e.ng; i++) {
    const ep_group *g = &e.g[i];
    size_t k = (int64_t)g->n < w.top ? g->n : (size_t)w.top;
    rc = store_ep_names(r, e.s + g->first + g->n - k, k, &ar);
    if(!rc)
      rc = store_ep_names(r, e.s + g->median, 1, &ar);
  }
  store_reader_release(s, r);
  if(!rc) {
    int64_t requests_u = 0;
    for(size_t i = 0; i < e.ng; i++)
      requests_u += e.g[i].requests_u;
    jbuf_puts(out, "{\"window\":{\"sessions\":");
    jbuf_i64(out, (int64_t)n);
    jbuf_key(out, "requests", 1); jbuf_i64(out, ep_requests(requests_u));
    jbuf_key(out, "limit", 1); jbuf_i64(out, w.f.limit);
    jbuf_key(out, "since_unix_ns", 1); jbuf_str(out, w.since);
    jbuf_key(out, "until_unix_ns", 1); jbuf_str(out, w.until);
    jbuf_key(out, "service", 1); jbuf_str(out, w.f.service);
    jbuf_key(out, "endpoint", 1); jbuf_str(out, w.f.endpoint);
    jbuf_puts(out, "},\"endpoints\":[");
    for(size_t i = 0; i < e.ng; i++) {
      jbuf_puts(out, i ? ",{" : "{");
      group_json(out, &e, &e.g[i], w.top);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "]}");
  }
  ep_free(&e);
  free(rows);
  arena_free(&ar);
  return rc ? rc : jbuf_status(out);
}
