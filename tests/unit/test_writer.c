/* test_writer.c — Check suite for server/writer.c through the production path http.c uses:
 * writer_submit with an on_done callback, several jobs committed as one group. The database is
 * made "full" with the write connection's max_page_count (store_set_page_limit): an INSERT past it
 * fails with SQLITE_FULL exactly as on a full disk, and for a one-row statement SQLite then rolls
 * back the whole group transaction. What every test checks is the writer's promise: a job
 * answered 0 is in the database, a job answered with an error is not. */
#include <check.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "ingest.h"
#include "jbuf.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "writer.h"
#include "check_run.h"
#include "store_fixture.h"

static char dbpath[512];
static store *st;
static writer *wr;
static metrics mt;
static ingest_limits lim;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int answered;

typedef struct tjob {
  writer_job job;
  char session[32], batch[32];
} tjob;

static void on_done(writer_job *j, void *arg)
{
  (void)j;
  (void)arg;
  pthread_mutex_lock(&done_lock);
  answered++;
  pthread_cond_broadcast(&done_cond);
  pthread_mutex_unlock(&done_lock);
}

static void unlink_db(void)
{
  store_fixture_unlink(dbpath);
}

static void open_store(int wal_pages)
{
  store_options o;
  store_default_options(&o, dbpath);
  o.readers = 2;
  o.busy_timeout_ms = 60000; /* the tests hold the lock on purpose; never time out under load */
  if(wal_pages)
    o.wal_autocheckpoint = wal_pages;
  char err[256];
  ck_assert_int_eq(store_open(&o, &st, err, sizeof(err)), 0);
}

static void setup(void)
{
  log_set_level(LOG_ERROR);
  const char *tmp = getenv("TMPDIR");
  snprintf(dbpath, sizeof(dbpath), "%s/test_writer_%d.db", tmp ? tmp : "/tmp", (int)getpid());
  unlink_db();
  ingest_default_limits(&lim);
  lim.max_events = 1000000;
  metrics_init(&mt);
  answered = 0;
  open_store(0);
}

static void teardown(void)
{
  writer_stop(wr);
  store_close(st);
  wr = NULL;
  st = NULL;
  unlink_db();
}

/* A batch of session `session` with `nsteps` steps of one task, and one await at a site of the
 * session's own (file "<session>.py"): new to the sites table when the batch is written. */
static ingest_batch *make_batch(const char *session, const char *batch, int nsteps)
{
  jbuf j;
  jbuf_init(&j, (size_t)1 << 28);
  jbuf_printf(&j, "{\"v\":1,\"batch\":\"%s\",\"session\":\"%s\",\"events\":["
                  "{\"k\":\"task\",\"id\":1,\"name\":\"Task-1\",\"coro\":\"main\",\"t\":0},"
                  "{\"k\":\"await\",\"id\":1,\"t\":1,\"d\":2,\"what\":\"sleep\",\"file\":\"%s.py\","
                  "\"line\":7,\"func\":\"main\"}",
              batch, session, session);
  for(int i = 0; i < nsteps; i++)
    jbuf_printf(&j, ",{\"k\":\"step\",\"id\":1,\"t\":%d,\"d\":5}", i * 10);
  jbuf_puts(&j, "]}");
  ck_assert_int_eq(jbuf_status(&j), 0);
  ingest_batch *b = NULL;
  char detail[256];
  int rc = ingest_parse(j.data, j.len, &lim, &b, detail, sizeof(detail));
  ck_assert_msg(rc == 0, "bad test batch: %s", detail);
  jbuf_free(&j);
  return b;
}

static void submit(tjob *t, const char *session, const char *batch, int nsteps)
{
  memset(t, 0, sizeof(*t));
  snprintf(t->session, sizeof(t->session), "%s", session);
  snprintf(t->batch, sizeof(t->batch), "%s", batch);
  t->job.batch = make_batch(session, batch, nsteps);
  t->job.on_done = on_done;
  ck_assert_int_eq(writer_submit(wr, &t->job), 0);
}

static void wait_answers(int n)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 120;
  pthread_mutex_lock(&done_lock);
  while(answered < n)
    ck_assert_int_eq(pthread_cond_timedwait(&done_cond, &done_lock, &until), 0);
  pthread_mutex_unlock(&done_lock);
}

/* Waits until the writer has taken everything queued (it is then inside write_group). */
static void wait_taken(void)
{
  for(int i = 0; i < 60000 && writer_queue_depth(wr) > 0; i++)
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  ck_assert_int_eq(writer_queue_depth(wr), 0);
}

