/* store.h — SQLite: schema and migrations, the write connection (used by writer.c's thread
 * only), a pool of read connections (one per HTTP worker), prepared statements, and typed
 * row reads. The only module that includes sqlite3.h; it knows nothing of HTTP or JSON shapes. */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "endpoints.h"
#include "errors.h"
#include "ingest.h"
#include "stats.h"

#define STORE_SCHEMA_VERSION 5

typedef struct store store;
typedef struct store_reader store_reader;

typedef struct store_options {
  const char *path;
  int readers;               /* read connections in the pool, >= 1 */
  int busy_timeout_ms;       /* how long the writer waits for a lock held by another process */
  int wal_autocheckpoint;    /* pages; the WAL is checkpointed (PASSIVE) past this */
  int64_t journal_size_limit; /* bytes the WAL file is truncated to after a checkpoint */
} store_options;

void store_default_options(store_options *o, const char *path);

/* Opens (creating or migrating) the database. On failure returns an error code and writes a
 * reason to err. */
int store_open(const store_options *o, store **out, char *err, size_t errlen);
/* Checkpoints (TRUNCATE) and closes every connection. Readers must all be released. */
void store_close(store *s);
/* The last error text of the write connection (writer thread only). */
const char *store_errmsg(store *s);
int store_schema_version(store *s);
/* Bytes on disk: the database file plus its WAL. */
int64_t store_db_bytes(store *s);
/* How many times the writer's statements for storing batches have run since the store opened
 * (SQLite's SQLITE_STMTSTATUS_RUN, summed; housekeeping's own are not counted): what a batch
 * costs in statements, for tests that keep it from growing back. */
int64_t store_batch_statements(store *s);

/* ---- write side: writer thread only ---- */
int store_begin(store *s);   /* BEGIN IMMEDIATE; LS_EBUSY when another process holds the lock */
int store_commit(store *s);
void store_rollback(store *s);
/* Stores one batch inside the open transaction. On failure part of it may be in the transaction:
 * the caller rolls the transaction back (writer.c then writes the other jobs of its group again,
 * each alone). No savepoint per batch: SQLite copies every page a savepoint first changes into
 * its sub-journal, ~33 pages a small session, and SAVEPOINT/RELEASE are two statements more: 11%
 * of the server's instructions on a burst of request sessions (bench/overhead/README.md, stop 46),
 * for a failure (disk full, I/O, memory) that is rare. *duplicate = 1 when this session already
 * holds this batch id (nothing written); *created = 1 when the batch made its session. */
int store_put_batch(store *s, const ingest_batch *b, int *duplicate, int *created);
/* 1 while a transaction is open on the write connection. After a failed store_put_batch or
 * store_delete_session it may be 0: SQLite rolled back the whole transaction (SQLITE_FULL in a
 * one-row statement, IOERR, NOMEM), so nothing the transaction held is stored. */
int store_in_transaction(store *s);
/* Deletes a session inside the open transaction (on failure the caller rolls it back, as for
 * store_put_batch); LS_ENOTFOUND, with nothing written, when there is none. Only its sessions
 * row goes at once (no query finds it any more); its rows are removed by store_maintain
 * afterwards, so a delete writes a few pages, also on a full disk. */
int store_delete_session(store *s, const char *id);
/* RESTART checkpoint when the WAL has grown past `pages` since the last one (waiting at most
 * 200 ms for readers); cheap otherwise. The writer calls it after every group. */
int store_maybe_checkpoint(store *s, int pages);
/* After a failure with SQLITE_FULL on the write connection: deletes the disk reserve
 * ("<db>-reserve", 4 MiB allocated at open, allocated again by store_maintain once there is
 * room) so that deletes and housekeeping can be written. 1 when it was released (try again). */
int store_release_reserve(store *s);
/* Bytes of the WAL file (0 when there is none, -1 out of memory). */
int64_t store_wal_bytes(store *s);

/* Retention limits; 0 = no limit. */
typedef struct store_limits {
  int64_t max_sessions;  /* keep the newest N sessions */
  int64_t max_age_s;     /* delete sessions whose latest batch is older */
  int64_t max_db_bytes;  /* delete the oldest sessions while used pages exceed it (never the newest) */
} store_limits;
/* One bounded step of housekeeping, each in its own short transaction: the retention limits
 * (looked at once a second at most; sessions deleted added to deleted[0] by count, [1] by age,
 * [2] by size), then removing up to 5000 rows of deleted sessions, or else giving up to 4 MiB of
 * free pages back to the file system (bytes added to *reclaimed), then a checkpoint when the WAL
 * passed wal_autocheckpoint pages (`idle`: any WAL at all, which is also when the file shrinks
 * after a vacuum). Returns 1 when more of it is pending, 0 when done, or an error code. l may be
 * NULL. */
int store_maintain(store *s, const store_limits *l, int64_t now_s, int idle, int64_t deleted[3],
                   int64_t *reclaimed);
/* The await sites no session names are swept once at least n (default 4096, and as many as the
 * last sweep left) were inserted since it, after a purge (store_sites.h); tests lower n. */
