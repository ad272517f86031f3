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

/* A session's sort key: by duration, then sid (the later arrival after an equal duration); idx:
 * where it is in the input. */
typedef struct dur_key { int64_t d, sid; size_t idx; } dur_key;

/* One stable counting pass of v[0..n) into out on the byte at `shift` of d or (by_sid) sid. */
static void radix_pass(const dur_key *v, dur_key *out, size_t n, int by_sid, int shift)
{
  size_t cnt[257] = {0};
  for(size_t i = 0; i < n; i++)
    cnt[(((uint64_t)(by_sid ? v[i].sid : v[i].d) >> shift) & 0xff) + 1]++;
  for(int b = 0; b < 256; b++)
    cnt[b + 1] += cnt[b];
  for(size_t i = 0; i < n; i++)
    out[cnt[((uint64_t)(by_sid ? v[i].sid : v[i].d) >> shift) & 0xff]++] = v[i];
}

/* Sorts v[0..n) by (d, sid): least significant digit first, a byte a pass, only as many passes
 * as the largest values need (durations < 2^53 and sids are non-negative, as the store keeps
 * them), so 100,000 sessions take a few linear passes where comparison sorts took most of a
 * query. sid_order[k]: the idx of the k-th session by sid (the order between the two keys'
 * passes). tmp: n keys of scratch. */
