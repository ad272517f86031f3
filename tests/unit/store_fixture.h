/* store_fixture.h — a temporary database with its writer for suites that need real storage
 * (test_http.c, test_export.c): a fresh directory under $TMPDIR, store_open, writer_start, and
 * everything removed again at the end. Test code only: a failure fails the test. */
#ifndef LS_STORE_FIXTURE_H
#define LS_STORE_FIXTURE_H

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "metrics.h"
#include "store.h"
#include "writer.h"

typedef struct store_fixture {
  char dir[256], db[300];
  store *s;
  writer *w;
  metrics m;
} store_fixture;

/* name: a word for the directory; readers: read connections (0: the store's default). */
static inline void store_fixture_up(store_fixture *f, const char *name, int readers)
{
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/loopscope-test-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
  ck_assert_ptr_nonnull(mkdtemp(f->dir));
  snprintf(f->db, sizeof f->db, "%s/%s.db", f->dir, name);
  store_options o;
  store_default_options(&o, f->db);
  if(readers > 0)
    o.readers = readers;
  char err[256];
  ck_assert_msg(store_open(&o, &f->s, err, sizeof err) == 0, "store_open: %s", err);
  metrics_init(&f->m);
  ck_assert_int_eq(writer_start(f->s, &f->m, 64, 8, &f->w), 0);
}

/* The one integer a query of db answers (a count, a pragma); the test fails without a row. */
static inline int64_t store_fixture_int(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Removes database file db and SQLite's files beside it (WAL, shared memory, journal). */
static inline void store_fixture_unlink(const char *db)
{
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[600];
  for(size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(p, sizeof p, "%s%s", db, suffix[i]);
    unlink(p);
  }
}

static inline void store_fixture_down(store_fixture *f)
{
  writer_stop(f->w);
  store_close(f->s);
  store_fixture_unlink(f->db);
  rmdir(f->dir);
}

#endif
