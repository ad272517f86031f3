/* lod.c — level-of-detail selection for one lane of a timeline viewport (pure functions):
 * items at least a pixel wide stay, narrower ones are reduced to the longest per (kind, pixel
 * column) with a count. No I/O, no allocation; query.c feeds the rows and writes the JSON. */
#include "lod.h"

#include <stdlib.h>

#include "errors.h" /* LS_OK, LS_EINVAL */
#include "stats.h"

static int view_ok(const lod_view *v) { return v && v->px >= 1 && v->to > v->from; }

/* Width of the view in ns as an unsigned number: to > from, so it never wraps. */
static uint64_t view_span(const lod_view *v) { return (uint64_t)v->to - (uint64_t)v->from; }

int64_t lod_ns_per_px(const lod_view *v) {
  if (!view_ok(v)) return 1;
  uint64_t span = view_span(v), px = (uint64_t)v->px;
  uint64_t per = span / px + (span % px != 0); /* ceil without overflowing span + px - 1 */
  if (per > (uint64_t)INT64_MAX) return INT64_MAX;
  return per < 1 ? 1 : (int64_t)per;
}

int32_t lod_column(const lod_view *v, int64_t t) {
  if (!view_ok(v) || t <= v->from) return 0;
  uint64_t col = ((uint64_t)t - (uint64_t)v->from) / (uint64_t)lod_ns_per_px(v);
  return col >= (uint64_t)v->px ? v->px - 1 : (int32_t)col;
}

/* t + d > from without overflow (d >= 0). */
static int ends_after(int64_t t, int64_t d, int64_t from) {
  if (t > from) return 1;
  return (uint64_t)d > (uint64_t)from - (uint64_t)t;
}

static int overlaps(const lod_item *it, const lod_view *v) {
  if (it->t >= v->to) return 0;
  if (it->d == 0) return it->t >= v->from;
  return ends_after(it->t, it->d, v->from);
}

static int cmp64(int64_t a, int64_t b) { return (a > b) - (a < b); }

/* While reducing, `n` holds the item's pixel column: kind, column, longest first, then
 * earliest, then the caller's row order, so the survivor of each group is deterministic. */
static int cmp_group(const void *a, const void *b) {
  const lod_item *x = a, *y = b;
  if (x->kind != y->kind) return cmp64(x->kind, y->kind);
  if (x->n != y->n) return cmp64(x->n, y->n);
  if (x->d != y->d) return cmp64(y->d, x->d);
  if (x->t != y->t) return cmp64(x->t, y->t);
  return (x->src > y->src) - (x->src < y->src);
}

static int cmp_output(const void *a, const void *b) {
  const lod_item *x = a, *y = b;
  if (x->t != y->t) return cmp64(x->t, y->t);
  if (x->kind != y->kind) return cmp64(x->kind, y->kind);
  if (x->d != y->d) return cmp64(y->d, x->d);
  return (x->src > y->src) - (x->src < y->src);
}

int lod_pick_longest(lod_item *items, size_t n, const lod_view *v, size_t *nout) {
  if (!view_ok(v) || !nout || (n > 0 && !items)) return LS_EINVAL;
  if (n == 0) { /* nothing to pick; also keeps pointer arithmetic off a NULL items */
    *nout = 0;
    return LS_OK;
  }
  int64_t per = lod_ns_per_px(v);
  /* keep what overlaps the view, wide items first: [0, wide) wide, [wide, kept) narrow */
  size_t wide = 0, kept = 0;
  for (size_t i = 0; i < n; i++) {
    lod_item it = items[i];
    if (it.d < 0) it.d = 0; /* a negative duration is a caller bug; treat as an instant */
    if (!overlaps(&it, v)) continue;
    if (it.d >= per) {
      it.n = 1;
      items[kept] = items[wide];
      items[wide++] = it;
    } else {
      it.n = lod_column(v, it.t);
      items[kept] = it;
    }
    kept++;
  }
  /* narrow: sort by group and keep each group's first, counting the group's size */
  lod_item *narrow = items ? items + wide : NULL; /* no arithmetic on NULL (n == 0): UB */
  size_t nn = kept - wide, out = wide;
  if (nn > 1) qsort(narrow, nn, sizeof *narrow, cmp_group);
  for (size_t i = 0; i < nn;) {
    size_t j = i + 1;
    while (j < nn && narrow[j].kind == narrow[i].kind && narrow[j].n == narrow[i].n) j++;
    lod_item best = narrow[i];
    best.n = (int32_t)((j - i) > INT32_MAX ? INT32_MAX : (j - i));
    items[out++] = best;
    i = j;
  }
  if (out > 1) qsort(items, out, sizeof *items, cmp_output);
  *nout = out;
  return LS_OK;
}
