/* session_rows.h — every row of one session, read in one snapshot and held in memory: what the
 * exports (export.c) and the OTLP trace builder (otlp_trace.c) write out. Reading is store.c's;
 * what the rows become is the writers'. */
#ifndef LS_SESSION_ROWS_H
#define LS_SESSION_ROWS_H

#include <stddef.h>

#include "arena.h"
#include "store.h"

typedef struct session_rows {
  arena ar;            /* the text of every row */
  store_session x;
  store_task *tasks;   /* in the store's order (by id) */
  store_step *steps;   /* by task, t */
  store_step *lag;     /* by t */
  store_await *aw;     /* longest first */
  store_block *bl;     /* by t */
  size_t nt, ns, nl, na, nb;
} session_rows;

/* Reads session `id` through r (inside r's read transaction, so every table is seen at the same
 * moment). 0, LS_ENOTFOUND, LS_ENOMEM or LS_EIO; on failure nothing is left to free. */
int session_rows_load(store_reader *r, const char *id, session_rows *w);
/* The same through a reader from s's pool, in a read transaction of its own. */
int session_rows_read(store *s, const char *id, session_rows *w);
void session_rows_free(session_rows *w);

#endif
