/* http.h — the HTTP front: libmicrohttpd daemon (epoll, thread pool), routing, request bodies
 * and their limits, gzip, auth, CSP headers, errors as JSON, static pages from assets_find.
 * What each endpoint answers is query.c's / export.c's; storing is writer.c's. */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ingest.h"
#include "metrics.h"
#include "store.h"
#include "writer.h"

typedef struct http_config {
  const struct sockaddr *addr;  /* where to listen (port 0: any free port) */
  socklen_t addrlen;
  const char *token;            /* NULL: no auth */
  size_t max_body;              /* bytes of an ingest body, after gzip decoding too */
  int threads;                  /* worker threads in the pool */
  int parse_threads;            /* threads decoding and parsing ingest bodies (0: 2; parse_pool.c) */
  const char *frame_ancestors;  /* the CSP frame-ancestors source list */
  ingest_limits limits;         /* limits.budget: set from `budget` by http_start */
  /* Memory shared by ingest requests in flight (raw and decoded bodies, parsed batches) and the
   * batches queued for the writer (NULL: no limit); past it ingest answers 503 + Retry-After.
   * Must outlive the writer's queue (the writer gives a batch's bytes back when it frees it). */
  struct membudget *budget;
  /* DNS rebinding guard: the Host header must name localhost, an IP address, the host of
   * `listen` (HOST:PORT as given on the command line) or one of allowed_hosts ("*": any). */
  const char *listen;
  const char *const *allowed_hosts;
  int nallowed_hosts;
  /* Slow clients: connections at most (when full the oldest request still being received is
   * dropped for a new one), per client address (0: no limit), seconds for a request's headers
   * and body to arrive (from the connection's opening or the previous answer), seconds idle. */
  int max_connections, max_per_ip, request_timeout_s, idle_timeout_s;
  /* Live event streams (live.c): open at once at most (0: none), and the milliseconds between
   * heartbeat comments on an idle one (0: 15000). */
  int max_streams, live_heartbeat_ms;
  /* Base URL of the pages as users reach them (--public-url): the OTLP export names the
   * session's timeline with it. NULL: unknown. */
  const char *public_url;
} http_config;

/* Long queries (a /rows that builds the task tree, a /tasks that orders every task of a large
 * session) running off the HTTP threads at once (http_offload.c); beyond them they run on the
 * HTTP thread as before. Each holds a read connection for its whole run: the pool has this many
 * beyond one per worker thread (main.c), so the workers' own queries never wait for them. */
#define HTTP_OFFLOAD_MAX 2

#define HTTP_MAX_ALLOWED_HOSTS 32

/* The X-Loopscope-Ingest header of every answer to POST /api/v1/ingest: what this server takes
 * beyond plain v1, comma-separated. "strings": a batch's "strings" table, named by index from its
 * events' string fields; "records": bodies in the binary record form (INGEST_RECORDS_MEDIA,
 * ingest_records.c). docs/api.md says both. A collector sends a form only to a server that says so. */
#define HTTP_INGEST_TAKES "strings, records"

/* 1 if name is usable as an --allowed-host: '*', or 1-253 bytes of letters, digits, '-', '.',
 * '_' (no port, no ':': IP addresses, IPv6 included, are always allowed and need no entry). */
int http_host_name_ok(const char *name);

typedef struct http_server http_server;

int http_start(const http_config *cfg, store *s, writer *w, metrics *m, http_server **out);
/* The port actually bound. */
unsigned http_port(http_server *h);
/* Stops accepting, lets requests in flight finish (at most wait_ms), stops the workers. */
void http_stop(http_server *h, int wait_ms);

#endif
