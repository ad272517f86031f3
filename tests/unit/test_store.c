/* test_store.c — Check suite for server/store.c, writer.c, query.c and export.c together on a
 * real SQLite file: batches of a session in reverse order, idempotent retries, per-task sums,
 * concurrency ties and open tasks, awaits/hot spots, LOD bounds, export round trip, deletes,
 * schema version checks and the connection settings (WAL, synchronous=NORMAL). */
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

static void open_all(void)
{
  store_options o;
  store_default_options(&o, dbpath);
  o.readers = 2;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
  metrics_init(&mt);
  ck_assert_int_eq(writer_start(st, &mt, 8, 4, &wr), 0);
}

static void close_all(void)
{
  writer_stop(wr);
  store_close(st);
  wr = NULL;
  st = NULL;
}

/* The write connection is the writer thread's while it runs (its housekeeping may be in a
 * transaction on it at any moment): a test reads or checkpoints it directly only between these. */
static void writer_pause(void)
{
  writer_stop(wr);
  wr = NULL;
}

static void writer_resume(void)
{
  ck_assert_int_eq(writer_start(st, &mt, 8, 4, &wr), 0);
}

static void setup(void)
{
  log_set_level(LOG_ERROR);
  const char *tmp = getenv("TMPDIR");
  snprintf(dbpath, sizeof(dbpath), "%s/test_store_%d.db", tmp ? tmp : "/tmp", (int)getpid());
  unlink(dbpath);
  ingest_default_limits(&lim);
  open_all();
}

static void teardown(void)
{
  if(st)
    close_all();
  store_fixture_unlink(dbpath);
}

/* Posts one batch through the writer; returns the writer's status, *dup its duplicate flag. */
static int put(const char *json, int *dup)
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
static const char *kv_get(void *ctx, const char *name)
{
  for(const kv *p = ctx; p->k; p++)
    if(!strcmp(p->k, name))
      return p->v;
  return NULL;
}

/* Runs a query and parses its JSON; NULL when it failed (status in *rc). */
static cJSON *q(query_fn fn, const char *id, kv *args, int *rcp)
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

static int64_t num(const cJSON *o, const char *path)
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

START_TEST(reverse_order_and_retries)
{
  int dup = -1;
  ck_assert_int_eq(put(B2, &dup), 0);
  ck_assert_int_eq(dup, 0);
  ck_assert_int_eq(put(B1, &dup), 0);
  ck_assert_int_eq(dup, 0);
  ck_assert_int_eq(put(B2, &dup), 0); /* a retry: answered, stored once */
  ck_assert_int_eq(dup, 1);
  ck_assert_int_eq(put(B1, &dup), 0);
  ck_assert_int_eq(dup, 1);
  ck_assert_int_eq(atomic_load(&mt.batches), 2);
  ck_assert_int_eq(atomic_load(&mt.duplicates), 2);
  ck_assert_int_eq(atomic_load(&mt.unknown_events), 1);

  cJSON *s = q(query_session, "s1", NULL, NULL);
  ck_assert_str_eq(cJSON_GetObjectItem(s, "name")->valuestring, "GET /x");
  ck_assert_int_eq(num(s, "duration_ns"), 1000);
  ck_assert_int_eq(num(s, "tasks"), 3);
  /* 1 [0,1000) 2 [100,400) 3 [400,1000): 3 starts when 2 ends, so never three at once */
  ck_assert_int_eq(num(s, "max_concurrency"), 2);
  ck_assert_int_eq(num(s, "awaits"), 1);
  ck_assert_int_eq(num(s, "dropped"), 2);
  ck_assert_int_eq(num(s, "unknown_events"), 1);
  ck_assert_int_eq(num(s, "pid"), 7);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "ended")));
  cJSON *lag = cJSON_GetObjectItem(s, "lag");
  ck_assert_int_eq(num(lag, "samples"), 3);
  ck_assert(cJSON_GetObjectItem(lag, "p50_ms")->valuedouble == 2.0);
  ck_assert(cJSON_GetObjectItem(lag, "max_ms")->valuedouble == 4.0);
  ck_assert(cJSON_GetObjectItem(lag, "avg_ms")->valuedouble == 7.0 / 3.0 ||
            fabs(cJSON_GetObjectItem(lag, "avg_ms")->valuedouble - 7.0 / 3.0) < 1e-6);
  cJSON_Delete(s);

  cJSON *t = q(query_tasks, "s1", NULL, NULL);
  cJSON *tasks = cJSON_GetObjectItem(t, "tasks");
  ck_assert_int_eq(cJSON_GetArraySize(tasks), 3);
  cJSON *t1 = cJSON_GetArrayItem(tasks, 0), *t2 = cJSON_GetArrayItem(tasks, 1), *t3 = cJSON_GetArrayItem(tasks, 2);
  ck_assert_int_eq(num(t1, "id"), 1);
  ck_assert_int_eq(num(t2, "id"), 2);
  ck_assert_int_eq(num(t3, "id"), 3);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t1, "children")), 2);
  ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(t1, "children"), 0)->valueint, 2);
  ck_assert_int_eq(num(t2, "depth"), 1);
  ck_assert_int_eq(num(t2, "parent"), 1);
  ck_assert_int_eq(num(t2, "busy_ns"), 75);     /* 50 + 20 + 5 across both batches */
  ck_assert_int_eq(num(t2, "wait_ns"), 180);
  ck_assert_int_eq(num(t2, "first_run"), 90);   /* the earliest step, from the later batch */
  ck_assert_int_eq(num(t2, "ended"), 400);
  ck_assert_str_eq(cJSON_GetObjectItem(t2, "state")->valuestring, "error");
  ck_assert_str_eq(cJSON_GetObjectItem(t2, "exc")->valuestring, "ValueError: x");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(t1, "first_run")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(t1, "ended")));
  cJSON_Delete(t);

  cJSON *c = q(query_concurrency, "s1", NULL, NULL);
  ck_assert_int_eq(num(c, "max"), 2);
  cJSON *series = cJSON_GetObjectItem(c, "series");
  /* (0,1) (100,2) (1000,...) — at 400 one ends and one starts: no change, no point */
  ck_assert_int_eq(cJSON_GetArraySize(series), 3);
  ck_assert_int_eq(num(cJSON_GetArrayItem(series, 1), "t"), 100);
  ck_assert_int_eq(num(cJSON_GetArrayItem(series, 2), "t"), 1000);
  cJSON_Delete(c);

  cJSON *l = q(query_lag, "s1", NULL, NULL);
  cJSON *samples = cJSON_GetObjectItem(l, "samples");
  ck_assert_int_eq(cJSON_GetArraySize(samples), 3);
  ck_assert_int_eq(num(cJSON_GetArrayItem(samples, 0), "t"), 50);
  cJSON_Delete(l);
}
END_TEST

