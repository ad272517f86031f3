/* step.c — the step hook on asyncio's loops: stands in for asyncio.events.Handle._run so that
 * every callback the loop runs is timed (time_step, step.h), and tells which callbacks are steps of
 * which task. Loops without Handle (uvloop) are uvloop.c's; what is recorded is record.c's. */
#include "step.h"

/* What patch_handle learnt and changed (Handle._run while patched), read on every handle. */
static struct {
  PyObject *handle_type, *orig_run;
  PyObject *descr;                 /* ours, as set on Handle._run */
  Py_ssize_t off_callback;
  Py_ssize_t off_args, off_context; /* Handle's _args and _context slots, 0 when not found */
} hook;
hook_types_t hook_types;
static PyTypeObject Rethrow_Type; /* below, with run_raised */

int step_init(void) {
  if (PyType_Ready(&Rethrow_Type)) return -1;
  if (!(hook_types.task_types = PyTuple_New(0))) return -1;
  if (!(hook_types.wrapper_types = PyTuple_New(0))) return -1;
  return 0;
}

/* The task a handle's callback steps, or NULL: TaskStepMethWrapper / task_wakeup (C Task) or a
 * bound __step / __wakeup method (pure-Python Task). Borrowed. */
LS_HOT PyObject *task_of_callback(PyObject *cb) {
  PyObject *self = callback_self(cb);
  if (!self) return NULL;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hook_types.task_types); i++)
    if (PyObject_TypeCheck(self, (PyTypeObject *)PyTuple_GET_ITEM(hook_types.task_types, i))) return self;
  return NULL;
}

/* asyncio's Handle._run, in C when its slots were found at install: context.run(callback, *args)
 * without a Python frame per handle. When the callback raises, the original _run runs after all,
 * with the exception handed back to it where it would have come from (Rethrow below), so its own
 * except branch reports it: the same traceback (with _run's line in it), the same exception being
 * handled while the loop's exception handler runs, and the same chaining of anything raised there.
 * The common path (a Context, a tuple of arguments, no exception) is call_orig_run alone; the rest
 * is in the cold helpers below, out of its way in the instruction cache. */

/* Rethrow: stands in for a handle's context for one call of the original _run. Its run(...) puts
 * the handle's context back and raises the exception the callback raised, unchanged: a C function
 * adds no line to the traceback, and the exception leaves it at the line of _run that called
 * self._context.run(self._callback, *self._args), as it did the first time. Invariant: while
 * handle's _context slot holds a Rethrow, that Rethrow holds the context it replaced. */
typedef struct {
  PyObject_HEAD
  PyObject *handle;         /* borrowed: the handle whose _run is running */
  PyObject *ctx;            /* the handle's own context while the slot holds this, else NULL */
  PyObject *type, *val, *tb; /* the exception to raise, until raised */
  PyObject *args;           /* the handle's _args while () stands in for them (see run_raised) */
  int args_swapped;
} rethrow_obj;

/* Puts the handle's context back in its slot if this still stands in for it. */
LS_COLD static void rethrow_restore(rethrow_obj *r) {
  if (!r->ctx) return; /* put back already: the handle (borrowed) may be gone since */
  PyObject **slot = (PyObject **)((char *)r->handle + hook.off_context);
  if (*slot != (PyObject *)r) return;
  *slot = r->ctx; /* the slot's reference, back */
  r->ctx = NULL;
  if (r->args_swapped) {
    PyObject **aslot = (PyObject **)((char *)r->handle + hook.off_args);
    PyObject *stand_in = *aslot;
    *aslot = r->args;
    r->args = NULL;
    r->args_swapped = 0;
    Py_XDECREF(stand_in);
  }
  Py_DECREF(r);   /* the slot's reference to r: the caller holds another */
}

LS_COLD static PyObject *rethrow_run(rethrow_obj *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  (void)args; (void)nargs; (void)kwnames;
  rethrow_restore(r);
  if (!r->type) {
    PyErr_SetString(PyExc_RuntimeError, "loopscope: the callback's exception was raised already");
    return NULL;
  }
  PyErr_Restore(r->type, r->val, r->tb);
  r->type = r->val = r->tb = NULL;
  return NULL;
}

