/* test_stats.c — Check suite for server/stats.c: concurrency sweep and series, nearest-rank
 * lag percentiles, task-tree depths/order (missing parents, cycles) and hot-spot grouping,
 * each on hand-computed cases, plus one large input to keep the O(n log n) promise honest. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "check_run.h"

#define NOEND (-1)

/* ---- max concurrency -------------------------------------------------------------------- */

static int64_t maxc(const stats_interval *iv, size_t n, int64_t end) {
  int64_t m = -7;
  ck_assert_int_eq(stats_max_concurrency(iv, n, end, &m), LS_OK);
  return m;
}

START_TEST(conc_empty) {
  int64_t m = -7;
  ck_assert_int_eq(stats_max_concurrency(NULL, 0, 100, &m), LS_OK);
  ck_assert_int_eq(m, 0);
}
END_TEST

START_TEST(conc_nested_and_disjoint) {
  /* [0,100) [10,20) [15,30) [50,60): at 15..20 three are alive */
  stats_interval iv[] = {{0, 100}, {10, 20}, {15, 30}, {50, 60}};
  ck_assert_int_eq(maxc(iv, 4, 100), 3);
}
END_TEST

START_TEST(conc_touching_ends_before_starts) {
  /* a ends at 10 exactly when b starts: never two at once */
  stats_interval iv[] = {{10, 20}, {0, 10}, {20, 30}};
  ck_assert_int_eq(maxc(iv, 3, 30), 1);
}
END_TEST

START_TEST(conc_equal_starts) {
  stats_interval iv[] = {{5, 6}, {5, 6}, {5, 6}, {6, 7}};
  ck_assert_int_eq(maxc(iv, 4, 10), 3);
}
END_TEST

START_TEST(conc_no_done_alive_to_end) {
  /* the second has no done: alive until the session end 100, overlapping the third */
  stats_interval iv[] = {{0, 10}, {5, NOEND}, {90, 95}};
  ck_assert_int_eq(maxc(iv, 3, 100), 2);
  /* with the session ending at 90 it is gone before the third starts */
  ck_assert_int_eq(maxc(iv, 3, 90), 2); /* still overlaps the first on [5,10) */
  stats_interval lone[] = {{5, NOEND}, {90, 95}};
  ck_assert_int_eq(maxc(lone, 2, 90), 1);
  ck_assert_int_eq(maxc(lone, 2, 91), 2);
}
END_TEST

START_TEST(conc_zero_length_and_inverted) {
  /* zero-length and ended-before-created intervals count for no time at all */
  stats_interval iv[] = {{10, 10}, {10, 10}, {20, 5}, {0, 30}};
  ck_assert_int_eq(maxc(iv, 4, 30), 1);
  stats_interval only[] = {{10, 10}};
  ck_assert_int_eq(maxc(only, 1, 30), 0);
  /* no done and created after the session end: nothing */
  stats_interval late[] = {{50, NOEND}};
  ck_assert_int_eq(maxc(late, 1, 40), 0);
}
END_TEST

START_TEST(conc_unsorted_input) {
  stats_interval iv[] = {{70, 90}, {0, 50}, {60, 80}, {40, 75}, {10, 20}};
  /* at 70..75: [70,90) [60,80) [40,75) */
  ck_assert_int_eq(maxc(iv, 5, 100), 3);
}
END_TEST

START_TEST(conc_bad_args) {
  stats_interval iv[] = {{0, 1}};
  ck_assert_int_eq(stats_max_concurrency(iv, 1, 1, NULL), LS_EINVAL);
  int64_t m;
  ck_assert_int_eq(stats_max_concurrency(NULL, 1, 1, &m), LS_EINVAL);
}
END_TEST

/* ---- concurrency series ----------------------------------------------------------------- */

