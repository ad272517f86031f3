/* query.h — the REST read handlers: parameters → store reads → stats/lod → JSON text, in the
 * shapes docs/api.md fixes. No HTTP here: http.c routes and turns the status into a response. */
#ifndef LS_QUERY_H
#define LS_QUERY_H

#include <stddef.h>

#include "errors.h"
#include "jbuf.h"
#include "store.h"

/* Query-string lookup supplied by the caller: the value of `name`, or NULL. */
typedef struct query_args {
  const char *(*get)(void *ctx, const char *name);
  void *ctx;
} query_args;

/* Every handler: 0 and JSON in out; LS_ENOTFOUND for an unknown session; LS_EINVAL with a
 * reason in detail for a bad parameter; LS_ENOMEM / LS_ETOOBIG / LS_EIO otherwise. */
typedef int (*query_fn)(store *s, const char *id, const query_args *a, jbuf *out, char *detail,
                        size_t dlen);

int query_sessions(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_session(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_tasks(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_awaits(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_blocks(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_lag(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_concurrency(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
int query_timeline(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);

int query_endpoints(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
/* 1 when /tasks of session id reads and orders every task (the whole list, or a page of a session
 * whose sort keys are not stored) and the session is large (100,000 events or more): http.c runs
 * it off its threads. */
int query_tasks_heavy(store *s, const char *id, const query_args *a);
/* GET /sessions/{id}/rows: a window of the task tree in tree order (query_rows.c). */
int query_rows(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);
/* 1 when a /rows of session id must build its task tree first (seconds at 1M tasks): http.c runs
 * such a request off its threads. 0 when the tree is current or there is no such session. */
int query_rows_must_build(store *s, const char *id);
int query_compare(store *s, const char *id, const query_args *a, jbuf *out, char *detail, size_t dlen);

/* The /timeline answer of the view [from, to) (to -1: the session's end) px columns wide for
 * lanes tasks[0..n) (sorted, unique), on an open reader: what /rows embeds with its window;
 * lanes_only leaves out the session-wide blocks and lag (only=lanes). */
int query_timeline_on(store_reader *r, arena *ar, const store_session *x, int64_t from, int64_t to, int64_t px,
                      const int64_t *tasks, size_t ntasks, int lanes_only, jbuf *out, char *detail, size_t dlen);
/* The `only=` parameter of /timeline and /rows: "lanes" sets *lanes_only, "" clears it; 0, or -1
 * for any other value. */
int query_parse_only(const char *v, int *lanes_only);

/* The value of query parameter `name`, or NULL. */
static inline const char *query_arg(const query_args *a, const char *name)
{
  return a && a->get ? a->get(a->ctx, name) : NULL;
}

/* LS_EINVAL with msg as the detail (what the handlers answer for a bad parameter). */
int query_invalid(char *detail, size_t dlen, const char *msg);

/* Parses a decimal integer in [lo, hi]; 0 or LS_EINVAL. */
int query_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* "1,2,3" (at most 2000 ids in [0, 2^53)) → sorted unique ids in *out (malloc'd, the caller
 * frees); LS_EINVAL for anything else, LS_ENOMEM. */
int query_parse_ids(const char *s, int64_t **out, size_t *n);

#endif
