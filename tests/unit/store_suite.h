/* store_suite.h — the fixture the two store suites share (test_store.c: what batches write;
 * test_store_queries.c: what the queries, export and the connection settings read back): a fresh
 * SQLite file with the store and its writer per test, a batch put through the writer, a query run
 * and its JSON parsed, rows read on a connection of the test's own. Each suite is its own program,
 * so each has its own copy of the state below. Test code only: a failure fails the test. */
#ifndef LS_STORE_SUITE_H
#define LS_STORE_SUITE_H

#include <check.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "query.h"
#include "store.h"
#include "store_rows.h"
#include "writer.h"
#include "check_run.h"
#include "store_fixture.h"


static char dbpath[512];
static store *st;
static writer *wr;
static metrics mt;
static ingest_limits lim;

static inline void open_all(void)
{
  store_options o;
  store_default_options(&o, dbpath);
  o.readers = 2;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
  metrics_init(&mt);
  ck_assert_int_eq(writer_start(st, &mt, 8, 4, &wr), 0);
}

static inline void close_all(void)
{
  writer_stop(wr);
  store_close(st);
  wr = NULL;
  st = NULL;
}

/* The write connection is the writer thread's while it runs (its housekeeping may be in a
 * transaction on it at any moment): a test reads or checkpoints it directly only between these. */
static inline void writer_pause(void)
{
  writer_stop(wr);
  wr = NULL;
}

static inline void writer_resume(void)
{
  ck_assert_int_eq(writer_start(st, &mt, 8, 4, &wr), 0);
}

static inline void setup(void)
{
  log_set_level(LOG_ERROR);
  const char *tmp = getenv("TMPDIR");
  snprintf(dbpath, sizeof(dbpath), "%s/test_store_%d.db", tmp ? tmp : "/tmp", (int)getpid());
  unlink(dbpath);
  ingest_default_limits(&lim);
  open_all();
}

static inline void teardown(void)
{
  if(st)
    close_all();
  store_fixture_unlink(dbpath);
}

/* Posts one batch through the writer; returns the writer's status, *dup its duplicate flag. */
static inline int put(const char *json, int *dup)
{
  ingest_batch *b = NULL;
  char detail[256];
  int rc = ingest_parse(json, strlen(json), &lim, &b, detail, sizeof(detail));
  ck_assert_msg(rc == 0, "bad test batch: %s", detail);
  int d = 0;
  rc = writer_put(wr, b, &d);
  if(dup)
    *dup = d;
  return rc;
}

typedef struct kv { const char *k, *v; } kv;
static inline const char *kv_get(void *ctx, const char *name)
{
  for(const kv *p = ctx; p->k; p++)
    if(!strcmp(p->k, name))
      return p->v;
  return NULL;
}

/* Runs a query and parses its JSON; NULL when it failed (status in *rc). */
static inline cJSON *q(query_fn fn, const char *id, kv *args, int *rcp)
{
  jbuf out;
  jbuf_init(&out, 1 << 26);
  char detail[256] = "";
  kv none[] = {{NULL, NULL}};
  query_args a = {kv_get, args ? args : none};
  int rc = fn(st, id, &a, &out, detail, sizeof(detail));
  if(rcp)
    *rcp = rc;
  cJSON *j = rc ? NULL : cJSON_Parse(out.data);
  if(!rc)
    ck_assert_msg(j != NULL, "not JSON: %s", out.data);
  jbuf_free(&out);
  return j;
}

static inline int64_t num(const cJSON *o, const char *path)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path);
  ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
  return (int64_t)v->valuedouble;
}

#define B2 "{\"v\":1,\"batch\":\"b2\",\"session\":\"s1\",\"events\":[" \
  "{\"k\":\"step\",\"id\":2,\"t\":300,\"d\":50},{\"k\":\"step\",\"id\":2,\"t\":100,\"d\":20}," \
  "{\"k\":\"await\",\"id\":2,\"t\":120,\"d\":180,\"what\":\"sleep\",\"file\":\"a.py\",\"line\":7,\"func\":\"f\"}," \
  "{\"k\":\"done\",\"id\":2,\"t\":400,\"state\":\"error\",\"exc\":\"ValueError: x\"}," \
  "{\"k\":\"lag\",\"t\":50,\"d\":4000000},{\"k\":\"end\",\"t\":1000}]}"
#define B1 "{\"v\":1,\"batch\":\"b1\",\"session\":\"s1\",\"meta\":{\"name\":\"GET /x\",\"pid\":7," \
  "\"started_unix_ns\":\"1764089000123456789\"},\"events\":[" \
  "{\"k\":\"task\",\"id\":1,\"name\":\"Task-1\",\"coro\":\"main\",\"t\":0}," \
  "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"Task-2\",\"coro\":\"child\",\"t\":100}," \
  "{\"k\":\"task\",\"id\":3,\"parent\":1,\"name\":\"Task-3\",\"coro\":\"child\",\"t\":400}," \
  "{\"k\":\"step\",\"id\":2,\"t\":90,\"d\":5},{\"k\":\"lag\",\"t\":60,\"d\":1000000}," \
  "{\"k\":\"lag\",\"t\":70,\"d\":2000000},{\"k\":\"gc\",\"t\":1},{\"k\":\"drop\",\"n\":2}]}"

/* The rows of sql (its ?1 bound to id) as text, a line a row, its columns joined by '|' (NULL for
 * null), read on a connection of the test's own: what SQL sees, not what a query makes of it. */
static inline void sql_lines(const char *sql, const char *id, char *out, size_t cap)
{
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
  sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
  size_t n = 0;
  out[0] = 0;
  while(sqlite3_step(q) == SQLITE_ROW) {
    for(int c = 0; c < sqlite3_column_count(q); c++) {
      const unsigned char *v = sqlite3_column_text(q, c);
      n += (size_t)snprintf(out + n, cap - n, "%s%s", c ? "|" : "", v ? (const char *)v : "NULL");
      ck_assert_uint_lt(n, cap);
    }
    n += (size_t)snprintf(out + n, cap - n, "\n");
    ck_assert_uint_lt(n, cap);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
}

/* The tasks table's rows of session id ("id|parent|...|first_run" a task). */
static inline void task_rows(const char *id, char *out, size_t cap)
{
  sql_lines("SELECT t.id, t.parent, t.name, t.coro, t.created, t.has_task, t.ended, t.state, t.exc,"
            " t.status, t.busy_ns, t.wait_ns, t.first_run FROM tasks t JOIN sessions s ON s.sid = t.sid"
            " WHERE s.id = ?1 ORDER BY t.id", id, out, cap);
}

#endif
