/* test_store_sites.c — Check suite for server/store_sites.c (schema 13's await sites) on a real
 * SQLite file: a site stored once whoever names it, the writer's memory of committed sites (no
 * statement for a known one), what a rolled-back savepoint inserted forgotten (its id would name
 * nothing), sites told apart by every field, NULLs among them, and the sweep of sites no session
 * names any more once their sessions are purged. */
#include <check.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "query.h"
#include "store.h"
#include "store_sites.h"
#include "check_run.h"
#include "store_fixture.h"

static char dbpath[512];

static void setup(void)
{
  log_set_level(LOG_ERROR);
  const char *tmp = getenv("TMPDIR");
  snprintf(dbpath, sizeof(dbpath), "%s/test_store_sites_%d.db", tmp ? tmp : "/tmp", (int)getpid());
  unlink(dbpath);
}

static void teardown(void)
{
  store_fixture_unlink(dbpath);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

/* 1 when site id holds exactly a's fields (NULLs as NULL). */
static int row_is(sqlite3 *db, int64_t id, const ingest_await *a)
{
  sqlite3_stmt *st = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sites WHERE id = ?1 AND file IS ?2 AND line IS ?3"
                                          " AND func IS ?4 AND what IS ?5", -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, a->file, -1, SQLITE_STATIC);
  if(a->line >= 0)
    sqlite3_bind_int64(st, 3, a->line);
  sqlite3_bind_text(st, 4, a->func, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, a->what, -1, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  int n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return n == 1;
}

/* A database with schema 13's sites table alone, and the writer's memory of it. */
static store_sites *sites_db(sqlite3 **db)
{
  ck_assert_int_eq(sqlite3_open(dbpath, db), SQLITE_OK);
  exec_ok(*db, "CREATE TABLE sites (id INTEGER PRIMARY KEY, file TEXT, line INTEGER, func TEXT, what TEXT);"
               " CREATE INDEX sites_key ON sites (file, line, func, what)");
  store_sites *x = NULL;
  char err[256];
  ck_assert_int_eq(store_sites_open(*db, &x, err, sizeof(err)), 0);
  return x;
}

#define NSITE 600
static char names[NSITE][32];

/* Await i of a set of NSITE distinct sites: every few differ from another in one field only. */
static ingest_await site(int i)
{
  snprintf(names[i], sizeof(names[i]), "f%d.py", i / 4);
  ingest_await a = {.id = 1, .t = i, .d = 1, .line = 10, .file = names[i], .func = "g", .what = "sleep"};
  switch(i % 4) {
  case 1: a.line = -1; break;            /* no line */
  case 2: a.func = NULL; break;          /* no function */
  case 3: a.what = "sleeq"; break;       /* another thing awaited */
  default: break;
  }
  return a;
}

START_TEST(remembered_once_committed_forgotten_when_rolled_back)
{
  sqlite3 *db;
  store_sites *x = sites_db(&db);
  static ingest_await a[NSITE];
  static int64_t ids[NSITE], again[NSITE];
  for(int i = 0; i < NSITE; i++)
    a[i] = site(i);
  /* the first half, committed: each its own row, with its own fields */
  exec_ok(db, "BEGIN");
  ck_assert_int_eq(store_sites_resolve(x, db, a, NSITE / 2, ids), 0);
  exec_ok(db, "COMMIT");
  store_sites_commit(x);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), NSITE / 2);
  ck_assert_int_eq(store_sites_rows(x), NSITE / 2);
  ck_assert_uint_eq(store_sites_known(x), NSITE / 2);
  for(int i = 0; i < NSITE / 2; i++)
    ck_assert_msg(row_is(db, ids[i], &a[i]), "site %d", i);
  /* all of them under a savepoint that rolls back: the second half's rows go, and so must the
   * writer's memory of them (the buckets grow meanwhile: the chains are rebuilt) */
  exec_ok(db, "BEGIN; SAVEPOINT batch");
  ck_assert_int_eq(store_sites_resolve(x, db, a, NSITE, again), 0);
  for(int i = 0; i < NSITE / 2; i++)
    ck_assert_int_eq(again[i], ids[i]);
  exec_ok(db, "ROLLBACK TO batch; RELEASE batch");
  store_sites_forget(x);
  ck_assert_uint_eq(store_sites_known(x), NSITE / 2);
  /* then again, interleaved with a second rollback: every id names its own row */
  int64_t runs = store_sites_statements(x);
  ck_assert_int_eq(store_sites_resolve(x, db, a + NSITE / 2, 50, again + NSITE / 2), 0);
  exec_ok(db, "SAVEPOINT batch");
  ck_assert_int_eq(store_sites_resolve(x, db, a + NSITE / 2 + 50, NSITE / 2 - 50, again + NSITE / 2 + 50), 0);
  exec_ok(db, "ROLLBACK TO batch; RELEASE batch");
  store_sites_forget(x); /* forgets the 50 too: found again by a statement below */
  ck_assert_int_eq(store_sites_resolve(x, db, a, NSITE, again), 0);
  ck_assert_int_eq(store_sites_statements(x) - runs, 50 * 2 + (NSITE / 2 - 50) * 2 + 50 + (NSITE / 2 - 50) * 2);
  exec_ok(db, "COMMIT");
  store_sites_commit(x);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), NSITE);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(DISTINCT id) FROM sites"), NSITE);
  for(int i = 0; i < NSITE; i++)
    ck_assert_msg(row_is(db, again[i], &a[i]), "site %d", i);
  /* all known now: a batch naming them runs no statement */
  runs = store_sites_statements(x);
  ck_assert_int_eq(store_sites_resolve(x, db, a, NSITE, ids), 0);
  ck_assert_int_eq(store_sites_statements(x), runs);
  ck_assert(!memcmp(ids, again, sizeof(ids)));
  /* strings that concatenate alike, empty against NULL: four sites */
  ingest_await tricky[4] = {{.line = 1, .file = "a", .func = "bc"}, {.line = 1, .file = "ab", .func = "c"},
                            {.line = 1, .file = "", .func = "bc"}, {.line = 1, .file = NULL, .func = "bc"}};
  int64_t tid[4];
  exec_ok(db, "BEGIN");
  ck_assert_int_eq(store_sites_resolve(x, db, tricky, 4, tid), 0);
  exec_ok(db, "COMMIT");
  store_sites_commit(x);
  for(int i = 0; i < 4; i++) {
    ck_assert(row_is(db, tid[i], &tricky[i]));
    for(int j = 0; j < i; j++)
      ck_assert_int_ne(tid[i], tid[j]);
  }
  store_sites_close(x);
  sqlite3_close(db);
}
END_TEST

