/* store_rows_add.c — the stored task tree (store_rows.c) extended by the tasks that arrived since
 * it was built (schema task_rows_add, 009), so that a live session's next /rows does not order a
 * million tasks again for a batch of new ones (issue 14). Each request places the appended tasks
 * in the stored order and reads through that placement; what does not fit is sent back to a
 * rebuild. The window arithmetic stays query_rows.c's. Part of the store module.
 *
 * Placement. In depth-first order with siblings by (created, id), a task whose parent P is stored
 * and which sorts after P's stored children goes right after P's stored subtree: before stored
 * position ip = pos(P) + size(P) (a root after every stored root: ip = N). Appended tasks under
 * appended parents follow those parents. At one ip the deeper parent's tasks come first (its
 * subtree ends inside the shallower one's). So the appended tasks, ordered by (ip, parent depth
 * descending) and depth first below that, take virtual positions vpos = ip + their index in that
 * order, and a stored row at p moves to p + (appended tasks with ip <= p); the stored ancestors of
 * each attach point grow by what hangs below it. Everything else (a task sorting before a stored
 * sibling, a stored orphan's parent arriving, a loop, too many) is a rebuild. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store_internal.h"

/* Appended tasks placed at most (the placement costs a few indexed lookups each, 0.04-0.3 ms on
 * the loaded development machine, made again whenever a task arrives; a connection keeps its
 * last one for the next /rows): beyond it the tree is rebuilt, which empties task_rows_add. */
#define ADD_MAX 5000

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
  if(sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
    return 0;
  log_msg(LOG_WARN, "store: appended task rows: %s", sqlite3_errmsg(db));
  sqlite3_finalize(*st);
  *st = NULL;
  return LS_EIO;
}

static int done_code(sqlite3 *db, int src)
{
  if(src == SQLITE_ROW || src == SQLITE_DONE)
    return 0;
  log_msg(LOG_WARN, "store: appended task rows: %s", sqlite3_errmsg(db));
  return store_code_of(src) ? store_code_of(src) : LS_EIO;
}

