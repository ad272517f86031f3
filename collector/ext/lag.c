/* lag.c — the lag heartbeat: a callback scheduled with loop.call_at every sample period, and how
 * late the loop runs it, reported to every live session as a lag event. One heartbeat per process,
 * on the loop it was last started on (the module state's lag_* fields). */
#include "lag.h"
#include "session.h"

static int lag_schedule(PyObject *loop, uint64_t due) {
  PyObject *now = PyObject_CallMethodNoArgs(loop, G.s_time);
  if (!now) return -1;
  double loop_now = PyFloat_AsDouble(now);
  Py_DECREF(now);
  if (loop_now == -1.0 && PyErr_Occurred()) return -1;
  /* loop.time() is time.monotonic(), the same clock as now_ns() */
  double when = loop_now + ((double)due - (double)now_ns()) / 1e9;
  PyObject *h = PyObject_CallMethod(loop, "call_at", "dO", when, G.lag_tick);
  if (!h) return -1;
  Py_DECREF(h);
  G.lag_due = due;
  G.lag_pending = 1;
  if (G.lag_loop != loop) Py_XSETREF(G.lag_loop, Py_NewRef(loop));
  return 0;
}

void lag_ensure(PyObject *loop) {
  if (G.lag_pending && G.lag_loop == loop) return;
  if (lag_schedule(loop, now_ns() + G.lag_ns)) PyErr_Clear();
}

static PyObject *lag_tick_fn(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  G.lag_pending = 0;
  uint64_t t = now_ns();
  uint64_t d = t > G.lag_due ? t - G.lag_due : 0;
  Py_ssize_t n = PyList_GET_SIZE(G.active);
  int any = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    session_obj *s = (session_obj *)PyList_GET_ITEM(G.active, i);
    if (!session_live(s) || G.lag_due < s->start) continue;
    ls_event ev = {0};
    ev.kind = LS_K_LAG;
    ev.t = rel(s, G.lag_due);
    ev.d = d;
    emit(s, &ev);
    any = 1;
  }
  if ((any || n) && G.lag_loop) {
    /* one period from now, not from the previous due time: asyncio rounds select timeouts up
     * to whole milliseconds, and a grid of due times would turn that rounding into a steady
     * ~1 ms of lag that the loop does not have */
    if (lag_schedule(G.lag_loop, t + G.lag_ns)) PyErr_Clear();
  }
  Py_RETURN_NONE;
}

static PyMethodDef lag_tick_def = {"_lag_tick", lag_tick_fn, METH_NOARGS, "lag heartbeat"};

int lag_init(void) {
  G.lag_tick = PyCFunction_New(&lag_tick_def, NULL);
  return G.lag_tick ? 0 : -1;
}