static void expect_series(const stats_interval *iv, size_t n, int64_t end, const stats_point *want,
                          size_t nwant, int64_t wantmax) {
  stats_point *pts = NULL;
  size_t np = 99;
  int64_t m = -1;
  ck_assert_int_eq(stats_concurrency_series(iv, n, end, &pts, &np, &m), LS_OK);
  ck_assert_ptr_nonnull(pts);
  ck_assert_uint_eq(np, nwant);
  for (size_t i = 0; i < nwant; i++) {
    ck_assert_msg(pts[i].t == want[i].t && pts[i].n == want[i].n,
                  "point %zu: got (%lld,%lld) want (%lld,%lld)", i, (long long)pts[i].t,
                  (long long)pts[i].n, (long long)want[i].t, (long long)want[i].n);
  }
  ck_assert_int_eq(m, wantmax);
  int64_t m2 = -1;
  ck_assert_int_eq(stats_max_concurrency(iv, n, end, &m2), LS_OK);
  ck_assert_int_eq(m2, m);
  free(pts);
}

START_TEST(series_empty) {
  stats_point want[] = {{0, 0}, {100, 0}};
  expect_series(NULL, 0, 100, want, 2, 0);
  stats_point single[] = {{0, 0}};
  expect_series(NULL, 0, 0, single, 1, 0);
}
END_TEST

START_TEST(series_design_example) {
  /* DESIGN.md: task 1 [0, no done), task 2 [120000, 95000000), session end 250000000 */
  stats_interval iv[] = {{120000, 95000000}, {0, NOEND}};
  stats_point want[] = {{0, 1}, {120000, 2}, {95000000, 1}, {250000000, 1}};
  expect_series(iv, 2, 250000000, want, 4, 2);
}
END_TEST

START_TEST(series_starts_late_and_touching) {
  /* [10,20) and [20,30): at 20 one ends and one starts — no change, no point */
  stats_interval iv[] = {{20, 30}, {10, 20}};
  stats_point want[] = {{0, 0}, {10, 1}, {30, 0}, {40, 0}};
  expect_series(iv, 2, 40, want, 4, 1);
}
END_TEST

START_TEST(series_ends_at_session_end) {
  stats_interval iv[] = {{0, 50}, {10, 50}};
  /* the final point closes the last step: it repeats the count in force before the end */
  stats_point want[] = {{0, 1}, {10, 2}, {50, 2}};
  expect_series(iv, 2, 50, want, 3, 2);
  stats_interval iv2[] = {{0, 10}, {5, NOEND}};
  stats_point want2[] = {{0, 1}, {5, 2}, {10, 1}, {20, 1}};
  expect_series(iv2, 2, 20, want2, 4, 2);
}
END_TEST

START_TEST(series_events_after_end) {
  /* a done after the end event: the series stops at session_end with the count then in force */
  stats_interval iv[] = {{0, 80}, {10, 30}};
  stats_point want[] = {{0, 1}, {10, 2}, {30, 1}, {50, 1}};
  expect_series(iv, 2, 50, want, 4, 2);
}
END_TEST

START_TEST(series_only_zero_length) {
  stats_interval iv[] = {{5, 5}, {7, 3}};
  stats_point want[] = {{0, 0}, {9, 0}};
  expect_series(iv, 2, 9, want, 2, 0);
}
END_TEST

START_TEST(series_negative_start) {
  /* not produced by ingest, but the series must still start at the first instant */
  stats_interval iv[] = {{-5, 5}};
  stats_point want[] = {{-5, 1}, {5, 0}, {10, 0}};
  expect_series(iv, 1, 10, want, 3, 1);
}
END_TEST

START_TEST(series_bad_args) {
  stats_point *p;
  size_t np;
  int64_t m;
  ck_assert_int_eq(stats_concurrency_series(NULL, 0, 1, NULL, &np, &m), LS_EINVAL);
  ck_assert_int_eq(stats_concurrency_series(NULL, 0, 1, &p, NULL, &m), LS_EINVAL);
  ck_assert_int_eq(stats_concurrency_series(NULL, 0, 1, &p, &np, NULL), LS_EINVAL);
  ck_assert_int_eq(stats_concurrency_series(NULL, 3, 1, &p, &np, &m), LS_EINVAL);
  ck_assert_ptr_null(p);
}
END_TEST

