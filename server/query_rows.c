/* query_rows.c — GET /api/v1/sessions/{id}/rows (query.h): a window of the task tree as lanes, in
 * tree order, with the subtrees of collapsed tasks counted out, and where one task's row is. The
 * stored tree and its reads are store_rows.c's; the parameters and the arithmetic of hidden rows
 * are here. Cost: one indexed lookup per collapsed id and one range scan per hidden gap in the
 * window, whatever the session's size. */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "query_internal.h"
#include "store_rows.h"

#define ROWS_LIMIT_MAX 2000
#define ROWS_LIMIT_DEFAULT 200

/* A collapsed task that hides rows: its position and subtree size. */
typedef struct fold { int64_t pos, size, id; } fold;

static int cmp_id(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int cmp_fold(const void *a, const void *b)
{
  int64_t x = ((const fold *)a)->pos, y = ((const fold *)b)->pos;
  return (x > y) - (x < y);
}

typedef struct rows_in {
  int64_t offset, limit, find; /* offset -1: not given; find -1: none */
  int64_t *collapsed;
  size_t ncollapsed;
  /* the view whose items come with the rows (px 0: none asked), as /timeline takes it, and the
   * rows [lanes_offset, lanes_offset + lanes_limit) they are for (-1: every row answered) */
  int64_t from, to, px, lanes_offset, lanes_limit;
  int lanes_only; /* only=lanes: those items without blocks and lag, as /timeline?only=lanes */
} rows_in;

/* What a request asks, read before the session is looked up. */
static int parse_rows(const query_args *a, rows_in *in, char *detail, size_t dlen)
{
  memset(in, 0, sizeof(*in));
  in->offset = -1;
  in->limit = ROWS_LIMIT_DEFAULT;
  in->find = -1;
  in->to = -1;
  in->lanes_offset = in->lanes_limit = -1;
  const char *v;
  if((v = query_arg(a, "px")) && query_parse_i64(v, 1, 10000, &in->px))
    return query_invalid(detail, dlen, "px: expected an integer in [1, 10000]");
  if((v = query_arg(a, "from")) && query_parse_i64(v, 0, TWO_POW_53 - 1, &in->from))
    return query_invalid(detail, dlen, "from: expected an integer in [0, 2^53)");
  if((v = query_arg(a, "to")) && query_parse_i64(v, 0, TWO_POW_53, &in->to))
    return query_invalid(detail, dlen, "to: expected an integer in [0, 2^53]");
  if(in->to >= 0 && in->to <= in->from)
    return query_invalid(detail, dlen, "to: must be greater than from");
  if((v = query_arg(a, "only")) && query_parse_only(v, &in->lanes_only))
    return query_invalid(detail, dlen, "only: expected lanes");
  if((v = query_arg(a, "lanes_offset")) && query_parse_i64(v, 0, TWO_POW_53 - 1, &in->lanes_offset))
    return query_invalid(detail, dlen, "lanes_offset: expected an integer in [0, 2^53)");
  if((v = query_arg(a, "lanes_limit")) && query_parse_i64(v, 0, ROWS_LIMIT_MAX, &in->lanes_limit))
    return query_invalid(detail, dlen, "lanes_limit: expected an integer in [0, 2000]");
  if((v = query_arg(a, "offset")) && query_parse_i64(v, 0, TWO_POW_53 - 1, &in->offset))
    return query_invalid(detail, dlen, "offset: expected an integer in [0, 2^53)");
  if((v = query_arg(a, "limit")) && query_parse_i64(v, 0, ROWS_LIMIT_MAX, &in->limit))
    return query_invalid(detail, dlen, "limit: expected an integer in [0, 2000]");
  if((v = query_arg(a, "find")) && query_parse_i64(v, 1, TWO_POW_53 - 1, &in->find))
    return query_invalid(detail, dlen, "find: expected a task id");
  if((v = query_arg(a, "collapsed")) && *v) {
    int rc = query_parse_ids(v, &in->collapsed, &in->ncollapsed);
    if(rc == LS_EINVAL)
      return query_invalid(detail, dlen, "collapsed: expected at most 2000 comma-separated task ids");
    return rc;
  }
  return 0;
}

static int is_collapsed(const rows_in *in, int64_t id)
{
  size_t lo = 0, hi = in->ncollapsed;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(in->collapsed[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < in->ncollapsed && in->collapsed[lo] == id;
}

static void opt(jbuf *o, int64_t v)
{
  if(v >= 0)
    jbuf_i64(o, v);
  else
    jbuf_puts(o, "null");
}

static void row_json(jbuf *o, const store_row *x, int64_t row, int collapsed)
{
  jbuf_puts(o, "{\"row\":");
  jbuf_i64(o, row);
  jbuf_key(o, "id", 1); jbuf_i64(o, x->id);
  jbuf_key(o, "name", 1); jbuf_str(o, x->name);
  jbuf_key(o, "coro", 1); jbuf_str(o, x->coro);
  jbuf_key(o, "parent", 1); jbuf_i64(o, x->parent);
  jbuf_key(o, "depth", 1); jbuf_i64(o, x->depth);
  jbuf_key(o, "children", 1); jbuf_i64(o, x->children);
  jbuf_key(o, "size", 1); jbuf_i64(o, x->size);
  jbuf_key(o, "collapsed", 1); jbuf_puts(o, collapsed ? "true" : "false");
  jbuf_key(o, "created", 1); opt(o, x->created);
  jbuf_key(o, "first_run", 1); opt(o, x->first_run);
  jbuf_key(o, "ended", 1); opt(o, x->ended);
  jbuf_key(o, "state", 1); jbuf_str(o, x->state);
  jbuf_key(o, "exc", 1); jbuf_str(o, x->exc);
  jbuf_key(o, "status", 1); opt(o, x->status);
  jbuf_key(o, "busy_ns", 1); jbuf_i64(o, x->busy_ns);
  jbuf_key(o, "wait_ns", 1); jbuf_i64(o, x->wait_ns);
  jbuf_putc(o, '}');
}

/* The collapsed tasks that hide rows (children), by position; *nout of them are outermost (not
 * inside another's subtree) and come first, in order: those alone decide what is hidden. The
 * rest (nested ones) follow, for telling which collapsed ancestors hide a task. */
static int load_folds(store_reader *r, int64_t sid, const store_tree *mem, const rows_in *in, fold **out, size_t *n,
                      size_t *nout)
{
  *out = NULL;
  *n = *nout = 0;
  size_t m = in->ncollapsed ? in->ncollapsed : 1;
  fold *f = malloc(m * sizeof(*f));
  store_row *x = malloc(m * sizeof(*x));
  int rc = f && x ? store_rows_find_many(r, sid, mem, in->collapsed, in->ncollapsed, x) : LS_ENOMEM;
  if(rc) {
    free(f);
    free(x);
    return rc;
  }
  size_t k = 0;
  /* an id not in the tree (id 0 here) hides nothing, nor does a task without children */
  for(size_t i = 0; i < in->ncollapsed; i++)
    if(x[i].id && x[i].size > 1)
      f[k++] = (fold){x[i].pos, x[i].size, x[i].id};
  free(x);
  qsort(f, k, sizeof(*f), cmp_fold);
  /* outermost first: keep those starting past the last kept subtree, move the others behind */
  fold *nested = malloc((k ? k : 1) * sizeof(*nested));
  if(!nested) {
    free(f);
    return LS_ENOMEM;
  }
  size_t no = 0, nn = 0;
  int64_t end = -1;
  for(size_t i = 0; i < k; i++) {
    if(f[i].pos >= end) {
      f[no++] = f[i];
      end = f[i].pos + f[i].size;
    } else
      nested[nn++] = f[i];
  }
  memcpy(f + no, nested, nn * sizeof(*nested));
  free(nested);
  *out = f;
  *n = k;
  *nout = no;
  return 0;
}

typedef struct found {
  int ok;                   /* the task is in the tree */
  store_row x;
  int64_t row;              /* -1: hidden */
} found;

/* "found": where task in->find is (its row, or null and the collapsed ancestors hiding it). */
static void found_json(jbuf *o, const found *f, const fold *fo, size_t nf)
{
  jbuf_key(o, "found", 1);
  if(!f->ok) {
    jbuf_puts(o, "null");
    return;
  }
  jbuf_puts(o, "{\"id\":");
  jbuf_i64(o, f->x.id);
  jbuf_key(o, "row", 1); opt(o, f->row);
  jbuf_key(o, "parent", 1); jbuf_i64(o, f->x.parent);
  jbuf_key(o, "depth", 1); jbuf_i64(o, f->x.depth);
  jbuf_key(o, "hidden_by", 1); jbuf_putc(o, '[');
  int first = 1;
  for(size_t i = 0; i < nf; i++) {
    if(fo[i].pos < f->x.pos && f->x.pos < fo[i].pos + fo[i].size) {
      if(!first)
        jbuf_putc(o, ',');
      jbuf_i64(o, fo[i].id);
      first = 0;
    }
  }
  jbuf_puts(o, "]}");
}

/* The items of the answered rows in lanes_offset.. (as /timeline answers for their task ids):
 * the page's scroll step is then one round trip, not /rows and then /timeline. */
static int rows_timeline(store_reader *r, arena *ar, const store_session *x, const rows_in *in, int64_t offset,
                         const store_row *rows, size_t got, jbuf *out)
{
  int64_t lo = in->lanes_offset < 0 ? offset : in->lanes_offset;
  int64_t hi = in->lanes_limit < 0 ? offset + (int64_t)got : lo + in->lanes_limit;
  int64_t *ids = malloc((got ? got : 1) * sizeof(*ids));
  if(!ids)
    return LS_ENOMEM;
  size_t n = 0;
  for(size_t i = 0; i < got; i++)
    if(offset + (int64_t)i >= lo && offset + (int64_t)i < hi)
      ids[n++] = rows[i].id;
  qsort(ids, n, sizeof(*ids), cmp_id);
  if(n == 0) /* no lanes: an id no task has, since no ids at all would mean every task's lane */
    ids[n++] = -1;
  char detail[8];
  jbuf_key(out, "timeline", 1);
  int rc = query_timeline_on(r, ar, x, in->from, in->to, in->px, ids, n, in->lanes_only, out, detail,
                             sizeof(detail));
  free(ids);
  return rc;
}

static int rows_window(store_reader *r, arena *sar, const store_session *x, const rows_in *in, jbuf *out)
{
  int64_t sid = x->sid;
  int64_t asked = in->offset; /* -1: none, centred on `find` below */
  int built = 0;
  int64_t n = 0;
  store_tree *mem = NULL; /* the tree when it could not be stored */
  int rc = store_rows_ensure(r, sid, STORE_TREE_MEM_MAX, &built, &n, &mem);
  fold *fo = NULL;
  size_t nf = 0, no = 0;
  if(!rc)
    rc = load_folds(r, sid, mem, in, &fo, &nf, &no);
  if(rc) {
    store_tree_free(mem);
    return rc;
  }
  int64_t hidden = 0;
  for(size_t i = 0; i < no; i++)
    hidden += fo[i].size - 1;
  int64_t total = n - hidden;

  found f = {0};
  f.row = -1;
  if(in->find > 0) {
    rc = store_rows_find(r, sid, mem, in->find, &f.x);
    f.ok = !rc;
    if(rc == LS_ENOTFOUND)
      rc = 0;
    if(f.ok) {
      int64_t before = 0;
      int shown = 1;
      for(size_t i = 0; i < no; i++) {
        if(fo[i].pos < f.x.pos && f.x.pos < fo[i].pos + fo[i].size)
          shown = 0;
        else if(fo[i].pos + fo[i].size <= f.x.pos)
          before += fo[i].size - 1;
      }
      f.row = shown ? f.x.pos - before : -1;
      if(asked < 0 && f.row >= 0)
        asked = f.row > in->limit / 2 ? f.row - in->limit / 2 : 0;
    }
  }
  int64_t offset = asked < 0 ? 0 : asked;

  /* the window's first position: each outermost fold before it moves it past what it hides */
  int64_t pos = offset;
  size_t j = 0;
  while(j < no && fo[j].pos < pos) {
    pos += fo[j].size - 1;
    j++;
  }
  store_row *rows = malloc((in->limit ? (size_t)in->limit : 1) * sizeof(*rows));
  arena ar;
  arena_init(&ar);
  size_t got = 0;
  if(!rows)
    rc = LS_ENOMEM;
  /* a range scan up to and including the next fold's own row, then on past its subtree */
  while(!rc && got < (size_t)in->limit && pos < n && offset < total) {
    int64_t end = j < no ? fo[j].pos + 1 : n;
    size_t k = 0;
    rc = store_rows_scan(r, sid, mem, pos, end, (size_t)in->limit - got, &ar, rows + got, &k);
    got += k;
    if(j >= no || k == 0)
      break;
    pos = fo[j].pos + fo[j].size;
    j++;
  }
  if(!rc) {
    jbuf_grow(out, got * 320 + 256);
    jbuf_puts(out, "{\"total\":");
    jbuf_i64(out, total);
    jbuf_key(out, "tasks", 1); jbuf_i64(out, n);
    jbuf_key(out, "offset", 1); jbuf_i64(out, offset);
    jbuf_key(out, "rows", 1); jbuf_putc(out, '[');
    for(size_t i = 0; i < got; i++) {
      if(i)
        jbuf_putc(out, ',');
      row_json(out, &rows[i], offset + (int64_t)i, rows[i].children > 0 && is_collapsed(in, rows[i].id));
    }
    jbuf_putc(out, ']');
    if(in->find > 0)
      found_json(out, &f, fo, nf);
    if(in->px > 0)
      rc = rows_timeline(r, sar, x, in, offset, rows, got, out);
    jbuf_putc(out, '}');
  }
  arena_free(&ar);
  free(rows);
  free(fo);
  store_tree_free(mem);
  return rc;
}

static int rows_body(const session_query *q)
{
  return rows_window(q->r, q->ar, q->x, q->in, q->out);
}

int query_rows(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen)
{
  rows_in in;
  int rc = parse_rows(a, &in, detail, dlen);
  if(rc)
    return rc;
  rc = query_in_session(s, id, out, &in, detail, dlen, rows_body);
  free(in.collapsed);
  return rc;
}

int query_rows_must_build(store *s, const char *id)
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int must = store_find_session(r, id, &ar, &x) == 0 && !store_rows_current(r, x.sid);
  arena_free(&ar);
  store_reader_release(s, r);
  return must;
}