/* A batch with a strings table names each string at one address: its awaits at one site repeat
 * the same pointers (store_sites.c's memo finds them without the strings), and awaits sharing
 * pointers but not the line, or the pointers of another site, stay sites of their own. */
START_TEST(repeated_addresses_are_one_site_each)
{
  sqlite3 *db;
  store_sites *x = sites_db(&db);
  static const char *files[5] = {"a.py", "b.py", "c.py", "d.py", "e.py"};
  enum { N = 400, SITES = 5 * 2 * 2 };
  static ingest_await a[N];
  static int64_t ids[N];
  for(int i = 0; i < N; i++) {
    int k = (i * 7 + i / 3) % SITES; /* every site many times, in no order */
    a[i] = (ingest_await){.id = 1, .t = i, .d = 1, .line = 10 + k % 2, .file = files[k / 4],
                          .func = (k / 2) % 2 ? "g" : "h", .what = "sleep"};
  }
  exec_ok(db, "BEGIN");
  int64_t runs = store_sites_statements(x);
  ck_assert_int_eq(store_sites_resolve(x, db, a, N, ids), 0);
  exec_ok(db, "COMMIT");
  store_sites_commit(x);
  ck_assert_int_eq(store_sites_statements(x) - runs, 2 * SITES); /* a find and an insert each, once */
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), SITES);
  for(int i = 0; i < N; i++) {
    ck_assert_msg(row_is(db, ids[i], &a[i]), "await %d", i);
    for(int j = 0; j < i; j++) {
      int same = a[i].file == a[j].file && a[i].func == a[j].func && a[i].line == a[j].line;
      ck_assert_msg(same == (ids[i] == ids[j]), "awaits %d and %d", i, j);
    }
  }
  store_sites_close(x);
  sqlite3_close(db);
}
END_TEST

/* One batch of session `sess`: an await at each site named by file[0..n) (line 3, what "w"). */
static void put_awaits(store *s, const char *sess, const char *const *file, int n)
{
  char body[2048];
  size_t k = (size_t)snprintf(body, sizeof(body), "{\"v\":1,\"batch\":\"b\",\"session\":\"%s\",\"events\":[", sess);
  for(int i = 0; i < n; i++)
    k += (size_t)snprintf(body + k, sizeof(body) - k, "%s{\"k\":\"await\",\"id\":1,\"t\":%d,\"d\":20000000,"
                          "\"file\":\"%s\",\"line\":3,\"func\":\"h\",\"what\":\"w\"}", i ? "," : "", 10 * i, file[i]);
  snprintf(body + k, sizeof(body) - k, "]}");
  ingest_limits lim;
  ingest_default_limits(&lim);
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_msg(ingest_parse(body, strlen(body), &lim, &b, detail, sizeof(detail)) == 0, "%s", detail);
  int dup = 0, created = 0;
  ck_assert_int_eq(store_begin(s), 0);
  ck_assert_int_eq(store_put_batch(s, b, &dup, &created), 0);
  ck_assert_int_eq(store_commit(s), 0);
  ck_assert_int_eq(created, 1);
  ingest_free(b);
}

