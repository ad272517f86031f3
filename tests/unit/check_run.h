/* check_run.h — the end of every Check suite's main() here: run the suite, exit non-zero when a
 * test failed. */
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

#endif
