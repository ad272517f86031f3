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

#if PY_VERSION_HEX >= 0x030C0000
/* the getset functions of coroutine.cr_code and generator.gi_code (the slow path's code) */
static getter get_cr_code, get_gi_code;
#endif

frame_layout FL;
/* Interpreter frames are read in place, without frame objects: on 3.10 through PyFrameObject's
 * fields, on 3.11 through its layout, on 3.12+ through PyUnstable_InterpreterFrame_* - each only
 * after setup_done checked it against frame objects of sample coroutines. 0: the slow path. */
static int fast_frames;
static int force_fallback; /* tests: code_learn_frames learns nothing */
#if PY_VERSION_HEX >= 0x030E0000
/* 3.14+: the coroutine/generator struct is opaque; the offset of its interpreter frame was found
 * in samples (the word holding their code object) and verified at setup_done. */
static Py_ssize_t iframe_off;
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

LS_HOT static code_info *codes_find(PyObject *code) {
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

LS_COLD void code_sids_fill(code_info *ci) {
  ls_collector *c = G.core;
  ci->sid_file = ls_collector_string(c, ci->file, (size_t)ci->nfile);
  ci->sid_func = ls_collector_string(c, ci->func, (size_t)ci->nfunc);
  ci->sid_qual = ls_collector_string(c, ci->qual, (size_t)ci->nqual);
  ci->sid_full = ls_collector_string(c, ci->full, (size_t)ci->nfull);
  ci->sid_gen = G.core_gen;
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

#if PY_VERSION_HEX >= 0x030E0000
/* 3.14+: the interpreter frame lives inside the coroutine/generator object, at the offset learnt at
 * setup (only called when fast_frames says it was verified). */
static inline struct _PyInterpreterFrame *iframe_of(PyObject *obj) {
  return (struct _PyInterpreterFrame *)(void *)((char *)obj + iframe_off);
}
#elif PY_VERSION_HEX >= 0x030C0000
/* 3.12-3.13: the interpreter frame lives inside the coroutine/generator object (public struct field
 * cr_iframe/gi_iframe) and PyUnstable_InterpreterFrame_* read it without making a frame object. */
static inline struct _PyInterpreterFrame *iframe_of(PyObject *obj) {
  return PyCoro_CheckExact(obj) ? (struct _PyInterpreterFrame *)((PyCoroObject *)obj)->cr_iframe
                                : (struct _PyInterpreterFrame *)((PyGenObject *)obj)->gi_iframe;
}
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* 3.11 has no API to read an interpreter frame without making a frame object (which also raises an
 * audit event per access). Its layout is fixed for 3.11.x (Include/internal/pycore_frame.h) and is
 * checked against the frame objects of sample coroutines in setup_done before it is used. */
typedef struct {
  PyObject *f_func, *f_globals, *f_builtins, *f_locals;
  PyCodeObject *f_code;
  PyObject *frame_obj;
  void *previous;
  _Py_CODEUNIT *prev_instr;
} iframe311;
#endif

#if PY_VERSION_HEX >= 0x030C0000
/* The code object of a coroutine/generator through its cr_code/gi_code attribute: a new ref, or
 * NULL with no exception set. */
static PyObject *code_attr(PyObject *obj) {
  int coro = PyCoro_CheckExact(obj);
  getter get = coro ? get_cr_code : get_gi_code;
  PyObject *code = get ? get(obj, NULL) : PyObject_GetAttr(obj, coro ? G.s_cr_code : G.s_gi_code);
  if (!code) PyErr_Clear();
  else if (!PyCode_Check(code)) Py_CLEAR(code);
  return code;
}
#endif

/* The code object of a coroutine/generator, borrowed (it holds it). */
static PyObject *gen_code(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030E0000
  /* the word find_iframe verified holds the code (a _PyStackRef: tags in its low bits), read as
   * PyUnstable_InterpreterFrame_GetCode reads it but without its call and the reference it makes
   * and this dropped at once: ~7 times a task, the 3.14 async tree's largest caller of Py_XDECREF */
  if (fast_frames) {
    uintptr_t w;
    memcpy(&w, (const char *)obj + iframe_off, sizeof w);
    return (PyObject *)(w & ~(uintptr_t)3);
  }
  PyObject *code = code_attr(obj);
  Py_XDECREF(code);
  return code;
#elif PY_VERSION_HEX >= 0x030C0000
  /* a new reference, dropped at once: the frame holds the code while the object lives */
  PyObject *code = fast_frames ? PyUnstable_InterpreterFrame_GetCode(iframe_of(obj)) : code_attr(obj);
  Py_XDECREF(code);
  return code;
#else
  return (PyObject *)((PyGenObject *)obj)->gi_code;
#endif
}

/* (code, instruction index) of a suspended coroutine/generator read from its frame without a
 * frame object; 0, or -1 when it cannot be (layout not confirmed; 3.10: no frame). */
static int gen_position(PyObject *obj, PyObject **code, int *lasti) {
  if (!fast_frames) return -1;
#if PY_VERSION_HEX >= 0x030C0000
  struct _PyInterpreterFrame *f = iframe_of(obj);
  *code = gen_code(obj);
  *lasti = PyUnstable_InterpreterFrame_GetLasti(f);
  return 0;
#elif PY_VERSION_HEX >= 0x030B0000
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

/* Line of a suspended coroutine/generator whose code info is ci (or NULL): (code, instruction
 * offset) -> line is cached, first in ci (its last suspension), then in the shared line cache. */
LS_HOT static int suspended_line(PyObject *obj, code_info *ci) {
  PyObject *code;
  int lasti;
  if (gen_position(obj, &code, &lasti) == 0) {
    if (ci && ci->code == code && ci->last_line && ci->last_lasti == lasti) return ci->last_line;
    /* the key's code object is kept alive by the code cache (every user frame passes there) */
    struct line_slot *slot = &line_cache[(ptr_hash(code) ^ (size_t)lasti * 31u) & (LINE_CACHE - 1)];
    int line;
    if (slot->code == code && slot->lasti == lasti) {
      line = slot->line;
    } else {
#if PY_VERSION_HEX >= 0x030C0000
      line = PyUnstable_InterpreterFrame_GetLine(iframe_of(obj));
#else
      line = PyCode_Addr2Line((PyCodeObject *)code, lasti * (int)sizeof(_Py_CODEUNIT));
#endif
      if (codes_find(code)) { slot->code = code; slot->lasti = lasti; slot->line = line; }
    }
    if (ci && ci->code == code) { ci->last_lasti = lasti; ci->last_line = line; }
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
LS_HOT code_info *info_of(PyObject *obj) {
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

LS_HOT code_info *coro_code_info(PyObject *coro) {
  if (!coro || !(PyCoro_CheckExact(coro) || PyGen_CheckExact(coro))) return NULL;
  return info_of(coro);
}

/* What a suspended coroutine/generator awaits (new ref or NULL, no exception set). */
LS_HOT static PyObject *yielded_from(PyObject *obj) {
  int coro = PyCoro_CheckExact(obj);
  getter get = coro ? get_cr_await : get_gi_yieldfrom;
  PyObject *next = get ? get(obj, NULL) : PyObject_GetAttr(obj, coro ? G.s_cr_await : G.s_gi_yieldfrom);
  if (!next) PyErr_Clear();
  return next;
}

/* Where the suspended await chain of coro waits: the user's frame is the innermost one outside
 * the stdlib and site-packages (or the innermost of all). Returns its code info (NULL when none),
 * its line in *line (0 when unknown) and what it awaits in *awaited (new ref or NULL).
 *
 * One strong reference per level of the chain, held in held[] until the end, and the roles (the
 * user's level, the innermost) are indices into it: taking a reference for each role a level
 * played, as this did, cost ~20 decrefs a step (callgrind, 3.13's request loop: 157 of the 635
 * instructions a recorded step and await added). */
#define AWAIT_DEPTH_MAX 64
LS_HOT code_info *await_point(PyObject *coro, int *line, PyObject **awaited) {
  PyObject *held[AWAIT_DEPTH_MAX + 1]; /* held[i + 1]: what level i awaits (or NULL) */
  code_info *ci_at[AWAIT_DEPTH_MAX];
  int n = 0, user = -1; /* levels 0 .. n - 1 have code info */
  held[0] = Py_NewRef(coro);
  while (n < AWAIT_DEPTH_MAX && held[n] && (PyCoro_CheckExact(held[n]) || PyGen_CheckExact(held[n]))) {
    code_info *ci = info_of(held[n]);
    if (!ci) break;
    ci_at[n] = ci;
    if (!ci->is_lib) user = n;
    held[n + 1] = yielded_from(held[n]);
    n++;
  }
  int k = user >= 0 ? user : n - 1; /* only library frames: report the innermost one */
  code_info *at = NULL;
  *line = 0;
  *awaited = NULL;
  if (k >= 0) {
    at = ci_at[k];
    *line = suspended_line(held[k], at);
    *awaited = Py_XNewRef(held[k + 1]);
  }
  for (int i = 0; i <= n; i++) Py_XDECREF(held[i]);
  return at;
}

void code_init(void) {
  /* the getters behind coroutine.cr_await and generator.gi_yieldfrom (public PyGetSetDef
   * tables): calling them directly skips the attribute lookup on every level of an await chain */
  for (PyGetSetDef *d = PyCoro_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "cr_await") == 0 && !d->closure) get_cr_await = d->get;
  for (PyGetSetDef *d = PyGen_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "gi_yieldfrom") == 0 && !d->closure) get_gi_yieldfrom = d->get;
#if PY_VERSION_HEX >= 0x030C0000
  for (PyGetSetDef *d = PyCoro_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "cr_code") == 0 && !d->closure) get_cr_code = d->get;
  for (PyGetSetDef *d = PyGen_Type.tp_getset; d && d->name; d++)
    if (strcmp(d->name, "gi_code") == 0 && !d->closure) get_gi_code = d->get;
#endif
}


/* ---- learning how to read coroutines, from samples (setup_done) -------------------------- */

#define SAMPLES_MAX 16
typedef struct samples {
  PyObject *obj[SAMPLES_MAX]; /* borrowed from the list given to code_learn_frames */
  int kind[SAMPLES_MAX];      /* CORO_CREATED, CORO_SUSPENDED, CORO_FINISHED */
  int line[SAMPLES_MAX];      /* where a suspended sample waits, 0 when not given */
  int n;
} samples;

static int samples_parse(PyObject *list, samples *sm) {
  sm->n = 0;
  if (!PyList_Check(list)) {
    PyErr_SetString(PyExc_TypeError, "setup_done: samples must be a list of (kind, coroutine, line)");
    return -1;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list) && sm->n < SAMPLES_MAX; i++) {
    PyObject *it = PyList_GET_ITEM(list, i);
    const char *kind;
    PyObject *obj;
    int line;
    if (!PyTuple_Check(it) || !PyArg_ParseTuple(it, "sOi", &kind, &obj, &line)) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "setup_done: a sample is (kind, coroutine, line)");
      return -1;
    }
    int k = strcmp(kind, "created") == 0 ? CORO_CREATED : strcmp(kind, "suspended") == 0 ? CORO_SUSPENDED
          : strcmp(kind, "finished") == 0 ? CORO_FINISHED : CORO_UNKNOWN;
    if (k == CORO_UNKNOWN || !(PyCoro_CheckExact(obj) || PyGen_CheckExact(obj))) {
      PyErr_Format(PyExc_ValueError, "setup_done: bad sample %R", it);
      return -1;
    }
    sm->obj[sm->n] = obj;
    sm->kind[sm->n] = k;
    sm->line[sm->n] = line;
    sm->n++;
  }
  return 0;
}

