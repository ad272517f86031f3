/* test_endpoints.c — Check suite for server/endpoints.c: nearest ranks, grouping by (service,
 * endpoint) with route before name, duration percentiles and the median session, lag p95 over
 * sessions with lag, hot spots and culprits summed and ranked with their tie-breaks, points of
 * sessions outside the window ignored, an empty window, and a large window's group sizes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "check_run.h"

START_TEST(nearest_rank)
{
  ck_assert_uint_eq(ep_rank(50, 1), 0);
  ck_assert_uint_eq(ep_rank(95, 1), 0);
  ck_assert_uint_eq(ep_rank(50, 5), 2);  /* ceil(2.5) = 3rd */
  ck_assert_uint_eq(ep_rank(95, 5), 4);  /* ceil(4.75) = 5th */
  ck_assert_uint_eq(ep_rank(50, 4), 1);  /* 2nd */
  ck_assert_uint_eq(ep_rank(95, 20), 18); /* 19th */
  ck_assert_uint_eq(ep_rank(95, 21), 19); /* ceil(19.95) = 20th */
  ck_assert_uint_eq(ep_rank(100, 7), 6);
}
END_TEST

static ep_session sess(int64_t sid, const char *service, const char *route, const char *name, int64_t dur,
                       int64_t lag)
{
  return (ep_session){.sid = sid, .duration = dur, .lag_max = lag, .has_lag = lag >= 0,
                      .id = "x", .name = name, .route = route, .service = service};
}

START_TEST(groups_and_percentiles)
{
  ep_session s[] = {
    sess(1, "shop", "GET /u/{id}", "GET /u/1", 30, 3),
    sess(2, "shop", "GET /u/{id}", "GET /u/2", 10, 1),
    sess(3, "shop", "GET /u/{id}", "GET /u/3", 50, -1),
    sess(4, "shop", "GET /u/{id}", "GET /u/4", 20, 2),
    sess(5, "shop", "GET /u/{id}", "GET /u/5", 40, 4),
    sess(6, "shop", NULL, "GET /u/{id}", 7, -1),  /* a name equal to the route: the same endpoint */
    sess(7, NULL, NULL, "job", 5, -1),
    sess(8, "other", "GET /u/{id}", "GET /u/9", 9, 0),
  };
  ep_agg e;
  ck_assert_int_eq(ep_group_sessions(&e, s, 8), 0);
  ck_assert_uint_eq(e.ng, 3);
  ep_group *g = &e.g[0];
  ck_assert_str_eq(g->service, "shop");
  ck_assert_str_eq(g->endpoint, "GET /u/{id}");
  ck_assert_uint_eq(g->n, 6);
  ck_assert(g->templated);
  /* 7, 10, 20, 30, 40, 50: p50 = 3rd, p95 = 6th */
  ck_assert_int_eq(g->p50, 20);
  ck_assert_int_eq(g->p95, 50);
  ck_assert_int_eq(g->max, 50);
  ck_assert_int_eq(e.s[g->median].sid, 4);
  /* lag of 4 sessions: 1, 2, 3, 4 -> p95 = 4th */
  ck_assert_int_eq(g->lag_sessions, 4);
  ck_assert_int_eq(g->lag_p95, 4);
  /* count ties by service (NULL first): (NULL, job) before (other, ...) */
  ck_assert_ptr_null(e.g[1].service);
  ck_assert_str_eq(e.g[1].endpoint, "job");
  ck_assert(!e.g[1].templated);
  ck_assert_str_eq(e.g[2].service, "other");
  ck_assert_int_eq(e.g[2].lag_sessions, 1);
  ck_assert_int_eq(e.g[2].lag_p95, 0);
  ck_assert_int_eq(ep_finish(&e), 0);
  ck_assert_uint_eq(g->nhot, 0);
  ep_free(&e);
}
END_TEST

