/* query_timeline.c — GET /sessions/{id}/timeline (query.h): the items of the lanes asked for in
 * the visible time range at the level of detail of the page's width (lod.c), the session-wide
 * lanes (blocks, lag with its causes, concurrency), and the `tasks=` id list parser /rows shares.
 * The frame every per-session handler runs in is query.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lag_cause.h"
#include "lod.h"
#include "query.h"
#include "query_internal.h"
#include "stats.h"

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int query_parse_ids(const char *s, int64_t **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  size_t cap = 1;
  for(const char *p = s; *p; p++)
    cap += *p == ',';
  if(cap > 2000)
    return LS_EINVAL;
  int64_t *ids = malloc(cap * sizeof(*ids));
  if(!ids)
    return LS_ENOMEM;
  size_t k = 0;
  const char *p = s;
  for(;;) {
    char num[24];
    size_t len = strcspn(p, ",");
    if(len == 0 || len >= sizeof(num)) {
      free(ids);
      return LS_EINVAL;
    }
    memcpy(num, p, len);
    num[len] = '\0';
    if(query_parse_i64(num, 0, TWO_POW_53 - 1, &ids[k])) {
      free(ids);
      return LS_EINVAL;
    }
    k++;
    p += len;
    if(!*p)
      break;
    p++;
  }
  qsort(ids, k, sizeof(*ids), cmp_i64);
  size_t u = 0;
  for(size_t i = 0; i < k; i++)
    if(u == 0 || ids[u - 1] != ids[i])
      ids[u++] = ids[i];
  *out = ids;
  *n = u;
  return 0;
}

typedef struct tl_ctx {
  store_reader *r;
  int64_t sid;
  arena *ar;
  lod_view view;
  jbuf *out;
  lod_item *items; /* scratch for one lane */
  size_t cap;
} tl_ctx;

static int grow_items(tl_ctx *c, size_t n)
{
  if(n <= c->cap)
    return 0;
  lod_item *p = realloc(c->items, n * sizeof(*p));
  if(!p)
    return LS_ENOMEM;
  c->items = p;
  c->cap = n;
  return 0;
}

/* One lane: the task's steps and awaits reduced together; writes nothing when none is kept. */
static int write_lane(tl_ctx *c, int64_t task, const store_span *st, size_t nst,
                      const store_span *aw, size_t naw, int *first_lane)
{
  int rc = grow_items(c, nst + naw);
  if(rc)
    return rc;
  size_t n = 0;
  for(size_t i = 0; i < nst; i++)
    c->items[n++] = (lod_item){.t = st[i].t, .d = st[i].d, .kind = INGEST_STEP, .src = i};
  for(size_t i = 0; i < naw; i++)
    c->items[n++] = (lod_item){.t = aw[i].t, .d = aw[i].d, .kind = INGEST_AWAIT, .src = i};
  size_t kept = 0;
  rc = lod_pick_longest(c->items, n, &c->view, &kept);
  if(rc || !kept)
    return rc;
  jbuf *o = c->out;
  jbuf_puts(o, *first_lane ? "{\"task\":" : ",{\"task\":");
  *first_lane = 0;
  jbuf_i64(o, task);
  jbuf_puts(o, ",\"items\":[");
  for(size_t i = 0; i < kept && !rc; i++) {
    const lod_item *it = &c->items[i];
    jbuf_puts(o, i ? ",{\"k\":" : "{\"k\":");
    if(it->kind == INGEST_STEP) {
      jbuf_puts(o, "\"step\",\"t\":");
      jbuf_i64(o, it->t);
      jbuf_puts(o, ",\"d\":");
      jbuf_i64(o, it->d);
      jbuf_puts(o, ",\"n\":");
      jbuf_i64(o, it->n);
    }
    else {
      store_await w;
      rc = store_await_at(c->r, c->sid, task, aw[it->src].t, c->ar, &w);
      jbuf_puts(o, "\"await\",");
      if(!rc)
        query_await_json(o, &w, 0);
      jbuf_puts(o, ",\"n\":");
      jbuf_i64(o, it->n);
    }
    jbuf_putc(o, '}');
  }
  jbuf_puts(o, "]}");
  return rc;
}

