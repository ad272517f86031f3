/* request.c — the per-request work of loopscope.asgi.LoopscopeMiddleware, in C: a tiny request
 * would otherwise pay for every Python line around it. Opens the request's session (named from the
 * scope), makes it the context's session, stands in for the app's `send` (to see the response
 * status and add the X-Loopscope-Session header), and ends the request's task with that status
 * when the session closes. Recording itself is record.c's. */
#include "request.h"
#include "record.h"
#include "session.h"
#include "tasks.h"
#include "share.h"

#include <stdio.h>

/* ---- ASGI requests ---------------------------------------------------------------------------
 * What LoopscopeMiddleware does per request, in C, because a tiny request pays for every Python
 * line around it: name the session from the scope, open it, make it the context's session, hook
 * the running loop once, adopt the request's task, put the request in scope["state"], and stand
 * in for `send` to see the response status and add the X-Loopscope-Session header. At close the
 * request's task ends in its session (it is the server's, e.g. uvicorn's run_asgi, and runs on
 * after the app returns): ok, error with the app's exception, or cancelled, with the status. */

/* A Request is its session: a subtype of Session, the one object a request makes for both (the
 * context variable holds it, so the factory finds the session there as for any other). */
typedef struct {
  session_obj s;       /* first: a request_obj is a session_obj */
  PyObject *token;     /* the contextvar token until close(), or NULL */
  PyObject *send;      /* the server's send callable */
  PyObject *header;    /* (b"x-loopscope-session", url bytes), or NULL: no header added */
  PyObject *task;      /* strong: the request's task adopted as the session's root, until close(),
                        * or NULL when it was not adopted */
  int status;          /* the status of http.response.start once sent; 0 before; -1 when none is
                        * looked for (a WebSocket: its handshake answer is not the app's response) */
  int ws;              /* the scope is a WebSocket's (request_open found it): its route is "WS ..." */
  vectorcallfunc vectorcall;
} request_obj;

/* "status", interned on first use (the module's interned names are module.c's; this one is only
 * request.c's). Lives as long as the interpreter. */
static PyObject *s_status;

