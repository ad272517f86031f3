/* summary.h — what summary.c offers: a session's summary kept in-process while it records (task
 * count, concurrency, lag histogram, the longest blocks with their stacks, await hot spots by
 * file:line), bounded in memory, for `loopscope run`'s terminal summary and the pytest plugin.
 * Only sessions opened with a summary keep one; the others pay a NULL test per event. */
#ifndef LS_EXT_SUMMARY_H
#define LS_EXT_SUMMARY_H

#include "module.h"

#pragma GCC visibility push(hidden)

#define SUM_TOP_BLOCKS 10     /* the longest blocks kept, with their stacks */
#define SUM_SPOTS_MAX 1024    /* distinct await points kept; awaits at others are only counted */
#define SUM_LAG_BUCKETS 272   /* log-linear buckets of microseconds: 8 per power of two */

typedef struct sum_block {
  uint64_t d, t, task;      /* duration, start (ns since the session's start), task id (0: none) */
  PyObject *stack;          /* strong: list of (file, line, func, src), outermost first, or NULL */
} sum_block;

typedef struct sum_spot {
  PyObject *code;           /* strong: the code object of the awaiting frame, NULL: free slot */
  int32_t line;
  uint64_t count, total, max;
  char what[48];            /* what the first await seen there waited on */
} sum_spot;

typedef struct ls_summary {
  uint64_t tasks, live, max_live;
  uint64_t blocks, blocked_ns;                /* every stall of the session's loop */
  uint64_t blocks_elsewhere, blocked_ns_elsewhere; /* of those, caused outside the session */
  int ntop;
  sum_block top[SUM_TOP_BLOCKS];             /* longest first */
  uint64_t lag_n, lag_sum, lag_max;
  uint64_t lag_hist[SUM_LAG_BUCKETS];
  uint64_t awaits, await_ns, spots_missed;   /* awaits, their time, awaits at points not kept */
  sum_spot *spots;                           /* open addressing on (code, line), grows to a cap */
  size_t spots_cap, spots_len;
  uint64_t sessions;                         /* sessions merged into this one (the run's total) */
} ls_summary;

/* A new empty summary (PyMem), or NULL when memory is short (no exception set). */
ls_summary *summary_new(void);
void summary_free(ls_summary *s);
static LS_ALWAYS_INLINE void summary_task_started(ls_summary *s) {
  s->tasks++;
  if (++s->live > s->max_live) s->max_live = s->live;
}
static LS_ALWAYS_INLINE void summary_task_gone(ls_summary *s) {
  if (s->live) s->live--;
}
void summary_lag(ls_summary *s, uint64_t d);
/* An await of d ns at line of code (may be NULL: counted, not kept) on `what`. */
void summary_await(ls_summary *s, PyObject *code, int32_t line, const char *what, size_t nwhat, uint64_t d);
/* A block of d ns at t in task (0: none); elsewhere: caused outside the session (counted in
 * blocks too, so blocks stays "every stall of the loop" as before). */
void summary_block(ls_summary *s, uint64_t task, uint64_t t, uint64_t d, PyObject *stack, int elsewhere);
/* Adds src into dst (the run's total of per-request sessions). */
void summary_merge(ls_summary *dst, const ls_summary *src);
/* The summary as a dict (new reference), or NULL with an exception set. */
PyObject *summary_dict(const ls_summary *s);

/* Module functions: summary_total(on) starts (True) or stops keeping every session's summary
 * and their total; summary_total() returns the total as a dict, or None. */
PyObject *mod_summary_total(PyObject *mod, PyObject *args);

#pragma GCC visibility pop

#endif