/* What the kept lag items (each the longest of its column) waited behind. */
static int timeline_lag_causes(tl_ctx *c, size_t kept, lag_causes *lc)
{
  int64_t *t = malloc((kept ? kept : 1) * sizeof(*t)), *d = malloc((kept ? kept : 1) * sizeof(*d));
  int rc = t && d ? 0 : LS_ENOMEM;
  for(size_t i = 0; !rc && i < kept; i++) {
    t[i] = c->items[i].t;
    d[i] = c->items[i].d;
  }
  if(!rc)
    rc = lag_causes_load(c->r, c->sid, c->ar, t, d, kept, lc);
  free(t);
  free(d);
  return rc;
}

/* Blocks (innermost frame) or lag samples over all tasks, reduced as one lane each; a lag item
 * names the block it waited behind. */
static int write_global(tl_ctx *c, int kind, const store_span *sp, size_t n)
{
  int rc = grow_items(c, n);
  if(rc)
    return rc;
  for(size_t i = 0; i < n; i++)
    c->items[i] = (lod_item){.t = sp[i].t, .d = sp[i].d, .kind = 0, .src = i};
  size_t kept = 0;
  rc = lod_pick_longest(c->items, n, &c->view, &kept);
  lag_causes lc = {0};
  if(!rc && kind == INGEST_LAG)
    rc = timeline_lag_causes(c, kept, &lc);
  jbuf *o = c->out;
  jbuf_putc(o, '[');
  for(size_t i = 0; i < kept && !rc; i++) {
    const lod_item *it = &c->items[i];
    store_block b;
    if(kind == INGEST_BLOCK && (rc = store_block_by_rowid(c->r, sp[it->src].rowid, c->ar, &b)))
      break;
    jbuf_puts(o, i ? ",{" : "{");
    if(kind == INGEST_BLOCK) {
      jbuf_key(o, "task", 0); jbuf_i64(o, b.task);
      jbuf_putc(o, ',');
    }
    jbuf_key(o, "t", 0); jbuf_i64(o, it->t);
    jbuf_key(o, "d", 1); jbuf_i64(o, it->d);
    jbuf_key(o, "n", 1); jbuf_i64(o, it->n);
    if(kind == INGEST_BLOCK) {
      jbuf_key(o, "file", 1); jbuf_str(o, b.file);
      jbuf_key(o, "line", 1); query_opt_i64(o, b.line);
      jbuf_key(o, "func", 1); jbuf_str(o, b.func);
      jbuf_key(o, "src", 1); jbuf_str(o, b.src);
      query_block_cause(o, &b);
      jbuf_key(o, "stack_t", 1); query_opt_i64(o, b.stack_t);
    } else {
      lag_causes_json(o, &lc, i);
    }
    jbuf_putc(o, '}');
  }
  jbuf_putc(o, ']');
  lag_causes_free(&lc);
  return rc;
}

static int64_t lower_bound(int64_t from, int64_t max_d)
{
  return from > max_d ? from - max_d : 0;
}

/* what query_timeline parsed from the request */
typedef struct timeline_in {
  int64_t from, to, px;
  const int64_t *tasks;
  size_t ntasks;
  int lanes_only; /* only=lanes: no blocks and lag (the page scrolling in a view it has them for) */
} timeline_in;

