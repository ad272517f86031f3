/* module.h — the module state of loopscope._core (G, defined in module.c: one collector per process)
 * and the few helpers every file of collector/ext/ uses (clock, str views, pointer hash). What
 * each file offers the others is in its own header; the C core's API is src/lscore.h. */
#ifndef LS_EXT_MODULE_H
#define LS_EXT_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lscore.h"

#if PY_VERSION_HEX < 0x030B0000
#define LS_PY310 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LS_ALWAYS_INLINE inline __attribute__((always_inline))
/* LS_HOT marks the functions run for every task or step: the compiler puts them side by side
 * (.text.hot), so the few instruction-cache lines they need between two stretches of the
 * interpreter's own code are close together. LS_COLD marks the rare paths (an untimed step,
 * asyncio's own tasks, a callback that raised): out of the hot functions' way, calls to them predicted
 * not taken. Why: on 3.14's async tree the collector adds ~0.3% instructions but ~30% more
 * instruction-cache misses (callgrind --cache-sim=yes), which is what its time cost is made of. */
#define LS_HOT __attribute__((hot))
/* noinline too: GCC inlines a cold static function called once back into its caller's hot body */
#define LS_COLD __attribute__((cold, noinline))
/* Asks for the line at p (any address: a prefetch never faults) without waiting for it. */
#define LS_PREFETCH(p) __builtin_prefetch((const void *)(p))
#else
#define LS_PREFETCH(p) ((void)(p))
#define LS_ALWAYS_INLINE inline
#define LS_HOT
#define LS_COLD
#endif

/* Py_XDECREF in line at every use. At -Os the compiler kept the header's inline function a call,
 * one out-of-line copy per file (twelve), each copy's line one more instruction-cache miss on the
 * per-task path (3.13's async tree: 72k misses a run, 8 a task). */
static LS_ALWAYS_INLINE void ls_xdecref(PyObject *op) {
  if (op) Py_DECREF(op);
}
#undef Py_XDECREF
#define Py_XDECREF(op) ls_xdecref(_PyObject_CAST(op))

/* Every header of collector/ext/ declares what it offers between pragmas like these: hidden
 * symbols are called directly (not through the PLT) and stay inlinable inside their own file, as
 * when everything was one file's statics. Only PyInit__core is exported (PyMODINIT_FUNC). */
#pragma GCC visibility push(hidden)

typedef struct session_obj session_obj; /* session.h */
typedef struct task_entry task_entry;   /* tasks.h */
typedef struct ls_summary ls_summary;   /* summary.h */

/* ---- module state ----------------------------------------------------------------------------
 * One collector per process, as the Python API allows only one install(): the state the files
 * share is this one struct, each group written by the file named above it (others may read).
 * State only one file uses is static in that file instead (the code cache and line cache in
 * code.c, the Handle slots in step.c, the eager frames in factory.c, session ids in session.c).
 * Everything except the heartbeat atomics is touched under the GIL. */
