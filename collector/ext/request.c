/* request.c — the per-request work of loopscope.asgi.LoopscopeMiddleware, in C: a tiny request
 * would otherwise pay for every Python line around it. Opens the request's session (named from the
 * scope), makes it the context's session, and stands in for the app's `send` to add the
 * X-Loopscope-Session header. Recording itself is record.c's. */
#include "request.h"
#include "session.h"

#include <stdio.h>

/* ---- ASGI requests ---------------------------------------------------------------------------
 * What LoopscopeMiddleware does per request, in C, because a tiny request pays for every Python
 * line around it: name the session from the scope, open it, make it the context's session, hook
 * the running loop once, start the lag heartbeat, adopt the request's task, put the request in
 * scope["state"], and stand in for `send` to add the X-Loopscope-Session header. */

typedef struct {
  PyObject_HEAD
  session_obj *sess;   /* strong */
  PyObject *token;     /* the contextvar token until close(), or NULL */
  PyObject *send;      /* the server's send callable */
  PyObject *header;    /* (b"x-loopscope-session", url bytes), or NULL: no header added */
  vectorcallfunc vectorcall;
} request_obj;

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

/* "GET /path" or "WS /path" (loopscope.asgi.request_name) into buf; its length, or -1 with an
 * exception set. The session meta keeps at most 1024 bytes of a name anyway. */
static Py_ssize_t request_name_of(PyObject *scope, char *buf, size_t cap) {
  PyObject *type = scope_get(scope, G.s_type), *path = NULL, *method = NULL;
  Py_ssize_t r = -1;
  size_t n = 0;
  if (!type && PyErr_Occurred()) return -1;
  if (!(path = scope_get(scope, G.s_path)) && PyErr_Occurred()) goto out;
  int ws = type && PyUnicode_Check(type) && PyUnicode_Compare(type, G.s_websocket) == 0;
  if (!ws && !(method = scope_get(scope, G.s_method)) && PyErr_Occurred()) goto out;
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

/* Ends the request's session and gives the context its previous session back. Idempotent. */
static int request_end(request_obj *self) {
  int rc = 0;
  if (self->token) {
    if (PyContextVar_Reset(G.session_var, self->token) < 0) {
      if (PyErr_ExceptionMatches(PyExc_ValueError)) PyErr_Clear(); /* ended in another context */
      else rc = -1;
    }
    Py_CLEAR(self->token);
  }
  if (self->sess) {
    PyObject *r = session_close(self->sess, NULL);
    if (!r) rc = -1;
    Py_XDECREF(r);
  }
  return rc;
}

/* request_open(scope, send, name, header) -> Request: the session is open and current. name None:
 * named from the scope. header: whether send adds the X-Loopscope-Session header. */
PyObject *mod_request_open(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
  (void)mod;
  if (nargs != 4) { PyErr_SetString(PyExc_TypeError, "request_open(scope, send, name, header)"); return NULL; }
  if (!G.started || !G.get_running_loop) { PyErr_SetString(PyExc_RuntimeError, "loopscope is not installed"); return NULL; }
  PyObject *scope = args[0], *name = args[2];
  int header = PyObject_IsTrue(args[3]);
  if (header < 0) return NULL;
  PyObject *loop = PyObject_CallNoArgs(G.get_running_loop);
  if (!loop) return NULL;
  request_obj *req = PyObject_GC_New(request_obj, &Request_Type);
  if (!req) { Py_DECREF(loop); return NULL; }
  req->sess = NULL;
  req->token = req->header = NULL;
  req->send = Py_NewRef(args[1]);
  req->vectorcall = (vectorcallfunc)request_send;
  PyObject_GC_Track(req);
  char nbuf[1024], idbuf[ID_MAX];
  ls_str nm = {nbuf, 0};
  if (name == Py_None) {
    Py_ssize_t k = request_name_of(scope, nbuf, sizeof nbuf);
    if (k < 0) goto fail;
    nm.n = (size_t)k;
  } else if (PyUnicode_Check(name)) {
    Py_ssize_t k;
    if (!(nm.p = PyUnicode_AsUTF8AndSize(name, &k))) goto fail;
    nm.n = (size_t)k;
  } else {
    PyErr_Format(PyExc_TypeError, "loopscope: a request name must be a str, not %.100s", Py_TYPE(name)->tp_name);
    goto fail;
  }
  size_t idn = new_session_id(idbuf);
  req->sess = (session_obj *)PyType_GenericAlloc(&Session_Type, 0);
  if (!req->sess || !(req->sess->id = PyUnicode_FromStringAndSize(idbuf, (Py_ssize_t)idn))) goto fail;
  req->sess->max_tasks = G.max_tasks;
  int rc = session_begin(req->sess, nm, G.max_tasks);
  if (rc) goto fail;
  if (!(req->token = PyContextVar_Set(G.session_var, (PyObject *)req->sess))) goto fail;
  if (session_enter_loop(req->sess, loop, 1)) goto fail;
  /* scope.setdefault("state", {})["loopscope_session"] = request; a read-only state is left be */
  PyObject *state = NULL, *fresh = PyDict_New();
  if (!fresh) goto fail;
  if (PyDict_CheckExact(scope)) state = Py_XNewRef(PyDict_SetDefault(scope, G.s_scope_state, fresh));
  else state = PyObject_CallMethod(scope, "setdefault", "OO", G.s_scope_state, fresh);
  Py_DECREF(fresh);
  if (!state) goto fail;
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
    memcpy(PyBytes_AS_STRING(url) + pn, idbuf, idn);
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
    if (request_end(req)) PyErr_Clear();
    PyErr_Restore(et, ev, tb);
  }
  Py_DECREF(req);
  return NULL;
}

