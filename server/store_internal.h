/* store_internal.h — what the store module's files (store.c, store_put.c, store_read.c, ...) share
 * and no one else sees: the read connection's struct (the outbox's own connection reads through
 * the same typed loaders) and the SQLite helpers. sqlite3.h stays inside the module. */
#ifndef LS_STORE_INTERNAL_H
#define LS_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"
#include "store_rows.h"
#include "store_sites.h"

#define STORE_READ_STATEMENTS 24 /* at least store_read.c's R_COUNT (checked there) */

struct store_reader {
  sqlite3 *db;
  sqlite3_stmt *st[STORE_READ_STATEMENTS]; /* prepared on first use */
  int in_use;
  /* The appended tasks' placement this connection made last (store_rows_add.c), kept for the
   * next /rows of the same session while no task arrives or is ordered: {sid, stored rows,
   * appended count, sum of their ids}. Freed by store_reader_finalize. */
  struct store_tree *rows_cache;
  int64_t rows_key[4];
};

/* An SQLite result code as the project's (0, LS_EBUSY, LS_ENOMEM, LS_ETOOBIG, LS_EIO). */
int store_code_of(int sqlite_rc);
/* sqlite3_exec: 0 or a project code, with SQLite's message in err when err is not NULL. */
int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* Parameter i of st: text v, bound without a copy (SQLITE_STATIC: v must outlive the statement's
 * next reset), or NULL when v is NULL; an integer v, or NULL when v < 0 (-1: absent). */
void store_bind_text(sqlite3_stmt *st, int i, const char *v);
void store_bind_opt_i64(sqlite3_stmt *st, int i, int64_t v);
/* Column i of a row: its text copied into a (NULL for NULL), or its integer (-1 for NULL). */
const char *store_col_text(sqlite3_stmt *st, int i, arena *a);
int64_t store_col_opt(sqlite3_stmt *st, int i);
/* One more connection to s's database, with s's busy timeout and extended result codes. */
int store_open_conn(store *s, sqlite3 **out, char *err, size_t errlen);
/* The await_points upsert (store_endpoints.c): one batch's stored awaits (stored[i] for await i)
 * summed per (file, line) into session sid's rows, with st prepared from STORE_POINT_UPSERT. */
#define STORE_POINT_UPSERT                                                                         \
  "INSERT INTO await_points(sid, file, line, what, func, n, total_ns, max_ns)"                     \
  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(sid, file, line) DO UPDATE SET"             \
  " n = n + excluded.n, total_ns = total_ns + excluded.total_ns,"                                  \
  " max_ns = max(max_ns, excluded.max_ns), what = coalesce(what, excluded.what),"                  \
  " func = coalesce(func, excluded.func)"
int store_points_put(sqlite3 *db, sqlite3_stmt *st, int64_t sid, const ingest_batch *b,
                     const unsigned char *stored);
/* Runs fn(db, arg) in a write transaction on r's connection (store_rows.c): ends r's read
 * transaction, lifts query_only, waits for the write lock (busy timeout), commits when fn returns
 * 0 (else rolls back), and opens a new read transaction whatever happened. fn's code, or the
 * transaction's. */
int store_write_on_reader(store_reader *r, int (*fn)(sqlite3 *db, void *arg), void *arg);
/* Long writes on a reader's connection (the task tree, the figures' mipmap) go in transactions of
 * about STORE_CHUNK_MS each, with a pause after each (store_yield_lock) so the writer gets the
 * lock in between; store_rows.c says why the pause. */
#define STORE_CHUNK_MS 20.0
double store_now_ms(void);
/* 1 when a transaction that began at t0 and wrote k rows should commit now (looks at the clock
 * every 256 rows). */
int store_chunk_over(size_t k, double t0);
/* The pause after a write transaction that held the lock for held_ms. */
void store_yield_lock(double held_ms);
/* ---- the task tree (store_rows.c) and the tasks appended to it (store_rows_add.c) ---- */
/* An appended task placed in the stored order: its virtual position (vpos), the stored position
 * it goes before (ip), its shape. */
typedef struct store_added {
  int64_t id, vpos, ip, parent, depth, children, size;
} store_added;
/* A stored task whose subtree or children grew by appended tasks. */
typedef struct store_delta { int64_t id, size, children; } store_delta;

/* The tree a /rows request reads other than task_rows as stored: either the whole tree ordered
 * in memory (n rows; the stored tree could not be written), or (add != NULL) the stored tree's
 * `stored` rows with k appended tasks placed in it. */
struct store_tree {
  size_t n;
  int64_t *id, *parent, *depth, *children, *size;
  int64_t (*by_id)[2];   /* {id, pos}, by id */
  size_t stored, k, ndelta;
  store_added *add;      /* k, by vpos */
  int64_t (*add_by_id)[2]; /* {id, index in add}, by id */
  store_delta *delta;    /* by id */
  int cached;            /* held by a reader's rows_cache: store_tree_free leaves it */
};
/* Frees a tree whatever holds it (store_tree_free leaves a cached one). */
void store_tree_drop(store_tree *t);

/* store_rows_extend's answer when the appended tasks cannot be placed: build the tree again. */
#define STORE_ROWS_REBUILD 1
/* Session sid's appended tasks placed in its stored tree of `stored` rows: *out NULL when there
 * are none, else a tree to read through (the caller frees it); STORE_ROWS_REBUILD when they do not
 * fit (too many, created before a sibling already stored, or a stored orphan's parent). */
int store_rows_extend(store_reader *r, int64_t sid, int64_t stored, store_tree **out);
/* store_rows_find_many and store_rows_scan on such a tree. */
int store_rows_added_find(store_reader *r, int64_t sid, const store_tree *t, const int64_t *ids, size_t n,
                          store_row *out);
