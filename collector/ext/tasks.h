/* tasks.h — what tasks.c offers: the entries of recorded tasks and the table that finds a task's
 * entry by its pointer (tab_find is inline here: it runs on every step). What is recorded about a
 * task is record.c's; which session a task belongs to is decided by factory.c and session.c. */
#ifndef LS_EXT_TASKS_H
#define LS_EXT_TASKS_H

#include "module.h"
#include "code.h"

#pragma GCC visibility push(hidden)

/* The longest name an await event carries, NUL included (longer ones are cut). */
#define LS_WHAT_MAX 96
/* How an entry's await names what it awaits (task_entry.awaiting, when nonzero). */
enum { WHAT_TEXT = 1, WHAT_CODE, WHAT_LIT };

/* Built with ASan, entries are PyMem_Calloc blocks each (tasks.c), as they were before the pool:
 * a stale one is reported as a use after free, and the 16-byte aligned block must not be given a
 * type that says 64 (UBSan's alignment check). */
#if defined(__SANITIZE_ADDRESS__)
#define LS_ENTRY_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LS_ENTRY_POOL 0
#endif
#endif
#ifndef LS_ENTRY_POOL
#define LS_ENTRY_POOL 1
#define LS_LINE_ALIGNED __attribute__((aligned(64)))
#else
#define LS_LINE_ALIGNED
#endif

/* Laid out by use, 64-byte aligned, two lines (entries come from tasks.c's pool): the first holds
 * what every step reads or writes (the table's key, the await in progress, what it awaits by
 * pointer), the second the fields of the task's start and end, so a task's steps touch one or two
 * lines of its entry where a pymalloc block of 216 bytes at any offset touched four or five. The
 * copy of a heap type's name an await may need (rare: most names outlive the entry) is not in the
 * entry but beside it (entry_what), so 9k live entries span 1.2 MB, not 2.4 MB. */
struct task_entry {
  /* ---- line 0: every step */
  PyObject *task;          /* borrowed: the key; entries go away when the task ends or is
                            * destroyed (watch), before its address can be reused */
  PyObject *coro;          /* borrowed: the task holds it while pending */
  session_obj *sess;       /* strong */
  uint64_t id;
  /* the await in progress, if any: emitted when the next step starts (its end) */
  uint64_t await_t;
  code_info *await_at;     /* the user's frame's code, NULL when unknown */
  int32_t await_line;
  uint8_t awaiting;        /* 0: no await in progress; else how it names what it awaits (WHAT_*) */
  uint8_t announced;
  uint16_t nwhat;          /* WHAT_TEXT, WHAT_LIT: length of what_p's text (< LS_WHAT_MAX) */
  union {
    const char *what_p;    /* WHAT_TEXT: a string that outlives the entry (a static type's name)
                            * or entry_what(e); WHAT_LIT: one of record.c's literals */
    code_info *what_ci;    /* WHAT_CODE: a cached code_info (it outlives every entry), whose
                            * qualname it awaits and whose string number the record uses */
  };
  /* ---- line 1: the task's start, end and announcement */
  struct task_entry *snext LS_LINE_ALIGNED, *sprev; /* the session's list of its live entries; snext also links
                                     * the pool's free entries */
  PyObject *watch;         /* strong: a weak reference to task whose callback ends this entry when
                            * the task is destroyed without its end being seen; NULL when the C
                            * Task type's wrapped dealloc does that instead (tasks.c) */
  uint64_t parent, created;
  code_info *coro_info;    /* may be NULL */
} LS_LINE_ALIGNED;

/* The room of LS_WHAT_MAX bytes beside entry e for a copy of what its await awaits (tasks.c). */
char *entry_what(task_entry *e);

/* Saves G.cur before a nested step or factory call; the level to give cur_pop. */
static LS_ALWAYS_INLINE int cur_push(void) {
  int d = G.cur_depth++;
  if (d < CUR_SAVED_MAX) G.cur_saved[d] = G.cur;
  return d;
}

/* Gives G.cur back as saved at level d, or NULL when entry_free freed it meanwhile. */
static LS_ALWAYS_INLINE void cur_pop(int d) {
  G.cur_depth = d;
  G.cur = d < CUR_SAVED_MAX ? G.cur_saved[d] : NULL;
}

/* The entry of task, or NULL. */
static LS_ALWAYS_INLINE task_entry *tab_find(PyObject *task) {
  if (!G.tab_len) return NULL;
  size_t mask = G.tab_cap - 1, j = ptr_hash(task) & mask;
  while (G.tab[j]) {
    if (G.tab[j]->task == task) return G.tab[j];
    j = (j + 1) & mask;
  }
  return NULL;
}

/* task.get_coro() (a new reference; NULL with an exception set), read from the C Task's field when
 * setup found its offset: a request adopts its task without the method's lookup and call. */
static LS_ALWAYS_INLINE PyObject *task_get_coro(PyObject *task) {
  if (G.task_coro_off && PyObject_TypeCheck(task, G.c_task_type)) {
    PyObject *c = *(PyObject **)((char *)task + G.task_coro_off);
    if (c) return Py_NewRef(c);
  }
  return PyObject_CallMethodNoArgs(task, G.s_get_coro);
}

void tab_del(PyObject *task);
/* Frees every entry and empties the table (stop, and a forked child). */
void tab_clear(void);
void entry_free(task_entry *e);
/* A new entry for task in session s, in the table: NULL when the session's cap is reached or
 * memory is short. ci: coro's code_info when the caller has it already (NULL: looked up). */
task_entry *register_task(session_obj *s, PyObject *task, PyObject *coro, code_info *ci, uint64_t parent_id,
                          uint64_t t);

#pragma GCC visibility pop

#endif
