/* lod.h — level-of-detail selection for a timeline viewport (pure functions).
 * Given the items of one lane and a viewport [from, to) of px columns, keep every item at
 * least one pixel wide and, for narrower ones, only the longest per (kind, pixel column),
 * counting how many each kept item stands for. No I/O; query.c feeds rows and writes JSON. */
#ifndef LS_LOD_H
#define LS_LOD_H

#include <stddef.h>
#include <stdint.h>

typedef struct lod_item {
  int64_t t;      /* start, ns */
  int64_t d;      /* duration, ns (>= 0) */
  int32_t kind;   /* small integer chosen by the caller (e.g. 0 step, 1 await) */
  int32_t n;      /* output: how many input items this one stands for (>= 1) */
  size_t src;     /* caller's index of the row, carried through untouched */
} lod_item;

typedef struct lod_view {
  int64_t from, to; /* half-open, to > from */
  int32_t px;       /* columns, >= 1 */
} lod_view;

/* ns per pixel column, at least 1: (to - from + px - 1) / px. */
int64_t lod_ns_per_px(const lod_view *v);

/* Pixel column of time t (clamped to [0, px-1]). */
int32_t lod_column(const lod_view *v, int64_t t);

/* Filter and reduce in place. items[0..n) in any order; on return items[0..*nout) hold the
 * kept items sorted by t (ties by kind), each with n set. Items not overlapping [from, to)
 * are dropped (an item overlaps when t < to and t + d > from, or d == 0 and from <= t < to).
 * Returns 0, LS_EINVAL for a bad view, LS_ENOMEM. Worst case output per lane:
 * (kinds * px) narrow items + the wide ones. */
int lod_pick_longest(lod_item *items, size_t n, const lod_view *v, size_t *nout);

#endif
