/* collector_fixture.h — what the collector core's suites share (test_collector_records.c,
 * test_collector_sender.c). Test code only. */
#ifndef LS_COLLECTOR_FIXTURE_H
#define LS_COLLECTOR_FIXTURE_H

#include "lscore.h"

/* A string literal as the collector's ls_str (its length without the NUL). */
#define S(lit) ((ls_str){lit, sizeof(lit) - 1, 0})

#endif
