/* store_series.h — the summary's computed figures and the concurrency series of a session,
 * pre-aggregated once it has ended (schema session_stats, conc_mip) so that reading them costs
 * the same for any session size. Computing is stats.c's; the JSON is query.c's. Part of the
 * store module. */
#ifndef LS_STORE_SERIES_H
#define LS_STORE_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "store.h"

typedef struct store_sstats {
  int64_t tasks, max_concurrency;
  stats_lag lag;
} store_sstats;

/* The figures of session x (duration: its duration_ns): read when stored and current, else
 * computed from its rows; an ended session's are then stored with its concurrency mipmap (on
 * r's connection, as store_rows_ensure does; when that write fails the computed figures are
 * answered all the same). r may begin a new read transaction. */
int store_series_stats(store_reader *r, const store_session *x, int64_t duration, store_sstats *out);

/* Computes and stores the figures of ended session `id` unless they are current (through a reader
 * of s's pool, writing as store_series_stats does): what writer.c's figures thread runs right
 * after a large session's end committed, so that its first summary reads them. 0, LS_ENOTFOUND,
 * or the reads' error (a failed write is logged and not an error). */
int store_series_prepare(store *s, const char *id);

/* 1 when session `id` has ended, has at least min_events events, and its figures (session_stats)
 * or its task keys (task_keys_done, store_keys.h) are not stored as of them; 0 otherwise or on
 * error. On the write connection: writer thread only. One look at the session a call: it runs
 * for every ended session. */
int store_figures_due(store *s, const char *id, int64_t min_events);

/* The stored concurrency series of x reduced for a chart px columns wide: O(px) points from one
 * level of the mipmap, *max the series' maximum. LS_ENOTFOUND when none is stored (a running or
 * small session): the caller computes it from the intervals. *out malloc'd. */
int store_series_concurrency(store_reader *r, const store_session *x, int64_t duration, int64_t px,
                             stats_point **out, size_t *n, int64_t *max);

#endif
