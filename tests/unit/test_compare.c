/* test_compare.c — Check suite for server/compare.c: task paths matched by coroutine and ancestry
 * (not by id), tasks present in one side only, await points and blocks merged by file:line, lag,
 * the order by what explains the difference in duration (either side slower), paths cut at depth,
 * and identical sessions giving nothing. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "check_run.h"

static cmp_side side(int64_t dur, const cmp_task *t, size_t nt, const cmp_point *aw, size_t na,
                     const cmp_point *bl, size_t nb, int64_t lag)
{
  return (cmp_side){.duration = dur, .tasks = t, .ntasks = nt, .awaits = aw, .nawaits = na, .blocks = bl,
                    .nblocks = nb, .lag_samples = lag ? 1 : 0, .lag_max = lag};
}

START_TEST(differences_in_order)
{
  /* the same tree with other ids; b has two more "retry" tasks under load, and a "log" task
   * under the root that a has under load (another path) */
  cmp_task ta[] = {{1, 0, 0, 100, "view"}, {2, 1, 1, 50, "load"}, {3, 2, 2, 3, "log"}};
  cmp_task tb[] = {{7, 0, 0, 300, "view"}, {9, 7, 1, 200, "load"}, {4, 9, 10, 40, "retry"},
                   {5, 9, 50, 60, "retry"}, {6, 7, 2, -1, "log"}};
  cmp_point aa[] = {{"db.py", "f", "exec", 23, 1, 40}, {"c.py", "g", "get", 7, 2, 10}};
  cmp_point ab[] = {{"db.py", "f", "exec", 23, 1, 140}, {"c.py", "g", "get", 7, 2, 10}, {"m.py", "h", "send", 5, 1, 4}};
  cmp_point bb[] = {{"v.py", "v", "sleep()", 45, 1, 60}};
  cmp_side a = side(100, ta, 3, aa, 2, NULL, 0, 2), b = side(300, tb, 5, ab, 3, bb, 1, 9);
  arena ar;
  arena_init(&ar);
  cmp_diff *d;
  size_t n;
  ck_assert_int_eq(cmp_diffs(&a, &b, &ar, &d, &n), 0);
  /* log under the root, only in b: alive from 2 to the end (300) = 298; db +100; retry 30 + 10;
   * block +60; lag +7; mail +4; log under load only in a: -1 */
  ck_assert_uint_eq(n, 7);
  ck_assert_int_eq(d[0].kind, CMP_TASK);
  ck_assert_str_eq(d[0].path, "view > log");
  ck_assert_int_eq(d[0].b_ns, 298);
  ck_assert_int_eq(d[1].kind, CMP_AWAIT);
  ck_assert_str_eq(d[1].file, "db.py");
  ck_assert_int_eq(d[1].delta, 100);
  ck_assert_int_eq(d[2].kind, CMP_BLOCK);
  ck_assert_int_eq(d[2].delta, 60);
  ck_assert_int_eq(d[3].kind, CMP_TASK);
  ck_assert_str_eq(d[3].path, "view > load > retry");
  ck_assert_str_eq(d[3].what, "retry");
  ck_assert_int_eq(d[3].a_count, 0);
  ck_assert_int_eq(d[3].b_count, 2);
  ck_assert_int_eq(d[3].delta, 40);
  ck_assert_int_eq(d[4].kind, CMP_LAG);
  ck_assert_int_eq(d[4].delta, 7);
  ck_assert_int_eq(d[5].kind, CMP_AWAIT);
  ck_assert_str_eq(d[5].file, "m.py");
  ck_assert_int_eq(d[5].a_count, 0);
  ck_assert_int_eq(d[6].kind, CMP_TASK);
  ck_assert_str_eq(d[6].path, "view > load > log");
  ck_assert_int_eq(d[6].a_count, 1);
  ck_assert_int_eq(d[6].delta, -1);
  free(d);
  /* swapped: a is now the slower, so what shrank in b explains it: the same order, deltas negated */
  ck_assert_int_eq(cmp_diffs(&b, &a, &ar, &d, &n), 0);
  ck_assert_uint_eq(n, 7);
  ck_assert_int_eq(d[0].delta, -298);
  ck_assert_int_eq(d[1].delta, -100);
  ck_assert_int_eq(d[6].delta, 1);
  free(d);
  /* identical: nothing */
  ck_assert_int_eq(cmp_diffs(&a, &a, &ar, &d, &n), 0);
  ck_assert_uint_eq(n, 0);
  free(d);
  arena_free(&ar);
}
END_TEST

START_TEST(deep_paths_are_cut)
{
  enum { DEPTH = 40 };
  cmp_task t[DEPTH];
  for(int i = 0; i < DEPTH; i++)
    t[i] = (cmp_task){i + 1, i, i, -1, "c"};
  cmp_side a = side(10, NULL, 0, NULL, 0, NULL, 0, 0), b = side(10, t, DEPTH, NULL, 0, NULL, 0, 0);
  arena ar;
  arena_init(&ar);
  cmp_diff *d;
  size_t n;
  ck_assert_int_eq(cmp_diffs(&a, &b, &ar, &d, &n), 0);
  ck_assert_uint_eq(n, DEPTH);
  /* equal durations: b counts as the slower; the deepest path is cut to 32 segments after "… > " */
  int found = 0;
  for(size_t i = 0; i < n; i++) {
    if(strncmp(d[i].path, "\xe2\x80\xa6 > ", 6))
      continue;
    found++;
    size_t segs = 1;
    for(const char *p = d[i].path + 6; (p = strstr(p, " > ")); p += 3)
      segs++;
    ck_assert_uint_eq(segs, 32);
  }
  ck_assert_int_eq(found, DEPTH - 32);
  free(d);
  arena_free(&ar);
}
END_TEST

START_TEST(cycles_and_missing_parents)
{
  /* 1 <-> 2 a cycle, 3's parent never arrived: every task still gets a path, nothing loops */
  cmp_task t[] = {{1, 2, 0, 5, "x"}, {2, 1, 1, 5, "y"}, {3, 99, 2, 5, "z"}};
  cmp_side a = side(10, NULL, 0, NULL, 0, NULL, 0, 0), b = side(10, t, 3, NULL, 0, NULL, 0, 0);
  arena ar;
  arena_init(&ar);
  cmp_diff *d;
  size_t n;
  ck_assert_int_eq(cmp_diffs(&a, &b, &ar, &d, &n), 0);
  ck_assert_uint_eq(n, 3);
  free(d);
  arena_free(&ar);
}
END_TEST

static Suite *compare_suite(void)
{
  Suite *s = suite_create("compare");
  TCase *c = tcase_create("compare");
  tcase_add_test(c, differences_in_order);
  tcase_add_test(c, deep_paths_are_cut);
  tcase_add_test(c, cycles_and_missing_parents);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(compare_suite());
}
