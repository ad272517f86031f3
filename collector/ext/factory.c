/* factory.c — the task factory: which session a new task belongs to (the context's), its parent
 * (the task stepping, or an eager task still inside its own factory call), registering it, and an
 * eager first step run inside the factory. Steps after that are step.h's; the events record.c's. */
#include "factory.h"
#include "code.h"
#include "record.h"
#include "session.h"
#include "tasks.h"
#include "uvloop.h"

/* what a task factory call in progress saw before calling the real factory (eager tasks) */
typedef struct eager_frame {
  session_obj *sess;       /* borrowed for the duration of the call */
  uint64_t parent, t0;
} eager_frame;
#define EAGER_MAX 64
static eager_frame eager[EAGER_MAX]; /* one per factory call in progress, by depth (G.factory_depth) */

static PyObject *done_cb; /* done callback for tasks of other loops (uvloop), made at init */
static PyObject *tasks_dict, *s_Task; /* asyncio.tasks.__dict__ (at the first call), "Task" */

/* The class asyncio.Task is now (a strong ref): BaseEventLoop.create_task looks up tasks.Task at
 * each call, and a program may replace it (CPython's TestPyGetEventLoop puts the pure-Python Task
 * there; a C Task made instead fails on 3.14, "loop ... is not the running loop").
 * On 3.12+ the answer is kept until asyncio.tasks' dict changes (a dict watcher drops it): the
 * lookup per task ran the interpreter's generic dict lookup, which the program's own create_task
 * does not (its LOAD_ATTR on the module is specialised), measured on 3.14 as ~11 instruction-cache
 * misses per task in _Py_dict_lookup and PyDict_GetItemWithError. */
#if PY_VERSION_HEX >= 0x030C0000
static PyObject *task_cls_cached; /* borrowed from tasks_dict while the watcher has not fired */
static int tasks_watcher = -1;    /* the dict watcher's id, -1: none (then no caching) */

static int tasks_dict_changed(PyDict_WatchEvent ev, PyObject *d, PyObject *k, PyObject *v) {
  (void)ev; (void)d; (void)k; (void)v;
  task_cls_cached = NULL;
  return 0;
}
#endif

/* The lookup behind task_class_now: the first call, every call below 3.12 or without a watcher,
 * and the first after asyncio.tasks' dict changed. */
LS_COLD static PyObject *task_class_lookup(void) {
  if (!tasks_dict) {
    PyObject *m = PyImport_ImportModule("asyncio.tasks");
    if (m) {
      tasks_dict = Py_NewRef(PyModule_GetDict(m));
      Py_DECREF(m);
#if PY_VERSION_HEX >= 0x030C0000
      /* without a free watcher slot every call looks the class up, as before */
      if ((tasks_watcher = PyDict_AddWatcher(tasks_dict_changed)) < 0) PyErr_Clear();
      else if (PyDict_Watch(tasks_watcher, tasks_dict) < 0) {
        PyErr_Clear();
        if (PyDict_ClearWatcher(tasks_watcher) < 0) PyErr_Clear();
        tasks_watcher = -1;
      }
#endif
    } else PyErr_Clear();
  }
  PyObject *cls = tasks_dict ? PyDict_GetItemWithError(tasks_dict, s_Task) : NULL;
  if (!cls) { PyErr_Clear(); cls = G.task_cls; }
#if PY_VERSION_HEX >= 0x030C0000
  else if (tasks_watcher >= 0) task_cls_cached = cls; /* the dict holds it until it changes */
#endif
  return Py_NewRef(cls);
}

static LS_ALWAYS_INLINE PyObject *task_class_now(void) {
#if PY_VERSION_HEX >= 0x030C0000
  if (task_cls_cached) return Py_NewRef(task_cls_cached);
#endif
  return task_class_lookup();
}

typedef struct {
  PyObject_HEAD
  PyObject *chained;   /* the factory set before ours, or None */
  vectorcallfunc vectorcall;
} factory_obj;