/* Whether batch `batch` of session `session` is in the database, read by a connection of its
 * own (not the store's), so only committed rows count. */
static int stored(const char *session, const char *batch)
{
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q;
  ck_assert_int_eq(sqlite3_prepare_v2(db,
      "SELECT count(*) FROM batches JOIN sessions USING(sid) WHERE id = ?1 AND batch = ?2",
      -1, &q, NULL), SQLITE_OK);
  sqlite3_bind_text(q, 1, session, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, batch, -1, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
  int n = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

/* An integer from SQL on a connection of the test's own (committed rows only). */
static int64_t sql_int(const char *sql)
{
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

/* Starts the writer with the store's start-up housekeeping (the purge, vacuum and rollup a fresh
 * store counts as pending) done first, here: else the writer's first step of it may come after
 * hold_lock took the lock, wait its busy timeout (60 s) for it, and take no job meanwhile, which
 * wait_taken gives up on (seen once in 20 runs beside a CPU hog). */
static void start_settled(void)
{
  int64_t deleted[3] = {0, 0, 0}, reclaimed = 0;
  int rc;
  while((rc = store_maintain(st, NULL, (int64_t)time(NULL), 1, deleted, &reclaimed)) == 1)
    ;
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
}

/* Another connection holding the write lock: jobs submitted meanwhile queue up and are taken
 * as one group when it is released. */
static sqlite3 *hold_lock(void)
{
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  /* the writer's housekeeping (at start, after a group) may hold the lock a moment: wait for it,
   * as test_store's busy_database does (SQLITE_BUSY here once on a loaded machine) */
  sqlite3_busy_timeout(db, 10000);
  ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  return db;
}

static void release_lock(sqlite3 *db)
{
  ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Writes n batches (session names[i], batch "b<i>", steps[i] steps) as two groups: the writer takes
 * the first alone while another connection holds the lock, and the other n - 1 queue up behind it
 * and are written together once the lock goes. Returns with every job answered and the writer
 * stopped. */
static void write_as_group(tjob *j, const char *const *names, const int *steps, int n)
{
  start_settled();
  sqlite3 *holder = hold_lock();
  char batch[16];
  snprintf(batch, sizeof batch, "b0");
  submit(&j[0], names[0], batch, steps[0]);
  wait_taken(); /* group 1 = {j0}, blocked on the lock; the rest forms group 2 */
  for(int i = 1; i < n; i++) {
    snprintf(batch, sizeof batch, "b%d", i);
    submit(&j[i], names[i], batch, steps[i]);
  }
  ck_assert_int_eq(writer_queue_depth(wr), n - 1);
  release_lock(holder);
  wait_answers(n);
  writer_stop(wr);
  wr = NULL;
}

/* The writer's promise for n jobs: each answered 0 is stored and each answered otherwise is not;
 * every job but j[failing] was answered 0. */
static void check_answers(const tjob *j, int n, int failing)
{
  for(int i = 0; i < n; i++) {
    int in = stored(j[i].session, j[i].batch);
    ck_assert_msg((j[i].job.result == 0) == (in == 1), "job %d answered %d, stored %d", i, j[i].job.result, in);
    if(i != failing)
      ck_assert_msg(j[i].job.result == 0, "job %d answered %d", i, j[i].job.result);
  }
}

static int64_t page_count(void)
{
  int64_t n = 0;
  ck_assert_int_eq(store_write_pragma(st, "page_count", &n), 0);
  return n;
}

/* Defect 1 of issue 11: small batches answered in the same group as a batch that hits
 * SQLITE_FULL. SQLite rolls the whole group transaction back; every job answered 0 must still
 * be stored, the failing one answered "busy" (503) and not stored. */
START_TEST(full_mid_group_loses_nothing_acknowledged)
{
  ck_assert_int_eq(store_set_page_limit(st, page_count() + 24), 0);
  tjob j[6];
  static const char *const names[6] = {"s0", "s1", "s2", "s3", "big", "s5"};
  static const int steps[6] = {1, 1, 1, 1, 20000, 1}; /* "big": ~300 kB, far beyond 24 pages */
  write_as_group(j, names, steps, 6);
  check_answers(j, 6, 4);
  ck_assert_int_eq(j[4].job.result, LS_EBUSY);
  ck_assert_int_eq(atomic_load(&mt.batches), 5);
  /* nothing of the failing job stayed, whichever way it failed (a one-row statement: SQLite rolls
   * the transaction back; a many-row one: only the statement, and the writer the rest, as a job has
   * no savepoint of its own): not its session's row, not one of its 20,000 steps */
  ck_assert_int_eq(sql_int("SELECT count(*) FROM sessions WHERE id = 'big'"), 0);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM steps"), 5);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM tasks"), 5);
  /* every await stored names a site that is stored: the sites the rolled-back group inserted
   * were forgotten with it, and found or inserted again when each job was written alone */
  ck_assert_int_eq(sql_int("SELECT count(*) FROM awaits"), 5);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM awaits WHERE site NOT IN (SELECT id FROM sites)"), 0);
}
END_TEST

/* A batch failing part way in a group while the transaction stays open (a statement aborted on
 * its own, as a constraint or our own out-of-memory would): a job has no savepoint (store.h), so
 * what it wrote before the failure is in the group's transaction. The writer rolls the group
 * back and writes each job alone: the failing one leaves nothing (not its session's row, not its
 * task), the others are stored and answered 0. The failure comes from a trigger on steps that
 * aborts the statement for one session, so it happens again when that job is written alone. */
START_TEST(failed_batch_mid_group_leaves_nothing)
{
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  ck_assert_int_eq(sqlite3_exec(db, "CREATE TRIGGER refuse_bad BEFORE INSERT ON steps "
                                    "WHEN NEW.sid IN (SELECT sid FROM sessions WHERE id = 'bad') "
                                    "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  tjob j[5];
  static const char *const names[5] = {"s0", "s1", "bad", "s3", "s4"};
  static const int steps[5] = {1, 3, 3, 3, 3};
  write_as_group(j, names, steps, 5);
  ck_assert_msg(j[2].job.result != 0, "the refused batch was answered 0");
  check_answers(j, 5, 2);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM sessions WHERE id = 'bad'"), 0);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM tasks"), 4);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM steps"), 1 + 3 * 3);
}
END_TEST

/* A delete in a group with batches, the delete failing half way: nothing of it may stay, and
 * the batches around it are answered as stored. Then ingest recovers once space is freed. */
START_TEST(full_disk_recovers_after_delete)
{
  ck_assert_int_eq(store_set_page_limit(st, page_count() + 40), 0);
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  /* fill: sessions of 2000 steps until the cap refuses one */
  char sid[32];
  int n = 0, rc = 0;
  for(; n < 100; n++) {
    snprintf(sid, sizeof(sid), "fill%d", n);
    int dup;
    rc = writer_put(wr, make_batch(sid, "b", 2000), &dup);
    if(rc)
      break;
  }
  ck_assert_int_eq(rc, LS_EBUSY); /* full: 503, retry later */
  ck_assert_int_gt(n, 1);
  ck_assert_int_eq(stored(sid, "b"), 0);
  /* deleting works on the full database and makes room for the refused batch */
  ck_assert_int_eq(writer_delete(wr, "fill0"), 0);
  ck_assert_int_eq(writer_delete(wr, "fill0"), LS_ENOTFOUND);
  int dup;
  ck_assert_int_eq(writer_put(wr, make_batch(sid, "b", 2000), &dup), 0);
  writer_stop(wr);
  wr = NULL;
  ck_assert_int_eq(stored(sid, "b"), 1);
  ck_assert_int_eq(stored("fill0", "b"), 0);
  ck_assert_int_eq(stored("fill1", "b"), 1);
}
END_TEST


static int64_t file_bytes(const char *suffix)
{
  char p[600];
  snprintf(p, sizeof(p), "%s%s", dbpath, suffix);
  struct stat sb;
  return stat(p, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* Polls until `sql` yields `want` (housekeeping runs on the writer's own schedule). */
static void wait_sql(const char *sql, int64_t want)
{
  int64_t v = -1;
  for(int i = 0; i < 6000 && (v = sql_int(sql)) != want; i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  ck_assert_msg(v == want, "%s: %lld, expected %lld", sql, (long long)v, (long long)want);
}

static void put_sessions(int from, int to, int nsteps)
{
  for(int i = from; i < to; i++) {
    char sid[32];
    snprintf(sid, sizeof(sid), "r%03d", i);
    int dup;
    ck_assert_int_eq(writer_put(wr, make_batch(sid, "b", nsteps), &dup), 0);
  }
}

/* --max-sessions: the oldest go, their rows are purged and the pages given back to the file
 * system (incremental vacuum): the file ends smaller than it was. (10,000 steps a session: with
 * 5,000 the schema's own pages made the 2 sessions kept exactly half of the 6 once schema 9 added
 * two tables.) */
START_TEST(retention_max_sessions_reclaims_space)
{
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  put_sessions(0, 6, 10000);
  int64_t full = sql_int("PRAGMA page_count") * 4096; /* the database as read, WAL included */
  store_limits l = {.max_sessions = 2};
  writer_set_limits(wr, &l);
  wait_sql("SELECT count(*) FROM sessions", 2);
  wait_sql("SELECT count(*) FROM purge", 0);
  wait_sql("SELECT count(*) FROM steps", 2 * 10000);
  wait_sql("PRAGMA freelist_count", 0);
  ck_assert_int_eq(stored("r004", "b") + stored("r005", "b"), 2); /* the newest stay */
  ck_assert_int_eq(stored("r000", "b") + stored("r003", "b"), 0);
  ck_assert_int_eq(atomic_load(&mt.retention_deleted[RETENTION_SESSIONS]), 4);
  /* the writer counts what a vacuum step gave back after the step's commit, which this test's
   * connection may see first: look again until a generous deadline */
  for(int i = 0; i < 3000 && atomic_load(&mt.reclaimed_bytes) == 0; i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  ck_assert_int_gt(atomic_load(&mt.reclaimed_bytes), 0);
  /* the file shrinks once the idle checkpoint copied the vacuum back */
  int64_t now = full;
  for(int i = 0; i < 3000 && (now = file_bytes("")) >= full / 2; i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  ck_assert_msg(now < full / 2, "file %lld bytes, was %lld", (long long)now, (long long)full);
}
END_TEST

/* --max-db-size: oldest first until the used pages fit, never the newest session. */
START_TEST(retention_max_db_size)
{
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  put_sessions(0, 10, 5000);
  int64_t used = sql_int("SELECT (SELECT page_count FROM pragma_page_count()) - "
                         "(SELECT freelist_count FROM pragma_freelist_count())") * 4096;
  store_limits l = {.max_db_bytes = used / 3};
  writer_set_limits(wr, &l);
  int64_t now = used;
  for(int i = 0; i < 6000 && (now = sql_int("SELECT (SELECT page_count FROM pragma_page_count()) - "
      "(SELECT freelist_count FROM pragma_freelist_count())") * 4096) > used / 3; i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  ck_assert_msg(now <= used / 3, "used %lld bytes, limit %lld", (long long)now, (long long)(used / 3));
  wait_sql("SELECT count(*) FROM purge", 0); /* the last round's counts are in the metrics */
  ck_assert_int_eq(stored("r009", "b"), 1);
  ck_assert_int_eq(stored("r000", "b"), 0);
  int64_t gone = atomic_load(&mt.retention_deleted[RETENTION_SIZE]);
  ck_assert_int_ge(gone, 6);
  ck_assert_int_eq(sql_int("SELECT count(*) FROM sessions"), 10 - gone);
  /* oldest first: what is left is the newest run of sessions */
  ck_assert_int_eq(sql_int("SELECT min(id) = printf('r%03d', 10 - count(*)) FROM sessions"), 1);
}
END_TEST

static atomic_int readers_stop;

/* Keeps a read transaction open almost all the time, as a stream of overlapping requests
 * does: the snapshot of each lasts 5 ms, the next starts at once. */
static void *reader_main(void *arg)
{
  (void)arg;
  while(!atomic_load(&readers_stop)) {
    store_reader *r = store_reader_acquire(st);
    arena a;
    arena_init(&a);
    store_session x;
    store_find_session(r, "w000", &a, &x); /* starts the snapshot */
    nanosleep(&(struct timespec){0, 5000000}, NULL);
    arena_free(&a);
    store_reader_release(st, r);
  }
  return NULL;
}

/* Defect 10: under continuous reads the WAL stays bounded (a few times the checkpoint
 * threshold) while many times that is written. */
START_TEST(wal_bounded_under_readers)
{
  store_close(st);
  open_store(256); /* checkpoint past 1 MiB */
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  atomic_store(&readers_stop, 0);
  pthread_t t[2];
  for(int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, reader_main, NULL), 0);
  int64_t max_wal = 0;
  for(int i = 0; i < 200; i++) {
    char sid[32];
    snprintf(sid, sizeof(sid), "w%03d", i);
    int dup;
    ck_assert_int_eq(writer_put(wr, make_batch(sid, "b", 5000), &dup), 0);
    int64_t wal = file_bytes("-wal");
    if(wal > max_wal)
      max_wal = wal;
  }
  atomic_store(&readers_stop, 1);
  for(int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  int64_t db = file_bytes("");
  fprintf(stderr, "wal_bounded_under_readers: database %lld bytes, largest WAL %lld bytes, gauge %lld\n",
          (long long)db, (long long)max_wal, (long long)atomic_load(&mt.wal_bytes));
  ck_assert_int_gt(db, 8 << 20);          /* written: many times the threshold */
  ck_assert_int_lt(max_wal, 4 << 20);     /* the WAL: a few times the 1 MiB threshold */
  ck_assert_int_gt(atomic_load(&mt.wal_bytes), 0);
  ck_assert_int_le(atomic_load(&mt.wal_bytes), max_wal);
}
END_TEST

/* ---- the commit listener (live event streams) ---- */

static struct { char session[32]; int flags; } heard[16];
static int nheard;

static void listener(void *arg, const char *session, int flags)
{
  ck_assert_ptr_eq(arg, &nheard);
  if(nheard < 16) {
    snprintf(heard[nheard].session, sizeof(heard[0].session), "%s", session);
    heard[nheard].flags = flags;
  }
  nheard++;
}

/* A batch of session `session` that only ends it. */
static ingest_batch *end_batch(const char *session, const char *batch)
{
  char json[256];
  snprintf(json, sizeof(json), "{\"v\":1,\"batch\":\"%s\",\"session\":\"%s\",\"events\":[{\"k\":\"end\",\"t\":99}]}",
           batch, session);
  ingest_batch *b = NULL;
  char detail[256];
  ck_assert_int_eq(ingest_parse(json, strlen(json), &lim, &b, detail, sizeof(detail)), 0);
  return b;
}

/* The listener hears every commit that changed something, after it is readable, with what it
 * was (a new session, an end, a delete), and nothing once removed. Calls come on the writer's
 * thread before the jobs are answered, so after writer_put returns they have been made. */
START_TEST(listener_hears_what_each_commit_changed)
{
  nheard = 0;
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  writer_set_listener(wr, listener, &nheard);
  int dup = 0;
  ck_assert_int_eq(writer_put(wr, make_batch("s-a", "b1", 3), &dup), 0);
  ck_assert_int_eq(writer_put(wr, make_batch("s-a", "b1", 3), &dup), 0); /* a retry: nothing new */
  ck_assert_int_eq(dup, 1);
  ck_assert_int_eq(writer_put(wr, make_batch("s-a", "b2", 3), &dup), 0);
  ck_assert_int_eq(writer_put(wr, end_batch("s-a", "b3"), &dup), 0);
  ck_assert_int_eq(writer_delete(wr, "s-a"), 0);
  ck_assert_int_eq(writer_delete(wr, "s-none"), LS_ENOTFOUND); /* nothing changed: not heard */
  ck_assert_int_eq(nheard, 4);
  ck_assert_str_eq(heard[0].session, "s-a");
  ck_assert_int_eq(heard[0].flags, WRITER_NEW_SESSION);
  ck_assert_int_eq(heard[1].flags, 0);
  ck_assert_int_eq(heard[2].flags, WRITER_ENDED);
  ck_assert_int_eq(heard[3].flags, WRITER_DELETED);
  writer_set_listener(wr, NULL, NULL);
  ck_assert_int_eq(writer_put(wr, make_batch("s-b", "b1", 3), &dup), 0);
  ck_assert_int_eq(nheard, 4);
}
END_TEST

/* The arena blocks a written batch freed are kept for the next parse while batches flow, and
 * given back once the writer has been idle about a second (arena.c: up to 32 MiB are kept). */
START_TEST(kept_arena_blocks_given_back_when_idle)
{
  ck_assert_int_eq(writer_start(st, &mt, 64, 16, &wr), 0);
  arena_pool_drain();
  int dup = 0;
  ck_assert_int_eq(writer_put(wr, make_batch("s-kept", "b1", 3000), &dup), 0);
  ck_assert_uint_gt(arena_kept_blocks(), 0); /* the batch's tree, freed by the writer, kept */
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while(arena_kept_blocks() && now.tv_sec - t0.tv_sec < 30);
  ck_assert_uint_eq(arena_kept_blocks(), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("writer");
  TCase *tc = tcase_create("writer");
  tcase_set_timeout(tc, 300);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, full_mid_group_loses_nothing_acknowledged);
  tcase_add_test(tc, failed_batch_mid_group_leaves_nothing);
  tcase_add_test(tc, full_disk_recovers_after_delete);
  tcase_add_test(tc, retention_max_sessions_reclaims_space);
  tcase_add_test(tc, retention_max_db_size);
  tcase_add_test(tc, wal_bounded_under_readers);
  tcase_add_test(tc, listener_hears_what_each_commit_changed);
  tcase_add_test(tc, kept_arena_blocks_given_back_when_idle);
  suite_add_tcase(s, tc);
  return check_run(s);
}