static PyObject *request_send(request_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* scope[key] (borrowed-like: new ref), or NULL with no exception when missing. */
static PyObject *scope_get(PyObject *scope, PyObject *key) {
  if (PyDict_CheckExact(scope)) return Py_XNewRef(PyDict_GetItemWithError(scope, key));
  PyObject *v = PyObject_GetItem(scope, key);
  if (!v && PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
  return v;
}

/* Appends str v (UTF-8) to buf at *n, within cap; other types are left out. */
static void name_put(char *buf, size_t *n, size_t cap, PyObject *v) {
  ls_str u = str_of(v);
  if (!u.p) return;
  size_t k = u.n < cap - *n ? u.n : cap - *n;
  memcpy(buf + *n, u.p, k);
  *n += k;
}

/* 1 for a WebSocket scope, 0 for another, -1 with an exception set. */
static int scope_is_websocket(PyObject *scope) {
  PyObject *type = scope_get(scope, G.s_type);
  if (!type) return PyErr_Occurred() ? -1 : 0;
  int ws = str_is(type, G.s_websocket);
  Py_DECREF(type);
  return ws;
}

/* "GET /path" or "WS /path" (loopscope.asgi.request_name) into buf, and *ws whether the scope is a
 * WebSocket's; its length, or -1 with an exception set. The session meta keeps at most 1024 bytes
 * of a name anyway. */
static Py_ssize_t request_name_of(PyObject *scope, char *buf, size_t cap, int *is_ws) {
  PyObject *type = scope_get(scope, G.s_type), *path = NULL, *method = NULL;
  Py_ssize_t r = -1;
  size_t n = 0;
  if (!type && PyErr_Occurred()) return -1;
  if (!(path = scope_get(scope, G.s_path)) && PyErr_Occurred()) goto out;
  int ws = str_is(type, G.s_websocket);
  if (!ws && !(method = scope_get(scope, G.s_method)) && PyErr_Occurred()) goto out;
  *is_ws = ws;
  if (ws) { memcpy(buf, "WS", 2); n = 2; }
  else if (method) name_put(buf, &n, cap, method);
  else { memcpy(buf, "GET", 3); n = 3; }
  if (n < cap) buf[n++] = ' ';
  if (path) name_put(buf, &n, cap, path);
  r = (Py_ssize_t)n;
out:
  Py_XDECREF(type);
  Py_XDECREF(path);
  Py_XDECREF(method);
  return r;
}

PyObject *request_name_str(PyObject *scope) {
  char buf[1024];
  int ws;
  Py_ssize_t n = request_name_of(scope, buf, sizeof buf, &ws);
  PyObject *s = n < 0 ? NULL : PyUnicode_DecodeUTF8(buf, n, "replace");
  if (!s) PyErr_Clear();
  return s;
}

/* Ends the request's session and gives the context its previous session back; the request's task
 * ends in it with state and exc (LS_S_*, the exception or NULL) and the status sent. Idempotent. */
static int request_end(request_obj *self, int state, PyObject *exc) {
  int rc = 0;
  if (self->token) {
    if (PyContextVar_Reset(G.session_var, self->token) < 0) {
      if (PyErr_ExceptionMatches(PyExc_ValueError)) PyErr_Clear(); /* ended in another context */
      else rc = -1;
    }
    Py_CLEAR(self->token);
  }
  session_root_end root = {self->task, state, exc, self->status > 0 ? self->status : 0};
  PyObject *r = session_close_ending(&self->s, self->task ? &root : NULL);
  if (!r) rc = -1;
  Py_XDECREF(r);
  Py_CLEAR(self->task);
  return rc;
}

/* The share a request was drawn in (a float in [0, 1], checked by the middleware) in millionths as
 * the meta carries it (share_ppm: the server rounds meta.fraction with the same function); -1 with
 * an exception set when it is not a number. */
static int64_t fraction_ppm_of(PyObject *v) {
  double f = PyFloat_AsDouble(v);
  if (f == -1.0 && PyErr_Occurred()) return -1;
  return share_ppm(f);
}

/* request_open(scope, send, name, header[, fraction]) -> Request: the session is open and current.
 * name None: named from the scope. header: whether send adds the X-Loopscope-Session header.
 * fraction: the share of requests the middleware draws, when below 1 (its meta says so). */
PyObject *mod_request_open(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  (void)mod;
  if (nargs != 4 && nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "request_open(scope, send, name, header[, fraction])");
    return NULL;
  }
  int64_t ppm = nargs == 5 ? fraction_ppm_of(args[4]) : 0;
  if (ppm < 0) return NULL;
  if (!G.started || !G.get_running_loop) { PyErr_SetString(PyExc_RuntimeError, "loopscope is not installed"); return NULL; }
  PyObject *scope = args[0], *name = args[2];
  int header = PyObject_IsTrue(args[3]);
  if (header < 0) return NULL;
  PyObject *loop = PyObject_CallNoArgs(G.get_running_loop);
  if (!loop) return NULL;
  /* zeroed (the session's fields too) and tracked */
  request_obj *req = (request_obj *)PyType_GenericAlloc(&Request_Type, 0);
  if (!req) { Py_DECREF(loop); return NULL; }
  session_obj *sess = &req->s;
  req->send = Py_NewRef(args[1]);
  req->vectorcall = (vectorcallfunc)request_send;
  char nbuf[1024];
  ls_str nm = {nbuf, 0, 0};
  int ws = 0;
  if (name == Py_None) {
    Py_ssize_t k = request_name_of(scope, nbuf, sizeof nbuf, &ws);
    if (k < 0) goto fail;
    nm.n = (size_t)k;
  } else if (PyUnicode_Check(name)) {
    Py_ssize_t k;
    if (!(nm.p = PyUnicode_AsUTF8AndSize(name, &k))) goto fail;
    nm.n = (size_t)k;
    if ((ws = scope_is_websocket(scope)) < 0) goto fail;
  } else {
    PyErr_Format(PyExc_TypeError, "loopscope: a request name must be a str, not %.100s", Py_TYPE(name)->tp_name);
    goto fail;
  }
  req->ws = ws;
  if (ws) req->status = -1; /* no HTTP response of the app's to look for */
  /* the id stays in the session's idc until someone asks for its str (session_id_str) */
  size_t idn = new_session_id(sess->idc);
  sess->idn = (unsigned char)idn;
  sess->max_tasks = G.max_tasks;
  /* the loop's number goes into the first meta when the loop is hooked already (every request
   * after the first): no second meta from session_enter_loop */
  int rc = session_begin(sess, nm, G.max_tasks, 0, loop == G.hooked_loop ? G.hooked_loop_no : 0, 0,
                         (uint32_t)ppm);
  if (rc) goto fail;
  if (!(req->token = PyContextVar_Set(G.session_var, (PyObject *)req))) goto fail;
  if (session_enter_loop(sess, loop, 1)) goto fail;
  /* the only entry of the new session, when there is one, is the task it adopted */
  if (sess->entries) req->task = Py_NewRef(sess->entries->task);
  /* scope.setdefault("state", {})["loopscope_session"] = request; a read-only state is left be */
  /* servers that pass a state (uvicorn's lifespan state) need no new dict */
  PyObject *state = PyDict_CheckExact(scope) ? Py_XNewRef(PyDict_GetItemWithError(scope, G.s_scope_state)) : NULL;
  if (!state) {
    PyObject *fresh = PyErr_Occurred() ? NULL : PyDict_New();
    if (!fresh) goto fail;
    if (PyDict_CheckExact(scope)) state = Py_XNewRef(PyDict_SetDefault(scope, G.s_scope_state, fresh));
    else state = PyObject_CallMethod(scope, "setdefault", "OO", G.s_scope_state, fresh);
    Py_DECREF(fresh);
    if (!state) goto fail;
  }
  rc = PyObject_SetItem(state, G.s_state_key, (PyObject *)req);
  Py_DECREF(state);
  if (rc < 0) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) goto fail;
    PyErr_Clear();
  }
  if (header) {
    size_t pn = strlen(G.url_prefix ? G.url_prefix : "");
    PyObject *url = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pn + idn));
    if (!url) goto fail;
    memcpy(PyBytes_AS_STRING(url), G.url_prefix ? G.url_prefix : "", pn);
    memcpy(PyBytes_AS_STRING(url) + pn, sess->idc, idn);
    req->header = PyTuple_Pack(2, G.header_name, url);
    Py_DECREF(url);
    if (!req->header) goto fail;
  }
  Py_DECREF(loop);
  return (PyObject *)req;
