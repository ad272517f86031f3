/* watchdog.c — the blocking watchdog: a thread that reads the loop thread's heartbeat without the
 * GIL and, while a handle is still stuck past the threshold, takes the GIL to copy the loop
 * thread's Python stack (handle_run and session_close report the block with it). */
#include "watchdog.h"

/* The loop thread's Python stack, outermost first, as a list of (file, line, func, src).
 * Called by the watchdog with the GIL held while the loop thread is still blocked. */
static PyObject *capture_stack(PyThreadState *ts) {
  /* Only code objects' names and line numbers here (microseconds): the loop thread may want the
   * GIL back any moment. Source lines are read by the sender thread (lssrc.c), off the loop. */
  PyObject *out = PyList_New(0);
  if (!out) return NULL;
  PyFrameObject *f = PyThreadState_GetFrame(ts);
  int depth = 0;
  while (f && depth++ < 256) {
    PyCodeObject *code = PyFrame_GetCode(f);
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
      PyObject *stack = capture_stack(G.loop_tstate);
      if (!stack) PyErr_Clear();
      else {
        Py_XSETREF(G.block_stack, stack);
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

