/* _core.c — the CPython module loopscope._core: decides what is recorded about the event loop.
 * It times every task step by standing in for asyncio.events.Handle._run (on uvloop: for the loop's
 * call_soon), records tasks from a chaining task factory, captures await points at each
 * suspension, keeps the sessions, and hands every event to the C core (collector/src/), which
 * keeps, encodes and ships them. The blocking watchdog is watchdog.c's, the lag heartbeat lag.c's,
 * the middleware's per-request work request.c's. Settings, sessions' Python API and install
 * order are loopscope/'s. */
#include "core.h"

ls_module G;

#define LINE_CACHE 4096
/* (code, instruction offset) -> line, for code objects held by the code cache */
static struct line_slot { PyObject *code; int lasti, line; } line_cache[LINE_CACHE];


/* ---- code object cache ------------------------------------------------------------------- */

static int prefix_is_lib(PyObject *file) {
  if (!G.lib_prefixes) return 0;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(G.lib_prefixes); i++) {
    int r = PyUnicode_Tailmatch(file, PyTuple_GET_ITEM(G.lib_prefixes, i), 0, PY_SSIZE_T_MAX, -1);
    if (r > 0) return 1;
    if (r < 0) PyErr_Clear();
  }
  return 0;
}

static code_info *codes_find(PyObject *code);

static size_t ptr_hash(const void *p) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(x ^ (x >> 29));
}

static int codes_grow(void) {
  size_t cap = G.codes_cap ? G.codes_cap * 2 : 256;
  code_info **n = PyMem_Calloc(cap, sizeof *n);
  if (!n) return -1;
  for (size_t i = 0; i < G.codes_cap; i++) {
    code_info *ci = G.codes[i];
    if (!ci) continue;
    size_t j = ptr_hash(ci->code) & (cap - 1);
    while (n[j]) j = (j + 1) & (cap - 1);
    n[j] = ci;
  }
  PyMem_Free(G.codes);
  G.codes = n;
  G.codes_cap = cap;
  return 0;
}

/* The info for the code object of coroutine/generator obj (frame given when known), or NULL. */
static code_info *code_info_of(PyObject *code, PyObject *obj, PyObject *frame) {
  if (!code || !PyCode_Check(code)) return NULL;
  code_info *hit = codes_find(code);
  if (hit) return hit;
  if ((G.codes_len + 1) * 2 > G.codes_cap && codes_grow()) return NULL;
  code_info *ci = PyMem_Calloc(1, sizeof *ci);
  if (!ci) return NULL;
  PyCodeObject *co = (PyCodeObject *)code;
  Py_INCREF(code);
  ci->code = code;
#ifdef LS_PY310
  PyObject *q = obj ? PyObject_GetAttr(obj, G.s_qualname) : NULL;
  if (!q || !PyUnicode_Check(q)) { Py_XDECREF(q); PyErr_Clear(); q = Py_NewRef(co->co_name); }
  ci->qualname = q;
#else
  (void)obj;
  ci->qualname = Py_NewRef(co->co_qualname);
#endif
  PyObject *module = NULL;
  if (frame && PyFrame_Check(frame)) {
#ifdef LS_PY310
    PyObject *globals = ((PyFrameObject *)frame)->f_globals;
    Py_XINCREF(globals);
#else
    PyObject *globals = PyFrame_GetGlobals((PyFrameObject *)frame);
#endif
    if (globals && PyDict_Check(globals)) module = PyDict_GetItemString(globals, "__name__");
    if (module && !PyUnicode_Check(module)) module = NULL;
    Py_XINCREF(module);
    Py_XDECREF(globals);
  }
  ci->fullname = module ? PyUnicode_FromFormat("%U.%U", module, ci->qualname) : Py_NewRef(ci->qualname);
  Py_XDECREF(module);
  if (!ci->fullname) { PyErr_Clear(); ci->fullname = Py_NewRef(ci->qualname); }
  ls_str s;
  s = str_of(co->co_filename); ci->file = s.p; ci->nfile = (Py_ssize_t)s.n;
  s = str_of(co->co_name); ci->func = s.p; ci->nfunc = (Py_ssize_t)s.n;
  s = str_of(ci->qualname); ci->qual = s.p; ci->nqual = (Py_ssize_t)s.n;
  s = str_of(ci->fullname); ci->full = s.p; ci->nfull = (Py_ssize_t)s.n;
  ci->is_lib = prefix_is_lib(co->co_filename);
  if (G.asyncio_prefix) {
    int r = PyUnicode_Tailmatch(co->co_filename, G.asyncio_prefix, 0, PY_SSIZE_T_MAX, -1);
    if (r < 0) PyErr_Clear();
    ci->is_asyncio = r > 0;
  }
  size_t j = ptr_hash(code) & (G.codes_cap - 1);
  while (G.codes[j]) j = (j + 1) & (G.codes_cap - 1);
  G.codes[j] = ci;
  G.codes_len++;
  return ci;
}

static void codes_clear(void) {
  for (size_t i = 0; i < G.codes_cap; i++) {
    code_info *ci = G.codes[i];
    if (!ci) continue;
    Py_DECREF(ci->code);
    Py_DECREF(ci->qualname);
    Py_DECREF(ci->fullname);
    PyMem_Free(ci);
  }
  PyMem_Free(G.codes);
  G.codes = NULL;
  G.codes_cap = G.codes_len = 0;
  memset(line_cache, 0, sizeof line_cache); /* its code pointers were only valid while cached */
}

/* ---- task table -------------------------------------------------------------------------- */

static task_entry *tab_find(PyObject *task) {
  if (!G.tab_len) return NULL;
  size_t mask = G.tab_cap - 1, j = ptr_hash(task) & mask;
  while (G.tab[j]) {
    if (G.tab[j]->task == task) return G.tab[j];
    j = (j + 1) & mask;
  }
  return NULL;
}

static int tab_put(task_entry *e) {
  if ((G.tab_len + 1) * 2 > G.tab_cap) {
    size_t cap = G.tab_cap ? G.tab_cap * 2 : 1024;
    task_entry **n = PyMem_Calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < G.tab_cap; i++) {
      if (!G.tab[i]) continue;
      size_t j = ptr_hash(G.tab[i]->task) & (cap - 1);
      while (n[j]) j = (j + 1) & (cap - 1);
      n[j] = G.tab[i];
    }
    PyMem_Free(G.tab);
    G.tab = n;
    G.tab_cap = cap;
  }
  size_t mask = G.tab_cap - 1, j = ptr_hash(e->task) & mask;
  while (G.tab[j]) {
    if (G.tab[j]->task == e->task) { G.tab[j] = e; return 1; } /* caller frees the old one */
    j = (j + 1) & mask;
  }
  G.tab[j] = e;
  G.tab_len++;
  return 0;
}

/* Removes the entry of task (backward-shift deletion keeps probe chains intact). */
static void tab_del(PyObject *task) {
  if (!G.tab_len) return;
  size_t mask = G.tab_cap - 1, j = ptr_hash(task) & mask;
  while (G.tab[j] && G.tab[j]->task != task) j = (j + 1) & mask;
  if (!G.tab[j]) return;
  G.tab[j] = NULL;
  G.tab_len--;
  size_t k = (j + 1) & mask;
  while (G.tab[k]) {
    size_t home = ptr_hash(G.tab[k]->task) & mask;
    /* move k into the hole j when its home is not in (j, k] cyclically */
    int between = j < k ? (home > j && home <= k) : (home > j || home <= k);
    if (!between) {
      G.tab[j] = G.tab[k];
      G.tab[k] = NULL;
      j = k;
    }
    k = (k + 1) & mask;
  }
}

static void entry_free(task_entry *e) {
  if (G.cur == e) G.cur = NULL;
  if (e->sprev) e->sprev->snext = e->snext;
  else if (e->sess && e->sess->entries == e) e->sess->entries = e->snext;
  if (e->snext) e->snext->sprev = e->sprev;
  Py_XDECREF(e->sess);
  PyMem_Free(e);
}

/* ---- events about tasks ------------------------------------------------------------------ */

/* The task's name without asking get_name() where possible: on 3.12+ a default name is kept as
 * an int and formatted on the first get_name(), which would cost more than the rest of a task's
 * recording. The field's offset was found and checked at setup. Returns a new ref or NULL, and
 * fills buf/out for a default name. */
