/* lag.h — what lag.c offers: the lag heartbeat (one per process, on the loop it last started on). */
#ifndef LS_EXT_LAG_H
#define LS_EXT_LAG_H

#include "module.h"

#pragma GCC visibility push(hidden)

/* At module init: makes the heartbeat's callable. 0, or -1 with an exception set. */
int lag_init(void);
/* Keeps the heartbeat running on loop (started there if it runs elsewhere or not at all). */
void lag_ensure(PyObject *loop);

#pragma GCC visibility pop

#endif
