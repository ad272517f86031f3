/* record.c — the events about tasks: announcement (name, coroutine), steps, the await point a step
 * ends on, the end (state, exception text) and blocks of the loop, handed to the task's session.
 * Seeing when steps run is step.h's; reading what a coroutine waits on is code.c's. */
#include "record.h"
#include "session.h"
#include "summary.h"

/* The task's name without asking get_name() where possible: on 3.12+ a default name is kept as
 * an int and formatted on the first get_name(), which would cost more than the rest of a task's
 * recording. The field's offset was found and checked at setup. Returns a new ref or NULL, and
 * fills *out; a default name "Task-<n>" is out->p NULL and *num n (the record stores the number:
 * nothing formatted here, nothing parsed back there). */
static PyObject *task_name(PyObject *task, ls_str *out, uint64_t *num) {
  if (G.task_name_off && PyObject_TypeCheck(task, G.c_task_type)) {
    PyObject *n = *(PyObject **)((char *)task + G.task_name_off);
    if (n && PyUnicode_CheckExact(n)) { *out = str_of(n); return Py_NewRef(n); }
    if (n && PyLong_CheckExact(n)) {
#if PY_VERSION_HEX >= 0x030C0000
      /* a default name's number fits a compact int until the 2**30th task: read in line, where
       * PyLong_AsLongLong was a call into the interpreter's code on every task (3.14's async
       * tree: 205k instructions and 28k instruction-cache misses a run) */
      long long v = PyUnstable_Long_IsCompact((PyLongObject *)n)
                        ? (long long)PyUnstable_Long_CompactValue((PyLongObject *)n)
                        : PyLong_AsLongLong(n);
#else
      long long v = PyLong_AsLongLong(n);
#endif
      if (v >= 0) { *out = (ls_str){NULL, 0, 0}; *num = (uint64_t)v; return NULL; }
      PyErr_Clear(); /* too large, or negative (never a counter's): get_name() formats it */
    }
  }
  PyObject *name = PyObject_CallMethodNoArgs(task, G.s_get_name);
  if (!name) PyErr_Clear();
  *out = str_of(name);
  if (!out->p) *out = (ls_str){"", 0, 0}; /* no name: empty, not the default form (p NULL) */
  return name;
}

void announce_emit(task_entry *e) {
  e->announced = 1;
  session_obj *s = e->sess;
  ls_str name, coro = {NULL, 0, 0};
  uint64_t num = 0;
  PyObject *ref = task_name(e->task, &name, &num);
  if (e->coro_info) {
    code_sids(e->coro_info);
    coro = (ls_str){e->coro_info->full, (size_t)e->coro_info->nfull, e->coro_info->sid_full};
  }
  if (session_live(s)) ls_emit_task(s->ls, e->id, e->parent, e->created, name, num, coro);
  Py_XDECREF(ref);
}

/* The names an await says it awaits most often, by number (WHAT_LIT + k): their string numbers
 * are looked up once per collector (lit_gen), as a code_info's are. */
static const struct { const char *p; uint16_t n; } what_lit[] = {{"yield", 5}, {"coroutine", 9}, {"gather", 6}};
enum { LIT_YIELD, LIT_COROUTINE, LIT_GATHER, LIT_COUNT };
static uint32_t lit_sid[LIT_COUNT], lit_gen;

static LS_COLD void lit_sids_fill(void) {
  for (int k = 0; k < LIT_COUNT; k++) lit_sid[k] = ls_collector_string(G.core, what_lit[k].p, what_lit[k].n);
  lit_gen = G.core_gen;
}

/* What e's await awaits, with its string number when known; kind: how it names it (WHAT_*). */
static LS_ALWAYS_INLINE ls_str what_of(const task_entry *e, int kind) {
  if (kind == WHAT_CODE) {
    code_info *ci = e->what_ci;
    code_sids(ci);
    return (ls_str){ci->qual, (size_t)ci->nqual, ci->sid_qual};
  }
  if (kind >= WHAT_LIT) {
    if (lit_gen != G.core_gen) lit_sids_fill();
    return (ls_str){e->what_p, e->nwhat, lit_sid[kind - WHAT_LIT]};
  }
  return (ls_str){e->what_p, e->nwhat, 0};
}