LS_COLD static void rethrow_dealloc(rethrow_obj *r) {
  Py_XDECREF(r->ctx);
  Py_XDECREF(r->type);
  Py_XDECREF(r->val);
  Py_XDECREF(r->tb);
  Py_XDECREF(r->args);
  PyObject_Free(r);
}

static PyMethodDef rethrow_methods[] = {
    {"run", (PyCFunction)(void (*)(void))rethrow_run, METH_FASTCALL | METH_KEYWORDS,
     "raise the callback's exception again, the handle's context put back"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject Rethrow_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.Rethrow",
    .tp_basicsize = sizeof(rethrow_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)rethrow_dealloc,
    .tp_methods = rethrow_methods,
};

/* The callback raised (its exception is set): the original _run, which meets the exception again
 * at its context.run call and handles it as its own. */
LS_COLD static PyObject *run_raised(PyObject *handle) {
  rethrow_obj *r = PyObject_New(rethrow_obj, &Rethrow_Type);
  if (!r) return NULL; /* MemoryError, raised from the loop as the original would on no memory */
  PyErr_Fetch(&r->type, &r->val, &r->tb);
  r->handle = handle;
  r->args = NULL;
  r->args_swapped = 0;
  /* A callback that cancelled its own handle left _args None: the original's call expression
   * (*self._args) would raise its own TypeError before reaching run. () stands in until run, so
   * the except branch sees the handle as the callback left it, as the original's did. */
  PyObject **aslot = (PyObject **)((char *)handle + hook.off_args);
  if (!*aslot || !PyTuple_Check(*aslot)) {
    r->args = *aslot;
    *aslot = PyTuple_New(0);
    if (!*aslot) { PyErr_Clear(); *aslot = r->args; r->args = NULL; }
    else r->args_swapped = 1;
  }
  PyObject **slot = (PyObject **)((char *)handle + hook.off_context);
  r->ctx = *slot;            /* the slot's reference, kept while r stands in */
  *slot = (PyObject *)r;     /* the slot takes a reference to r; the local one is ours */
  Py_INCREF(r);
  PyObject *res = PyObject_CallOneArg(hook.orig_run, handle);
  rethrow_restore(r); /* an original that never called run (not asyncio's): the context back */
  Py_DECREF(r);
  return res;
}

/* context.run(callback, *args) for a context that is not exactly a Context: its run method. */
LS_COLD static PyObject *run_in_other_context(PyObject *const *stack, size_t n) {
  return PyObject_VectorcallMethod(G.s_run, (PyObject **)stack, n, NULL);
}

/* handle's callback in its context, as the original _run would run it; ts: this thread's state.
 * The original _run itself runs while the thread has a trace or profile function set (a debugger
 * such as pdb, cProfile, a tracing coverage tool) or tracks coroutine origins (what a loop in
 * asyncio's debug mode sets while it runs, when tasks and handles record where they were made):
 * then the frames such tools and debug mode's tracebacks see are the program's own, _run's among
 * them, and speed does not matter. Otherwise the stack a callback sees has no frame for _run
 * (collector/README.md, "Limits worth knowing"). */
LS_HOT static PyObject *call_orig_run(PyObject *handle, PyThreadState *ts) {
  if (!hook.off_context || ts->c_tracefunc || ts->c_profilefunc || ts->coroutine_origin_tracking_depth)
    return PyObject_CallOneArg(hook.orig_run, handle);
  PyObject *ctx = *(PyObject **)((char *)handle + hook.off_context);
  PyObject *cb = *(PyObject **)((char *)handle + hook.off_callback);
  PyObject *args = *(PyObject **)((char *)handle + hook.off_args);
  if (!ctx || !cb || !args || !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) > 14)
    return PyObject_CallOneArg(hook.orig_run, handle);
  PyObject *stack[16];
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  stack[0] = Py_NewRef(ctx);
  stack[1] = Py_NewRef(cb);
  for (Py_ssize_t i = 0; i < n; i++) stack[2 + i] = Py_NewRef(PyTuple_GET_ITEM(args, i));
  PyObject *r;
  if (PyContext_CheckExact(ctx)) {
    /* what Context.run does (Python/context.c, 3.7 through 3.15: enter, vectorcall, exit), through
     * its public C API: no method lookup and bound call per handle, and none of the interpreter's
     * code for calling methods from C, which the program itself never runs here (measured on
     * 3.14: ~150 instructions and several instruction-cache misses per handle). Entering a
     * context already entered raises the same RuntimeError as run() does. (Calling Context.run's
     * own C function, found through its method descriptor, ran 625k fewer simulated
     * instruction-cache misses on 3.14's async tree and was no faster timed: not kept.) */
    if (PyContext_Enter(ctx)) r = NULL;
    else {
      r = PyObject_Vectorcall(cb, stack + 2, (size_t)n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL); /* stack[1] is ours */
      if (PyContext_Exit(ctx)) Py_CLEAR(r);
    }
  } else {
    r = run_in_other_context(stack, (size_t)(2 + n));
  }
  for (Py_ssize_t i = 0; i < 2 + n; i++) Py_DECREF(stack[i]);
  if (!r) return run_raised(handle);
  Py_DECREF(r);
  Py_RETURN_NONE;
}

