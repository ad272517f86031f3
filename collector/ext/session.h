/* session.h — what session.c offers: the Session type and its struct, session ids, opening,
 * entering a loop and closing a session, and the inline helpers every recorder uses to emit into a
 * session (emit checks the session is live; rel makes a time relative to its start). */
#ifndef LS_EXT_SESSION_H
#define LS_EXT_SESSION_H

#include "module.h"
#include "request.h" /* Request_Type: a Session subtype (is_session) */

#pragma GCC visibility push(hidden)

#define ID_PREFIX_MAX 24                /* "s-<16 hex>-" and its NUL */
#define ID_MAX (ID_PREFIX_MAX + 17)     /* a session id and its NUL */

struct session_obj {
  PyObject_HEAD
  ls_session *ls;          /* NULL before open and after close */
  PyObject *id;            /* str, or NULL while a request's session has its id in idc only */
  uint64_t start;          /* monotonic ns */
  uint64_t wall;           /* the wall clock at open, Unix ns (started_unix_ns of its meta) */
  uint64_t next_id, ntasks, max_tasks, dropped_tasks;
  int active;
  unsigned generation;     /* fork generation the session was opened in */
  task_entry *entries;     /* live entries of this session's tasks */
  ls_summary *sum;         /* what the summary needs (summary.h), or NULL: not kept */
  uint64_t end;            /* monotonic ns at close, 0 while open */
  PyObject *route;         /* str or NULL: the route template (request.route reads it; the store
                            * keeps its own copy: ls_session_set_route, or with the close) */
  int route_at_close;      /* route is not the store's yet: it goes with the close */
  uint64_t loop;           /* the number of the loop it entered (meta.loop), 0: none yet */
  session_obj *anext, *aprev; /* G.active_head's list while active (a strong reference) */
  /* A request's session keeps its id here (new_session_id, NUL-terminated, idn bytes) and makes
   * the str only when asked (.id, .url, a stall elsewhere): not one object and its decoding per
   * request that nobody reads. idn 0: the id is the str. */
  unsigned char idn;
  char idc[ID_MAX];
};

extern PyTypeObject Session_Type;

/* v is one of the collector's sessions (a Session or a Request): what the context variable holds. */
static LS_ALWAYS_INLINE int is_session(PyObject *v) {
  return Py_TYPE(v) == &Request_Type || Py_TYPE(v) == &Session_Type;
}
/* Drops what a session holds (its id and route strs, its summary): a session's or a Request's
 * dealloc. */
void session_fields_free(session_obj *self);

static LS_ALWAYS_INLINE uint64_t rel(const session_obj *s, uint64_t t) { return t > s->start ? t - s->start : 0; }

static LS_ALWAYS_INLINE int session_live(const session_obj *s) {
  return s && s->active && s->ls && s->generation == G.generation;
}

static LS_ALWAYS_INLINE void emit(session_obj *s, ls_event *ev) {
  if (session_live(s)) ls_emit(s->ls, ev);
}

/* Links s at the end of G's open sessions, which keeps a reference to it. */
static inline void active_add(session_obj *s) {
  Py_INCREF(s);
  s->anext = NULL;
  s->aprev = G.active_tail;
  if (G.active_tail) G.active_tail->anext = s; else G.active_head = s;
  G.active_tail = s;
  G.n_active++;
}

/* Unlinks s from G's open sessions (it must be there) and drops the list's reference: the caller
 * holds one of its own when it goes on using s. */
static inline void active_remove(session_obj *s) {
  if (s->aprev) s->aprev->anext = s->anext; else G.active_head = s->anext;
  if (s->anext) s->anext->aprev = s->aprev; else G.active_tail = s->aprev;
  s->anext = s->aprev = NULL;
  G.n_active--;
  Py_DECREF(s);
}

/* The UTF-8 of s's id (a view: as long as s lives), {NULL, 0} when it has none or its str has no
 * UTF-8 (an exception is set then). */
static inline ls_str session_id_utf8(session_obj *s) {
  if (s->idn) return (ls_str){s->idc, s->idn, 0};
  if (!s->id) return (ls_str){NULL, 0, 0};
  Py_ssize_t n;
  const char *p = PyUnicode_AsUTF8AndSize(s->id, &n);
  return (ls_str){p, p ? (size_t)n : 0, 0};
}
/* s's id as a str (new reference), made from idc the first time; None when it has none. NULL
 * with an exception set. */
PyObject *session_id_str(session_obj *s);
size_t new_session_id(char buf[ID_MAX]);
/* new_session_id() -> str, a module function */
PyObject *mod_new_session_id(PyObject *mod, PyObject *unused);
/* In a forked child: the next session id gets a new process prefix. */
void session_ids_after_fork(void);
/* Opens self; with_summary (or G.summary_all) keeps its summary in-process. loop: the number of
 * the loop it will enter when the caller knows it already (G.hooked_loop_no), else 0: the meta is
 * then made once, not again by session_enter_loop. back_ns: it began that long ago (its start and
 * wall-clock start both moved back; 0 for now). fraction_ppm: a request recorded as one of a
 * share of requests, in millionths (meta.fraction), 0 for none. 0, or -1. */
int session_begin(session_obj *self, ls_str name, uint64_t max_tasks, int with_summary, uint64_t loop,
                  uint64_t back_ns, uint32_t fraction_ppm);
/* Renames an open session (its next batch carries the name); nothing once closed. 0 or -1. */
int session_rename(session_obj *self, PyObject *name);
/* Sets an open session's route template (meta.route: its next batch carries it, e.g.
 * "GET /users/{user_id}" once the framework routed the request), or with at_close, the batch its
 * close sends (a request's end: the store takes it in the same hold of its lock as the close);
 * nothing once closed. 0 or -1. */
int session_set_route(session_obj *self, PyObject *route, int at_close);
PyObject *session_close(session_obj *self, PyObject *unused);
/* How a request's root task ends when its session closes (request.c). */
typedef struct session_root_end {
  PyObject *task;   /* borrowed: the task adopted as the session's root */
  int state;        /* LS_S_OK, LS_S_CANCELLED or LS_S_ERROR */
  PyObject *exc;    /* borrowed: with LS_S_ERROR the exception, or NULL */
  int status;       /* the HTTP response status, 0: none */
} session_root_end;
/* session_close, and root's task, when it is still this session's, ends at the same time with a
 * done event (the session's other pending tasks stay without one). */
PyObject *session_close_ending(session_obj *self, const session_root_end *root);
PyObject *session_stats(session_obj *self, PyObject *unused);
int session_enter_loop(session_obj *self, PyObject *loop, int adopt);

#pragma GCC visibility pop

#endif
