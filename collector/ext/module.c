/* module.c — the CPython module loopscope._core: the state G, start/stop/flush/stats/setup/fork,
 * the method table and PyInit. Recording is the other ext/ files'; keeping, encoding and shipping
 * events is the C core's (collector/src/); settings and install order are loopscope/'s. */
#include "module.h"
#include "code.h"
#include "factory.h"
#include "lag.h"
#include "request.h"
#include "session.h"
#include "step.h"
#include "summary.h"
#include "tasks.h"
#include "utf8.h"
#include "uvloop.h"
#include "watchdog.h"

ls_module G;

/* ---- module functions -------------------------------------------------------------------- */

static int start_failure; /* set by _fail_next_start (tests) */

static PyObject *mod_start(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *kwlist[] = {"url", "token", "buffer_cap", "timeout_ms", "flush_interval_ms", "blocking_ms",
                           "max_tasks", "sample_rate_ms", "lib_prefixes", "session_var", "asyncio_prefix",
                           "meta", "get_running_loop", "hook_loop", "offline", "sink", "batches_per_post", NULL};
  const char *url, *token = NULL;
  unsigned long long cap, max_tasks;
  int timeout_ms, flush_ms;
  double blocking_ms, rate_ms;
  PyObject *prefixes, *var, *aprefix;
  const char *meta_static = "";
  PyObject *get_loop = NULL, *hook = NULL;
  int offline = 0;
  const char *sink = NULL;
  int per_post = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "szKiidKdO!OU|sOOpzi", kwlist, &url, &token, &cap, &timeout_ms, &flush_ms,
                                   &blocking_ms, &max_tasks, &rate_ms, &PyTuple_Type, &prefixes, &var, &aprefix,
                                   &meta_static, &get_loop, &hook, &offline, &sink, &per_post))
    return NULL;
  if (G.started) { PyErr_SetString(PyExc_RuntimeError, "loopscope is already installed"); return NULL; }
  /* Everything that can fail comes before G.started = 1, and a failure undoes what was started:
   * install() must be callable again after any error (not answer "already installed"). */
  /* the timeline page of a session is <server>/sessions/<id> (the server URL without its final /) */
  size_t ulen = strlen(url);
  while (ulen && url[ulen - 1] == '/') ulen--;
  PyMem_Free(G.url_prefix);
  if (!(G.url_prefix = PyMem_Malloc(ulen + sizeof "/sessions/"))) return PyErr_NoMemory();
  memcpy(G.url_prefix, url, ulen);
  memcpy(G.url_prefix + ulen, "/sessions/", sizeof "/sessions/");
  /* the fields every session's meta ends with (service, host, python): the core writes them */
  ls_config cfg = {url, token, (size_t)cap, flush_ms, timeout_ms, 0, offline, sink, 0, per_post, meta_static};
  int rc = start_failure == 1 ? LSC_ESYS : LSC_OK;
  if (!rc) {
    Py_BEGIN_ALLOW_THREADS
    rc = ls_collector_new(&cfg, &G.core);
    Py_END_ALLOW_THREADS
  }
  if (!rc && ++G.core_gen == 0) G.core_gen = 1;
  if (rc) {
    G.core = NULL;
    if (rc == LSC_EINVAL && sink)
      PyErr_Format(PyExc_OSError, "loopscope: cannot open %s for writing (or the server URL or token is invalid)", sink);
    else
      PyErr_Format(PyExc_RuntimeError, "loopscope: cannot start the sender for %s: %s%s", url, lsc_strerror(rc),
                   rc == LSC_EINVAL ? " (check the server URL and the token)" : "");
    return NULL;
  }
  G.block_ns = (uint64_t)(blocking_ms * 1e6);
  G.lag_ns = (uint64_t)(rate_ms * 1e6);
  if (G.lag_ns < 100000u) G.lag_ns = 100000u;
  G.max_tasks = max_tasks;
  Py_XSETREF(G.lib_prefixes, Py_NewRef(prefixes));
  Py_XSETREF(G.session_var, Py_NewRef(var));
  Py_XSETREF(G.asyncio_prefix, Py_NewRef(aprefix));
  Py_XSETREF(G.get_running_loop, Py_XNewRef(get_loop));
  Py_XSETREF(G.hook_loop, Py_XNewRef(hook));
  G.pid = (long)getpid();
  if (start_failure == 2 || watchdog_start()) {
    ls_collector *core = G.core;
    Py_BEGIN_ALLOW_THREADS
    ls_collector_free(core, 0);
    Py_END_ALLOW_THREADS
    G.core = NULL;
    PyErr_SetString(PyExc_RuntimeError, "loopscope: cannot start the watchdog thread (the process may have "
                                        "reached its thread limit: ulimit -u); nothing was installed");
    return NULL;
  }
  start_failure = 0;
  G.started = 1;
  Py_RETURN_NONE;
}