static PyObject *task_name(PyObject *task, char *buf, size_t cap, ls_str *out) {
  if (G.task_name_off && PyObject_TypeCheck(task, G.c_task_type)) {
    PyObject *n = *(PyObject **)((char *)task + G.task_name_off);
    if (n && PyUnicode_CheckExact(n)) { *out = str_of(n); return Py_NewRef(n); }
    if (n && PyLong_CheckExact(n)) {
      long long v = PyLong_AsLongLong(n);
      if (!(v == -1 && PyErr_Occurred())) {
        char digits[24];
        int nd = 0;
        unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
        do { digits[nd++] = (char)('0' + u % 10); u /= 10; } while (u);
        size_t k = 5 + (v < 0) + (size_t)nd;
        if (k < cap) {
          memcpy(buf, "Task-", 5);
          size_t at = 5;
          if (v < 0) buf[at++] = '-';
          while (nd) buf[at++] = digits[--nd];
          buf[at] = 0;
          out->p = buf; out->n = k; return NULL;
        }
      }
      PyErr_Clear();
    }
  }
  PyObject *name = PyObject_CallMethodNoArgs(task, G.s_get_name);
  if (!name) PyErr_Clear();
  *out = str_of(name);
  return name;
}

static void announce(task_entry *e) {
  if (e->announced) return;
  e->announced = 1;
  ls_event ev = {0};
  ev.kind = LS_K_TASK;
  ev.id = e->id;
  ev.parent = e->parent;
  ev.t = e->created;
  char buf[32];
  PyObject *name = task_name(e->task, buf, sizeof buf, &ev.name);
  if (e->coro_info) { ev.coro.p = e->coro_info->full; ev.coro.n = (size_t)e->coro_info->nfull; }
  emit(e->sess, &ev);
  Py_XDECREF(name);
}

/* Emits the await in progress as ending at t. */
static void await_end(task_entry *e, uint64_t t) {
  if (!e->awaiting) return;
  e->awaiting = 0;
  ls_event ev = {0};
  ev.kind = LS_K_AWAIT;
  ev.id = e->id;
  ev.t = e->await_t;
  uint64_t end = rel(e->sess, t);
  ev.d = end > e->await_t ? end - e->await_t : 0;
  ev.what.p = e->what;
  ev.what.n = e->nwhat;
  if (e->await_at) {
    ev.file.p = e->await_at->file; ev.file.n = (size_t)e->await_at->nfile;
    ev.func.p = e->await_at->func; ev.func.n = (size_t)e->await_at->nfunc;
  }
  ev.line = e->await_line;
  emit(e->sess, &ev);
}

static void set_what(task_entry *e, const char *p, size_t n) {
  if (n >= sizeof e->what) n = sizeof e->what - 1;
  memcpy(e->what, p, n);
  e->what[n] = 0;
  e->nwhat = n;
}

static code_info *codes_find(PyObject *code) {
  if (!G.codes_cap) return NULL;
  size_t j = ptr_hash(code) & (G.codes_cap - 1);
  while (G.codes[j]) {
    if (G.codes[j]->code == code) return G.codes[j];
    j = (j + 1) & (G.codes_cap - 1);
  }
  return NULL;
}

/* The code info of a coroutine or generator; its frame object is asked for only on a cache miss
 * (on 3.11+ asking creates a frame object, which is work and more for the GC to visit). */
#if PY_VERSION_HEX >= 0x030C0000
/* 3.12+: the interpreter frame lives inside the coroutine/generator object (public struct field
 * cr_iframe/gi_iframe) and PyUnstable_InterpreterFrame_* read it without making a frame object. */
static struct _PyInterpreterFrame *iframe_of(PyObject *obj) {
  return PyCoro_CheckExact(obj) ? (struct _PyInterpreterFrame *)((PyCoroObject *)obj)->cr_iframe
                                : (struct _PyInterpreterFrame *)((PyGenObject *)obj)->gi_iframe;
}
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* 3.11 has no API to read an interpreter frame without making a frame object (which also raises an
 * audit event per access). Its layout is fixed for 3.11.x (Include/internal/pycore_frame.h) and is
 * checked against the frame object of a sample coroutine in setup_done before it is used. */
typedef struct {
  PyObject *f_func, *f_globals, *f_builtins, *f_locals;
  PyCodeObject *f_code;
  PyObject *frame_obj;
  void *previous;
  _Py_CODEUNIT *prev_instr;
} iframe311;
#endif

/* The code object of a coroutine/generator, borrowed (it holds it). */
static PyObject *gen_code(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030C0000
  /* a new reference, dropped at once: the frame holds the code while the object lives */
  PyObject *code = PyUnstable_InterpreterFrame_GetCode(iframe_of(obj));
  Py_XDECREF(code);
  return code;
#else
  return (PyObject *)((PyGenObject *)obj)->gi_code;
#endif
}

/* (code, instruction index) of a suspended coroutine/generator read from its frame without a
 * frame object; 0, or -1 when it cannot be (3.10: no frame; 3.11: layout not confirmed). */
static int gen_position(PyObject *obj, PyObject **code, int *lasti) {
#if PY_VERSION_HEX >= 0x030C0000
  struct _PyInterpreterFrame *f = iframe_of(obj);
  *code = gen_code(obj);
  *lasti = PyUnstable_InterpreterFrame_GetLasti(f);
  return 0;
#elif PY_VERSION_HEX >= 0x030B0000
  if (!G.fast_frames) return -1;
  const iframe311 *f = (const iframe311 *)(void *)((PyGenObject *)obj)->gi_iframe;
  *code = (PyObject *)f->f_code;
  *lasti = (int)(f->prev_instr - _PyCode_CODE(f->f_code));
  return 0;
#else
  PyFrameObject *f = ((PyGenObject *)obj)->gi_frame;
  if (!f || f->f_trace) return -1; /* finished, or traced: f_lineno is the truth then */
  *code = (PyObject *)f->f_code;
  *lasti = f->f_lasti;
  return 0;
#endif
}

/* Line of a suspended coroutine/generator: (code, instruction offset) -> line is cached. */
static int suspended_line(PyObject *obj) {
  PyObject *code;
  int lasti;
  if (gen_position(obj, &code, &lasti) == 0) {
    /* the key's code object is kept alive by the code cache (every user frame passes there) */
    struct line_slot *slot = &line_cache[(ptr_hash(code) ^ (size_t)lasti * 31u) & (LINE_CACHE - 1)];
    if (slot->code == code && slot->lasti == lasti) return slot->line;
#if PY_VERSION_HEX >= 0x030C0000
    int line = PyUnstable_InterpreterFrame_GetLine(iframe_of(obj));
#else
    int line = PyCode_Addr2Line((PyCodeObject *)code, lasti * (int)sizeof(_Py_CODEUNIT));
#endif
    if (codes_find(code)) { slot->code = code; slot->lasti = lasti; slot->line = line; }
    return line;
  }
  PyObject *frame = PyObject_GetAttr(obj, PyCoro_CheckExact(obj) ? G.s_cr_frame : G.s_gi_frame);
  int line = 0;
  if (!frame) PyErr_Clear();
  else if (PyFrame_Check(frame)) line = PyFrame_GetLineNumber((PyFrameObject *)frame);
  Py_XDECREF(frame);
  return line;
}

static code_info *info_of(PyObject *obj) {
  int coro = PyCoro_CheckExact(obj);
  PyObject *code = gen_code(obj);
  if (!code) return NULL;
  code_info *ci = codes_find(code);
  if (!ci) {
    PyObject *frame = PyObject_GetAttr(obj, coro ? G.s_cr_frame : G.s_gi_frame);
    if (!frame) PyErr_Clear();
    ci = code_info_of(code, obj, frame);
    Py_XDECREF(frame);
  }
  return ci;
}

/* What a suspended coroutine/generator awaits (new ref or NULL, no exception set). */
static PyObject *yielded_from(PyObject *obj) {
  int coro = PyCoro_CheckExact(obj);
  getter get = coro ? G.get_cr_await : G.get_gi_yieldfrom;
  PyObject *next = get ? get(obj, NULL) : PyObject_GetAttr(obj, coro ? G.s_cr_await : G.s_gi_yieldfrom);
  if (!next) PyErr_Clear();
  return next;
}

/* At the end of a step that suspended: where the task waits and on what. The user's frame is
 * the innermost one outside the stdlib and site-packages (or the innermost of all). */
