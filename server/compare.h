/* compare.h — fast vs slow, side by side, as pure functions: what differs between two sessions
 * (tasks present in one only, matched by coroutine name and parent path; await points and blocks
 * by file:line; the loop's lag), ordered by how much each explains the difference in duration.
 * No I/O, no SQL, no JSON: query_compare.c loads the rows and writes the answer. */
#ifndef LS_COMPARE_H
#define LS_COMPARE_H
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "errors.h"

typedef struct cmp_task {
  int64_t id, parent, created, ended; /* ended -1: no done (alive until the session's end) */
  const char *coro;
} cmp_task;

/* An await point summed (n awaits, total ns) or a block (n 1, total d); what: the awaited object
 * or the block's source line. */
typedef struct cmp_point {
  const char *file, *func, *what;
  int64_t line, n, total;
} cmp_point;

typedef struct cmp_side {
  int64_t duration;
  const cmp_task *tasks;
  size_t ntasks;
  const cmp_point *awaits, *blocks;
  size_t nawaits, nblocks;
  int64_t lag_samples, lag_max;
} cmp_side;

enum { CMP_TASK = 0, CMP_AWAIT = 1, CMP_BLOCK = 2, CMP_LAG = 3 };

/* One difference. For CMP_TASK: what is the coroutine, path its ancestors' coroutines and its own
 * joined by " > " (from the root), counts the tasks at that path, ns their summed lifetimes. For
 * CMP_AWAIT / CMP_BLOCK: the point and its counts and summed durations. For CMP_LAG: counts are
 * the lag samples, ns the longest sample. delta = b_ns - a_ns. */
typedef struct cmp_diff {
  int kind;
  const char *file, *func, *what, *path;
  int64_t line, a_count, b_count, a_ns, b_ns, delta;
} cmp_diff;

/* The differences between a and b, most explaining first: by delta in the direction of b's
 * duration less a's, descending (what grew in the slower one first; a tie in duration counts as b
 * slower), then kind, file or path, line. Only differences: an await point
 * or block whose count and time match, a task path with the same number of tasks on both sides,
 * equal lag, are left out. Paths are written into ar. *out malloc'd. 0 or LS_ENOMEM. */
int cmp_diffs(const cmp_side *a, const cmp_side *b, arena *ar, cmp_diff **out, size_t *n);
#endif
