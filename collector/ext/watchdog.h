/* watchdog.h — what watchdog.c offers: starting and stopping the blocking watchdog thread. */
#ifndef LS_EXT_WATCHDOG_H
#define LS_EXT_WATCHDOG_H

#include "module.h"

#pragma GCC visibility push(hidden)

/* 0, or -1 when the thread cannot be started. */
int watchdog_start(void);
/* Joins the thread (the GIL released meanwhile); nothing when it is not running. */
void watchdog_stop(void);

#pragma GCC visibility pop

#endif
