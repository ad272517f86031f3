/* step.h — time_step(), inline here so each caller (step.c's Handle._run, uvloop.c's StepCall) has
 * its own copy and the hot path pays no call for it, and what step.c offers: which task a callback
 * steps, the Handle._run patch. What a step records is record.c's; the watchdog's, watchdog.c's. */
#ifndef LS_EXT_STEP_H
#define LS_EXT_STEP_H

#include "module.h"
#include "lag.h"
#include "record.h"
#include "session.h"
#include "tasks.h"

#pragma GCC visibility push(hidden)

/* At module init: no task or step-wrapper types known yet. 0, or -1 with an exception set. */
int step_init(void);
/* The task and step-wrapper types patch_handle learnt (step.c). */
typedef struct hook_types_t {
  PyObject *task_types;    /* tuple of Task classes (C and Python) */
  PyObject *wrapper_types; /* tuple of C step-wrapper types whose first field is the task */
} hook_types_t;
extern hook_types_t hook_types;

/* The object a callback is bound to, when it may step a task: the self of a builtin or bound
 * method, or a TaskStepMethWrapper's task (its layout was checked against __self__ when the type
 * was registered: patch_handle). Borrowed; NULL for other callbacks. Not known to be a task: a
 * pointer only, which the task table may then find (only tasks are in it), with no read of the
 * object itself. */
static LS_ALWAYS_INLINE PyObject *callback_self(PyObject *cb) {
  PyObject *self = NULL;
  PyTypeObject *tp = Py_TYPE(cb);
  /* exact types: PyCFunction_Check of a Python function (gather's done callback, most handles
   * that step no task) would walk the type's MRO in PyType_IsSubtype, interpreter code the
   * program's own Handle._run never runs; builtin methods cannot be subclassed, PyCMethod_Type is
   * their one subtype */
  if (tp == &PyCFunction_Type || tp == &PyCMethod_Type) {
    self = PyCFunction_GET_SELF(cb);
  } else if (tp == &PyMethod_Type) {
    self = PyMethod_GET_SELF(cb);
  } else {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hook_types.wrapper_types); i++)
      if ((PyObject *)tp == PyTuple_GET_ITEM(hook_types.wrapper_types, i)) {
        self = *(PyObject **)((char *)cb + sizeof(PyObject));
        break;
      }
  }
  return self == Py_None ? NULL : self;
}
/* The task a handle's callback steps, or NULL (borrowed): callback_self, checked to be a Task. */
PyObject *task_of_callback(PyObject *cb);
/* Runs cb's step while no session is open (run(arg) makes the call): when a session adopts the
 * stepped task during it (session.c), the rest of the step is recorded from the adoption, as
 * time_step would. Asyncio's Handle._run and uvloop's StepCall both come here. */
LS_COLD PyObject *untimed_step(PyObject *cb, PyObject *(*run)(void *), void *arg);
/* patch_handle(Handle, task_types, samples) and unpatch_handle(), module functions */
PyObject *mod_patch_handle(PyObject *mod, PyObject *args);
PyObject *mod_unpatch_handle(PyObject *mod, PyObject *unused);

/* Whether the loop's steps are timed: while a session is open, or while blocks no session owns
 * are kept (record.c's orphan_block). Untimed otherwise (untimed_step). */
static LS_ALWAYS_INLINE int steps_timed(void) { return G.n_active || G.keep_orphan_blocks; }

/* One callback the loop runs, timed as loopscope times a handle: the watchdog's heartbeat around
 * it, loop lag (lag.c: a timer's lateness, the virtual tick), and when cb steps a recorded task,
 * the step, its await point or end, and a block in it attributed to the task's session, and to
 * every other open session as from elsewhere (record.c). run(arg) makes the call; handle is
 * asyncio's Handle being run, or NULL (uvloop's StepCall). Inlined into each caller with run known, so Handle._run pays no indirect call for
 * the uvloop path's sake; lag costs a compare or two per handle unless a tick is due. */
static LS_ALWAYS_INLINE PyObject *time_step(PyObject *cb, PyObject *(*run)(void *), void *arg, PyObject *handle) {
  uint64_t t0 = now_ns();
  if (handle && Py_TYPE(handle) == G.lag_timer_type) lag_timer_ran(handle, t0);
  if (t0 >= G.lag_next || G.lag_wait_for) lag_at_start(handle, t0);
  /* only threads holding the GIL write the heartbeat: a plain increment, no locked instruction */
  uint_fast64_t seq = atomic_load_explicit(&G.hb_seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&G.hb_seq, seq, memory_order_relaxed);
  atomic_store_explicit(&G.hb_start, t0, memory_order_relaxed);
  atomic_store_explicit(&G.hb_busy, 1, memory_order_release);
  G.loop_tstate = PyThreadState_Get();
  /* the table holds tasks only, so a pointer it finds is a task: the object is not read here (its
   * type check waited for a line the step loads itself a moment later) */
  PyObject *task = cb ? callback_self(cb) : NULL;
  task_entry *e = task ? tab_find(task) : NULL;
  int saved = cur_push();
  uint64_t saved_t0 = G.cur_t0;
  session_obj *bs = NULL; /* the session of the stepped task, for a block */
  uint64_t bid = 0;
  if (e) {
    if (!session_live(e->sess)) { tab_del(task); entry_free(e); e = NULL; }
    else {
      announce(e);
      await_end(e, t0);
      bs = (session_obj *)Py_NewRef((PyObject *)e->sess);
      bid = e->id;
      Py_INCREF(task); /* the step may end the task; keep the key alive for the lookup after */
    }
  }
  G.cur = e;
  G.cur_t0 = t0;
  PyObject *res = run(arg);
  uint64_t t1 = now_ns();
  atomic_store_explicit(&G.hb_busy, 0, memory_order_release);
  /* an exception is pending only when run() failed (SystemExit, KeyboardInterrupt, an error of
   * Handle._run itself): only then is it set aside while the step is recorded. The common case
   * calls none of the interpreter's error functions (code the program's own Handle._run never
   * runs: instruction-cache misses per step, measured on 3.14) */
  PyObject *exc_type = NULL, *exc_val = NULL, *exc_tb = NULL;
  if (!res) PyErr_Fetch(&exc_type, &exc_val, &exc_tb);
  if (t1 >= G.lag_next || G.lag_wait_for) lag_at_end(handle, t0, t1);
  cur_pop(saved);
  G.cur_t0 = saved_t0;
  if (e) {
    e = tab_find(task); /* the step may have closed the session and removed it */
    if (e) step_end(e, t0, t1);
    Py_DECREF(task);
  } else if (task && G.tab_len && (e = tab_find(task)) && session_live(e->sess)) {
    step_after(e, t1); /* adopted as a session's root during this step: where it waits now */
  }
  /* its own to the task's session, from elsewhere to the other sessions on the loop */
  if (t1 - t0 >= G.block_ns) block_after_step(bs, bid, t0, t1, seq, handle);
  Py_XDECREF(bs);
  if (!res) {
    if (PyErr_Occurred()) PyErr_Clear();
    PyErr_Restore(exc_type, exc_val, exc_tb);
  }
  return res;
}

#pragma GCC visibility pop

#endif
