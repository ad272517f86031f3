/* tasks.c — the entries of recorded tasks and the task table (open addressing by task pointer):
 * registering a task in its session, finding, removing and freeing entries, and dropping the
 * entry of a task destroyed unseen (its watch: the C Task type's wrapped dealloc, else a weak
 * reference). The events about a task are record.c's; the session's own bookkeeping (ids, caps,
 * its list head) is session.c's. */
#include "tasks.h"
#include "record.h"
#include "session.h"
#include "summary.h"

/* ---- the entries' memory -----------------------------------------------------------------
 * Entries come from a pool of 64-byte aligned slabs kept across tasks and sessions, not from
 * PyMem_Calloc. A pymalloc block per entry (216 bytes) put the ~2 MB of a burst of tasks (the
 * async tree's 9331 at once) in pymalloc arenas that its tasks' ends emptied again, and pymalloc
 * gives an empty arena back to the system: the next burst faulted ~2 MB of fresh pages in again
 * (~500 minor faults per run, and cold lines for every new entry), and shared its arenas with the
 * program's own objects. From the pool a freed entry is the next one taken (LIFO: the lines most
 * recently used), and the slabs stay until no entry is live and they hold more than
 * POOL_KEEP_BYTES, or until stop() or a fork (tab_clear). Built with ASan every entry is its own
 * PyMem_Calloc block, as before (tasks.h, LS_ENTRY_POOL). */
#define POOL_KEEP_BYTES ((size_t)16 << 20) /* ~75k entries kept while idle */
/* A slab is SLAB_BYTES aligned to SLAB_BYTES: its header, SLAB_ENTRIES entries, then as many
 * rooms of LS_WHAT_MAX bytes, the n-th beside the n-th entry (entry_what finds a slab from an
 * entry's address). The rooms are written only for a heap type's name, so the lines every task
 * touches stay two per entry, packed: 146 entries of 128 bytes in the first 18.7 KiB. */
#define SLAB_BYTES ((size_t)32 << 10)

typedef struct slab {
  struct slab *next;
} __attribute__((aligned(64))) slab;

#define SLAB_ENTRIES ((SLAB_BYTES - sizeof(slab)) / (sizeof(task_entry) + LS_WHAT_MAX))
#if LS_ENTRY_POOL
_Static_assert(offsetof(task_entry, snext) == 64 && sizeof(task_entry) == 128,
               "task_entry: line 0 for every step, line 1 for its start and end");
_Static_assert(sizeof(slab) + SLAB_ENTRIES * (sizeof(task_entry) + LS_WHAT_MAX) <= SLAB_BYTES,
               "a slab's entries and their rooms fit in it");
#endif

static slab *slabs;             /* every slab, while the pool holds any */
static task_entry *pool_free;   /* free entries, linked by snext */
static size_t pool_live, pool_bytes;

/* Gives every slab back: only when no entry is live. */
static void pool_release(void) {
  while (slabs) {
    slab *n = slabs->next;
    free(slabs);
    slabs = n;
  }
  pool_free = NULL;
  pool_bytes = 0;
}

char *entry_what(task_entry *e) {
#if !LS_ENTRY_POOL
  return (char *)(e + 1); /* allocated with the entry (entry_alloc) */
#else
  slab *sl = (slab *)((uintptr_t)e & ~(uintptr_t)(SLAB_BYTES - 1));
  task_entry *ents = (task_entry *)(void *)(sl + 1);
  return (char *)(ents + SLAB_ENTRIES) + (size_t)(e - ents) * LS_WHAT_MAX;
#endif
}

/* A zeroed entry (its what room is not: nwhat says it is empty), or NULL when memory is short. */
LS_HOT static task_entry *entry_alloc(void) {
#if !LS_ENTRY_POOL
  task_entry *e = PyMem_Calloc(1, sizeof *e + LS_WHAT_MAX);
  if (e) pool_live++;
  return e;
#else
  if (!pool_free) {
    void *p;
    if (posix_memalign(&p, SLAB_BYTES, SLAB_BYTES)) return NULL;
    slab *sl = p;
    sl->next = slabs;
    slabs = sl;
    pool_bytes += SLAB_BYTES;
    task_entry *ents = (task_entry *)(void *)(sl + 1);
    for (size_t i = SLAB_ENTRIES; i-- > 0;) { /* taken in address order */
      ents[i].snext = pool_free;
      pool_free = &ents[i];
    }
  }
  task_entry *e = pool_free;
  pool_free = e->snext;
  pool_live++;
  return memset(e, 0, sizeof *e);
#endif
}

LS_HOT static void entry_release(task_entry *e) {
  pool_live--;
#if !LS_ENTRY_POOL
  PyMem_Free(e);
#else
  e->snext = pool_free;
  pool_free = e;
  if (!pool_live && pool_bytes > POOL_KEEP_BYTES) pool_release();
#endif
}

