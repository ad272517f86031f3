/* query.c — REST read handlers (query.h): read rows through a pooled read connection, compute
 * with stats.c and lod.c, write the JSON of docs/api.md. The timeline is query_timeline.c's, SQL
 * store.c's, routing http.c's. */
#include "query.h"
#include "query_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lag_cause.h"
#include "lod.h"
#include "query_page.h"
#include "stats.h"
#include "store_keys.h"
#include "store_series.h"

int query_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
  if(!s || !*s)
    return LS_EINVAL;
  for(const char *p = s; *p; p++)
    if(!(*p >= '0' && *p <= '9') && !(p == s && *p == '-'))
      return LS_EINVAL;
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if(errno || !end || *end || v < lo || v > hi)
    return LS_EINVAL;
  *out = v;
  return 0;
}

int query_invalid(char *detail, size_t dlen, const char *msg)
{
  snprintf(detail, dlen, "%s", msg);
  return LS_EINVAL;
}

void query_opt_i64(jbuf *o, int64_t v)
{
  if(v >= 0)
    jbuf_i64(o, v);
  else
    jbuf_puts(o, "null");
}

int64_t query_duration_of(const store_session *x)
{
  return x->ended ? x->end_t : x->max_t;
}

static void lag_json(jbuf *o, const stats_lag *l)
{
  jbuf_puts(o, "{\"samples\":");
  jbuf_i64(o, l->samples);
  jbuf_puts(o, ",\"avg_ms\":");
  jbuf_f64(o, l->avg_ms, 6);
  jbuf_puts(o, ",\"p50_ms\":");
  jbuf_f64(o, l->p50_ms, 6);
  jbuf_puts(o, ",\"p95_ms\":");
  jbuf_f64(o, l->p95_ms, 6);
  jbuf_puts(o, ",\"p99_ms\":");
  jbuf_f64(o, l->p99_ms, 6);
  jbuf_puts(o, ",\"max_ms\":");
  jbuf_f64(o, l->max_ms, 6);
  jbuf_putc(o, '}');
}

/* The Summary object of docs/api.md for one session row. */
static int summary_json(store_reader *r, const store_session *x, jbuf *o)
{
  int64_t dur = query_duration_of(x);
  store_sstats ss; /* stored once the session ended (store_series.c) */
  int rc = store_series_stats(r, x, dur, &ss);
  if(rc)
    return rc;
  const stats_lag lag = ss.lag;
  int64_t niv = ss.tasks, maxc = ss.max_concurrency;
  jbuf_key(o, "id", 0); jbuf_str(o, x->id);
  jbuf_key(o, "name", 1); jbuf_str(o, x->name);
  jbuf_key(o, "service", 1); jbuf_str(o, x->service);
  jbuf_key(o, "route", 1); jbuf_str(o, x->route);
  jbuf_key(o, "pid", 1); query_opt_i64(o, x->pid);
  jbuf_key(o, "host", 1); jbuf_str(o, x->host);
  jbuf_key(o, "python", 1); jbuf_str(o, x->python);
  jbuf_key(o, "started_unix_ns", 1); jbuf_str(o, x->started);
  jbuf_key(o, "duration_ns", 1); jbuf_i64(o, dur);
  jbuf_key(o, "tasks", 1); jbuf_i64(o, niv);
  jbuf_key(o, "max_concurrency", 1); jbuf_i64(o, maxc);
  jbuf_key(o, "lag", 1); lag_json(o, &lag);
  jbuf_key(o, "loop", 1); query_opt_i64(o, x->loop);
  jbuf_key(o, "blocks", 1); jbuf_i64(o, x->n_blocks);
  /* lost time split: the session's own blocks and the stalls others caused on its loop */
  int64_t own = x->n_blocks - x->n_blocks_elsewhere;
  jbuf_key(o, "blocks_own", 1); jbuf_i64(o, own > 0 ? own : 0);
  jbuf_key(o, "blocks_elsewhere", 1); jbuf_i64(o, x->n_blocks_elsewhere);
  jbuf_key(o, "blocked_ms_own", 1); jbuf_f64(o, (double)x->blocked_ns_own / 1e6, 6);
  jbuf_key(o, "blocked_ms_elsewhere", 1); jbuf_f64(o, (double)x->blocked_ns_elsewhere / 1e6, 6);
  jbuf_key(o, "awaits", 1); jbuf_i64(o, x->n_awaits);
  jbuf_key(o, "dropped", 1); jbuf_i64(o, x->dropped);
  jbuf_key(o, "unknown_events", 1); jbuf_i64(o, x->unknown);
  jbuf_key(o, "ended", 1); jbuf_puts(o, x->ended ? "true" : "false");
  jbuf_key(o, "fraction", 1);
  if(x->fraction > 0)
    jbuf_real(o, x->fraction);
  else
    jbuf_puts(o, "null");
  return 0;
}