/* request(message): the server's send, with the header added to http.response.start. Returns
 * what send returns (the awaitable the app awaits): no coroutine of our own per message. */
static PyObject *request_send(request_obj *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs != 1 || kwnames) { PyErr_SetString(PyExc_TypeError, "send(message)"); return NULL; }
  PyObject *msg = args[0];
  if (self->header) {
    PyObject *type = scope_get(msg, G.s_type);
    if (!type && PyErr_Occurred()) return NULL;
    int start = type && PyUnicode_Check(type) && PyUnicode_Compare(type, G.s_response_start) == 0;
    Py_XDECREF(type);
    if (start) {
      PyObject *copy = PyDict_New(), *headers = NULL, *list = NULL, *r = NULL;
      if (!copy || PyDict_Update(copy, msg) < 0) goto done;
      headers = scope_get(copy, G.s_headers);
      if (!headers && PyErr_Occurred()) goto done;
      if (!(list = headers ? PySequence_List(headers) : PyList_New(0))) goto done;
      if (PyList_Append(list, self->header) < 0 || PyDict_SetItem(copy, G.s_headers, list) < 0) goto done;
      r = PyObject_CallOneArg(self->send, copy);
    done:
      Py_XDECREF(copy);
      Py_XDECREF(headers);
      Py_XDECREF(list);
      return r;
    }
  }
  return PyObject_CallOneArg(self->send, msg);
}

static PyObject *request_close(request_obj *self, PyObject *unused) {
  (void)unused;
  if (request_end(self)) return NULL;
  Py_RETURN_NONE;
}

static PyObject *request_get_id(request_obj *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->sess && self->sess->id ? self->sess->id : Py_None);
}

static PyObject *request_get_url(request_obj *self, void *closure) {
  (void)closure;
  if (!self->sess || !self->sess->id) Py_RETURN_NONE;
  return PyUnicode_FromFormat("%s%U", G.url_prefix ? G.url_prefix : "", self->sess->id);
}

static PyObject *request_get_recording(request_obj *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->sess && self->sess->active);
}

static PyObject *request_stats(request_obj *self, PyObject *unused) {
  if (!self->sess) return PyDict_New();
  return session_stats(self->sess, unused);
}

static int request_traverse(request_obj *self, visitproc visit, void *arg) {
  Py_VISIT(self->sess);
  Py_VISIT(self->token);
  Py_VISIT(self->send);
  Py_VISIT(self->header);
  return 0;
}

static int request_clear(request_obj *self) {
  Py_CLEAR(self->sess);
  Py_CLEAR(self->token);
  Py_CLEAR(self->send);
  Py_CLEAR(self->header);
  return 0;
}

static void request_dealloc(request_obj *self) {
  PyObject_GC_UnTrack(self);
  request_clear(self);
  PyObject_GC_Del(self);
}

static PyMethodDef request_methods[] = {
    {"close", (PyCFunction)request_close, METH_NOARGS, "end the request's session (idempotent)"},
    {"stats", (PyCFunction)request_stats, METH_NOARGS, "counters of the request's session"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef request_getset[] = {
    {"id", (getter)request_get_id, NULL, "session id", NULL},
    {"url", (getter)request_get_url, NULL, "the session's timeline page", NULL},
    {"recording", (getter)request_get_recording, NULL, "whether the session is still open", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject Request_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.Request",
    .tp_doc = "One request's session; calling it is the app's `send` with the X-Loopscope-Session header",
    .tp_basicsize = sizeof(request_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(request_obj, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)request_traverse,
    .tp_clear = (inquiry)request_clear,
    .tp_dealloc = (destructor)request_dealloc,
    .tp_methods = request_methods,
    .tp_getset = request_getset,
};