/* ---- tables of entries keyed by a pointer field (open addressing, linear probing) ----------
 * The task table (G.tab, keyed by e->task: tab_find in tasks.h runs on every step) and the watch
 * table below (keyed by e->watch) share these. */
#define KEY(e, off) (*(PyObject *const *)(const void *)((const char *)(e) + (off)))

/* Puts e in the table: 0, 1 when it replaced an entry with the same key (given in *old, when old
 * is not NULL: the caller frees that one), -1 when memory is short (nothing changed). */
LS_HOT static int table_put(task_entry ***tab, size_t *cap, size_t *len, task_entry *e, size_t off,
                            task_entry **old) {
  if ((*len + 1) * 2 > *cap) {
    size_t ncap = *cap ? *cap * 2 : 1024;
    task_entry **n = PyMem_Calloc(ncap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < *cap; i++) {
      if (!(*tab)[i]) continue;
      size_t j = ptr_hash(KEY((*tab)[i], off)) & (ncap - 1);
      while (n[j]) j = (j + 1) & (ncap - 1);
      n[j] = (*tab)[i];
    }
    PyMem_Free(*tab);
    *tab = n;
    *cap = ncap;
  }
  PyObject *key = KEY(e, off);
  size_t mask = *cap - 1, j = ptr_hash(key) & mask;
  while ((*tab)[j]) {
    if (KEY((*tab)[j], off) == key) {
      if (old) *old = (*tab)[j];
      (*tab)[j] = e;
      return 1;
    }
    j = (j + 1) & mask;
  }
  (*tab)[j] = e;
  (*len)++;
  return 0;
}

/* Removes the entry keyed key (backward-shift deletion keeps probe chains intact). */
LS_HOT static void table_del(task_entry **tab, size_t cap, size_t *len, PyObject *key, size_t off) {
  if (!*len) return;
  size_t mask = cap - 1, j = ptr_hash(key) & mask;
  while (tab[j] && KEY(tab[j], off) != key) j = (j + 1) & mask;
  if (!tab[j]) return;
  tab[j] = NULL;
  (*len)--;
  size_t k = (j + 1) & mask;
  while (tab[k]) {
    size_t home = ptr_hash(KEY(tab[k], off)) & mask;
    /* move k into the hole j when its home is not in (j, k] cyclically */
    int between = j < k ? (home > j && home <= k) : (home > j || home <= k);
    if (!between) {
      tab[j] = tab[k];
      tab[k] = NULL;
      j = k;
    }
    k = (k + 1) & mask;
  }
}

static task_entry *table_find(task_entry **tab, size_t cap, size_t len, PyObject *key, size_t off) {
  if (!len) return NULL;
  size_t mask = cap - 1, j = ptr_hash(key) & mask;
  while (tab[j]) {
    if (KEY(tab[j], off) == key) return tab[j];
    j = (j + 1) & mask;
  }
  return NULL;
}

/* ---- an entry's watch on its task --------------------------------------------------------
 * An entry keys on a borrowed task pointer: a strong one would keep pending tasks alive and
 * change what the program sees ("Task was destroyed but it is pending!", memory). But a task can
 * be destroyed without loopscope seeing it end (its loop closed with the task pending, as
 * CPython's asyncio tests do after a failure), and its address is then reused by the next object
 * of its size, possibly another task: the stale entry's step end read the dead coroutine
 * (SIGSEGV in BaseEventLoop._run_once, tests/collector/test_invisible.py). So each entry is
 * taken out of the table while its task is being destroyed, before its memory can be reused:
 * by the C Task type's wrapped dealloc (below) when that covers the task, else by the callback
 * of a weak reference to the task, the entry's watch.
 *
 * The weak reference is a plain weakref.ref made by PyWeakref_NewRef, and the callback finds its
 * entry in the watch table by the reference's address (a weak reference no longer tells its
 * referent when the callback runs). A subclass carrying the entry was made through the type's
 * call (argument tuple, vectorcall to tp_call conversion, tp_new and tp_init, the subtype's
 * dealloc): ~600 instructions per task and interpreter code the program itself does not run,
 * measured on 3.14 as instruction-cache misses beside the count; this is ~150. */
static task_entry **wtab;          /* entries by e->watch; an entry is here while it has a watch */
static size_t wtab_cap, wtab_len;
static PyObject *watch_gone;       /* the callback of every watch, made on first use */

/* A recorded task is being destroyed unseen: its open await ends now and its entry goes. Only
 * the task's address is used afterwards (tab_del compares pointers). */
static void entry_gone(task_entry *e) {
  if (e->announced && session_live(e->sess)) await_end(e, now_ns());
  tab_del(e->task);
  entry_free(e);
}

