/* tasks.c — the entries of recorded tasks and the task table (open addressing by task pointer):
 * registering a task in its session, finding, removing and freeing entries, and dropping the
 * entry of a task destroyed unseen (its watch). The events about a task are record.c's; the
 * session's own bookkeeping (ids, caps, its list head) is session.c's. */
#include "tasks.h"
#include "record.h"
#include "session.h"
#include "summary.h"

/* ---- an entry's watch on its task --------------------------------------------------------
 * An entry keys on a borrowed task pointer: a strong one would keep pending tasks alive and
 * change what the program sees ("Task was destroyed but it is pending!", memory). But a task can
 * be destroyed without loopscope seeing it end (its loop closed with the task pending, as
 * CPython's asyncio tests do after a failure), and its address is then reused by the next object
 * of its size, possibly another task: the stale entry's step end read the dead coroutine
 * (SIGSEGV in BaseEventLoop._run_once, tests/collector/test_invisible.py). So each entry holds a
 * weak reference to its task whose callback, run while the task is being destroyed and before
 * its memory can be reused, takes the entry out of the table. */
typedef struct {
  PyWeakReference ref;
  task_entry *e;           /* NULL once the entry is gone */
} watch_obj;

static PyTypeObject Watch_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loopscope._core.TaskWatch",
    .tp_basicsize = sizeof(watch_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT, /* GC and its traverse/clear come from the base */
    .tp_base = &_PyWeakref_RefType,
};
static PyObject *watch_gone;       /* the callback of every watch, made on first use */

/* A recorded task is being destroyed unseen: its open await ends now and its entry goes. Only
 * the task's address is used (tab_del compares pointers): it is no longer a live object. */
static PyObject *watch_gone_fn(PyObject *mod, PyObject *ref) {
  (void)mod;
  task_entry *e = Py_IS_TYPE(ref, &Watch_Type) ? ((watch_obj *)ref)->e : NULL;
  if (e) {
    if (e->announced && session_live(e->sess)) await_end(e, now_ns());
    tab_del(e->task);
    entry_free(e);
  }
  Py_RETURN_NONE;
}

static PyMethodDef watch_gone_def = {"_task_gone", watch_gone_fn, METH_O, "a recorded task was destroyed"};

/* A new watch on task for e, or NULL with an exception set (a task without weak references). */
static PyObject *watch_new(PyObject *task, task_entry *e) {
  if (!watch_gone) {
    if (PyType_Ready(&Watch_Type) < 0) return NULL;
    if (!(watch_gone = PyCFunction_New(&watch_gone_def, NULL))) return NULL;
  }
  PyObject *w = PyObject_CallFunctionObjArgs((PyObject *)&Watch_Type, task, watch_gone, NULL);
  if (w) ((watch_obj *)w)->e = e;
  return w;
}

/* Detaches e from its watch: the callback no longer finds it. Runs no Python code. */
static void watch_drop(task_entry *e) {
  if (!e->watch) return;
  ((watch_obj *)e->watch)->e = NULL;
  Py_CLEAR(e->watch);
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
void tab_del(PyObject *task) {
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

void entry_free(task_entry *e) {
  watch_drop(e);
  if (G.cur == e) G.cur = NULL;
  for (int i = 0; i < G.cur_depth && i < CUR_SAVED_MAX; i++)
    if (G.cur_saved[i] == e) G.cur_saved[i] = NULL;
  if (e->sprev) e->sprev->snext = e->snext;
  else if (e->sess && e->sess->entries == e) e->sess->entries = e->snext;
  if (e->snext) e->snext->sprev = e->sprev;
  if (e->sess && e->sess->sum) summary_task_gone(e->sess->sum);
  Py_XDECREF(e->sess);
  PyMem_Free(e);
}

void tab_clear(void) {
  /* first no entry can be reached from a callback: freeing one drops a session reference, which
   * may run code that destroys a recorded task */
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) watch_drop(G.tab[i]);
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) { entry_free(G.tab[i]); G.tab[i] = NULL; }
  G.tab_len = 0;
}

task_entry *register_task(session_obj *s, PyObject *task, PyObject *coro, uint64_t parent_id,
                                 uint64_t t) {
  if (s->ntasks >= s->max_tasks) goto dropped;
  task_entry *e = PyMem_Calloc(1, sizeof *e);
  if (!e) goto dropped;
  if (!(e->watch = watch_new(task, e))) { PyErr_Clear(); PyMem_Free(e); goto dropped; }
  e->task = task;
  e->coro = coro;
  e->sess = (session_obj *)Py_NewRef((PyObject *)s);
  e->id = ++s->next_id;
  e->parent = parent_id;
  e->created = rel(s, t);
  s->ntasks++;
  if (s->sum) summary_task_started(s->sum);
  e->coro_info = coro_code_info(coro);
  e->snext = s->entries;
  if (s->entries) s->entries->sprev = e;
  s->entries = e;
  task_entry *old = tab_find(task); /* defensive: callers look the task up before registering */
  if (old) { tab_del(task); entry_free(old); }
  if (tab_put(e) < 0) {
    entry_free(e); /* counted as gone again in the summary */
    s->ntasks--;
    if (s->sum && s->sum->tasks) s->sum->tasks--;
    goto dropped;
  }
  return e;
dropped: /* over the cap or out of memory: not recorded, but counted, and the count reaches the
          * server as a drop event (the task's id, if one was taken, stays unused) */
  s->dropped_tasks++;
  ls_session_add_dropped(s->ls, 1);
  return NULL;
}
