/* stats.c — pure statistics over a session's rows: concurrency sweep, lag percentiles,
 * task-tree depths/order and hot-spot grouping. No I/O, no SQL, no JSON: query.c loads rows
 * and writes the results out. Every function is O(n log n) and allocates only scratch arrays. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------------------------- */

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

/* malloc(n * size) that refuses overflowing sizes; never called with n == 0. */
static void *alloc_array(size_t n, size_t size) {
  if (n > SIZE_MAX / size) return NULL;
  return malloc(n * size);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* ---- radix sort ----------------------------------------------------------------------------
 * The sweeps and the tree sort 100k-element arrays of 64-bit keys on every query; a stable
 * LSD radix sort (8 passes of one byte, skipping bytes all keys share — times below 2^53 and
 * small ids skip most) costs a fraction of qsort's compare callbacks. Signed keys are mapped
 * to unsigned order by flipping the sign bit. */

typedef struct keyed {
  uint64_t key;
  size_t idx;
} keyed;

static uint64_t order_key(int64_t v) { return (uint64_t)v ^ (UINT64_C(1) << 63); }

/* Sorts a[0..n) by key, stably, using tmp[0..n) as scratch; the result is in a. */
static void radix_sort_keyed(keyed *a, keyed *tmp, size_t n) {
  size_t count[8][256] = {{0}};
  for (size_t i = 0; i < n; i++)
    for (int b = 0; b < 8; b++) count[b][(a[i].key >> (8 * b)) & 0xff]++;
  keyed *src = a, *dst = tmp;
  for (int b = 0; b < 8; b++) {
    size_t *c = count[b];
    if (c[(src[0].key >> (8 * b)) & 0xff] == n) continue; /* every key has this byte */
    size_t sum = 0;
    for (int v = 0; v < 256; v++) {
      size_t k = c[v];
      c[v] = sum;
      sum += k;
    }
    for (size_t i = 0; i < n; i++) dst[c[(src[i].key >> (8 * b)) & 0xff]++] = src[i];
    keyed *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
}

/* Sorts int64 values ascending through keyed scratch of n entries each. */
static void radix_sort_i64(int64_t *v, keyed *a, keyed *tmp, size_t n) {
  if (n < 2) return;
  for (size_t i = 0; i < n; i++) a[i] = (keyed){order_key(v[i]), 0};
  radix_sort_keyed(a, tmp, n);
  for (size_t i = 0; i < n; i++) v[i] = (int64_t)(a[i].key ^ (UINT64_C(1) << 63));
}

/* ---- concurrency ------------------------------------------------------------------------ */

/* The sweep over sorted starts and ends. Ends at an instant are applied before starts at the
 * same instant, so the count after applying every event of an instant is the count in force
 * on [instant, next instant) and never smaller than any intermediate count of that instant.
 * With `pts` it also writes the series: an opening point at 0 (or at the first instant if that
 * is earlier), one point per instant before session_end where the count changes, and a final
 * point at session_end that closes the last step (it repeats the count in force just before
 * the end, so a task alive until the end is not shown as leaving at it). `pts` must hold
 * 2 * m + 2 points (m <= n). The maximum covers every instant, also those at or after
 * session_end. */
typedef struct sweep {
  int64_t *starts, *ends; /* m each, owned by the sweep */
  size_t m;
} sweep;

static void sweep_free(sweep *s) {
  free(s->starts);
  free(s->ends);
}

/* Collects the intervals alive for a positive time (after the session_end substitution). */
static int sweep_init(sweep *s, const stats_interval *iv, size_t n, int64_t session_end) {
  s->starts = s->ends = NULL;
  s->m = 0;
  if (n == 0) return LS_OK;
  if (!iv) return LS_EINVAL;
  keyed *scratch = NULL;
  s->starts = alloc_array(n, sizeof *s->starts);
  s->ends = alloc_array(n, sizeof *s->ends);
  if (!s->starts || !s->ends || !(scratch = alloc_array(n, 2 * sizeof *scratch))) {
    sweep_free(s);
    s->starts = s->ends = NULL;
    return LS_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t end = iv[i].ended < 0 ? session_end : iv[i].ended;
    if (end <= iv[i].created) continue; /* alive for no time at all */
    s->starts[s->m] = iv[i].created;
    s->ends[s->m] = end;
    s->m++;
  }
  radix_sort_i64(s->starts, scratch, scratch + n, s->m);
  radix_sort_i64(s->ends, scratch, scratch + n, s->m);
  free(scratch);
  return LS_OK;
}

/* Walks every instant; returns the maximum and, with `pts`, writes the series. */
static int64_t sweep_run(const sweep *s, int64_t session_end, stats_point *pts, size_t *npts) {
  size_t i = 0, j = 0, np = 0;
  int64_t count = 0, max = 0;
  int64_t first = s->m > 0 && s->starts[0] < 0 ? s->starts[0] : 0;
  if (pts) {
    pts[np].t = first;
    pts[np].n = 0;
    np++;
  }
  while (i < s->m || j < s->m) {
    /* every end lies after its start, so ends never run out while starts remain */
    int64_t t = i < s->m && s->starts[i] < s->ends[j] ? s->starts[i] : s->ends[j];
    while (j < s->m && s->ends[j] == t) { count--; j++; }
    while (i < s->m && s->starts[i] == t) { count++; i++; }
    if (count > max) max = count;
    if (!pts || t >= session_end) continue;
    if (pts[np - 1].t == t) pts[np - 1].n = count; /* only the opening point can share t */
    else if (pts[np - 1].n != count) { pts[np].t = t; pts[np].n = count; np++; }
  }
  if (pts) {
    if (session_end > pts[np - 1].t) {
      pts[np].t = session_end;
      pts[np].n = pts[np - 1].n;
      np++;
    }
    *npts = np;
  }
  return max;
}

int stats_max_concurrency(const stats_interval *iv, size_t n, int64_t session_end,
                          int64_t *max_out) {
  if (!max_out) return LS_EINVAL;
  sweep s;
  int rc = sweep_init(&s, iv, n, session_end);
  if (rc) return rc;
  *max_out = sweep_run(&s, session_end, NULL, NULL);
  sweep_free(&s);
  return LS_OK;
}

int stats_concurrency_series(const stats_interval *iv, size_t n, int64_t session_end,
                             stats_point **out, size_t *nout, int64_t *max_out) {
  if (!out || !nout || !max_out) return LS_EINVAL;
  *out = NULL;
  *nout = 0;
  /* at most one opening point, one per start or end, and the closing one */
  stats_point *pts = n <= (SIZE_MAX / sizeof *pts - 2) / 2 ? malloc((2 * n + 2) * sizeof *pts) : NULL;
  if (!pts) return LS_ENOMEM;
  sweep s;
  int rc = sweep_init(&s, iv, n, session_end);
  if (rc) {
    free(pts);
    return rc;
  }
  *max_out = sweep_run(&s, session_end, pts, nout);
  sweep_free(&s);
  *out = pts;
  return LS_OK;
}

/* ---- lag -------------------------------------------------------------------------------- */

/* Sample at nearest rank ceil(pct/100 * n), 1-based; integer arithmetic avoids the float
 * rounding that would turn rank 95.0000001 into 96. */
static int64_t nearest_rank(const int64_t *sorted, size_t n, unsigned pct) {
  size_t rank = (size_t)(((unsigned long long)pct * n + 99) / 100);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

int stats_lag_summary(int64_t *d, size_t n, stats_lag *out) {
  if (!out) return LS_EINVAL;
  memset(out, 0, sizeof *out);
  if (n == 0) return LS_OK;
  if (!d) return LS_EINVAL;
  qsort(d, n, sizeof *d, cmp_i64);
  /* long double holds 64 mantissa bits: exact for any realistic sum of samples < 2^53 */
  long double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (long double)d[i];
  out->samples = (int64_t)n;
  out->avg_ms = (double)(sum / (long double)n) / 1e6;
  out->p50_ms = (double)nearest_rank(d, n, 50) / 1e6;
  out->p95_ms = (double)nearest_rank(d, n, 95) / 1e6;
  out->p99_ms = (double)nearest_rank(d, n, 99) / 1e6;
  out->max_ms = (double)d[n - 1] / 1e6;
  return LS_OK;
}

/* ---- task tree -------------------------------------------------------------------------- */

#define NO_PARENT SIZE_MAX

/* Index of the task with `id` in the map sorted by order_key(id), or NO_PARENT. */
static size_t find_id(const keyed *map, size_t n, int64_t id) {
  uint64_t key = order_key(id);
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (map[mid].key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && map[lo].key == key ? map[lo].idx : NO_PARENT;
}

/* Parents form a functional graph; a task on a cycle of it (including its own parent) gets
 * no parent, so each cycle falls apart into roots, while tasks hanging off a cycle keep
 * their parent. `path` is scratch of n entries; state 0 new, 1 on the current path, 2 done. */
static void break_cycles(size_t *pidx, unsigned char *state, size_t *path, size_t n) {
  for (size_t s = 0; s < n; s++) {
    size_t len = 0, v = s;
    while (v != NO_PARENT && state[v] == 0) {
      state[v] = 1;
      path[len++] = v;
      v = pidx[v];
    }
    if (v != NO_PARENT && state[v] == 1) { /* v is on the current path: a cycle from v on */
      size_t k = len;
      while (k > 0 && path[k - 1] != v) k--;
      for (size_t c = k - 1; c < len; c++) pidx[path[c]] = NO_PARENT;
    }
    for (size_t k = 0; k < len; k++) state[path[k]] = 2;
  }
}

int stats_task_tree(stats_task *tasks, size_t n, size_t *order) {
  if (n == 0) return LS_OK;
  if (!tasks || !order) return LS_EINVAL;
  int rc = LS_ENOMEM;
  keyed *map = NULL, *keys = NULL; /* keys: 2n, the second half radix scratch */
  size_t *pidx = NULL, *first_child = NULL, *children = NULL, *stack = NULL;
  unsigned char *state = NULL;
  /* in this order an impossible n fails at the first, before any byte is asked for */
  if (!(map = alloc_array(n, sizeof *map)) || !(keys = alloc_array(n, 2 * sizeof *keys)) ||
      !(pidx = alloc_array(n, sizeof *pidx)) || !(children = alloc_array(n, sizeof *children)) ||
      !(stack = alloc_array(n, sizeof *stack)) ||
      !(first_child = alloc_array(n + 1, sizeof *first_child)) || /* CSR offsets */
      !(state = calloc(n, 1)))
    goto out;

  /* by id (ties by index: the radix sort is stable) */
  for (size_t i = 0; i < n; i++) map[i] = (keyed){order_key(tasks[i].id), i};
  radix_sort_keyed(map, keys, n);
  for (size_t i = 0; i < n; i++) {
    size_t p = tasks[i].parent == 0 ? NO_PARENT : find_id(map, n, tasks[i].parent);
    pidx[i] = p;
  }
  break_cycles(pidx, state, stack, n);

  /* children of each task, contiguous and already in sibling order: bucket the tasks,
   * taken in sibling order, by parent (roots form the bucket after the last task) */
  /* sibling order (created, id, index): a stable sort by created of the tasks in id order */
  for (size_t k = 0; k < n; k++) keys[k] = (keyed){order_key(tasks[map[k].idx].created), map[k].idx};
  radix_sort_keyed(keys, keys + n, n);
  size_t nroots = 0;
  memset(first_child, 0, (n + 1) * sizeof *first_child);
  for (size_t i = 0; i < n; i++) {
    if (pidx[i] == NO_PARENT) nroots++;
    else first_child[pidx[i] + 1]++;
  }
  for (size_t i = 0; i < n; i++) first_child[i + 1] += first_child[i];
  /* children[first_child[p] .. first_child[p + 1]) are p's children; the roots follow them
   * all, from children[first_child[n]] to the end */
  for (size_t i = 0; i < n; i++) stack[i] = first_child[i]; /* `stack` serves as cursors */
  size_t root_at = first_child[n];
  for (size_t k = 0; k < n; k++) {
    size_t i = keys[k].idx;
    if (pidx[i] == NO_PARENT) children[root_at++] = i;
    else children[stack[pidx[i]]++] = i;
  }

  /* depth-first, preorder: push the roots in reverse so the first pops first */
  size_t top = 0, emitted = 0;
  for (size_t r = nroots; r > 0; r--) {
    size_t i = children[first_child[n] + r - 1];
    tasks[i].depth = 0;
    stack[top++] = i;
  }
  while (top > 0) {
    size_t v = stack[--top];
    order[emitted++] = v;
    tasks[v].eff_parent = pidx[v] == NO_PARENT ? 0 : tasks[pidx[v]].id;
    for (size_t c = first_child[v + 1]; c > first_child[v]; c--) {
      size_t ch = children[c - 1];
      tasks[ch].depth = tasks[v].depth + 1;
      stack[top++] = ch;
    }
  }
  rc = LS_OK;
out:
  free(map);
  free(keys);
  free(pidx);
  free(first_child);
  free(children);
  free(stack);
  free(state);
  return rc;
}

size_t stats_series_envelope(stats_point *pts, size_t n, int64_t end, int64_t px) {
  if (n <= 2 || px <= 0 || end <= 0 || (int64_t)n <= 2 * px) return n;
  size_t out = 0, i = 0;
  while (i < n) {
    /* column of pts[i]: t * px / end without overflow (t, end < 2^53, px <= 10^4) */
    int64_t col = (int64_t)((double)pts[i].t * (double)px / (double)end);
    size_t lo = i, hi = i, j = i;
    for (; j < n && (int64_t)((double)pts[j].t * (double)px / (double)end) == col; j++) {
      if (pts[j].n < pts[lo].n) lo = j;
      if (pts[j].n > pts[hi].n) hi = j;
    }
    size_t a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
    stats_point pa = pts[a], pb = pts[b], last = pts[j - 1];
    pts[out++] = pa;
    if (b != a) pts[out++] = pb;
    if (j == n && j - 1 != b) pts[out++] = last;
    i = j;
  }
  return out;
}

/* ---- hot spots -------------------------------------------------------------------------- */

static int cmp_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

/* Awaits by (file, line), then input order, so a group's representative is deterministic. */
static int cmp_await_ptr(const void *a, const void *b) {
  const stats_await *x = *(const stats_await *const *)a, *y = *(const stats_await *const *)b;
  int c = cmp_str(x->file, y->file);
  if (c) return c;
  if (x->line != y->line) return (x->line > y->line) - (x->line < y->line);
  return (x > y) - (x < y);
}

static int cmp_hotspot(const void *a, const void *b) {
  const stats_hotspot *x = a, *y = b;
  if (x->total != y->total) return (x->total < y->total) - (x->total > y->total);
  if (x->count != y->count) return (x->count < y->count) - (x->count > y->count);
  int c = cmp_str(x->file, y->file);
  if (c) return c;
  return (x->line > y->line) - (x->line < y->line);
}

int stats_hotspots(const stats_await *aw, size_t n, stats_hotspot **out, size_t *nout) {
  if (!out || !nout) return LS_EINVAL;
  *out = NULL;
  *nout = 0;
  if (n == 0) return LS_OK;
  if (!aw) return LS_EINVAL;
  /* groups <= n: room for n, shrunk once the count is known */
  const stats_await **byloc = alloc_array(n, sizeof *byloc);
  stats_hotspot *hs = byloc ? alloc_array(n, sizeof *hs) : NULL;
  if (!hs) {
    free(byloc);
    return LS_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) byloc[i] = &aw[i];
  qsort(byloc, n, sizeof *byloc, cmp_await_ptr);
  /* func and what come from the group's longest await (the first such in input order) */
  size_t g = 0;
  for (size_t i = 0; i < n; i++) {
    const stats_await *a = byloc[i];
    int starts_group = i == 0 || cmp_str(a->file, byloc[i - 1]->file) || a->line != byloc[i - 1]->line;
    if (i > 0 && starts_group) g++;
    stats_hotspot *h = &hs[g];
    if (starts_group) {
      *h = (stats_hotspot){.file = a->file, .line = a->line, .func = a->func, .what = a->what,
                           .count = 0, .total = 0, .max = a->d};
    } else if (a->d > h->max) {
      h->max = a->d;
      h->func = a->func;
      h->what = a->what;
    }
    h->count++;
    h->total = sat_add(h->total, a->d);
  }
  free(byloc);
  size_t groups = g + 1;
  qsort(hs, groups, sizeof *hs, cmp_hotspot);
  stats_hotspot *shrunk = realloc(hs, groups * sizeof *hs);
  if (shrunk) hs = shrunk; /* else keep the larger block: still correct */
  *out = hs;
  *nout = groups;
  return LS_OK;
}
