/* uvloop.c — steps on loops without asyncio's Handle (uvloop): SoonHook stands in for the loop's
 * call_soon and wraps every task's step in a StepCall, which time_step()s it (step.h) when
 * the loop runs it. Putting the hook on a loop is loopscope/_state.py's. */
#include "uvloop.h"
#include "step.h"

/* ---- steps on loops without asyncio's Handle (uvloop) ----------------------------------------
 * uvloop runs callbacks through its own handles, but CPython's Tasks and Futures schedule every
 * step and wakeup with loop.call_soon looked up on the loop object, where an instance attribute
 * comes first. A SoonHook put there (by loopscope._state) stands in for the loop's bound
 * call_soon: a step of a recorded task is scheduled as a StepCall, which time_step()s the original
 * callback when the loop runs it; every other call goes to the original untouched. Both types
 * wrap one callable (`__wrapped__`) and answer attributes they lack from it, so asyncio's and
 * uvloop's formatting of a handle (debug logs) reads the same as without loopscope. */

typedef struct {
  PyObject_HEAD
  PyObject *wrapped;   /* SoonHook: the loop's bound call_soon; StepCall: the task's callback */
  vectorcallfunc vectorcall;
} wrap_obj;

typedef struct { PyObject *cb; PyObject *const *args; size_t nargsf; PyObject *kwnames; } fwd_call;

static PyObject *run_fwd(void *arg) {
  fwd_call *f = arg;
  return PyObject_Vectorcall(f->cb, f->args, f->nargsf, f->kwnames);
}

static PyObject *stepcall_vectorcall(wrap_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  if (!self->wrapped) { PyErr_SetString(PyExc_RuntimeError, "loopscope: step callback cleared"); return NULL; }
  fwd_call f = {Py_NewRef(self->wrapped), args, nargsf, kwnames};
  PyObject *r = steps_timed() ? time_step(f.cb, run_fwd, &f, NULL) : untimed_step(f.cb, run_fwd, &f);
  Py_DECREF(f.cb);
  return r;
}

#define SOON_MAX_ARGS 8

static PyObject *soonhook_vectorcall(wrap_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  size_t nargs = PyVectorcall_NARGS(nargsf), nall = nargs + (size_t)(kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  /* Every task's step or wakeup, recorded or not, session open or not: inside our factory the
   * task being made is not registered yet (its first step is scheduled by its constructor), and a
   * task nobody records may open a session in the step (a server's request task under the
   * middleware), which the StepCall then times from the adoption (untimed_step), as asyncio's
   * Handle._run does. Other callbacks go to the loop untouched. */
  PyObject *task = nargs && nall <= SOON_MAX_ARGS ? task_of_callback(args[0]) : NULL;
  if (!task)
    return PyObject_Vectorcall(self->wrapped, args, nargsf, kwnames);
  wrap_obj *step = PyObject_GC_New(wrap_obj, &StepCall_Type);
  if (!step) return NULL;
  step->wrapped = Py_NewRef(args[0]);
  step->vectorcall = (vectorcallfunc)stepcall_vectorcall;
  PyObject_GC_Track(step);
  PyObject *stack[1 + SOON_MAX_ARGS]; /* stack[0] is free for the bound method's self */
  stack[1] = (PyObject *)step;
  for (size_t i = 1; i < nall; i++) stack[1 + i] = args[i];
  PyObject *r = PyObject_Vectorcall(self->wrapped, stack + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
  Py_DECREF(step);
  return r;
}

static PyObject *soonhook_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *orig;
  if (kw && PyDict_GET_SIZE(kw)) { PyErr_SetString(PyExc_TypeError, "SoonHook(call_soon) takes no keywords"); return NULL; }
  if (!PyArg_ParseTuple(args, "O:SoonHook", &orig)) return NULL;
  if (!PyCallable_Check(orig)) { PyErr_SetString(PyExc_TypeError, "SoonHook needs the loop's call_soon"); return NULL; }
  wrap_obj *self = PyObject_GC_New(wrap_obj, type);
  if (!self) return NULL;
  self->wrapped = Py_NewRef(orig);
  self->vectorcall = (vectorcallfunc)soonhook_vectorcall;
  PyObject_GC_Track(self);
  return (PyObject *)self;
}

static int wrap_traverse(wrap_obj *self, visitproc visit, void *arg) {
  Py_VISIT(self->wrapped);
  return 0;
}

static int wrap_clear(wrap_obj *self) {
  Py_CLEAR(self->wrapped);
  return 0;
}

static void wrap_dealloc(wrap_obj *self) {
  PyObject_GC_UnTrack(self);
  Py_CLEAR(self->wrapped);
  PyObject_GC_Del(self);
}

static PyObject *wrap_repr(wrap_obj *self) {
  return self->wrapped ? PyObject_Repr(self->wrapped) : PyUnicode_FromString("<loopscope wrapper (cleared)>");
}

/* the wrapper's own attributes first, then the wrapped callable's (__self__, __qualname__, ...) */
static PyObject *wrap_getattro(wrap_obj *self, PyObject *name) {
  PyObject *r = PyObject_GenericGetAttr((PyObject *)self, name);
  if (r || !self->wrapped || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
  PyErr_Clear();
  return PyObject_GetAttr(self->wrapped, name);
}

static PyMemberDef wrap_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(wrap_obj, wrapped), READONLY, "the wrapped callable"},
    {NULL, 0, 0, 0, NULL}};

#define WRAP_TYPE(NAME, DOC, NEW)                                                             \
  {                                                                                           \
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core." NAME,                         \
    .tp_basicsize = sizeof(wrap_obj),                                                         \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,         \
    .tp_doc = DOC, .tp_new = NEW, .tp_dealloc = (destructor)wrap_dealloc,                     \
    .tp_traverse = (traverseproc)wrap_traverse, .tp_clear = (inquiry)wrap_clear,              \
    .tp_call = PyVectorcall_Call, .tp_vectorcall_offset = offsetof(wrap_obj, vectorcall),     \
    .tp_repr = (reprfunc)wrap_repr, .tp_getattro = (getattrofunc)wrap_getattro,               \
    .tp_members = wrap_members,                                                               \
  }

PyTypeObject SoonHook_Type = WRAP_TYPE("SoonHook", "SoonHook(loop.call_soon): set as the loop's call_soon, "
                                              "times the steps of recorded tasks", soonhook_new);
PyTypeObject StepCall_Type = WRAP_TYPE("StepCall", "a recorded task's step, timed when the loop runs it", NULL);

/* True when loop's call_soon is a SoonHook: its tasks' steps (and so their ends) are seen. */
int steps_hooked(PyObject *loop) {
  PyObject *cs = PyObject_GetAttr(loop, G.s_call_soon);
  if (!cs) { PyErr_Clear(); return 0; }
  int r = Py_TYPE(cs) == &SoonHook_Type;
  Py_DECREF(cs);
  return r;
}
