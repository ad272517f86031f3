/* check_run.h — what every Check suite here shares: the end of its main() (run the suite, exit
 * non-zero when a test failed), and the bound of its waits. */
#ifndef LS_CHECK_RUN_H
#define LS_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int check_run(Suite *s)
{
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* How long a test may wait for something (an answer, a flush) in ms: dflt_ms, or
 * $LS_TEST_TIMEOUT_S seconds when that is longer. Valgrind's run of the suites
 * (bench/reliability/memcheck.sh) is 20-50 times slower: on a loaded machine a 30 s flush of
 * 3.6 MB through the in-process server timed out there, and a timeout is not what that run
 * looks for. */
static inline long check_wait_ms(long dflt_ms)
{
  const char *v = getenv("LS_TEST_TIMEOUT_S");
  long s = v ? strtol(v, NULL, 10) : 0;
  return s > 0 && s * 1000 > dflt_ms ? s * 1000 : dflt_ms;
}

#endif
