/* parse_pool.h — ingest bodies decoded (gzip) and parsed (ingest.c) off the HTTP threads, by a
 * small pool of threads, so one client's large body or gzip bomb never holds a libmicrohttpd
 * worker (and every connection that worker owns) while it is parsed. What is stored is the
 * writer's; which connection waits for the answer, and how it is sent, is http.c's. */
#ifndef LS_PARSE_POOL_H
#define LS_PARSE_POOL_H

#include <stddef.h>

#include "arena.h"
#include "ingest.h"

/* The 503 detail when the memory budget is spent (http.c answers it for raw bodies too). */
#define PARSE_NO_MEMORY \
  "the server's memory for ingest requests and queued batches (--max-memory) is in use; retry later"

/* How every body is read: the decoded-size limit (--max-body), the parse limits and the memory
 * budget shared with the HTTP side and the writer's queue (NULL: none). */
typedef struct parse_limits {
  size_t max_body;
  ingest_limits limits; /* limits.budget is budget */
  membudget *budget;
} parse_limits;

/* One body to parse. The submitter owns the job and the body and keeps both alive until
 * on_done; the pool touches neither afterwards. */
typedef struct parse_job {
  struct parse_job *next; /* the pool's queue link */
  const char *body;       /* as received (gzip when gzip is set) */
  size_t len;
  int gzip;
  int records;            /* the binary record form (ingest_parse_records), not JSON */
  /* The outcome, valid in on_done: status 0 and batch (the submitter's to free or hand on), or
   * the HTTP status that refuses the body (400, 413, 500, 503) and detail saying why. */
  unsigned status;
  ingest_batch *batch;
  char detail[256];
  /* Called on a pool thread once the job is parsed (or refused because the pool stops). */
  void (*on_done)(struct parse_job *job, void *arg);
  void *arg;
} parse_job;

typedef struct parse_pool parse_pool;

/* threads: 1..64 threads taking jobs oldest first, plus one that takes only small plain bodies
 * (<= 64 KiB, not gzip: about a millisecond each), so they never wait behind large ones. 0 or
 * LS_ENOMEM. *lim is copied. */
int parse_pool_start(const parse_limits *lim, int threads, parse_pool **out);

/* Queues job; its on_done runs on a pool thread later. 0, or LS_ESTOPPED once the pool is
 * stopping (on_done is not called then). The queue is unbounded in count: each job is one
 * request whose body is already held in the memory budget, so the budget and the connection
 * limit bound it. */
int parse_pool_submit(parse_pool *p, parse_job *job);

/* Jobs queued or being parsed. */
int parse_pool_depth(parse_pool *p);

/* Parses every job already queued (their on_done run), then stops the threads and frees p. */
void parse_pool_stop(parse_pool *p);

/* The work of one job, on the caller's thread: decode, parse, status and detail. */
void parse_pool_run(const parse_limits *lim, parse_job *job);

#endif