/* Emits the await in progress as ending at t. */
void await_end(task_entry *e, uint64_t t) {
  int kind = e->awaiting;
  if (!kind) return;
  e->awaiting = 0;
  session_obj *s = e->sess;
  if (!session_live(s)) return;
  uint64_t end = rel(s, t);
  uint64_t d = end > e->await_t ? end - e->await_t : 0;
  ls_str what = what_of(e, kind), file = {NULL, 0, 0}, func = {NULL, 0, 0};
  code_info *at = e->await_at;
  if (at) {
    code_sids(at);
    file = (ls_str){at->file, (size_t)at->nfile, at->sid_file};
    func = (ls_str){at->func, (size_t)at->nfunc, at->sid_func};
  }
  ls_emit_await(s->ls, e->id, e->await_t, d, e->await_line, what, file, func);
  if (s->sum) summary_await(s->sum, at ? at->code : NULL, e->await_line, what.p, what.n, d);
}

/* What e's await awaits: p lives at least as long as e (a literal, a static type's name, a cached
 * code_info's qualname: the code cache is emptied only after every entry, at stop), so the event
 * reads it in place; cut to LS_WHAT_MAX - 1 bytes, as a copy is. Not copying saves the entry's
 * line the copy would write, and the string's address stays the same from task to task, which is
 * what the intern table's pointer cache is keyed by (a copy in each entry missed it every time). */
static void set_what_stable(task_entry *e, const char *p, size_t n) {
  if (n >= LS_WHAT_MAX) n = LS_WHAT_MAX - 1;
  e->awaiting = WHAT_TEXT;
  e->what_p = p;
  e->nwhat = (uint16_t)n;
}

/* One of what_lit's names (LIT_*), named by its string number in the record. */
static void set_what_lit(task_entry *e, int k) {
  e->awaiting = (uint8_t)(WHAT_LIT + k);
  e->what_p = what_lit[k].p;
  e->nwhat = what_lit[k].n;
}

/* The qualname of ci (a cached code_info: it outlives e), named by its string number in the
 * record; cut (and looked up) as other names are when it is LS_WHAT_MAX bytes or longer. */
static void set_what_code(task_entry *e, code_info *ci) {
  if (ci->nqual >= LS_WHAT_MAX) { set_what_stable(e, ci->qual, (size_t)ci->nqual); return; }
  e->awaiting = WHAT_CODE;
  e->what_ci = ci;
}

/* A name that may go before e does (a heap type's): copied into the room beside e. */
static LS_COLD void set_what_copy(task_entry *e, const char *p, size_t n) {
  if (n >= LS_WHAT_MAX) n = LS_WHAT_MAX - 1;
  char *what = entry_what(e);
  memcpy(what, p, n);
  what[n] = 0;
  set_what_stable(e, what, n);
}

/* At the end of a step that suspended: where the task waits (code.c's await_point) and on what. */
static void await_capture(task_entry *e, uint64_t t) {
  int line;
  PyObject *user_next;
  code_info *user_ci = await_point(e->coro, &line, &user_next);
  e->await_t = rel(e->sess, t);
  e->await_at = user_ci;
  e->await_line = line;
  if (!user_next || user_next == Py_None) {
    set_what_lit(e, LIT_YIELD);
  } else if (PyCoro_CheckExact(user_next) || PyGen_CheckExact(user_next)) {
    code_info *ci = info_of(user_next);
    if (ci) set_what_code(e, ci);
    else set_what_lit(e, LIT_COROUTINE);
  } else {
    PyObject *awaited = user_next;
    if (Py_TYPE(awaited) == G.future_iter_type && *(PyObject **)((char *)awaited + sizeof(PyObject)))
      awaited = *(PyObject **)((char *)awaited + sizeof(PyObject)); /* FutureIter: first field is the future */
    PyTypeObject *tp = Py_TYPE(awaited);
    const char *tn = tp->tp_name;
    const char *dot = strrchr(tn, '.');
    if (dot) tn = dot + 1;
    if (strcmp(tn, "_GatheringFuture") == 0) set_what_lit(e, LIT_GATHER);
    else if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) set_what_stable(e, tn, strlen(tn)); /* static: lives on */
    else set_what_copy(e, tn, strlen(tn));
  }
  Py_XDECREF(user_next);
}

