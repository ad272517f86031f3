/* store_outbox.c — the OTLP outbox's SQL (store.h, "the OTLP outbox"): which session is due, taking
 * it in with its request bodies, handing out the next body, and marking bodies answered, on a
 * connection of the push thread's own. What the bodies hold is otlp_trace.c's; sending them and
 * deciding what an answer means is otlp_push.c's. Part of the store module (store_internal.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_internal.h"

enum ostmt { O_DUE, O_TAKE, O_PART, O_NEXT, O_DEL, O_MARK, O_DEPTH, O_COUNT };

static const char *const osql[O_COUNT] = {
  /* A session that never ends (no `end` event) is due once no batch came for the quiet period;
   * an ended one a little after its last batch, as its batches may arrive in any order. */
  [O_DUE] = "SELECT s.sid, s.id FROM sessions s"
            " WHERE NOT EXISTS (SELECT 1 FROM otlp_sessions o WHERE o.sid = s.sid)"
            " AND ((s.ended = 1 AND s.arrived_s <= ?1) OR s.arrived_s <= ?2)"
            " ORDER BY s.sid LIMIT 1",
  [O_TAKE] = "INSERT INTO otlp_sessions(sid, taken_s, parts, spans, state) VALUES(?1, ?2, ?3, ?4, ?5)",
  [O_PART] = "INSERT INTO otlp_outbox(sid, part, spans, body) VALUES(?1, ?2, ?3, ?4)",
  [O_NEXT] = "SELECT sid, part, spans, body FROM otlp_outbox ORDER BY sid, part LIMIT 1",
  [O_DEL] = "DELETE FROM otlp_outbox WHERE sid = ?1 AND part = ?2",
  /* every right-hand side reads the row as it was before this UPDATE */
  [O_MARK] = "UPDATE otlp_sessions SET sent_parts = sent_parts + ?2, failed_parts = failed_parts + 1 - ?2,"
             " state = CASE WHEN sent_parts + failed_parts + 1 < parts THEN state"
             " WHEN failed_parts + 1 - ?2 > 0 THEN 'failed' ELSE 'sent' END WHERE sid = ?1",
  [O_DEPTH] = "SELECT count(*), count(DISTINCT sid) FROM otlp_outbox",
};

struct store_outbox {
  store_reader rd; /* the connection; rd.st are the read statements of store.c */
  sqlite3_stmt *st[O_COUNT];
};

int store_outbox_open(store *s, store_outbox **out, char *err, size_t errlen)
{
  *out = NULL;
  store_outbox *o = calloc(1, sizeof(*o));
  if(!o)
    return LS_ENOMEM;
  int rc = store_open_conn(s, &o->rd.db, err, errlen);
  /* its own commits checkpoint passively (SQLite's default); the writer's RESTART checkpoints
   * are what keep the WAL short under ingest */
  if(!rc)
    rc = store_exec(o->rd.db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -4096", err, errlen);
  for(int i = 0; !rc && i < O_COUNT; i++) {
    int src = sqlite3_prepare_v3(o->rd.db, osql[i], -1, SQLITE_PREPARE_PERSISTENT, &o->st[i], NULL);
    if(src != SQLITE_OK) {
      snprintf(err, errlen, "preparing outbox statement %d: %s", i, sqlite3_errmsg(o->rd.db));
      rc = store_code_of(src) ? store_code_of(src) : LS_EIO;
    }
  }
  if(rc) {
    store_outbox_close(o);
    return rc;
  }
  *out = o;
  return 0;
}

void store_outbox_close(store_outbox *o)
{
  if(!o)
    return;
  for(int i = 0; i < O_COUNT; i++)
    sqlite3_finalize(o->st[i]);
  store_reader_finalize(&o->rd);
  sqlite3_close(o->rd.db);
  free(o);
}

store_reader *store_outbox_read_begin(store_outbox *o)
{
  sqlite3_exec(o->rd.db, "BEGIN", NULL, NULL, NULL);
  return &o->rd;
}

void store_outbox_read_end(store_outbox *o)
{
  if(!sqlite3_get_autocommit(o->rd.db))
    sqlite3_exec(o->rd.db, "COMMIT", NULL, NULL, NULL);
}

/* Steps a statement that returns no row we need, and resets it. */
static int orun(store_outbox *o, sqlite3_stmt *st)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if(rc != SQLITE_DONE && rc != SQLITE_ROW) {
    log_msg(LOG_WARN, "otlp outbox: %s", sqlite3_errmsg(o->rd.db));
    return store_code_of(rc) ? store_code_of(rc) : LS_EIO;
  }
  return 0;
}

