/* lag.c — loop lag, measured without adding anything to the loop: the lateness of the program's own
 * timers, and a virtual tick every sample period that nobody schedules, both read off the handles
 * time_step() (step.h) already sees. Each sample goes to every live session. */
#include "lag.h"
#include "session.h"
#include "summary.h"

/* Why no heartbeat timer: a timer of our own is visible to the program (loop._scheduled, a selector
 * that wakes every period) and breaks loops with a virtual clock, whose time is driven by a
 * generator that expects exactly the program's timers (CPython's test_utils.TestLoop, looptime).
 * bench/lag/accuracy.py compared the candidates against the lateness the program measures itself.
 *
 * Timers: a TimerHandle's _when is its due time on the loop's clock; when that clock is the real
 * one (BaseEventLoop.time over an unpatched time.monotonic, i.e. CLOCK_MONOTONIC, the clock of
 * now_ns()), t0 - _when at the start of its _run is exactly how late the loop ran it. On a loop
 * with another clock the timer is skipped: its lateness in virtual time means nothing here.
 *
 * The virtual tick: it comes due every sample period (lag_ns). Due while a handle runs, a callback
 * due when that handle started waits for it and for the handles queued before the loop would take
 * up timers again, i.e. until the last handle now in the loop's ready queue has run; due between
 * handles, it waits for the handles already queued (none when the loop was idle: on time). */

static struct {
  Py_ssize_t off_when, off_loop, off_cancelled; /* TimerHandle._when, Handle._loop/_cancelled, 0 if not slots */
  PyObject *base_time;     /* BaseEventLoop.time (the function) */
  PyObject *time_dict;     /* the time module's dict, to see time.monotonic unpatched */
  PyObject *monotonic;     /* time.monotonic at install */
  PyTypeObject *deque_type;
  PyObject *s_ready, *s_monotonic;
} lag;

int lag_init(void) {
  lag.s_ready = PyUnicode_InternFromString("_ready");
  lag.s_monotonic = PyUnicode_InternFromString("monotonic");
  return lag.s_ready && lag.s_monotonic ? 0 : -1;
}

static Py_ssize_t slot_offset(PyObject *type, const char *name) {
  PyObject *m = PyObject_GetAttrString(type, name);
  Py_ssize_t off = 0;
  if (m && Py_TYPE(m) == &PyMemberDescr_Type) off = ((PyMemberDescrObject *)m)->d_member->offset;
  Py_XDECREF(m);
  PyErr_Clear();
  return off;
}

int lag_learn(PyObject *handle_type, PyObject *timer_type) {
  lag_reset();
  Py_CLEAR(G.lag_timer_type);
  lag.off_loop = slot_offset(handle_type, "_loop");
  lag.off_cancelled = slot_offset(handle_type, "_cancelled");
  lag.off_when = timer_type ? slot_offset(timer_type, "_when") : 0;
  Py_CLEAR(lag.base_time);
  if (G.base_loop_type) lag.base_time = PyObject_GetAttr(G.base_loop_type, G.s_time);
  PyObject *tm = PyImport_ImportModule("time");
  Py_XSETREF(lag.time_dict, tm ? Py_NewRef(PyModule_GetDict(tm)) : NULL);
  Py_XSETREF(lag.monotonic, tm ? PyObject_GetAttr(tm, lag.s_monotonic) : NULL);
  Py_XDECREF(tm);
  PyObject *col = PyImport_ImportModule("collections");
  PyObject *dq = col ? PyObject_GetAttrString(col, "deque") : NULL;
  Py_XDECREF(col);
  if (dq && PyType_Check(dq)) lag.deque_type = (PyTypeObject *)dq; /* kept for the process's life */
  else Py_XDECREF(dq);
  PyErr_Clear();
  if (timer_type && PyType_Check(timer_type) && lag.off_when && lag.off_loop && lag.base_time && lag.monotonic)
    G.lag_timer_type = (PyTypeObject *)Py_NewRef(timer_type);
  return 0;
}

/* One lag sample: a callback due at `due` ran d ns late. */
static void lag_emit(uint64_t due, uint64_t d) {
  for (session_obj *s = G.active_head; s; s = s->anext) {
    if (!session_live(s) || due < s->start) continue;
    ls_event ev = {0};
    ev.kind = LS_K_LAG;
    ev.t = rel(s, due);
    ev.d = d;
    emit(s, &ev);
    if (s->sum) summary_lag(s->sum, d);
  }
}

static PyObject *slot(PyObject *o, Py_ssize_t off) { return off ? *(PyObject **)((char *)o + off) : NULL; }

