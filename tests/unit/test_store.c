/* test_store.c — Check suite for what batches write through server/writer.c and store_put.c on a
 * real SQLite file: a session's batches in reverse order, idempotent retries, repeated events,
 * one row per task whatever the batches, many rows a statement, meta of new and stored sessions,
 * the task rows appended and moved, and the statements a new session costs. What the queries read
 * back is test_store_queries.c's; the shared fixture is store_suite.h. */
#include "store_suite.h"

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
  suite_add_tcase(s, tc);
  return check_run(s);
}