/* The same step or await sent again in another batch (not a retry): stored once, summed once. */
START_TEST(repeated_events_in_new_batches)
{
  ck_assert_int_eq(put(B1, NULL), 0);
  ck_assert_int_eq(put(B2, NULL), 0);
  const char *again = "{\"v\":1,\"batch\":\"b2-resent\",\"session\":\"s1\",\"events\":["
                      "{\"k\":\"step\",\"id\":2,\"t\":300,\"d\":50},{\"k\":\"step\",\"id\":2,\"t\":500,\"d\":1},"
                      "{\"k\":\"await\",\"id\":2,\"t\":120,\"d\":180}]}";
  int dup = -1;
  ck_assert_int_eq(put(again, &dup), 0);
  ck_assert_int_eq(dup, 0);
  cJSON *t = q(query_tasks, "s1", NULL, NULL);
  cJSON *t2 = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "tasks"), 1);
  ck_assert_int_eq(num(t2, "busy_ns"), 76); /* 75 + only the new step at 500 */
  ck_assert_int_eq(num(t2, "wait_ns"), 180);
  cJSON_Delete(t);
  cJSON *s = q(query_session, "s1", NULL, NULL);
  ck_assert_int_eq(num(s, "awaits"), 1);
  cJSON_Delete(s);
}
END_TEST

/* The rows of sql (its ?1 bound to id) as text, a line a row, its columns joined by '|' (NULL for
 * null), read on a connection of the test's own: what SQL sees, not what a query makes of it. */
static void sql_lines(const char *sql, const char *id, char *out, size_t cap)
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
static void task_rows(const char *id, char *out, size_t cap)
{
  sql_lines("SELECT t.id, t.parent, t.name, t.coro, t.created, t.has_task, t.ended, t.state, t.exc,"
            " t.status, t.busy_ns, t.wait_ns, t.first_run FROM tasks t JOIN sessions s ON s.sid = t.sid"
            " WHERE s.id = ?1 ORDER BY t.id", id, out, cap);
}

/* A task's row is one upsert per batch (its task, done, steps and awaits together): whether a
 * session's events come in one batch or split over several in any order, the rows are the same;
 * within a batch the last task or done event of a task is the one kept. */
#define EV_TASKS "{\"k\":\"task\",\"id\":1,\"name\":\"Task-1\",\"coro\":\"main\",\"t\":0}," \
  "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"Task-2\",\"coro\":\"child\",\"t\":100}"
#define EV_DONES "{\"k\":\"done\",\"id\":2,\"t\":400,\"state\":\"error\",\"exc\":\"ValueError: x\"}," \
  "{\"k\":\"done\",\"id\":1,\"t\":900,\"state\":\"ok\",\"status\":201}," \
  "{\"k\":\"done\",\"id\":5,\"t\":950,\"state\":\"cancelled\"}"
#define EV_WORK "{\"k\":\"step\",\"id\":2,\"t\":300,\"d\":50},{\"k\":\"step\",\"id\":2,\"t\":110,\"d\":20}," \
  "{\"k\":\"await\",\"id\":2,\"t\":130,\"d\":170,\"what\":\"sleep\",\"file\":\"a.py\",\"line\":7,\"func\":\"f\"}," \
  "{\"k\":\"step\",\"id\":1,\"t\":0,\"d\":10},{\"k\":\"await\",\"id\":1,\"t\":10,\"d\":890}," \
  "{\"k\":\"step\",\"id\":7,\"t\":500,\"d\":3}"
#define BATCH(b, sess, evs) "{\"v\":1,\"batch\":\"" b "\",\"session\":\"" sess "\",\"events\":[" evs "]}"
START_TEST(one_row_per_task_whatever_the_batches)
{
  ck_assert_int_eq(put(BATCH("all", "one", EV_TASKS "," EV_DONES "," EV_WORK), NULL), 0);
  ck_assert_int_eq(put(BATCH("c", "split", EV_DONES), NULL), 0);
  ck_assert_int_eq(put(BATCH("b", "split", EV_WORK), NULL), 0);
  ck_assert_int_eq(put(BATCH("a", "split", EV_TASKS), NULL), 0);
  /* task events first renamed, then as above; a done first said ok, then error: the last wins */
  ck_assert_int_eq(put(BATCH("x", "last", "{\"k\":\"task\",\"id\":2,\"parent\":9,\"name\":\"old\",\"coro\":\"c\",\"t\":1},"
                             "{\"k\":\"done\",\"id\":2,\"t\":1,\"state\":\"ok\",\"status\":500},"
                             EV_TASKS "," EV_DONES "," EV_WORK), NULL), 0);
  char one[2048], split[2048], last[2048];
  task_rows("one", one, sizeof(one));
  task_rows("split", split, sizeof(split));
  task_rows("last", last, sizeof(last));
  ck_assert_str_eq(one,
                   "1|0|Task-1|main|0|1|900|ok|NULL|201|10|890|0\n"
                   "2|1|Task-2|child|100|1|400|error|ValueError: x|NULL|70|170|110\n"
                   "5|0|NULL|NULL|NULL|0|950|cancelled|NULL|NULL|0|0|NULL\n"
                   "7|0|NULL|NULL|NULL|0|NULL|NULL|NULL|NULL|3|0|500\n");
  ck_assert_str_eq(split, one);
  ck_assert_str_eq(last, one);
  /* the same with one task id far from the rest: merged after a sort, not by slots (store_put.c's
   * merge_parts), to the same rows */
  ck_assert_int_eq(put(BATCH("y", "sparse", "{\"k\":\"task\",\"id\":2,\"parent\":9,\"name\":\"old\",\"coro\":\"c\",\"t\":1},"
                             "{\"k\":\"done\",\"id\":2,\"t\":1,\"state\":\"ok\",\"status\":500},"
                             "{\"k\":\"task\",\"id\":4000000000,\"name\":\"Far\",\"coro\":\"c\",\"t\":3},"
                             EV_TASKS "," EV_DONES "," EV_WORK), NULL), 0);
  char sparse[2048], want[2048 + 64];
  task_rows("sparse", sparse, sizeof(sparse));
  snprintf(want, sizeof(want), "%s4000000000|0|Far|c|3|1|NULL|NULL|NULL|NULL|0|0|NULL\n", one);
  ck_assert_str_eq(sparse, want);
  /* eleven tasks of a new session go in 8 + 2 + 1 to a statement: the same rows as one by one */
  static char wide[8192], parts[3][4096];
  size_t n = (size_t)snprintf(wide, sizeof(wide), "{\"v\":1,\"batch\":\"w\",\"session\":\"wide\",\"events\":[");
  size_t pn[3];
  for(int b = 0; b < 3; b++)
    pn[b] = (size_t)snprintf(parts[b], sizeof(parts[b]), "{\"v\":1,\"batch\":\"p%d\",\"session\":\"wide-split\",\"events\":[", b);
  for(int id = 1; id <= 11; id++) {
    char ev[3][256];
    snprintf(ev[0], sizeof(ev[0]), "{\"k\":\"task\",\"id\":%d,\"parent\":%d,\"name\":\"T%d\",\"coro\":\"c\",\"t\":%d}", id,
             id > 1 ? id - 1 : 0, id, id * 10);
    snprintf(ev[1], sizeof(ev[1]), "{\"k\":\"step\",\"id\":%d,\"t\":%d,\"d\":%d}", id, id * 10 + 1, id);
    snprintf(ev[2], sizeof(ev[2]), "{\"k\":\"done\",\"id\":%d,\"t\":%d,\"state\":\"ok\"%s}", id, id * 10 + 5,
             id % 3 ? "" : ",\"status\":200");
    for(int e = 0; e < (id % 4 ? 3 : 2); e++) { /* every fourth task has no done event */
      n += (size_t)snprintf(wide + n, sizeof(wide) - n, "%s%s", id == 1 && e == 0 ? "" : ",", ev[e]);
      pn[2 - e] += (size_t)snprintf(parts[2 - e] + pn[2 - e], sizeof(parts[0]) - pn[2 - e], "%s%s",
                                    parts[2 - e][pn[2 - e] - 1] == '[' ? "" : ",", ev[e]);
    }
  }
  snprintf(wide + n, sizeof(wide) - n, "]}");
  ck_assert_int_eq(put(wide, NULL), 0);
  for(int b = 0; b < 3; b++) {
    snprintf(parts[b] + pn[b], sizeof(parts[b]) - pn[b], "]}");
    ck_assert_int_eq(put(parts[b], NULL), 0);
  }
  static char wide_rows[4096], split_rows[4096];
  task_rows("wide", wide_rows, sizeof(wide_rows));
  task_rows("wide-split", split_rows, sizeof(split_rows));
  ck_assert_str_eq(wide_rows, split_rows);
  ck_assert_ptr_nonnull(strstr(wide_rows, "11|10|T11|c|110|1|115|ok|NULL|NULL|11|0|111\n"));
  ck_assert_ptr_nonnull(strstr(wide_rows, "8|7|T8|c|80|1|NULL|NULL|NULL|NULL|8|0|81\n"));
  ck_assert_ptr_nonnull(strstr(wide_rows, "9|8|T9|c|90|1|95|ok|NULL|200|9|0|91\n"));
  /* a task announced after its work keeps the sums and becomes listed */
  cJSON *t = q(query_tasks, "split", NULL, NULL);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "tasks")), 2);
  cJSON_Delete(t);
}
END_TEST

