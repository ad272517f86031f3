/* watchdog.c — the blocking watchdog: a thread that reads the loop thread's heartbeat without the
 * GIL and, while a handle is still stuck past the threshold, takes the GIL to copy the loop
 * thread's Python stack and the request it is in (handle_run and session_close report the block
 * with them). */
#include "watchdog.h"

#include "request.h"

/* The name of the request whose LoopscopeMiddleware frame f is (its local `scope`), or NULL. Only
 * on 3.12+, whose PyFrame_GetVarString reads the variable where it lies: before, the one way was
 * the frame's locals dict (PyFrame_FastToLocals), which this thread would write while a debugger
 * on the loop thread may be changing it, and that must not be. */
static PyObject *request_of_frame(PyFrameObject *f) {
#if PY_VERSION_HEX >= 0x030C0000
  PyObject *scope = PyFrame_GetVarString(f, "scope");
  if (!scope) { PyErr_Clear(); return NULL; }
  /* a plain dict (every ASGI server's): a mapping of the app's own could run its code here, on
   * this thread, while the loop's is blocked */
  PyObject *name = PyDict_CheckExact(scope) ? request_name_str(scope) : NULL;
  Py_DECREF(scope);
  return name;
#else
  (void)f;
  return NULL;
#endif
}

/* The loop thread's Python stack, outermost first, as a list of (file, line, func, src); *request
 * the innermost LoopscopeMiddleware frame's request (request_of_frame), or NULL. Called by the
 * watchdog with the GIL held while the loop thread is still blocked. */
static PyObject *capture_stack(PyThreadState *ts, PyObject **request) {
  /* Only code objects' names and line numbers here (microseconds): the loop thread may want the
   * GIL back any moment. Source lines are read by the sender thread (lssrc.c), off the loop. */
  PyObject *out = PyList_New(0);
  if (!out) return NULL;
  PyFrameObject *f = PyThreadState_GetFrame(ts);
  int depth = 0;
  while (f && depth++ < 256) {
    PyCodeObject *code = PyFrame_GetCode(f);
    if (!*request && G.mw_code == (PyObject *)code) *request = request_of_frame(f);
    int line = PyFrame_GetLineNumber(f);
    PyObject *item = Py_BuildValue("(OiOO)", code->co_filename, line, code->co_name, Py_None);
    Py_DECREF(code);
    if (!item || PyList_Append(out, item)) { Py_XDECREF(item); PyErr_Clear(); }
    else Py_DECREF(item);
    PyFrameObject *back = PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  Py_XDECREF(f);
  if (PyList_Reverse(out)) PyErr_Clear(); /* outermost first, as a traceback */
  return out;
}

static void *watchdog_main(void *arg) {
  (void)arg;
  /* A stack is taken at half the threshold, and at the threshold only if none could be taken at
   * half of it. On a machine short of CPU (or with Python threads spinning for the GIL) this
   * thread may get the GIL tens of ms after it asked: by then the loop thread can be past the
   * blocking call and on in the same step (a 150 ms time.sleep then typing's or asyncio's code),
   * and a stack taken then names that code instead. The earlier the stack, the more of the block
   * is still ahead of it; a second one only ever replaced a right stack with a late one (seen in
   * CI under load: base_events.call_at, typing.py). One GIL grab per block instead of two, too. */
  uint_fast64_t early_seq = 0, done_seq = 0, taken_seq = 0;
  while (!atomic_load(&G.wd_stop)) {
    uint64_t tick = G.block_ns / 10;
    if (tick > 10000000u) tick = 10000000u;
    if (tick < 1000000u) tick = 1000000u;
    struct timespec ts = {(time_t)(tick / 1000000000u), (long)(tick % 1000000000u)};
    nanosleep(&ts, NULL);
    if (!atomic_load_explicit(&G.hb_busy, memory_order_acquire)) continue;
    uint_fast64_t seq = atomic_load_explicit(&G.hb_seq, memory_order_relaxed);
    uint64_t start = atomic_load_explicit(&G.hb_start, memory_order_relaxed);
    uint64_t stuck = now_ns() - start;
    if (seq == done_seq || seq == taken_seq || stuck < G.block_ns / 2 || (seq == early_seq && stuck < G.block_ns))
      continue;
    if (stuck >= G.block_ns) done_seq = seq;
    early_seq = seq;
    if (atomic_load(&G.wd_stop) || !Py_IsInitialized()) break;
    PyGILState_STATE gs = PyGILState_Ensure();
    /* still the same stuck handle? then its stack names the culprit */
    if (G.wd_running && atomic_load(&G.hb_busy) && atomic_load(&G.hb_seq) == seq && G.loop_tstate) {
      PyObject *request = NULL;
      PyObject *stack = capture_stack(G.loop_tstate, &request);
      if (!stack) {
        PyErr_Clear();
        Py_XDECREF(request);
      } else {
        Py_XSETREF(G.block_stack, stack);
        Py_XSETREF(G.block_request, request);
        G.block_stack_ns = now_ns(); /* how late it came is said with the block (stack_t) */
        G.block_seq = seq;
        taken_seq = seq;
      }
    }
    PyGILState_Release(gs);
  }
  return NULL;
}

int watchdog_start(void) {
  atomic_store(&G.wd_stop, 0);
  if (pthread_create(&G.wd_thread, NULL, watchdog_main, NULL)) return -1;
  G.wd_running = 1;
  return 0;
}

void watchdog_stop(void) {
  if (!G.wd_running) return;
  atomic_store(&G.wd_stop, 1);
  Py_BEGIN_ALLOW_THREADS
  pthread_join(G.wd_thread, NULL);
  Py_END_ALLOW_THREADS
  G.wd_running = 0;
}