fail:
  Py_DECREF(loop);
  {
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (request_end(req, LS_S_OK, NULL)) PyErr_Clear();
    PyErr_Restore(et, ev, tb);
  }
  Py_DECREF(req);
  return NULL;
}

/* The status of an http.response.start message, 0 when it has none in [100, 599]. */
static int response_status(PyObject *msg) {
  if (!s_status && !(s_status = PyUnicode_InternFromString("status"))) { PyErr_Clear(); return 0; }
  PyObject *v = scope_get(msg, s_status);
  if (!v) { PyErr_Clear(); return 0; }
  long st = PyLong_Check(v) ? PyLong_AsLong(v) : 0;
  Py_DECREF(v);
  if (st == -1 && PyErr_Occurred()) PyErr_Clear();
  return st >= 100 && st <= 599 ? (int)st : 0;
}

/* request(message): the server's send. Until http.response.start has gone by it looks at each
 * message's type: that one's status is kept for the request's end, and the header is added to it
 * (when asked for). Returns what send returns (the awaitable the app awaits): no coroutine of our
 * own per message. */
static PyObject *request_send(request_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs != 1 || kwnames) { PyErr_SetString(PyExc_TypeError, "send(message)"); return NULL; }
  PyObject *msg = args[0];
  if (self->status == 0) {
    PyObject *type = scope_get(msg, G.s_type);
    if (!type && PyErr_Occurred()) return NULL;
    int start = str_is(type, G.s_response_start);
    Py_XDECREF(type);
    if (start) {
      int st = response_status(msg);
      self->status = st ? st : -1; /* one response per request: look no further */
      if (self->header) {
        /* PyDict_New and PyDict_Update, not PyDict_Copy: the copy had fewer L1 misses and more L2
         * misses (the interpreter code an app runs anyway is cheap at L2; as for the list below) */
        PyObject *copy = PyDict_New(), *headers = NULL, *list = NULL, *r = NULL;
        if (!copy || PyDict_Update(copy, msg) < 0) goto done;
        headers = scope_get(copy, G.s_headers);
        if (!headers && PyErr_Occurred()) goto done;
        /* PySequence_List, not a list of exactly n + 1 made here: that one had fewer instruction
         * misses in the L1 but ~40 more L2 misses a Litestar request, spread over the interpreter
         * (callgrind with the L2 simulated 64-way; bench/overhead/README.md, 2026-12-06, stop 38) */
        if (!(list = headers ? PySequence_List(headers) : PyList_New(0))) goto done;
        if (PyList_Append(list, self->header) < 0) goto done;
        if (PyDict_SetItem(copy, G.s_headers, list) < 0) goto done;
        r = PyObject_CallOneArg(self->send, copy);
      done:
        Py_XDECREF(copy);
        Py_XDECREF(headers);
        Py_XDECREF(list);
        return r;
      }
    }
  }
  return PyObject_CallOneArg(self->send, msg);
}