START_TEST(points_summed_and_ranked)
{
  ep_session s[] = {sess(10, "a", "R", "r", 1, -1), sess(11, "a", "R", "r", 2, -1), sess(13, "b", "R", "r", 3, -1)};
  ep_agg e;
  ck_assert_int_eq(ep_group_sessions(&e, s, 3), 0);
  /* session 10 and 11 of (a, R) */
  ck_assert_int_eq(ep_add_await(&e, 10, "db.py", 23, "f", "execute", 2, 30, 20), 0);
  ck_assert_int_eq(ep_add_await(&e, 10, "cache.py", 7, "g", "get", 5, 30, 6), 0);
  ck_assert_int_eq(ep_add_await(&e, 11, "db.py", 23, "f", "execute", 1, 5, 5), 0);
  ck_assert_int_eq(ep_add_await(&e, 11, NULL, -1, NULL, NULL, 1, 1, 1), 0);
  ck_assert_int_eq(ep_add_await(&e, 12, "db.py", 23, "f", "execute", 100, 1000, 1000), 0); /* not in the window */
  ck_assert_int_eq(ep_add_await(&e, 13, "db.py", 23, "f", "execute", 1, 2, 2), 0);
  /* culprits: views.py:45 twice (10 + 10), views.py:9 once but longer (50): by count first */
  ck_assert_int_eq(ep_add_block(&e, 10, "views.py", 9, "v", "slow()", 50), 0);
  ck_assert_int_eq(ep_add_block(&e, 10, "views.py", 45, "v", "sleep()", 10), 0);
  ck_assert_int_eq(ep_add_block(&e, 11, "views.py", 45, "v", "sleep()", 10), 0);
  ck_assert_int_eq(ep_finish(&e), 0);
  const ep_group *a = e.g[0].n == 2 ? &e.g[0] : &e.g[1], *b = a == &e.g[0] ? &e.g[1] : &e.g[0];
  ck_assert_str_eq(a->service, "a");
  ck_assert_uint_eq(a->nhot, 3);
  /* db.py:23 35 over 3 awaits, cache.py:7 30 over 5: total first; the unknown point last */
  ck_assert_str_eq(a->hot[0].file, "db.py");
  ck_assert_int_eq(a->hot[0].total, 35);
  ck_assert_int_eq(a->hot[0].count, 3);
  ck_assert_int_eq(a->hot[0].max, 20);
  ck_assert_int_eq(a->hot[0].sessions, 2);
  ck_assert_str_eq(a->hot[0].what, "execute");
  ck_assert_str_eq(a->hot[1].file, "cache.py");
  ck_assert_ptr_null(a->hot[2].file);
  ck_assert_int_eq(a->hot[2].line, -1);
  ck_assert_uint_eq(a->nculprits, 2);
  ck_assert_int_eq(a->culprits[0].line, 45);
  ck_assert_int_eq(a->culprits[0].count, 2);
  ck_assert_int_eq(a->culprits[0].total, 20);
  ck_assert_int_eq(a->culprits[0].sessions, 2);
  ck_assert_int_eq(a->culprits[1].line, 9);
  ck_assert_int_eq(a->blocks, 3);
  ck_assert_int_eq(a->block_total, 70);
  /* the other service's group holds only its own session's point */
  ck_assert_uint_eq(b->nhot, 1);
  ck_assert_int_eq(b->hot[0].total, 2);
  ck_assert_uint_eq(b->nculprits, 0);
  ep_free(&e);
}
END_TEST

/* A rollup's points (already summed over several sessions) add to those fed one session at a
 * time: counts, totals and session counts sum, maxima take the larger, a rollup culprit counts
 * in the group's blocks; sessions outside the window are ignored. */
START_TEST(summed_points_add_to_single_ones)
{
  ep_session s[] = {sess(10, "a", "R", "r", 1, -1), sess(2000, "a", "R", "r", 2, -1)};
  ep_agg e;
  ck_assert_int_eq(ep_group_sessions(&e, s, 2), 0);
  /* session 10 stands for a rolled-up block of 7 sessions of (a, R) */
  ck_assert_int_eq(ep_add_summed(&e, 10, 0, "db.py", 23, "f", "execute", 9, 90, 30, 7), 0);
  ck_assert_int_eq(ep_add_summed(&e, 10, 1, "views.py", 45, "v", "sleep()", 3, 33, 11, 3), 0);
  ck_assert_int_eq(ep_add_summed(&e, 99, 0, "db.py", 23, "f", "execute", 1, 1, 1, 1), 0); /* not in the window */
  ck_assert_int_eq(ep_add_await(&e, 2000, "db.py", 23, "f", "execute", 2, 80, 40), 0);
  ck_assert_int_eq(ep_add_block(&e, 2000, "views.py", 45, "v", "sleep()", 12), 0);
  ck_assert_int_eq(ep_group_of(&e, 2000), 0);
  ck_assert_int_eq(ep_group_of(&e, 99), -1);
  ck_assert_int_eq(ep_finish(&e), 0);
  const ep_group *g = &e.g[0];
  ck_assert_uint_eq(g->nhot, 1);
  ck_assert_int_eq(g->hot[0].count, 11);
  ck_assert_int_eq(g->hot[0].total, 170);
  ck_assert_int_eq(g->hot[0].max, 40);
  ck_assert_int_eq(g->hot[0].sessions, 8);
  ck_assert_uint_eq(g->nculprits, 1);
  ck_assert_int_eq(g->culprits[0].count, 4);
  ck_assert_int_eq(g->culprits[0].total, 45);
  ck_assert_int_eq(g->culprits[0].max, 12);
  ck_assert_int_eq(g->culprits[0].sessions, 4);
  ck_assert_int_eq(g->blocks, 4);
  ck_assert_int_eq(g->block_total, 45);
  ep_free(&e);
}
END_TEST