START_TEST(series_large) {
  /* 100k tasks, each [i, i + 1000): at most 1000 alive; series strictly increasing in t */
  size_t n = 100000;
  stats_interval *iv = malloc(n * sizeof *iv);
  ck_assert_ptr_nonnull(iv);
  for (size_t i = 0; i < n; i++) {
    size_t k = (i * 7919) % n; /* shuffled */
    iv[i].created = (int64_t)k;
    iv[i].ended = (int64_t)k + 1000;
  }
  stats_point *pts;
  size_t np;
  int64_t m;
  ck_assert_int_eq(stats_concurrency_series(iv, n, (int64_t)n + 1000, &pts, &np, &m), LS_OK);
  ck_assert_int_eq(m, 1000);
  ck_assert_int_eq(pts[0].t, 0);
  ck_assert_int_eq(pts[0].n, 1);
  for (size_t i = 1; i < np; i++) ck_assert_int_lt(pts[i - 1].t, pts[i].t);
  ck_assert_int_eq(pts[np - 1].t, (int64_t)n + 1000);
  ck_assert_int_eq(pts[np - 1].n, 0);
  free(pts);
  free(iv);
}
END_TEST

START_TEST(conc_random_against_brute_force) {
  /* 2000 intervals over the whole [0, 2^53) range with many repeated instants: the maximum
   * equals the brute-force count at every start instant (where a maximum is always reached) */
  enum { N = 2000 };
  static stats_interval iv[N];
  uint64_t x = 0x2545F4914F6CDD1Dull;
  const int64_t span = (int64_t)1 << 53;
  for (int i = 0; i < N; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int64_t c = (i % 3 == 0) ? (int64_t)(x % 50) * 1000 : (int64_t)(x % (uint64_t)span);
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int64_t e = (i % 7 == 0) ? NOEND : c + (int64_t)(x % 4000);
    if (e != NOEND && e >= span) e = span - 1;
    iv[i].created = c;
    iv[i].ended = e;
  }
  int64_t end = span - 1, brute = 0;
  for (int i = 0; i < N; i++) {
    int64_t t = iv[i].created, alive = 0;
    for (int j = 0; j < N; j++) {
      int64_t e = iv[j].ended < 0 ? end : iv[j].ended;
      alive += iv[j].created <= t && t < e;
    }
    if (alive > brute) brute = alive;
  }
  ck_assert_int_gt(brute, 1);
  ck_assert_int_eq(maxc(iv, N, end), brute);
}
END_TEST

/* ---- lag ---------------------------------------------------------------------------------- */

START_TEST(lag_zero) {
  stats_lag l;
  memset(&l, 0xff, sizeof l);
  ck_assert_int_eq(stats_lag_summary(NULL, 0, &l), LS_OK);
  ck_assert_int_eq(l.samples, 0);
  ck_assert(l.avg_ms == 0 && l.p50_ms == 0 && l.p95_ms == 0 && l.p99_ms == 0 && l.max_ms == 0);
  ck_assert_int_eq(stats_lag_summary(NULL, 0, NULL), LS_EINVAL);
  ck_assert_int_eq(stats_lag_summary(NULL, 2, &l), LS_EINVAL);
}
END_TEST

START_TEST(lag_one) {
  int64_t d[] = {2300000};
  stats_lag l;
  ck_assert_int_eq(stats_lag_summary(d, 1, &l), LS_OK);
  ck_assert_int_eq(l.samples, 1);
  ck_assert_double_eq(l.avg_ms, 2.3);
  ck_assert_double_eq(l.p50_ms, 2.3);
  ck_assert_double_eq(l.p95_ms, 2.3);
  ck_assert_double_eq(l.p99_ms, 2.3);
  ck_assert_double_eq(l.max_ms, 2.3);
}
END_TEST

START_TEST(lag_two) {
  /* ranks: p50 ceil(1.0)=1, p95 ceil(1.9)=2, p99 ceil(1.98)=2 */
  int64_t d[] = {4000000, 1000000};
  stats_lag l;
  ck_assert_int_eq(stats_lag_summary(d, 2, &l), LS_OK);
  ck_assert_double_eq(l.p50_ms, 1.0);
  ck_assert_double_eq(l.p95_ms, 4.0);
  ck_assert_double_eq(l.p99_ms, 4.0);
  ck_assert_double_eq(l.max_ms, 4.0);
  ck_assert_double_eq(l.avg_ms, 2.5);
  ck_assert_int_eq(d[0], 1000000); /* sorted in place */
}
END_TEST