/* Appends a step (await: with what/file/line) of task 1 at t with duration d to a batch's events. */
static void ev_add(char *buf, size_t cap, size_t *n, const char *kind, int t, int d)
{
  int k = snprintf(buf + *n, cap - *n, "%s{\"k\":\"%s\",\"id\":1,\"t\":%d,\"d\":%d%s}", buf[*n - 1] == '[' ? "" : ",", kind,
                   t, d, strcmp(kind, "await") ? "" : ",\"what\":\"sleep\",\"file\":\"a.py\",\"line\":3,\"func\":\"f\"");
  ck_assert_int_gt(k, 0);
  *n += (size_t)k;
  ck_assert_uint_lt(*n, cap);
}

/* Steps and awaits of a new session go in 16 or 4 to a statement, of a session stored before one
 * by one: either way a repeat, whether stored by an earlier batch or earlier in the same one (in
 * the same statement or not), is stored once and summed once. */
START_TEST(many_rows_a_statement_and_repeats)
{
  static char body[16384];
  size_t n = (size_t)snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"p\",\"session\":\"m\",\"events\":[");
  for(int t = 0; t < 10; t++) {
    ev_add(body, sizeof(body), &n, "step", t * 10, 1);
    ev_add(body, sizeof(body), &n, "await", t * 10 + 1, 2);
  }
  snprintf(body + n, sizeof(body) - n, "]}");
  ck_assert_int_eq(put(body, NULL), 0);
  n = (size_t)snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"q\",\"session\":\"m\",\"events\":[");
  for(int t = 5; t <= 40; t++) { /* 5..9 are repeats of batch p; 20 comes twice, 33 three times */
    for(int rep = 0; rep < (t == 20 ? 2 : t == 33 ? 3 : 1); rep++) {
      ev_add(body, sizeof(body), &n, "step", t * 10, 100);
      ev_add(body, sizeof(body), &n, "await", t * 10 + 1, 1000);
    }
  }
  snprintf(body + n, sizeof(body) - n, "]}");
  ck_assert_int_eq(put(body, NULL), 0);
  /* the same batch as a new session's first: 36 of its 39 steps and awaits go in */
  memcpy(strstr(body, "\"session\":\"m\"") + 11, "f", 1);
  ck_assert_int_eq(put(body, NULL), 0);
  char first[512];
  task_rows("f", first, sizeof(first));
  ck_assert_str_eq(first, "1|0|NULL|NULL|NULL|0|NULL|NULL|NULL|NULL|3600|36000|50\n");
  /* a new session's batch of more keys than the writer's hash set holds (store_put.c's
   * first_of_each sorts them): 300 steps and awaits, 20 and 33 repeated, the repeats not summed */
  static char big[65536];
  n = (size_t)snprintf(big, sizeof(big), "{\"v\":1,\"batch\":\"g\",\"session\":\"g\",\"events\":[");
  for(int t = 0; t < 300; t++) {
    for(int rep = 0; rep < (t == 20 ? 2 : t == 33 ? 3 : 1); rep++) {
      ev_add(big, sizeof(big), &n, "step", t * 10, 100);
      ev_add(big, sizeof(big), &n, "await", t * 10 + 1, 1000);
    }
  }
  snprintf(big + n, sizeof(big) - n, "]}");
  ck_assert_int_eq(put(big, NULL), 0);
  task_rows("g", first, sizeof(first));
  ck_assert_str_eq(first, "1|0|NULL|NULL|NULL|0|NULL|NULL|NULL|NULL|30000|300000|0\n");
  cJSON *s = q(query_session, "m", NULL, NULL);
  ck_assert_int_eq(num(s, "awaits"), 41);
  cJSON_Delete(s);
  char rows[512];
  task_rows("m", rows, sizeof(rows));
  /* 10 + 31 steps and awaits: 10 x 1 + 31 x 100 busy, 10 x 2 + 31 x 1000 waiting */
  ck_assert_str_eq(rows, "1|0|NULL|NULL|NULL|0|NULL|NULL|NULL|NULL|3110|31020|0\n");
  /* the steps stored, their durations' sum, the await point's count, the session's n_steps */
  sql_lines("SELECT (SELECT count(*) FROM steps s JOIN sessions x USING (sid) WHERE x.id = ?1),"
            " (SELECT sum(d) FROM steps s JOIN sessions x USING (sid) WHERE x.id = ?1),"
            " (SELECT n FROM await_points a JOIN sessions x USING (sid) WHERE x.id = ?1),"
            " (SELECT n_steps FROM sessions WHERE id = ?1)", "m", rows, sizeof(rows));
  ck_assert_str_eq(rows, "41|3110|41|41\n");
}
END_TEST

/* A session's row: its meta columns and counts, one line. */
static void session_row(const char *id, char *out, size_t cap)
{
  sql_lines("SELECT name, service, host, python, pid, started_unix_ns, started_ns, route, loop_no,"
            " has_meta, ended, end_t, n_events, n_steps FROM sessions WHERE id = ?1", id, out, cap);
}