#if PY_VERSION_HEX >= 0x030B0000
/* Whether reading obj's frame in place (gen_position, and on 3.12+ the line) gives what its frame
 * object says, and the line given when not 0. For samples not finished, with fast_frames set. */
static int frame_agrees(PyObject *obj, int line) {
  PyObject *fo = PyObject_GetAttr(obj, PyCoro_CheckExact(obj) ? G.s_cr_frame : G.s_gi_frame);
  if (!fo) { PyErr_Clear(); return 0; }
  int ok = 0;
  if (PyFrame_Check(fo)) {
    PyFrameObject *f = (PyFrameObject *)fo;
    PyCodeObject *fcode = PyFrame_GetCode(f);
    int fline = PyFrame_GetLineNumber(f), flasti = PyFrame_GetLasti(f);
    PyObject *code;
    int lasti;
    if (gen_position(obj, &code, &lasti) == 0 && code == (PyObject *)fcode && (line == 0 || line == fline)) {
#if PY_VERSION_HEX >= 0x030C0000
      ok = (lasti == flasti || (lasti < 0 && flasti < 0)) &&
           PyUnstable_InterpreterFrame_GetLine(iframe_of(obj)) == fline;
#else
      ok = lasti >= 0 && lasti == flasti / (int)sizeof(_Py_CODEUNIT) &&
           PyCode_Addr2Line(fcode, lasti * (int)sizeof(_Py_CODEUNIT)) == fline;
#endif
    }
    Py_DECREF(fcode);
  }
  Py_DECREF(fo);
  return ok;
}
#endif