/* One integer from a query with ?1 = sid (0 when it has no row). */
static int one_int(sqlite3 *db, const char *sql, int64_t sid, int64_t *out)
{
  sqlite3_stmt *st = NULL;
  *out = 0;
  int rc = prep(db, sql, &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  int src = sqlite3_step(st);
  if(src == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  rc = done_code(db, src);
  sqlite3_finalize(st);
  return rc;
}

/* The indexed lookups a placement makes (a few per appended task), prepared once for it. */
typedef struct lookups {
  sqlite3 *db;
  int64_t sid;
  sqlite3_stmt *by_id;   /* ?2 = task id: pos, parent, depth, children, size */
  sqlite3_stmt *at_pos;  /* ?2 = pos: id, parent, depth, children, size */
  sqlite3_stmt *created; /* ?2 = task id: created (-1: unknown) */
} lookups;

static int lookups_open(lookups *l, sqlite3 *db, int64_t sid)
{
  *l = (lookups){.db = db, .sid = sid};
  int rc = prep(db, "SELECT pos, parent, depth, children, size FROM task_rows INDEXED BY task_rows_id"
                    " WHERE sid = ?1 AND id = ?2", &l->by_id);
  if(!rc)
    rc = prep(db, "SELECT id, parent, depth, children, size FROM task_rows WHERE sid = ?1 AND pos = ?2", &l->at_pos);
  if(!rc)
    rc = prep(db, "SELECT coalesce(created, -1) FROM tasks WHERE sid = ?1 AND id = ?2", &l->created);
  return rc;
}

static void lookups_close(lookups *l)
{
  sqlite3_finalize(l->by_id);
  sqlite3_finalize(l->at_pos);
  sqlite3_finalize(l->created);
}

/* One row of st for key: its first n columns in v; *found 0 when there is none. */
static int look(lookups *l, sqlite3_stmt *st, int64_t key, int64_t *v, int n, int *found)
{
  sqlite3_bind_int64(st, 1, l->sid);
  sqlite3_bind_int64(st, 2, key);
  int src = sqlite3_step(st);
  *found = src == SQLITE_ROW;
  for(int i = 0; *found && i < n; i++)
    v[i] = sqlite3_column_int64(st, i);
  int rc = done_code(l->db, src);
  sqlite3_reset(st);
  return rc;
}

/* The stored row of task id (shape only; x->id 0 when it is not stored). */
static int row_of(lookups *l, int64_t id, store_row *x)
{
  int64_t v[5];
  int found = 0;
  int rc = look(l, l->by_id, id, v, 5, &found);
  *x = found ? (store_row){.pos = v[0], .id = id, .parent = v[1], .depth = v[2], .children = v[3], .size = v[4]}
             : (store_row){0};
  return rc;
}

int store_rows_added(sqlite3 *db, int64_t sid, int64_t *n)
{
  return one_int(db, "SELECT count(*) FROM task_rows_add WHERE sid = ?1", sid, n);
}

int store_rows_drop_added(sqlite3 *db, int64_t sid)
{
  sqlite3_stmt *st = NULL;
  int rc = prep(db, "DELETE FROM task_rows_add WHERE sid = ?1 AND id IN (SELECT id FROM task_rows INDEXED BY task_rows_id"
                    " WHERE sid = ?1 AND id = task_rows_add.id)", &st);
  if(!rc) {
    sqlite3_bind_int64(st, 1, sid);
    rc = done_code(db, sqlite3_step(st));
    sqlite3_finalize(st);
  }
  return rc;
}

/* An appended task while it is placed. */
typedef struct pend {
  int64_t id, parent, created;
  int64_t pa;      /* index of its appended parent, -1: none */
  int64_t group;   /* index of its attach point (stored parent, or the roots), -1: none */
  int64_t depth;
} pend;

/* Where appended tasks hang in the stored tree: a stored task (or the roots: id 0). */
typedef struct attach {
  int64_t id, pos, depth, size, ip;
  int64_t n, sub;  /* appended children, and tasks below it */
} attach;

static int cmp_key(int64_t c1, int64_t i1, int64_t c2, int64_t i2)
{
  return c1 != c2 ? (c1 > c2) - (c1 < c2) : (i1 > i2) - (i1 < i2);
}

/* An appended task's sibling key and index, for sorting them in sibling order (created, id). */
typedef struct keyed { int64_t created, id; size_t idx; } keyed;
static int cmp_keyed(const void *a, const void *b)
{
  const keyed *x = a, *y = b;
  return cmp_key(x->created, x->id, y->created, y->id);
}

static int cmp_pair(const void *a, const void *b)
{
  int64_t x = (*(const int64_t (*)[2])a)[0], y = (*(const int64_t (*)[2])b)[0];
  return (x > y) - (x < y);
}

static int cmp_attach(const void *a, const void *b)
{
  const attach *x = a, *y = b;
  if(x->ip != y->ip)
    return (x->ip > y->ip) - (x->ip < y->ip);
  return (x->depth < y->depth) - (x->depth > y->depth); /* deeper first */
}

static int cmp_delta(const void *a, const void *b)
{
  int64_t x = ((const store_delta *)a)->id, y = ((const store_delta *)b)->id;
  return (x > y) - (x < y);
}

static int64_t find_pair(int64_t (*v)[2], size_t n, int64_t id)
{
  size_t lo = 0, hi = n;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(v[mid][0] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && v[lo][0] == id ? v[lo][1] : -1;
}

/* The sibling key (created, id) of P's last stored child (the roots': id 0, depth -1), or none
 * (*has 0). Found from the last row of P's subtree, walking up to P's depth + 1. */
static int last_child_key(lookups *l, const attach *p, int64_t stored, int64_t key[2], int *has)
{
  *has = 0;
  int64_t last = p->id ? p->pos + p->size - 1 : stored - 1;
  if(last <= p->pos || last < 0)
    return 0;
  int64_t v[5] = {0, 0, 0, 0, 0};
  int ok = 0;
  int rc = look(l, l->at_pos, last, v, 5, &ok);
  store_row x = {.id = v[0], .parent = v[1], .depth = v[2]};
  for(int guard = 0; !rc && ok && x.depth > p->depth + 1 && guard < 100000; guard++) {
    rc = row_of(l, x.parent, &x);
    ok = x.id != 0;
  }
  if(rc || !ok || x.depth != p->depth + 1)
    return rc ? rc : LS_EIO;
  int64_t created = -1;
  rc = look(l, l->created, x.id, &created, 1, &ok);
  key[0] = created;
  key[1] = x.id;
  *has = !rc;
  return rc;
}

/* The appended tasks with their parent and created (-1: unknown). */
static int load_pending(sqlite3 *db, int64_t sid, pend *v, size_t max, size_t *n)
{
  sqlite3_stmt *st = NULL;
  *n = 0;
  int rc = prep(db, "SELECT a.id, t.parent, coalesce(t.created, -1) FROM task_rows_add a"
                    " JOIN tasks t ON t.sid = a.sid AND t.id = a.id WHERE a.sid = ?1 AND t.has_task = 1", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  int src;
  while((src = sqlite3_step(st)) == SQLITE_ROW && *n < max)
    v[(*n)++] = (pend){.id = sqlite3_column_int64(st, 0), .parent = sqlite3_column_int64(st, 1),
                       .created = sqlite3_column_int64(st, 2), .pa = -1, .group = -1};
  rc = done_code(db, src);
  sqlite3_finalize(st);
  return rc;
}

/* The work of one placement: freed together. */
typedef struct place {
  pend *p;
  size_t k;
  int64_t (*by_id)[2];
  attach *g;
  size_t ng;
  size_t *sorted, *first, *kids, *gfirst, *gkids, *stack, *order;
  store_delta *d;
  size_t nd, dcap;
} place;

static void place_free(place *w)
{
  free(w->p);
  free(w->by_id);
  free(w->g);
  free(w->sorted);
  free(w->first);
  free(w->kids);
  free(w->gfirst);
  free(w->gkids);
  free(w->stack);
  free(w->order);
  free(w->d);
}

static int add_delta(place *w, int64_t id, int64_t size, int64_t children)
{
  if(w->nd == w->dcap) {
    size_t cap = w->dcap ? 2 * w->dcap : 256;
    store_delta *d = realloc(w->d, cap * sizeof(*d));
    if(!d)
      return LS_ENOMEM;
    w->d = d;
    w->dcap = cap;
  }
  w->d[w->nd++] = (store_delta){id, size, children};
  return 0;
}

/* Each appended task's parent: appended, stored (an attach point), or none (the roots' point).
 * The attach points are found by sorting the tasks by the stored task they hang from. */
static int resolve_parents(lookups *l, int64_t stored, place *w)
{
  size_t k = w->k, m = 0;
  w->g = malloc((k + 1) * sizeof(*w->g));
  int64_t (*at)[2] = malloc((k + 1) * sizeof(*at)); /* {stored parent id (0: none), task index} */
  store_row *rows = malloc((k + 1) * sizeof(*rows));
  int rc = w->g && at && rows ? 0 : LS_ENOMEM;
  for(size_t i = 0; !rc && i < k; i++) {
    pend *x = &w->p[i];
    x->pa = x->parent ? find_pair(w->by_id, k, x->parent) : -1;
    if(x->pa >= 0)
      continue;
    rows[i] = (store_row){0};
    if(x->parent)
      rc = row_of(l, x->parent, &rows[i]);
    at[m][0] = rows[i].id;
    at[m++][1] = (int64_t)i;
  }
  if(!rc)
    qsort(at, m, sizeof(*at), cmp_pair);
  for(size_t j = 0; !rc && j < m; j++) {
    const store_row *row = &rows[at[j][1]];
    if(j == 0 || at[j][0] != at[j - 1][0])
      w->g[w->ng++] = row->id ? (attach){.id = row->id, .pos = row->pos, .depth = row->depth, .size = row->size,
                                         .ip = row->pos + row->size}
                              : (attach){.id = 0, .pos = -1, .depth = -1, .size = 0, .ip = stored};
    w->p[at[j][1]].group = (int64_t)w->ng - 1;
  }
  free(at);
  free(rows);
  return rc;
}

/* Orders the appended tasks (depth first from the attach points, by ip then deeper first) into
 * w->order; STORE_ROWS_REBUILD when some are left (a loop among them). */
static int order_pending(place *w)
{
  size_t k = w->k, ng = w->ng;
  w->sorted = malloc((k ? k : 1) * sizeof(size_t));
  w->first = calloc(k + 1, sizeof(size_t));
  w->kids = malloc((k ? k : 1) * sizeof(size_t));
  w->gfirst = calloc(ng + 1, sizeof(size_t));
  w->gkids = malloc((k ? k : 1) * sizeof(size_t));
  w->stack = malloc((k ? k : 1) * sizeof(size_t));
  w->order = malloc((k ? k : 1) * sizeof(size_t));
  if(!w->sorted || !w->first || !w->kids || !w->gfirst || !w->gkids || !w->stack || !w->order)
    return LS_ENOMEM;
  keyed *ks = malloc((k ? k : 1) * sizeof(*ks));
  if(!ks)
    return LS_ENOMEM;
  for(size_t i = 0; i < k; i++)
    ks[i] = (keyed){w->p[i].created, w->p[i].id, i};
  qsort(ks, k, sizeof(*ks), cmp_keyed);
  for(size_t i = 0; i < k; i++)
    w->sorted[i] = ks[i].idx;
  free(ks);
  /* children lists in sibling order (CSR): of each appended task, of each attach point */
  for(size_t i = 0; i < k; i++) {
    if(w->p[i].pa >= 0)
      w->first[w->p[i].pa + 1]++;
    else
      w->gfirst[w->p[i].group + 1]++;
  }
  for(size_t i = 0; i < k; i++)
    w->first[i + 1] += w->first[i];
  for(size_t g = 0; g < ng; g++)
    w->gfirst[g + 1] += w->gfirst[g];
  size_t *cur = malloc((k + ng + 1) * sizeof(size_t));
  if(!cur)
    return LS_ENOMEM;
  memcpy(cur, w->first, k * sizeof(size_t));
  memcpy(cur + k, w->gfirst, ng * sizeof(size_t));
  for(size_t s = 0; s < k; s++) {
    const pend *x = &w->p[w->sorted[s]];
    if(x->pa >= 0)
      w->kids[cur[x->pa]++] = w->sorted[s];
    else
      w->gkids[cur[k + (size_t)x->group]++] = w->sorted[s];
  }
  free(cur);
  /* attach points by ip, deeper first; their index moves, so the lists follow by id */
  size_t *gorder = malloc((ng ? ng : 1) * sizeof(size_t));
  if(!gorder)
    return LS_ENOMEM;
  attach *gs = malloc((ng ? ng : 1) * sizeof(*gs));
  if(!gs) {
    free(gorder);
    return LS_ENOMEM;
  }
  memcpy(gs, w->g, ng * sizeof(*gs));
  for(size_t g = 0; g < ng; g++)
    gs[g].n = (int64_t)g; /* remember the original index */
  qsort(gs, ng, sizeof(*gs), cmp_attach);
  for(size_t g = 0; g < ng; g++)
    gorder[g] = (size_t)gs[g].n;
  free(gs);
  size_t emitted = 0;
  for(size_t gi = 0; gi < ng; gi++) {
    size_t g = gorder[gi], top = 0;
    for(size_t c = w->gfirst[g + 1]; c > w->gfirst[g]; c--) {
      w->p[w->gkids[c - 1]].depth = w->g[g].depth + 1;
      w->stack[top++] = w->gkids[c - 1];
    }
    while(top > 0 && emitted < k) {
      size_t v = w->stack[--top];
      w->order[emitted++] = v;
      for(size_t c = w->first[v + 1]; c > w->first[v]; c--) {
        w->p[w->kids[c - 1]].depth = w->p[v].depth + 1;
        w->stack[top++] = w->kids[c - 1];
      }
    }
  }
  free(gorder);
  return emitted == k ? 0 : STORE_ROWS_REBUILD;
}

/* The tree to read: appended rows by vpos with their shape, and the stored ancestors' growth. */
static int make_tree(lookups *l, place *w, int64_t stored, store_tree **out)
{
  size_t k = w->k;
  store_tree *t = calloc(1, sizeof(*t));
  if(!t)
    return LS_ENOMEM;
  t->stored = (size_t)stored;
  t->k = k;
  t->add = malloc((k ? k : 1) * sizeof(*t->add));
  t->add_by_id = malloc((k ? k : 1) * sizeof(*t->add_by_id));
  int64_t *sub = calloc(k ? k : 1, sizeof(*sub)), *pos_of = malloc((k ? k : 1) * sizeof(*pos_of));
  int rc = t->add && t->add_by_id && sub && pos_of ? 0 : LS_ENOMEM;
  /* subtree sizes from the end of the order backwards, children before their parent */
  for(size_t e = k; !rc && e > 0; e--) {
    size_t v = w->order[e - 1];
    sub[v] += 1;
    if(w->p[v].pa >= 0)
      sub[w->p[v].pa] += sub[v];
    else {
      w->g[w->p[v].group].sub += sub[v];
      w->g[w->p[v].group].n++;
    }
  }
  for(size_t e = 0; !rc && e < k; e++) {
    size_t v = w->order[e];
    const pend *x = &w->p[v];
    const attach *g = x->pa >= 0 ? NULL : &w->g[x->group];
    int64_t ip = g ? g->ip : t->add[pos_of[x->pa]].ip;
    t->add[e] = (store_added){.id = x->id, .vpos = ip + (int64_t)e, .ip = ip, .parent = g ? g->id : x->parent,
                              .depth = x->depth, .children = (int64_t)(w->first[v + 1] - w->first[v]),
                              .size = sub[v]};
    pos_of[v] = (int64_t)e;
    t->add_by_id[e][0] = x->id;
    t->add_by_id[e][1] = (int64_t)e;
  }
  if(!rc)
    qsort(t->add_by_id, k, sizeof(*t->add_by_id), cmp_pair);
  /* stored ancestors: each attach point grows by its appended children and all below them, and
   * every ancestor above it by the latter */
  for(size_t g = 0; !rc && g < w->ng; g++) {
    if(!w->g[g].id)
      continue;
    rc = add_delta(w, w->g[g].id, w->g[g].sub, w->g[g].n);
    int64_t id = w->g[g].id;
    for(int guard = 0; !rc && guard < 100000; guard++) {
      store_row x;
      rc = row_of(l, id, &x);
      if(rc || !x.id || !x.parent)
        break;
      rc = add_delta(w, x.parent, w->g[g].sub, 0);
      id = x.parent;
    }
  }
  if(!rc && w->nd) {
    qsort(w->d, w->nd, sizeof(*w->d), cmp_delta);
    size_t m = 0;
    for(size_t i = 0; i < w->nd; i++) {
      if(m && w->d[m - 1].id == w->d[i].id) {
        w->d[m - 1].size += w->d[i].size;
        w->d[m - 1].children += w->d[i].children;
      }
      else
        w->d[m++] = w->d[i];
    }
    t->delta = w->d;
    t->ndelta = m;
    w->d = NULL;
  }
  free(sub);
  free(pos_of);
  if(rc) {
    store_tree_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* How many appended tasks and the sum of their ids: with sid and the stored rows, the key of a
 * placement (the appended set only grows until a build, which changes the stored rows and takes
 * them out; a moved task makes the tree stale, so no placement is read then). */
static int added_key(sqlite3 *db, int64_t sid, int64_t *k, int64_t *sum)
{
  sqlite3_stmt *st = NULL;
  *k = *sum = 0;
  int rc = prep(db, "SELECT count(*), coalesce(sum(id), 0) FROM task_rows_add WHERE sid = ?1", &st);
  if(rc)
    return rc;
  sqlite3_bind_int64(st, 1, sid);
  int src = sqlite3_step(st);
  if(src == SQLITE_ROW) {
    *k = sqlite3_column_int64(st, 0);
    *sum = sqlite3_column_int64(st, 1);
  }
  rc = done_code(db, src);
  sqlite3_finalize(st);
  return rc;
}

static int place_added(store_reader *r, int64_t sid, int64_t stored, int64_t k, store_tree **out);

int store_rows_extend(store_reader *r, int64_t sid, int64_t stored, store_tree **out)
{
  *out = NULL;
  int64_t k = 0, sum = 0;
  int rc = added_key(r->db, sid, &k, &sum);
  if(rc || k == 0)
    return rc;
  if(k > ADD_MAX)
    return STORE_ROWS_REBUILD;
  const int64_t key[4] = {sid, stored, k, sum};
  if(r->rows_cache && !memcmp(r->rows_key, key, sizeof(key))) {
    *out = r->rows_cache; /* the same placement as this connection's last one */
    return 0;
  }
  rc = place_added(r, sid, stored, k, out);
  if(!rc) {
    store_tree_drop(r->rows_cache);
    r->rows_cache = *out;
    (*out)->cached = 1;
    memcpy(r->rows_key, key, sizeof(key));
  }
  return rc;
}

static int place_added(store_reader *r, int64_t sid, int64_t stored, int64_t k, store_tree **out)
{
  int64_t blocked = 0;
  int rc = 0;
  /* a stored task whose missing parent has now arrived moves: not an append */
  rc = one_int(r->db, "SELECT 1 FROM task_rows_orphans o WHERE o.sid = ?1 AND (o.parent = -1 OR o.parent IN"
                      " (SELECT id FROM task_rows_add WHERE sid = ?1)) LIMIT 1", sid, &blocked);
  if(rc || blocked)
    return rc ? rc : STORE_ROWS_REBUILD;
  place w = {0};
  lookups l;
  rc = lookups_open(&l, r->db, sid);
  w.p = malloc((size_t)k * sizeof(*w.p));
  w.by_id = malloc((size_t)k * sizeof(*w.by_id));
  if(!rc)
    rc = w.p && w.by_id ? load_pending(r->db, sid, w.p, (size_t)k, &w.k) : LS_ENOMEM;
  for(size_t i = 0; !rc && i < w.k; i++) {
    w.by_id[i][0] = w.p[i].id;
    w.by_id[i][1] = (int64_t)i;
  }
  if(!rc)
    qsort(w.by_id, w.k, sizeof(*w.by_id), cmp_pair);
  if(!rc)
    rc = resolve_parents(&l, stored, &w);
  /* each attach point: its appended children must sort after its last stored child (the least
   * of them, found in one pass, decides) */
  int64_t (*least)[2] = malloc((w.ng ? w.ng : 1) * sizeof(*least));
  if(!rc && !least)
    rc = LS_ENOMEM;
  for(size_t g = 0; !rc && g < w.ng; g++)
    least[g][0] = -2; /* none yet */
  for(size_t i = 0; !rc && i < w.k; i++) {
    const pend *x = &w.p[i];
    if(x->group >= 0 && (least[x->group][0] == -2 ||
                         cmp_key(x->created, x->id, least[x->group][0], least[x->group][1]) < 0)) {
      least[x->group][0] = x->created;
      least[x->group][1] = x->id;
    }
  }
  for(size_t g = 0; !rc && g < w.ng; g++) {
    int64_t key[2];
    int has = 0;
    rc = last_child_key(&l, &w.g[g], stored, key, &has);
    if(!rc && has && cmp_key(least[g][0], least[g][1], key[0], key[1]) <= 0)
      rc = STORE_ROWS_REBUILD;
  }
  free(least);
  if(!rc)
    rc = order_pending(&w);
  if(!rc)
    rc = make_tree(&l, &w, stored, out);
  place_free(&w);
  lookups_close(&l);
  return rc;
}

/* Appended tasks with ip <= p: where stored row p moves (ips are ascending in add). */
static int64_t added_before(const store_tree *t, int64_t p)
{
  size_t lo = 0, hi = t->k;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(t->add[mid].ip <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (int64_t)lo;
}

/* A stored row (shape read) as the extended tree has it. */
static void grow(const store_tree *t, store_row *x)
{
  x->pos += added_before(t, x->pos);
  size_t lo = 0, hi = t->ndelta;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if(t->delta[mid].id < x->id)
      lo = mid + 1;
    else
      hi = mid;
  }
  if(lo < t->ndelta && t->delta[lo].id == x->id) {
    x->size += t->delta[lo].size;
    x->children += t->delta[lo].children;
  }
}

static void added_row(const store_added *a, store_row *x)
{
  memset(x, 0, sizeof(*x));
  *x = (store_row){.pos = a->vpos, .id = a->id, .parent = a->parent, .depth = a->depth, .children = a->children,
                   .size = a->size};
}

int store_rows_added_find(store_reader *r, int64_t sid, const store_tree *t, const int64_t *ids, size_t n,
                          store_row *out)
{
  int rc = store_rows_find_many(r, sid, NULL, ids, n, out);
  for(size_t i = 0; !rc && i < n; i++) {
    int64_t e = find_pair(t->add_by_id, t->k, ids[i]);
    if(e >= 0)
      added_row(&t->add[e], &out[i]);
    else if(out[i].id)
      grow(t, &out[i]);
  }
  return rc;
}

int store_rows_added_scan(store_reader *r, int64_t sid, const store_tree *t, int64_t lo, int64_t hi, size_t max,
                          arena *a, store_row *out, size_t *n)
{
  int64_t total = (int64_t)(t->stored + t->k), v = lo < 0 ? 0 : lo;
  /* j: the first appended row at or after v */
  size_t j = 0, l = 0, h = t->k;
  while(l < h) {
    size_t mid = l + (h - l) / 2;
    if(t->add[mid].vpos < v)
      l = mid + 1;
    else
      h = mid;
  }
  j = l;
  int rc = 0;
  while(!rc && v < hi && v < total && *n < max) {
    if(j < t->k && t->add[j].vpos == v) {
      store_row *x = &out[*n];
      added_row(&t->add[j], x);
      rc = store_rows_task_fields(r, sid, x, 1, a);
      (*n)++;
      j++;
      v++;
      continue;
    }
    /* stored rows up to the next appended one: stored position v - j on */
    int64_t next = j < t->k ? t->add[j].vpos : total, want = next < hi ? next - v : hi - v;
    if(want > (int64_t)(max - *n))
      want = (int64_t)(max - *n);
    size_t got = 0;
    int64_t p = v - (int64_t)j;
    rc = store_rows_scan(r, sid, NULL, p, p + want, (size_t)want, a, out + *n, &got);
    for(size_t i = 0; i < got; i++)
      grow(t, &out[*n + i]);
    *n += got;
    if(got == 0)
      break;
    v += (int64_t)got;
  }
  return rc;
}