void store_set_sites_sweep_min(store *s, int64_t n);
/* Caps the database at `pages` pages (PRAGMA max_page_count on the write connection; 0 lifts
 * the cap): inserts beyond it fail with SQLITE_FULL as on a full disk. Call before
 * writer_start or after writer_stop (the write connection belongs to the writer thread). */
int store_set_page_limit(store *s, int64_t pages);
/* A pragma's integer value on the write connection (for tests: synchronous, journal_mode...). */
int store_write_pragma(store *s, const char *name, int64_t *out);

/* ---- read side: any thread, through a reader from the pool ---- */
/* Waits for a free read connection and opens a read transaction on it. */
store_reader *store_reader_acquire(store *s);
void store_reader_release(store *s, store_reader *r);

typedef struct store_session {
  int64_t sid;
  const char *id, *name, *service, *host, *python, *started; /* in the caller's arena */
  int64_t pid;          /* -1 when unknown */
  int has_meta, ended;
  int64_t end_t, max_t, dropped, unknown, n_events, n_steps, n_awaits, n_blocks, n_lag;
  int64_t max_d[INGEST_NKINDS];
  /* unix ns when the first batch was stored, less its largest t: the start as the server saw
   * it (-1: unknown) */
  int64_t received_ns;
  const char *route;    /* the route template (meta.route), NULL when none arrived */
  int64_t loop;         /* the loop's number in its process (meta.loop), -1 when unknown */
  /* of n_blocks, those from elsewhere; the blocked time of each kind (schema 6) */
  int64_t n_blocks_elsewhere, blocked_ns_own, blocked_ns_elsewhere;
  double fraction;      /* meta.fraction (schema 14): the share of requests recorded, 0: none sent */
} store_session;

int store_find_session(store_reader *r, const char *id, arena *a, store_session *out);
/* Newest first; name_sub filters by substring of name (NULL: all). *out malloc'd. */
int store_list_sessions(store_reader *r, const char *name_sub, int limit, arena *a,
                        store_session **out, size_t *n);

/* Lifetimes of the tasks whose task event arrived; ended -1 when no done. *out malloc'd. */
int store_load_intervals(store_reader *r, int64_t sid, stats_interval **out, size_t *n);

typedef struct store_task {
  int64_t id, parent, created, first_run, ended, busy_ns, wait_ns; /* -1: unknown */
  int64_t status;   /* HTTP response status of a request's task, -1: none */
  const char *name, *coro, *state, *exc;
} store_task;
int store_load_tasks(store_reader *r, int64_t sid, arena *a, store_task **out, size_t *n);

typedef struct store_await {
  int64_t task, t, d, line; /* line -1: unknown */
  const char *what, *file, *func;
} store_await;
/* Awaits with d >= min_d, longest first (ties by t). */
int store_load_awaits(store_reader *r, int64_t sid, int64_t min_d, arena *a, store_await **out,
                      size_t *n);

typedef struct store_block {
  int64_t task, t, d, line;
  const char *file, *func, *src, *stack; /* stack: JSON text */
  int elsewhere;            /* 1: it stalled the session's loop from outside the session */
  const char *from_session; /* then the causing session's id, NULL: none */
  int64_t from_task;        /* and its task, -1: none */
  int64_t stack_t;          /* ns after t when the stack was taken, -1: unknown */
} store_block;
int store_load_blocks(store_reader *r, int64_t sid, arena *a, store_block **out, size_t *n);

typedef struct store_step { int64_t task, t, d; } store_step;
/* Lag samples (task unused) by t. */
int store_load_lag(store_reader *r, int64_t sid, store_step **out, size_t *n);
/* Steps by task, t (for export). */
int store_load_steps(store_reader *r, int64_t sid, store_step **out, size_t *n);

/* Items of one kind (INGEST_STEP, _AWAIT, _BLOCK, _LAG) with lo <= t < hi, by task then t;
 * tasks[0..ntasks) restricts the lanes (NULL: all). rowid identifies a block for its details
 * (0 for the other kinds: an await is found by its task and t). */
typedef struct store_span { int64_t task, t, d, rowid; } store_span;
int store_scan_spans(store_reader *r, int64_t sid, int kind, const int64_t *tasks, size_t ntasks,
                     int64_t lo, int64_t hi, store_span **out, size_t *n);
int store_await_at(store_reader *r, int64_t sid, int64_t task, int64_t t, arena *a, store_await *out);
int store_block_by_rowid(store_reader *r, int64_t rowid, arena *a, store_block *out);

/* ---- endpoints and compare (store_endpoints.c) ---- */
/* Which sessions /endpoints looks at: the newest `limit` by arrival among the ended sessions that
 * have an endpoint (route, else name), started in [since_ns, until_ns) (-1: open), of service
 * (NULL: any) and endpoint (NULL: any), with a sid in [sid_lo, sid_hi] (sid_hi 0: open). */