START_TEST(lag_ten) {
  /* 1..10 ms shuffled: p50 rank 5 → 5, p95 rank ceil(9.5)=10, p99 rank 10, avg 5.5 */
  int64_t d[] = {7, 3, 10, 1, 5, 9, 2, 8, 4, 6};
  for (int i = 0; i < 10; i++) d[i] *= 1000000;
  stats_lag l;
  ck_assert_int_eq(stats_lag_summary(d, 10, &l), LS_OK);
  ck_assert_int_eq(l.samples, 10);
  ck_assert_double_eq(l.p50_ms, 5.0);
  ck_assert_double_eq(l.p95_ms, 10.0);
  ck_assert_double_eq(l.p99_ms, 10.0);
  ck_assert_double_eq(l.avg_ms, 5.5);
  ck_assert_double_eq(l.max_ms, 10.0);
}
END_TEST

START_TEST(lag_hundred) {
  /* 1..100 ms reversed: rank 50 → 50, rank 95 → 95, rank 99 → 99 (exact ranks, no rounding up) */
  int64_t d[100];
  for (int i = 0; i < 100; i++) d[i] = (int64_t)(100 - i) * 1000000;
  stats_lag l;
  ck_assert_int_eq(stats_lag_summary(d, 100, &l), LS_OK);
  ck_assert_double_eq(l.p50_ms, 50.0);
  ck_assert_double_eq(l.p95_ms, 95.0);
  ck_assert_double_eq(l.p99_ms, 99.0);
  ck_assert_double_eq(l.max_ms, 100.0);
  ck_assert_double_eq(l.avg_ms, 50.5);
}
END_TEST

START_TEST(lag_ties_and_sub_ms) {
  /* 101 samples: rank p50 = ceil(50.5) = 51, p95 = ceil(95.95) = 96, p99 = ceil(99.99) = 100 */
  int64_t d[101];
  for (int i = 0; i < 101; i++) d[i] = (int64_t)i * 1000; /* 0, 1 µs, ... 100 µs */
  stats_lag l;
  ck_assert_int_eq(stats_lag_summary(d, 101, &l), LS_OK);
  ck_assert_double_eq(l.p50_ms, 0.050);
  ck_assert_double_eq(l.p95_ms, 0.095);
  ck_assert_double_eq(l.p99_ms, 0.099);
  ck_assert_double_eq(l.max_ms, 0.100);
}
END_TEST

/* ---- task tree -------------------------------------------------------------------------- */

static void run_tree(stats_task *t, size_t n, size_t *order) {
  for (size_t i = 0; i < n; i++) {
    t[i].eff_parent = -9;
    t[i].depth = -9;
    order[i] = (size_t)-1;
  }
  ck_assert_int_eq(stats_task_tree(t, n, order), LS_OK);
}

START_TEST(tree_basic_order) {
  /* 1 ─┬─ 2 ── 4
   *    └─ 3        siblings 2 and 3 by created (3 created first); 5 a second root */
  stats_task t[] = {
      {.id = 4, .parent = 2, .created = 40}, {.id = 2, .parent = 1, .created = 30},
      {.id = 5, .parent = 0, .created = 5},  {.id = 1, .parent = 0, .created = 0},
      {.id = 3, .parent = 1, .created = 10},
  };
  size_t order[5];
  run_tree(t, 5, order);
  int64_t want_ids[] = {1, 3, 2, 4, 5};
  for (int i = 0; i < 5; i++) ck_assert_int_eq(t[order[i]].id, want_ids[i]);
  /* depths and effective parents by input index */
  int32_t depth[] = {2, 1, 0, 0, 1};
  int64_t eff[] = {2, 1, 0, 0, 1};
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(t[i].depth, depth[i]);
    ck_assert_int_eq(t[i].eff_parent, eff[i]);
  }
}
END_TEST

START_TEST(tree_siblings_equal_created_by_id) {
  stats_task t[] = {
      {.id = 1, .parent = 0, .created = 0},
      {.id = 9, .parent = 1, .created = 10},
      {.id = 3, .parent = 1, .created = 10},
      {.id = 6, .parent = 1, .created = 10},
  };
  size_t order[4];
  run_tree(t, 4, order);
  int64_t want_ids[] = {1, 3, 6, 9};
  for (int i = 0; i < 4; i++) ck_assert_int_eq(t[order[i]].id, want_ids[i]);
}
END_TEST