/* _fail_next_start(which): tests only — the next start() fails as if the sender (1) or the
 * watchdog (2) could not be started; 0 clears it. */
static PyObject *mod_fail_next_start(PyObject *mod, PyObject *arg) {
  (void)mod;
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred()) return NULL;
  start_failure = (int)v;
  Py_RETURN_NONE;
}

static PyObject *mod_flush(PyObject *mod, PyObject *args) {
  (void)mod;
  int timeout_ms = 5000, rc = LSC_OK;
  if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) return NULL;
  if (!G.started) Py_RETURN_TRUE;
  Py_BEGIN_ALLOW_THREADS
  rc = ls_collector_flush(G.core, timeout_ms);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(rc == LSC_OK);
}

/* Closes every session still open, so their events go out with the next flush. */
static PyObject *mod_close_sessions(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  while (G.active_head) {
    session_obj *s = (session_obj *)Py_NewRef((PyObject *)G.active_head);
    PyObject *r = session_close(s, NULL);
    Py_XDECREF(r);
    if (!r) PyErr_Clear();
    if (G.active_head == s) active_remove(s); /* never, as session_close unlinks it: no endless loop */
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
  Py_CLEAR(G.block_request);
  ls_collector *core = G.core;
  Py_BEGIN_ALLOW_THREADS
  ls_collector_free(core, timeout_ms);
  Py_END_ALLOW_THREADS
  G.core = NULL;
  G.started = 0;
  tab_clear();
  codes_clear();
  lag_reset();
  Py_CLEAR(G.hooked_loop); /* the next install hooks loops afresh */
  G.hooked_loop_no = 0;
  G.keep_orphan_blocks = 0;
  Py_RETURN_NONE;
}

static PyObject *mod_stats(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  if (!G.started) return PyDict_New();
  ls_stats st;
  ls_collector_stats(G.core, &st);
  return Py_BuildValue("{sKsKsKsKsKsKsKsisnsnsKsKsKsKsKsKsKsKsKsisKsKsKsKsKsK}", "events", (unsigned long long)st.events, "dropped",
                       (unsigned long long)st.dropped, "bytes_used", (unsigned long long)st.bytes_used,
                       "batches_sent", (unsigned long long)st.batches_sent, "batches_failed",
                       (unsigned long long)st.batches_failed, "posts_failed", (unsigned long long)st.posts_failed,
                       "retries", (unsigned long long)st.retries, "last_status", st.last_status, "tracked_tasks",
                       (Py_ssize_t)G.tab_len, "active_sessions", G.n_active, "sessions",
                       (unsigned long long)st.sessions, "sessions_pending", (unsigned long long)st.sessions_pending,
                       "sessions_sending", (unsigned long long)st.sessions_sending, "batches_saved",
                       (unsigned long long)st.batches_saved, "sink_errors", (unsigned long long)st.sink_errors,
                       "chunk_allocs", (unsigned long long)st.chunk_allocs,
                       "store_allocs", (unsigned long long)st.store_allocs,
                       "posts_sent", (unsigned long long)st.posts_sent,
                       "split_posts", (unsigned long long)st.split_posts, "multi_refused", st.multi_refused,
                       "strings_posts", (unsigned long long)st.strings_posts,
                       "strings_refused", (unsigned long long)st.strings_refused,
                       "records_posts", (unsigned long long)st.records_posts,
                       "records_refused", (unsigned long long)st.records_refused,
                       "shrunk_posts", (unsigned long long)st.shrunk_posts,
                       "post_cap", (unsigned long long)st.post_cap);
}

static PyObject *mod_after_fork_child(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  session_ids_after_fork(); /* the child's session ids must not repeat its parent's, installed or not */
  if (!G.started) Py_RETURN_NONE;
  /* Sessions, tasks and the threads of the parent stay behind; the child starts clean. */
  G.generation++;
  G.pid = (long)getpid();
  tab_clear();
  while (G.active_head) {
    session_obj *s = G.active_head;
    s->active = 0;
    s->ls = NULL;
    active_remove(s);
  }
  G.wd_running = 0;
  atomic_store(&G.hb_busy, 0);
  Py_CLEAR(G.block_stack);
  Py_CLEAR(G.block_request);
  lag_reset();
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
  return PyUnicode_FromString(code_frame_reading());
}

/* Which fields of the C Task setup found (tests: the name and the coroutine are read directly). */
static PyObject *mod_task_fields(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  return Py_BuildValue("{sOsO}", "name", G.task_name_off ? Py_True : Py_False, "coro",
                       G.task_coro_off ? Py_True : Py_False);
}

static PyObject *mod_now_ns(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  return PyLong_FromUnsignedLongLong(now_ns());
}

/* The offset of the one pointer field of obj holding v, 0 when none or several do. */
static Py_ssize_t field_holding(PyObject *obj, PyObject *v) {
  Py_ssize_t found = 0, hits = 0;
  for (Py_ssize_t off = (Py_ssize_t)sizeof(PyObject); off + (Py_ssize_t)sizeof(PyObject *) <= Py_TYPE(obj)->tp_basicsize;
       off += (Py_ssize_t)sizeof(PyObject *))
    if (*(PyObject **)((char *)obj + off) == v) { found = off; hits++; }
  return hits == 1 ? found : 0;
}

static PyObject *mod_setup(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *current_task, *task_cls, *fut, *fut_iter, *base_loop, *named, *name, *unnamed;
  int eager;
  if (!PyArg_ParseTuple(args, "OOpOOOOOO", &current_task, &task_cls, &eager, &fut, &fut_iter, &base_loop,
                        &named, &name, &unnamed))
    return NULL;
  Py_XSETREF(G.base_loop_type, Py_NewRef(base_loop));
  G.task_name_off = G.task_coro_off = 0;
  G.c_task_type = NULL;
  /* named: a C task created with the str `name`; unnamed: one with another name (not a default
   * one: that would take a number from asyncio's Task-<n> counter, visible to the program). The
   * name field is the one offset holding `name` in the first and an int or str in the second. */
  if (PyType_Check(task_cls) && Py_TYPE(named) == (PyTypeObject *)task_cls && Py_TYPE(unnamed) == Py_TYPE(named)) {
    Py_ssize_t found = field_holding(named, name);
    PyObject *other = found ? *(PyObject **)((char *)unnamed + found) : NULL;
    if (other && (PyLong_CheckExact(other) || PyUnicode_CheckExact(other))) {
      G.task_name_off = found;
      G.c_task_type = (PyTypeObject *)task_cls;
    }
  }
  /* the coroutine field: the one offset holding named.get_coro() in named, and unnamed's own
   * coroutine at the same offset in unnamed (a request adopts its task without get_coro's call) */
  if (G.c_task_type) {
    PyObject *c1 = PyObject_CallMethodNoArgs(named, G.s_get_coro), *c2 = PyObject_CallMethodNoArgs(unnamed, G.s_get_coro);
    Py_ssize_t found = c1 && c2 && c1 != Py_None && c1 != c2 ? field_holding(named, c1) : 0;
    if (found && *(PyObject **)((char *)unnamed + found) == c2) G.task_coro_off = found;
    Py_XDECREF(c1);
    Py_XDECREF(c2);
    PyErr_Clear();
  }
  /* a sample future and its __await__() iterator: the iterator's first field must be the future */
  if ((size_t)Py_TYPE(fut_iter)->tp_basicsize >= sizeof(PyObject) + sizeof(PyObject *) &&
      !PyGen_Check(fut_iter) && *(PyObject **)((char *)fut_iter + sizeof(PyObject)) == fut)
    G.future_iter_type = Py_TYPE(fut_iter);
  Py_XSETREF(G.current_task, Py_NewRef(current_task));
  Py_XSETREF(G.task_cls, Py_NewRef(task_cls));
  record_learn(task_cls, named);
  G.eager_aware = eager;
  Py_RETURN_NONE;
}

/* setup_done(samples): learns from sample coroutines and generators how this interpreter's are
 * read (code.c: frame offsets and states, each checked, else the public slow path). */
static PyObject *mod_setup_done(PyObject *mod, PyObject *samples) {
  (void)mod;
  if (code_learn_frames(samples)) return NULL;
  Py_RETURN_NONE;
}

/* Tests: _force_frame_fallback(True) makes the next setup_done learn nothing (the slow path). */
static PyObject *mod_force_frame_fallback(PyObject *mod, PyObject *on) {
  (void)mod;
  int r = PyObject_IsTrue(on);
  if (r < 0) return NULL;
  code_force_fallback(r);
  Py_RETURN_NONE;
}

/* What setup_done learnt (tests). */
static PyObject *mod_layout(PyObject *mod, PyObject *unused) {
  (void)mod; (void)unused;
  PyObject *r = code_layout();
  if (r && PyDict_SetItemString(r, "task_getters", record_direct_getters() ? Py_True : Py_False)) Py_CLEAR(r);
  return r;
}

/* For tests of the C core: encode one event of each kind into JSON without a server. */
static PyObject *mod_encode_selftest(PyObject *mod, PyObject *args) {
  (void)mod;
  const char *s;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "s#", &s, &n)) return NULL;
  ls_frame fr[2] = {{{"a.py", 4, 0}, {"f", 1, 0}, {"x()", 3, 0}, 7}, {{s, (size_t)n, 0}, {"g\"", 2, 0}, {"\x01", 1, 0}, 9}};
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
  ls_wstate ws = {0};
  for (int i = 0; i < 7; i++) {
    unsigned char tmp[16384];
    if (ls_record_bound(&evs[i]) > sizeof tmp) continue;
    ls_buf_append(&recs, tmp, ls_record_write(tmp, &evs[i], &ws));
  }
  int first = 1;
  ls_rstate rs = {0};
  ls_buf_append(&out, "[", 1);
  int rc = ls_encode_records(&out, &rs, (const unsigned char *)recs.data, recs.len, &first, 0, NULL, NULL);
  ls_buf_append(&out, "]", 1);
  rs = (ls_rstate){0};
  int bad_rc = ls_encode_records(&out, &rs, (const unsigned char *)recs.data, recs.len > 3 ? 3 : recs.len, &first, 0,
                                 NULL, NULL);
  PyObject *r = rc || out.failed ? NULL : PyUnicode_DecodeUTF8(out.data, (Py_ssize_t)out.len - 0, "strict");
  if (r) {
    /* drop what the deliberately truncated second call may have appended */
    Py_ssize_t close = PyUnicode_FindChar(r, ']', 0, PyUnicode_GET_LENGTH(r), -1);
    Py_SETREF(r, PyUnicode_Substring(r, 0, close + 1));
  } else if (!PyErr_Occurred()) {
    PyErr_SetString(PyExc_RuntimeError, "encode failed");
  }
  ls_buf_free(&recs);
  ls_buf_free(&out);
  if (r && bad_rc != LSC_EINVAL) { Py_DECREF(r); PyErr_SetString(PyExc_RuntimeError, "truncated record accepted"); return NULL; }
  return r;
}