static void sort_keys(dur_key *v, dur_key *tmp, size_t n, size_t *sid_order)
{
  uint64_t maxd = 0, maxs = 0;
  for(size_t i = 0; i < n; i++) {
    maxd |= (uint64_t)v[i].d;
    maxs |= (uint64_t)v[i].sid;
  }
  dur_key *a = v, *b = tmp, *t;
  for(int shift = 0; shift < 64 && (maxs >> shift); shift += 8, t = a, a = b, b = t)
    radix_pass(a, b, n, 1, shift);
  for(size_t i = 0; i < n; i++)
    sid_order[i] = a[i].idx;
  for(int shift = 0; shift < 64 && (maxd >> shift); shift += 8, t = a, a = b, b = t)
    radix_pass(a, b, n, 0, shift);
  if(a != v)
    memcpy(v, a, n * sizeof(*v));
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
    /* a run of one group's sessions (a block's rollup) shares its strings: no lookup */
    if(i && s[i].service == s[i - 1].service && endpoint_of(&s[i]) == endpoint_of(&s[i - 1])) {
      key[i] = key[i - 1];
      continue;
    }
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

/* Orders s[0..n) by group (groups in order of first sight), then by duration and sid within
 * each: the keys sorted once, then placed group by group (a stable counting sort). start[g] is
 * where group g begins (start[ng] == n), orig[p] the input index of the session now at p,
 * sid_order[k] the input index of the k-th session by sid. */
static int order_sessions(ep_session *s, size_t n, size_t **startp, size_t *ngp, size_t **origp,
                          size_t **sid_orderp)
{
  uint32_t *key = malloc(n * sizeof(*key));
  size_t *first = malloc(n * sizeof(*first));
  size_t *orig = malloc(n * sizeof(*orig)), *sid_order = malloc(n * sizeof(*sid_order));
  ep_session *tmp = malloc(n * sizeof(*tmp));
  dur_key *dk = malloc(n * sizeof(*dk)), *scratch = malloc(n * sizeof(*scratch));
  size_t *start = NULL, ng = 0;
  int rc = key && first && orig && sid_order && tmp && dk && scratch ? 0 : LS_ENOMEM;
  if(!rc)
    rc = key_sessions(s, n, key, first, &ng);
  if(!rc && !(start = calloc(ng + 1, sizeof(*start))))
    rc = LS_ENOMEM;
  if(!rc) {
    for(size_t i = 0; i < n; i++) {
      start[key[i] + 1]++;
      dk[i] = (dur_key){s[i].duration, s[i].sid, i};
    }
    for(size_t g = 0; g < ng; g++)
      start[g + 1] += start[g];
    sort_keys(dk, scratch, n, sid_order);
    for(size_t g = 0; g < ng; g++) /* first[] is free now: the next slot of each group */
      first[g] = start[g];
    for(size_t k = 0; k < n; k++) {
      size_t i = dk[k].idx, p = first[key[i]]++;
      tmp[p] = s[i];
      orig[p] = i;
    }
    memcpy(s, tmp, n * sizeof(*s));
  }
  free(key);
  free(first);
  free(tmp);
  free(dk);
  free(scratch);
  if(rc) {
    free(start);
    free(orig);
    free(sid_order);
    return rc;
  }
  *startp = start;
  *ngp = ng;
  *origp = orig;
  *sid_orderp = sid_order;
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

/* v[0..n) (non-negative) sorted by the same byte passes as sort_keys, through tmp[0..n); returns
 * whichever of the two holds the result. */
static const int64_t *sort_i64(int64_t *v, int64_t *tmp, size_t n)
{
  uint64_t max = 0;
  for(size_t i = 0; i < n; i++)
    max |= (uint64_t)v[i];
  int64_t *a = v, *b = tmp, *t;
  for(int shift = 0; shift < 64 && (max >> shift); shift += 8, t = a, a = b, b = t) {
    size_t cnt[257] = {0};
    for(size_t i = 0; i < n; i++)
      cnt[(((uint64_t)a[i] >> shift) & 0xff) + 1]++;
    for(int d = 0; d < 256; d++)
      cnt[d + 1] += cnt[d];
    for(size_t i = 0; i < n; i++)
      b[cnt[((uint64_t)a[i] >> shift) & 0xff]++] = a[i];
  }
  return a;
}

/* Duration percentiles, the median session and the lag p95 of group g. */
static int group_stats(ep_agg *e, ep_group *g)
{
  const ep_session *s = e->s + g->first;
  g->p50 = s[ep_rank(50, g->n)].duration;
  g->p95 = s[ep_rank(95, g->n)].duration;
  g->max = s[g->n - 1].duration;
  g->median = g->first + ep_rank(50, g->n);
  int64_t *lag = malloc(2 * g->n * sizeof(*lag));
  if(!lag)
    return LS_ENOMEM;
  size_t k = 0;
  int negative = 0;
  /* one pass over the group's sessions (100,000 of them are 8 MB: a second pass was ~2 ms) */
  for(size_t i = 0; i < g->n; i++) {
    if(s[i].has_lag) {
      negative |= s[i].lag_max < 0;
      lag[k++] = s[i].lag_max;
    }
    g->sampled += s[i].ppm != 0;
    g->requests_u += s[i].ppm ? (int64_t)SHARE_PPM_ALL * SHARE_PPM_ALL / s[i].ppm : SHARE_PPM_ALL;
  }
  const int64_t *sorted = lag;
  if(negative && k > 1) /* not from the store (lag is in [0, 2^53)): compare */
    qsort(lag, k, sizeof(*lag), i64_cmp);
  else if(k > 1)
    sorted = sort_i64(lag, lag + g->n, k);
  g->lag_sessions = (int64_t)k;
  g->lag_p95 = k ? sorted[ep_rank(95, k)] : 0;
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
  size_t *start = NULL, ng = 0, *orig = NULL, *sid_order = NULL;
  int rc = order_sessions(s, n, &start, &ng, &orig, &sid_order);
  if(rc)
    return rc;
  e->g = calloc(ng, sizeof(*e->g));
  e->by_sid = malloc(2 * n * sizeof(*e->by_sid));
  size_t *pos = malloc(n * sizeof(*pos));
  if(!e->g || !e->by_sid || !pos)
    rc = LS_ENOMEM;
  for(size_t k = 0; !rc && k < ng; k++) {
    ep_group *g = &e->g[e->ng++];
    g->first = start[k];
    g->n = start[k + 1] - start[k];
    g->service = s[g->first].service;
    g->endpoint = endpoint_of(&s[g->first]);
    for(size_t i = g->first; i < g->first + g->n; i++)
      g->templated |= s[i].route != NULL;
  }
  for(size_t i = 0; !rc && i < e->ng; i++)
    rc = group_stats(e, &e->g[i]);
  if(!rc && e->ng > 1) /* qsort of NULL, 0 is undefined (UBSan) */
    qsort(e->g, e->ng, sizeof(*e->g), group_cmp);
  if(!rc) {
    /* by_sid in sid order without a sort: pos[] turns an input index into where it is now, whose
     * group is by_sid's second half (filled first, by position, in its own slot) */
    for(size_t p = 0; p < n; p++)
      pos[orig[p]] = p;
    for(size_t i = 0; i < e->ng; i++)
      for(size_t j = 0; j < e->g[i].n; j++)
        orig[e->g[i].first + j] = i; /* orig[] becomes the group of each position */
    for(size_t k = 0; k < n; k++) {
      size_t p = pos[sid_order[k]];
      e->by_sid[2 * k] = s[p].sid;
      e->by_sid[2 * k + 1] = (int64_t)orig[p];
    }
  }
  free(start);
  free(orig);
  free(sid_order);
  free(pos);
  return rc;
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