#if PY_VERSION_HEX >= 0x030E0000
/* 3.14+: the offset of the interpreter frame inside coroutines and generators, the one word offset
 * holding the sample's own code object in every sample not finished (the frame's first field,
 * f_executable, is a _PyStackRef: a pointer whose low bits may carry tags, compared masked). The
 * samples must show at least two code objects. 0 when there is no such offset, or more than one. */
static Py_ssize_t find_iframe(const samples *sm) {
  PyObject *code[SAMPLES_MAX] = {0};
  Py_ssize_t end = PY_SSIZE_T_MAX, found = 0;
  int hits = 0, used = 0, distinct = 0;
  for (int i = 0; i < sm->n; i++) {
    if (sm->kind[i] == CORO_FINISHED) continue;
    if (!(code[i] = code_attr(sm->obj[i]))) goto done;
    if (used && code[i] != code[0]) distinct = 1;
    used++;
    if (Py_TYPE(sm->obj[i])->tp_basicsize < end) end = Py_TYPE(sm->obj[i])->tp_basicsize;
  }
  if (used < 3 || !distinct) goto done;
  for (Py_ssize_t off = (Py_ssize_t)sizeof(PyObject); off + (Py_ssize_t)sizeof(uintptr_t) <= end;
       off += (Py_ssize_t)sizeof(void *)) {
    int all = 1;
    for (int i = 0; i < sm->n && all; i++) {
      if (!code[i]) continue;
      uintptr_t w;
      memcpy(&w, (const char *)sm->obj[i] + off, sizeof w);
      all = (w & ~(uintptr_t)3) == (uintptr_t)code[i];
    }
    if (all) { found = off; hits++; }
  }
done:
  for (int i = 0; i < sm->n; i++) Py_XDECREF(code[i]);
  return hits == 1 ? found : 0;
}
#endif