/* An exception as "Type: message" (a new str), NULL for None or when it cannot be formatted. */
static PyObject *exc_format(PyObject *exc) {
  PyObject *r = NULL;
  if (exc && exc != Py_None) {
    PyObject *msg = PyObject_Str(exc);
    if (!msg) PyErr_Clear();
    const char *tn = Py_TYPE(exc)->tp_name;
    const char *dot = strrchr(tn, '.');
    if (dot) tn = dot + 1;
    if (msg && PyUnicode_GET_LENGTH(msg)) r = PyUnicode_FromFormat("%s: %U", tn, msg);
    else r = PyUnicode_FromString(tn);
    if (!r) PyErr_Clear();
    Py_XDECREF(msg);
  }
  return r;
}

/* The getters behind the task class's _state and _exception (getset descriptors of the C Task:
 * its type is immutable, so for a task of exactly that type they are what the attribute lookup
 * would call), learnt and checked against a sample task at setup; NULL otherwise. Calling them
 * skips the lookup (the type's MRO, the descriptor call) at every task's end: measured on 3.14's
 * async tree, ~1.5% of its time went to the two lookups. */
static struct {
  PyTypeObject *type; /* borrowed: module.c holds the task class (G.task_cls) */
  getter state, exception;
  void *state_closure, *exception_closure;
  getter source_tb;   /* _source_traceback's (the factory reads it for every task it makes), or NULL */
  void *source_tb_closure;
} tget;

/* The C function of cls's getset attribute name, or NULL. */
static getter getset_of(PyObject *cls, PyObject *name, void **closure) {
  PyObject *d = PyObject_GetAttr(cls, name);
  getter g = NULL;
  if (d && Py_TYPE(d) == &PyGetSetDescr_Type && ((PyGetSetDescrObject *)d)->d_getset->get) {
    g = ((PyGetSetDescrObject *)d)->d_getset->get;
    *closure = ((PyGetSetDescrObject *)d)->d_getset->closure;
  }
  Py_XDECREF(d);
  PyErr_Clear();
  return g;
}

/* Whether getter g of sample gives what its attribute name does (the same object or equal). */
static int getter_agrees(PyObject *sample, PyObject *name, getter g, void *closure) {
  PyObject *a = PyObject_GetAttr(sample, name), *b = g(sample, closure);
  int ok = a && b && (a == b || PyObject_RichCompareBool(a, b, Py_EQ) == 1);
  Py_XDECREF(a);
  Py_XDECREF(b);
  PyErr_Clear();
  return ok;
}

void record_learn(PyObject *task_cls, PyObject *sample) {
  memset(&tget, 0, sizeof tget);
  if (!PyType_Check(task_cls) || !(((PyTypeObject *)task_cls)->tp_flags & Py_TPFLAGS_IMMUTABLETYPE) ||
      Py_TYPE(sample) != (PyTypeObject *)task_cls)
    return;
  void *sc = NULL, *ec = NULL;
  getter st = getset_of(task_cls, G.s_state, &sc), ex = getset_of(task_cls, G.s_exception, &ec);
  if (!st || !ex || !getter_agrees(sample, G.s_state, st, sc) || !getter_agrees(sample, G.s_exception, ex, ec))
    return;
  tget.type = (PyTypeObject *)task_cls;
  tget.state = st;
  tget.exception = ex;
  tget.state_closure = sc;
  tget.exception_closure = ec;
  void *tc = NULL;
  getter tb = getset_of(task_cls, G.s_source_traceback, &tc);
  if (tb && getter_agrees(sample, G.s_source_traceback, tb, tc)) {
    tget.source_tb = tb;
    tget.source_tb_closure = tc;
  }
}

int record_direct_getters(void) { return tget.type != NULL; }

