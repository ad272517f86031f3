/* query_compare.c — GET /api/v1/compare?a=&b= (query.h): both sessions' tasks, await points,
 * blocks and lag from the store → compare.c's differences → the JSON of docs/api.md. */
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "ingest.h"
#include "query.h"

/* What one side needs, its strings in the query's arena. */
typedef struct side {
  store_session x;
  cmp_task *tasks;
  size_t ntasks;
  cmp_point *pts[2]; /* await points, blocks */
  size_t npts[2], cap[2];
  arena *ar;
  int which;         /* the list store_point rows go to: 0 awaits, 1 blocks */
} side;

static int on_point(void *ctx, const store_point *p)
{
  side *s = ctx;
  if(p->sid != s->x.sid)
    return 0;
  int k = s->which;
  if(s->npts[k] == s->cap[k]) {
    size_t cap = s->cap[k] ? 2 * s->cap[k] : 64;
    cmp_point *v = realloc(s->pts[k], cap * sizeof(*v));
    if(!v)
      return LS_ENOMEM;
    s->pts[k] = v;
    s->cap[k] = cap;
  }
  cmp_point *x = &s->pts[k][s->npts[k]++];
  x->file = p->file ? arena_strndup(s->ar, p->file, strlen(p->file)) : NULL;
  x->func = p->func ? arena_strndup(s->ar, p->func, strlen(p->func)) : NULL;
  x->what = p->what ? arena_strndup(s->ar, p->what, strlen(p->what)) : NULL;
  x->line = p->line;
  x->n = p->n;
  x->total = p->total;
  return s->ar->failed ? LS_ENOMEM : 0;
}

static int load_side(store_reader *r, const char *id, side *s)
{
  int rc = store_find_session(r, id, s->ar, &s->x);
  store_task *t = NULL;
  size_t n = 0;
  if(!rc)
    rc = store_load_tasks(r, s->x.sid, s->ar, &t, &n);
  if(!rc && !(s->tasks = malloc((n ? n : 1) * sizeof(*s->tasks))))
    rc = LS_ENOMEM;
  for(size_t i = 0; !rc && i < n; i++)
    s->tasks[i] = (cmp_task){t[i].id, t[i].parent, t[i].created >= 0 ? t[i].created : 0, t[i].ended, t[i].coro};
  s->ntasks = rc ? 0 : n;
  free(t);
  s->which = 0;
  if(!rc)
    rc = store_await_points(r, &s->x.sid, 1, on_point, s);
  s->which = 1;
  if(!rc)
    rc = store_block_points(r, &s->x.sid, 1, 0, on_point, s); /* own and from elsewhere: both cost it time */
  return rc;
}

static void side_json(jbuf *o, const side *s)
{
  const store_session *x = &s->x;
  jbuf_key(o, "id", 0); jbuf_str(o, x->id);
  jbuf_key(o, "name", 1); jbuf_str(o, x->name);
  jbuf_key(o, "route", 1); jbuf_str(o, x->route);
  jbuf_key(o, "service", 1); jbuf_str(o, x->service);
  jbuf_key(o, "duration_ns", 1); jbuf_i64(o, x->ended ? x->end_t : x->max_t);
  jbuf_key(o, "ended", 1); jbuf_puts(o, x->ended ? "true" : "false");
  jbuf_key(o, "tasks", 1); jbuf_i64(o, (int64_t)s->ntasks);
  jbuf_key(o, "awaits", 1); jbuf_i64(o, x->n_awaits);
  jbuf_key(o, "blocks", 1); jbuf_i64(o, x->n_blocks);
  jbuf_key(o, "lag_max_ms", 1); jbuf_f64(o, (double)x->max_d[INGEST_LAG] / 1e6, 6);
}

static const char *const kind_name[] = {"task", "await", "block", "lag"};

static void diff_json(jbuf *o, const cmp_diff *d)
{
  jbuf_key(o, "kind", 0); jbuf_str(o, kind_name[d->kind]);
  jbuf_key(o, "path", 1); jbuf_str(o, d->path);
  jbuf_key(o, "file", 1); jbuf_str(o, d->file);
  jbuf_key(o, "line", 1);
  if(d->line >= 0)
    jbuf_i64(o, d->line);
  else
    jbuf_puts(o, "null");
  jbuf_key(o, "func", 1); jbuf_str(o, d->func);
  jbuf_key(o, "what", 1); jbuf_str(o, d->what);
  jbuf_key(o, "a_count", 1); jbuf_i64(o, d->a_count);
  jbuf_key(o, "b_count", 1); jbuf_i64(o, d->b_count);
  jbuf_key(o, "a_ns", 1); jbuf_i64(o, d->a_ns);
  jbuf_key(o, "b_ns", 1); jbuf_i64(o, d->b_ns);
  jbuf_key(o, "delta_ns", 1); jbuf_i64(o, d->delta);
}

int query_compare(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  (void)id;
  const char *ids[2] = {query_arg(a, "a"), query_arg(a, "b")};
  for(int k = 0; k < 2; k++)
    if(!ids[k] || !ingest_id_ok(ids[k]))
      return query_invalid(detail, dlen, k ? "b: expected a session id" : "a: expected a session id");
  int64_t limit = 100;
  const char *v = query_arg(a, "limit");
  if(v && query_parse_i64(v, 1, 10000, &limit))
    return query_invalid(detail, dlen, "limit: expected an integer in [1, 10000]");
  arena ar;
  arena_init(&ar);
  side sd[2];
  memset(sd, 0, sizeof(sd));
  store_reader *r = store_reader_acquire(s);
  int rc = 0;
  for(int k = 0; k < 2 && !rc; k++) {
    sd[k].ar = &ar;
    rc = load_side(r, ids[k], &sd[k]);
  }
  store_reader_release(s, r);
  cmp_diff *d = NULL;
  size_t nd = 0;
  if(!rc) {
    cmp_side cs[2];
    for(int k = 0; k < 2; k++)
      cs[k] = (cmp_side){.duration = sd[k].x.ended ? sd[k].x.end_t : sd[k].x.max_t,
                         .tasks = sd[k].tasks, .ntasks = sd[k].ntasks,
                         .awaits = sd[k].pts[0], .nawaits = sd[k].npts[0],
                         .blocks = sd[k].pts[1], .nblocks = sd[k].npts[1],
                         .lag_samples = sd[k].x.n_lag, .lag_max = sd[k].x.max_d[INGEST_LAG]};
    rc = cmp_diffs(&cs[0], &cs[1], &ar, &d, &nd);
    if(!rc) {
      jbuf_puts(out, "{\"a\":{");
      side_json(out, &sd[0]);
      jbuf_puts(out, "},\"b\":{");
      side_json(out, &sd[1]);
      jbuf_puts(out, "},\"delta_ns\":");
      jbuf_i64(out, cs[1].duration - cs[0].duration);
      jbuf_key(out, "total", 1); jbuf_i64(out, (int64_t)nd);
      jbuf_key(out, "differences", 1);
      jbuf_putc(out, '[');
      for(size_t i = 0; i < nd && (int64_t)i < limit; i++) {
        jbuf_puts(out, i ? ",{" : "{");
        diff_json(out, &d[i]);
        jbuf_putc(out, '}');
      }
      jbuf_puts(out, "]}");
    }
  }
  free(d);
  for(int k = 0; k < 2; k++) {
    free(sd[k].tasks);
    free(sd[k].pts[0]);
    free(sd[k].pts[1]);
  }
  arena_free(&ar);
  return rc ? rc : jbuf_status(out);
}