/* The live session val is (a new ref, taken from val), or NULL (val released). */
static LS_ALWAYS_INLINE session_obj *live_session(PyObject *val) {
  if (val && is_session(val) && session_live((session_obj *)val)) return (session_obj *)val;
  Py_XDECREF(val);
  return NULL;
}

/* create_task(..., context=ctx) or other keyword arguments: the session of ctx when one is given
 * (ctx.get(var)), else the current context's. Cold: a plain create_task(coro) has no keywords. */
LS_COLD static session_obj *session_of_kwargs(PyObject *const *args, size_t nargs, PyObject *kwnames) {
  PyObject *ctx = NULL, *val = NULL;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++)
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "context") == 0)
      ctx = args[nargs + (size_t)i];
  if (ctx && ctx != Py_None) {
    if (!(val = PyObject_CallMethodObjArgs(ctx, G.s_get, G.session_var, NULL))) { PyErr_Clear(); return NULL; }
  } else if (PyContextVar_Get(G.session_var, NULL, &val) < 0) {
    PyErr_Clear();
    return NULL;
  }
  return live_session(val);
}

static LS_ALWAYS_INLINE session_obj *session_of_context(PyObject *const *args, size_t nargs, PyObject *kwnames) {
  if (kwnames && PyTuple_GET_SIZE(kwnames)) return session_of_kwargs(args, nargs, kwnames);
  PyObject *val = NULL;
  if (PyContextVar_Get(G.session_var, NULL, &val) < 0) {
    PyErr_Clear();
    return NULL;
  }
  return live_session(val);
}

/* uvloop's own coroutines (its shutdown_asyncgens, shutdown_default_executor): Cython ones */
static int coro_is_uvloop_own(PyObject *coro) {
  PyObject *code = PyObject_GetAttr(coro, G.s_cr_code);
  if (!code) { PyErr_Clear(); return 0; }
  int r = PyCode_Check(code) &&
          PyUnicode_CompareWithASCIIString(((PyCodeObject *)code)->co_filename, "uvloop/loop.pyx") == 0;
  Py_DECREF(code);
  return r;
}

/* asyncio.run's own root tasks (shutdown_asyncgens, shutdown_default_executor) are not the app's */
LS_COLD static int coro_is_asyncio_housekeeping(PyObject *coro) {
  if (!PyCoro_CheckExact(coro)) return coro_is_uvloop_own(coro);
  PyObject *code = PyObject_GetAttr(coro, G.s_cr_code);
  PyObject *frame = PyObject_GetAttr(coro, G.s_cr_frame);
  if (!code || !frame) PyErr_Clear();
  code_info *ci = code_info_of(code, coro, frame);
  Py_XDECREF(code);
  Py_XDECREF(frame);
  return ci && ci->is_asyncio;
}

/* The parent of a task being created now, in session s: the task whose step is running, or,
 * inside a factory call (an eager first step), the task asyncio says is current. A current task
 * not known yet is an eager task still inside its own factory call: it is registered here, early,
 * with what its factory call saw (the enclosing entry of eager), so its children can name it. */
LS_COLD static uint64_t parent_asked(session_obj *s, PyObject *loop);
static LS_ALWAYS_INLINE uint64_t parent_for(session_obj *s, PyObject *loop) {
  task_entry *pe = G.cur;
  if (G.factory_depth > 0 || !pe) return parent_asked(s, loop);
  return pe->sess == s ? pe->id : 0;
}

/* parent_for inside a factory call (an eager step) or outside any recorded step: asyncio's
 * current task, registered early when it is an eager task still inside its own factory call. */