static int timeline_body(const session_query *q)
{
  store_reader *r = q->r;
  const store_session *x = q->x;
  jbuf *out = q->out;
  const timeline_in *in = q->in;
  int64_t from = in->from, to = in->to, px = in->px;
  const int64_t *tasks = in->tasks;
  size_t ntasks = in->ntasks;
  int rc;
  if(to < 0)
    to = query_duration_of(x) > from ? query_duration_of(x) : from + 1;
  if(to <= from)
    return query_invalid(q->detail, q->dlen, "to: must be greater than from");
  tl_ctx c = {r, x->sid, q->ar, {from, to, (int32_t)px}, out, NULL, 0};
  store_span *st = NULL, *aw = NULL, *bl = NULL, *lg = NULL;
  size_t nst = 0, naw = 0, nbl = 0, nlg = 0;
  rc = store_scan_spans(r, x->sid, INGEST_STEP, tasks, ntasks, lower_bound(from, x->max_d[INGEST_STEP]), to, &st, &nst);
  if(!rc)
    rc = store_scan_spans(r, x->sid, INGEST_AWAIT, tasks, ntasks, lower_bound(from, x->max_d[INGEST_AWAIT]), to, &aw, &naw);
  if(!rc && !in->lanes_only)
    rc = store_scan_spans(r, x->sid, INGEST_BLOCK, NULL, 0, lower_bound(from, x->max_d[INGEST_BLOCK]), to, &bl, &nbl);
  if(!rc && !in->lanes_only)
    rc = store_scan_spans(r, x->sid, INGEST_LAG, NULL, 0, lower_bound(from, x->max_d[INGEST_LAG]), to, &lg, &nlg);
  if(!rc) {
    jbuf_puts(out, "{\"from\":");
    jbuf_i64(out, from);
    jbuf_puts(out, ",\"to\":");
    jbuf_i64(out, to);
    jbuf_puts(out, ",\"px\":");
    jbuf_i64(out, px);
    jbuf_puts(out, ",\"ns_per_px\":");
    jbuf_i64(out, lod_ns_per_px(&c.view));
    jbuf_puts(out, ",\"lanes\":[");
    /* both span lists are ordered by task: walk them together, one lane per task id */
    size_t i = 0, j = 0;
    int first = 1;
    while(!rc && (i < nst || j < naw)) {
      int64_t task = i < nst && (j >= naw || st[i].task <= aw[j].task) ? st[i].task : aw[j].task;
      size_t i2 = i, j2 = j;
      while(i2 < nst && st[i2].task == task)
        i2++;
      while(j2 < naw && aw[j2].task == task)
        j2++;
      /* st or aw is NULL when it has no rows: no pointer arithmetic on it then (UB, UBSan's
       * pointer-overflow check stopped the query fuzzer here) */
      rc = write_lane(&c, task, i2 > i ? st + i : NULL, i2 - i, j2 > j ? aw + j : NULL, j2 - j, &first);
      i = i2;
      j = j2;
    }
    jbuf_putc(out, ']');
    if(!in->lanes_only) {
      jbuf_puts(out, ",\"blocks\":");
      if(!rc)
        rc = write_global(&c, INGEST_BLOCK, bl, nbl);
      jbuf_puts(out, ",\"lag\":");
      if(!rc)
        rc = write_global(&c, INGEST_LAG, lg, nlg);
    }
    jbuf_putc(out, '}');
  }
  free(c.items);
  free(st);
  free(aw);
  free(bl);
  free(lg);
  return rc;
}

/* `only=`: "lanes" (the lanes' items without the session-wide blocks and lag) sets *lanes_only;
 * an empty value is the default (everything). 0, or -1 for any other value. */
int query_parse_only(const char *v, int *lanes_only)
{
  if(!*v) {
    *lanes_only = 0;
    return 0;
  }
  if(strcmp(v, "lanes") != 0)
    return -1;
  *lanes_only = 1;
  return 0;
}

int query_timeline_on(store_reader *r, arena *ar, const store_session *x, int64_t from, int64_t to, int64_t px,
                      const int64_t *tasks, size_t ntasks, int lanes_only, jbuf *out, char *detail, size_t dlen)
{
  timeline_in in = {from, to, px, tasks, ntasks, lanes_only};
  session_query q = {r, ar, x, out, &in, detail, dlen};
  return timeline_body(&q);
}

int query_timeline(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  int64_t from = 0, to = -1, px = 1000;
  const char *v;
  /* from < 2^53 so that the default `to` (from + 1 at the least) is still <= 2^53 */
  if((v = query_arg(a, "from")) && query_parse_i64(v, 0, TWO_POW_53 - 1, &from))
    return query_invalid(detail, dlen, "from: expected an integer in [0, 2^53)");
  if((v = query_arg(a, "to")) && query_parse_i64(v, 0, TWO_POW_53, &to))
    return query_invalid(detail, dlen, "to: expected an integer in [0, 2^53]");
  if((v = query_arg(a, "px")) && query_parse_i64(v, 1, 10000, &px))
    return query_invalid(detail, dlen, "px: expected an integer in [1, 10000]");
  int lanes_only = 0;
  if((v = query_arg(a, "only")) && query_parse_only(v, &lanes_only))
    return query_invalid(detail, dlen, "only: expected lanes");
  int64_t *tasks = NULL;
  size_t ntasks = 0;
  if((v = query_arg(a, "tasks")) && *v) {
    int prc = query_parse_ids(v, &tasks, &ntasks);
    if(prc == LS_EINVAL)
      return query_invalid(detail, dlen, "tasks: expected at most 2000 comma-separated task ids");
    if(prc)
      return prc;
  }
  timeline_in in = {from, to, px, tasks, ntasks, lanes_only};
  int rc = query_in_session(s, id, out, &in, detail, dlen, timeline_body);
  free(tasks);
  return rc;
}