static const char *no_args(void *ctx, const char *name)
{
  (void)ctx;
  (void)name;
  return NULL;
}

/* The files of session sess's awaits, in t order, joined by spaces. */
static void files_of(store *s, const char *sess, char *out, size_t cap)
{
  jbuf j;
  jbuf_init(&j, 1 << 20);
  char detail[256];
  query_args qa = {no_args, NULL};
  ck_assert_int_eq(query_awaits(s, sess, &qa, &j, detail, sizeof(detail)), 0);
  cJSON *r = cJSON_Parse(j.data);
  jbuf_free(&j);
  ck_assert_ptr_nonnull(r);
  cJSON *aw = cJSON_GetObjectItem(r, "awaits");
  int n = cJSON_GetArraySize(aw);
  out[0] = 0;
  for(int t = 0, k = 0; k < n; t += 10) { /* 20 ms each, so the default min_ms keeps them all */
    for(int i = 0; i < n; i++) {
      cJSON *x = cJSON_GetArrayItem(aw, i);
      if((int)cJSON_GetObjectItem(x, "t")->valuedouble != t)
        continue;
      ck_assert_str_eq(cJSON_GetObjectItem(x, "func")->valuestring, "h");
      ck_assert_str_eq(cJSON_GetObjectItem(x, "what")->valuestring, "w");
      ck_assert_int_eq((int)cJSON_GetObjectItem(x, "line")->valuedouble, 3);
      snprintf(out + strlen(out), cap - strlen(out), "%s%s", k ? " " : "", cJSON_GetObjectItem(x, "file")->valuestring);
      k++;
    }
  }
  cJSON_Delete(r);
}

START_TEST(swept_once_no_session_names_them)
{
  store_options o;
  store_default_options(&o, dbpath);
  o.readers = 1;
  store *s = NULL;
  char err[256];
  ck_assert_int_eq(store_open(&o, &s, err, sizeof(err)), 0);
  store_set_sites_sweep_min(s, 1);
  const char *ax[] = {"x.py", "z.py"}, *by[] = {"y.py", "z.py"};
  put_awaits(s, "a", ax, 2);
  put_awaits(s, "b", by, 2);
  int64_t deleted[3] = {0}, reclaimed = 0;
  while(store_maintain(s, NULL, 0, 1, deleted, &reclaimed) == 1) {
  }
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), 3); /* nothing purged: nothing swept */
  /* a deleted, purged: its x.py goes, z.py stays with b */
  ck_assert_int_eq(store_begin(s), 0);
  ck_assert_int_eq(store_delete_session(s, "a"), 0);
  ck_assert_int_eq(store_commit(s), 0);
  while(store_maintain(s, NULL, 0, 1, deleted, &reclaimed) == 1) {
  }
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), 2);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites WHERE file = 'x.py'"), 0);
  char files[256];
  files_of(s, "b", files, sizeof(files));
  ck_assert_str_eq(files, "y.py z.py");
  /* x.py named again after the sweep forgot it: a new row, read back as it was sent */
  const char *cx[] = {"z.py", "x.py", "y.py"};
  put_awaits(s, "c", cx, 3);
  files_of(s, "c", files, sizeof(files));
  ck_assert_str_eq(files, "z.py x.py y.py");
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), 3);
  /* the default minimum: three sites are far from worth a scan of every await */
  store_set_sites_sweep_min(s, STORE_SITES_SWEEP_MIN);
  ck_assert_int_eq(store_begin(s), 0);
  ck_assert_int_eq(store_delete_session(s, "c"), 0);
  ck_assert_int_eq(store_delete_session(s, "b"), 0);
  ck_assert_int_eq(store_commit(s), 0);
  while(store_maintain(s, NULL, 0, 1, deleted, &reclaimed) == 1) {
  }
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM awaits"), 0);
  ck_assert_int_eq(store_fixture_int(db, "SELECT count(*) FROM sites"), 3);
  sqlite3_close(db);
  store_close(s);
}
END_TEST

static Suite *sites_suite(void)
{
  Suite *s = suite_create("store_sites");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, remembered_once_committed_forgotten_when_rolled_back);
  tcase_add_test(tc, repeated_addresses_are_one_site_each);
  tcase_add_test(tc, swept_once_no_session_names_them);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return check_run(sites_suite());
}
