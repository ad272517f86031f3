/* lag.h — what lag.c offers: loop lag read off the handles time_step() sees (the program's timers'
 * lateness, a virtual tick nobody schedules); nothing is added to the loop. */
#ifndef LS_EXT_LAG_H
#define LS_EXT_LAG_H

#include "module.h"

#pragma GCC visibility push(hidden)

/* At module init. 0, or -1 with an exception set. */
int lag_init(void);
/* At patch_handle: the slots of asyncio's Handle and TimerHandle (timer_type may be NULL: no
 * timer lateness then) and what a real clock looks like (BaseEventLoop.time, time.monotonic). */
int lag_learn(PyObject *handle_type, PyObject *timer_type);
/* Forgets the tick in progress (stop, fork, the last session closed). Inline: it runs at the end
 * of nearly every request, three stores not worth a function's own lines. */
static inline void lag_reset(void) {
  Py_CLEAR(G.lag_wait_for);
  G.lag_wait_due = 0;
  G.lag_next = 0;
}
/* time_step's calls, under the GIL: a TimerHandle (G.lag_timer_type) starts at t0; any handle
 * starts at t0 when t0 >= G.lag_next or a tick waits; it ended at t1 (same condition). handle is
 * NULL for a callback that is not asyncio's Handle (uvloop's StepCall). */
void lag_timer_ran(PyObject *handle, uint64_t t0);
/* Hot, not cold: in a busy loop a tick waits for a queued handle most of the time (the ready
 * queue is never empty on the async tree), and then every handle comes through here. */
LS_HOT void lag_at_start(PyObject *handle, uint64_t t0);
LS_HOT void lag_at_end(PyObject *handle, uint64_t t0, uint64_t t1);
/* Session s closes at t inside a handle: the tick due in it so far, as a sample of s. The test
 * for a tick (rarely true) is inline, as in lag_reset. */
void lag_session_tick(session_obj *s, uint64_t t);
static inline void lag_session_closing(session_obj *s, uint64_t t) {
  if (G.lag_wait_for || (G.cur_t0 && G.lag_next > G.cur_t0 && G.lag_next <= t)) lag_session_tick(s, t);
}

#pragma GCC visibility pop

#endif