int store_rows_added_scan(store_reader *r, int64_t sid, const store_tree *t, int64_t lo, int64_t hi, size_t max,
                          arena *a, store_row *out, size_t *n);
/* Appended tasks waiting (count), and dropping those now in task_rows (a build's last step). */
int store_rows_added(sqlite3 *db, int64_t sid, int64_t *n);
int store_rows_drop_added(sqlite3 *db, int64_t sid);
/* The task's own fields of rows x[0..n) (their id set), strings in a. */
int store_rows_task_fields(store_reader *r, int64_t sid, store_row *x, size_t n, arena *a);
/* Marks the rollup block of session ?1 dirty (store_rollup.c), in the batch's transaction. */
#define STORE_ROLLUP_MARK "INSERT OR IGNORE INTO ep_dirty(blk) VALUES(?1 >> 10)"
_Static_assert(STORE_ROLLUP_BLOCK == 1 << 10, "STORE_ROLLUP_MARK and 008's sid >> 10 use the block size");
/* The dirty block to rebuild next (not the newest unless ?1, idle), through st prepared from
 * STORE_ROLLUP_DUE (it runs after every group of batches: kept prepared); -1 when none is due. */
#define STORE_ROLLUP_DUE                                                                           \
  "SELECT blk FROM ep_dirty WHERE ?1 OR blk < (SELECT coalesce(max(sid), 0) >> 10 FROM sessions)"  \
  " ORDER BY blk LIMIT 1"
int store_rollup_due(sqlite3 *db, sqlite3_stmt *st, int idle, int64_t *blk);
/* Rebuilds block blk's rollup from its sessions' rows, in the caller's transaction. */
int store_rollup_build(sqlite3 *db, int64_t blk);
/* A task row's columns as store_read_task reads them (store_read.c), in this order. */
#define STORE_TASK_COLS "id, parent, created, first_run, ended, busy_ns, wait_ns, name, coro, state, exc, status"
void store_read_task(sqlite3_stmt *st, arena *a, store_task *x);
/* Finalizes the statements r prepared (its connection stays open). */
void store_reader_finalize(store_reader *r);

/* ---- the write side's state, shared by store.c (open, close), store_put.c (batches, deletes) and
 * store_maintain.c (housekeeping); only writer.c's thread touches it after store_open. */
enum wstmt {
  W_SESSION_INS, W_SESSION_SID, W_BATCH_INS, W_SESSION_META,
  W_SESSION_COUNTS, W_TASK_ROW, W_STEP, W_AWAIT, W_BLOCK, W_LAG, W_POINT, W_DIRTY, W_DUE,
  W_FIGURES_DUE, W_STEPS_16, W_STEPS_4, W_AWAITS_16, W_AWAITS_4,
  W_TASKS_8, W_TASKS_4, W_TASKS_2, W_ROWS_BUILT, W_TASK_OLD, W_ROWS_ADD, W_ROWS_STALE, W_COUNT
};

/* W_STEPS_16 (_4) and W_AWAITS_16 (_4) insert 16 (4) steps or awaits in one statement, W_TASKS_8
 * (_4, _2) a new session's task rows; store.c writes their SQL at open (store_multi_rows tells
 * how many rows each has). */
int store_multi_rows(int which);

struct store {
  char *path;
  sqlite3 *w;
  sqlite3_stmt *ws[W_COUNT];
  store_reader *readers;
  int nreaders;
  pthread_mutex_t lock; /* guards readers[].in_use */
  pthread_cond_t freed;
  int version;
  int64_t journal_size_limit;
  int64_t wal_frames;       /* frames in the WAL after the last commit (wal_hook) */
  int purge_pending;        /* the purge table may hold sids */
  int vacuum_pending;       /* the freelist may hold pages to give back */
  int rollup_pending;       /* ep_dirty may hold blocks (store_rollup.c) */
  int batch_since_maintain; /* a batch was stored since the last housekeeping step */
  int64_t next_retention_s; /* when retention is looked at next */
  int busy_timeout_ms;
  int wal_autocheckpoint;   /* pages: the writer checkpoints (RESTART) past this */
  char *reserve;            /* "<db>-reserve": disk space kept for a full disk (NULL: no memory) */
  int reserve_held;         /* the reserve file exists with its size */
  store_sites *sites;       /* the await sites the writer has committed (store_sites.c) */
  int64_t sites_sweep_min;  /* STORE_SITES_SWEEP_MIN; tests lower it (store_set_sites_sweep_min) */
};

/* A full disk: the last commits may have grown the database past its file in the WAL, so even
 * a checkpoint needs new blocks, and without a checkpoint a delete's few pages cannot be written
 * either. The reserve is a file of RESERVE_BYTES allocated at start; when housekeeping hits
 * SQLITE_FULL it is deleted, which gives SQLite room to checkpoint, purge and vacuum; it is
 * allocated again once housekeeping is done and the space is there. */
#define RESERVE_BYTES ((off_t)4 << 20)

/* The reserve file made (again) with its size: 0, or a project code. */
int store_reserve_make(store *s);
/* One integer from a PRAGMA or SELECT: 0, or a project code. */
int store_pragma_int(sqlite3 *db, const char *sql, int64_t *out);
/* What sqlite3_step's result src on the write connection means: 0 for a row or the end, else
 * (logged) a project code. */
int store_wstep_rc(store *s, int src);
/* Runs one of the write connection's prepared statements to its end (reset after): 0 or a code. */
int store_wrun(store *s, sqlite3_stmt *st);
/* Marks the sessions matching `where` (?1 = arg) deleted and queues them for the purge: how
 * many, or a negative project code (store_put.c). */
int64_t store_tombstone(store *s, const char *where, int64_t arg);

#endif
