/* test_lag_cause.c — Check suite for server/lag_cause.c's matching rule: each lag sample's window
 * [t - d, t + d) against the session's blocks — the block overlapping most wins, the earlier on a
 * tie, none for a sample no block reaches or of zero lag, overlapping blocks found through the
 * running maximum of their ends, and the scan bound on a pile of overlapping blocks. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "lag_cause.h"
#include "check_run.h"

START_TEST(most_overlap_wins)
{
  /* blocks [100, 250), [300, 310), [400, 500) */
  int64_t bt[] = {100, 300, 400}, bd[] = {150, 10, 100};
  /* samples: inside the first; between the first and second, nearer to neither fully (window
   * [240, 320): 10 of the first, 10 of the second: the earlier); reaching the third; no block;
   * zero lag inside a block; window [295, 405): 10 of the second, 5 of the third */
  int64_t st[] = {200, 280, 390, 700, 450, 350}, sd[] = {5, 40, 20, 50, 0, 55};
  int64_t out[6];
  ck_assert_int_eq(lag_cause_match(st, sd, 6, bt, bd, 3, out), 0);
  ck_assert_int_eq(out[0], 0);
  ck_assert_int_eq(out[1], 0);
  ck_assert_int_eq(out[2], 2);
  ck_assert_int_eq(out[3], -1);
  ck_assert_int_eq(out[4], -1);
  ck_assert_int_eq(out[5], 1);
}
END_TEST

START_TEST(overlapping_blocks_and_none)
{
  /* a long block first, then a short one inside it: a sample after the short one's end still
   * reaches the long one (found through the running maximum of the ends) */
  int64_t bt[] = {0, 10}, bd[] = {1000, 5};
  int64_t st[] = {900}, sd[] = {10};
  int64_t out[1];
  ck_assert_int_eq(lag_cause_match(st, sd, 1, bt, bd, 2, out), 0);
  ck_assert_int_eq(out[0], 0);
  /* no blocks at all, and no samples */
  ck_assert_int_eq(lag_cause_match(st, sd, 1, NULL, NULL, 0, out), 0);
  ck_assert_int_eq(out[0], -1);
  ck_assert_int_eq(lag_cause_match(NULL, NULL, 0, bt, bd, 2, NULL), 0);
}
END_TEST

START_TEST(scan_is_bounded)
{
  /* LAG_CAUSE_SCAN + 10 blocks all covering the sample, the longest overlap last: beyond the
   * bound it is not weighed, so the best of the first LAG_CAUSE_SCAN wins */
  enum { N = LAG_CAUSE_SCAN + 10 };
  int64_t bt[N], bd[N];
  for(int i = 0; i < N; i++) {
    bt[i] = i;
    bd[i] = i == N - 1 ? 10000 : 100 + i;
  }
  int64_t st[] = {5000}, sd[] = {4990};
  int64_t out[1];
  ck_assert_int_eq(lag_cause_match(st, sd, 1, bt, bd, N, out), 0);
  ck_assert_int_eq(out[0], LAG_CAUSE_SCAN - 1);
}
END_TEST

static Suite *lag_cause_suite(void)
{
  Suite *s = suite_create("lag_cause");
  TCase *c = tcase_create("lag_cause");
  tcase_add_test(c, most_overlap_wins);
  tcase_add_test(c, overlapping_blocks_and_none);
  tcase_add_test(c, scan_is_bounded);
  suite_add_tcase(s, c);
  return s;
}

int main(void)
{
  return check_run(lag_cause_suite());
}