/* task._state / task._exception: new reference, or NULL with an exception set. */
static PyObject *task_attr(PyObject *task, int exception) {
  if (Py_TYPE(task) == tget.type)
    return exception ? tget.exception(task, tget.exception_closure) : tget.state(task, tget.state_closure);
  return PyObject_GetAttr(task, exception ? G.s_exception : G.s_state);
}

PyObject *task_source_traceback(PyObject *task) {
  if (Py_TYPE(task) == tget.type && tget.source_tb) return tget.source_tb(task, tget.source_tb_closure);
  return PyObject_GetAttr(task, G.s_source_traceback);
}

/* The exception of a finished task as "Type: message", without marking it retrieved. */
static PyObject *exc_text(PyObject *task) {
  PyObject *exc = task_attr(task, 1);
  if (!exc) { PyErr_Clear(); return NULL; }
  PyObject *r = exc_format(exc);
  Py_DECREF(exc);
  return r;
}

/* 0 pending, 1 finished ok or with an exception, 2 cancelled. */
int task_state(PyObject *task) {
  PyObject *st = task_attr(task, 0);
  if (!st) { PyErr_Clear(); return 0; }
  int r = 0;
  if (PyUnicode_Check(st) && PyUnicode_GET_LENGTH(st) > 0) {
    Py_UCS4 c = PyUnicode_READ_CHAR(st, 0);
    r = c == 'F' ? 1 : c == 'C' ? 2 : 0;
  }
  Py_DECREF(st);
  return r;
}

/* The done event of e at t (state LS_S_*, text the exception as a str or NULL, the HTTP status or
 * 0), then e's entry goes. */
static void done_and_free(task_entry *e, int state, PyObject *text, int status, uint64_t t) {
  announce(e);
  await_end(e, t);
  session_obj *s = e->sess;
  if (session_live(s)) ls_emit_done(s->ls, e->id, rel(s, t), state, status, str_of(text));
  tab_del(e->task);
  entry_free(e);
}

/* e's task finished (state: 1 done, 2 cancelled): ok, cancelled, or error with its exception. */
void task_finish(task_entry *e, int state, uint64_t t) {
  PyObject *text = state == 2 ? NULL : exc_text(e->task); /* read before the entry lets go of it */
  done_and_free(e, state == 2 ? LS_S_CANCELLED : text ? LS_S_ERROR : LS_S_OK, text, 0, t);
  Py_XDECREF(text);
}

/* e's task ends at t as its session sees it, while the task itself may still run (a request's
 * task when the middleware closes its session): the done event with state (LS_S_*), exc (the
 * exception object, or NULL) and the HTTP status (0: none), then its entry goes. */
void task_end_as(task_entry *e, int state, PyObject *exc, int status, uint64_t t) {
  PyObject *text = state == LS_S_ERROR ? exc_format(exc) : NULL;
  done_and_free(e, state, text, status, t);
  Py_XDECREF(text);
}

/* After a step of e from t0 to t1: the step event, then done or the await point. */
void step_end(task_entry *e, uint64_t t0, uint64_t t1) {
  if (session_live(e->sess)) ls_emit_step(e->sess->ls, e->id, rel(e->sess, t0), t1 - t0);
  step_after(e, t1);
}

/* After a step of e ending at t1: done, or the await point it suspended at. */
void step_after(task_entry *e, uint64_t t1) {
  int st;
  /* A task is done after a step only when its coroutine finished: a frame state the samples at
   * setup showed to be a suspended one saves asking the task for its _state on every step. Any
   * other state (or none known) asks the task. */
  if (e->coro && (PyCoro_CheckExact(e->coro) || PyGen_CheckExact(e->coro)) && coro_state(e->coro) == CORO_SUSPENDED)
    st = 0;
  else
    st = task_state(e->task);
  if (st) task_finish(e, st, t1);
  else await_capture(e, t1);
}

/* The frames of a captured stack (list of (file, line, func, src)), innermost LS_MAX_FRAMES kept;
 * the strings are borrowed from stack, which must outlive their use. */
