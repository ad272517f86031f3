/* http_internal.h — what the files of the HTTP front share (http.c: daemon, routing, answers;
 * http_ingest.c: ingest requests): the server's state, one request's state, and the few answer
 * and body helpers both call. Not for other modules: http.h is the interface. */
#ifndef LS_HTTP_INTERNAL_H
#define LS_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

#include "http.h"
#include "http_conns.h"
#include "http_guard.h"
#include "jbuf.h"
#include "live.h"
#include "parse_pool.h"
#include "query.h"
#include "writer.h"

#define NO_MEMORY PARSE_NO_MEMORY
#define RESPONSE_MAX ((size_t)1 << 30) /* ceiling of any JSON answer */

struct http_server {
  struct MHD_Daemon *d;
  http_config cfg;
  char listen_host[256];  /* the --listen host, for the Host check; "" if none */
  char cookie[GUARD_COOKIE_MAX + 1]; /* with --token: the login cookie's value, random per process */
  http_conns conns;           /* open connections, their limits and arrival deadlines */
  store *s;
  writer *w;
  metrics *m;
  char csp[1024];
  atomic_int active;    /* requests between their first call and completion */
  atomic_int suspended; /* connections waiting for the parse pool or the writer to resume them */
  atomic_int stopping;  /* set by http_stop before it waits for `suspended` to reach 0 */
  parse_pool *pool;     /* decodes and parses ingest bodies off these threads */
  live_hub *live;       /* the event streams (live.c) */
  atomic_int corrupt;   /* SQLite found the database file corrupt: /healthz says so from then on */
  atomic_int offloaded; /* queries running on threads of their own (http_offload.c) */
};

typedef struct req {
  int ingest;            /* POST /api/v1/ingest */
  int gzip;              /* Content-Encoding: gzip */
  int records;           /* Content-Type: application/vnd.loopscope.records (ingest_records.c) */
  unsigned reject;       /* status decided before the body was read, 0 = none */
  const char *reject_detail;
  char host_detail[256]; /* the 403 for a Host header not allowed */
  int responded;
  size_t seen;           /* body bytes received, kept or not */
  int answer_now;        /* refused on its headers and not worth reading: answer at once */
  jbuf body;
  size_t held;           /* bytes of body reserved in the memory budget */
  /* The body handed to the parse pool, then the batch to the writer: the connection is suspended
   * meanwhile, so the worker thread serves other connections, and resumed from the pool's thread
   * when the body is refused, or from the writer's when the batch is answered. */
  int parsing;
  parse_job parse;
  int submitted;
  writer_job job;
  size_t events;         /* events in the submitted body (all its batches) */
  size_t nbatches;       /* batches in it: more than 1 for a multi-batch body */
  writer_result *results; /* one per batch when nbatches > 1 (owned; freed with rq) */
  char delete_id[130];
  /* A query run off the HTTP threads (http_offload.c), the connection suspended meanwhile: its
   * outcome, answered once the thread resumed it. */
  int offloaded;
  query_fn off_fn;
  int off_rc;
  jbuf off_out;
  char off_id[130];
  char off_detail[256];
  struct MHD_Connection *conn;
  struct http_server *h;
} req;

/* Answers (http.c): a JSON error {"error", "detail"} with Allow when allow is non-NULL, a JSON
 * body (b freed), the corrupt-database 500. */
enum MHD_Result http_send_error(http_server *h, struct MHD_Connection *c, req *rq, unsigned status,
                                const char *detail, const char *allow);
enum MHD_Result http_send_json(http_server *h, struct MHD_Connection *c, req *rq, unsigned status, jbuf *b);
enum MHD_Result http_send_corrupt(http_server *h, struct MHD_Connection *c, req *rq);
/* 1 when the request carries the token (or, with cookie_ok, the login cookie), or none is set. */
int http_token_ok(http_server *h, struct MHD_Connection *c, int cookie_ok);
/* 1 when the header value v is the media type (parameters after ';' ignored). */
int http_media_is(const char *v, const char *type);
/* Body bytes read of a request before it is answered (http.c). */
size_t http_read_max(const http_server *h, const req *rq);

/* A query argument of connection ctx (query_args' get): its value, or NULL. */
const char *http_get_arg(void *ctx, const char *name);
/* A query's outcome as its HTTP answer (http.c): 200 with out, or the error rc means (out freed). */
enum MHD_Result http_answer_query(http_server *h, struct MHD_Connection *c, req *rq, int rc, jbuf *out,
                                  const char *detail);

/* Queries off the HTTP threads (http_offload.c): runs fn for session id on a thread of its own
 * with the connection suspended; 1 when it did (the answer follows http_offload_answer when
 * libmicrohttpd calls again), 0 when it could not (no thread: the caller runs it itself). */
int http_offload_query(http_server *h, struct MHD_Connection *c, req *rq, query_fn fn, const char *id);
enum MHD_Result http_offload_answer(http_server *h, struct MHD_Connection *c, req *rq);

/* Ingest (http_ingest.c). The memory budget for a body buffer: reserve its capacity beyond
 * *held (0, or -1 when spent), and free it giving everything back. */
int http_hold(http_server *h, const jbuf *buf, size_t *held);
void http_unhold(http_server *h, jbuf *buf, size_t *held);
/* What the headers alone decide (401, 415, 413, 503), and the body buffer sized from them. */
void http_check_ingest_headers(http_server *h, struct MHD_Connection *c, req *rq);
enum MHD_Result http_ingest_error(http_server *h, struct MHD_Connection *c, req *rq, unsigned status,
                                  const char *detail);
/* Suspends c for another thread to resume, counted in h->suspended: 0; or -1 without touching c
 * once the server is stopping (the caller answers or works on its own thread instead). The count
 * goes up before the flag is read and http_stop sets the flag before it reads the count (both
 * sequentially consistent), so either this sees the stop or the stop waits for this connection:
 * libmicrohttpd aborts the process when stopped with a connection suspended. */
int http_suspend(http_server *h, struct MHD_Connection *c);
/* Resumes a connection http_suspend suspended and takes it out of the count: the last touch of
 * the connection from the resuming thread (http_stop may free it once the count is 0). */
void http_resume(http_server *h, struct MHD_Connection *c);
/* The body has arrived: to the parse pool, then the writer (the connection suspended). */
enum MHD_Result http_handle_ingest(http_server *h, struct MHD_Connection *c, req *rq);
/* rq->job to the writer with the connection suspended; its answer once resumed. */
enum MHD_Result http_submit_job(http_server *h, struct MHD_Connection *c, req *rq);
enum MHD_Result http_answer_job(http_server *h, struct MHD_Connection *c, req *rq);

#endif