START_TEST(tree_missing_parent) {
  /* 7's parent 99 never arrived: 7 is a root, its child keeps depth 1 */
  stats_task t[] = {
      {.id = 8, .parent = 7, .created = 20},
      {.id = 7, .parent = 99, .created = 10},
      {.id = 1, .parent = 0, .created = 0},
  };
  size_t order[3];
  run_tree(t, 3, order);
  ck_assert_int_eq(t[1].eff_parent, 0);
  ck_assert_int_eq(t[1].depth, 0);
  ck_assert_int_eq(t[0].eff_parent, 7);
  ck_assert_int_eq(t[0].depth, 1);
  int64_t want_ids[] = {1, 7, 8};
  for (int i = 0; i < 3; i++) ck_assert_int_eq(t[order[i]].id, want_ids[i]);
}
END_TEST

START_TEST(tree_cycles) {
  /* 2 → 3 → 2 is a cycle; 4 hangs off it (parent 3); 5 is its own parent */
  stats_task t[] = {
      {.id = 2, .parent = 3, .created = 20}, {.id = 3, .parent = 2, .created = 30},
      {.id = 4, .parent = 3, .created = 40}, {.id = 5, .parent = 5, .created = 10},
      {.id = 1, .parent = 0, .created = 0},
  };
  size_t order[5];
  run_tree(t, 5, order);
  ck_assert_int_eq(t[0].eff_parent, 0);
  ck_assert_int_eq(t[1].eff_parent, 0);
  ck_assert_int_eq(t[3].eff_parent, 0);
  ck_assert_int_eq(t[0].depth, 0);
  ck_assert_int_eq(t[1].depth, 0);
  ck_assert_int_eq(t[3].depth, 0);
  ck_assert_int_eq(t[2].eff_parent, 3);
  ck_assert_int_eq(t[2].depth, 1);
  /* roots by created: 1 (0), 5 (10), 2 (20), 3 (30) → 4 under 3 */
  int64_t want_ids[] = {1, 5, 2, 3, 4};
  for (int i = 0; i < 5; i++) ck_assert_int_eq(t[order[i]].id, want_ids[i]);
}
END_TEST

START_TEST(tree_long_cycle_with_tail) {
  /* 1→2→3→4→1 (each names the next as parent) and a chain 10→11→12 leading into 3 */
  stats_task t[] = {
      {.id = 1, .parent = 2, .created = 1},  {.id = 2, .parent = 3, .created = 2},
      {.id = 3, .parent = 4, .created = 3},  {.id = 4, .parent = 1, .created = 4},
      {.id = 12, .parent = 3, .created = 5}, {.id = 11, .parent = 12, .created = 6},
      {.id = 10, .parent = 11, .created = 7},
  };
  size_t order[7];
  run_tree(t, 7, order);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(t[i].eff_parent, 0);
  ck_assert_int_eq(t[4].depth, 1);
  ck_assert_int_eq(t[5].depth, 2);
  ck_assert_int_eq(t[6].depth, 3);
  int64_t want_ids[] = {1, 2, 3, 12, 11, 10, 4};
  for (int i = 0; i < 7; i++) ck_assert_int_eq(t[order[i]].id, want_ids[i]);
}
END_TEST

START_TEST(tree_duplicate_ids) {
  /* ids should be unique; if they repeat the result is still a forest in input order */
  stats_task t[] = {{.id = 4, .parent = 0, .created = 0}, {.id = 4, .parent = 0, .created = 0}};
  size_t order[2];
  run_tree(t, 2, order);
  ck_assert_uint_eq(order[0], 0);
  ck_assert_uint_eq(order[1], 1);
  ck_assert_int_eq(t[0].depth, 0);
  ck_assert_int_eq(t[1].depth, 0);
}
END_TEST

