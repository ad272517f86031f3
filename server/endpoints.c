/* endpoints.c — an endpoint over time (endpoints.h): sessions grouped by (service, endpoint),
 * nearest-rank duration percentiles, lag p95, and per group the await hot spots and blocking
 * culprits summed from per-session points through a hash table. Pure: rows come from the caller. */
#include "endpoints.h"

#include <stdlib.h>
#include <string.h>

struct ep_entry {
  ep_point p;
  size_t group;
  int64_t last_sid;   /* the session that last added to it: counts p.sessions once per session */
  uint64_t hash;
};

size_t ep_rank(int p, size_t n)
{
  size_t k = ((size_t)p * n + 99) / 100; /* ceil(p/100 * n), 1-based */
  return k ? k - 1 : 0;
}

/* NULL sorts before every string, so sessions without a service group together. */
static int str_cmp(const char *a, const char *b)
{
  if(!a || !b)
    return (a != NULL) - (b != NULL);
  return strcmp(a, b);
}

static const char *endpoint_of(const ep_session *s)
{
  return s->route ? s->route : s->name;
}

/* A session's sort key within its group: by duration, then sid (the later arrival after an equal
 * duration); idx: where it is. 24 bytes, so qsort moves keys, not 64-byte sessions. */
typedef struct dur_key { int64_t d, sid; size_t idx; } dur_key;

static int dur_key_cmp(const void *pa, const void *pb)
{
  const dur_key *a = pa, *b = pb;
  if(a->d != b->d)
    return a->d > b->d ? 1 : -1;
  return (a->sid > b->sid) - (a->sid < b->sid);
}

static int same_group(const ep_session *a, const ep_session *b)
{
  return !str_cmp(a->service, b->service) && !str_cmp(endpoint_of(a), endpoint_of(b));
}

static uint64_t hash_str(uint64_t h, const char *s);

/* key[i]: the group of s[i], numbered in order of first sight; *ng: how many; first[g]: the
 * first session of group g. One hash lookup per session: sorting 100,000 sessions by their
 * strings cost more than the rest of a query together (strcmp in every comparison). */
static int key_sessions(const ep_session *s, size_t n, uint32_t *key, size_t *first, size_t *ng)
{
  size_t nslot = 16;
  while(nslot < 2 * n)
    nslot *= 2;
  uint32_t *slot = calloc(nslot, sizeof(*slot));
  if(!slot)
    return LS_ENOMEM;
  *ng = 0;
  for(size_t i = 0; i < n; i++) {
    size_t j = hash_str(hash_str(1469598103934665603u, s[i].service), endpoint_of(&s[i])) & (nslot - 1);
    while(slot[j] && !same_group(&s[first[slot[j] - 1]], &s[i]))
      j = (j + 1) & (nslot - 1);
    if(!slot[j]) {
      first[*ng] = i;
      slot[j] = (uint32_t)++*ng;
    }
    key[i] = slot[j] - 1;
  }
  free(slot);
  return 0;
}

/* Orders s[0..n) by group (counting sort on the keys, groups in order of first sight), then by
 * duration and sid within each; start[g] is where group g begins (start[ng] == n), orig[p] the
 * index in the input of the session now at p. */