static void await_capture(task_entry *e, uint64_t t) {
  PyObject *obj = Py_NewRef(e->coro);
  PyObject *user = NULL, *user_next = NULL, *last = NULL, *last_next = NULL;
  code_info *user_ci = NULL, *last_ci = NULL;
  for (int depth = 0; depth < 64 && obj && (PyCoro_CheckExact(obj) || PyGen_CheckExact(obj)); depth++) {
    code_info *ci = info_of(obj);
    if (!ci) break;
    PyObject *next = yielded_from(obj);
    Py_XSETREF(last, Py_NewRef(obj));
    Py_XSETREF(last_next, Py_XNewRef(next));
    last_ci = ci;
    if (!ci->is_lib) {
      Py_XSETREF(user, Py_NewRef(obj));
      Py_XSETREF(user_next, Py_XNewRef(next));
      user_ci = ci;
    }
    Py_SETREF(obj, next);
  }
  Py_XDECREF(obj);
  if (!user_ci) { /* only library frames: report the innermost one */
    user_ci = last_ci;
    user = last;
    user_next = last_next;
    last = last_next = NULL;
  }
  Py_XDECREF(last);
  Py_XDECREF(last_next);
  e->awaiting = 1;
  e->await_t = rel(e->sess, t);
  e->await_at = user_ci;
  e->await_line = user ? suspended_line(user) : 0;
  if (!user_next || user_next == Py_None) {
    set_what(e, "yield", 5);
  } else if (PyCoro_CheckExact(user_next) || PyGen_CheckExact(user_next)) {
    code_info *ci = info_of(user_next);
    if (ci) set_what(e, ci->qual, (size_t)ci->nqual);
    else set_what(e, "coroutine", 9);
  } else {
    PyObject *awaited = user_next;
    if (Py_TYPE(awaited) == G.future_iter_type && *(PyObject **)((char *)awaited + sizeof(PyObject)))
      awaited = *(PyObject **)((char *)awaited + sizeof(PyObject)); /* FutureIter: first field is the future */
    const char *tn = Py_TYPE(awaited)->tp_name;
    const char *dot = strrchr(tn, '.');
    if (dot) tn = dot + 1;
    if (strcmp(tn, "_GatheringFuture") == 0) tn = "gather";
    set_what(e, tn, strlen(tn));
  }
  Py_XDECREF(user);
  Py_XDECREF(user_next);
}

/* The exception of a finished task as "Type: message", without marking it retrieved. */
static PyObject *exc_text(PyObject *task) {
  PyObject *exc = PyObject_GetAttr(task, G.s_exception);
  if (!exc) { PyErr_Clear(); return NULL; }
  PyObject *r = NULL;
  if (exc != Py_None) {
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
  Py_DECREF(exc);
  return r;
}

/* 0 pending, 1 finished ok or with an exception, 2 cancelled. */
static int task_state(PyObject *task) {
  PyObject *st = PyObject_GetAttr(task, G.s_state);
  if (!st) { PyErr_Clear(); return 0; }
  int r = 0;
  if (PyUnicode_Check(st) && PyUnicode_GET_LENGTH(st) > 0) {
    Py_UCS4 c = PyUnicode_READ_CHAR(st, 0);
    r = c == 'F' ? 1 : c == 'C' ? 2 : 0;
  }
  Py_DECREF(st);
  return r;
}

static void task_finish(task_entry *e, int state, uint64_t t) {
  announce(e);
  await_end(e, t);
  ls_event ev = {0};
  ev.kind = LS_K_DONE;
  ev.id = e->id;
  ev.t = rel(e->sess, t);
  PyObject *exc = NULL;
  if (state == 2) ev.state = LS_S_CANCELLED;
  else if ((exc = exc_text(e->task))) ev.state = LS_S_ERROR;
  ev.exc = str_of(exc);
  emit(e->sess, &ev);
  Py_XDECREF(exc);
  tab_del(e->task);
  entry_free(e);
}

/* After a step of e from t0 to t1: the step event, then done or the await point. */
static void step_end(task_entry *e, uint64_t t0, uint64_t t1) {
  ls_event ev = {0};
  ev.kind = LS_K_STEP;
  ev.id = e->id;
  ev.t = rel(e->sess, t0);
  ev.d = t1 - t0;
  emit(e->sess, &ev);
  int st;
#if PY_VERSION_HEX >= 0x030B0000
  /* A task is done after a step exactly when its coroutine finished: reading the coroutine's
   * frame state (a public struct field) saves asking the task for its _state on every step. */
  if (G.completed_state != -128 && e->coro && PyCoro_CheckExact(e->coro) &&
      ((PyCoroObject *)e->coro)->cr_frame_state < 0)
    st = 0;
  else
#endif
    st = task_state(e->task);
  if (st) task_finish(e, st, t1);
  else await_capture(e, t1);
}

/* ---- sessions ---------------------------------------------------------------------------- */

static void emit_block(session_obj *s, uint64_t id, uint64_t t0, uint64_t t1, PyObject *stack);

static code_info *coro_code_info(PyObject *coro) {
  if (!coro || !(PyCoro_CheckExact(coro) || PyGen_CheckExact(coro))) return NULL;
  return info_of(coro);
}

static task_entry *register_task(session_obj *s, PyObject *task, PyObject *coro, uint64_t parent_id,
                                 uint64_t t) {
  if (s->ntasks >= s->max_tasks) {
    s->dropped_tasks++;
    ls_session_add_dropped(s->ls, 1);
    return NULL;
  }
  task_entry *e = PyMem_Calloc(1, sizeof *e);
  if (!e) return NULL;
  e->task = task;
  e->coro = coro;
  e->sess = (session_obj *)Py_NewRef((PyObject *)s);
  e->id = ++s->next_id;
  e->parent = parent_id;
  e->created = rel(s, t);
  s->ntasks++;
  e->coro_info = coro_code_info(coro);
  e->snext = s->entries;
  if (s->entries) s->entries->sprev = e;
  s->entries = e;
  task_entry *old = tab_find(task); /* a task that died unseen at the same address */
  if (old) { tab_del(task); entry_free(old); }
  if (tab_put(e) < 0) { entry_free(e); return NULL; }
  return e;
}

static int session_init(session_obj *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"id", NULL};
  PyObject *id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U", kwlist, &id)) return -1;
  Py_XSETREF(self->id, Py_NewRef(id));
  self->max_tasks = G.max_tasks;
  return 0;
}