LS_COLD static uint64_t parent_asked(session_obj *s, PyObject *loop) {
  task_entry *pe = G.cur;
  PyObject *ct = PyObject_CallOneArg(G.current_task, loop);
  if (!ct) { PyErr_Clear(); return pe && pe->sess == s ? pe->id : 0; }
  if (ct != Py_None) {
    pe = tab_find(ct);
    if (!pe && G.factory_depth > 0 && G.factory_depth <= EAGER_MAX) {
      eager_frame *f = &eager[G.factory_depth - 1];
      if (f->sess == s) {
        PyObject *coro = task_get_coro(ct);
        if (!coro) PyErr_Clear();
        else {
          pe = register_task(s, ct, coro, NULL, f->parent, f->t0);
          Py_DECREF(coro); /* the task keeps it */
        }
      }
    }
  }
  Py_DECREF(ct);
  return pe && pe->sess == s ? pe->id : 0;
}

/* asyncio.Task(coro, loop=loop, **kwargs) for a create_task call with keyword arguments (name=,
 * context=, eager_start=): the keyword names are made per call. Cold: create_task(coro) without
 * them, the common call, uses names made once (factory_vectorcall). */
LS_COLD static PyObject *task_with_kwargs(PyObject *cls, PyObject *loop, PyObject *coro, PyObject *const *kwargs,
                                          PyObject *kwnames) {
  Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
  if (nkw > 15) { PyErr_SetString(PyExc_TypeError, "too many keyword arguments"); return NULL; }
  PyObject *names = PyTuple_New(1 + nkw);
  if (!names) return NULL;
  PyObject *stack[1 + 1 + 16];
  stack[0] = coro;
  stack[1] = loop;
  PyTuple_SET_ITEM(names, 0, Py_NewRef(G.s_loop));
  for (Py_ssize_t i = 0; i < nkw; i++) {
    stack[2 + i] = kwargs[i];
    PyTuple_SET_ITEM(names, 1 + i, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
  }
  PyObject *task = PyObject_Vectorcall(cls, stack, 1, names);
  Py_DECREF(names);
  return task;
}

/* asyncio.Task(coro, loop=loop): create_task(coro) with no keyword arguments, the common call.
 * Called as the interpreter calls it from BaseEventLoop.create_task (a tuple and a dict, straight
 * to the type's tp_call): a vectorcall with keyword names would first be turned into that dict by
 * _PyObject_MakeTpCall, code the program itself never runs (measured on 3.14's async tree: ~12
 * instruction-cache misses per task in it and the dict it builds). */
static PyObject *plain_args; /* a 1-tuple whose item is NULL, kept for the next task_plain, or NULL */

LS_HOT static PyObject *task_plain(PyObject *cls, PyObject *loop, PyObject *coro) {
  /* The argument tuple is reused from call to call when nothing else kept it: PyTuple_New was ~8
   * instruction-cache misses per task on 3.14's async tree, interpreter code the program's own
   * create_task does not run. Taken, not shared, so a task made inside this call (an eager
   * first step) makes its own; its item goes back to NULL after the call, so it holds nothing. */
  PyObject *args = plain_args;
  plain_args = NULL;
  if (!args && !(args = PyTuple_New(1))) return NULL; /* not PyTuple_Pack: its varargs code was ~6 misses */
  PyTuple_SET_ITEM(args, 0, Py_NewRef(coro));
  PyObject *kw = PyDict_New();
  PyObject *task = NULL;
  if (kw && PyDict_SetItem(kw, G.s_loop, loop) == 0) task = PyObject_Call(cls, args, kw);
  Py_XDECREF(kw);
  if (Py_REFCNT(args) == 1 && !plain_args) {
    PyTuple_SET_ITEM(args, 0, NULL);
    Py_DECREF(coro); /* the tuple's reference */
    plain_args = args;
  } else {
    Py_DECREF(args);
  }
  return task;
}

/* A task of a loop that does not run tasks through asyncio's Handle (uvloop) and has no SoonHook:
 * its steps are not seen, so its end comes from a done callback. */
LS_COLD static void watch_end_by_callback(PyObject *task) {
  PyObject *r = PyObject_CallMethod(task, "add_done_callback", "O", done_cb);
  if (!r) PyErr_Clear();
  Py_XDECREF(r);
}

/* 3.12+, a coroutine not in the frame state the samples at setup showed to be "created": its
 * task's eager first step may have run inside the factory. Its end is read first (*t1); then a
 * suspended coroutine ran, and for any other state (finished, say) the task is asked. */
LS_COLD static int eager_step_ended(PyObject *task, PyObject *coro, uint64_t *t1) {
  *t1 = now_ns();
  if (PyCoro_CheckExact(coro) && coro_state(coro) == CORO_SUSPENDED) return 1;
  if (task_state(task) != 0) return 1;
  PyObject *susp = PyObject_GetAttr(coro, G.s_cr_suspended);
  if (!susp) PyErr_Clear();
  int ran = susp == Py_True;
  Py_XDECREF(susp);
  return ran;
}

/* Whether loop's steps are seen: asyncio's loops (a BaseEventLoop) run them through Handle, and
 * others (uvloop) when a SoonHook is on the loop. The type of the last loop found to be asyncio's
 * is kept: the check for a subclass (every asyncio loop is one) walked its MRO for every task.
 * Kept borrowed, with its version tag: a type freed and another made at its address has another
 * tag (tags are never reused); a type without one (0) is not kept. */
static struct { PyTypeObject *type; unsigned int tag; } asyncio_loop_seen;
static LS_ALWAYS_INLINE int loop_steps_seen(PyObject *loop) {
  PyTypeObject *tp = Py_TYPE(loop);
  if (tp == asyncio_loop_seen.type && tp->tp_version_tag == asyncio_loop_seen.tag) return 1;
  if (!G.base_loop_type) return 1;
  if (PyObject_TypeCheck(loop, (PyTypeObject *)G.base_loop_type)) {
    if (tp->tp_version_tag) {
      asyncio_loop_seen.type = tp;
      asyncio_loop_seen.tag = tp->tp_version_tag;
    }
    return 1;
  }
  return steps_hooked(loop);
}

/* asyncio's BaseEventLoop.create_task drops its own line from a new task's _source_traceback (set
 * in debug mode: where the task was made, shown when it is destroyed pending or its exception is
 * never retrieved) when no factory is set, and not when one is. Standing in for "no factory",
 * loopscope's does what create_task would have done: the list's last entry (create_task's line, the
 * innermost Python frame when the C Task was made) goes, on asyncio's loops; uvloop's create_task
 * keeps it. Outside debug mode the list is None: one call of the C getter per task. */
LS_COLD static void source_traceback_drop_last(PyObject *tb, PyObject *loop) {
  if (G.base_loop_type && PyObject_TypeCheck(loop, (PyTypeObject *)G.base_loop_type) && PyList_Check(tb) &&
      PyList_GET_SIZE(tb) > 0 && PyList_SetSlice(tb, PyList_GET_SIZE(tb) - 1, PyList_GET_SIZE(tb), NULL) < 0)
    PyErr_Clear();
}

static LS_ALWAYS_INLINE void source_traceback_as_create_task(PyObject *task, PyObject *loop) {
  PyObject *tb = task_source_traceback(task);
  if (!tb) { PyErr_Clear(); return; }
  if (tb != Py_None) source_traceback_drop_last(tb, loop);
  Py_DECREF(tb);
}

LS_HOT static PyObject *factory_vectorcall(factory_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  size_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "task factory expects (loop, coro, **kwargs)");
    return NULL;
  }
  PyObject *loop = args[0], *coro = args[1];
  session_obj *s = G.started && G.n_active ? session_of_context(args, nargs, kwnames) : NULL;
  uint64_t t0 = 0, parent = 0;
  code_info *ci = NULL;
  if (s) {
    t0 = now_ns();
    parent = parent_for(s, loop);
    ci = coro_code_info(coro); /* now, while the coroutine's frame still tells its module */
  }
  int saved_cur = cur_push(); /* an eager first step may end the session of G.cur's task */
  PyObject *task;
  if (G.factory_depth < EAGER_MAX) {
    eager_frame *f = &eager[G.factory_depth];
    f->sess = s;
    f->parent = parent;
    f->t0 = t0;
  }
  G.factory_depth++;
  if (self->chained != Py_None) {
    task = PyObject_Vectorcall(self->chained, args, nargsf, kwnames);
  } else {
    /* asyncio.Task(coro, loop=loop, **kwargs) */
    PyObject *cls = task_class_now();
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
      task = task_with_kwargs(cls, loop, coro, args + 2, kwnames);
    } else {
      task = task_plain(cls, loop, coro);
    }
    Py_DECREF(cls);
    if (task) source_traceback_as_create_task(task, loop);
  }
  G.factory_depth--;
  cur_pop(saved_cur);
  if (!task || !s) { Py_XDECREF(s); return task; }
  /* 3.12+: an eager task ran its first step inside the factory. A coroutine in a frame state the
   * samples at setup showed to be "created" did not run (the common, non-eager case: no clock read,
   * no attribute lookup), one in a suspended state did; any other state (finished, say) asks the
   * task. The step's end is read before anything else is done here. */
  uint64_t t1 = 0;
  int ran = G.eager_aware && !(PyCoro_CheckExact(coro) && coro_state(coro) == CORO_CREATED) &&
            eager_step_ended(task, coro, &t1);
  task_entry *e = tab_find(task); /* registered already if its eager step made children */
  if (!e && !parent && coro_is_asyncio_housekeeping(coro)) { Py_DECREF(s); return task; }
  if (!e) {
    /* ci is from before the call: a stop() inside it (an eager step) empties the code cache */
    e = register_task(s, task, coro, session_live(s) ? ci : NULL, parent, t0);
    /* uvloop and other loops do not run tasks through asyncio's Handle: without a SoonHook on
     * the loop steps are not seen, so the task's end comes from a done callback instead */
    if (e && !loop_steps_seen(loop)) watch_end_by_callback(task);
  }
  if (e && ran) step_end(e, t0, t1);
  Py_DECREF(s);
  return task;
}

