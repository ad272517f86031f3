/* query_internal.h — what the query handlers' files (query.c, query_timeline.c) share and
 * nobody else sees: the frame of a per-session query. */
#ifndef LS_QUERY_INTERNAL_H
#define LS_QUERY_INTERNAL_H

#include <stdint.h>

#include "arena.h"
#include "jbuf.h"
#include "store.h"

#define TWO_POW_53 9007199254740992LL

/* One query of one stored session: its reader, the arena its strings live in, its row, and what
 * the handler parsed from the request before the session was looked up. */
typedef struct session_query {
  store_reader *r;
  arena *ar;
  const store_session *x;
  jbuf *out;
  const void *in;
  char *detail;
  size_t dlen;
} session_query;

/* The frame of every per-session query: find the session (LS_ENOTFOUND if it is not there), run
 * body on it, give the reader back. The answer is body's error, else the output's. */
int query_in_session(store *s, const char *id, jbuf *out, const void *in, char *detail, size_t dlen,
                     int (*body)(const session_query *q));

/* A session's length in ns as the page shows it: its end, or its last event while it records. */
int64_t query_duration_of(const store_session *x);

/* JSON pieces both files write (query.c): an integer or null (0 = none), an await as /awaits
 * lists it (with its task or not), a block's `from_session`/`from_task` cause. */
void query_await_json(jbuf *o, const store_await *w, int with_task);
void query_opt_i64(jbuf *o, int64_t v);
void query_block_cause(jbuf *o, const store_block *b);

#endif