/* asyncio.CancelledError, looked up on the first exception a request ends with. */
static PyObject *cancelled_error;
/* "path_template", "route", "WS", interned on first use; loopscope.asgi.route_template, imported on the
 * first scope that has a "route" (Starlette's): each lives as long as the interpreter. */
static PyObject *s_path_template, *s_route, *s_WS, *route_template_fn;

/* "<head> <tpl>" as a new str: copied byte by byte when both are ASCII (a method and a path template
 * nearly always are: ~100 instructions where PyUnicode_FromFormat parses its format and runs a
 * writer, ~800), else formatted; head NULL: "GET". NULL with an exception set on failure. */
static PyObject *route_join(PyObject *head, PyObject *tpl) {
  if ((!head || (PyUnicode_Check(head) && PyUnicode_IS_ASCII(head))) && PyUnicode_IS_ASCII(tpl)) {
    const char *h = head ? (const char *)PyUnicode_DATA(head) : "GET";
    Py_ssize_t hn = head ? PyUnicode_GET_LENGTH(head) : 3, tn = PyUnicode_GET_LENGTH(tpl);
    PyObject *r = PyUnicode_New(hn + 1 + tn, 127);
    if (!r) return NULL;
    char *d = (char *)PyUnicode_DATA(r);
    memcpy(d, h, (size_t)hn);
    d[hn] = ' ';
    memcpy(d + hn + 1, PyUnicode_DATA(tpl), (size_t)tn);
    return r;
  }
  return head ? PyUnicode_FromFormat("%S %U", head, tpl) : PyUnicode_FromFormat("GET %U", tpl);
}

/* The route the framework matched, as loopscope.asgi.route_template tells it, into the session:
 * Litestar's scope["path_template"] is read here ("GET /users/{user_id}", or "WS ..."), without the
 * two Python calls per request that route_template costs; a scope with scope["route"] (Starlette,
 * FastAPI: a route object in a Mount) asks route_template itself. What cannot be read leaves the
 * session without a route: an odd scope never fails the request (no exception is left set). */