/* A new session's row is inserted with its meta; a session stored before takes a meta by update
 * (coalesced: a field a later meta leaves out keeps its value): the same row either way. */
#define META "\"meta\":{\"name\":\"GET /a\",\"service\":\"svc\",\"host\":\"h\",\"python\":\"3.13.1\",\"pid\":42," \
  "\"started_unix_ns\":\"1764089000123456789\",\"route\":\"GET /{x}\",\"loop\":3}"
START_TEST(meta_of_new_and_stored_sessions)
{
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"a\",\"session\":\"m1\"," META ",\"events\":["
                       "{\"k\":\"step\",\"id\":1,\"t\":5,\"d\":1},{\"k\":\"end\",\"t\":9}]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"a\",\"session\":\"m2\",\"events\":[{\"k\":\"step\",\"id\":1,\"t\":5,\"d\":1}]}",
                       NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"b\",\"session\":\"m2\"," META ",\"events\":[{\"k\":\"end\",\"t\":9}]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"a\",\"session\":\"m3\",\"meta\":{\"name\":\"first\",\"pid\":42},\"events\":["
                       "{\"k\":\"step\",\"id\":1,\"t\":5,\"d\":1}]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"b\",\"session\":\"m3\"," META ",\"events\":[{\"k\":\"end\",\"t\":9}]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"a\",\"session\":\"m4\",\"events\":[{\"k\":\"step\",\"id\":1,\"t\":5,\"d\":1}]}",
                       NULL), 0);
  char m1[512], m2[512], m3[512], m4[512];
  session_row("m1", m1, sizeof(m1));
  session_row("m2", m2, sizeof(m2));
  session_row("m3", m3, sizeof(m3));
  session_row("m4", m4, sizeof(m4));
  ck_assert_str_eq(m1, "GET /a|svc|h|3.13.1|42|1764089000123456789|1764089000123456789|GET /{x}|3|1|1|9|2|1\n");
  ck_assert_str_eq(m2, m1);
  ck_assert_str_eq(m3, m1);
  ck_assert_str_eq(m4, "NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|0|0|0|1|1\n");
  cJSON *l = q(query_session, "m1", NULL, NULL); /* the new row is found by its id, as any other */
  ck_assert_str_eq(cJSON_GetObjectItem(l, "name")->valuestring, "GET /a");
  cJSON_Delete(l);
}
END_TEST

/* Runs sql (no result) on a connection of the test's own, as a rows build does on its own. */
static void sql_exec(const char *sql)
{
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* What the tasks table's triggers did until schema 12, the writer does: while a session's rows are
 * built (rows_built 1 or 2) a task listed from now on goes to task_rows_add, a listed task that
 * moves makes rows_built 0, and nothing else changes either. */
START_TEST(appended_and_moved_tasks_of_built_rows)
{
  static const char *const rows_q = "SELECT (SELECT group_concat(id) FROM (SELECT a.id FROM task_rows_add a JOIN"
                                    " sessions x USING (sid) WHERE x.id = ?1 ORDER BY a.id)),"
                                    " (SELECT rows_built FROM sessions WHERE id = ?1)";
  char got[256];
  ck_assert_int_eq(put(BATCH("a", "r", "{\"k\":\"task\",\"id\":1,\"name\":\"T1\",\"coro\":\"c\",\"t\":0},"
                                       "{\"k\":\"task\",\"id\":2,\"parent\":1,\"name\":\"T2\",\"coro\":\"c\",\"t\":5}"), NULL), 0);
  sql_lines(rows_q, "r", got, sizeof(got));
  ck_assert_str_eq(got, "NULL|0\n"); /* nothing built yet: nothing to add to */
  sql_exec("UPDATE sessions SET rows_built = 1 WHERE id = 'r'");
  /* a new task; a step of a task not announced yet; a done of a listed one */
  ck_assert_int_eq(put(BATCH("b", "r", "{\"k\":\"task\",\"id\":3,\"parent\":1,\"name\":\"T3\",\"coro\":\"c\",\"t\":9},"
                                       "{\"k\":\"step\",\"id\":4,\"t\":10,\"d\":1},{\"k\":\"done\",\"id\":1,\"t\":20,\"state\":\"ok\"}"),
                       NULL), 0);
  sql_lines(rows_q, "r", got, sizeof(got));
  ck_assert_str_eq(got, "3|1\n");
  /* 4 announced (has_task 0 -> 1); 1 announced again where it was (no move) */
  ck_assert_int_eq(put(BATCH("c", "r", "{\"k\":\"task\",\"id\":4,\"parent\":3,\"name\":\"T4\",\"coro\":\"c\",\"t\":8},"
                                       "{\"k\":\"task\",\"id\":1,\"name\":\"T1\",\"coro\":\"c\",\"t\":0}"), NULL), 0);
  sql_lines(rows_q, "r", got, sizeof(got));
  ck_assert_str_eq(got, "3,4|1\n");
  sql_exec("UPDATE sessions SET rows_built = 2 WHERE id = 'r'"); /* a build under way */
  /* 2 moves under 3: stale; 5 arrives after, in the same batch: not added to a stale tree */
  ck_assert_int_eq(put(BATCH("d", "r", "{\"k\":\"task\",\"id\":5,\"parent\":1,\"name\":\"T5\",\"coro\":\"c\",\"t\":30},"
                                       "{\"k\":\"task\",\"id\":2,\"parent\":3,\"name\":\"T2\",\"coro\":\"c\",\"t\":5}"), NULL), 0);
  sql_lines(rows_q, "r", got, sizeof(got));
  ck_assert_str_eq(got, "3,4|0\n");
  sql_exec("UPDATE sessions SET rows_built = 1 WHERE id = 'r'");
  /* a created time that changes is a move too */
  ck_assert_int_eq(put(BATCH("e", "r", "{\"k\":\"task\",\"id\":4,\"parent\":3,\"name\":\"T4\",\"coro\":\"c\",\"t\":7}"), NULL), 0);
  sql_lines(rows_q, "r", got, sizeof(got));
  ck_assert_str_eq(got, "3,4|0\n");
}
END_TEST

/* What a new session's batch costs the writer in statements (a web request's session, the shape
 * bench.py's light request sends: 7 tasks with their done events, 20 steps, 20 awaits at 2
 * points, its end): 13, where it was 15 before stop 46 (no savepoint) and 78 before stop 40 (76
 * kept statements and 2 prepared anew; bench/overhead/README.md, stop 40). A statement more is a
 * few µs of the co-located server's CPU for every request: this keeps the count from growing
 * back. */
START_TEST(statements_a_new_session_costs)
{
  static char body[16384];
  size_t n = (size_t)snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"b\",\"session\":\"web\"," META ",\"events\":[");
  for(int id = 1; id <= 7; id++)
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          "%s{\"k\":\"task\",\"id\":%d,\"parent\":%d,\"name\":\"T\",\"coro\":\"c\",\"t\":%d},"
                          "{\"k\":\"done\",\"id\":%d,\"t\":%d,\"state\":\"ok\"}",
                          id > 1 ? "," : "", id, id > 1 ? 1 : 0, id, id, 900 + id);
  for(int i = 0; i < 20; i++)
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          ",{\"k\":\"step\",\"id\":%d,\"t\":%d,\"d\":3},{\"k\":\"await\",\"id\":%d,\"t\":%d,\"d\":5,"
                          "\"what\":\"sleep\",\"file\":\"app.py\",\"line\":%d,\"func\":\"f\"}",
                          1 + i % 7, 10 * i + 10, 1 + i % 7, 10 * i + 13, 7 + i % 2);
  snprintf(body + n, sizeof(body) - n, ",{\"k\":\"end\",\"t\":1000}]}");
  int64_t before = store_batch_statements(st);
  ck_assert_int_eq(put(body, NULL), 0);
  int64_t used = store_batch_statements(st) - before;
  /* the session, the batch, steps 16 + 4, awaits 16 + 4, tasks 4 + 2 + 1, 2 await points, the
   * counts, the rollup mark (no SAVEPOINT and RELEASE around them since stop 46: store.h; not the
   * figures' due check: a session its batch created, of fewer than 10,000 events); and the first
   * time, each of its 2 await sites looked for and inserted (schema 13) */
  ck_assert_int_eq(used, 13 + 4);
  /* the next request's session finds its sites in the writer's memory: no statement for them */
  char *web = strstr(body, "\"web\"");
  ck_assert_ptr_nonnull(web);
  memcpy(web, "\"wec\"", 5);
  before = store_batch_statements(st);
  ck_assert_int_eq(put(body, NULL), 0);
  ck_assert_int_eq(store_batch_statements(st) - before, 13);
  cJSON *t = q(query_tasks, "web", NULL, NULL);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "tasks")), 7);
  cJSON_Delete(t);
  cJSON *s = q(query_session, "web", NULL, NULL);
  ck_assert_int_eq(num(s, "awaits"), 20);
  cJSON_Delete(s);
}
END_TEST