typedef struct ls_module {
  /* module.c: the collector and the settings given to start() */
  ls_collector *core;
  int started;
  uint32_t core_gen;               /* bumped for each collector start() makes (never 0): the string
                                    * numbers a code_info keeps belong to the collector of its
                                    * sid_gen (code.h) */
  unsigned generation;             /* bumped in a forked child: older sessions are dead there */
  uint64_t block_ns, lag_ns;
  uint64_t max_tasks;
  PyObject *lib_prefixes;          /* tuple of str */
  PyObject *asyncio_prefix;        /* str: the asyncio package directory */
  long pid;                        /* getpid() is a system call: read at start and after fork */
  PyObject *session_var;           /* ContextVar */
  PyObject *get_running_loop;      /* asyncio.get_running_loop */
  PyObject *hook_loop;             /* loopscope._state.hook_loop, called once per new loop */
  char *url_prefix;                /* "<server>/sessions/", malloc'd */
  /* module.c: what setup() and setup_done() learnt about this interpreter's asyncio */
  PyTypeObject *future_iter_type;  /* C FutureIter (first field: the future), or NULL */
  PyTypeObject *c_task_type;       /* _asyncio.Task */
  Py_ssize_t task_name_off;        /* offset of its name field (str, or the int of a default
                                    * "Task-<n>" name on 3.12+), 0 when not found at setup */
  Py_ssize_t task_coro_off;        /* offset of its coroutine field, 0 when not found at setup
                                    * (tasks.h's task_get_coro: get_coro() then) */
  PyObject *current_task;          /* asyncio.current_task */
  PyObject *task_cls;              /* asyncio.Task: the default factory */
  int eager_aware;                 /* 3.12+: the first step may run inside the factory */
  PyObject *base_loop_type;        /* asyncio.BaseEventLoop: its loops run tasks through Handle */
  /* session.c: the open sessions and the loop they last hooked */
  /* the open sessions, oldest first, linked through their anext/aprev and each holding a
   * reference (session.h's active_add and active_remove; module.c empties it after fork). Not a
   * list object: every step tests for an open session, and n_active is read beside G's other hot
   * fields where a list's size was a line of its own; no append and delete per request either */
  session_obj *active_head, *active_tail;
  Py_ssize_t n_active;
  PyObject *hooked_loop;           /* strong: the loop hook_loop was last called for */
  uint64_t hooked_loop_no;         /* its number: hook_loop answers it (1, 2, ... per process) */
  /* summary.c: every session keeps a summary (loopscope run), merged into sum_total at close */
  int summary_all;
  /* record.c: a block no session takes as its own gets a session of its own (keep_orphan_blocks:
   * LoopscopeMiddleware records only a share of requests) */
  int keep_orphan_blocks;
  ls_summary *sum_total;
  /* tasks.c: the task table, open addressing by task pointer, linear probing */
  task_entry **tab;
  size_t tab_cap, tab_len;
  /* step.h (time_step): the step in progress */
  task_entry *cur;                 /* the entry whose step is running */
  uint64_t cur_t0;                 /* when that step started */
  /* G.cur of the steps and factory calls a nested one interrupted, innermost last (tasks.h's
   * cur_push/cur_pop): entry_free clears a freed entry here too, so restoring never brings a
   * freed pointer back. Nesting beyond CUR_SAVED_MAX restores NULL (no parent, never wrong). */
#define CUR_SAVED_MAX 32
  task_entry *cur_saved[CUR_SAVED_MAX];
  int cur_depth;
  /* step.c: a handle run untimed (no session was open when it started) in which a session
   * adopted its task: timed from that moment (session.c starts the heartbeat) */
  int untimed_depth;               /* untimed Handle._run calls in progress */
  uint_fast64_t untimed_seq;       /* the heartbeat session.c started for it, 0: none */
  /* factory.c */
  int factory_depth;               /* task factory calls in progress (uvloop.c reads it) */
  /* lag.c (time_step reads them to call it only when there is something to do) */
  uint64_t lag_next;               /* when the next virtual tick comes due, 0: not yet armed */
  uint64_t lag_wait_due;           /* a tick waiting for lag_wait_for to run: when it came due */
  PyObject *lag_wait_for;          /* strong: the ready handle that tick waits for, or NULL */
  PyTypeObject *lag_timer_type;    /* asyncio's TimerHandle, NULL when its lateness is not read */
  /* watchdog.c, and step.h writing the heartbeat: the loop thread writes it, the watchdog reads
   * it without the GIL */
  pthread_t wd_thread;
  int wd_running;
  atomic_int wd_stop;
  atomic_uint_fast64_t hb_seq, hb_start;
  atomic_int hb_busy;
  PyThreadState *loop_tstate;
  uint64_t block_seq;              /* the heartbeat a captured stack belongs to (GIL) */
  PyObject *block_stack;           /* list of (file, line, func, src) or NULL (GIL) */
  /* "GET /path" of the request not recorded whose LoopscopeMiddleware frame was on block_stack's
   * stack (3.12+: read without touching the frame's locals dict), or NULL; set and cleared with
   * block_stack (GIL). An orphan block's session is named after it (record.c). */
  PyObject *block_request;
  PyObject *mw_code;               /* LoopscopeMiddleware.__call__'s code object (asgi.py), or NULL */
  uint64_t block_stack_ns;         /* when the watchdog took block_stack (now_ns) (GIL) */
  /* module.c: interned names */
  PyObject *header_name;           /* b"x-loopscope-session" */
  PyObject *s_cr_await, *s_gi_yieldfrom, *s_cr_code, *s_gi_code, *s_cr_frame, *s_gi_frame,
      *s_state, *s_exception, *s_qualname, *s_name, *s_get_name, *s_cr_suspended, *s_loop,
      *s_call_at, *s_time, *s_get, *s_run, *s_call_soon, *s_type, *s_method, *s_path, *s_headers,
      *s_websocket, *s_scope_state, *s_state_key, *s_response_start, *s_get_coro,
      *s_source_traceback;
} ls_module;

extern ls_module G; /* defined in module.c */

static LS_ALWAYS_INLINE uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static LS_ALWAYS_INLINE ls_str str_of(PyObject *u) {
  ls_str r = {NULL, 0, 0};
  if (u && PyUnicode_Check(u)) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(u, &n);
    if (p) { r.p = p; r.n = (size_t)n; }
    else PyErr_Clear();
  }
  return r;
}

/* v is a str equal to s (an interned str): by identity, else by length, kind and bytes, inline.
 * PyUnicode_Compare's call (unicode_compare) was ~13 L1 instruction misses a Litestar request
 * (bench/overhead/README.md, 2026-12-06, stop 38, for what it does at L2). */
static LS_ALWAYS_INLINE int str_is(PyObject *v, PyObject *s) {
  if (v == s) return 1;
  if (!v || !PyUnicode_CheckExact(v)) return v && PyUnicode_Check(v) && PyUnicode_Compare(v, s) == 0;
#if PY_VERSION_HEX < 0x030C0000
  if (PyUnicode_READY(v) < 0) { PyErr_Clear(); return 0; } /* a legacy str of the old C API */
#endif
  Py_ssize_t n = PyUnicode_GET_LENGTH(s);
  return PyUnicode_GET_LENGTH(v) == n && PyUnicode_KIND(v) == PyUnicode_KIND(s) &&
         memcmp(PyUnicode_DATA(v), PyUnicode_DATA(s), (size_t)n * PyUnicode_KIND(s)) == 0;
}

/* The hash of the pointer-keyed tables (task table, code cache, line cache). */
static LS_ALWAYS_INLINE size_t ptr_hash(const void *p) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(x ^ (x >> 29));
}

#pragma GCC visibility pop

#endif
