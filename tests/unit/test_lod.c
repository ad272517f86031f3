/* test_lod.c — Check suite for server/lod.c: pixel arithmetic, overlap at the view's edges,
 * wide items kept whole, narrow ones reduced to the longest per (kind, column) with the right
 * count, output order, bad views and the output bound on a large random lane. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "lod.h"
#include "stats.h"
#include "check_run.h"

static lod_item item(int64_t t, int64_t d, int32_t kind, size_t src) {
  return (lod_item){.t = t, .d = d, .kind = kind, .n = -1, .src = src};
}

START_TEST(ns_per_px_and_column) {
  lod_view v = {0, 1000, 10};
  ck_assert_int_eq(lod_ns_per_px(&v), 100);
  lod_view odd = {0, 1001, 10}; /* rounds up */
  ck_assert_int_eq(lod_ns_per_px(&odd), 101);
  lod_view tiny = {0, 3, 10}; /* at least 1 */
  ck_assert_int_eq(lod_ns_per_px(&tiny), 1);
  ck_assert_int_eq(lod_column(&v, 0), 0);
  ck_assert_int_eq(lod_column(&v, 99), 0);
  ck_assert_int_eq(lod_column(&v, 100), 1);
  ck_assert_int_eq(lod_column(&v, 999), 9);
  ck_assert_int_eq(lod_column(&v, 5000), 9); /* clamped */
  ck_assert_int_eq(lod_column(&v, -50), 0);  /* clamped */
  lod_view off = {1000, 2000, 4};
  ck_assert_int_eq(lod_ns_per_px(&off), 250);
  ck_assert_int_eq(lod_column(&off, 1749), 2);
  ck_assert_int_eq(lod_column(&off, 1750), 3);
  /* huge spans do not overflow */
  lod_view huge = {INT64_MIN, INT64_MAX, 1};
  ck_assert_int_eq(lod_ns_per_px(&huge), INT64_MAX);
  ck_assert_int_eq(lod_column(&huge, 0), 0);
  lod_view huge2 = {INT64_MIN, INT64_MAX, 4};
  ck_assert_int_eq(lod_column(&huge2, INT64_MAX - 1), 3);
  /* bad views answer harmless values */
  lod_view bad = {10, 10, 5};
  ck_assert_int_eq(lod_ns_per_px(&bad), 1);
  ck_assert_int_eq(lod_column(&bad, 50), 0);
  ck_assert_int_eq(lod_ns_per_px(NULL), 1);
}
END_TEST

START_TEST(bad_views) {
  lod_item it[] = {item(0, 1, 0, 0)};
  size_t n = 99;
  lod_view zero_px = {0, 100, 0}, neg_px = {0, 100, -3}, empty = {100, 100, 10}, back = {100, 0, 10};
  ck_assert_int_eq(lod_pick_longest(it, 1, &zero_px, &n), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(it, 1, &neg_px, &n), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(it, 1, &empty, &n), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(it, 1, &back, &n), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(it, 1, NULL, &n), LS_EINVAL);
  lod_view ok = {0, 100, 10};
  ck_assert_int_eq(lod_pick_longest(it, 1, &ok, NULL), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(NULL, 1, &ok, &n), LS_EINVAL);
  ck_assert_int_eq(lod_pick_longest(NULL, 0, &ok, &n), LS_OK);
  ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(wide_items_kept) {
  /* view 0..1000 over 10 px: 100 ns per px; every item >= 100 ns is returned as is */
  lod_view v = {0, 1000, 10};
  lod_item it[] = {item(500, 100, 0, 0), item(0, 400, 0, 1), item(800, 250, 1, 2)};
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 3, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(it[0].src, 1);
  ck_assert_uint_eq(it[1].src, 0);
  ck_assert_uint_eq(it[2].src, 2);
  for (size_t i = 0; i < n; i++) ck_assert_int_eq(it[i].n, 1);
  ck_assert_int_eq(it[2].d, 250); /* not clipped */
}
END_TEST

START_TEST(narrow_reduced_per_column) {
  /* column 0: three steps (10, 30, 20 ns) → the 30 stands for 3; column 0 await (kind 1)
   * separately; column 5: two steps of equal length → the earlier one, n = 2 */
  lod_view v = {0, 1000, 10};
  lod_item it[] = {
      item(10, 10, 0, 0),  item(40, 30, 0, 1),  item(60, 20, 0, 2), item(20, 5, 1, 3),
      item(560, 7, 0, 4),  item(510, 7, 0, 5),  item(300, 99, 0, 6), /* 99 < 100: narrow */
  };
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 7, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 4);
  /* sorted by t: src 3 (t 20, await), src 1 (t 40), src 6 (t 300), src 5 (t 510) */
  ck_assert_uint_eq(it[0].src, 3);
  ck_assert_int_eq(it[0].n, 1);
  ck_assert_uint_eq(it[1].src, 1);
  ck_assert_int_eq(it[1].n, 3);
  ck_assert_int_eq(it[1].d, 30);
  ck_assert_uint_eq(it[2].src, 6);
  ck_assert_int_eq(it[2].n, 1);
  ck_assert_uint_eq(it[3].src, 5);
  ck_assert_int_eq(it[3].n, 2);
}
END_TEST

