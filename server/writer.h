/* writer.h — the bounded batch queue and the single writer thread that owns the write
 * connection: group commit, idempotency, an answer for each waiting request. */
#ifndef LS_WRITER_H
#define LS_WRITER_H

#include "errors.h"
#include "ingest.h"
#include "metrics.h"
#include "store.h"

typedef struct writer writer;

/* What became of one batch of a multi-batch job, in body order. */
typedef struct writer_result {
  size_t events;               /* events the batch carried */
  int duplicate;               /* it had been stored before: nothing of it written */
} writer_result;

/* One unit of work for the writer: a body to store (one batch, or the chain of a multi-batch
 * body: stored in one transaction, all or none) or a session to delete. The submitter owns the
 * job's memory and must keep it alive until on_done has been called. */
typedef struct writer_job {
  struct writer_job *next;     /* the writer's queue link */
  ingest_batch *batch;         /* owned by the writer once submitted; freed before on_done */
  const char *delete_id;       /* a delete job when non-NULL */
  int result;                  /* 0 or an error code, valid in on_done */
  int duplicate;               /* the batch (every batch of a chain) had been stored before */
  int new_session;             /* the batch (some batch of a chain) made its session */
  /* NULL, or one entry per batch of the chain (the submitter's memory, ingest_count(batch) of
   * them), filled in order when result is 0, before the batches are freed. */
  writer_result *results;
  int done;                    /* set before on_done (and before waiters wake) */
  /* Called on the writer thread once the job's transaction committed or failed; the writer
   * no longer touches the job afterwards. NULL: the submitter waits in writer_put/_delete. */
  void (*on_done)(struct writer_job *job, void *arg);
  void *arg;
} writer_job;

/* queue_depth: batches that may wait (beyond the group being written) before callers get
 * LS_EBUSY; max_group: batches committed together at most. */
int writer_start(store *s, metrics *m, int queue_depth, int max_group, writer **out);

/* Sets the retention limits (before the first job; 0 fields = no limit). The writer applies
 * them between groups and when idle, oldest sessions first (store_maintain). */
void writer_set_limits(writer *w, const store_limits *l);

/* Queues b (ownership passes to the writer in every case) and waits until it is committed.
 * 0: stored (*duplicate = 1 if it had been stored before); LS_EBUSY: queue full or the database
 * locked; LS_ESTOPPED: shutting down; other codes: storage failed. */
int writer_put(writer *w, ingest_batch *b, int *duplicate);

/* Queues a job without waiting. 0: on_done will be called; LS_EBUSY (queue full) or
 * LS_ESTOPPED: refused now, on_done will not be called and the batch is freed. */
int writer_submit(writer *w, writer_job *job);

/* Deletes a session through the writer: 0, LS_ENOTFOUND, LS_EBUSY, ... */
int writer_delete(writer *w, const char *session_id);

/* What a listener hears after each group commits, once per job that changed something (a batch
 * stored for the first time, or a session deleted): the session's id and WRITER_* flags. Called
 * on the writer thread; it must be quick and must not call back into the writer. */
enum { WRITER_NEW_SESSION = 1, WRITER_ENDED = 2, WRITER_DELETED = 4 };
typedef void (*writer_listener)(void *arg, const char *session, int flags);

/* Sets (fn NULL: removes) the listener. Once it returns, the previous listener is not being
 * called and will not be called again, so its arg may be freed. */
void writer_set_listener(writer *w, writer_listener fn, void *arg);

/* Batches waiting, not yet taken by the writer thread. */
int writer_queue_depth(writer *w);

/* Refuses new work, writes everything queued, stops the thread and frees w. */
void writer_stop(writer *w);

#endif