static int frames_of(PyObject *stack, ls_frame frames[LS_MAX_FRAMES]) {
  int n = 0;
  if (stack && PyList_Check(stack)) {
    Py_ssize_t len = PyList_GET_SIZE(stack), from = len > LS_MAX_FRAMES ? len - LS_MAX_FRAMES : 0;
    for (Py_ssize_t i = from; i < len; i++) {
      PyObject *f = PyList_GET_ITEM(stack, i);
      if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 4) continue;
      frames[n].file = str_of(PyTuple_GET_ITEM(f, 0));
      frames[n].line = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(f, 1));
      if (PyErr_Occurred()) { PyErr_Clear(); frames[n].line = 0; }
      frames[n].func = str_of(PyTuple_GET_ITEM(f, 2));
      frames[n].src = str_of(PyTuple_GET_ITEM(f, 3));
      n++;
    }
  }
  return n;
}

/* One block event into s: ev carries the frames and, for a block from elsewhere, its cause. */
static void block_into(session_obj *s, ls_event *ev, uint64_t t0, PyObject *stack) {
  ev->t = rel(s, t0);
  emit(s, ev);
  if (s->sum && session_live(s)) summary_block(s->sum, ev->id, ev->t, ev->d, stack, ev->elsewhere);
}

/* When the stack was taken, after the block began: a late one (the watchdog thread got the CPU
 * long after it asked) may name code that ran after the blocking call in the same step. */
static void stack_time(ls_event *ev, PyObject *stack, uint64_t stack_ns, uint64_t t0) {
  if (!stack || stack_ns < t0) return;
  ev->has_stack_t = 1;
  ev->stack_t = stack_ns - t0 < ev->d ? stack_ns - t0 : ev->d;
}

void emit_block(session_obj *s, uint64_t id, uint64_t t0, uint64_t t1, PyObject *stack, uint64_t stack_ns) {
  ls_frame frames[LS_MAX_FRAMES];
  ls_event ev = {0};
  ev.kind = LS_K_BLOCK;
  ev.id = id;
  ev.d = t1 - t0;
  ev.frames = frames;
  ev.nframes = frames_of(stack, frames);
  stack_time(&ev, stack, stack_ns, t0);
  block_into(s, &ev, t0, stack);
}

/* The session whose context a handle runs its callback in (a task's step runs in the task's
 * context, a call_soon callback in its caller's), new reference or NULL. Only asked for a block,
 * so the attribute lookup costs nothing on the hot path. */
static session_obj *session_of_handle(PyObject *handle) {
  if (!handle) return NULL;
  PyObject *ctx = PyObject_GetAttrString(handle, "_context");
  PyObject *v = NULL;
  if (ctx && PyContext_CheckExact(ctx)) v = PyObject_GetItem(ctx, G.session_var);
  Py_XDECREF(ctx);
  if (PyErr_Occurred()) PyErr_Clear();
  if (v && !is_session(v)) Py_CLEAR(v);
  return (session_obj *)v;
}

/* The name of the session an orphan block gets (orphan_block): after the request it blocked in when
 * the watchdog found that request's middleware on the stack, "GET /slow" + ORPHAN_IN_REQUEST. */
#define ORPHAN_NAME "loop blocked outside a recorded request"
#define ORPHAN_IN_REQUEST ": loop blocked (request not recorded)"

/* A block of the loop no session took as its own (a request LoopscopeMiddleware did not draw, code
 * outside any session), while G.keep_orphan_blocks: a session of its own holds it, from t0 to now,
 * so that recording a share of requests does not hide which line blocked the loop. Blocks last
 * G.block_ns at least (100 ms by default), so this costs nothing a program would notice. What
 * fails leaves the block as it was before (unrecorded), with no exception set. */