START_TEST(mixed_wide_and_narrow) {
  lod_view v = {0, 1000, 10};
  lod_item it[] = {item(0, 5, 0, 0), item(5, 500, 1, 1), item(50, 8, 0, 2), item(700, 1, 1, 3)};
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 4, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(it[0].src, 1); /* the wide await at t 5 */
  ck_assert_int_eq(it[0].n, 1);
  ck_assert_uint_eq(it[1].src, 2); /* t 50, the longer of two steps in column 0 */
  ck_assert_int_eq(it[1].n, 2);
  ck_assert_int_eq(it[1].t, 50);
  ck_assert_uint_eq(it[2].src, 3);
  ck_assert_int_eq(it[2].n, 1);
}
END_TEST

START_TEST(boundaries) {
  /* view [1000, 2000): an item ending exactly at from is out; one starting at to is out;
   * one straddling from is in (column 0); an instant at from is in, at to is out */
  lod_view v = {1000, 2000, 10};
  lod_item it[] = {
      item(900, 100, 0, 0), /* [900,1000): out */
      item(2000, 50, 0, 1), /* starts at to: out */
      item(950, 60, 0, 2),  /* [950,1010): in, narrow (60 < 100), column 0 */
      item(1000, 0, 1, 3),  /* instant at from: in */
      item(2000, 0, 1, 4),  /* instant at to: out */
      item(1999, 0, 1, 5),  /* instant just inside: column 9 */
      item(500, 5000, 2, 6) /* covers the view: wide */
  };
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 7, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert_uint_eq(it[0].src, 6);
  ck_assert_uint_eq(it[1].src, 2);
  ck_assert_uint_eq(it[2].src, 3);
  ck_assert_uint_eq(it[3].src, 5);
}
END_TEST

START_TEST(ties_in_time_by_kind) {
  lod_view v = {0, 100, 100}; /* 1 ns per px: everything >= 1 is wide */
  lod_item it[] = {item(5, 3, 2, 0), item(5, 3, 0, 1), item(5, 0, 1, 2)};
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 3, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(it[0].kind, 0);
  ck_assert_int_eq(it[1].kind, 1);
  ck_assert_int_eq(it[2].kind, 2);
}
END_TEST

START_TEST(identical_items_by_src) {
  /* wide: same t and kind → longer first, then the caller's row order */
  lod_view v = {0, 100, 100};
  lod_item w[] = {item(5, 3, 0, 1), item(5, 3, 0, 0), item(5, 7, 0, 2)};
  size_t n;
  ck_assert_int_eq(lod_pick_longest(w, 3, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(w[0].src, 2);
  ck_assert_uint_eq(w[1].src, 0);
  ck_assert_uint_eq(w[2].src, 1);
  /* narrow twins: the lower src survives, standing for both */
  lod_view v2 = {0, 1000, 10};
  lod_item t[] = {item(5, 3, 0, 1), item(5, 3, 0, 0)};
  ck_assert_int_eq(lod_pick_longest(t, 2, &v2, &n), LS_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(t[0].src, 0);
  ck_assert_int_eq(t[0].n, 2);
}
END_TEST

START_TEST(negative_duration_is_instant) {
  lod_view v = {0, 100, 10};
  lod_item it[] = {item(50, -5, 0, 0), item(120, -5, 0, 1)};
  size_t n;
  ck_assert_int_eq(lod_pick_longest(it, 2, &v, &n), LS_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(it[0].d, 0);
  ck_assert_int_eq(it[0].t, 50);
}
END_TEST

START_TEST(output_bound_random) {
  /* 200k random items of 2 kinds in a 1500-px view: output <= kinds * px + wide, counts add up
   * to the number of overlapping items, and the output is sorted by t */
  const size_t n = 200000;
  const int32_t px = 1500, kinds = 2;
  lod_view v = {1000000, 1000000 + 15000000, px}; /* 10 µs per px */
  lod_item *it = malloc(n * sizeof *it);
  ck_assert_ptr_nonnull(it);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t overlapping = 0, wide = 0;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int64_t t = (int64_t)(x % 20000000);
    int64_t d = (i % 1000 == 0) ? 50000 : (int64_t)((x >> 32) % 9000);
    it[i] = item(t, d, (int32_t)(i % (size_t)kinds), i);
    int in = t < v.to && (d == 0 ? t >= v.from : t + d > v.from);
    overlapping += in;
    wide += in && d >= lod_ns_per_px(&v);
  }
  size_t nout;
  ck_assert_int_eq(lod_pick_longest(it, n, &v, &nout), LS_OK);
  ck_assert_uint_le(nout, (size_t)kinds * (size_t)px + wide);
  ck_assert_uint_ge(nout, wide);
  size_t sum = 0;
  for (size_t i = 0; i < nout; i++) {
    ck_assert_int_ge(it[i].n, 1);
    sum += (size_t)it[i].n;
    if (i) ck_assert_int_le(it[i - 1].t, it[i].t);
  }
  ck_assert_uint_eq(sum, overlapping);
  free(it);
}
END_TEST

static Suite *lod_suite(void) {
  Suite *s = suite_create("lod");
  TCase *c = tcase_create("lod");
  tcase_add_test(c, ns_per_px_and_column);
  tcase_add_test(c, bad_views);
  tcase_add_test(c, wide_items_kept);
  tcase_add_test(c, narrow_reduced_per_column);
  tcase_add_test(c, mixed_wide_and_narrow);
  tcase_add_test(c, boundaries);
  tcase_add_test(c, ties_in_time_by_kind);
  tcase_add_test(c, identical_items_by_src);
  tcase_add_test(c, negative_duration_is_instant);
  tcase_add_test(c, output_bound_random);
  suite_add_tcase(s, c);
  return s;
}

int main(void) {
  return check_run(lod_suite());
}