static PyObject *done_cb_fn(PyObject *mod, PyObject *task) {
  (void)mod;
  task_entry *e = tab_find(task);
  if (e && session_live(e->sess)) {
    int st = task_state(task);
    task_finish(e, st ? st : 1, now_ns());
  }
  Py_RETURN_NONE;
}

static PyMethodDef done_cb_def = {"_done", done_cb_fn, METH_O, "task end on loops without Handle"};

static PyObject *factory_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *chained = Py_None;
  static char *kwlist[] = {"chained", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &chained)) return NULL;
  factory_obj *self = (factory_obj *)type->tp_alloc(type, 0);
  if (!self) return NULL;
  self->chained = Py_NewRef(chained);
  self->vectorcall = (vectorcallfunc)factory_vectorcall;
  return (PyObject *)self;
}

static void factory_dealloc(factory_obj *self) {
  Py_XDECREF(self->chained);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef factory_members[] = {
    {"chained", T_OBJECT, offsetof(factory_obj, chained), READONLY, "the factory this one calls"},
    {NULL, 0, 0, 0, NULL}};

PyTypeObject Factory_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.TaskFactory",
    .tp_basicsize = sizeof(factory_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = factory_new,
    .tp_dealloc = (destructor)factory_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(factory_obj, vectorcall),
    .tp_members = factory_members,
};

int factory_init(void) {
  if (!(s_Task = PyUnicode_InternFromString("Task"))) return -1;
  done_cb = PyCFunction_New(&done_cb_def, NULL);
  return done_cb ? 0 : -1;
}