/* The verdict of common/utf8.c, the validator the server's ingest applies, on raw bytes: the
 * tests hold it against CPython's strict decoder over tests/data/utf8_cases.txt. */
static PyObject *mod_utf8_valid(PyObject *mod, PyObject *arg) {
  (void)mod;
  Py_buffer v;
  if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE)) return NULL;
  int ok = utf8_valid((const char *)v.buf, (size_t)v.len);
  PyBuffer_Release(&v);
  return PyBool_FromLong(ok);
}

static PyMethodDef module_methods[] = {
    {"setup", mod_setup, METH_VARARGS, "setup(current_task, Task, eager_aware, ...)"},
    {"setup_done", mod_setup_done, METH_O, "setup_done([(kind, coro, line), ...]): learn frame reading"},
    {"start", (PyCFunction)(void (*)(void))mod_start, METH_VARARGS | METH_KEYWORDS, "start the collector"},
    {"close_sessions", mod_close_sessions, METH_NOARGS, "close every open session"},
    {"stop", mod_stop, METH_VARARGS, "stop(timeout_ms): close sessions, flush, stop the threads"},
    {"flush", mod_flush, METH_VARARGS, "flush(timeout_ms) -> True when everything was delivered"},
    {"stats", mod_stats, METH_NOARGS, "counters of the collector"},
    {"patch_handle", mod_patch_handle, METH_VARARGS, "patch_handle(Handle, task_types)"},
    {"unpatch_handle", mod_unpatch_handle, METH_NOARGS, "restore Handle._run"},
    {"request_open", (PyCFunction)(void (*)(void))mod_request_open, METH_FASTCALL,
     "request_open(scope, send, name, header[, fraction]) -> Request: one ASGI request's session, open and current"},
    {"after_fork_child", mod_after_fork_child, METH_NOARGS, "reset in a forked child"},
    {"now_ns", mod_now_ns, METH_NOARGS, "the collector's monotonic clock"},
    {"summary_total", mod_summary_total, METH_VARARGS,
     "summary_total(on): every session keeps a summary, added up at close; summary_total() -> dict or None"},
    {"new_session_id", mod_new_session_id, METH_NOARGS, "the id of a new session"},
    {"watch_request_code", mod_watch_request_code, METH_O,
     "watch_request_code(code): a frame of this code on a blocked stack names the request (its scope)"},
    {"keep_orphan_blocks", mod_keep_orphan_blocks, METH_O,
     "keep_orphan_blocks(on): a block of the loop no session takes as its own gets a session of its own"},
    {"_fail_next_start", mod_fail_next_start, METH_O, "make the next start() fail (tests)"},
    {"_frame_reading", mod_frame_reading, METH_NOARGS, "how await lines are read here (tests)"},
    {"_task_fields", mod_task_fields, METH_NOARGS, "which C Task fields are read directly (tests)"},
    {"_layout", mod_layout, METH_NOARGS, "what setup_done learnt about coroutines (tests)"},
    {"_force_frame_fallback", mod_force_frame_fallback, METH_O, "make setup_done learn nothing (tests)"},
    {"_encode_selftest", mod_encode_selftest, METH_VARARGS, "encode sample events (tests)"},
    {"_utf8_valid", mod_utf8_valid, METH_O, "_utf8_valid(bytes): common/utf8.c's verdict (tests)"},
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
  INTERN(s_source_traceback, "_source_traceback");
  if (!(G.header_name = PyBytes_FromString("x-loopscope-session"))) return NULL;
  code_init();
  if (step_init()) return NULL;
  if (lag_init()) return NULL;
  if (factory_init()) return NULL;
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
  /* how setup.py built this module: "pgo" (from pgo_train.py's profile) or "plain" (it fell back,
   * or was asked to: LOOPSCOPE_PGO=0, coverage, sanitizers); the project's CI asks for "pgo" */
#ifdef LS_BUILD_PGO
  if (PyModule_AddStringConstant(m, "BUILD", "pgo")) { Py_DECREF(m); return NULL; }
#else
  if (PyModule_AddStringConstant(m, "BUILD", "plain")) { Py_DECREF(m); return NULL; }
#endif
  return m;
}