static void session_dealloc(session_obj *self) {
  Py_XDECREF(self->id);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Writes a new session id into buf (NUL-terminated) and returns its length: the process's random
 * prefix and a counter, so no system call per request. */
size_t new_session_id(char buf[ID_MAX]) {
  static const char hex[] = "0123456789abcdef";
  if (!G.id_prefix[0]) {
    unsigned char r[8];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(r, 1, sizeof r, f) : 0;
    if (f) fclose(f);
    if (got != sizeof r) { /* no /dev/urandom: time and pid still make a collision unlikely */
      uint64_t x = now_ns() ^ ((uint64_t)getpid() << 32);
      for (int i = 0; i < 8; i++) r[i] = (unsigned char)(x >> (8 * i));
    }
    char *p = G.id_prefix;
    *p++ = 's';
    *p++ = '-';
    for (int i = 0; i < 8; i++) { *p++ = hex[r[i] >> 4]; *p++ = hex[r[i] & 15]; }
    *p++ = '-';
    *p = 0;
  }
  size_t n = strlen(G.id_prefix);
  memcpy(buf, G.id_prefix, n);
  char tmp[16];
  int k = 0;
  uint64_t v = ++G.id_counter;
  do { tmp[k++] = hex[v & 15]; v >>= 4; } while (v);
  while (k) buf[n++] = tmp[--k];
  buf[n] = 0;
  return n;
}

/* new_session_id() -> str: the id of a new session (loopscope.Session uses it too). */
static PyObject *mod_new_session_id(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  char buf[ID_MAX];
  size_t n = new_session_id(buf);
  return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

/* Opens self as a session named name (a str) with a task cap: the meta object is built here from
 * the name, the pid, the wall clock and the fields fixed at start (service, host, python).
 * 0, or -1 with an exception set. */
int session_begin(session_obj *self, ls_str n, uint64_t max_tasks) {
  if (!G.started) { PyErr_SetString(PyExc_RuntimeError, "loopscope is not installed"); return -1; }
  if (self->ls) { PyErr_SetString(PyExc_RuntimeError, "session already open"); return -1; }
  const char *id = PyUnicode_AsUTF8(self->id);
  if (!id) return -1;
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  ls_buf meta;
  ls_buf_init(&meta, 16384);
  ls_buf_puts(&meta, "{\"name\":");
  ls_buf_jstr(&meta, n.p ? n.p : "", n.n > 1024 ? 1024 : n.n);
  ls_buf_puts(&meta, ",\"pid\":");
  ls_buf_u64(&meta, (uint64_t)G.pid);
  ls_buf_puts(&meta, ",\"started_unix_ns\":\"");
  ls_buf_u64(&meta, (uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec);
  ls_buf_puts(&meta, "\"");
  if (G.meta_static) ls_buf_puts(&meta, G.meta_static);
  ls_buf_puts(&meta, "}");
  int rc = meta.failed ? LS_ENOMEM : ls_session_open(G.core, id, meta.p, &self->ls);
  ls_buf_free(&meta);
  if (rc) { PyErr_Format(PyExc_ValueError, "loopscope: cannot open session %s (%d)", id, rc); return -1; }
  self->start = now_ns();
  self->max_tasks = max_tasks;
  self->active = 1;
  self->generation = G.generation;
  return PyList_Append(G.active, (PyObject *)self);
}

/* _open(name, max_tasks) */
static PyObject *session_open(session_obj *self, PyObject *args) {
  PyObject *name;
  unsigned long long max_tasks;
  if (!PyArg_ParseTuple(args, "UK", &name, &max_tasks)) return NULL;
  if (session_begin(self, str_of(name), max_tasks)) return NULL;
  Py_RETURN_NONE;
}

/* Ends the session: tasks still pending get their open await closed; the end event goes out. */
PyObject *session_close(session_obj *self, PyObject *unused) {
  (void)unused;
  if (!self->active) Py_RETURN_NONE;
  uint64_t t = now_ns();
  if (session_live(self)) {
    /* Closed from inside a step of its own task that already blocks the loop (a handler that
     * blocked, then returned): report that block now, the session will not see the step end. */
    if (G.cur && G.cur->sess == self && atomic_load(&G.hb_busy)) {
      uint64_t start = atomic_load(&G.hb_start);
      if (t - start >= G.block_ns) {
        PyObject *stack = G.block_seq == atomic_load(&G.hb_seq) ? G.block_stack : NULL;
        emit_block(self, G.cur->id, start, t, stack);
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
      /* the lag heartbeat due during this step has not run yet and will run after the session is
       * gone: report how late it is so far (a lower bound of its lateness) */
      if (G.lag_pending && G.lag_due >= self->start && t > G.lag_due) {
        ls_event lag = {0};
        lag.kind = LS_K_LAG;
        lag.t = rel(self, G.lag_due);
        lag.d = t - G.lag_due;
        emit(self, &lag);
      }
    }
    while (self->entries) {
      task_entry *e = self->entries;
      announce(e);
      await_end(e, t);
      tab_del(e->task);
      entry_free(e); /* unlinks it from self->entries */
    }
    ls_session_close(self->ls, rel(self, t));
  }
  self->active = 0;
  self->ls = NULL;
  Py_ssize_t i = PySequence_Index(G.active, (PyObject *)self);
  if (i >= 0) PySequence_DelItem(G.active, i);
  else PyErr_Clear();
  Py_RETURN_NONE;
}

/* Records the running task as this session's root (the request handler's task): 1 when it is
 * recorded now, 0 when it cannot be (another session has it, the cap, no memory). */
static int adopt_task(session_obj *self, PyObject *task) {
  if (!session_live(self)) return 0;
  if (tab_find(task)) return 0; /* it belongs to another session already */
  PyObject *coro = PyObject_CallMethodNoArgs(task, G.s_get_coro);
  if (!coro) { PyErr_Clear(); return 0; }
  task_entry *e = register_task(self, task, coro, 0, self->start);
  Py_DECREF(coro); /* the task keeps it alive */
  return e != NULL;
}

/* Makes the running loop record this session: the task factory and step hooks on it (the Python
 * hook_loop, once per loop), the lag heartbeat running, and with adopt the running task as the
 * session's root. 0, or -1 with an exception set. Used by `async with session` and the middleware. */
int session_enter_loop(session_obj *self, PyObject *loop, int adopt) {
  if (loop != G.hooked_loop) {
    PyObject *r = G.hook_loop ? PyObject_CallOneArg(G.hook_loop, loop) : Py_NewRef(Py_None);
    if (!r) return -1;
    Py_DECREF(r);
    Py_XSETREF(G.hooked_loop, Py_NewRef(loop));
  }
  lag_ensure(loop);
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

static PyMethodDef session_methods[] = {
    {"_open", (PyCFunction)session_open, METH_VARARGS, "open(meta_json, max_tasks)"},
    {"_close", (PyCFunction)session_close, METH_NOARGS, "end the session"},
    {"_enter_loop", (PyCFunction)session_enter, METH_O,
     "_enter_loop(adopt): hook the running loop, start the lag heartbeat, adopt the running task"},
    {"_release", (PyCFunction)session_release, METH_O, "stop recording a task adopted earlier"},
    {"_stats", (PyCFunction)session_stats, METH_NOARGS, "counters"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef session_members[] = {
    {"id", T_OBJECT, offsetof(session_obj, id), READONLY, "session id"},
    {NULL, 0, 0, 0, NULL}};

PyTypeObject Session_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.Session",
    .tp_basicsize = sizeof(session_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)session_init,
    .tp_dealloc = (destructor)session_dealloc,
    .tp_methods = session_methods,
    .tp_members = session_members,
};

/* ---- task factory ------------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  PyObject *chained;   /* the factory set before ours, or None */
  vectorcallfunc vectorcall;
} factory_obj;

static session_obj *session_of_context(PyObject *const *args, size_t nargs, PyObject *kwnames) {
  PyObject *ctx = NULL;
  if (kwnames) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++)
      if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "context") == 0)
        ctx = args[nargs + (size_t)i];
  }
  PyObject *val = NULL;
  if (ctx && ctx != Py_None) {
    PyObject *v = PyObject_CallMethodObjArgs(ctx, G.s_get, G.session_var, NULL);
    if (!v) { PyErr_Clear(); return NULL; }
    val = v;
  } else if (PyContextVar_Get(G.session_var, NULL, &val) < 0) {
    PyErr_Clear();
    return NULL;
  }
  if (val && Py_TYPE(val) == &Session_Type && session_live((session_obj *)val)) return (session_obj *)val;
  Py_XDECREF(val);
  return NULL;
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
static int coro_is_asyncio_housekeeping(PyObject *coro) {
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
 * with what its factory call saw (the enclosing entry of G.eager), so its children can name it. */
static uint64_t parent_for(session_obj *s, PyObject *loop) {
  task_entry *pe = G.cur;
  if (G.factory_depth > 0 || !pe) {
    PyObject *ct = PyObject_CallOneArg(G.current_task, loop);
    if (!ct) { PyErr_Clear(); return pe && pe->sess == s ? pe->id : 0; }
    if (ct != Py_None) {
      pe = tab_find(ct);
      if (!pe && G.factory_depth > 0 && G.factory_depth <= EAGER_MAX) {
        eager_frame *f = &G.eager[G.factory_depth - 1];
        if (f->sess == s) {
          PyObject *coro = PyObject_CallMethod(ct, "get_coro", NULL);
          if (!coro) PyErr_Clear();
          else {
            pe = register_task(s, ct, coro, f->parent, f->t0);
            Py_DECREF(coro); /* the task keeps it */
          }
        }
      }
    }
    Py_DECREF(ct);
  }
  return pe && pe->sess == s ? pe->id : 0;
}

static int steps_hooked(PyObject *loop);

static PyObject *factory_vectorcall(factory_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  size_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "task factory expects (loop, coro, **kwargs)");
    return NULL;
  }
  PyObject *loop = args[0], *coro = args[1];
  session_obj *s = G.started && PyList_GET_SIZE(G.active) ? session_of_context(args, nargs, kwnames) : NULL;
  uint64_t t0 = 0, parent = 0;
  if (s) {
    t0 = now_ns();
    parent = parent_for(s, loop);
    coro_code_info(coro); /* cached now, while the coroutine's frame still tells its module */
  }
  task_entry *saved_cur = G.cur;
  PyObject *task;
  if (G.factory_depth < EAGER_MAX) {
    eager_frame *f = &G.eager[G.factory_depth];
    f->sess = s;
    f->parent = parent;
    f->t0 = t0;
  }
  G.factory_depth++;
  if (self->chained != Py_None) {
    task = PyObject_Vectorcall(self->chained, args, nargsf, kwnames);
  } else {
    /* asyncio.Task(coro, loop=loop, **kwargs) */
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[1 + 1 + 16];
    PyObject *names = nkw <= 15 ? PyTuple_New(1 + nkw) : NULL;
    if (!names) {
      G.factory_depth--;
      Py_XDECREF(s);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "too many keyword arguments");
      return NULL;
    }
    stack[0] = coro;
    stack[1] = loop;
    for (Py_ssize_t i = 0; i < nkw; i++) stack[2 + i] = args[2 + i];
    PyTuple_SET_ITEM(names, 0, Py_NewRef(G.s_loop));
    for (Py_ssize_t i = 0; i < nkw; i++) PyTuple_SET_ITEM(names, 1 + i, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
    task = PyObject_Vectorcall(G.task_cls, stack, 1, names);
    Py_DECREF(names);
  }
  G.factory_depth--;
  G.cur = saved_cur;
  if (!task || !s) { Py_XDECREF(s); return task; }
  uint64_t t1 = now_ns();
  lag_ensure(loop);
  if (PyErr_Occurred()) PyErr_Clear();
  task_entry *e = tab_find(task); /* registered already if its eager step made children */
  if (!e && !parent && coro_is_asyncio_housekeeping(coro)) { Py_DECREF(s); return task; }
  if (!e) {
    e = register_task(s, task, coro, parent, t0);
    if (e && G.base_loop_type && !PyObject_TypeCheck(loop, (PyTypeObject *)G.base_loop_type) &&
        !steps_hooked(loop)) {
      /* uvloop and other loops do not run tasks through asyncio's Handle: without a SoonHook on
       * the loop steps are not seen, so the task's end comes from a done callback instead */
      PyObject *r = PyObject_CallMethod(task, "add_done_callback", "O", G.done_cb);
      if (!r) PyErr_Clear();
      Py_XDECREF(r);
    }
  }
  if (e && G.eager_aware) {
    /* 3.12+: an eager task ran its first step inside the factory. A coroutine still in its
     * "created" frame state did not run (the common, non-eager case: no attribute lookups). */
    int ran = 0, unstarted = 0;
#if PY_VERSION_HEX >= 0x030B0000
    unstarted = G.created_state != -128 && PyCoro_CheckExact(coro) &&
                ((PyCoroObject *)coro)->cr_frame_state == G.created_state;
#endif
    if (!unstarted) ran = task_state(task) != 0;
    if (!unstarted && !ran) {
      PyObject *susp = PyObject_GetAttr(coro, G.s_cr_suspended);
      if (!susp) PyErr_Clear();
      ran = susp == Py_True;
      Py_XDECREF(susp);
    }
    if (ran) step_end(e, t0, t1);
  }
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

static PyTypeObject Factory_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.TaskFactory",
    .tp_basicsize = sizeof(factory_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = factory_new,
    .tp_dealloc = (destructor)factory_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(factory_obj, vectorcall),
    .tp_members = factory_members,
};

/* ---- the step hook: Handle._run ---------------------------------------------------------- */

/* The task a handle's callback steps, or NULL: TaskStepMethWrapper / task_wakeup (C Task) or a
 * bound __step / __wakeup method (pure-Python Task). Borrowed. */
static PyObject *task_of_callback(PyObject *cb) {
  PyObject *self = NULL;
  PyTypeObject *tp = Py_TYPE(cb);
  if (PyCFunction_Check(cb)) {
    self = PyCFunction_GET_SELF(cb);
  } else if (PyMethod_Check(cb)) {
    self = PyMethod_GET_SELF(cb);
  } else {
    /* TaskStepMethWrapper: struct { PyObject_HEAD; TaskObj *sw_task; ... } on 3.10–3.14; the
     * layout was checked against __self__ when the type was registered (patch_handle). */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(G.wrapper_types); i++)
      if ((PyObject *)tp == PyTuple_GET_ITEM(G.wrapper_types, i)) {
        self = *(PyObject **)((char *)cb + sizeof(PyObject));
        break;
      }
  }
  if (!self || self == Py_None) return NULL;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(G.task_types); i++)
    if (PyObject_TypeCheck(self, (PyTypeObject *)PyTuple_GET_ITEM(G.task_types, i))) return self;
  return NULL;
}

