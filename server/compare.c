/* compare.c — what differs between two sessions (compare.h): task paths counted on each side,
 * await points and blocks merged by file:line, the lag, each difference scored by how much it
 * explains the difference in duration. Pure; the task tree's shape is stats.c's. */
#include "compare.h"

#include <stdlib.h>
#include <string.h>

#include "stats.h"

#define PATH_DEPTH_MAX 32 /* segments of a path written out; deeper ancestors become "…" */

static int str_cmp(const char *a, const char *b)
{
  if(!a || !b)
    return (a != NULL) - (b != NULL);
  return strcmp(a, b);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
  for(; s && *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return (h ^ 0x1ff) * 1099511628211u; /* a separator: ("ab", "c") and ("a", "bc") differ */
}

/* One side's tasks as paths: phash[i] identifies the coroutines from the root down to task i,
 * parent[i] is the index of its (effective) parent or SIZE_MAX for a root. */
typedef struct side_paths { uint64_t *phash; size_t *parent; } side_paths;

static int paths_of(const cmp_side *s, side_paths *p)
{
  size_t n = s->ntasks;
  p->phash = malloc((n ? n : 1) * sizeof(*p->phash));
  p->parent = malloc((n ? n : 1) * sizeof(*p->parent));
  stats_task *t = malloc((n ? n : 1) * sizeof(*t));
  size_t *order = malloc((n ? n : 1) * sizeof(*order));
  size_t *at_depth = malloc((n ? n : 1) * sizeof(*at_depth)); /* the last task seen per depth */
  int rc = LS_ENOMEM;
  if(!p->phash || !p->parent || !t || !order || !at_depth)
    goto out;
  for(size_t i = 0; i < n; i++)
    t[i] = (stats_task){.id = s->tasks[i].id, .parent = s->tasks[i].parent, .created = s->tasks[i].created};
  if((rc = stats_task_tree(t, n, order)))
    goto out;
  /* preorder: a task's parent is the last task met one level up */
  for(size_t k = 0; k < n; k++) {
    size_t i = order[k];
    int32_t d = t[i].depth;
    p->parent[i] = d > 0 ? at_depth[d - 1] : SIZE_MAX;
    uint64_t h = d > 0 ? p->phash[p->parent[i]] : 1469598103934665603u;
    p->phash[i] = hash_str(h, s->tasks[i].coro);
    at_depth[d] = i;
  }
out:
  free(t);
  free(order);
  free(at_depth);
  return rc;
}

/* "root > ... > coro" of task i into ar; the outermost segments beyond PATH_DEPTH_MAX are "…". */
static const char *path_text(const cmp_side *s, const side_paths *p, size_t i, arena *ar)
{
  const char *seg[PATH_DEPTH_MAX];
  size_t k = 0, len = 0;
  int cut = 0;
  for(size_t j = i; j != SIZE_MAX; j = p->parent[j]) {
    if(k == PATH_DEPTH_MAX) {
      cut = 1;
      break;
    }
    seg[k] = s->tasks[j].coro ? s->tasks[j].coro : "?";
    len += strlen(seg[k++]) + 3;
  }
  char *out = arena_alloc(ar, len + 8);
  if(!out)
    return NULL;
  size_t w = 0;
  if(cut) {
    memcpy(out, "\xe2\x80\xa6 > ", 6);
    w = 6;
  }
  while(k) {
    size_t m = strlen(seg[--k]);
    memcpy(out + w, seg[k], m);
    w += m;
    if(k) {
      memcpy(out + w, " > ", 3);
      w += 3;
    }
  }
  out[w] = '\0';
  return out;
}

/* A growable list of differences. */
typedef struct diffs { cmp_diff *v; size_t n, cap; } diffs;

static cmp_diff *push(diffs *d)
{
  if(d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 64;
    cmp_diff *v = realloc(d->v, cap * sizeof(*v));
    if(!v)
      return NULL;
    d->v = v;
    d->cap = cap;
  }
  cmp_diff *x = &d->v[d->n++];
  memset(x, 0, sizeof(*x));
  x->line = -1;
  return x;
}

typedef struct tref { uint64_t h; int side; size_t i; int64_t life; } tref;

static int tref_cmp(const void *pa, const void *pb)
{
  const tref *a = pa, *b = pb;
  if(a->h != b->h)
    return a->h < b->h ? -1 : 1;
  if(a->side != b->side)
    return a->side - b->side;
  return (a->i > b->i) - (a->i < b->i);
}

static int64_t lifetime(const cmp_side *s, size_t i)
{
  const cmp_task *t = &s->tasks[i];
  int64_t end = t->ended >= 0 ? t->ended : s->duration;
  return end > t->created ? end - t->created : 0;
}

/* Task paths whose number of tasks differs between the sides. */
static int task_diffs(const cmp_side *side[2], diffs *d, arena *ar)
{
  side_paths p[2] = {{0}};
  size_t n = side[0]->ntasks + side[1]->ntasks;
  tref *v = malloc((n ? n : 1) * sizeof(*v));
  int rc = v ? 0 : LS_ENOMEM;
  for(int s = 0; s < 2 && !rc; s++)
    rc = paths_of(side[s], &p[s]);
  if(!rc) {
    size_t k = 0;
    for(int s = 0; s < 2; s++)
      for(size_t i = 0; i < side[s]->ntasks; i++)
        v[k++] = (tref){p[s].phash[i], s, i, lifetime(side[s], i)};
    if(n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
      qsort(v, n, sizeof(*v), tref_cmp);
  }
  for(size_t i = 0; i < n && !rc;) {
    int64_t count[2] = {0, 0}, ns[2] = {0, 0};
    size_t j = i;
    for(; j < n && v[j].h == v[i].h; j++) {
      count[v[j].side]++;
      ns[v[j].side] += v[j].life;
    }
    if(count[0] != count[1]) {
      const tref *rep = &v[count[0] > count[1] ? i : j - 1]; /* a task of the side with more */
      cmp_diff *x = push(d);
      const char *path = x ? path_text(side[rep->side], &p[rep->side], rep->i, ar) : NULL;
      if(!path) {
        rc = LS_ENOMEM;
        break;
      }
      x->kind = CMP_TASK;
      x->what = side[rep->side]->tasks[rep->i].coro;
      x->path = path;
      x->a_count = count[0];
      x->b_count = count[1];
      x->a_ns = ns[0];
      x->b_ns = ns[1];
    }
    i = j;
  }
  for(int s = 0; s < 2; s++) {
    free(p[s].phash);
    free(p[s].parent);
  }
  free(v);
  return rc;
}

typedef struct pref { const cmp_point *p; int side; } pref;

static int pref_cmp(const void *pa, const void *pb)
{
  const pref *a = pa, *b = pb;
  int c = str_cmp(a->p->file, b->p->file);
  if(!c)
    c = (a->p->line > b->p->line) - (a->p->line < b->p->line);
  return c ? c : a->side - b->side;
}

/* Points (await points or blocks) merged by file:line; those whose count or time differ. */
static int point_diffs(int kind, const cmp_point *pa, size_t na, const cmp_point *pb, size_t nb, diffs *d)
{
  size_t n = na + nb;
  pref *v = malloc((n ? n : 1) * sizeof(*v));
  if(!v)
    return LS_ENOMEM;
  for(size_t i = 0; i < na; i++)
    v[i] = (pref){&pa[i], 0};
  for(size_t i = 0; i < nb; i++)
    v[na + i] = (pref){&pb[i], 1};
  if(n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(v, n, sizeof(*v), pref_cmp);
  int rc = 0;
  for(size_t i = 0; i < n;) {
    int64_t count[2] = {0, 0}, ns[2] = {0, 0};
    size_t j = i;
    for(; j < n && !str_cmp(v[j].p->file, v[i].p->file) && v[j].p->line == v[i].p->line; j++) {
      count[v[j].side] += v[j].p->n;
      ns[v[j].side] += v[j].p->total;
    }
    if(count[0] != count[1] || ns[0] != ns[1]) {
      cmp_diff *x = push(d);
      if(!x) {
        rc = LS_ENOMEM;
        break;
      }
      x->kind = kind;
      x->file = v[i].p->file;
      x->line = v[i].p->line;
      x->func = v[i].p->func;
      x->what = v[i].p->what;
      x->a_count = count[0];
      x->b_count = count[1];
      x->a_ns = ns[0];
      x->b_ns = ns[1];
    }
    i = j;
  }
  free(v);
  return rc;
}

/* Sorts by delta descending: cmp_diffs turns the deltas so that growth towards the slower side
 * is positive while it sorts (qsort takes no context argument in C11). */
static int diff_cmp(const void *pa, const void *pb)
{
  const cmp_diff *a = pa, *b = pb;
  if(a->delta != b->delta)
    return a->delta > b->delta ? -1 : 1;
  if(a->kind != b->kind)
    return a->kind - b->kind;
  int c = a->kind == CMP_TASK ? str_cmp(a->path, b->path) : str_cmp(a->file, b->file);
  return c ? c : (a->line > b->line) - (a->line < b->line);
}

int cmp_diffs(const cmp_side *a, const cmp_side *b, arena *ar, cmp_diff **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  const cmp_side *side[2] = {a, b};
  diffs d = {0};
  int rc = task_diffs(side, &d, ar);
  if(!rc)
    rc = point_diffs(CMP_AWAIT, a->awaits, a->nawaits, b->awaits, b->nawaits, &d);
  if(!rc)
    rc = point_diffs(CMP_BLOCK, a->blocks, a->nblocks, b->blocks, b->nblocks, &d);
  if(!rc && (a->lag_max != b->lag_max || a->lag_samples != b->lag_samples)) {
    cmp_diff *x = push(&d);
    if(!x)
      rc = LS_ENOMEM;
    else
      *x = (cmp_diff){.kind = CMP_LAG, .line = -1, .a_count = a->lag_samples, .b_count = b->lag_samples,
                      .a_ns = a->lag_max, .b_ns = b->lag_max};
  }
  if(rc) {
    free(d.v);
    return rc;
  }
  int64_t sign = b->duration >= a->duration ? 1 : -1;
  for(size_t i = 0; i < d.n; i++)
    d.v[i].delta = (d.v[i].b_ns - d.v[i].a_ns) * sign;
  if(d.n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(d.v, d.n, sizeof(*d.v), diff_cmp);
  for(size_t i = 0; i < d.n; i++)
    d.v[i].delta *= sign;
  *out = d.v;
  *n = d.n;
  return 0;
}