typedef struct store_ep_filter {
  int64_t limit, since_ns, until_ns, sid_lo, sid_hi;
  const char *service, *endpoint;
} store_ep_filter;
/* *out malloc'd (strings in a), newest first. */
int store_ep_sessions(store_reader *r, const store_ep_filter *f, arena *a, ep_session **out, size_t *n);
/* A point of one session: an await point summed (n awaits, total and max ns; what is awaited) or
 * one block's innermost frame (n 1, total = max = d; what is its source line). file NULL and line
 * -1 when unknown. Strings valid during the callback only. */
typedef struct store_point {
  int64_t sid, line, n, total, max;
  const char *file, *func, *what;
} store_point;
/* Returns 0 to go on, or a code that stops the scan and is returned. */
typedef int (*store_point_fn)(void *ctx, const store_point *p);
/* Await points / blocks of the sessions sids[0..n) (ascending), in sid order; fn may also see
 * rows of other sessions between them, to be ignored. */
int store_await_points(store_reader *r, const int64_t *sids, size_t n, store_point_fn fn, void *ctx);
/* own_only: only the sessions' own blocks, not the stalls they suffered from elsewhere (an
 * endpoint's culprits are its own lines; another session's block would count once per session
 * it delayed). */
int store_block_points(store_reader *r, const int64_t *sids, size_t n, int own_only, store_point_fn fn,
                       void *ctx);
/* ---- endpoint rollups (store_rollup.c, schema 007) ---- */
/* Sessions are rolled up per block of STORE_ROLLUP_BLOCK consecutive sids (blk = sid / it). */
#define STORE_ROLLUP_BLOCK 1024
/* A row of a block's rollup: a group (service, endpoint; sessions = its ended sessions with an
 * endpoint in the block), or a point of one (kind 0 an await point, 1 a culprit of its own
 * blocks; p.sid unused; sessions = how many of them have it). Strings valid during the callback. */
typedef struct store_rollup_row {
  const char *service, *endpoint;
  int kind;
  store_point p;
  int64_t sessions;
} store_rollup_row;
typedef int (*store_rollup_fn)(void *ctx, const store_rollup_row *x);
/* Block blk's groups; none while it is dirty (its sessions changed since it was rolled up). */
int store_rollup_groups(store_reader *r, int64_t blk, store_rollup_fn fn, void *ctx);
/* The window of f as store_ep_sessions reads it, assembled from the blocks' group rows (members)
 * where a block is clean, its sessions read one by one where it is dirty: blocks newest first,
 * within a clean block in no particular order. Sessions
 * of clean blocks come without id (NULL) and, when routed, without name: store_ep_names reads
 * them for the few the answer names. *out malloc'd, strings in a. */
int store_ep_window(store_reader *r, const store_ep_filter *f, arena *a, ep_session **out, size_t *n);
/* Fills id and name of x[0..n) whose id is NULL (by sid). */
int store_ep_names(store_reader *r, ep_session *x, size_t n, arena *a);
/* Block blk's points (read only for a block whose groups were read in the same transaction). */
int store_rollup_points(store_reader *r, int64_t blk, store_rollup_fn fn, void *ctx);
/* ---- the OTLP outbox (store_outbox.c): one thread, on a connection of its own ---- */
/* Sessions to forward are taken into the outbox as the request bodies they will be sent as;
 * each body leaves it, in the same transaction that counts it, once the backend answered it. */
typedef struct store_outbox store_outbox;

int store_outbox_open(store *s, store_outbox **out, char *err, size_t errlen);
void store_outbox_close(store_outbox *o);

/* A read transaction on the outbox's connection, for the store_load_* functions. */
store_reader *store_outbox_read_begin(store_outbox *o);
void store_outbox_read_end(store_outbox *o);

/* The oldest session not yet taken whose latest batch arrived at or before `ended_before_s`
 * when it has ended, or at or before `quiet_before_s` when it has not (unix seconds). id must
 * hold 129 bytes. 0, LS_ENOTFOUND when none is due, or an error. */
int store_outbox_due(store_outbox *o, int64_t ended_before_s, int64_t quiet_before_s, int64_t *sid,
                     char *id, size_t idlen);

typedef struct store_outbox_part {
  int64_t sid, part, spans;
  void *body;   /* store_outbox_next: malloc'd, the caller frees */
  size_t len;
} store_outbox_part;

/* Takes session sid with its request bodies parts[0..n) in one transaction. n == 0 records it
 * as 'failed' (its trace could not be built) so that it is not taken again. */
int store_outbox_take(store_outbox *o, int64_t sid, int64_t now_s, const store_outbox_part *parts,
                      size_t n, int64_t spans);
/* The next body to send: the oldest session's lowest part. LS_ENOTFOUND when none waits. */
int store_outbox_next(store_outbox *o, store_outbox_part *out);
/* The backend answered part (sid, part): it leaves the outbox and is counted sent (`sent` 1) or
 * failed (0) in one transaction; the session becomes 'sent' or 'failed' with its last part. */
int store_outbox_done(store_outbox *o, int64_t sid, int64_t part, int sent);
/* Bodies waiting and the sessions they belong to. */
int store_outbox_depth(store_outbox *o, int64_t *parts, int64_t *sessions);

#endif