START_TEST(tree_large_ids_shuffled) {
  /* ids spread over [1, 2^53) and given in scrambled order; created times collide often so
   * the id tie-break decides: siblings must come out by (created, id) */
  enum { N = 5000 };
  static stats_task t[N];
  static size_t order[N], pos[N];
  static int64_t ids[N];
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < N; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    ids[i] = (int64_t)(x % (((uint64_t)1 << 53) - 1)) + 1; /* collisions are vanishingly rare */
  }
  for (int i = 0; i < N; i++) {
    int k = (int)(((long)i * 761) % N); /* scrambled slot: a bijection, 761 and N are coprime */
    t[k].id = ids[i];
    t[k].parent = i == 0 ? 0 : ids[(i - 1) / 4]; /* a 4-ary tree by generation index */
    t[k].created = (i / 16) * 100;
  }
  run_tree(t, N, order);
  for (int i = 0; i < N; i++) pos[order[i]] = (size_t)i;
  for (int k = 0; k < N; k++) {
    if (t[k].parent == 0) continue;
    size_t p = 0;
    while (p < N && t[p].id != t[k].parent) p++;
    ck_assert_uint_lt(p, N);
    ck_assert_uint_lt(pos[p], pos[k]);
    ck_assert_int_eq(t[k].depth, t[p].depth + 1);
  }
  /* consecutive siblings in the order are sorted by (created, id) */
  for (int i = 1; i < N; i++) {
    const stats_task *a = &t[order[i - 1]], *b = &t[order[i]];
    if (a->eff_parent == b->eff_parent && a->depth == b->depth)
      ck_assert(a->created < b->created || (a->created == b->created && a->id < b->id));
  }
}
END_TEST

START_TEST(tree_empty_and_bad) {
  ck_assert_int_eq(stats_task_tree(NULL, 0, NULL), LS_OK);
  stats_task t[] = {{.id = 1}};
  ck_assert_int_eq(stats_task_tree(t, 1, NULL), LS_EINVAL);
  size_t o[1];
  ck_assert_int_eq(stats_task_tree(NULL, 1, o), LS_EINVAL);
}
END_TEST

START_TEST(tree_deep_chain) {
  /* a 100k-deep chain given in reverse: no recursion, depth = index, order = chain */
  size_t n = 100000;
  stats_task *t = calloc(n, sizeof *t);
  size_t *order = malloc(n * sizeof *order);
  ck_assert_ptr_nonnull(t);
  ck_assert_ptr_nonnull(order);
  for (size_t i = 0; i < n; i++) {
    size_t k = n - 1 - i;
    t[k].id = (int64_t)i + 1;
    t[k].parent = (int64_t)i; /* 0 for the first */
    t[k].created = (int64_t)i;
  }
  ck_assert_int_eq(stats_task_tree(t, n, order), LS_OK);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(t[order[i]].id, (int64_t)i + 1);
    ck_assert_int_eq(t[order[i]].depth, (int32_t)i);
  }
  free(order);
  free(t);
}
END_TEST

START_TEST(tree_wide_random) {
  /* 100k tasks, parent of i is a random earlier task: parents precede children in order */
  size_t n = 100000;
  stats_task *t = calloc(n, sizeof *t);
  size_t *order = malloc(n * sizeof *order), *pos = malloc(n * sizeof *pos);
  ck_assert(t && order && pos);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    t[i].id = (int64_t)i + 1;
    t[i].parent = i == 0 ? 0 : (int64_t)(x % i) + 1;
    t[i].created = (int64_t)i;
  }
  ck_assert_int_eq(stats_task_tree(t, n, order), LS_OK);
  for (size_t i = 0; i < n; i++) pos[order[i]] = i;
  for (size_t i = 1; i < n; i++) {
    size_t p = (size_t)t[i].parent - 1;
    ck_assert_uint_lt(pos[p], pos[i]);
    ck_assert_int_eq(t[i].depth, t[p].depth + 1);
    ck_assert_int_eq(t[i].eff_parent, t[i].parent);
  }
  free(pos);
  free(order);
  free(t);
}
END_TEST

/* ---- hot spots ---------------------------------------------------------------------------- */