LS_HOT static PyObject *run_handle(void *handle) { return call_orig_run((PyObject *)handle, PyThreadState_Get()); }

/* The end of an untimed step in which a session adopted the stepped task (session.c started the
 * heartbeat then, seq): the step from the adoption, its await point or end, and a block in it,
 * as time_step records them. A session closed inside the step reported its part already. */
LS_COLD static void untimed_step_end(PyObject *cb, uint_fast64_t seq) {
  uint64_t t1 = now_ns(), t0 = atomic_load(&G.hb_start);
  atomic_store_explicit(&G.hb_busy, 0, memory_order_release);
  G.untimed_seq = 0;
  G.cur = NULL;
  G.cur_t0 = 0;
  PyObject *et, *ev, *etb;
  PyErr_Fetch(&et, &ev, &etb);
  PyObject *task = cb ? task_of_callback(cb) : NULL;
  task_entry *e = task && G.tab_len ? tab_find(task) : NULL;
  if (e && session_live(e->sess)) {
    session_obj *s = (session_obj *)Py_NewRef((PyObject *)e->sess);
    uint64_t id = e->id;
    step_end(e, t0, t1); /* may free e */
    if (t1 - t0 >= G.block_ns)
      emit_block(s, id, t0, t1, G.block_seq == seq ? G.block_stack : NULL, G.block_stack_ns);
    Py_DECREF(s);
  }
  Py_CLEAR(G.block_stack);
  Py_CLEAR(G.block_request);
  if (PyErr_Occurred()) PyErr_Clear();
  PyErr_Restore(et, ev, etb);
}

LS_COLD PyObject *untimed_step(PyObject *cb, PyObject *(*run)(void *), void *arg) {
  Py_XINCREF(cb);
  G.untimed_depth++;
  PyObject *r = run(arg);
  G.untimed_depth--;
  if (G.untimed_seq && !G.untimed_depth) untimed_step_end(cb, G.untimed_seq);
  Py_XDECREF(cb);
  return r;
}

LS_HOT static PyObject *handle_run(PyObject *self, PyObject *unused) {
  (void)unused;
  PyObject *cb = *(PyObject **)((char *)self + hook.off_callback);
  if (!steps_timed()) return untimed_step(cb, run_handle, self);
  /* The handle's context is first read by call_orig_run, after the callback, the task's entry
   * and the recording that follows, each waiting for the line before it; asked for now, its line
   * comes in meanwhile (3.14's async tree: Py_INCREF(ctx) held half of call_orig_run's samples). */
  if (hook.off_context) LS_PREFETCH(*(PyObject **)((char *)self + hook.off_context));
  return time_step(cb, run_handle, self, self);
}

static PyMethodDef handle_run_def = {"_run", handle_run, METH_NOARGS,
                                     "Handle._run timed by loopscope (calls the original)"};