static void request_route_from(request_obj *self, PyObject *scope) {
  if (!session_live(&self->s)) return;
  if ((!s_path_template && !(s_path_template = PyUnicode_InternFromString("path_template"))) ||
      (!s_route && !(s_route = PyUnicode_InternFromString("route"))) ||
      (!s_WS && !(s_WS = PyUnicode_InternFromString("WS")))) {
    PyErr_Clear();
    return;
  }
  PyObject *route = NULL;
  int is_dict = PyDict_Check(scope);
  PyObject *tpl = is_dict ? PyDict_GetItemWithError(scope, s_path_template) : NULL; /* borrowed */
  if (tpl && PyUnicode_Check(tpl) && PyUnicode_GET_LENGTH(tpl) > 0) {
    PyObject *method = self->ws ? NULL : scope_get(scope, G.s_method);
    if (self->ws) route = route_join(s_WS, tpl);
    else if (method || !PyErr_Occurred()) route = route_join(method, tpl);
    Py_XDECREF(method);
  } else if (!PyErr_Occurred() && (!is_dict || tpl || PyDict_GetItemWithError(scope, s_route))) {
    if (!route_template_fn) {
      PyObject *asgi = PyImport_ImportModule("loopscope.asgi");
      if (asgi) route_template_fn = PyObject_GetAttrString(asgi, "route_template");
      Py_XDECREF(asgi);
    }
    if (route_template_fn) route = PyObject_CallOneArg(route_template_fn, scope);
  }
  if (route && PyUnicode_Check(route) && session_set_route(&self->s, route, 1) < 0) PyErr_Clear();
  Py_XDECREF(route);
  if (PyErr_Occurred()) PyErr_Clear();
}

/* close(exc=None, scope=None): ends the request's session; its task ends ok, or with exc (what the
 * app raised) cancelled for a CancelledError and error otherwise. With the request's scope, the
 * session first takes the route the framework matched (request_route_from). */
static PyObject *request_close(request_obj *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs > 2) { PyErr_SetString(PyExc_TypeError, "close(exc=None, scope=None)"); return NULL; }
  PyObject *exc = nargs ? args[0] : Py_None;
  if (nargs > 1 && args[1] != Py_None) {
    /* close runs in an except block too: what is set stays set (fetched and restored only then,
     * not at every request) */
    PyObject *et = NULL, *ev = NULL, *etb = NULL;
    int pending = PyErr_Occurred() != NULL;
    if (pending) PyErr_Fetch(&et, &ev, &etb);
    request_route_from(self, args[1]);
    if (pending) PyErr_Restore(et, ev, etb);
  }
  int state = LS_S_OK;
  if (exc != Py_None) {
    state = LS_S_ERROR;
    if (!cancelled_error) {
      PyObject *asyncio = PyImport_ImportModule("asyncio");
      if (asyncio) cancelled_error = PyObject_GetAttrString(asyncio, "CancelledError");
      Py_XDECREF(asyncio);
      if (!cancelled_error) PyErr_Clear();
    }
    if (cancelled_error && PyErr_GivenExceptionMatches(exc, cancelled_error)) state = LS_S_CANCELLED;
  }
  if (request_end(self, state, state == LS_S_ERROR ? exc : NULL)) return NULL;
  Py_RETURN_NONE;
}

static PyObject *request_get_id(request_obj *self, void *closure) {
  (void)closure;
  return session_id_str(&self->s);
}

static PyObject *request_get_url(request_obj *self, void *closure) {
  (void)closure;
  PyObject *id = session_id_str(&self->s);
  if (!id || id == Py_None) return id;
  PyObject *url = PyUnicode_FromFormat("%s%U", G.url_prefix ? G.url_prefix : "", id);
  Py_DECREF(id);
  return url;
}