/* True when loop.time() is time.monotonic() (the real clock, as now_ns() reads it). */
static int clock_is_real(PyObject *loop) {
  PyObject *m = PyObject_GetAttr(loop, G.s_time);
  int real = m && PyMethod_Check(m) && PyMethod_GET_FUNCTION(m) == lag.base_time && PyMethod_GET_SELF(m) == loop;
  Py_XDECREF(m);
  if (real) real = PyDict_GetItemWithError(lag.time_dict, lag.s_monotonic) == lag.monotonic;
  PyErr_Clear();
  return real;
}

void lag_timer_ran(PyObject *handle, uint64_t t0) {
  PyObject *when = slot(handle, lag.off_when), *loop = slot(handle, lag.off_loop);
  if (!when || !loop || !PyFloat_CheckExact(when) || !clock_is_real(loop)) return;
  double w = PyFloat_AS_DOUBLE(when) * 1e9;
  if (!(w > 0 && w < 9e18)) return;
  uint64_t due = (uint64_t)w;
  lag_emit(due, t0 > due ? t0 - due : 0);
}

/* The last handle in the ready queue of handle's loop (strong), or NULL when it is empty or not
 * asyncio's deque (uvloop's handles: NULL). Reads loop._ready; calls nothing the program sees. */
static PyObject *ready_last(PyObject *handle) {
  PyObject *loop = handle ? slot(handle, lag.off_loop) : NULL;
  if (!loop || !lag.deque_type) return NULL;
  PyObject *ready = PyObject_GetAttr(loop, lag.s_ready);
  PyObject *last = NULL;
  if (ready && Py_TYPE(ready) == lag.deque_type && PySequence_Size(ready) > 0) last = PySequence_GetItem(ready, -1);
  Py_XDECREF(ready);
  PyErr_Clear();
  return last;
}

/* A tick due at `due` waits for the handles now in the ready queue; with none it ran `late` ns
 * late, and the next one comes due a period after t. */
static void tick_wait(PyObject *handle, uint64_t due, uint64_t late, uint64_t t) {
  PyObject *last = ready_last(handle);
  if (last) {
    G.lag_wait_for = last;
    G.lag_wait_due = due;
    G.lag_next = UINT64_MAX;
  } else {
    lag_emit(due, late);
    G.lag_next = t + G.lag_ns;
  }
}

static int handle_cancelled(PyObject *h) {
  PyObject *c = slot(h, lag.off_cancelled);
  return c == Py_True;
}

LS_HOT void lag_at_start(PyObject *handle, uint64_t t0) {
  if (G.lag_wait_for) {
    if (handle == G.lag_wait_for) return; /* its end reports the tick */
    /* the handle waited for was cancelled (the loop skips it) or its loop went away */
    if (handle_cancelled(G.lag_wait_for) || Py_REFCNT(G.lag_wait_for) == 1) {
      uint64_t due = G.lag_wait_due;
      Py_CLEAR(G.lag_wait_for);
      lag_emit(due, t0 > due ? t0 - due : 0);
      G.lag_next = t0 + G.lag_ns;
    }
    return;
  }
  if (!G.lag_next) { G.lag_next = t0 + G.lag_ns; return; }
  if (t0 < G.lag_next) return;
  /* came due between handles: on time unless handles were queued then */
  tick_wait(handle, G.lag_next, 0, t0);
}

LS_HOT void lag_at_end(PyObject *handle, uint64_t t0, uint64_t t1) {
  if (G.lag_wait_for) {
    if (handle != G.lag_wait_for) return;
    uint64_t due = G.lag_wait_due;
    Py_CLEAR(G.lag_wait_for);
    lag_emit(due, t1 > due ? t1 - due : 0);
    G.lag_next = t1 + G.lag_ns;
    return;
  }
  if (!(t0 < G.lag_next && G.lag_next <= t1)) return;
  /* came due while this handle ran: a callback due when it started waits at least until now */
  tick_wait(handle, t0, t1 - t0, t1);
}

void lag_session_tick(session_obj *s, uint64_t t) {
  uint64_t due = 0;
  if (G.lag_wait_for) due = G.lag_wait_due;
  else if (G.cur_t0 && G.lag_next > G.cur_t0 && G.lag_next <= t) due = G.cur_t0;
  if (!due || due < s->start || t <= due) return;
  ls_event ev = {0};
  ev.kind = LS_K_LAG;
  ev.t = rel(s, due);
  ev.d = t - due;
  emit(s, &ev);
  if (s->sum) summary_lag(s->sum, ev.d);
}