PyObject *mod_patch_handle(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *handle_type, *task_types, *samples;
  if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &handle_type, &PyTuple_Type, &task_types, &PyList_Type,
                        &samples))
    return NULL;
  if (hook.orig_run) Py_RETURN_NONE;
  /* samples: (callback, task) pairs seen on a throwaway loop; a callback type that is neither a
   * builtin method nor a bound method is used by reading its first field, once checked here. */
  PyObject *wrappers = PyList_New(0);
  if (!wrappers) return NULL;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(samples); i++) {
    PyObject *pair = PyList_GET_ITEM(samples, i), *cb, *task;
    if (!PyArg_ParseTuple(pair, "OO", &cb, &task)) { Py_DECREF(wrappers); return NULL; }
    if (PyCFunction_Check(cb) || PyMethod_Check(cb)) continue;
    if ((size_t)Py_TYPE(cb)->tp_basicsize < sizeof(PyObject) + sizeof(PyObject *)) continue;
    if (*(PyObject **)((char *)cb + sizeof(PyObject)) != task) continue;
    if (PySequence_Contains(wrappers, (PyObject *)Py_TYPE(cb)) == 0 && PyList_Append(wrappers, (PyObject *)Py_TYPE(cb))) {
      Py_DECREF(wrappers);
      return NULL;
    }
  }
  Py_XSETREF(hook_types.wrapper_types, PyList_AsTuple(wrappers));
  Py_DECREF(wrappers);
  if (!hook_types.wrapper_types) return NULL;
  PyObject *member = PyObject_GetAttrString(handle_type, "_callback");
  if (!member) return NULL;
  if (Py_TYPE(member) != &PyMemberDescr_Type) {
    Py_DECREF(member);
    PyErr_SetString(PyExc_TypeError, "Handle._callback is not a slot");
    return NULL;
  }
  hook.off_callback = ((PyMemberDescrObject *)member)->d_member->offset;
  Py_DECREF(member);
  /* the slots the C _run reads; without them the original runs */
  hook.off_args = hook.off_context = 0;
  PyObject *m_args = PyObject_GetAttrString(handle_type, "_args");
  PyObject *m_ctx = m_args ? PyObject_GetAttrString(handle_type, "_context") : NULL;
  if (m_args && m_ctx && Py_TYPE(m_args) == &PyMemberDescr_Type && Py_TYPE(m_ctx) == &PyMemberDescr_Type) {
    hook.off_args = ((PyMemberDescrObject *)m_args)->d_member->offset;
    hook.off_context = ((PyMemberDescrObject *)m_ctx)->d_member->offset;
  }
  Py_XDECREF(m_args);
  Py_XDECREF(m_ctx);
  PyErr_Clear();
  PyObject *orig = PyObject_GetAttrString(handle_type, "_run");
  if (!orig) return NULL;
  PyObject *descr = PyDescr_NewMethod((PyTypeObject *)handle_type, &handle_run_def);
  if (!descr) { Py_DECREF(orig); return NULL; }
  if (PyObject_SetAttrString(handle_type, "_run", descr)) { Py_DECREF(descr); Py_DECREF(orig); return NULL; }
  hook.descr = descr; /* kept: unpatch_handle puts the original back only over this */
  hook.orig_run = orig;
  hook.handle_type = Py_NewRef(handle_type);
  PyObject *events = PyImport_ImportModule("asyncio.events");
  PyObject *timer = events ? PyObject_GetAttrString(events, "TimerHandle") : NULL;
  Py_XDECREF(events);
  PyErr_Clear();
  lag_learn(handle_type, timer);
  Py_XDECREF(timer);
  Py_XSETREF(hook_types.task_types, Py_NewRef(task_types));
  Py_RETURN_NONE;
}

/* Puts the original Handle._run back, if ours is still there. A library may have patched _run over
 * ours after install (aiodebug does), its wrapper calling ours: then theirs stays, and so does all
 * ours needs (handle_run with no session open is the original's work plus a length check), so the
 * program runs through both as before; a later install finds itself patched already. Answers
 * whether the original went back. */
PyObject *mod_unpatch_handle(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  if (!hook.orig_run) Py_RETURN_FALSE;
  PyObject *now = PyObject_GetAttrString(hook.handle_type, "_run"); /* a method descriptor: itself */
  if (!now) return NULL;
  int ours = now == hook.descr;
  Py_DECREF(now);
  if (!ours) Py_RETURN_FALSE;
  if (PyObject_SetAttrString(hook.handle_type, "_run", hook.orig_run)) return NULL;
  Py_CLEAR(hook.orig_run);
  Py_CLEAR(hook.handle_type);
  Py_CLEAR(hook.descr);
  Py_RETURN_TRUE;
}