static void emit_block(session_obj *s, uint64_t id, uint64_t t0, uint64_t t1, PyObject *stack) {
  ls_frame frames[LS_MAX_FRAMES];
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
  ls_event ev = {0};
  ev.kind = LS_K_BLOCK;
  ev.id = id;
  ev.t = rel(s, t0);
  ev.d = t1 - t0;
  ev.frames = frames;
  ev.nframes = n;
  emit(s, &ev);
}

/* asyncio's Handle._run, in C when its slots were found at install: context.run(callback, *args),
 * and on an exception other than SystemExit/KeyboardInterrupt the original's except branch (a
 * Python function given at install). Same effect as the original without a Python frame per
 * handle; otherwise the original is called. */
static PyObject *call_orig_run(PyObject *handle) {
  if (!G.run_failed) return PyObject_CallOneArg(G.orig_run, handle);
  PyObject *ctx = *(PyObject **)((char *)handle + G.off_context);
  PyObject *cb = *(PyObject **)((char *)handle + G.off_callback);
  PyObject *args = *(PyObject **)((char *)handle + G.off_args);
  if (!ctx || !cb || !args || !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) > 14)
    return PyObject_CallOneArg(G.orig_run, handle);
  PyObject *stack[16];
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  stack[0] = Py_NewRef(ctx);
  stack[1] = Py_NewRef(cb);
  for (Py_ssize_t i = 0; i < n; i++) stack[2 + i] = Py_NewRef(PyTuple_GET_ITEM(args, i));
  PyObject *r = PyObject_VectorcallMethod(G.s_run, stack, (size_t)(2 + n), NULL);
  for (Py_ssize_t i = 0; i < 2 + n; i++) Py_DECREF(stack[i]);
  if (r) { Py_DECREF(r); Py_RETURN_NONE; }
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) return NULL;
  PyObject *type, *val, *tb;
  PyErr_Fetch(&type, &val, &tb);
  PyErr_NormalizeException(&type, &val, &tb);
  if (tb && val) PyException_SetTraceback(val, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  PyObject *h = PyObject_CallFunctionObjArgs(G.run_failed, handle, val ? val : Py_None, NULL);
  Py_XDECREF(val);
  if (!h) return NULL;
  Py_DECREF(h);
  Py_RETURN_NONE;
}

#if defined(__GNUC__) || defined(__clang__)
#define LS_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LS_ALWAYS_INLINE inline
#endif

/* One callback the loop runs, timed as loopscope times a handle: the watchdog's heartbeat around
 * it, and when cb steps a recorded task, the step, its await point or end, and a block in it
 * attributed to the task (else to every session). run(arg) makes the call. Inlined into each
 * caller with run known, so Handle._run pays no indirect call for the uvloop path's sake. */
static LS_ALWAYS_INLINE PyObject *time_step(PyObject *cb, PyObject *(*run)(void *), void *arg) {
  uint64_t t0 = now_ns();
  /* only threads holding the GIL write the heartbeat: a plain increment, no locked instruction */
  uint_fast64_t seq = atomic_load_explicit(&G.hb_seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&G.hb_seq, seq, memory_order_relaxed);
  atomic_store_explicit(&G.hb_start, t0, memory_order_relaxed);
  atomic_store_explicit(&G.hb_busy, 1, memory_order_release);
  G.loop_tstate = PyThreadState_Get();
  PyObject *task = cb ? task_of_callback(cb) : NULL;
  task_entry *e = task ? tab_find(task) : NULL;
  task_entry *saved = G.cur;
  uint64_t saved_t0 = G.cur_t0;
  session_obj *bs = NULL; /* the session of the stepped task, for a block */
  uint64_t bid = 0;
  if (e) {
    if (!session_live(e->sess)) { tab_del(task); entry_free(e); e = NULL; }
    else {
      announce(e);
      await_end(e, t0);
      bs = (session_obj *)Py_NewRef((PyObject *)e->sess);
      bid = e->id;
      Py_INCREF(task); /* the step may end the task; keep the key alive for the lookup after */
    }
  }
  G.cur = e;
  G.cur_t0 = t0;
  PyObject *res = run(arg);
  uint64_t t1 = now_ns();
  atomic_store_explicit(&G.hb_busy, 0, memory_order_release);
  G.cur = saved;
  G.cur_t0 = saved_t0;
  PyObject *exc_type, *exc_val, *exc_tb;
  PyErr_Fetch(&exc_type, &exc_val, &exc_tb);
  if (e) {
    e = tab_find(task); /* the step may have closed the session and removed it */
    if (e) step_end(e, t0, t1);
    Py_DECREF(task);
  }
  if (t1 - t0 >= G.block_ns) {
    PyObject *stack = G.block_seq == seq ? G.block_stack : NULL;
    Py_XINCREF(stack);
    Py_CLEAR(G.block_stack);
    /* a task's block goes to its session only (session_close reported it if that came first) */
    if (bs) emit_block(bs, bid, t0, t1, stack);
    else {
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(G.active); i++) {
        session_obj *s = (session_obj *)PyList_GET_ITEM(G.active, i);
        if (t0 >= s->start) emit_block(s, 0, t0, t1, stack);
      }
    }
    Py_XDECREF(stack);
  }
  Py_XDECREF(bs);
  if (PyErr_Occurred()) PyErr_Clear();
  PyErr_Restore(exc_type, exc_val, exc_tb);
  return res;
}

static PyObject *run_handle(void *handle) { return call_orig_run((PyObject *)handle); }

