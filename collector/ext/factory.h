/* factory.h — what factory.c offers: the TaskFactory type (the loop's task factory while
 * loopscope is installed) and its set-up at module init. */
#ifndef LS_EXT_FACTORY_H
#define LS_EXT_FACTORY_H

#include "module.h"

#pragma GCC visibility push(hidden)

extern PyTypeObject Factory_Type;
/* At module init: makes the done callback. 0, or -1 with an exception set. */
int factory_init(void);

#pragma GCC visibility pop

#endif