int query_sessions(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  (void)id;
  int64_t limit = 100;
  const char *ls = query_arg(a, "limit");
  if(ls && query_parse_i64(ls, 1, 1000, &limit))
    return query_invalid(detail, dlen, "limit: expected an integer in [1, 1000]");
  const char *name = query_arg(a, "name");
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session *rows = NULL;
  size_t n = 0;
  int rc = store_list_sessions(r, name && *name ? name : NULL, (int)limit, &ar, &rows, &n);
  if(!rc) {
    jbuf_puts(out, "{\"sessions\":[");
    for(size_t i = 0; i < n && !rc; i++) {
      jbuf_puts(out, i ? ",{" : "{");
      rc = summary_json(r, &rows[i], out);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "]}");
  }
  free(rows);
  arena_free(&ar);
  store_reader_release(s, r);
  return rc ? rc : jbuf_status(out);
}

/* The frame of every per-session query: find the session (LS_ENOTFOUND if it is not there), run
 * body on it, give the reader back. The answer is body's error, else the output's. */
int query_in_session(store *s, const char *id, jbuf *out, const void *in, char *detail, size_t dlen,
                     int (*body)(const session_query *q))
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int rc = store_find_session(r, id, &ar, &x);
  if(!rc) {
    session_query q = {r, &ar, &x, out, in, detail, dlen};
    rc = body(&q);
  }
  arena_free(&ar);
  store_reader_release(s, r);
  return rc ? rc : jbuf_status(out);
}

static int session_body(const session_query *q)
{
  jbuf *out = q->out;
  jbuf_putc(out, '{');
  int rc = summary_json(q->r, q->x, out);
  jbuf_putc(out, '}');
  return rc;
}

int query_session(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  (void)a;
  return query_in_session(s, id, out, NULL, detail, dlen, session_body);
}

typedef struct id_idx { int64_t id; size_t idx; } id_idx;

static int cmp_id_idx(const void *a, const void *b)
{
  int64_t x = ((const id_idx *)a)->id, y = ((const id_idx *)b)->id;
  return (x > y) - (x < y);
}