#if PY_VERSION_HEX >= 0x030B0000
/* The frame state: the one byte offset in [from, to) where all created samples show one value and
 * no value is shown by samples of two kinds (so a flag byte, 0 or 1, cannot pass: created and
 * suspended objects share its value). Fills FL with the values the samples showed. */
static void learn_states(const samples *sm, Py_ssize_t from, Py_ssize_t to) {
  Py_ssize_t found = 0;
  int hits = 0;
  for (Py_ssize_t off = from; off < to; off++) {
    unsigned char kind_of[256] = {0};
    int have[4] = {0}, created = -1, ok = 1;
    for (int i = 0; i < sm->n && ok; i++) {
      unsigned char v = *((const unsigned char *)sm->obj[i] + off);
      int k = sm->kind[i];
      if (kind_of[v] && kind_of[v] != k) ok = 0;
      if (k == CORO_CREATED && created >= 0 && created != v) ok = 0;
      if (k == CORO_CREATED) created = v;
      kind_of[v] = (unsigned char)k;
      have[k] = 1;
    }
    if (ok && have[CORO_CREATED] && have[CORO_SUSPENDED] && have[CORO_FINISHED]) { found = off; hits++; }
  }
  if (hits != 1) return;
  for (int i = 0; i < sm->n; i++) FL.cls[*((const unsigned char *)sm->obj[i] + found)] = (unsigned char)sm->kind[i];
  FL.state_off = found;
}
#endif

