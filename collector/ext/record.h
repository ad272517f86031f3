/* record.h — what record.c offers: the events about tasks (a task's announcement, its steps,
 * await points and end, a block) built from an entry and handed to its session. Timing steps is
 * step.h's; reading coroutines is code.c's. */
#ifndef LS_EXT_RECORD_H
#define LS_EXT_RECORD_H

#include "module.h"
#include "tasks.h"

#pragma GCC visibility push(hidden)

/* The task event of e: announce() is inline because it runs on every step and the event goes out
 * only once, before the task's other events. */
void announce_emit(task_entry *e);
static LS_ALWAYS_INLINE void announce(task_entry *e) {
  if (!e->announced) announce_emit(e);
}
/* Emits the await in progress as ending at t. */
void await_end(task_entry *e, uint64_t t);
/* At setup: the C getters of task_cls's _state and _exception, used for tasks of exactly that
 * class when an immutable type's getset descriptors give what the attributes give for sample (a
 * task of it); otherwise the attributes are looked up. record_direct_getters: 1 when learnt. */
void record_learn(PyObject *task_cls, PyObject *sample);
int record_direct_getters(void);
/* 0 pending, 1 finished ok or with an exception, 2 cancelled. */
int task_state(PyObject *task);
/* task._source_traceback (a list in asyncio's debug mode, else None): new reference, or NULL with
 * an exception set. Through the learnt getter for the C Task, as task_state. */
PyObject *task_source_traceback(PyObject *task);
/* The end of e's task at t with state (task_state), then its entry goes. */
void task_finish(task_entry *e, int state, uint64_t t);
/* e's task ends at t for its session (it may still run): done with state (LS_S_*), the text of
 * exc (an exception object or NULL) when state is LS_S_ERROR, and status (an HTTP status, 0: none);
 * then its entry goes. */
void task_end_as(task_entry *e, int state, PyObject *exc, int status, uint64_t t);
/* After a step of e from t0 to t1: the step event, then done or the await point. */
void step_end(task_entry *e, uint64_t t0, uint64_t t1);
/* step_end without the step event: a task adopted during its step (async with session, the
 * middleware) gets the await point that step ends on. */
void step_after(task_entry *e, uint64_t t1);
/* A block of the loop from t0 to t1 in session s, in task id (0: none), with the stack the
 * watchdog captured (a list, or NULL) at stack_ns (G.block_stack_ns: said as the event's stack_t). */
void emit_block(session_obj *s, uint64_t id, uint64_t t0, uint64_t t1, PyObject *stack, uint64_t stack_ns);
/* A step of heartbeat seq blocked the loop from t0 to t1: with the stack the watchdog captured for
 * it, if any (G.block_stack; G.block_request, the request it found on it), the block goes to every
 * session open on the loop: bs (the stepped task's session, or NULL) gets it as its own in task
 * bid, every other session as from elsewhere naming the causing session (bs, else the session in
 * whose context handle ran, else none) and task; with none of them its own, a session of its own
 * while G.keep_orphan_blocks. handle: asyncio's Handle or NULL. Out of line: a step that blocked
 * is rare, and its code stays out of the step's instruction-cache lines. */
void block_after_step(session_obj *bs, uint64_t bid, uint64_t t0, uint64_t t1, uint64_t seq, PyObject *handle);
/* watch_request_code(code), a module function: G.mw_code, the code of LoopscopeMiddleware.__call__,
 * whose frame on a blocked stack names the request (watchdog.c) */
PyObject *mod_watch_request_code(PyObject *mod, PyObject *code);
/* keep_orphan_blocks(on), a module function: G.keep_orphan_blocks (block_after_step) */
PyObject *mod_keep_orphan_blocks(PyObject *mod, PyObject *on);

#pragma GCC visibility pop

#endif
