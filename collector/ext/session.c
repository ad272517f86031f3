/* session.c — the Session type (a recording's lifetime: open, enter a loop, release a task,
 * close), session ids, and adopting a loop's running task as a session's root. Which task belongs
 * to which session is factory.c's; the events are record.c's; the Python API is loopscope/session.py. */
#include "session.h"
#include "lag.h"
#include "record.h"
#include "summary.h"
#include "tasks.h"

/* The session id prefix: "s-<16 hex>-", random per process (reset in a forked child), and the
 * counter after it. */
static char id_prefix[ID_PREFIX_MAX];
static uint64_t id_counter;

static int session_init(session_obj *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"id", NULL};
  PyObject *id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U", kwlist, &id)) return -1;
  Py_XSETREF(self->id, Py_NewRef(id));
  self->idn = 0; /* the id is the str's */
  self->max_tasks = G.max_tasks;
  return 0;
}

void session_fields_free(session_obj *self) {
  Py_CLEAR(self->id);
  Py_CLEAR(self->route);
  if (self->sum) summary_free(self->sum);
  self->sum = NULL;
}

static void session_dealloc(session_obj *self) {
  session_fields_free(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Writes a new session id into buf (NUL-terminated) and returns its length: the process's random
 * prefix and a counter, so no system call per request. */
size_t new_session_id(char buf[ID_MAX]) {
  static const char hex[] = "0123456789abcdef";
  if (!id_prefix[0]) {
    unsigned char r[8];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(r, 1, sizeof r, f) : 0;
    if (f) fclose(f);
    if (got != sizeof r) { /* no /dev/urandom: time and pid still make a collision unlikely */
      uint64_t x = now_ns() ^ ((uint64_t)getpid() << 32);
      for (int i = 0; i < 8; i++) r[i] = (unsigned char)(x >> (8 * i));
    }
    char *p = id_prefix;
    *p++ = 's';
    *p++ = '-';
    for (int i = 0; i < 8; i++) { *p++ = hex[r[i] >> 4]; *p++ = hex[r[i] & 15]; }
    *p++ = '-';
    *p = 0;
  }
  size_t n = strlen(id_prefix);
  memcpy(buf, id_prefix, n);
  char tmp[16];
  int k = 0;
  uint64_t v = ++id_counter;
  do { tmp[k++] = hex[v & 15]; v >>= 4; } while (v);
  while (k) buf[n++] = tmp[--k];
  buf[n] = 0;
  return n;
}

PyObject *session_id_str(session_obj *s) {
  if (!s->id && s->idn && !(s->id = PyUnicode_FromStringAndSize(s->idc, s->idn))) return NULL;
  return Py_NewRef(s->id ? s->id : Py_None);
}

static PyObject *session_get_id(session_obj *self, void *closure) {
  (void)closure;
  return session_id_str(self);
}

/* new_session_id() -> str: the id of a new session (loopscope.Session uses it too). */
PyObject *mod_new_session_id(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  char buf[ID_MAX];
  size_t n = new_session_id(buf);
  return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

void session_ids_after_fork(void) { id_prefix[0] = 0; }

/* Opens self as a session named n (UTF-8) with a task cap, on the loop numbered loop (0: not
 * known yet; session_enter_loop tells the store then). The store keeps the meta's fields and the
 * sender writes the meta (ls_session_begin): no JSON here, once per request. 0, or -1 with an
 * exception set. */
int session_begin(session_obj *self, ls_str n, uint64_t max_tasks, int with_summary, uint64_t loop,
                  uint64_t back_ns, uint32_t fraction_ppm) {
  if (!G.started) { PyErr_SetString(PyExc_RuntimeError, "loopscope is not installed"); return -1; }
  if (self->ls) { PyErr_SetString(PyExc_RuntimeError, "session already open"); return -1; }
  const char *id = session_id_utf8(self).p;
  if (!id) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "loopscope: a session needs an id");
    return -1;
  }
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  self->wall = (uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec - back_ns;
  Py_CLEAR(self->route);
  self->route_at_close = 0;
  self->loop = loop;
  ls_session_start st = {n.p, n.n, loop, self->wall, fraction_ppm};
  int rc = ls_session_begin(G.core, id, &st, &self->ls);
  if (rc) { PyErr_Format(PyExc_ValueError, "loopscope: cannot open session %s: %s (%d)", id, lsc_strerror(rc), rc); return -1; }
  if (self->sum) summary_free(self->sum); /* no call for the usual none */
  /* without memory for it the session records as usual and _summary() answers None */
  self->sum = with_summary || G.summary_all ? summary_new() : NULL;
  self->end = 0;
  self->start = now_ns() - back_ns;
  self->max_tasks = max_tasks;
  self->active = 1;
  self->generation = G.generation;
  active_add(self);
  return 0;
}

/* The UTF-8 of str s (NULL: {NULL, 0}); -1 with an exception set for a str that has none (a lone
 * surrogate). */
static int utf8_of(PyObject *s, ls_str *out) {
  *out = (ls_str){NULL, 0, 0};
  if (!s) return 0;
  Py_ssize_t k;
  if (!(out->p = PyUnicode_AsUTF8AndSize(s, &k))) return -1;
  out->n = (size_t)k;
  return 0;
}

/* Checks v, a session's new name or route (what): its UTF-8 in *u and 1 when the session is open
 * (the caller tells the store; *slot, when given, keeps v), 0 when it is closed (nothing to do),
 * -1 with an exception set. v is checked (a str, encodable) also once the session is closed. */
static int session_set_field(session_obj *self, PyObject **slot, PyObject *v, const char *what, ls_str *u) {
  if (!PyUnicode_Check(v)) {
    PyErr_Format(PyExc_TypeError, "loopscope: a session %s must be a str, not %.100s", what, Py_TYPE(v)->tp_name);
    return -1;
  }
  if (utf8_of(v, u)) return -1; /* a lone surrogate raises here */
  if (!session_live(self)) return 0;
  if (slot) Py_XSETREF(*slot, Py_NewRef(v));
  return 1;
}

/* Renames an open session: its next batch carries the new name (the server keeps the last one).
 * Does nothing once the session is closed. 0, or -1 with an exception set. */
int session_rename(session_obj *self, PyObject *name) {
  ls_str u;
  int rc = session_set_field(self, NULL, name, "name", &u);
  if (rc <= 0) return rc;
  if (ls_session_set_name(self->ls, u.p, u.n)) { PyErr_NoMemory(); return -1; }
  return 0;
}

/* The route goes to the store as its own field, which the sender adds to the meta: no new meta
 * is built here, at the end of every routed request. */
int session_set_route(session_obj *self, PyObject *route, int at_close) {
  ls_str u;
  int rc = session_set_field(self, &self->route, route, "route", &u);
  if (rc <= 0) return rc;
  self->route_at_close = at_close;
  if (!at_close && ls_session_set_route(self->ls, u.p, u.n)) { PyErr_NoMemory(); return -1; }
  return 0;
}

static PyObject *session_rename_m(session_obj *self, PyObject *name) {
  if (session_rename(self, name)) return NULL;
  Py_RETURN_NONE;
}

/* _open(name, max_tasks[, summary]) */
static PyObject *session_open(session_obj *self, PyObject *args) {
  PyObject *name;
  unsigned long long max_tasks;
  int with_summary = 0;
  if (!PyArg_ParseTuple(args, "UK|p", &name, &max_tasks, &with_summary)) return NULL;
  if (session_begin(self, str_of(name), max_tasks, with_summary, 0, 0, 0)) return NULL;
  Py_RETURN_NONE;
}

/* Ends the session: tasks still pending get their open await closed; the end event goes out. */
PyObject *session_close(session_obj *self, PyObject *unused) {
  (void)unused;
  return session_close_ending(self, NULL);
}

/* session_close, and root's task (when still this session's) ends with a done event at the same
 * time: tasks still pending stay without one, as running, except the request's own. */
PyObject *session_close_ending(session_obj *self, const session_root_end *root) {
  if (!self->active) Py_RETURN_NONE;
  uint64_t t = now_ns();
  if (session_live(self)) {
    /* Closed from inside a step of its own task that already blocks the loop (a handler that
     * blocked, then returned): report that block now, the session will not see the step end. */
    if (G.cur && G.cur->sess == self && atomic_load(&G.hb_busy)) {
      uint64_t start = atomic_load(&G.hb_start);
      if (t - start >= G.block_ns) {
        PyObject *stack = G.block_seq == atomic_load(&G.hb_seq) ? G.block_stack : NULL;
        emit_block(self, G.cur->id, start, t, stack, G.block_stack_ns);
      }
    }
    /* The step in progress (the request's own task ending its session) is emitted up to now:
     * handle_run will not find the entry when the step returns. */
    if (G.cur && G.cur->sess == self && G.cur_t0 && t >= G.cur_t0) {
      announce(G.cur);
      ls_event ev = {0};
      ev.kind = LS_K_STEP;
      ev.id = G.cur->id;
      ev.t = rel(self, G.cur_t0);
      ev.d = t - (G.cur_t0 > self->start ? G.cur_t0 : self->start);
      emit(self, &ev);
      /* the lag tick due during this step is reported after the session is gone: report how
       * late it is so far (a lower bound of its lateness) */
      lag_session_closing(self, t);
    }
    while (self->entries) {
      task_entry *e = self->entries;
      if (root && e->task == root->task) {
        task_end_as(e, root->state, root->exc, root->status, t); /* frees e */
        continue;
      }
      announce(e);
      await_end(e, t);
      tab_del(e->task);
      entry_free(e); /* unlinks it from self->entries */
    }
    /* a route kept for the close goes with it (its str was checked to have UTF-8 when set) */
    ls_str r = self->route_at_close && self->route ? str_of(self->route) : (ls_str){NULL, 0, 0};
    ls_session_close_routed(self->ls, rel(self, t), r.p, r.n);
    self->route_at_close = 0;
    self->end = t;
    if (self->sum && G.sum_total) summary_merge(G.sum_total, self->sum);
  }
  self->active = 0;
  self->ls = NULL;
  /* active and in G's list are the same thing, except after a fork (which empties the list and
   * clears active): the caller's reference keeps self alive past the list's */
  active_remove(self);
  if (!G.n_active) lag_reset(); /* the next session's ticks start afresh */
  Py_RETURN_NONE;
}

/* Records the running task as this session's root (the request handler's task): 1 when it is
 * recorded now, 0 when it cannot be (another session has it, the cap, no memory). */
static int adopt_task(session_obj *self, PyObject *task) {
  if (!session_live(self)) return 0;
  if (tab_find(task)) return 0; /* it belongs to another session already */
  PyObject *coro = task_get_coro(task);
  if (!coro) { PyErr_Clear(); return 0; }
  task_entry *e = register_task(self, task, coro, NULL, 0, self->start);
  Py_DECREF(coro); /* the task keeps it alive */
  if (e && G.untimed_depth && !G.untimed_seq && !atomic_load(&G.hb_busy)) {
    /* adopted inside a step the hook did not time (no session was open when it began): time the
     * rest of it from now, as time_step would (the watchdog's heartbeat, the step in progress) */
    uint_fast64_t seq = atomic_load_explicit(&G.hb_seq, memory_order_relaxed) + 1;
    atomic_store_explicit(&G.hb_seq, seq, memory_order_relaxed);
    atomic_store_explicit(&G.hb_start, self->start, memory_order_relaxed);
    atomic_store_explicit(&G.hb_busy, 1, memory_order_release);
    G.loop_tstate = PyThreadState_Get();
    G.untimed_seq = seq;
    G.cur = e;
    G.cur_t0 = self->start;
  }
  return e != NULL;
}

/* Makes the running loop record this session: the task factory and step hooks on it (the Python
 * hook_loop, once per loop), and with adopt the running task as the
 * session's root. 0, or -1 with an exception set. Used by `async with session` and the middleware. */
int session_enter_loop(session_obj *self, PyObject *loop, int adopt) {
  if (loop != G.hooked_loop) {
    PyObject *r = G.hook_loop ? PyObject_CallOneArg(G.hook_loop, loop) : Py_NewRef(Py_None);
    if (!r) return -1;
    /* hook_loop answers the loop's number; anything else (an older hook) leaves it unknown */
    unsigned long long no = PyLong_Check(r) ? PyLong_AsUnsignedLongLong(r) : 0;
    if (PyErr_Occurred()) { PyErr_Clear(); no = 0; }
    Py_DECREF(r);
    Py_XSETREF(G.hooked_loop, Py_NewRef(loop));
    G.hooked_loop_no = no;
  }
  if (session_live(self) && self->loop != G.hooked_loop_no) {
    self->loop = G.hooked_loop_no;
    ls_session_set_loop(self->ls, self->loop);
  }
  if (!adopt) return 0;
  PyObject *task = PyObject_CallOneArg(G.current_task, loop);
  if (!task) return -1;
  if (task != Py_None) adopt_task(self, task);
  Py_DECREF(task);
  return 0;
}

/* _enter_loop(adopt): session_enter_loop on the running loop (RuntimeError without one). */
static PyObject *session_enter(session_obj *self, PyObject *adopt) {
  int a = PyObject_IsTrue(adopt);
  if (a < 0) return NULL;
  if (!G.get_running_loop) { PyErr_SetString(PyExc_RuntimeError, "loopscope is not installed"); return NULL; }
  PyObject *loop = PyObject_CallNoArgs(G.get_running_loop);
  if (!loop) return NULL;
  int rc = session_enter_loop(self, loop, a);
  Py_DECREF(loop);
  if (rc) return NULL;
  Py_RETURN_NONE;
}

static PyObject *session_release(session_obj *self, PyObject *task) {
  task_entry *e = tab_find(task);
  if (e && e->sess == self) {
    announce(e);
    await_end(e, now_ns());
    tab_del(task);
    entry_free(e);
  }
  Py_RETURN_NONE;
}

PyObject *session_stats(session_obj *self, PyObject *unused) {
  (void)unused;
  return Py_BuildValue("{sKsKsKsi}", "tasks", (unsigned long long)self->ntasks, "dropped_tasks",
                       (unsigned long long)self->dropped_tasks, "start_ns", (unsigned long long)self->start,
                       "active", self->active);
}

/* _summary() -> dict or None: what the session's summary kept (summary.c), with its duration
 * (so far, while open). None when the session keeps none. */
static PyObject *session_summary(session_obj *self, PyObject *unused) {
  (void)unused;
  if (!self->sum) Py_RETURN_NONE;
  PyObject *d = summary_dict(self->sum);
  if (!d) return NULL;
  uint64_t end = self->end ? self->end : now_ns();
  PyObject *v = Py_BuildValue("{sKsKsi}", "duration_ns", (unsigned long long)rel(self, end), "dropped_tasks",
                              (unsigned long long)self->dropped_tasks, "active", self->active);
  if (!v || PyDict_Update(d, v)) { Py_XDECREF(v); Py_DECREF(d); return NULL; }
  Py_DECREF(v);
  return d;
}

static PyMethodDef session_methods[] = {
    {"_summary", (PyCFunction)session_summary, METH_NOARGS, "what the in-process summary kept, or None"},
    {"_open", (PyCFunction)session_open, METH_VARARGS, "open(meta_json, max_tasks)"},
    {"_close", (PyCFunction)session_close, METH_NOARGS, "end the session"},
    {"_enter_loop", (PyCFunction)session_enter, METH_O,
     "_enter_loop(adopt): hook the running loop, adopt the running task"},
    {"_release", (PyCFunction)session_release, METH_O, "stop recording a task adopted earlier"},
    {"_stats", (PyCFunction)session_stats, METH_NOARGS, "counters"},
    {"_rename", (PyCFunction)session_rename_m, METH_O, "_rename(name): the session's next batch carries it"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef session_getset[] = {
    {"id", (getter)session_get_id, NULL, "session id", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject Session_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.Session",
    .tp_basicsize = sizeof(session_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, /* Request (request.c) is one */
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)session_init,
    .tp_dealloc = (destructor)session_dealloc,
    .tp_methods = session_methods,
    .tp_getset = session_getset,
};