/* The weak reference's callback: the reference was dropped from the watch table if its entry
 * went meanwhile (entry_free: another callback of the same destruction, or a session closed by
 * one), and then nothing is done. */
static PyObject *watch_gone_fn(PyObject *mod, PyObject *ref) {
  (void)mod;
  task_entry *e = table_find(wtab, wtab_cap, wtab_len, ref, offsetof(task_entry, watch));
  if (e) entry_gone(e);
  Py_RETURN_NONE;
}

static PyMethodDef watch_gone_def = {"_task_gone", watch_gone_fn, METH_O, "a recorded task was destroyed"};

/* ---- the watch without a weak reference: the C Task type's deallocation -------------------
 * A weak reference per task is a GC-tracked object: on the async tree (9331 live tasks) it added
 * ~8% more gen-0 collections, one more gen-1 collection, and every collection traverses them
 * (measured with gc.callbacks: 3.13 53 -> 57 gen-0, 4 -> 5 gen-1, ~640 ns per task of loop CPU
 * for ~1.000x instructions). So the tasks of the C Task type (asyncio.Task, nearly all of them)
 * are watched by wrapping that type's tp_dealloc once: the wrapper takes the task's entry out of
 * the table, then runs the type's own dealloc, which is where the task's memory is freed (only
 * there: Py_DECREF reaches it as the exact type's slot, and a Python subclass's subtype_dealloc
 * finds it as its first base's non-subtype dealloc and calls it at dealloc time). Removing the
 * entry first, before the finalizer, means a task resurrected by its finalizer loses its entry:
 * it is then not recorded any more, never read stale. The wrapper stays after stop() (an
 * extension module is never unloaded): with the table empty it is one load and a call.
 * A task in cyclic garbage keeps its entry from the collector's tp_clear to its dealloc: no
 * program code can step it meanwhile (nothing reachable refers to it), and a session closed then
 * reads only the task object, which is still allocated, never its coroutine.
 * Not chosen: untracking the weak reference from the GC (PyObject_GC_UnTrack). It is in no cycle,
 * but when its task dies in a collection, handle_weakrefs moves the reference into its list of
 * callbacks to call by its GC links, which an untracked object no longer has; and its allocation
 * is counted toward gen 0 all the same.
 * A task whose type could have copied the original pointer (a C subclass readied before the
 * hook), the pure-Python Task, or the Task type of another interpreter keeps the weak
 * reference: dealloc_covers decides per task by walking its type to the dealloc that runs. */
static destructor subtype_dealloc_fn;  /* what every class statement's type has as tp_dealloc */
static PyTypeObject *ctask_type;       /* _asyncio.Task (strong), whose dealloc is wrapped */
static destructor ctask_dealloc;       /* its own tp_dealloc */
static int dealloc_setup_done;

/* A dealloc may run while an exception is being raised: entry_gone must not disturb it. */
#if PY_VERSION_HEX >= 0x030C0000
#define ERR_SAVE(x) PyObject *x = PyErr_GetRaisedException()
#define ERR_RESTORE(x) PyErr_SetRaisedException(x)
#else
#define ERR_SAVE(x) PyObject *x##t, *x##v, *x##tb; PyErr_Fetch(&x##t, &x##v, &x##tb)
#define ERR_RESTORE(x) PyErr_Restore(x##t, x##v, x##tb)
#endif

LS_HOT static void ctask_dealloc_watched(PyObject *self) {
  task_entry *e = tab_find(self);
  if (e) {
    ERR_SAVE(exc);
    entry_gone(e);
    ERR_RESTORE(exc);
  }
  ctask_dealloc(self);
}

/* Finds subtype_dealloc (from a throwaway class) and wraps _asyncio.Task's dealloc, once. Any
 * failure leaves every task on the weak reference. */
static void dealloc_setup(void) {
  dealloc_setup_done = 1;
  ERR_SAVE(exc);
  PyObject *cls = PyObject_CallFunction((PyObject *)&PyType_Type, "s()N", "_loopscope_probe",
                                        PyDict_New());
  PyObject *mod = cls ? PyImport_ImportModule("_asyncio") : NULL;
  PyObject *t = mod ? PyObject_GetAttrString(mod, "Task") : NULL;
  if (t && PyType_Check(t) &&
      ((PyTypeObject *)cls)->tp_dealloc != ((PyTypeObject *)t)->tp_dealloc) {
    subtype_dealloc_fn = ((PyTypeObject *)cls)->tp_dealloc;
    ctask_type = (PyTypeObject *)Py_NewRef(t);
    ctask_dealloc = ctask_type->tp_dealloc;
    ctask_type->tp_dealloc = ctask_dealloc_watched;
  }
  Py_XDECREF(t);
  Py_XDECREF(mod);
  Py_XDECREF(cls);
  PyErr_Clear();
  ERR_RESTORE(exc);
}

