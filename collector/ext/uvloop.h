/* uvloop.h — what uvloop.c offers: the SoonHook and StepCall types that see task steps on loops
 * without asyncio's Handle (uvloop), and whether a loop is hooked that way. */
#ifndef LS_EXT_UVLOOP_H
#define LS_EXT_UVLOOP_H

#include "module.h"

#pragma GCC visibility push(hidden)

extern PyTypeObject SoonHook_Type, StepCall_Type;
/* True when loop's call_soon is a SoonHook: its tasks' steps (and so their ends) are seen. */
int steps_hooked(PyObject *loop);

#pragma GCC visibility pop

#endif
