/* core.h — what the files of the CPython module loopscope._core share: the module state (one
 * collector per process), the task and session structs, and the few functions one file offers
 * another. Internal to collector/ext/; the C core's own API is src/lscore.h. */
#ifndef LS_EXT_CORE_H
#define LS_EXT_CORE_H

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

/* ---- module state --------------------------------------------------------------------------
 * One collector per process, as the Python API allows only one install(): the module keeps its
 * state in this one struct. Everything except the heartbeat atomics is touched under the GIL. */

typedef struct code_info {
  PyObject *code;          /* strong: keeps the pointer from being reused while cached */
  PyObject *qualname;      /* strong str */
  PyObject *fullname;      /* strong str: module.qualname, the task's "coro" */
  const char *file, *func, *qual, *full; /* UTF-8 views into the strings above / the code */
  Py_ssize_t nfile, nfunc, nqual, nfull;
  int is_lib;              /* file under the stdlib or site-packages */
  int is_asyncio;          /* file inside the asyncio package (its own housekeeping tasks) */
} code_info;

typedef struct session_obj session_obj;

/* what a task factory call in progress saw before calling the real factory (eager tasks) */
typedef struct eager_frame {
  session_obj *sess;       /* borrowed for the duration of the call */
  uint64_t parent, t0;
} eager_frame;
#define EAGER_MAX 64

typedef struct task_entry {
  struct task_entry *snext, *sprev; /* the session's list of its live entries */
  PyObject *task;          /* borrowed: the key; entries go away when the task ends */
  PyObject *coro;          /* borrowed: the task holds it while pending */
  session_obj *sess;       /* strong */
  uint64_t id, parent, created;
  code_info *coro_info;    /* may be NULL */
  int announced;
  /* the await in progress, if any: emitted when the next step starts (its end) */
  int awaiting;
  uint64_t await_t;
  int32_t await_line;
  code_info *await_at;     /* the user's frame's code, NULL when unknown */
  char what[96];
  size_t nwhat;
} task_entry;

struct session_obj {
  PyObject_HEAD
  ls_session *ls;          /* NULL before open and after close */
  PyObject *id;            /* str */
  uint64_t start;          /* monotonic ns */
  uint64_t next_id, ntasks, max_tasks, dropped_tasks;
  int active;
  unsigned generation;     /* fork generation the session was opened in */
  task_entry *entries;     /* live entries of this session's tasks */
};