/* Ends a write transaction: committed when rc is 0, else rolled back. */
static int ofinish(store_outbox *o, int rc)
{
  if(!rc)
    rc = store_exec(o->rd.db, "COMMIT", NULL, 0);
  if(rc && !sqlite3_get_autocommit(o->rd.db))
    sqlite3_exec(o->rd.db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

int store_outbox_due(store_outbox *o, int64_t ended_before_s, int64_t quiet_before_s, int64_t *sid,
                     char *id, size_t idlen)
{
  sqlite3_stmt *st = o->st[O_DUE];
  sqlite3_bind_int64(st, 1, ended_before_s);
  sqlite3_bind_int64(st, 2, quiet_before_s);
  int rc = sqlite3_step(st);
  int res = LS_ENOTFOUND;
  if(rc == SQLITE_ROW) {
    *sid = sqlite3_column_int64(st, 0);
    const char *text = (const char *)sqlite3_column_text(st, 1);
    res = text && strlen(text) < idlen ? 0 : LS_EIO; /* ids are at most 128 bytes (ingest.c) */
    if(!res)
      memcpy(id, text, strlen(text) + 1);
  }
  else if(rc != SQLITE_DONE)
    res = store_code_of(rc) ? store_code_of(rc) : LS_EIO;
  sqlite3_reset(st);
  return res;
}

int store_outbox_take(store_outbox *o, int64_t sid, int64_t now_s, const store_outbox_part *parts,
                      size_t n, int64_t spans)
{
  /* IMMEDIATE: take the write lock now (waiting up to the busy timeout for the writer's
   * group commit), not half way through the inserts */
  int rc = store_exec(o->rd.db, "BEGIN IMMEDIATE", NULL, 0);
  if(rc)
    return rc;
  sqlite3_stmt *st = o->st[O_TAKE];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, now_s);
  sqlite3_bind_int64(st, 3, (int64_t)n);
  sqlite3_bind_int64(st, 4, spans);
  sqlite3_bind_text(st, 5, n ? "pending" : "failed", -1, SQLITE_STATIC);
  rc = orun(o, st);
  st = o->st[O_PART];
  for(size_t i = 0; i < n && !rc; i++) {
    if(parts[i].len > (size_t)INT32_MAX) {
      rc = LS_ETOOBIG;
      break;
    }
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, (int64_t)i);
    sqlite3_bind_int64(st, 3, parts[i].spans);
    sqlite3_bind_blob(st, 4, parts[i].body, (int)parts[i].len, SQLITE_STATIC);
    rc = orun(o, st);
  }
  return ofinish(o, rc);
}

int store_outbox_next(store_outbox *o, store_outbox_part *out)
{
  memset(out, 0, sizeof(*out));
  sqlite3_stmt *st = o->st[O_NEXT];
  int rc = sqlite3_step(st);
  int res = LS_ENOTFOUND;
  if(rc == SQLITE_ROW) {
    out->sid = sqlite3_column_int64(st, 0);
    out->part = sqlite3_column_int64(st, 1);
    out->spans = sqlite3_column_int64(st, 2);
    const void *p = sqlite3_column_blob(st, 3);
    out->len = (size_t)sqlite3_column_bytes(st, 3);
    out->body = malloc(out->len ? out->len : 1);
    res = out->body ? 0 : LS_ENOMEM;
    if(out->body && out->len)
      memcpy(out->body, p, out->len);
  }
  else if(rc != SQLITE_DONE)
    res = store_code_of(rc) ? store_code_of(rc) : LS_EIO;
  sqlite3_reset(st);
  return res;
}

int store_outbox_done(store_outbox *o, int64_t sid, int64_t part, int sent)
{
  int rc = store_exec(o->rd.db, "BEGIN IMMEDIATE", NULL, 0);
  if(rc)
    return rc;
  sqlite3_stmt *st = o->st[O_DEL];
  sqlite3_bind_int64(st, 1, sid);
  sqlite3_bind_int64(st, 2, part);
  rc = orun(o, st);
  /* no row: the session was deleted (purged) meanwhile, and its counters with it */
  if(!rc && sqlite3_changes(o->rd.db) > 0) {
    st = o->st[O_MARK];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int(st, 2, sent ? 1 : 0);
    rc = orun(o, st);
  }
  return ofinish(o, rc);
}

int store_outbox_depth(store_outbox *o, int64_t *parts, int64_t *sessions)
{
  sqlite3_stmt *st = o->st[O_DEPTH];
  int rc = sqlite3_step(st);
  if(rc == SQLITE_ROW) {
    *parts = sqlite3_column_int64(st, 0);
    *sessions = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : (store_code_of(rc) ? store_code_of(rc) : LS_EIO);
}