START_TEST(ties_rank_by_place)
{
  ep_session s[] = {sess(1, "a", "R", "r", 1, -1)};
  ep_agg e;
  ck_assert_int_eq(ep_group_sessions(&e, s, 1), 0);
  ck_assert_int_eq(ep_add_await(&e, 1, "b.py", 2, NULL, NULL, 1, 10, 10), 0);
  ck_assert_int_eq(ep_add_await(&e, 1, "b.py", 1, NULL, NULL, 1, 10, 10), 0);
  ck_assert_int_eq(ep_add_await(&e, 1, "a.py", 9, NULL, NULL, 1, 10, 10), 0);
  ck_assert_int_eq(ep_add_await(&e, 1, "c.py", 1, NULL, NULL, 2, 10, 5), 0); /* more awaits: first */
  ck_assert_int_eq(ep_finish(&e), 0);
  const char *want[][2] = {{"c.py", "1"}, {"a.py", "9"}, {"b.py", "1"}, {"b.py", "2"}};
  for(int i = 0; i < 4; i++) {
    ck_assert_str_eq(e.g[0].hot[i].file, want[i][0]);
    ck_assert_int_eq(e.g[0].hot[i].line, atoi(want[i][1]));
  }
  ep_free(&e);
}
END_TEST

START_TEST(empty_and_large)
{
  ep_agg e;
  ck_assert_int_eq(ep_group_sessions(&e, NULL, 0), 0);
  ck_assert_uint_eq(e.ng, 0);
  ck_assert_int_eq(ep_add_await(&e, 1, "x", 1, NULL, NULL, 1, 1, 1), 0);
  ck_assert_int_eq(ep_finish(&e), 0);
  ep_free(&e);
  /* 100,000 sessions over 60 endpoints, 4 points each: every group's count and point sums */
  enum { N = 100000 };
  ep_session *s = malloc(N * sizeof(*s));
  static char routes[60][16];
  for(int i = 0; i < 60; i++)
    snprintf(routes[i], sizeof(routes[i]), "GET /r%d", i);
  for(int i = 0; i < N; i++)
    s[i] = sess(i + 1, i % 2 ? "a" : "b", routes[i % 60], "n", i, i % 7);
  ck_assert_int_eq(ep_group_sessions(&e, s, N), 0);
  ck_assert_uint_eq(e.ng, 60); /* i % 60 fixes i % 2 */
  for(int i = 1; i <= N; i++)
    for(int k = 0; k < 4; k++)
      ck_assert_int_eq(ep_add_await(&e, i, routes[k], k, NULL, NULL, 1, 2, 2), 0);
  ck_assert_int_eq(ep_finish(&e), 0);
  size_t total = 0;
  for(size_t i = 0; i < e.ng; i++) {
    total += e.g[i].n;
    ck_assert_uint_eq(e.g[i].nhot, 4);
    ck_assert_int_eq(e.g[i].hot[0].count, (int64_t)e.g[i].n);
    ck_assert_int_eq(e.g[i].hot[0].sessions, (int64_t)e.g[i].n);
  }
  ck_assert_uint_eq(total, N);
  ep_free(&e);
  free(s);
}
END_TEST

static Suite *endpoints_suite(void)
{
  Suite *s = suite_create("endpoints");
  TCase *c = tcase_create("endpoints");
  tcase_set_timeout(c, 60);
  tcase_add_test(c, nearest_rank);
  tcase_add_test(c, groups_and_percentiles);
  tcase_add_test(c, points_summed_and_ranked);
  tcase_add_test(c, summed_points_add_to_single_ones);
  tcase_add_test(c, ties_rank_by_place);
  tcase_add_test(c, empty_and_large);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(endpoints_suite());
}
