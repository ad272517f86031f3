/* http_conns.c — the slow-client guard (http_conns.h): a list of open connections, dropping the
 * longest-arriving request when full and any request past the arrival deadline. It never reads
 * or answers a request (http.c does); it only shuts sockets down. */
#include "http_conns.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "errors.h"
#include "log.h"
#include "thread_name.h"

static int64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Shuts a connection's socket down (its worker then sees the end and closes it). Lock held. */
static void conn_drop(http_conns *hc, conn_slot *s)
{
  shutdown(s->fd, SHUT_RDWR);
  s->dropped = 1;
  hc->ndropped++;
}

conn_slot *http_conns_opened(http_conns *hc, int fd)
{
  conn_slot *s = calloc(1, sizeof(*s));
  if(!s)
    return NULL;
  s->fd = fd;
  s->receiving = 1;
  s->since_ms = now_ms();
  pthread_mutex_lock(&hc->lock);
  s->next = &hc->head;
  s->prev = hc->head.prev;
  hc->head.prev->next = s;
  hc->head.prev = s;
  hc->n++;
  /* Full: the request that has been arriving longest makes room (a client sending its request
   * at a normal pace is never the oldest for long; one dripping bytes is). */
  if(hc->n - hc->ndropped > hc->max_connections) {
    conn_slot *oldest = NULL;
    for(conn_slot *p = hc->head.next; p != &hc->head; p = p->next)
      if(p != s && p->receiving && !p->dropped && p->fd >= 0 && (!oldest || p->since_ms < oldest->since_ms))
        oldest = p;
    if(oldest) {
      conn_drop(hc, oldest);
      metrics_add(&hc->m->conn_dropped[CONN_DROP_FULL], 1);
      log_msg(LOG_DEBUG, "http: %d connections: dropped the oldest request still arriving (%lld ms)",
              hc->max_connections, (long long)(s->since_ms - oldest->since_ms));
    }
  }
  pthread_mutex_unlock(&hc->lock);
  return s;
}

void http_conns_closed(http_conns *hc, conn_slot *s)
{
  pthread_mutex_lock(&hc->lock);
  s->prev->next = s->next;
  s->next->prev = s->prev;
  hc->n--;
  if(s->dropped)
    hc->ndropped--;
  pthread_mutex_unlock(&hc->lock);
  free(s);
}

void http_conns_receiving(http_conns *hc, conn_slot *s, int receiving)
{
  pthread_mutex_lock(&hc->lock);
  s->receiving = receiving;
  s->since_ms = now_ms();
  pthread_mutex_unlock(&hc->lock);
}

/* Drops every connection whose request has been arriving for longer than --request-timeout. */
static void *sweeper_main(void *arg)
{
  thread_name("ls-sweeper");
  http_conns *hc = arg;
  int64_t limit = (int64_t)hc->timeout_s * 1000;
  pthread_mutex_lock(&hc->lock);
  while(!hc->stopping) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250 * 1000 * 1000;
    if(until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&hc->wake, &hc->lock, &until);
    int64_t now = now_ms();
    int n = 0;
    for(conn_slot *p = hc->head.next; p != &hc->head; p = p->next)
      if(p->receiving && !p->dropped && p->fd >= 0 && now - p->since_ms > limit) {
        conn_drop(hc, p);
        n++;
      }
    if(n) {
      metrics_add(&hc->m->conn_dropped[CONN_DROP_DEADLINE], n);
      log_msg(LOG_DEBUG, "http: dropped %d connections whose request took over %d s to arrive", n,
              hc->timeout_s);
    }
  }
  pthread_mutex_unlock(&hc->lock);
  return NULL;
}

int http_conns_start(http_conns *hc, int max_connections, int timeout_s, metrics *m)
{
  hc->head.next = hc->head.prev = &hc->head;
  hc->n = hc->ndropped = 0;
  hc->max_connections = max_connections;
  hc->timeout_s = timeout_s;
  hc->stopping = 0;
  hc->m = m;
  hc->started = 0;
  if(pthread_mutex_init(&hc->lock, NULL))
    return LS_ENOMEM;
  if(pthread_cond_init(&hc->wake, NULL)) {
    pthread_mutex_destroy(&hc->lock);
    return LS_ENOMEM;
  }
  if(pthread_create(&hc->sweeper, NULL, sweeper_main, hc)) {
    pthread_cond_destroy(&hc->wake);
    pthread_mutex_destroy(&hc->lock);
    return LS_ENOMEM;
  }
  hc->started = 1;
  return 0;
}

void http_conns_stop(http_conns *hc)
{
  if(!hc->started)
    return;
  pthread_mutex_lock(&hc->lock);
  hc->stopping = 1;
  pthread_cond_signal(&hc->wake);
  pthread_mutex_unlock(&hc->lock);
  pthread_join(hc->sweeper, NULL);
  hc->started = 0;
}

void http_conns_free(http_conns *hc)
{
  http_conns_stop(hc);
  pthread_cond_destroy(&hc->wake);
  pthread_mutex_destroy(&hc->lock);
}