static PyObject *request_get_recording(request_obj *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->s.active);
}

/* rename(name): the request's session is named name from its next batch on (a panel that opens the
 * session before the request line is known names it later). */
static PyObject *request_rename(request_obj *self, PyObject *name) {
  if (session_rename(&self->s, name)) return NULL;
  Py_RETURN_NONE;
}

static PyObject *request_get_status(request_obj *self, void *closure) {
  (void)closure;
  return PyLong_FromLong(self->status > 0 ? self->status : 0);
}

/* status = N: the response status the request's task ends with, for a caller that sees the response
 * another way than through this object's send (the litestar-debug-toolbar panel). 100..599. */
static int request_set_status(request_obj *self, PyObject *v, void *closure) {
  (void)closure;
  if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete status"); return -1; }
  long st = PyLong_Check(v) ? PyLong_AsLong(v) : -1;
  if (st == -1 && PyErr_Occurred()) return -1;
  if (st < 100 || st > 599) {
    PyErr_SetString(PyExc_ValueError, "loopscope: an HTTP status is an int in [100, 599]");
    return -1;
  }
  self->status = (int)st;
  return 0;
}

static PyObject *request_get_route(request_obj *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->s.route ? self->s.route : Py_None);
}

/* route = "GET /users/{user_id}": the route template the framework matched (LoopscopeMiddleware
 * sets it once the app has run); the session's next batch carries it in its meta. */
static int request_set_route(request_obj *self, PyObject *v, void *closure) {
  (void)closure;
  if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete route"); return -1; }
  return session_set_route(&self->s, v, 0);
}

static PyObject *request_stats(request_obj *self, PyObject *unused) {
  return session_stats(&self->s, unused);
}

static int request_traverse(request_obj *self, visitproc visit, void *arg) {
  Py_VISIT(self->token);
  Py_VISIT(self->send);
  Py_VISIT(self->header);
  Py_VISIT(self->task);
  return 0;
}

static int request_clear(request_obj *self) {
  Py_CLEAR(self->token);
  Py_CLEAR(self->send);
  Py_CLEAR(self->header);
  Py_CLEAR(self->task);
  return 0;
}

static void request_dealloc(request_obj *self) {
  PyObject_GC_UnTrack(self);
  request_clear(self);
  session_fields_free(&self->s);
  PyObject_GC_Del(self);
}

static PyMethodDef request_methods[] = {
    {"close", (PyCFunction)(void (*)(void))request_close, METH_FASTCALL,
     "close(exc=None, scope=None): end the request's session and its task, ok or with what the app raised, "
     "with the route the framework put in scope (idempotent)"},
    {"stats", (PyCFunction)request_stats, METH_NOARGS, "counters of the request's session"},
    {"rename", (PyCFunction)request_rename, METH_O, "rename(name): the session's next batch carries it"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef request_getset[] = {
    {"id", (getter)request_get_id, NULL, "session id", NULL},
    {"url", (getter)request_get_url, NULL, "the session's timeline page", NULL},
    {"recording", (getter)request_get_recording, NULL, "whether the session is still open", NULL},
    {"status", (getter)request_get_status, (setter)request_set_status,
     "the response status the request's task ends with (0: none yet)", NULL},
    {"route", (getter)request_get_route, (setter)request_set_route,
     "the route template the session's meta carries (None: none)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject Request_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.Request",
    .tp_doc = "One request's session; calling it is the app's `send` with the X-Loopscope-Session header",
    .tp_basicsize = sizeof(request_obj),
    /* made only by request_open: Session's tp_new and tp_init (inherited) are not for it */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_base = &Session_Type,
    .tp_vectorcall_offset = offsetof(request_obj, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)request_traverse,
    .tp_clear = (inquiry)request_clear,
    .tp_dealloc = (destructor)request_dealloc,
    .tp_methods = request_methods,
    .tp_getset = request_getset,
};

