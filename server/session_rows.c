/* session_rows.c — one session's rows read into memory (session_rows.h) through the store's
 * typed loaders. Which connection and transaction is the caller's choice. */
#include "session_rows.h"

#include <stdlib.h>
#include <string.h>

void session_rows_free(session_rows *w)
{
  free(w->tasks);
  free(w->steps);
  free(w->lag);
  free(w->aw);
  free(w->bl);
  arena_free(&w->ar);
  memset(w, 0, sizeof(*w));
}

int session_rows_load(store_reader *r, const char *id, session_rows *w)
{
  memset(w, 0, sizeof(*w));
  arena_init(&w->ar);
  int rc = store_find_session(r, id, &w->ar, &w->x);
  if(!rc)
    rc = store_load_tasks(r, w->x.sid, &w->ar, &w->tasks, &w->nt);
  if(!rc)
    rc = store_load_steps(r, w->x.sid, &w->steps, &w->ns);
  if(!rc)
    rc = store_load_awaits(r, w->x.sid, 0, &w->ar, &w->aw, &w->na);
  if(!rc)
    rc = store_load_blocks(r, w->x.sid, &w->ar, &w->bl, &w->nb);
  if(!rc)
    rc = store_load_lag(r, w->x.sid, &w->lag, &w->nl);
  if(rc)
    session_rows_free(w);
  return rc;
}

int session_rows_read(store *s, const char *id, session_rows *w)
{
  store_reader *r = store_reader_acquire(s);
  int rc = session_rows_load(r, id, w);
  store_reader_release(s, r);
  return rc;
}
