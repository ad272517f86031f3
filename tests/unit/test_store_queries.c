/* test_store_queries.c — Check suite for what server/query.c, export.c and store.c answer from a
 * real SQLite file: unknown sessions and bad parameters, awaits and hot spots, timeline LOD bounds,
 * the export round trip and deletes, the sessions list's order and filters, the connection
 * settings (WAL, synchronous=NORMAL) and schema version checks across a restart, a busy database,
 * and rows answered from memory when writes fail. The shared fixture is store_suite.h. */
#include "store_suite.h"

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
  ck_assert_int_eq(v, 14); /* schema.sql is version 1, migrations/002 to 014 bring 14 */
  ck_assert_int_eq(store_write_pragma(st, "bad name;", &v), LS_EINVAL);
  ck_assert_int_eq(store_schema_version(st), 14);
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
   * rollups, no appended task rows, no task keys, no stack times, no fraction) is migrated to the
   * newest: the data stays and auto_vacuum becomes INCREMENTAL (the one-time VACUUM) */
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
                                " ALTER TABLE sessions DROP COLUMN fraction;"
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
  ck_assert_int_eq(store_schema_version(st), 14);
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

/* The store opened again with a write busy timeout of busy_ms, and its writer with a queue of
 * `queue` jobs and groups of up to `group`. */
static void reopen_busy(int busy_ms, int queue, int group)
{
  close_all();
  store_options o;
  store_default_options(&o, dbpath);
  o.busy_timeout_ms = busy_ms;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
  ck_assert_int_eq(writer_start(st, &mt, queue, group, &wr), 0);
}

/* A database locked by another process: the writer waits busy_timeout, then answers LS_EBUSY,
 * and a full queue refuses at once. */
START_TEST(busy_database)
{
  reopen_busy(200, 1, 4);
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
  reopen_busy(100, 8, 4);
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
  Suite *s = suite_create("store_queries");
  TCase *tc = tcase_create("store_queries");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
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
