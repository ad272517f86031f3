/* tasks.c — the entries of recorded tasks and the task table (open addressing by task pointer):
 * registering a task in its session, finding, removing and freeing entries. The events about a
 * task are record.c's; the session's own bookkeeping (ids, caps, its list head) is session.c's. */
#include "tasks.h"
#include "session.h"

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
  if (G.cur == e) G.cur = NULL;
  if (e->sprev) e->sprev->snext = e->snext;
  else if (e->sess && e->sess->entries == e) e->sess->entries = e->snext;
  if (e->snext) e->snext->sprev = e->sprev;
  Py_XDECREF(e->sess);
  PyMem_Free(e);
}

void tab_clear(void) {
  for (size_t i = 0; i < G.tab_cap; i++)
    if (G.tab[i]) { entry_free(G.tab[i]); G.tab[i] = NULL; }
  G.tab_len = 0;
}

task_entry *register_task(session_obj *s, PyObject *task, PyObject *coro, uint64_t parent_id,
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