static size_t find_idx(const id_idx *map, size_t n, int64_t id)
{
  size_t lo = 0, hi = n;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(map[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && map[lo].id == id ? map[lo].idx : (size_t)-1;
}

/* One task's object {"id": ...}: its effective parent and depth, its children's ids in tree
 * order, either kid_ids[0..nkids) or t[kid_idx[c]].id for c in [0, nkids). */
static void write_task(jbuf *o, const store_task *x, int64_t parent, int64_t depth, const int64_t *kid_ids,
                       const store_task *t, const size_t *kid_idx, size_t nkids)
{
  jbuf_puts(o, "{\"id\":");
  jbuf_i64(o, x->id);
  jbuf_puts(o, ",\"name\":");
  jbuf_str(o, x->name);
  jbuf_puts(o, ",\"coro\":");
  jbuf_str(o, x->coro);
  jbuf_puts(o, ",\"parent\":");
  jbuf_i64(o, parent);
  jbuf_puts(o, ",\"children\":[");
  for(size_t c = 0; c < nkids; c++) {
    if(c)
      jbuf_putc(o, ',');
    jbuf_i64(o, kid_ids ? kid_ids[c] : t[kid_idx[c]].id);
  }
  jbuf_puts(o, "],\"depth\":");
  jbuf_i64(o, depth);
  jbuf_puts(o, ",\"created\":");
  query_opt_i64(o, x->created);
  jbuf_puts(o, ",\"first_run\":");
  query_opt_i64(o, x->first_run);
  jbuf_puts(o, ",\"ended\":");
  query_opt_i64(o, x->ended);
  jbuf_puts(o, ",\"state\":");
  jbuf_str(o, x->state);
  jbuf_puts(o, ",\"exc\":");
  jbuf_str(o, x->exc);
  jbuf_puts(o, ",\"status\":");
  query_opt_i64(o, x->status);
  jbuf_puts(o, ",\"busy_ns\":");
  jbuf_i64(o, x->busy_ns);
  jbuf_puts(o, ",\"wait_ns\":");
  jbuf_i64(o, x->wait_ns);
  jbuf_putc(o, '}');
}

/* The end of a tasks answer: total >= 0: a page at `offset` of that many, said as "total" and
 * "offset". */
static void end_tasks(jbuf *o, int64_t total, int64_t offset)
{
  jbuf_putc(o, ']');
  if(total >= 0) {
    jbuf_key(o, "total", 1);
    jbuf_i64(o, total);
    jbuf_key(o, "offset", 1);
    jbuf_i64(o, offset);
  }
  jbuf_putc(o, '}');
}

/* The tasks order[0..n) (into t/st); total >= 0: a page at `offset` of that many. */
static void write_tasks(jbuf *o, const store_task *t, const stats_task *st, const size_t *order,
                        const size_t *child_start, const size_t *children, size_t n, int64_t total,
                        size_t offset)
{
  jbuf_grow(o, n * 256 + 16); /* about what a task takes: one allocation for the whole answer */
  jbuf_puts(o, "{\"tasks\":[");
  for(size_t k = 0; k < n; k++) {
    size_t i = order[k];
    if(k)
      jbuf_putc(o, ',');
    write_task(o, &t[i], st[i].eff_parent, st[i].depth, NULL, t, children + child_start[i],
               child_start[i + 1] - child_start[i]);
  }
  end_tasks(o, total, (int64_t)offset);
}

/* A page through the stored keys (store_keys.c): LS_ENOTFOUND when the session has none current
 * (the caller sorts in memory). The same JSON as write_tasks writes for the page. */
static int tasks_page_stored(const session_query *q, const query_page *pg)
{
  store_page_ask ask = {query_page_col(QUERY_PAGE_TASKS, pg->col), pg->desc, pg->offset, pg->limit, pg->at};
  store_page_task *v = NULL;
  size_t n = 0;
  int64_t total = 0, from = 0;
  int rc = store_keys_page(q->r, q->x, &ask, q->ar, &v, &n, &total, &from);
  if(rc) {
    free(v);
    return rc;
  }
  jbuf *o = q->out;
  jbuf_puts(o, "{\"tasks\":[");
  for(size_t k = 0; k < n; k++) {
    if(k)
      jbuf_putc(o, ',');
    write_task(o, &v[k].t, v[k].parent, v[k].depth, v[k].children, NULL, NULL, v[k].nchildren);
  }
  end_tasks(o, total, from);
  free(v);
  return 0;
}

static int tasks_body(const session_query *q)
{
  store_reader *r = q->r;
  const store_session *x = q->x;
  jbuf *out = q->out;
  int rc;
  if(q->in && ((const query_page *)q->in)->given) {
    rc = tasks_page_stored(q, q->in);
    if(rc != LS_ENOTFOUND)
      return rc;
  }
  store_task *t = NULL;
  size_t n = 0;
  rc = store_load_tasks(r, x->sid, q->ar, &t, &n);
  stats_task *st = NULL;
  size_t *order = NULL, *child_start = NULL, *children = NULL, *fill = NULL;
  id_idx *map = NULL;
  size_t m = n ? n : 1;
  if(!rc && (!(st = malloc(m * sizeof(*st))) || !(order = malloc(m * sizeof(*order))) ||
             !(child_start = calloc(m + 1, sizeof(*child_start))) ||
             !(children = malloc(m * sizeof(*children))) || !(fill = malloc(m * sizeof(*fill))) ||
             !(map = malloc(m * sizeof(*map)))))
    rc = LS_ENOMEM;
  if(!rc) {
    for(size_t i = 0; i < n; i++) {
      st[i] = (stats_task){.id = t[i].id, .parent = t[i].parent, .created = t[i].created};
      map[i] = (id_idx){t[i].id, i};
    }
    rc = stats_task_tree(st, n, order);
  }
  if(!rc) {
    /* children per task in tree order: count, prefix sums, then fill walking the order */
    qsort(map, n, sizeof(*map), cmp_id_idx);
    size_t *pidx = fill; /* reused: parent index of each task or -1 */
    for(size_t i = 0; i < n; i++) {
      pidx[i] = st[i].eff_parent ? find_idx(map, n, st[i].eff_parent) : (size_t)-1;
      if(pidx[i] != (size_t)-1)
        child_start[pidx[i] + 1]++;
    }
    for(size_t i = 0; i < n; i++)
      child_start[i + 1] += child_start[i];
    size_t *pos = malloc(m * sizeof(*pos));
    if(!pos)
      rc = LS_ENOMEM;
    else {
      memcpy(pos, child_start, n * sizeof(*pos));
      for(size_t k = 0; k < n; k++) {
        size_t i = order[k];
        if(pidx[i] != (size_t)-1)
          children[pos[pidx[i]]++] = i;
      }
      free(pos);
      const query_page *pg = q->in;
      if(!pg || !pg->given)
        write_tasks(out, t, st, order, child_start, children, n, -1, 0);
      else {
        size_t *sorted = NULL, from, to;
        rc = query_page_tasks(t, n, pg, query_duration_of(x), &sorted);
        if(!rc) {
          size_t at_pos = n;
          for(size_t k = 0; pg->at > 0 && k < n && at_pos == n; k++)
            if(t[sorted[k]].id == pg->at)
              at_pos = k;
          query_page_window(pg, n, at_pos, &from, &to);
          write_tasks(out, t, st, sorted + from, child_start, children, to - from, (int64_t)n, from);
        }
        free(sorted);
      }
    }
  }
  free(t);
  free(st);
  free(order);
  free(child_start);
  free(children);
  free(fill);
  free(map);
  return rc;
}

int query_tasks(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  query_page pg;
  if(query_page_parse(a, QUERY_PAGE_TASKS, &pg, detail, dlen))
    return LS_EINVAL;
  const char *at = query_arg(a, "at");
  if(at && query_parse_i64(at, 1, INGEST_MAX_INT, &pg.at))
    return query_invalid(detail, dlen, "at: expected a task id, an integer in [1, 2^53)");
  pg.given |= at != NULL;
  return query_in_session(s, id, out, &pg, detail, dlen, tasks_body);
}

int query_tasks_heavy(store *s, const char *id, const query_args *a)
{
  static const char *const paging[] = {"sort", "order", "offset", "limit", "at"};
  int paged = 0;
  for(size_t i = 0; i < sizeof(paging) / sizeof(paging[0]); i++)
    paged |= query_arg(a, paging[i]) != NULL;
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int heavy = store_find_session(r, id, &ar, &x) == 0 && x.n_events >= 100000 &&
              !(paged && store_keys_current(r, &x));
  arena_free(&ar);
  store_reader_release(s, r);
  return heavy;
}

/* min_ms as a threshold in ns: "at or over" an exact count of ms, rounded up otherwise. */
static int parse_min_ms(const char *s, double *ms, int64_t *min_d)
{
  if(!s) {
    *ms = 10;
    *min_d = 10000000;
    return 0;
  }
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  /* An underflow (ERANGE with a result of at most DBL_MIN, e.g. "1e-308") is a valid tiny
   * threshold, the same as 0; an overflow is not. */
  if((errno && !(errno == ERANGE && fabs(v) <= DBL_MIN)) || !end || *end || end == s || !isfinite(v) || v < 0 || v > 9e9)
    return LS_EINVAL;
  double ns = v * 1e6;
  double r = nearbyint(ns);
  *ms = v;
  *min_d = (int64_t)(fabs(ns - r) < 1e-3 ? r : ceil(ns));
  return 0;
}

void query_await_json(jbuf *o, const store_await *w, int with_task)
{
  if(with_task) {
    jbuf_key(o, "task", 0);
    jbuf_i64(o, w->task);
    jbuf_putc(o, ',');
  }
  jbuf_key(o, "t", 0); jbuf_i64(o, w->t);
  jbuf_key(o, "d", 1); jbuf_i64(o, w->d);
  jbuf_key(o, "what", 1); jbuf_str(o, w->what);
  jbuf_key(o, "file", 1); jbuf_str(o, w->file);
  jbuf_key(o, "line", 1); query_opt_i64(o, w->line);
  jbuf_key(o, "func", 1); jbuf_str(o, w->func);
}

/* what query_awaits parsed from the request */
typedef struct awaits_in {
  double ms;
  int64_t min_d;
  query_page pg;  /* sort: d (default, longest first), t or task */
} awaits_in;

static int awaits_body(const session_query *q)
{
  store_reader *r = q->r;
  const store_session *x = q->x;
  jbuf *out = q->out;
  const awaits_in *in = q->in;
  double ms = in->ms;
  int64_t min_d = in->min_d, limit = in->pg.limit;
  int rc;
  store_await *w = NULL;
  size_t n = 0;
  stats_await *sa = NULL;
  stats_hotspot *hs = NULL;
  size_t nhs = 0;
  rc = store_load_awaits(r, x->sid, min_d, q->ar, &w, &n);
  if(!rc && !(sa = malloc((n ? n : 1) * sizeof(*sa))))
    rc = LS_ENOMEM;
  if(!rc) {
    for(size_t i = 0; i < n; i++)
      sa[i] = (stats_await){w[i].file, w[i].line, w[i].d, w[i].func, w[i].what};
    rc = stats_hotspots(sa, n, &hs, &nhs);
  }
  size_t *order = NULL, from = 0, to = 0;
  if(!rc)
    rc = query_page_awaits(w, n, &in->pg, &order);
  if(!rc) {
    query_page_window(&in->pg, n, n, &from, &to);
    jbuf_puts(out, "{\"min_ms\":");
    jbuf_f64(out, ms, 6);
    jbuf_key(out, "total", 1);
    jbuf_i64(out, (int64_t)n);
    jbuf_key(out, "awaits", 1);
    jbuf_putc(out, '[');
    for(size_t i = from; i < to; i++) {
      jbuf_puts(out, i > from ? ",{" : "{");
      query_await_json(out, &w[order[i]], 1);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "],\"hotspots\":[");
    for(size_t i = 0; i < nhs && i < (size_t)limit; i++) {
      jbuf_puts(out, i ? ",{" : "{");
      jbuf_key(out, "file", 0); jbuf_str(out, hs[i].file);
      jbuf_key(out, "line", 1); query_opt_i64(out, hs[i].line);
      jbuf_key(out, "func", 1); jbuf_str(out, hs[i].func);
      jbuf_key(out, "what", 1); jbuf_str(out, hs[i].what);
      jbuf_key(out, "count", 1); jbuf_i64(out, hs[i].count);
      jbuf_key(out, "total_ns", 1); jbuf_i64(out, hs[i].total);
      jbuf_key(out, "max_ns", 1); jbuf_i64(out, hs[i].max);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "]}");
  }
  free(w);
  free(sa);
  free(hs);
  free(order);
  return rc;
}

int query_awaits(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  awaits_in in = {0, 0, {0}};
  if(parse_min_ms(query_arg(a, "min_ms"), &in.ms, &in.min_d))
    return query_invalid(detail, dlen, "min_ms: expected a number of milliseconds >= 0");
  if(query_page_parse(a, QUERY_PAGE_AWAITS, &in.pg, detail, dlen))
    return LS_EINVAL;
  return query_in_session(s, id, out, &in, detail, dlen, awaits_body);
}

/* A block's cause: "from_session" (the causing session's id, null: none or an own block) and
 * "from_task" (null: none), after an opening key. */
void query_block_cause(jbuf *o, const store_block *b)
{
  jbuf_key(o, "elsewhere", 1); jbuf_puts(o, b->elsewhere ? "true" : "false");
  jbuf_key(o, "from_session", 1); jbuf_str(o, b->from_session);
  jbuf_key(o, "from_task", 1); query_opt_i64(o, b->from_task);
}

static int blocks_body(const session_query *q)
{
  jbuf *out = q->out;
  const query_page *pg = q->in;
  store_block *b = NULL;
  size_t n = 0, *order = NULL, from = 0, to = 0;
  int rc = store_load_blocks(q->r, q->x->sid, q->ar, &b, &n);
  if(!rc && pg->given) {
    rc = query_page_blocks(b, n, pg, &order);
    query_page_window(pg, n, n, &from, &to);
  }
  else
    to = n;
  if(!rc) {
    jbuf_puts(out, "{\"blocks\":[");
    for(size_t k = from; k < to; k++) {
      size_t i = order ? order[k] : k;
      jbuf_puts(out, k > from ? ",{" : "{");
      jbuf_key(out, "task", 0); jbuf_i64(out, b[i].task);
      jbuf_key(out, "t", 1); jbuf_i64(out, b[i].t);
      jbuf_key(out, "d", 1); jbuf_i64(out, b[i].d);
      query_block_cause(out, &b[i]);
      jbuf_key(out, "stack_t", 1); query_opt_i64(out, b[i].stack_t);
      /* the stack was re-encoded by ingest.c from validated frames: valid JSON to embed */
      jbuf_key(out, "stack", 1); jbuf_puts(out, b[i].stack ? b[i].stack : "[]");
      jbuf_putc(out, '}');
    }
    jbuf_putc(out, ']');
    if(pg->given) {
      jbuf_key(out, "total", 1);
      jbuf_i64(out, (int64_t)n);
    }
    jbuf_putc(out, '}');
  }
  free(b);
  free(order);
  return rc;
}

int query_blocks(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  query_page pg;
  if(query_page_parse(a, QUERY_PAGE_BLOCKS, &pg, detail, dlen))
    return LS_EINVAL;
  return query_in_session(s, id, out, &pg, detail, dlen, blocks_body);
}

static int lag_body(const session_query *q)
{
  jbuf *out = q->out;
  store_step *l = NULL;
  size_t n = 0;
  int64_t *d = NULL, *t = NULL;
  stats_lag sum;
  lag_causes lc = {0};
  int rc = store_load_lag(q->r, q->x->sid, &l, &n);
  if(!rc && (!(d = malloc((n ? n : 1) * sizeof(*d))) || !(t = malloc((n ? n : 1) * sizeof(*t)))))
    rc = LS_ENOMEM;
  if(!rc) {
    for(size_t i = 0; i < n; i++) {
      t[i] = l[i].t;
      d[i] = l[i].d;
    }
    rc = lag_causes_load(q->r, q->x->sid, q->ar, t, d, n, &lc);
  }
  if(!rc)
    rc = stats_lag_summary(d, n, &sum);
  if(!rc) {
    jbuf_puts(out, "{\"summary\":");
    lag_json(out, &sum);
    jbuf_puts(out, ",\"samples\":[");
    for(size_t i = 0; i < n; i++) {
      jbuf_puts(out, i ? ",{\"t\":" : "{\"t\":");
      jbuf_i64(out, l[i].t);
      jbuf_puts(out, ",\"d\":");
      jbuf_i64(out, l[i].d);
      lag_causes_json(out, &lc, i);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "]}");
  }
  lag_causes_free(&lc);
  free(l);
  free(t);
  free(d);
  return rc;
}

int query_lag(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  (void)a;
  return query_in_session(s, id, out, NULL, detail, dlen, lag_body);
}

static int concurrency_body(const session_query *q)
{
  jbuf *out = q->out;
  stats_interval *iv = NULL;
  size_t n = 0, np = 0;
  stats_point *pts = NULL;
  int64_t maxc = 0;
  /* px: a chart's envelope, from the stored mipmap of an ended large session, else reduced
   * from the whole series */
  int rc = q->in ? store_series_concurrency(q->r, q->x, query_duration_of(q->x), *(const int64_t *)q->in, &pts, &np, &maxc)
                 : LS_ENOTFOUND;
  if(rc == LS_ENOTFOUND) {
    rc = store_load_intervals(q->r, q->x->sid, &iv, &n);
    if(!rc)
      rc = stats_concurrency_series(iv, n, query_duration_of(q->x), &pts, &np, &maxc);
    if(!rc && q->in)
      np = stats_series_envelope(pts, np, query_duration_of(q->x), *(const int64_t *)q->in);
  }
  if(!rc) {
    jbuf_puts(out, "{\"max\":");
    jbuf_i64(out, maxc);
    jbuf_puts(out, ",\"series\":[");
    for(size_t i = 0; i < np; i++) {
      jbuf_puts(out, i ? ",{\"t\":" : "{\"t\":");
      jbuf_i64(out, pts[i].t);
      jbuf_puts(out, ",\"n\":");
      jbuf_i64(out, pts[i].n);
      jbuf_putc(out, '}');
    }
    jbuf_puts(out, "]}");
  }
  free(iv);
  free(pts);
  return rc;
}

int query_concurrency(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  int64_t px = 0;
  const char *v = query_arg(a, "px");
  if(v && query_parse_i64(v, 1, 10000, &px))
    return query_invalid(detail, dlen, "px: expected an integer in [1, 10000]");
  return query_in_session(s, id, out, v ? &px : NULL, detail, dlen, concurrency_body);
}
