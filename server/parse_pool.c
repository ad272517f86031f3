/* parse_pool.c — the threads that decode and parse ingest bodies (parse_pool.h): a FIFO of
 * jobs, a few threads taking from it, each job's outcome as the HTTP status http.c answers.
 * Decoding is gzip_body.c's, parsing ingest.c's; the connection waiting is http.c's. */
#include "parse_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gzip_body.h"
#include "jbuf.h"
#include "thread_name.h"

#define MAX_THREADS 64

/* A plain (not gzip) body this small parses in about a millisecond whatever it holds (it cannot
 * decode into more), which is what a collector sends below its gzip threshold (32 KiB). */
#define SMALL_BODY ((size_t)64 << 10)

/* The threads take jobs oldest first, and one more thread takes only small plain bodies, so a
 * normal client's batch never waits for the bombs queued before it: without it, its parse
 * waited for theirs (6.7 s in test_memory_budget's 8 x 3 bombs). Large bodies cannot starve:
 * the other threads serve them in order. */
struct parse_pool {
  parse_limits lim;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  parse_job *head, *tail; /* queued, oldest first */
  int queued, running;    /* jobs waiting, jobs being parsed */
  int stopping;
  int nthreads;           /* threads[0] takes small bodies only, the rest any job */
  pthread_t threads[MAX_THREADS + 1];
};

static int is_small(const parse_job *job)
{
  return !job->gzip && job->len <= SMALL_BODY;
}

/* The oldest job (small_only: the oldest small one), unlinked; NULL if none. Lock held. */
static parse_job *take(parse_pool *p, int small_only)
{
  parse_job *prev = NULL, *job = p->head;
  while(job && small_only && !is_small(job)) {
    prev = job;
    job = job->next;
  }
  if(!job)
    return NULL;
  if(prev)
    prev->next = job->next;
  else
    p->head = job->next;
  if(p->tail == job)
    p->tail = prev;
  p->queued--;
  return job;
}

static void refuse(parse_job *job, unsigned status, const char *detail)
{
  job->status = status;
  snprintf(job->detail, sizeof(job->detail), "%s", detail);
}

void parse_pool_run(const parse_limits *lim, parse_job *job)
{
  job->status = 0;
  job->batch = NULL;
  job->detail[0] = '\0';
  const char *body = job->body ? job->body : "";
  size_t len = job->len;
  /* The decoded body: its capacity is reserved in the budget while it lives (gzip_body.c). */
  jbuf plain;
  size_t plain_held = 0;
  jbuf_init(&plain, lim->max_body);
  if(job->gzip) {
    int zrc = gzip_body_inflate(body, len, lim->max_body, lim->budget, &plain, &plain_held);
    if(zrc) {
      jbuf_free(&plain);
      if(lim->budget && plain_held)
        membudget_give(lim->budget, plain_held);
      if(zrc == LS_EBUSY)
        refuse(job, 503, PARSE_NO_MEMORY);
      else if(zrc == LS_ETOOBIG)
        refuse(job, 413, "body larger than the limit (--max-body) once decompressed");
      else if(zrc == LS_EINVAL)
        refuse(job, 400, "body: not valid gzip (a member is corrupt or cut short, or what follows the last "
                         "member is not one)");
      else
        refuse(job, 500, "out of memory decompressing the body");
      return;
    }
    body = plain.data ? plain.data : "";
    len = plain.len;
  }
  int rc = (job->records ? ingest_parse_records : ingest_parse)(body, len, &lim->limits, &job->batch, job->detail,
                                                                sizeof(job->detail));
  jbuf_free(&plain);
  if(lim->budget && plain_held)
    membudget_give(lim->budget, plain_held);
  if(rc == 0)
    return;
  job->batch = NULL;
  /* ingest_parse's detail already says why for these three */
  job->status = rc == LS_EINVAL ? 400 : rc == LS_ETOOBIG ? 413 : rc == LS_EBUSY ? 503 : 500;
  if(job->status == 500)
    refuse(job, 500, "out of memory parsing the body");
}

static void work(parse_pool *p, int small_only)
{
  pthread_mutex_lock(&p->lock);
  for(;;) {
    parse_job *job;
    while(!(job = take(p, small_only)) && !p->stopping)
      pthread_cond_wait(&p->wake, &p->lock);
    if(!job)
      break; /* stopping, and nothing left this thread takes (the others drain the rest) */
    p->running++;
    pthread_mutex_unlock(&p->lock);
    job->next = NULL;
    parse_pool_run(&p->lim, job);
    job->on_done(job, job->arg); /* the job may be gone after this: not touched again */
    pthread_mutex_lock(&p->lock);
    p->running--;
  }
  pthread_mutex_unlock(&p->lock);
}

static void *small_main(void *arg)
{
  thread_name("ls-parse");
  work(arg, 1);
  return NULL;
}

static void *pool_main(void *arg)
{
  thread_name("ls-parse");
  work(arg, 0);
  return NULL;
}

int parse_pool_start(const parse_limits *lim, int threads, parse_pool **out)
{
  *out = NULL;
  if(threads < 1)
    threads = 1;
  if(threads > MAX_THREADS)
    threads = MAX_THREADS;
  parse_pool *p = calloc(1, sizeof(*p));
  if(!p)
    return LS_ENOMEM;
  p->lim = *lim;
  p->lim.limits.budget = lim->budget;
  if(pthread_mutex_init(&p->lock, NULL)) {
    free(p);
    return LS_ENOMEM;
  }
  if(pthread_cond_init(&p->wake, NULL)) {
    pthread_mutex_destroy(&p->lock);
    free(p);
    return LS_ENOMEM;
  }
  for(; p->nthreads < threads + 1; p->nthreads++)
    if(pthread_create(&p->threads[p->nthreads], NULL, p->nthreads ? pool_main : small_main, p)) {
      if(p->nthreads > 1)
        break; /* fewer threads than asked still parse everything */
      pthread_mutex_lock(&p->lock); /* the small-body thread may be running: it must see the end */
      p->stopping = 1;
      pthread_cond_broadcast(&p->wake);
      pthread_mutex_unlock(&p->lock);
      if(p->nthreads == 1)
        pthread_join(p->threads[0], NULL);
      pthread_cond_destroy(&p->wake);
      pthread_mutex_destroy(&p->lock);
      free(p);
      return LS_ENOMEM;
    }
  *out = p;
  return 0;
}

int parse_pool_submit(parse_pool *p, parse_job *job)
{
  job->next = NULL;
  pthread_mutex_lock(&p->lock);
  if(p->stopping) {
    pthread_mutex_unlock(&p->lock);
    return LS_ESTOPPED;
  }
  if(p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  p->queued++;
  pthread_cond_broadcast(&p->wake); /* the thread for small bodies may not take this one */
  pthread_mutex_unlock(&p->lock);
  return 0;
}

int parse_pool_depth(parse_pool *p)
{
  pthread_mutex_lock(&p->lock);
  int n = p->queued + p->running;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void parse_pool_stop(parse_pool *p)
{
  if(!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for(int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p);
}
