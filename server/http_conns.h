/* http_conns.h — the slow-client guard of the HTTP front: every open connection in a list, the
 * oldest request still arriving dropped when --max-connections is reached, and a sweeper thread
 * dropping requests that take longer than --request-timeout to arrive. Which requests there are
 * and what they are answered is http.c's; libmicrohttpd tells it when connections open and close. */
#ifndef LS_HTTP_CONNS_H
#define LS_HTTP_CONNS_H

#include <pthread.h>
#include <stdint.h>

#include "metrics.h"

/* One open connection. Dropping it shuts its socket down: its worker then sees the end and
 * closes it. */
typedef struct conn_slot {
  struct conn_slot *prev, *next;
  int fd;
  int receiving;      /* a request, or the wait for the next one, is being received */
  int dropped;        /* shut down already */
  int64_t since_ms;   /* when that began (monotonic) */
} conn_slot;

typedef struct http_conns {
  pthread_mutex_t lock;  /* guards the list and every slot's fields */
  pthread_cond_t wake;
  conn_slot head;        /* list head */
  int n, ndropped;       /* slots, and those of them shut down */
  int max_connections, timeout_s;
  int stopping;
  metrics *m;
  pthread_t sweeper;
  int started;
} http_conns;

/* Sets up the list and starts the sweeper: 0 or LS_ENOMEM (nothing to stop then). */
int http_conns_start(http_conns *hc, int max_connections, int timeout_s, metrics *m);
/* A connection on socket fd opened (fd -1: unknown): its slot, receiving its first request, or
 * NULL when out of memory (the caller refuses the connection). May drop the oldest arriving one. */
conn_slot *http_conns_opened(http_conns *hc, int fd);
/* The connection closed: its slot is freed. */
void http_conns_closed(http_conns *hc, conn_slot *s);
/* Its request has arrived whole (0), or its answer was sent and the next one is awaited (1,
 * the deadline starting now). */
void http_conns_receiving(http_conns *hc, conn_slot *s, int receiving);
/* Stops the sweeper. Slots still open are closed by libmicrohttpd as it stops (through
 * http_conns_closed): only then http_conns_free. */
void http_conns_stop(http_conns *hc);
/* Frees what http_conns_start set up (the sweeper stopped first). */
void http_conns_free(http_conns *hc);

#endif
