/* http_offload.c — a query that must do long work first (the first /rows of a session builds its
 * task tree: seconds at 1M tasks) runs on a thread of its own with its connection suspended, so
 * the libmicrohttpd worker that owns the connection serves its other connections meanwhile; the
 * answer is sent once the thread resumes it. Which queries go here and the answers are http.c's;
 * the query is query.c's. */
#include <pthread.h>
#include <string.h>

#include "http_internal.h"
#include "log.h"
#include "thread_name.h"

/* The query on its own thread. Reading the request's arguments from here is safe: they live in
 * the connection's memory until the request completes, and libmicrohttpd does not touch a
 * suspended connection (nor complete its request) before it is resumed, which is this thread's
 * last act. */
static void *offload_main(void *arg)
{
  thread_name("ls-offload");
  req *rq = arg;
  http_server *h = rq->h;
  query_args a = {http_get_arg, rq->conn};
  rq->off_rc = rq->off_fn(h->s, rq->off_id, &a, &rq->off_out, rq->off_detail, sizeof(rq->off_detail));
  atomic_fetch_sub(&h->offloaded, 1);
  http_resume(h, rq->conn);
  return NULL;
}

int http_offload_query(http_server *h, struct MHD_Connection *c, req *rq, query_fn fn, const char *id)
{
  size_t n = strlen(id);
  if(n >= sizeof(rq->off_id))
    return 0;
  if(atomic_fetch_add(&h->offloaded, 1) >= HTTP_OFFLOAD_MAX) {
    atomic_fetch_sub(&h->offloaded, 1);
    return 0;
  }
  memcpy(rq->off_id, id, n + 1);
  rq->off_fn = fn;
  rq->conn = c;
  rq->h = h;
  rq->off_detail[0] = '\0';
  jbuf_init(&rq->off_out, RESPONSE_MAX);
  pthread_attr_t attr;
  pthread_t t;
  int ok = pthread_attr_init(&attr) == 0;
  if(ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0) {
    pthread_attr_destroy(&attr);
    ok = 0;
  }
  /* suspended before the thread exists, so that it can never resume a connection that is not
   * suspended yet (as http_submit_job does for the writer) */
  if(ok && http_suspend(h, c)) { /* stopping: on this thread, as when no thread can be had */
    pthread_attr_destroy(&attr);
    ok = 0;
  }
  rq->offloaded = ok;
  if(ok) {
    if(pthread_create(&t, &attr, offload_main, rq) != 0) {
      rq->offloaded = ok = 0;
      http_resume(h, c);
    }
    pthread_attr_destroy(&attr);
  }
  if(!ok) {
    atomic_fetch_sub(&h->offloaded, 1);
    jbuf_free(&rq->off_out);
    log_msg(LOG_WARN, "http: no thread for a long query; it runs on the HTTP thread");
  }
  return ok;
}

enum MHD_Result http_offload_answer(http_server *h, struct MHD_Connection *c, req *rq)
{
  rq->offloaded = 0;
  return http_answer_query(h, c, rq, rq->off_rc, &rq->off_out, rq->off_detail);
}