static int order_sessions(ep_session *s, size_t n, size_t **startp, size_t *ngp, size_t **origp)
{
  uint32_t *key = malloc(n * sizeof(*key));
  size_t *first = malloc(n * sizeof(*first)), *from = malloc(n * sizeof(*from));
  size_t *orig = malloc(n * sizeof(*orig));
  ep_session *tmp = malloc(n * sizeof(*tmp));
  dur_key *dk = malloc(n * sizeof(*dk));
  size_t *start = NULL, ng = 0;
  int rc = key && first && from && orig && tmp && dk ? 0 : LS_ENOMEM;
  if(!rc)
    rc = key_sessions(s, n, key, first, &ng);
  if(!rc && !(start = calloc(ng + 1, sizeof(*start))))
    rc = LS_ENOMEM;
  if(!rc) {
    for(size_t i = 0; i < n; i++)
      start[key[i] + 1]++;
    for(size_t g = 0; g < ng; g++)
      start[g + 1] += start[g];
    for(size_t i = 0; i < n; i++) /* first[] is free now: the next slot of each group */
      first[key[i]] = 0;
    for(size_t i = 0; i < n; i++) {
      size_t p = start[key[i]] + first[key[i]]++;
      tmp[p] = s[i];
      from[p] = i;
      dk[p] = (dur_key){s[i].duration, s[i].sid, p};
    }
    for(size_t g = 0; g < ng; g++)
      if(start[g + 1] - start[g] > 1)
        qsort(dk + start[g], start[g + 1] - start[g], sizeof(*dk), dur_key_cmp);
    for(size_t p = 0; p < n; p++) {
      s[p] = tmp[dk[p].idx];
      orig[p] = from[dk[p].idx];
    }
  }
  free(key);
  free(first);
  free(from);
  free(tmp);
  free(dk);
  if(rc) {
    free(start);
    free(orig);
    return rc;
  }
  *startp = start;
  *ngp = ng;
  *origp = orig;
  return 0;
}

static int group_cmp(const void *pa, const void *pb)
{
  const ep_group *a = pa, *b = pb;
  if(a->n != b->n)
    return a->n > b->n ? -1 : 1;
  int c = str_cmp(a->service, b->service);
  return c ? c : str_cmp(a->endpoint, b->endpoint);
}

static int i64_cmp(const void *pa, const void *pb)
{
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return (a > b) - (a < b);
}

static int pair_cmp(const void *pa, const void *pb)
{
  return i64_cmp(pa, pb); /* by sid, the first of each pair */
}