static void orphan_block(ls_event *ev, uint64_t t0, PyObject *stack, PyObject *request) {
  PyObject *id = mod_new_session_id(NULL, NULL);
  session_obj *s = id ? (session_obj *)PyObject_CallOneArg((PyObject *)&Session_Type, id) : NULL;
  Py_XDECREF(id);
  ls_str name = {ORPHAN_NAME, sizeof ORPHAN_NAME - 1, 0};
  PyObject *named = request ? PyUnicode_FromFormat("%U" ORPHAN_IN_REQUEST, request) : NULL;
  Py_ssize_t k;
  const char *p = named ? PyUnicode_AsUTF8AndSize(named, &k) : NULL;
  if (p) name = (ls_str){p, (size_t)k, 0};
  if (PyErr_Occurred()) PyErr_Clear(); /* then the plain name */
  uint64_t now = now_ns();
  if (s && session_begin(s, name, 1, 0, 0, now > t0 ? now - t0 : 0, 0) == 0) {
    ev->id = 0;
    ev->elsewhere = 0;
    ev->from_task = 0;
    ev->from_session = (ls_str){NULL, 0, 0};
    block_into(s, ev, t0, stack);
    PyObject *r = session_close(s, NULL);
    Py_XDECREF(r);
  }
  Py_XDECREF(s);
  Py_XDECREF(named);
  if (PyErr_Occurred()) PyErr_Clear();
}

PyObject *mod_watch_request_code(PyObject *mod, PyObject *code) {
  (void)mod;
  if (!PyCode_Check(code)) {
    PyErr_Format(PyExc_TypeError, "watch_request_code: expected a code object, not %.100s", Py_TYPE(code)->tp_name);
    return NULL;
  }
  Py_XSETREF(G.mw_code, Py_NewRef(code));
  Py_RETURN_NONE;
}

PyObject *mod_keep_orphan_blocks(PyObject *mod, PyObject *on) {
  (void)mod;
  int v = PyObject_IsTrue(on);
  if (v < 0) return NULL;
  G.keep_orphan_blocks = v;
  Py_RETURN_NONE;
}

static void emit_block_everywhere(session_obj *bs, uint64_t bid, uint64_t t0, uint64_t t1, PyObject *stack,
                                  PyObject *request, uint64_t stack_ns, PyObject *handle) {
  ls_frame frames[LS_MAX_FRAMES];
  ls_event ev = {0};
  ev.kind = LS_K_BLOCK;
  ev.d = t1 - t0;
  ev.frames = frames;
  ev.nframes = frames_of(stack, frames); /* once: every session's event copies the same frames */
  stack_time(&ev, stack, stack_ns, t0);
  session_obj *cause = bs ? (session_obj *)Py_NewRef((PyObject *)bs) : session_of_handle(handle);
  if (bs) { ev.id = bid; block_into(bs, &ev, t0, stack); } /* session_close reported it if that came first */
  ev.id = 0;
  ev.elsewhere = 1;
  ev.from_task = bs ? bid : 0;
  ev.from_session = cause ? session_id_utf8(cause) : (ls_str){NULL, 0, 0};
  if (!ev.from_session.p) PyErr_Clear(); /* an open session's id is ASCII (the store checked it) */
  /* a loop's stall reaches every session open on that loop (G.active_head; sessions of another loop,
   * when both loops are known, are not delayed by it); s's own callback's block is its own */
  for (session_obj *s = G.active_head; s; s = s->anext) {
    if (s == bs || t0 < s->start) continue;
    if (cause && cause->loop && s->loop && cause->loop != s->loop) continue;
    if (s == cause) {
      ev.elsewhere = 0;
      block_into(s, &ev, t0, stack);
      ev.elsewhere = 1;
    } else {
      block_into(s, &ev, t0, stack);
    }
  }
  /* no session took it as its own (a closed one left in the context does not count) */
  if (!bs && (!cause || !session_live(cause)) && G.keep_orphan_blocks && G.started)
    orphan_block(&ev, t0, stack, request);
  Py_XDECREF(cause);
}

void block_after_step(session_obj *bs, uint64_t bid, uint64_t t0, uint64_t t1, uint64_t seq, PyObject *handle) {
  PyObject *stack = NULL, *request = NULL;
  if (G.block_seq == seq) { /* the watchdog's stack is this step's: taken over with its request */
    stack = G.block_stack;
    request = G.block_request;
    G.block_stack = G.block_request = NULL;
  }
  Py_CLEAR(G.block_stack);
  Py_CLEAR(G.block_request);
  emit_block_everywhere(bs, bid, t0, t1, stack, request, G.block_stack_ns, handle);
  Py_XDECREF(stack);
  Py_XDECREF(request);
}