typedef struct ls_module {
  ls_collector *core;
  int started;
  unsigned generation;             /* bumped in a forked child: older sessions are dead there */
  /* settings */
  uint64_t block_ns, lag_ns;
  uint64_t max_tasks;
  PyObject *lib_prefixes;          /* tuple of str */
  PyObject *asyncio_prefix;        /* str: the asyncio package directory */
  char *meta_static;               /* ,"service":..,"host":..,"python":.. pre-encoded, malloc'd */
  long pid;                        /* getpid() is a system call: read at start and after fork */
  PyObject *session_var;           /* ContextVar */
  /* hooks */
  PyObject *handle_type, *orig_run;
  Py_ssize_t off_callback;
  Py_ssize_t off_args, off_context; /* Handle's _args and _context slots, 0 when not found */
  PyObject *run_failed;            /* Python: the except branch of Handle._run, or NULL */
  PyObject *task_types;            /* tuple of Task classes (C and Python) */
  PyObject *wrapper_types;         /* tuple of C step-wrapper types whose first field is the task */
  PyTypeObject *future_iter_type;  /* C FutureIter (first field: the future), or NULL */
  PyTypeObject *c_task_type;       /* _asyncio.Task */
  int created_state;               /* 3.11+: cr_frame_state of a coroutine not started yet, -128
                                    * when not learnt at setup */
  int completed_state;             /* 3.11+: cr_frame_state of a finished coroutine, -128 when the
                                    * "negative = not finished" rule was not confirmed at setup */
  Py_ssize_t task_name_off;        /* offset of its name field (str, or the int of a default
                                    * "Task-<n>" name on 3.12+), 0 when not found at setup */
  PyObject *current_task;          /* asyncio.current_task */
  PyObject *task_cls;              /* asyncio.Task: the default factory */
  int eager_aware;                 /* 3.12+: the first step may run inside the factory */
  int fast_frames;                 /* 3.11: the interpreter frame layout was confirmed at setup */
  PyObject *base_loop_type;        /* asyncio.BaseEventLoop: its loops run tasks through Handle */
  PyObject *done_cb;               /* done callback for tasks of other loops (uvloop) */
  /* ASGI requests (the middleware's per-request work) */
  PyObject *get_running_loop;      /* asyncio.get_running_loop */
  PyObject *hook_loop;             /* loopscope._state.hook_loop, called once per new loop */
  PyObject *hooked_loop;           /* strong: the loop hook_loop was last called for */
  char *url_prefix;                /* "<server>/sessions/", malloc'd */
  char id_prefix[24];              /* "s-<16 hex>-", new per process (and per forked child) */
  uint64_t id_counter;
  PyObject *header_name;           /* b"x-loopscope-session" */
  int factory_depth;
  eager_frame eager[EAGER_MAX];    /* one per factory call in progress, by depth */
  /* capture */
  PyObject *active;                /* list of active sessions */
  task_entry **tab;                /* open addressing by task pointer, linear probing */
  size_t tab_cap, tab_len;
  code_info **codes;
  size_t codes_cap, codes_len;
  task_entry *cur;                 /* the entry whose step is running */
  uint64_t cur_t0;                 /* when that step started */
  /* lag */
  PyObject *lag_loop;              /* strong, the loop the heartbeat runs on */
  int lag_pending;
  uint64_t lag_due;
  PyObject *lag_tick;              /* the C callable scheduled with call_at */
  /* watchdog: the loop thread writes the heartbeat, the watchdog reads it without the GIL */
  pthread_t wd_thread;
  int wd_running;
  atomic_int wd_stop;
  atomic_uint_fast64_t hb_seq, hb_start;
  atomic_int hb_busy;
  PyThreadState *loop_tstate;
  uint64_t block_seq;              /* the heartbeat a captured stack belongs to (GIL) */
  PyObject *block_stack;           /* list of (file, line, func, src) or NULL (GIL) */
  /* interned names */
  getter get_cr_await, get_gi_yieldfrom; /* the getset functions of coroutine.cr_await and
                                    * generator.gi_yieldfrom, called directly (no attribute lookup) */
  PyObject *s_cr_await, *s_gi_yieldfrom, *s_cr_code, *s_gi_code, *s_cr_frame, *s_gi_frame,
      *s_state, *s_exception, *s_qualname, *s_name, *s_get_name, *s_cr_suspended, *s_loop,
      *s_call_at, *s_time, *s_get, *s_run, *s_call_soon, *s_type, *s_method, *s_path, *s_headers,
      *s_websocket, *s_scope_state, *s_state_key, *s_response_start, *s_get_coro;
} ls_module;

extern ls_module G; /* defined in _core.c */

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rel(const session_obj *s, uint64_t t) { return t > s->start ? t - s->start : 0; }

static inline int session_live(const session_obj *s) {
  return s && s->active && s->ls && s->generation == G.generation;
}

static inline ls_str str_of(PyObject *u) {
  ls_str r = {NULL, 0};
  if (u && PyUnicode_Check(u)) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(u, &n);
    if (p) { r.p = p; r.n = (size_t)n; }
    else PyErr_Clear();
  }
  return r;
}

static inline void emit(session_obj *s, ls_event *ev) {
  if (session_live(s)) ls_emit(s->ls, ev);
}

/* sessions (_core.c) */
#define ID_MAX (sizeof G.id_prefix + 17) /* a session id and its NUL */
size_t new_session_id(char buf[ID_MAX]);
extern PyTypeObject Session_Type;
int session_begin(session_obj *self, ls_str name, uint64_t max_tasks);
PyObject *session_close(session_obj *self, PyObject *unused);
PyObject *session_stats(session_obj *self, PyObject *unused);
int session_enter_loop(session_obj *self, PyObject *loop, int adopt);
/* lag heartbeat (lag.c) */
int lag_init(void);
void lag_ensure(PyObject *loop);
/* blocking watchdog (watchdog.c) */
int watchdog_start(void);
void watchdog_stop(void);
/* ASGI requests (request.c) */
extern PyTypeObject Request_Type;
PyObject *mod_request_open(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);

#endif