/* Duration percentiles, the median session and the lag p95 of group g. */
static int group_stats(ep_agg *e, ep_group *g)
{
  const ep_session *s = e->s + g->first;
  g->p50 = s[ep_rank(50, g->n)].duration;
  g->p95 = s[ep_rank(95, g->n)].duration;
  g->max = s[g->n - 1].duration;
  g->median = g->first + ep_rank(50, g->n);
  int64_t *lag = malloc(g->n * sizeof(*lag));
  if(!lag)
    return LS_ENOMEM;
  size_t k = 0;
  for(size_t i = 0; i < g->n; i++)
    if(s[i].has_lag)
      lag[k++] = s[i].lag_max;
  if(k > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(lag, k, sizeof(*lag), i64_cmp);
  g->lag_sessions = (int64_t)k;
  g->lag_p95 = k ? lag[ep_rank(95, k)] : 0;
  free(lag);
  return 0;
}

int ep_group_sessions(ep_agg *e, ep_session *s, size_t n)
{
  memset(e, 0, sizeof(e[0]));
  arena_init(&e->a);
  e->s = s;
  e->ns = n;
  if(!n)
    return 0;
  /* the store reads newest first: then by_sid is filled in place of a sort */
  int desc = 1;
  for(size_t i = 1; i < n && desc; i++)
    desc = s[i].sid < s[i - 1].sid;
  size_t *start = NULL, ng = 0, *orig = NULL;
  int rc = order_sessions(s, n, &start, &ng, &orig);
  if(rc)
    return rc;
  e->g = calloc(ng, sizeof(*e->g));
  e->by_sid = malloc(2 * n * sizeof(*e->by_sid));
  if(!e->g || !e->by_sid) {
    free(start);
    free(orig);
    return LS_ENOMEM;
  }
  for(size_t k = 0; k < ng; k++) {
    ep_group *g = &e->g[e->ng++];
    g->first = start[k];
    g->n = start[k + 1] - start[k];
    g->service = s[g->first].service;
    g->endpoint = endpoint_of(&s[g->first]);
    for(size_t i = g->first; i < g->first + g->n; i++)
      g->templated |= s[i].route != NULL;
  }
  free(start);
  for(size_t i = 0; i < e->ng; i++)
    if((rc = group_stats(e, &e->g[i]))) {
      free(orig);
      return rc;
    }
  if(e->ng > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(e->g, e->ng, sizeof(*e->g), group_cmp);
  for(size_t i = 0; i < e->ng; i++)
    for(size_t j = 0; j < e->g[i].n; j++) {
      size_t p = e->g[i].first + j, at = desc ? n - 1 - orig[p] : p;
      e->by_sid[2 * at] = s[p].sid;
      e->by_sid[2 * at + 1] = (int64_t)i;
    }
  free(orig);
  if(!desc && n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(e->by_sid, n, 2 * sizeof(*e->by_sid), pair_cmp);
  return 0;
}

int64_t ep_group_of(const ep_agg *e, int64_t sid)
{
  size_t lo = 0, hi = e->ns;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int64_t v = e->by_sid[2 * mid];
    if(v == sid)
      return e->by_sid[2 * mid + 1];
    if(v < sid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
  for(; s && *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return (h ^ 0xff) * 1099511628211u;
}

static uint64_t hash_key(size_t group, const char *file, int64_t line)
{
  uint64_t h = 1469598103934665603u;
  h = (h ^ (uint64_t)group) * 1099511628211u;
  h = (h ^ (uint64_t)line) * 1099511628211u;
  return hash_str(h, file);
}

static int table_grow(ep_table *t)
{
  size_t nslot = t->nslot ? t->nslot * 2 : 1024;
  uint32_t *slot = calloc(nslot, sizeof(*slot));
  if(!slot)
    return LS_ENOMEM;
  for(size_t i = 0; i < t->n; i++) {
    size_t j = t->v[i].hash & (nslot - 1);
    while(slot[j])
      j = (j + 1) & (nslot - 1);
    slot[j] = (uint32_t)(i + 1);
  }
  free(t->slot);
  t->slot = slot;
  t->nslot = nslot;
  return 0;
}

/* The entry of (group, file, line) in t, made (with copies of its strings) when new; NULL when
 * memory ran out. */
static ep_entry *table_get(ep_agg *e, ep_table *t, size_t group, const char *file, int64_t line,
                           const char *func, const char *what)
{
  if(t->n >= UINT32_MAX - 1)
    return NULL;
  if(2 * (t->n + 1) > t->nslot && table_grow(t))
    return NULL;
  uint64_t h = hash_key(group, file, line);
  size_t j = h & (t->nslot - 1);
  for(; t->slot[j]; j = (j + 1) & (t->nslot - 1)) {
    ep_entry *x = &t->v[t->slot[j] - 1];
    if(x->hash == h && x->group == group && x->p.line == line && !str_cmp(x->p.file, file))
      return x;
  }
  if(t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 256;
    ep_entry *v = realloc(t->v, cap * sizeof(*v));
    if(!v)
      return NULL;
    t->v = v;
    t->cap = cap;
  }
  ep_entry *x = &t->v[t->n];
  memset(x, 0, sizeof(*x));
  x->hash = h;
  x->group = group;
  x->last_sid = -1;
  x->p.line = line;
  x->p.file = file ? arena_strndup(&e->a, file, strlen(file)) : NULL;
  x->p.func = func ? arena_strndup(&e->a, func, strlen(func)) : NULL;
  x->p.what = what ? arena_strndup(&e->a, what, strlen(what)) : NULL;
  if(e->a.failed)
    return NULL;
  t->slot[j] = (uint32_t)(++t->n);
  return x;
}

static int add(ep_agg *e, ep_table *t, int64_t sid, const char *file, int64_t line, const char *func,
               const char *what, int64_t count, int64_t total, int64_t max)
{
  int64_t g = ep_group_of(e, sid);
  if(g < 0)
    return 0;
  ep_entry *x = table_get(e, t, (size_t)g, file, line, func, what);
  if(!x)
    return LS_ENOMEM;
  x->p.count += count;
  x->p.total += total;
  if(max > x->p.max)
    x->p.max = max;
  if(x->last_sid != sid) {
    x->p.sessions++;
    x->last_sid = sid; /* points of one session arrive together (the store reads by sid) */
  }
  return 0;
}

int ep_add_await(ep_agg *e, int64_t sid, const char *file, int64_t line, const char *func,
                 const char *what, int64_t count, int64_t total, int64_t max)
{
  return add(e, &e->aw, sid, file, line, func, what, count, total, max);
}

int ep_add_block(ep_agg *e, int64_t sid, const char *file, int64_t line, const char *func,
                 const char *src, int64_t d)
{
  int64_t g = ep_group_of(e, sid);
  if(g >= 0) {
    e->g[g].blocks++;
    e->g[g].block_total += d;
  }
  return add(e, &e->bl, sid, file, line, func, src, 1, d, d);
}

int ep_add_summed(ep_agg *e, int64_t sid, int culprit, const char *file, int64_t line, const char *func,
                  const char *what, int64_t count, int64_t total, int64_t max, int64_t sessions)
{
  int64_t g = ep_group_of(e, sid);
  if(g < 0)
    return 0;
  ep_entry *x = table_get(e, culprit ? &e->bl : &e->aw, (size_t)g, file, line, func, what);
  if(!x)
    return LS_ENOMEM;
  x->p.count += count;
  x->p.total += total;
  x->p.sessions += sessions; /* disjoint from the sessions fed one by one: no last_sid here */
  if(max > x->p.max)
    x->p.max = max;
  if(culprit) {
    e->g[g].blocks += count;
    e->g[g].block_total += total;
  }
  return 0;
}

static int where_cmp(const ep_entry *a, const ep_entry *b)
{
  int c = str_cmp(a->p.file, b->p.file);
  return c ? c : (a->p.line > b->p.line) - (a->p.line < b->p.line);
}

static int hot_cmp(const void *pa, const void *pb)
{
  const ep_entry *a = pa, *b = pb;
  if(a->group != b->group)
    return a->group < b->group ? -1 : 1;
  if(a->p.total != b->p.total)
    return a->p.total > b->p.total ? -1 : 1;
  if(a->p.count != b->p.count)
    return a->p.count > b->p.count ? -1 : 1;
  return where_cmp(a, b);
}

static int culprit_cmp(const void *pa, const void *pb)
{
  const ep_entry *a = pa, *b = pb;
  if(a->group != b->group)
    return a->group < b->group ? -1 : 1;
  if(a->p.count != b->p.count)
    return a->p.count > b->p.count ? -1 : 1;
  if(a->p.total != b->p.total)
    return a->p.total > b->p.total ? -1 : 1;
  return where_cmp(a, b);
}

/* Sorts t's entries with cmp and hands each group its run of points. */
static int rank(ep_agg *e, ep_table *t, int (*cmp)(const void *, const void *), ep_point **all,
                int culprits)
{
  if(t->n > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(t->v, t->n, sizeof(*t->v), cmp);
  *all = malloc((t->n ? t->n : 1) * sizeof(**all));
  if(!*all)
    return LS_ENOMEM;
  for(size_t i = 0; i < t->n; i++) {
    (*all)[i] = t->v[i].p;
    ep_group *g = &e->g[t->v[i].group];
    if(culprits) {
      if(!g->nculprits++)
        g->culprits = &(*all)[i];
    } else if(!g->nhot++) {
      g->hot = &(*all)[i];
    }
  }
  return 0;
}

int ep_finish(ep_agg *e)
{
  int rc = rank(e, &e->aw, hot_cmp, &e->hot, 0);
  return rc ? rc : rank(e, &e->bl, culprit_cmp, &e->culprits, 1);
}

static void table_free(ep_table *t)
{
  free(t->v);
  free(t->slot);
}

void ep_free(ep_agg *e)
{
  free(e->g);
  free(e->by_sid);
  table_free(&e->aw);
  table_free(&e->bl);
  free(e->hot);
  free(e->culprits);
  arena_free(&e->a);
}