static PyObject *handle_run(PyObject *self, PyObject *unused) {
  (void)unused;
  if (!PyList_GET_SIZE(G.active)) return call_orig_run(self);
  return time_step(*(PyObject **)((char *)self + G.off_callback), run_handle, self);
}

static PyMethodDef handle_run_def = {"_run", handle_run, METH_NOARGS,
                                     "Handle._run timed by loopscope (calls the original)"};

static PyObject *mod_patch_handle(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *handle_type, *task_types, *samples, *run_failed = NULL;
  if (!PyArg_ParseTuple(args, "O!O!O!|O", &PyType_Type, &handle_type, &PyTuple_Type, &task_types, &PyList_Type,
                        &samples, &run_failed))
    return NULL;
  if (G.orig_run) Py_RETURN_NONE;
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
  Py_XSETREF(G.wrapper_types, PyList_AsTuple(wrappers));
  Py_DECREF(wrappers);
  if (!G.wrapper_types) return NULL;
  PyObject *member = PyObject_GetAttrString(handle_type, "_callback");
  if (!member) return NULL;
  if (Py_TYPE(member) != &PyMemberDescr_Type) {
    Py_DECREF(member);
    PyErr_SetString(PyExc_TypeError, "Handle._callback is not a slot");
    return NULL;
  }
  G.off_callback = ((PyMemberDescrObject *)member)->d_member->offset;
  Py_DECREF(member);
  /* the slots the C _run reads; without them (or without run_failed) the original runs */
  G.off_args = G.off_context = 0;
  Py_CLEAR(G.run_failed);
  PyObject *m_args = PyObject_GetAttrString(handle_type, "_args");
  PyObject *m_ctx = m_args ? PyObject_GetAttrString(handle_type, "_context") : NULL;
  if (m_args && m_ctx && Py_TYPE(m_args) == &PyMemberDescr_Type && Py_TYPE(m_ctx) == &PyMemberDescr_Type &&
      run_failed && PyCallable_Check(run_failed)) {
    G.off_args = ((PyMemberDescrObject *)m_args)->d_member->offset;
    G.off_context = ((PyMemberDescrObject *)m_ctx)->d_member->offset;
    G.run_failed = Py_NewRef(run_failed);
  }
  Py_XDECREF(m_args);
  Py_XDECREF(m_ctx);
  PyErr_Clear();
  PyObject *orig = PyObject_GetAttrString(handle_type, "_run");
  if (!orig) return NULL;
  PyObject *descr = PyDescr_NewMethod((PyTypeObject *)handle_type, &handle_run_def);
  if (!descr) { Py_DECREF(orig); return NULL; }
  if (PyObject_SetAttrString(handle_type, "_run", descr)) { Py_DECREF(descr); Py_DECREF(orig); return NULL; }
  Py_DECREF(descr);
  G.orig_run = orig;
  G.handle_type = Py_NewRef(handle_type);
  Py_XSETREF(G.task_types, Py_NewRef(task_types));
  Py_RETURN_NONE;
}

static PyObject *mod_unpatch_handle(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  if (!G.orig_run) Py_RETURN_NONE;
  if (PyObject_SetAttrString(G.handle_type, "_run", G.orig_run)) return NULL;
  Py_CLEAR(G.orig_run);
  Py_CLEAR(G.run_failed);
  Py_CLEAR(G.handle_type);
  Py_RETURN_NONE;
}

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

static PyTypeObject SoonHook_Type, StepCall_Type;

typedef struct { PyObject *cb; PyObject *const *args; size_t nargsf; PyObject *kwnames; } fwd_call;

static PyObject *run_fwd(void *arg) {
  fwd_call *f = arg;
  return PyObject_Vectorcall(f->cb, f->args, f->nargsf, f->kwnames);
}

static PyObject *stepcall_vectorcall(wrap_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  if (!self->wrapped) { PyErr_SetString(PyExc_RuntimeError, "loopscope: step callback cleared"); return NULL; }
  fwd_call f = {Py_NewRef(self->wrapped), args, nargsf, kwnames};
  PyObject *r = PyList_GET_SIZE(G.active) ? time_step(f.cb, run_fwd, &f) : run_fwd(&f);
  Py_DECREF(f.cb);
  return r;
}

#define SOON_MAX_ARGS 8

static PyObject *soonhook_vectorcall(wrap_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  size_t nargs = PyVectorcall_NARGS(nargsf), nall = nargs + (size_t)(kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  /* a recorded task's step or wakeup; inside our factory the task being made is not registered
   * yet (its first step is scheduled by its constructor), so it is wrapped and looked up later */
  PyObject *task = nargs && nall <= SOON_MAX_ARGS && PyList_GET_SIZE(G.active) ? task_of_callback(args[0]) : NULL;
  if (!task || !(G.factory_depth > 0 || tab_find(task)))
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

static PyTypeObject SoonHook_Type = WRAP_TYPE("SoonHook", "SoonHook(loop.call_soon): set as the loop's call_soon, "
                                              "times the steps of recorded tasks", soonhook_new);
static PyTypeObject StepCall_Type = WRAP_TYPE("StepCall", "a recorded task's step, timed when the loop runs it", NULL);

/* True when loop's call_soon is a SoonHook: its tasks' steps (and so their ends) are seen. */
static int steps_hooked(PyObject *loop) {
  PyObject *cs = PyObject_GetAttr(loop, G.s_call_soon);
  if (!cs) { PyErr_Clear(); return 0; }
  int r = Py_TYPE(cs) == &SoonHook_Type;
  Py_DECREF(cs);
  return r;
}

/* ---- module functions -------------------------------------------------------------------- */

static PyObject *mod_start(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *kwlist[] = {"url", "token", "buffer_cap", "timeout_ms", "flush_interval_ms", "blocking_ms",
                           "max_tasks", "sample_rate_ms", "lib_prefixes", "session_var", "asyncio_prefix",
                           "meta", "get_running_loop", "hook_loop", NULL};
  const char *url, *token = NULL;
  unsigned long long cap, max_tasks;
  int timeout_ms, flush_ms;
  double blocking_ms, rate_ms;
  PyObject *prefixes, *var, *aprefix;
  const char *meta_static = "";
  PyObject *get_loop = NULL, *hook = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "szKiidKdO!OU|sOO", kwlist, &url, &token, &cap, &timeout_ms, &flush_ms,
                                   &blocking_ms, &max_tasks, &rate_ms, &PyTuple_Type, &prefixes, &var, &aprefix,
                                   &meta_static, &get_loop, &hook))
    return NULL;
  if (G.started) { PyErr_SetString(PyExc_RuntimeError, "loopscope is already installed"); return NULL; }
  ls_config cfg = {url, token, (size_t)cap, flush_ms, timeout_ms, 0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = ls_collector_new(&cfg, &G.core);
  Py_END_ALLOW_THREADS
  if (rc) { PyErr_Format(PyExc_RuntimeError, "loopscope: cannot start the sender (%d)", rc); return NULL; }
  G.block_ns = (uint64_t)(blocking_ms * 1e6);
  G.lag_ns = (uint64_t)(rate_ms * 1e6);
  if (G.lag_ns < 100000u) G.lag_ns = 100000u;
  G.max_tasks = max_tasks;
  Py_XSETREF(G.lib_prefixes, Py_NewRef(prefixes));
  Py_XSETREF(G.session_var, Py_NewRef(var));
  Py_XSETREF(G.asyncio_prefix, Py_NewRef(aprefix));
  PyMem_Free(G.meta_static);
  size_t ms_len = strlen(meta_static);
  G.meta_static = PyMem_Malloc(ms_len + 1);
  if (!G.meta_static) return PyErr_NoMemory();
  memcpy(G.meta_static, meta_static, ms_len + 1);
  /* the timeline page of a session is <server>/sessions/<id> (the server URL without its final /) */
  size_t ulen = strlen(url);
  while (ulen && url[ulen - 1] == '/') ulen--;
  PyMem_Free(G.url_prefix);
  if (!(G.url_prefix = PyMem_Malloc(ulen + sizeof "/sessions/"))) return PyErr_NoMemory();
  memcpy(G.url_prefix, url, ulen);
  memcpy(G.url_prefix + ulen, "/sessions/", sizeof "/sessions/");
  Py_XSETREF(G.get_running_loop, Py_XNewRef(get_loop));
  Py_XSETREF(G.hook_loop, Py_XNewRef(hook));
  G.pid = (long)getpid();
  G.started = 1;
  if (watchdog_start()) {
    PyErr_SetString(PyExc_RuntimeError, "loopscope: cannot start the watchdog thread");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *mod_flush(PyObject *mod, PyObject *args) {
  (void)mod;
  int timeout_ms = 5000, rc = LS_OK;
  if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) return NULL;
  if (!G.started) Py_RETURN_TRUE;
  Py_BEGIN_ALLOW_THREADS
  rc = ls_collector_flush(G.core, timeout_ms);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(rc == LS_OK);
}

/* Closes every session still open, so their events go out with the next flush. */
static PyObject *mod_close_sessions(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  while (PyList_GET_SIZE(G.active)) {
    PyObject *s = Py_NewRef(PyList_GET_ITEM(G.active, 0));
    PyObject *r = session_close((session_obj *)s, NULL);
    Py_XDECREF(r);
    if (!r) PyErr_Clear();
    if (PyList_GET_SIZE(G.active) && PyList_GET_ITEM(G.active, 0) == s) PySequence_DelItem(G.active, 0);
    Py_DECREF(s);
  }
  Py_RETURN_NONE;
}

static PyObject *mod_stop(PyObject *mod, PyObject *args) {
  int timeout_ms = 5000;
  if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) return NULL;
  if (!G.started) Py_RETURN_NONE;
  PyObject *r = mod_close_sessions(mod, NULL);
  Py_XDECREF(r);
  if (!r) PyErr_Clear();
  watchdog_stop();
  Py_CLEAR(G.block_stack);
  ls_collector *core = G.core;
  Py_BEGIN_ALLOW_THREADS
  ls_collector_free(core, timeout_ms);
  Py_END_ALLOW_THREADS
  G.core = NULL;
  G.started = 0;
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) { entry_free(G.tab[i]); G.tab[i] = NULL; }
  G.tab_len = 0;
  codes_clear();
  Py_CLEAR(G.lag_loop);
  G.lag_pending = 0;
  Py_CLEAR(G.hooked_loop); /* the next install hooks loops afresh */
  Py_RETURN_NONE;
}