START_TEST(unknown_session_and_bad_params)
{
  int rc;
  query_fn fns[] = {query_session, query_tasks, query_awaits, query_blocks, query_lag, query_concurrency, query_timeline};
  for(size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    ck_assert_ptr_null(q(fns[i], "nope", NULL, &rc));
    ck_assert_int_eq(rc, LS_ENOTFOUND);
  }
  jbuf out;
  jbuf_init(&out, 1 << 20);
  ck_assert_int_eq(export_session(st, "nope", "json", &out), LS_ENOTFOUND);
  ck_assert_int_eq(export_session(st, "nope", "xml", &out), LS_EINVAL);
  jbuf_free(&out);
  ck_assert_int_eq(writer_delete(wr, "nope"), LS_ENOTFOUND);

  ck_assert_int_eq(put(B1, NULL), 0);
  kv bad1[] = {{"min_ms", "-1"}, {NULL, NULL}};
  kv bad2[] = {{"min_ms", "abc"}, {NULL, NULL}};
  kv bad3[] = {{"limit", "0"}, {NULL, NULL}};
  kv bad4[] = {{"px", "0"}, {NULL, NULL}};
  kv bad5[] = {{"px", "10001"}, {NULL, NULL}};
  kv bad6[] = {{"tasks", "1,x"}, {NULL, NULL}};
  kv bad7[] = {{"from", "10"}, {"to", "10"}, {NULL, NULL}};
  kv bad8[] = {{"from", "-1"}, {NULL, NULL}};
  kv bad9[] = {{"tasks", "1,,2"}, {NULL, NULL}};
  ck_assert_ptr_null(q(query_awaits, "s1", bad1, &rc));
  ck_assert_int_eq(rc, LS_EINVAL);
  ck_assert_ptr_null(q(query_awaits, "s1", bad2, &rc));
  ck_assert_int_eq(rc, LS_EINVAL);
  ck_assert_ptr_null(q(query_awaits, "s1", bad3, &rc));
  ck_assert_int_eq(rc, LS_EINVAL);
  ck_assert_ptr_null(q(query_sessions, NULL, bad3, &rc));
  ck_assert_int_eq(rc, LS_EINVAL);
  kv *tl[] = {bad4, bad5, bad6, bad7, bad8, bad9};
  for(size_t i = 0; i < 6; i++) {
    ck_assert_ptr_null(q(query_timeline, "s1", tl[i], &rc));
    ck_assert_int_eq(rc, LS_EINVAL);
  }
  char many[2001 * 6];
  size_t n = 0;
  for(int i = 0; i < 2001; i++)
    n += (size_t)snprintf(many + n, sizeof(many) - n, i ? ",%d" : "%d", i + 1);
  kv bad10[] = {{"tasks", many}, {NULL, NULL}};
  ck_assert_ptr_null(q(query_timeline, "s1", bad10, &rc));
  ck_assert_int_eq(rc, LS_EINVAL);
}
END_TEST

START_TEST(awaits_and_hotspots)
{
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"a\",\"session\":\"s2\",\"events\":["
                       "{\"k\":\"await\",\"id\":1,\"t\":10,\"d\":10000000,\"file\":\"x.py\",\"line\":1,\"func\":\"f\",\"what\":\"w\"},"
                       "{\"k\":\"await\",\"id\":2,\"t\":5,\"d\":10000000,\"file\":\"x.py\",\"line\":1,\"func\":\"f\",\"what\":\"w\"},"
                       "{\"k\":\"await\",\"id\":1,\"t\":30,\"d\":9999999,\"file\":\"y.py\",\"line\":2},"
                       "{\"k\":\"await\",\"id\":3,\"t\":40,\"d\":25000000,\"file\":\"y.py\",\"line\":3}]}", NULL), 0);
  cJSON *j = q(query_awaits, "s2", NULL, NULL); /* default 10 ms: at or over */
  ck_assert_int_eq(num(j, "total"), 3);
  cJSON *aw = cJSON_GetObjectItem(j, "awaits");
  ck_assert_int_eq(num(cJSON_GetArrayItem(aw, 0), "d"), 25000000);
  ck_assert_int_eq(num(cJSON_GetArrayItem(aw, 1), "t"), 5); /* tie on d: earlier t first */
  ck_assert_int_eq(num(cJSON_GetArrayItem(aw, 2), "t"), 10);
  cJSON *hs = cJSON_GetObjectItem(j, "hotspots");
  ck_assert_int_eq(cJSON_GetArraySize(hs), 2);
  ck_assert_int_eq(num(cJSON_GetArrayItem(hs, 0), "total_ns"), 25000000);
  ck_assert_int_eq(num(cJSON_GetArrayItem(hs, 1), "count"), 2);
  ck_assert_int_eq(num(cJSON_GetArrayItem(hs, 1), "max_ns"), 10000000);
  cJSON_Delete(j);
  kv lim1[] = {{"min_ms", "9.999999"}, {"limit", "1"}, {NULL, NULL}};
  j = q(query_awaits, "s2", lim1, NULL);
  ck_assert_int_eq(num(j, "total"), 4);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "awaits")), 1);
  cJSON_Delete(j);
  kv frac[] = {{"min_ms", "9.9999995"}, {NULL, NULL}}; /* 9999999.5 ns rounds up: 3 qualify */
  j = q(query_awaits, "s2", frac, NULL);
  ck_assert_int_eq(num(j, "total"), 3);
  cJSON_Delete(j);
}
END_TEST