START_TEST(hot_grouping_and_order) {
  stats_await aw[] = {
      {"app/db.py", 23, 45, "fetch_user", "execute"},
      {"app/http.py", 7, 100, "get", "request"},
      {"app/db.py", 23, 60, "fetch_user2", "execute2"}, /* longest of db.py:23 */
      {"app/db.py", 24, 10, "x", "y"},
      {"app/db.py", 23, 60, "later", "later"},            /* ties the max: first one wins */
  };
  stats_hotspot *h = NULL;
  size_t nh = 0;
  ck_assert_int_eq(stats_hotspots(aw, 5, &h, &nh), LS_OK);
  ck_assert_uint_eq(nh, 3);
  /* db.py:23 total 165, http.py:7 100, db.py:24 10 */
  ck_assert_str_eq(h[0].file, "app/db.py");
  ck_assert_int_eq(h[0].line, 23);
  ck_assert_int_eq(h[0].count, 3);
  ck_assert_int_eq(h[0].total, 165);
  ck_assert_int_eq(h[0].max, 60);
  ck_assert_str_eq(h[0].func, "fetch_user2");
  ck_assert_str_eq(h[0].what, "execute2");
  ck_assert_ptr_eq(h[0].file, aw[0].file); /* not copied */
  ck_assert_str_eq(h[1].file, "app/http.py");
  ck_assert_int_eq(h[1].total, 100);
  ck_assert_int_eq(h[1].count, 1);
  ck_assert_int_eq(h[2].line, 24);
  free(h);
}
END_TEST

START_TEST(hot_ties) {
  /* equal totals: more awaits first; then file, then line ascending */
  stats_await aw[] = {
      {"b.py", 1, 10, "f", "w"}, {"a.py", 2, 10, "f", "w"}, {"a.py", 1, 10, "f", "w"},
      {"c.py", 1, 5, "f", "w"},  {"c.py", 1, 5, "f", "w"},  {NULL, 3, 10, NULL, NULL},
  };
  stats_hotspot *h;
  size_t nh;
  ck_assert_int_eq(stats_hotspots(aw, 6, &h, &nh), LS_OK);
  ck_assert_uint_eq(nh, 5);
  ck_assert_str_eq(h[0].file, "c.py"); /* total 10, count 2 */
  ck_assert_ptr_null(h[1].file);       /* NULL file sorts as "" */
  ck_assert_str_eq(h[2].file, "a.py");
  ck_assert_int_eq(h[2].line, 1);
  ck_assert_str_eq(h[3].file, "a.py");
  ck_assert_int_eq(h[3].line, 2);
  ck_assert_str_eq(h[4].file, "b.py");
  free(h);
}
END_TEST

START_TEST(hot_empty_and_bad) {
  stats_hotspot *h = (stats_hotspot *)1;
  size_t nh = 5;
  ck_assert_int_eq(stats_hotspots(NULL, 0, &h, &nh), LS_OK);
  ck_assert_ptr_null(h);
  ck_assert_uint_eq(nh, 0);
  ck_assert_int_eq(stats_hotspots(NULL, 1, &h, &nh), LS_EINVAL);
  ck_assert_int_eq(stats_hotspots(NULL, 0, NULL, &nh), LS_EINVAL);
  ck_assert_int_eq(stats_hotspots(NULL, 0, &h, NULL), LS_EINVAL);
}
END_TEST

START_TEST(hot_saturates) {
  stats_await aw[] = {{"x", 1, INT64_MAX - 1, "f", "w"}, {"x", 1, 10, "f", "w"}};
  stats_hotspot *h;
  size_t nh;
  ck_assert_int_eq(stats_hotspots(aw, 2, &h, &nh), LS_OK);
  ck_assert_int_eq(h[0].total, INT64_MAX);
  free(h);
}
END_TEST

/* ---- allocation failure ----------------------------------------------------------------- */

START_TEST(enomem_on_impossible_sizes) {
  /* sizes no allocator can satisfy are refused before any memory is asked for (and before the
   * input is read), so every allocation-failure path answers LS_ENOMEM and leaks nothing */
  size_t huge = SIZE_MAX / 2;
  stats_interval iv[1] = {{0, 1}};
  int64_t m;
  ck_assert_int_eq(stats_max_concurrency(iv, huge, 1, &m), LS_ENOMEM);
  stats_point *p = (stats_point *)1;
  size_t np = 7;
  ck_assert_int_eq(stats_concurrency_series(iv, huge, 1, &p, &np, &m), LS_ENOMEM);
  ck_assert_ptr_null(p);
  ck_assert_uint_eq(np, 0);
  stats_task t[1] = {{.id = 1}};
  size_t order[1];
  ck_assert_int_eq(stats_task_tree(t, huge, order), LS_ENOMEM);
  stats_await aw[1] = {{"f", 1, 1, "g", "w"}};
  stats_hotspot *h = (stats_hotspot *)1;
  size_t nh = 7;
  ck_assert_int_eq(stats_hotspots(aw, huge, &h, &nh), LS_ENOMEM);
  ck_assert_ptr_null(h);
}
END_TEST