int code_learn_frames(PyObject *list) {
  samples sm;
  if (samples_parse(list, &sm)) return -1;
  memset(&FL, 0, sizeof FL);
  fast_frames = 0;
#if PY_VERSION_HEX >= 0x030E0000
  iframe_off = 0;
#endif
  if (force_fallback) return 0;
#if PY_VERSION_HEX >= 0x030E0000
  iframe_off = find_iframe(&sm);
  fast_frames = iframe_off != 0;
#else
  fast_frames = 1;
#endif
#if PY_VERSION_HEX >= 0x030B0000
  /* frames are read in place only where that agrees with the frame object of every sample not
   * finished (3.11: suspended ones; the created frame's instruction index is not comparable) */
  for (int i = 0; i < sm.n && fast_frames; i++) {
    if (sm.kind[i] == CORO_FINISHED) continue;
    if (PY_VERSION_HEX < 0x030C0000 && sm.kind[i] == CORO_CREATED) continue;
    if (!frame_agrees(sm.obj[i], sm.line[i])) fast_frames = 0;
  }
#endif
#if PY_VERSION_HEX >= 0x030E0000
  /* the frame state is before the frame; without a verified frame offset nothing is trusted */
  if (fast_frames) learn_states(&sm, (Py_ssize_t)sizeof(PyObject), iframe_off);
  else iframe_off = 0;
#elif PY_VERSION_HEX >= 0x030B0000
  /* a public field here, but its values still come from the samples */
  if (offsetof(PyGenObject, gi_frame_state) == offsetof(PyCoroObject, cr_frame_state))
    learn_states(&sm, (Py_ssize_t)offsetof(PyCoroObject, cr_frame_state),
                 (Py_ssize_t)offsetof(PyCoroObject, cr_frame_state) + 1);
#endif
  return 0;
}

void code_force_fallback(int on) { force_fallback = on; }

const char *code_frame_reading(void) {
  if (!fast_frames) return "frame objects";
#if PY_VERSION_HEX >= 0x030E0000
  return "learnt offsets, verified";
#elif PY_VERSION_HEX >= 0x030C0000
  return "PyUnstable_InterpreterFrame";
#elif PY_VERSION_HEX >= 0x030B0000
  return "3.11 frame layout";
#else
  return "PyFrameObject fields";
#endif
}

/* {"frames": code_frame_reading(), "iframe_offset": int or None, "state_offset": int or None,
 *  "created"/"suspended"/"finished": the frame state values learnt for each, as signed bytes} */
PyObject *code_layout(void) {
  PyObject *lists[4] = {NULL, PyList_New(0), PyList_New(0), PyList_New(0)};
  PyObject *r = NULL, *ioff = NULL, *soff = NULL;
  if (!lists[1] || !lists[2] || !lists[3]) goto done;
  for (int v = -128; v < 128; v++) {
    int k = FL.cls[(unsigned char)(signed char)v];
    if (!FL.state_off || !k) continue;
    PyObject *n = PyLong_FromLong(v);
    if (!n || PyList_Append(lists[k], n)) { Py_XDECREF(n); goto done; }
    Py_DECREF(n);
  }
#if PY_VERSION_HEX >= 0x030E0000
  ioff = iframe_off ? PyLong_FromSsize_t(iframe_off) : Py_NewRef(Py_None);
#elif PY_VERSION_HEX >= 0x030C0000
  ioff = fast_frames ? PyLong_FromSsize_t((Py_ssize_t)offsetof(PyCoroObject, cr_iframe)) : Py_NewRef(Py_None);
#else
  ioff = Py_NewRef(Py_None);
#endif
  soff = FL.state_off ? PyLong_FromSsize_t(FL.state_off) : Py_NewRef(Py_None);
  if (!ioff || !soff) goto done;
  r = Py_BuildValue("{sssOsOsOsOsO}", "frames", code_frame_reading(), "iframe_offset", ioff, "state_offset", soff,
                    "created", lists[CORO_CREATED], "suspended", lists[CORO_SUSPENDED], "finished",
                    lists[CORO_FINISHED]);
done:
  Py_XDECREF(ioff);
  Py_XDECREF(soff);
  for (int i = 1; i < 4; i++) Py_XDECREF(lists[i]);
  return r;
}