START_TEST(timeline_lod)
{
  /* 2000 narrow steps of task 1 over [0, 2000000), one wide await, one step of task 2 */
  jbuf b;
  jbuf_init(&b, 1 << 22);
  jbuf_puts(&b, "{\"v\":1,\"batch\":\"t\",\"session\":\"s3\",\"events\":[");
  for(int i = 0; i < 2000; i++)
    jbuf_printf(&b, "{\"k\":\"step\",\"id\":1,\"t\":%d,\"d\":%d},", i * 1000, 10 + i % 7);
  jbuf_puts(&b, "{\"k\":\"await\",\"id\":1,\"t\":500,\"d\":1650000,\"file\":\"w.py\",\"line\":9},"
                "{\"k\":\"step\",\"id\":2,\"t\":1999999,\"d\":1},"
                "{\"k\":\"block\",\"id\":0,\"t\":100,\"d\":5,\"stack\":[{\"file\":\"b.py\",\"line\":4,\"src\":\"time.sleep(1)\"}]},"
                "{\"k\":\"lag\",\"t\":100,\"d\":5},{\"k\":\"lag\",\"t\":101,\"d\":6}]}");
  ck_assert_int_eq(put(b.data, NULL), 0);
  jbuf_free(&b);
  kv args[] = {{"from", "0"}, {"to", "2000000"}, {"px", "10"}, {NULL, NULL}};
  cJSON *j = q(query_timeline, "s3", args, NULL);
  ck_assert_int_eq(num(j, "ns_per_px"), 200000);
  cJSON *lanes = cJSON_GetObjectItem(j, "lanes");
  ck_assert_int_eq(cJSON_GetArraySize(lanes), 2);
  cJSON *items = cJSON_GetObjectItem(cJSON_GetArrayItem(lanes, 0), "items");
  int64_t steps = 0, stands = 0, awaits = 0;
  for(cJSON *it = items->child; it; it = it->next) {
    if(!strcmp(cJSON_GetObjectItem(it, "k")->valuestring, "step")) {
      steps++;
      stands += num(it, "n");
      ck_assert_int_eq(num(it, "d"), 16); /* the longest of each column: 10 + 6 */
    }
    else {
      awaits++;
      ck_assert_str_eq(cJSON_GetObjectItem(it, "file")->valuestring, "w.py");
      ck_assert_int_eq(num(it, "n"), 1);
    }
  }
  ck_assert_int_eq(steps, 10);   /* one per pixel column */
  ck_assert_int_eq(stands, 2000);
  ck_assert_int_eq(awaits, 1);
  cJSON *blocks = cJSON_GetObjectItem(j, "blocks");
  ck_assert_int_eq(cJSON_GetArraySize(blocks), 1);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 0), "src")->valuestring, "time.sleep(1)");
  cJSON *lag = cJSON_GetObjectItem(j, "lag");
  ck_assert_int_eq(cJSON_GetArraySize(lag), 1);
  ck_assert_int_eq(num(cJSON_GetArrayItem(lag, 0), "n"), 2);
  ck_assert_int_eq(num(cJSON_GetArrayItem(lag, 0), "d"), 6);
  cJSON_Delete(j);

  /* a late window still sees the long await that started before it; tasks= limits lanes */
  kv late[] = {{"from", "1600000"}, {"to", "1700000"}, {"px", "100"}, {"tasks", "1,1"}, {NULL, NULL}};
  j = q(query_timeline, "s3", late, NULL);
  lanes = cJSON_GetObjectItem(j, "lanes");
  ck_assert_int_eq(cJSON_GetArraySize(lanes), 1);
  int found = 0;
  for(cJSON *it = cJSON_GetObjectItem(cJSON_GetArrayItem(lanes, 0), "items")->child; it; it = it->next)
    found += !strcmp(cJSON_GetObjectItem(it, "k")->valuestring, "await");
  ck_assert_int_eq(found, 1);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "blocks")), 0);
  cJSON_Delete(j);
  kv other[] = {{"tasks", "2"}, {NULL, NULL}};
  j = q(query_timeline, "s3", other, NULL);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "lanes")), 1);
  ck_assert_int_eq(num(j, "to"), 2000000); /* default: the session's duration */
  cJSON_Delete(j);
}
END_TEST

START_TEST(export_round_trip_and_delete)
{
  ck_assert_int_eq(put(B1, NULL), 0);
  ck_assert_int_eq(put(B2, NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"b3\",\"session\":\"s1\",\"events\":[{\"k\":\"block\",\"id\":1,\"t\":5,\"d\":6,"
                       "\"stack\":[{\"file\":\"q.py\",\"line\":3,\"func\":\"g\",\"src\":\"x()\"}]}]}", NULL), 0);
  jbuf out;
  jbuf_init(&out, 1 << 22);
  ck_assert_int_eq(export_session(st, "s1", "json", &out), 0);
  cJSON *before = q(query_session, "s1", NULL, NULL);
  cJSON *tasks_before = q(query_tasks, "s1", NULL, NULL);
  cJSON *blocks_before = q(query_blocks, "s1", NULL, NULL);
  ck_assert_int_eq(writer_delete(wr, "s1"), 0);
  int rc;
  ck_assert_ptr_null(q(query_session, "s1", NULL, &rc));
  ck_assert_int_eq(rc, LS_ENOTFOUND);
  cJSON *list = q(query_sessions, NULL, NULL, NULL);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(list, "sessions")), 0);
  cJSON_Delete(list);
  /* the export is one valid batch that restores the same session */
  int dup = -1;
  ck_assert_int_eq(put(out.data, &dup), 0);
  ck_assert_int_eq(dup, 0);
  jbuf_free(&out);
  cJSON *after = q(query_session, "s1", NULL, NULL);
  cJSON *tasks_after = q(query_tasks, "s1", NULL, NULL);
  cJSON *blocks_after = q(query_blocks, "s1", NULL, NULL);
  /* unknown kinds are counted, not stored: the one thing an export cannot carry */
  ck_assert_int_eq(num(before, "unknown_events"), 1);
  ck_assert_int_eq(num(after, "unknown_events"), 0);
  cJSON_DeleteItemFromObject(before, "unknown_events");
  cJSON_DeleteItemFromObject(after, "unknown_events");
  if(!cJSON_Compare(before, after, 1)) {
    char *x = cJSON_PrintUnformatted(before), *y = cJSON_PrintUnformatted(after);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
  }
  ck_assert(cJSON_Compare(tasks_before, tasks_after, 1));
  ck_assert(cJSON_Compare(blocks_before, blocks_after, 1));
  cJSON_Delete(before);
  cJSON_Delete(after);
  cJSON_Delete(tasks_before);
  cJSON_Delete(tasks_after);
  cJSON_Delete(blocks_before);
  cJSON_Delete(blocks_after);
}
END_TEST