static PyObject *mod_stats(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  if (!G.started) return PyDict_New();
  ls_stats st;
  ls_collector_stats(G.core, &st);
  return Py_BuildValue("{sKsKsKsKsKsKsKsisnsnsKsKsK}", "events", (unsigned long long)st.events, "dropped",
                       (unsigned long long)st.dropped, "bytes_used", (unsigned long long)st.bytes_used,
                       "batches_sent", (unsigned long long)st.batches_sent, "batches_failed",
                       (unsigned long long)st.batches_failed, "posts_failed", (unsigned long long)st.posts_failed,
                       "retries", (unsigned long long)st.retries, "last_status", st.last_status, "tracked_tasks",
                       (Py_ssize_t)G.tab_len, "active_sessions", PyList_GET_SIZE(G.active), "sessions",
                       (unsigned long long)st.sessions, "sessions_pending", (unsigned long long)st.sessions_pending,
                       "sessions_sending", (unsigned long long)st.sessions_sending);
}

static PyObject *mod_after_fork_child(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  G.id_prefix[0] = 0; /* the child's session ids must not repeat its parent's, installed or not */
  if (!G.started) Py_RETURN_NONE;
  /* Sessions, tasks and the threads of the parent stay behind; the child starts clean. */
  G.generation++;
  G.pid = (long)getpid();
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) { entry_free(G.tab[i]); G.tab[i] = NULL; }
  G.tab_len = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(G.active); i++) {
    session_obj *s = (session_obj *)PyList_GET_ITEM(G.active, i);
    s->active = 0;
    s->ls = NULL;
  }
  if (PyList_SetSlice(G.active, 0, PyList_GET_SIZE(G.active), NULL)) return NULL;
  G.wd_running = 0;
  atomic_store(&G.hb_busy, 0);
  Py_CLEAR(G.block_stack);
  G.lag_pending = 0;
  Py_CLEAR(G.lag_loop);
  if (ls_collector_after_fork_child(G.core)) {
    PyErr_SetString(PyExc_RuntimeError, "loopscope: cannot restart the sender after fork");
    return NULL;
  }
  if (watchdog_start()) {
    PyErr_SetString(PyExc_RuntimeError, "loopscope: cannot restart the watchdog after fork");
    return NULL;
  }
  Py_RETURN_NONE;
}

/* How await lines are read on this interpreter (tests check the fast way is in use). */
static PyObject *mod_frame_reading(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
#if PY_VERSION_HEX >= 0x030C0000
  return PyUnicode_FromString("PyUnstable_InterpreterFrame");
#elif PY_VERSION_HEX >= 0x030B0000
  return PyUnicode_FromString(G.fast_frames ? "3.11 frame layout" : "frame objects");
#else
  return PyUnicode_FromString("PyFrameObject fields");
#endif
}

static PyObject *mod_now_ns(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  return PyLong_FromUnsignedLongLong(now_ns());
}

static PyObject *mod_setup(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *current_task, *task_cls, *fut, *fut_iter, *base_loop, *named, *name, *unnamed;
  int eager;
  if (!PyArg_ParseTuple(args, "OOpOOOOOO", &current_task, &task_cls, &eager, &fut, &fut_iter, &base_loop,
                        &named, &name, &unnamed))
    return NULL;
  Py_XSETREF(G.base_loop_type, Py_NewRef(base_loop));
  G.completed_state = -128;
#if PY_VERSION_HEX >= 0x030B0000
  /* the frame state of `named`'s and `unnamed`'s coroutines is read again in mod_setup_done once
   * they have finished; here they have not started */
#endif
  G.task_name_off = 0;
  G.c_task_type = NULL;
  /* named: a C task created with the str `name`; unnamed: one with a default name. The name
   * field is the one offset holding `name` in the first and an int or str in the second. */
  if (PyType_Check(task_cls) && Py_TYPE(named) == (PyTypeObject *)task_cls && Py_TYPE(unnamed) == Py_TYPE(named)) {
    Py_ssize_t found = 0, hits = 0;
    for (Py_ssize_t off = (Py_ssize_t)sizeof(PyObject); off + (Py_ssize_t)sizeof(PyObject *) <= Py_TYPE(named)->tp_basicsize;
         off += (Py_ssize_t)sizeof(PyObject *)) {
      if (*(PyObject **)((char *)named + off) == name) { found = off; hits++; }
    }
    PyObject *other = hits == 1 ? *(PyObject **)((char *)unnamed + found) : NULL;
    if (other && (PyLong_CheckExact(other) || PyUnicode_CheckExact(other))) {
      G.task_name_off = found;
      G.c_task_type = (PyTypeObject *)task_cls;
    }
  }
  /* a sample future and its __await__() iterator: the iterator's first field must be the future */
  if ((size_t)Py_TYPE(fut_iter)->tp_basicsize >= sizeof(PyObject) + sizeof(PyObject *) &&
      !PyGen_Check(fut_iter) && *(PyObject **)((char *)fut_iter + sizeof(PyObject)) == fut)
    G.future_iter_type = Py_TYPE(fut_iter);
  Py_XSETREF(G.current_task, Py_NewRef(current_task));
  Py_XSETREF(G.task_cls, Py_NewRef(task_cls));
  G.eager_aware = eager;
  Py_RETURN_NONE;
}

/* setup_done(finished_coro, suspended_coro): learns the frame state a finished coroutine has
 * (3.11+), checked to differ from a suspended one's. */
static PyObject *mod_setup_done(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *finished, *suspended, *created = NULL;
  if (!PyArg_ParseTuple(args, "OO|O", &finished, &suspended, &created)) return NULL;
  G.completed_state = -128;
  G.created_state = -128;
#if PY_VERSION_HEX >= 0x030B0000
  if (PyCoro_CheckExact(finished) && PyCoro_CheckExact(suspended)) {
    /* CPython 3.11-3.13 number the states not yet finished (created, suspended) below zero and
     * the finished ones (completed, cleared) above; checked here on this interpreter's samples */
    int8_t f = ((PyCoroObject *)finished)->cr_frame_state, su = ((PyCoroObject *)suspended)->cr_frame_state;
    if (su < 0 && f > 0) G.completed_state = f;
    /* a coroutine not started yet: its own state, distinct from suspended and finished */
    if (created && PyCoro_CheckExact(created)) {
      int8_t c = ((PyCoroObject *)created)->cr_frame_state;
      if (c < 0 && c != su && c != f) G.created_state = c;
    }
  }
#endif
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
  /* the 3.11 frame layout is used only when it gives the sample's code and line exactly */
  G.fast_frames = 0;
  if (PyCoro_CheckExact(suspended)) {
    PyObject *frame = PyObject_GetAttr(suspended, G.s_cr_frame);
    if (!frame) return NULL;
    if (PyFrame_Check(frame)) {
      G.fast_frames = 1;
      PyObject *code;
      int lasti;
      PyCodeObject *fcode = PyFrame_GetCode((PyFrameObject *)frame);
      if (gen_position(suspended, &code, &lasti) != 0 || code != (PyObject *)fcode ||
          lasti < 0 || lasti != PyFrame_GetLasti((PyFrameObject *)frame) / (int)sizeof(_Py_CODEUNIT) ||
          PyCode_Addr2Line(fcode, lasti * (int)sizeof(_Py_CODEUNIT)) != PyFrame_GetLineNumber((PyFrameObject *)frame))
        G.fast_frames = 0;
      Py_XDECREF(fcode);
    }
    Py_DECREF(frame);
  }
#endif
  Py_RETURN_NONE;
}