static Suite *stats_suite(void) {
  Suite *s = suite_create("stats");
  TCase *c = tcase_create("concurrency");
  tcase_add_test(c, conc_empty);
  tcase_add_test(c, conc_nested_and_disjoint);
  tcase_add_test(c, conc_touching_ends_before_starts);
  tcase_add_test(c, conc_equal_starts);
  tcase_add_test(c, conc_no_done_alive_to_end);
  tcase_add_test(c, conc_zero_length_and_inverted);
  tcase_add_test(c, conc_unsorted_input);
  tcase_add_test(c, conc_bad_args);
  tcase_add_test(c, conc_random_against_brute_force);
  tcase_add_test(c, series_empty);
  tcase_add_test(c, series_design_example);
  tcase_add_test(c, series_starts_late_and_touching);
  tcase_add_test(c, series_ends_at_session_end);
  tcase_add_test(c, series_events_after_end);
  tcase_add_test(c, series_only_zero_length);
  tcase_add_test(c, series_negative_start);
  tcase_add_test(c, series_bad_args);
  tcase_add_test(c, series_large);
  suite_add_tcase(s, c);
  c = tcase_create("lag");
  tcase_add_test(c, lag_zero);
  tcase_add_test(c, lag_one);
  tcase_add_test(c, lag_two);
  tcase_add_test(c, lag_ten);
  tcase_add_test(c, lag_hundred);
  tcase_add_test(c, lag_ties_and_sub_ms);
  suite_add_tcase(s, c);
  c = tcase_create("tree");
  tcase_set_timeout(c, 60);
  tcase_add_test(c, tree_basic_order);
  tcase_add_test(c, tree_siblings_equal_created_by_id);
  tcase_add_test(c, tree_missing_parent);
  tcase_add_test(c, tree_cycles);
  tcase_add_test(c, tree_long_cycle_with_tail);
  tcase_add_test(c, tree_duplicate_ids);
  tcase_add_test(c, tree_large_ids_shuffled);
  tcase_add_test(c, tree_empty_and_bad);
  tcase_add_test(c, tree_deep_chain);
  tcase_add_test(c, tree_wide_random);
  suite_add_tcase(s, c);
  c = tcase_create("hotspots");
  tcase_add_test(c, hot_grouping_and_order);
  tcase_add_test(c, hot_ties);
  tcase_add_test(c, hot_empty_and_bad);
  tcase_add_test(c, hot_saturates);
  suite_add_tcase(s, c);
  c = tcase_create("enomem");
  tcase_add_test(c, enomem_on_impossible_sizes);
  suite_add_tcase(s, c);
  return s;
}

/* errors.h: one name per code, distinct, and a name for codes nobody defined. */
START_TEST(strerror_names_every_code) {
  const int codes[] = {LS_OK, LS_ENOMEM, LS_EINVAL, LS_ETOOBIG, LS_EBUSY, LS_EIO, LS_ENOTFOUND, LS_ESTOPPED,
                       LS_ECORRUPT};
  const size_t n = sizeof codes / sizeof codes[0];
  for(size_t i = 0; i < n; i++) {
    ck_assert_str_ne(ls_strerror(codes[i]), "unknown error");
    for(size_t j = 0; j < i; j++) {
      ck_assert_int_ne(codes[i], codes[j]);
      ck_assert_str_ne(ls_strerror(codes[i]), ls_strerror(codes[j]));
    }
  }
  ck_assert_str_eq(ls_strerror(-1000), "unknown error");
  ck_assert_str_eq(ls_strerror(7), "unknown error");
}
END_TEST

int main(void) {
  Suite *s = stats_suite();
  TCase *c = tcase_create("errors");
  tcase_add_test(c, strerror_names_every_code);
  suite_add_tcase(s, c);
  return check_run(s);
}