START_TEST(sessions_list_order_and_filter)
{
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"x\",\"session\":\"old\",\"meta\":{\"name\":\"GET /a\",\"started_unix_ns\":\"100\"},\"events\":[]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"x\",\"session\":\"new\",\"meta\":{\"name\":\"POST /b\",\"started_unix_ns\":\"900\"},\"events\":[]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"x\",\"session\":\"mid\",\"meta\":{\"name\":\"GET /c\",\"started_unix_ns\":\"500\"},\"events\":[]}", NULL), 0);
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"x\",\"session\":\"nometa\",\"events\":[{\"k\":\"lag\",\"t\":1,\"d\":1}]}", NULL), 0);
  cJSON *j = q(query_sessions, NULL, NULL, NULL);
  cJSON *s = cJSON_GetObjectItem(j, "sessions");
  ck_assert_int_eq(cJSON_GetArraySize(s), 4);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "id")->valuestring, "new");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 1), "id")->valuestring, "mid");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 2), "id")->valuestring, "old");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 3), "name")));
  cJSON_Delete(j);
  kv f[] = {{"name", "GET"}, {"limit", "1"}, {NULL, NULL}};
  j = q(query_sessions, NULL, f, NULL);
  s = cJSON_GetObjectItem(j, "sessions");
  ck_assert_int_eq(cJSON_GetArraySize(s), 1);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "id")->valuestring, "mid");
  cJSON_Delete(j);
  /* a later meta overrides the fields it carries */
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"y\",\"session\":\"old\",\"meta\":{\"name\":\"renamed\"},\"events\":[]}", NULL), 0);
  j = q(query_session, "old", NULL, NULL);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "name")->valuestring, "renamed");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "started_unix_ns")->valuestring, "100");
  ck_assert_int_eq(num(j, "duration_ns"), 0);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ended")));
  cJSON_Delete(j);
}
END_TEST

START_TEST(settings_restart_and_version)
{
  int64_t v = -1;
  writer_pause();
  ck_assert_int_eq(store_write_pragma(st, "synchronous", &v), 0);
  ck_assert_int_eq(v, 1); /* NORMAL */
  /* 0: SQLite's own (PASSIVE) checkpoint is replaced by the writer's RESTART (wal_hook) */
  ck_assert_int_eq(store_write_pragma(st, "wal_autocheckpoint", &v), 0);
  ck_assert_int_eq(store_write_pragma(st, "auto_vacuum", &v), 0);
  ck_assert_int_eq(v, 2); /* INCREMENTAL, set before the first table */
  ck_assert_int_eq(store_write_pragma(st, "user_version", &v), 0);
  ck_assert_int_eq(v, 13); /* schema.sql is version 1, migrations/002 to 013 bring 13 */
  ck_assert_int_eq(store_write_pragma(st, "bad name;", &v), LS_EINVAL);
  ck_assert_int_eq(store_schema_version(st), 13);
  writer_resume();
  ck_assert_int_eq(put(B1, NULL), 0);
  writer_pause(); /* its checkpoint met the writer's housekeeping mid-transaction 1 run in 4 */
  ck_assert_int_eq(store_maybe_checkpoint(st, 0), 0);
  ck_assert(store_db_bytes(st) > 0);
  close_all();
  /* reopened: the data is there and the schema is not applied twice */
  open_all();
  cJSON *j = q(query_session, "s1", NULL, NULL);
  ck_assert_int_eq(num(j, "tasks"), 3);
  cJSON_Delete(j);
  close_all();
  /* a database of schema 2 (no auto_vacuum, no purge table, no arrived_s, no OTLP outbox, no
   * route nor await points, no loop nor blocks from elsewhere, no task rows, no endpoint
   * rollups, no appended task rows, no task keys, no stack times) is migrated to the newest: the data stays and auto_vacuum becomes INCREMENTAL (the
   * one-time VACUUM) */
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "DROP TABLE purge; ALTER TABLE sessions DROP COLUMN arrived_s;"
                                " DROP TABLE otlp_outbox; DROP TABLE otlp_sessions;"
                                " DROP INDEX sessions_endpoint; DROP TABLE await_points;"
                                " ALTER TABLE sessions DROP COLUMN route;"
                                " ALTER TABLE sessions DROP COLUMN received_unix_ns;"
                                " ALTER TABLE sessions DROP COLUMN loop_no;"
                                " ALTER TABLE sessions DROP COLUMN n_blocks_elsewhere;"
                                " ALTER TABLE sessions DROP COLUMN blocked_ns_own;"
                                " ALTER TABLE sessions DROP COLUMN blocked_ns_elsewhere;"
                                " ALTER TABLE blocks DROP COLUMN elsewhere;"
                                " ALTER TABLE blocks DROP COLUMN from_session;"
                                " ALTER TABLE blocks DROP COLUMN from_task; ALTER TABLE blocks DROP COLUMN stack_t;"
                                " DROP TABLE task_rows_add; DROP TABLE task_rows_orphans;"
                                   " DROP TABLE task_rows;"
                                " DROP TABLE session_stats; DROP TABLE conc_mip;"
                                " ALTER TABLE sessions DROP COLUMN rows_built;"
                                " DROP TABLE ep_dirty; DROP TABLE ep_groups; DROP TABLE ep_points;"
                                " DROP TABLE task_by_created; DROP TABLE task_by_busy; DROP TABLE task_by_wait;"
                                " DROP TABLE task_by_duration; DROP TABLE task_keys_done;"
                                " DROP TABLE awaits; DROP TABLE sites;"
                                " CREATE TABLE awaits (sid INTEGER NOT NULL, task INTEGER NOT NULL, t INTEGER NOT NULL,"
                                "  d INTEGER NOT NULL, what TEXT, file TEXT, line INTEGER, func TEXT,"
                                "  PRIMARY KEY (sid, task, t)) WITHOUT ROWID;"
                                " INSERT INTO awaits VALUES(1, 2, 110, 30, 'sleep', 'a.py', 7, 'f'),"
                                "  (1, 3, 410, 20, 'sleep', 'a.py', 7, 'f'), (1, 2, 150, 10, NULL, NULL, NULL, NULL);"
                                " PRAGMA user_version = 2; PRAGMA auto_vacuum = NONE; VACUUM",
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  open_all();
  writer_pause();
  ck_assert_int_eq(store_write_pragma(st, "auto_vacuum", &v), 0);
  ck_assert_int_eq(v, 2);
  ck_assert_int_eq(store_schema_version(st), 13);
  writer_resume();
  j = q(query_session, "s1", NULL, NULL);
  ck_assert_int_eq(num(j, "tasks"), 3);
  cJSON_Delete(j);
  /* its awaits kept what they said, each site stored once (migration 013) */
  kv all[] = {{"min_ms", "0"}, {NULL, NULL}};
  j = q(query_awaits, "s1", all, NULL);
  cJSON *aw = cJSON_GetObjectItem(j, "awaits");
  ck_assert_int_eq(cJSON_GetArraySize(aw), 3);
  for(int i = 0; i < 3; i++) {
    cJSON *x = cJSON_GetArrayItem(aw, i);
    int bare = num(x, "t") == 150;
    ck_assert_int_eq(num(x, "d"), bare ? 10 : num(x, "t") == 110 ? 30 : 20);
    ck_assert(bare ? cJSON_IsNull(cJSON_GetObjectItem(x, "what")) && cJSON_IsNull(cJSON_GetObjectItem(x, "file"))
                   : !strcmp(cJSON_GetObjectItem(x, "what")->valuestring, "sleep") &&
                         !strcmp(cJSON_GetObjectItem(x, "file")->valuestring, "a.py") &&
                         !strcmp(cJSON_GetObjectItem(x, "func")->valuestring, "f") && num(x, "line") == 7);
  }
  cJSON_Delete(j);
  close_all();
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), 2);
  sqlite3_close(db);
  /* a database from a newer server is refused */
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  store_options o;
  store_default_options(&o, dbpath);
  store *s2 = NULL;
  char err[256] = "";
  ck_assert_int_eq(store_open(&o, &s2, err, sizeof(err)), LS_EINVAL);
  ck_assert_ptr_null(s2);
  ck_assert_ptr_nonnull(strstr(err, "newer"));
  /* a path that cannot be opened */
  store_default_options(&o, "/nonexistent-dir/x.db");
  ck_assert_int_ne(store_open(&o, &s2, err, sizeof(err)), 0);
  o.readers = 0;
  ck_assert_int_eq(store_open(&o, &s2, err, sizeof(err)), LS_EINVAL);
}
END_TEST

