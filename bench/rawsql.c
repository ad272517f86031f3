/* rawsql.c — the raw-SQLite baseline of the ingest benchmark (see rawsql.h). Statements are
 * the least a store must do for these rows: upsert the session, record the batch id, upsert
 * tasks from task events, update them from done events, append steps, awaits, blocks, lag. */
#include "rawsql.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_SESSION, S_BATCH, S_TASK, S_DONE, S_STEP, S_AWAIT, S_BLOCK, S_LAG, S_BEGIN, S_COMMIT, S_N };

static const char *SQL[S_N] = {
    [S_SESSION] = "INSERT INTO sessions(id, name, service, host, python, pid, started_unix_ns,"
                  " started_ns, has_meta, n_events) VALUES(?1, 'GET /bench', 'bench', 'bench1',"
                  " '3.11.7', 4711, '1764089000123456789', 1764089000123456789, 1, ?2)"
                  " ON CONFLICT(id) DO UPDATE SET n_events = n_events + excluded.n_events"
                  " RETURNING sid",
    [S_BATCH] = "INSERT INTO batches(sid, batch, events) VALUES(?1, ?2, ?3)",
    [S_TASK] = "INSERT INTO tasks(sid, id, parent, name, coro, created, has_task)"
               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT(sid, id) DO UPDATE SET"
               " parent = excluded.parent, name = excluded.name, coro = excluded.coro,"
               " created = excluded.created, has_task = 1",
    [S_DONE] = "INSERT INTO tasks(sid, id, ended, state, exc) VALUES(?1, ?2, ?3, ?4, ?5)"
               " ON CONFLICT(sid, id) DO UPDATE SET ended = excluded.ended,"
               " state = excluded.state, exc = excluded.exc",
    [S_STEP] = "INSERT INTO steps(sid, task, t, d) VALUES(?1, ?2, ?3, ?4)",
    [S_AWAIT] = "INSERT INTO awaits(sid, task, t, d, what, file, line, func)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_BLOCK] = "INSERT INTO blocks(sid, task, t, d, file, line, func, src, stack)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_LAG] = "INSERT INTO lag(sid, t, d) VALUES(?1, ?2, ?3)",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
};

struct rawsql {
  sqlite3 *db;
  sqlite3_stmt *st[S_N];
};

static char *read_file(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s", path);
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t n = fread(buf + len, 1, cap - 1 - len, f);
    len += n;
    if (len < cap - 1) break;
    if (cap >= (16u << 20)) { /* a schema file is small; refuse anything absurd */
      free(buf);
      buf = NULL;
      break;
    }
    char *bigger = realloc(buf, cap * 2);
    if (!bigger) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  fclose(f);
  if (!buf) {
    snprintf(err, errlen, "cannot read %s", path);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

rawsql *rawsql_open(const char *db_path, const char *schema_path, char *err, size_t errlen) {
  char *schema = read_file(schema_path, err, errlen);
  if (!schema) return NULL;
  rawsql *r = calloc(1, sizeof *r);
  if (!r) {
    free(schema);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  char *msg = NULL;
  if (sqlite3_open(db_path, &r->db) != SQLITE_OK ||
      sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(r->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", db_path, msg ? msg : sqlite3_errmsg(r->db));
    sqlite3_free(msg);
    free(schema);
    rawsql_close(r);
    return NULL;
  }
  free(schema);
  for (int i = 0; i < S_N; i++) {
    if (sqlite3_prepare_v3(r->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) != SQLITE_OK) {
      snprintf(err, errlen, "preparing \"%.60s...\": %s (does schema/schema.sql still match?)", SQL[i],
               sqlite3_errmsg(r->db));
      rawsql_close(r);
      return NULL;
    }
  }
  return r;
}

static int step_reset(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

int rawsql_put(rawsql *r, const gen_batch *b, char *err, size_t errlen) {
  sqlite3_stmt **st = r->st;
  if (step_reset(st[S_BEGIN])) goto fail;
  sqlite3_bind_text(st[S_SESSION], 1, b->session->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st[S_SESSION], 2, (sqlite3_int64)b->n);
  if (sqlite3_step(st[S_SESSION]) != SQLITE_ROW) {
    sqlite3_reset(st[S_SESSION]);
    goto fail;
  }
  sqlite3_int64 sid = sqlite3_column_int64(st[S_SESSION], 0);
  sqlite3_reset(st[S_SESSION]);
  sqlite3_bind_int64(st[S_BATCH], 1, sid);
  sqlite3_bind_text(st[S_BATCH], 2, b->batch_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st[S_BATCH], 3, (sqlite3_int64)b->n);
  if (step_reset(st[S_BATCH])) goto fail;
  for (size_t i = 0; i < b->n; i++) {
    const gen_event *e = &b->ev[i];
    sqlite3_stmt *s = NULL;
    switch (e->kind) {
    case GEN_TASK:
      s = st[S_TASK];
      sqlite3_bind_int64(s, 2, e->id);
      sqlite3_bind_int64(s, 3, e->parent);
      bind_text(s, 4, e->name);
      bind_text(s, 5, e->coro);
      sqlite3_bind_int64(s, 6, e->t);
      break;
    case GEN_DONE:
      s = st[S_DONE];
      sqlite3_bind_int64(s, 2, e->id);
      sqlite3_bind_int64(s, 3, e->t);
      bind_text(s, 4, e->state);
      bind_text(s, 5, e->exc);
      break;
    case GEN_STEP:
      s = st[S_STEP];
      sqlite3_bind_int64(s, 2, e->id);
      sqlite3_bind_int64(s, 3, e->t);
      sqlite3_bind_int64(s, 4, e->d);
      break;
    case GEN_AWAIT:
      s = st[S_AWAIT];
      sqlite3_bind_int64(s, 2, e->id);
      sqlite3_bind_int64(s, 3, e->t);
      sqlite3_bind_int64(s, 4, e->d);
      bind_text(s, 5, e->what);
      bind_text(s, 6, e->file);
      sqlite3_bind_int64(s, 7, e->line);
      bind_text(s, 8, e->func);
      break;
    case GEN_BLOCK:
      s = st[S_BLOCK];
      sqlite3_bind_int64(s, 2, e->id);
      sqlite3_bind_int64(s, 3, e->t);
      sqlite3_bind_int64(s, 4, e->d);
      bind_text(s, 5, e->file);
      sqlite3_bind_int64(s, 6, e->line);
      bind_text(s, 7, e->func);
      bind_text(s, 8, e->what);
      bind_text(s, 9, e->stack_json);
      break;
    case GEN_LAG:
      s = st[S_LAG];
      sqlite3_bind_int64(s, 2, e->t);
      sqlite3_bind_int64(s, 3, e->d);
      break;
    default:
      continue;
    }
    sqlite3_bind_int64(s, 1, sid);
    if (step_reset(s)) goto fail;
  }
  if (step_reset(st[S_COMMIT])) goto fail;
  return 0;
fail:
  snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
  sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
  return -1;
}

void rawsql_close(rawsql *r) {
  if (!r) return;
  for (int i = 0; i < S_N; i++) sqlite3_finalize(r->st[i]);
  sqlite3_close(r->db);
  free(r);
}