/* Whether freeing task's memory always runs ctask_dealloc_watched first. */
LS_HOT static int dealloc_covers(PyObject *task) {
  if (!dealloc_setup_done) dealloc_setup();
  if (!ctask_type) return 0;
  PyTypeObject *t = Py_TYPE(task);
  while (t->tp_dealloc == subtype_dealloc_fn && t->tp_base) t = t->tp_base;
  return t == ctask_type && t->tp_dealloc == ctask_dealloc_watched;
}

/* Gives e a watch on its task: the wrapped dealloc when it covers the task, else a weak
 * reference in the watch table. 0, or -1 with an exception set (a task without weak
 * references, or memory short). */
LS_HOT static int watch_start(task_entry *e) {
  if (dealloc_covers(e->task)) return 0;
  if (!watch_gone && !(watch_gone = PyCFunction_New(&watch_gone_def, NULL))) return -1;
  if (!(e->watch = PyWeakref_NewRef(e->task, watch_gone))) return -1;
  /* a new reference cannot share its address with one in the table, which are all alive */
  if (table_put(&wtab, &wtab_cap, &wtab_len, e, offsetof(task_entry, watch), NULL) < 0) {
    Py_CLEAR(e->watch);
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* Detaches e from its watch: the callback no longer finds it, and dropping the reference
 * unregisters the callback. Runs no Python code. */
static void watch_drop(task_entry *e) {
  if (!e->watch) return;
  table_del(wtab, wtab_cap, &wtab_len, e->watch, offsetof(task_entry, watch));
  Py_CLEAR(e->watch);
}

LS_HOT static int tab_put(task_entry *e, task_entry **old) {
  return table_put(&G.tab, &G.tab_cap, &G.tab_len, e, offsetof(task_entry, task), old);
}

/* Removes the entry of task. */
LS_HOT void tab_del(PyObject *task) {
  table_del(G.tab, G.tab_cap, &G.tab_len, task, offsetof(task_entry, task));
}

LS_HOT void entry_free(task_entry *e) {
  watch_drop(e);
  if (G.cur == e) G.cur = NULL;
  for (int i = 0; i < G.cur_depth && i < CUR_SAVED_MAX; i++)
    if (G.cur_saved[i] == e) G.cur_saved[i] = NULL;
  if (e->sprev) e->sprev->snext = e->snext;
  else if (e->sess && e->sess->entries == e) e->sess->entries = e->snext;
  if (e->snext) e->snext->sprev = e->sprev;
  if (e->sess && e->sess->sum) summary_task_gone(e->sess->sum);
  session_obj *sess = e->sess;
  entry_release(e);
  Py_XDECREF(sess); /* may run code (a session's last reference): e is back in the pool first */
}

void tab_clear(void) {
  /* first no entry can be reached from a callback: freeing one drops a session reference, which
   * may run code that destroys a recorded task */
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) watch_drop(G.tab[i]);
  /* nor from the wrapped dealloc (tab_find answers NULL on an empty table) */
  size_t cap = G.tab_cap;
  G.tab_len = 0;
  for (size_t i = 0; i < cap; i++)
    if (G.tab[i]) { entry_free(G.tab[i]); G.tab[i] = NULL; }
  G.tab_len = 0;
  if (!pool_live) pool_release();
}

LS_HOT task_entry *register_task(session_obj *s, PyObject *task, PyObject *coro, code_info *ci, uint64_t parent_id,
                                 uint64_t t) {
  if (s->ntasks >= s->max_tasks) goto dropped;
  task_entry *e = entry_alloc();
  if (!e) goto dropped;
  e->task = task;
  if (watch_start(e)) { PyErr_Clear(); entry_release(e); goto dropped; }
  e->coro = coro;
  e->sess = (session_obj *)Py_NewRef((PyObject *)s);
  e->id = ++s->next_id;
  e->parent = parent_id;
  e->created = rel(s, t);
  s->ntasks++;
  if (s->sum) summary_task_started(s->sum);
  e->coro_info = ci ? ci : coro_code_info(coro);
  e->snext = s->entries;
  if (s->entries) s->entries->sprev = e;
  s->entries = e;
  task_entry *old = NULL;
  if (tab_put(e, &old) < 0) {
    entry_free(e); /* counted as gone again in the summary */
    s->ntasks--;
    if (s->sum && s->sum->tasks) s->sum->tasks--;
    goto dropped;
  }
  if (old) entry_free(old); /* defensive: callers look the task up before registering */
  return e;
dropped: /* over the cap or out of memory: not recorded, but counted, and the count reaches the
          * server as a drop event (the task's id, if one was taken, stays unused) */
  s->dropped_tasks++;
  ls_session_add_dropped(s->ls, 1);
  return NULL;
}