/* A database locked by another process: the writer waits busy_timeout, then answers LS_EBUSY,
 * and a full queue refuses at once. */
START_TEST(busy_database)
{
  close_all();
  store_options o;
  store_default_options(&o, dbpath);
  o.busy_timeout_ms = 200;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
  ck_assert_int_eq(writer_start(st, &mt, 1, 4, &wr), 0);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  /* the writer's housekeeping at start (purge, vacuum, checkpoint) may hold the lock a moment:
   * this connection waits for it (without, BEGIN failed with SQLITE_BUSY once under ASan) */
  sqlite3_busy_timeout(db, 30000);
  ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  ck_assert_int_eq(put(B1, NULL), LS_EBUSY);
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(db);
  int dup = -1;
  ck_assert_int_eq(put(B1, &dup), 0);
  ck_assert_int_eq(dup, 0);
  ck_assert_int_eq(writer_queue_depth(wr), 0);
  ck_assert_int_eq(writer_start(st, &mt, 0, 1, &(writer *){NULL}), LS_EINVAL);
}
END_TEST

/* The JSON of a /rows query of session "tree" (asserted to succeed). */
static char *rows_json(kv *args)
{
  jbuf out;
  jbuf_init(&out, 1 << 26);
  char detail[256] = "";
  query_args a = {kv_get, args};
  int rc = query_rows(st, "tree", &a, &out, detail, sizeof(detail));
  ck_assert_msg(rc == 0, "/rows failed: %d %s", rc, detail);
  size_t len;
  return jbuf_take(&out, &len);
}

/* /rows while the database refuses the tree's writes (here: the write lock held by another
 * connection past the busy timeout; a read-only or full database fails the same writes): the
 * window comes from a tree ordered in memory for the request, the same answer as from the stored
 * tree once it can be written; beyond the bound of a tree in memory, LS_EBUSY (503). */
START_TEST(rows_from_memory_when_writes_fail)
{
  close_all();
  store_options o;
  store_default_options(&o, dbpath);
  o.busy_timeout_ms = 100;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
  ck_assert_int_eq(writer_start(st, &mt, 8, 4, &wr), 0);
  /* 300 tasks: 10 roots, each with children created in reverse id order, some grandchildren */
  jbuf b;
  jbuf_init(&b, 1 << 20);
  jbuf_puts(&b, "{\"v\":1,\"batch\":\"t1\",\"session\":\"tree\",\"meta\":{\"name\":\"t\"},\"events\":[");
  for(int i = 1; i <= 300; i++) {
    int parent = i <= 10 ? 0 : i <= 200 ? 1 + i % 10 : 11 + i % 190;
    jbuf_printf(&b, "%s{\"k\":\"task\",\"id\":%d,\"parent\":%d,\"name\":\"n%d\",\"t\":%d}", i > 1 ? "," : "", i,
                parent, i, 100000 - i);
  }
  jbuf_puts(&b, "]}");
  ck_assert_int_eq(put(b.data, NULL), 0);
  jbuf_free(&b);
  kv args[] = {{"offset", "7"}, {"limit", "60"}, {"collapsed", "3,15"}, {"find", "250"}, {NULL, NULL}};
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 30000);
  ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  char *from_memory = rows_json(args);
  char *again = rows_json(args); /* still refused: ordered in memory again */
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  char *stored = rows_json(args);
  ck_assert_str_eq(from_memory, stored);
  ck_assert_str_eq(again, stored);
  ck_assert_ptr_nonnull(strstr(stored, "\"tasks\":300"));
  free(from_memory);
  free(again);
  free(stored);
  /* a new task makes the stored tree stale; with the writes refused again and a bound below the
   * session's 301 tasks: busy */
  ck_assert_int_eq(put("{\"v\":1,\"batch\":\"t2\",\"session\":\"tree\",\"events\":[{\"k\":\"task\",\"id\":999,\"t\":5}]}",
                       NULL), 0);
  ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  store_reader *r = store_reader_acquire(st);
  arena ar;
  arena_init(&ar);
  store_session x;
  ck_assert_int_eq(store_find_session(r, "tree", &ar, &x), 0);
  int built = -1;
  int64_t rows = -1;
  store_tree *mem = NULL;
  ck_assert_int_eq(store_rows_ensure(r, x.sid, 300, &built, &rows, &mem), LS_EBUSY);
  ck_assert_ptr_null(mem);
  ck_assert_int_eq(store_rows_ensure(r, x.sid, 301, &built, &rows, &mem), 0);
  ck_assert_ptr_nonnull(mem);
  ck_assert_int_eq(rows, 301);
  ck_assert_int_eq(built, 0);
  store_tree_free(mem);
  store_reader_release(st, r);
  arena_free(&ar);
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(db);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("store");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, reverse_order_and_retries);
  tcase_add_test(tc, repeated_events_in_new_batches);
  tcase_add_test(tc, one_row_per_task_whatever_the_batches);
  tcase_add_test(tc, many_rows_a_statement_and_repeats);
  tcase_add_test(tc, meta_of_new_and_stored_sessions);
  tcase_add_test(tc, appended_and_moved_tasks_of_built_rows);
  tcase_add_test(tc, statements_a_new_session_costs);
  tcase_add_test(tc, unknown_session_and_bad_params);
  tcase_add_test(tc, awaits_and_hotspots);
  tcase_add_test(tc, timeline_lod);
  tcase_add_test(tc, export_round_trip_and_delete);
  tcase_add_test(tc, sessions_list_order_and_filter);
  tcase_add_test(tc, settings_restart_and_version);
  tcase_add_test(tc, busy_database);
  tcase_add_test(tc, rows_from_memory_when_writes_fail);
  suite_add_tcase(s, tc);
  return check_run(s);
}
