/* stats.h — pure statistics over a session's rows: concurrency sweep, lag percentiles,
 * task-tree depths and hot-spot grouping. No I/O, no SQL, no JSON: callers (query.c) load
 * rows from the store and turn results into JSON. Every function returns 0 or LS_ENOMEM. */
#ifndef LS_STATS_H
#define LS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* A task's lifetime: alive on the half-open interval [created, ended).
 * ended < 0 means "no done event": alive until the session's end. */
typedef struct stats_interval {
  int64_t created;
  int64_t ended;
} stats_interval;

/* One point of the concurrency step function: from t on, n tasks are alive. */
typedef struct stats_point {
  int64_t t;
  int64_t n;
} stats_point;

/* Most tasks alive at once. At equal timestamps ends are applied before starts, so a task
 * ending at t and another starting at t never count as overlapping. Intervals with
 * ended <= created (after the session_end substitution) count as alive for no time at all. */
int stats_max_concurrency(const stats_interval *iv, size_t n, int64_t session_end,
                          int64_t *max_out);

/* The step series: one point per distinct instant where the count changes, sorted by t,
 * plus a final point at session_end (count then in force). *out is malloc'd, caller frees.
 * With n == 0 the series is {(0,0),(session_end,0)} (a single point if session_end == 0). */
int stats_concurrency_series(const stats_interval *iv, size_t n, int64_t session_end,
                             stats_point **out, size_t *nout, int64_t *max_out);

/* Reduces a step series (pts sorted by t) in place for a chart px columns wide over [0, end):
 * in each column only the point with the least n and the one with the most (the first of each,
 * in time order, one point when they are the same) stay, and the last point, so the chart's
 * envelope is kept at O(px) points whatever the series' length. Returns the points kept. */
size_t stats_series_envelope(stats_point *pts, size_t n, int64_t end, int64_t px);

/* Lag summary of sample durations (ns). Nearest-rank percentiles: pX is the sample at
 * 1-based rank ceil(X/100 * n) of the sorted samples. All zero when n == 0.
 * `d` is sorted in place. */
typedef struct stats_lag {
  int64_t samples;
  double avg_ms, p50_ms, p95_ms, p99_ms, max_ms;
} stats_lag;
int stats_lag_summary(int64_t *d, size_t n, stats_lag *out);

/* Task tree. Input: id and parent (0 = root) for n tasks, in any order, ids unique.
 * Output per task (same index): depth (roots 0), effective parent (0 when the named parent is
 * absent from the set or when following parents would loop), and a depth-first tree order
 * (parent before children, siblings by created then id) written to order[] as indices. */
typedef struct stats_task {
  int64_t id;
  int64_t parent;
  int64_t created;
  /* outputs */
  int64_t eff_parent;
  int32_t depth;
} stats_task;
int stats_task_tree(stats_task *tasks, size_t n, size_t *order);

/* Hot spots: group await durations by (file, line). Input arrays of n awaits; output groups
 * sorted by total descending (ties: count desc, then file, line ascending). Strings are not
 * copied: groups point into the input. *out malloc'd, caller frees. */
typedef struct stats_await {
  const char *file;
  int64_t line;
  int64_t d;
  const char *func;
  const char *what;
} stats_await;
typedef struct stats_hotspot {
  const char *file;
  int64_t line;
  const char *func;
  const char *what;
  int64_t count, total, max;
} stats_hotspot;
int stats_hotspots(const stats_await *aw, size_t n, stats_hotspot **out, size_t *nout);

#endif
