/* code.c — the code-object cache (names and library-ness of each coroutine's code, kept per code
 * object), the (code, offset) -> line cache, and reading suspended coroutines and generators on
 * each Python version without frame objects where it can. What is recorded from it is record.c's. */
#include "code.h"

/* The code cache: open addressing by code pointer, linear probing. Grows, never shrinks; emptied
 * at stop (codes_clear). */
static code_info **codes;
static size_t codes_cap, codes_len;

#define LINE_CACHE 4096
/* (code, instruction offset) -> line, for code objects held by the code cache */
static struct line_slot { PyObject *code; int lasti, line; } line_cache[LINE_CACHE];

/* the getset functions of coroutine.cr_await and generator.gi_yieldfrom, called directly (no
 * attribute lookup), NULL when not found at init */
static getter get_cr_await, get_gi_yieldfrom;

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
static int fast_frames; /* 3.11: the interpreter frame layout was confirmed at setup */
#endif

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

static code_info *codes_find(PyObject *code) {
  if (!codes_cap) return NULL;
  size_t j = ptr_hash(code) & (codes_cap - 1);
  while (codes[j]) {
    if (codes[j]->code == code) return codes[j];
    j = (j + 1) & (codes_cap - 1);
  }
  return NULL;
}

static int codes_grow(void) {
  size_t cap = codes_cap ? codes_cap * 2 : 256;
  code_info **n = PyMem_Calloc(cap, sizeof *n);
  if (!n) return -1;
  for (size_t i = 0; i < codes_cap; i++) {
    code_info *ci = codes[i];
    if (!ci) continue;
    size_t j = ptr_hash(ci->code) & (cap - 1);
    while (n[j]) j = (j + 1) & (cap - 1);
    n[j] = ci;
  }
  PyMem_Free(codes);
  codes = n;
  codes_cap = cap;
  return 0;
}

/* The info for code object code of coroutine/generator obj (frame given when known), or NULL. */
code_info *code_info_of(PyObject *code, PyObject *obj, PyObject *frame) {
  if (!code || !PyCode_Check(code)) return NULL;
  code_info *hit = codes_find(code);
  if (hit) return hit;
  if ((codes_len + 1) * 2 > codes_cap && codes_grow()) return NULL;
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
  size_t j = ptr_hash(code) & (codes_cap - 1);
  while (codes[j]) j = (j + 1) & (codes_cap - 1);
  codes[j] = ci;
  codes_len++;
  return ci;
}

void codes_clear(void) {
  for (size_t i = 0; i < codes_cap; i++) {
    code_info *ci = codes[i];
    if (!ci) continue;
    Py_DECREF(ci->code);
    Py_DECREF(ci->qualname);
    Py_DECREF(ci->fullname);
    PyMem_Free(ci);
  }
  PyMem_Free(codes);
  codes = NULL;
  codes_cap = codes_len = 0;
  memset(line_cache, 0, sizeof line_cache); /* its code pointers were only valid while cached */
}

/* ---- reading suspended coroutines and generators ----------------------------------------- */

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
  if (!fast_frames) return -1;
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

/* The code info of a coroutine or generator; its frame object is asked for only on a cache miss
 * (on 3.11+ asking creates a frame object, which is work and more for the GC to visit). */
code_info *info_of(PyObject *obj) {
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

code_info *coro_code_info(PyObject *coro) {
  if (!coro || !(PyCoro_CheckExact(coro) || PyGen_CheckExact(coro))) return NULL;
  return info_of(coro);
}

/* What a suspended coroutine/generator awaits (new ref or NULL, no exception set). */
static PyObject *yielded_from(PyObject *obj) {
  int coro = PyCoro_CheckExact(obj);
  getter get = coro ? get_cr_await : get_gi_yieldfrom;
  PyObject *next = get ? get(obj, NULL) : PyObject_GetAttr(obj, coro ? G.s_cr_await : G.s_gi_yieldfrom);
  if (!next) PyErr_Clear();
  return next;
}

/* Where the suspended await chain of coro waits: the user's frame is the innermost one outside
 * the stdlib and site-packages (or the innermost of all). Returns its code info (NULL when none),
 * its line in *line (0 when unknown) and what it awaits in *awaited (new ref or NULL). */
code_info *await_point(PyObject *coro, int *line, PyObject **awaited) {
  PyObject *obj = Py_NewRef(coro);
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
  *line = user ? suspended_line(user) : 0;
  *awaited = user_next;
  Py_XDECREF(user);
  return user_ci;
}

void code_init(void) {
  /* the getters behind coroutine.cr_await and generator.gi_yieldfrom (public PyGetSetDef
   * tables): calling them directly skips the attribute lookup on every level of an await chain */
  for (PyGetSetDef *d = PyCoro_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "cr_await") == 0 && !d->closure) get_cr_await = d->get;
  for (PyGetSetDef *d = PyGen_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "gi_yieldfrom") == 0 && !d->closure) get_gi_yieldfrom = d->get;
}

int code_check_frames(PyObject *suspended) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
  /* the 3.11 frame layout is used only when it gives the sample's code and line exactly */
  fast_frames = 0;
  if (PyCoro_CheckExact(suspended)) {
    PyObject *frame = PyObject_GetAttr(suspended, G.s_cr_frame);
    if (!frame) return -1;
    if (PyFrame_Check(frame)) {
      fast_frames = 1;
      PyObject *code;
      int lasti;
      PyCodeObject *fcode = PyFrame_GetCode((PyFrameObject *)frame);
      if (gen_position(suspended, &code, &lasti) != 0 || code != (PyObject *)fcode ||
          lasti < 0 || lasti != PyFrame_GetLasti((PyFrameObject *)frame) / (int)sizeof(_Py_CODEUNIT) ||
          PyCode_Addr2Line(fcode, lasti * (int)sizeof(_Py_CODEUNIT)) != PyFrame_GetLineNumber((PyFrameObject *)frame))
        fast_frames = 0;
      Py_XDECREF(fcode);
    }
    Py_DECREF(frame);
  }
#else
  (void)suspended;
#endif
  return 0;
}

const char *code_frame_reading(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return "PyUnstable_InterpreterFrame";
#elif PY_VERSION_HEX >= 0x030B0000
  return fast_frames ? "3.11 frame layout" : "frame objects";
#else
  return "PyFrameObject fields";
#endif
}