/* For tests of the C core: encode one event of each kind into JSON without a server. */
static PyObject *mod_encode_selftest(PyObject *mod, PyObject *args) {
  (void)mod;
  const char *s;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "s#", &s, &n)) return NULL;
  ls_frame fr[2] = {{{"a.py", 4}, {"f", 1}, {"x()", 3}, 7}, {{s, (size_t)n}, {"g\"", 2}, {"\x01", 1}, 9}};
  ls_event evs[7];
  memset(evs, 0, sizeof evs);
  evs[0].kind = LS_K_TASK; evs[0].id = 1; evs[0].name.p = s; evs[0].name.n = (size_t)n; evs[0].coro.p = "c"; evs[0].coro.n = 1;
  evs[1].kind = LS_K_STEP; evs[1].id = 1; evs[1].t = 5; evs[1].d = 6;
  evs[2].kind = LS_K_AWAIT; evs[2].id = 1; evs[2].t = UINT64_MAX; evs[2].line = 3; evs[2].what.p = s; evs[2].what.n = (size_t)n;
  evs[3].kind = LS_K_BLOCK; evs[3].id = 1; evs[3].frames = fr; evs[3].nframes = 2;
  evs[4].kind = LS_K_LAG; evs[4].t = 1; evs[4].d = 2;
  evs[5].kind = LS_K_DONE; evs[5].id = 1; evs[5].state = LS_S_ERROR; evs[5].exc.p = s; evs[5].exc.n = (size_t)n;
  evs[6].kind = LS_K_END; evs[6].t = 9;
  ls_buf recs, out;
  ls_buf_init(&recs, 1 << 20);
  ls_buf_init(&out, 1 << 20);
  for (int i = 0; i < 7; i++) {
    size_t sz = ls_record_size(&evs[i]);
    unsigned char tmp[16384];
    if (sz > sizeof tmp) continue;
    ls_record_write(tmp, &evs[i], sz);
    ls_buf_append(&recs, tmp, sz);
  }
  int first = 1;
  ls_buf_append(&out, "[", 1);
  int rc = ls_encode_records(&out, (const unsigned char *)recs.p, recs.len, &first);
  ls_buf_append(&out, "]", 1);
  int bad_rc = ls_encode_records(&out, (const unsigned char *)recs.p, recs.len > 3 ? 3 : recs.len, &first);
  PyObject *r = rc || out.failed ? NULL : PyUnicode_DecodeUTF8(out.p, (Py_ssize_t)out.len - 0, "strict");
  if (r) {
    /* drop what the deliberately truncated second call may have appended */
    Py_ssize_t close = PyUnicode_FindChar(r, ']', 0, PyUnicode_GET_LENGTH(r), -1);
    Py_SETREF(r, PyUnicode_Substring(r, 0, close + 1));
  } else if (!PyErr_Occurred()) {
    PyErr_SetString(PyExc_RuntimeError, "encode failed");
  }
  ls_buf_free(&recs);
  ls_buf_free(&out);
  if (r && bad_rc != LS_EINVAL) { Py_DECREF(r); PyErr_SetString(PyExc_RuntimeError, "truncated record accepted"); return NULL; }
  return r;
}

static PyMethodDef module_methods[] = {
    {"setup", mod_setup, METH_VARARGS, "setup(current_task, Task, eager_aware, ...)"},
    {"setup_done", mod_setup_done, METH_VARARGS, "setup_done(finished_coro, suspended_coro)"},
    {"start", (PyCFunction)(void (*)(void))mod_start, METH_VARARGS | METH_KEYWORDS, "start the collector"},
    {"close_sessions", mod_close_sessions, METH_NOARGS, "close every open session"},
    {"stop", mod_stop, METH_VARARGS, "stop(timeout_ms): close sessions, flush, stop the threads"},
    {"flush", mod_flush, METH_VARARGS, "flush(timeout_ms) -> True when everything was delivered"},
    {"stats", mod_stats, METH_NOARGS, "counters of the collector"},
    {"patch_handle", mod_patch_handle, METH_VARARGS, "patch_handle(Handle, task_types)"},
    {"unpatch_handle", mod_unpatch_handle, METH_NOARGS, "restore Handle._run"},
    {"request_open", (PyCFunction)(void (*)(void))mod_request_open, METH_FASTCALL,
     "request_open(scope, send, name, header) -> Request: one ASGI request's session, open and current"},
    {"after_fork_child", mod_after_fork_child, METH_NOARGS, "reset in a forked child"},
    {"now_ns", mod_now_ns, METH_NOARGS, "the collector's monotonic clock"},
    {"new_session_id", mod_new_session_id, METH_NOARGS, "the id of a new session"},
    {"_frame_reading", mod_frame_reading, METH_NOARGS, "how await lines are read here (tests)"},
    {"_encode_selftest", mod_encode_selftest, METH_VARARGS, "encode sample events (tests)"},
    {NULL, NULL, 0, NULL}};


static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "loopscope._core",
                                        "loopscope's C collector", -1, module_methods, NULL, NULL, NULL, NULL};

#define INTERN(field, text) \
  if (!(G.field = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC PyInit__core(void) {
  if (PyType_Ready(&Session_Type) < 0 || PyType_Ready(&Factory_Type) < 0 || PyType_Ready(&SoonHook_Type) < 0 ||
      PyType_Ready(&StepCall_Type) < 0 || PyType_Ready(&Request_Type) < 0)
    return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (!m) return NULL;
  INTERN(s_cr_await, "cr_await");
  INTERN(s_gi_yieldfrom, "gi_yieldfrom");
  INTERN(s_cr_code, "cr_code");
  INTERN(s_gi_code, "gi_code");
  INTERN(s_cr_frame, "cr_frame");
  INTERN(s_gi_frame, "gi_frame");
  INTERN(s_state, "_state");
  INTERN(s_exception, "_exception");
  INTERN(s_qualname, "__qualname__");
  INTERN(s_name, "__name__");
  INTERN(s_get_name, "get_name");
  INTERN(s_cr_suspended, "cr_suspended");
  INTERN(s_loop, "loop");
  INTERN(s_call_at, "call_at");
  INTERN(s_time, "time");
  INTERN(s_get, "get");
  INTERN(s_run, "run");
  INTERN(s_call_soon, "call_soon");
  INTERN(s_type, "type");
  INTERN(s_method, "method");
  INTERN(s_path, "path");
  INTERN(s_headers, "headers");
  INTERN(s_websocket, "websocket");
  INTERN(s_scope_state, "state");
  INTERN(s_state_key, "loopscope_session");
  INTERN(s_response_start, "http.response.start");
  INTERN(s_get_coro, "get_coro");
  if (!(G.header_name = PyBytes_FromString("x-loopscope-session"))) return NULL;
  /* the getters behind coroutine.cr_await and generator.gi_yieldfrom (public PyGetSetDef
   * tables): calling them directly skips the attribute lookup on every level of an await chain */
  for (PyGetSetDef *d = PyCoro_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "cr_await") == 0 && !d->closure) G.get_cr_await = d->get;
  for (PyGetSetDef *d = PyGen_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "gi_yieldfrom") == 0 && !d->closure) G.get_gi_yieldfrom = d->get;
  G.created_state = G.completed_state = -128;
  if (!(G.active = PyList_New(0))) return NULL;
  if (!(G.task_types = PyTuple_New(0))) return NULL;
  if (!(G.wrapper_types = PyTuple_New(0))) return NULL;
  if (lag_init()) return NULL;
  if (!(G.done_cb = PyCFunction_New(&done_cb_def, NULL))) return NULL;
  Py_INCREF(&Session_Type);
  Py_INCREF(&Factory_Type);
  Py_INCREF(&SoonHook_Type);
  Py_INCREF(&StepCall_Type);
  if (PyModule_AddObject(m, "Session", (PyObject *)&Session_Type) ||
      PyModule_AddObject(m, "TaskFactory", (PyObject *)&Factory_Type) ||
      PyModule_AddObject(m, "SoonHook", (PyObject *)&SoonHook_Type) ||
      PyModule_AddObject(m, "StepCall", (PyObject *)&StepCall_Type)) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
