/* writer.c — the single writer thread: drains the batch queue, group-commits, answers each
 * waiting request; and the figures thread, which computes a large session's summary figures
 * right after its end committed and answers that batch then, and stores its tables' sort keys
 * and task tree after that (store_keys.c). Parsing is ingest.c's, SQL is
 * store.c's and store_put.c's; HTTP threads only wait here. */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "arena.h"
#include "log.h"
#include "store_keys.h"
#include "store_series.h"
#include "thread_name.h"

typedef writer_job job;

/* A session of at least this many events gets its figures (store_series.c) computed right after
 * its end commits, before the end's batch is answered: computing them on the first read took
 * 0.8 s at 1M tasks (issue 14 asks < 100 ms), 0.1 s at 100k, 0.12 s at 20k tasks (42k events) on
 * the loaded development machine, a few ms below this. */
#define FIGURES_MIN_EVENTS 10000
#define FIGURES_QUEUE 16 /* ended sessions waiting for the figures thread; beyond: answered at once */

/* A job whose answer waits for the figures of the sessions its end batches ended (one, or
 * several in a multi-batch body). */
typedef struct figures_job {
  struct figures_job *next;
  job *j;
  size_t n;
  char session[][130];
} figures_job;

struct writer {
  store *s;
  metrics *m;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t work;      /* the queue got a job, or stopping was set */
  pthread_cond_t answered;  /* some job got its result */
  job *head, *tail;
  int depth, max_depth, max_group;
  int stopping;
  store_limits limits;      /* retention; guarded by lock */
  /* The commit listener and its own lock, so telling it never waits on the queue's lock and
   * writer_set_listener(NULL) can wait out a call in progress. */
  pthread_mutex_t listen_lock;
  writer_listener listener;
  void *listener_arg;
  /* The figures thread's queue, guarded by lock; it answers its jobs as the writer would. */
  pthread_t figures;
  pthread_cond_t figures_work;
  figures_job *fhead, *ftail;
  int fdepth, fquit;
  atomic_int kstop; /* the server stops: the figures thread's key copy gives up (store_keys.c) */
};

/* One step of housekeeping (store_maintain) on the writer thread, with the lock free: retention,
 * purging deleted sessions, vacuum, checkpoint (all of the WAL when idle). Returns 1 when more
 * is pending. */
static int maintain(writer *w, const store_limits *l, int idle)
{
  int64_t deleted[3] = {0, 0, 0}, reclaimed = 0;
  int rc = store_maintain(w->s, l, (int64_t)time(NULL), idle, deleted, &reclaimed);
  for(int i = 0; i < RETENTION_COUNT; i++) {
    if(deleted[i])
      log_msg(LOG_INFO, "retention: deleted %lld session(s) (%s)", (long long)deleted[i],
              i == RETENTION_SESSIONS ? "--max-sessions" : i == RETENTION_AGE ? "--max-age" : "--max-db-size");
    metrics_add(&w->m->retention_deleted[i], deleted[i]);
  }
  metrics_add(&w->m->reclaimed_bytes, reclaimed);
  metrics_set(&w->m->wal_bytes, store_wal_bytes(w->s));
  if(rc < 0) {
    log_msg(LOG_WARN, "writer: housekeeping failed (%s); trying again later", store_errmsg(w->s));
    return 0;
  }
  return rc;
}

/* Runs one job inside the open transaction; its result in j->result. */
static void run_job(writer *w, job *j)
{
  j->duplicate = 0;
  j->new_session = 0;
  if(j->delete_id)
    j->result = store_delete_session(w->s, j->delete_id);
  else if(j->batch->next) {
    /* A multi-batch body: batch by batch. All or none is write_together's: a failure leaves the
     * batches before it (and part of the failing one) in the transaction, which only a rollback
     * of the whole transaction removes. (No savepoint around the body: SQLite keeps an enclosing
     * savepoint's journal in memory as a list it walks from the start on every page, and a body
     * of 1000 sessions spent 31% of the server's CPU walking it; nor one per batch: store.h.) */
    j->duplicate = 1;
    for(ingest_batch *b = j->batch; b && !j->result; b = b->next) {
      j->result = store_put_batch(w->s, b, &b->duplicate, &b->created);
      j->duplicate &= b->duplicate;
      j->new_session |= b->created;
    }
  }
  else {
    j->result = store_put_batch(w->s, j->batch, &j->duplicate, &j->new_session);
    j->batch->duplicate = j->duplicate;
    j->batch->created = j->new_session;
  }
  if(j->result && j->result != LS_ENOTFOUND)
    log_msg(LOG_WARN, "writer: %s failed (%s)", j->delete_id ? "a delete" : "a batch",
            store_errmsg(w->s));
}

/* Writes the jobs of `group` in one transaction. Returns 0 when every job has its final result
 * (what it answers is what is stored), -1 when a job of a group of several failed, or SQLite
 * rolled the transaction back under one (SQLITE_FULL in a one-row statement, IOERR, NOMEM): then
 * nothing of the group is stored and no result may be trusted. A job has no savepoint of its own
 * (store.h says why): a failed one may have left part of its rows in the transaction, so only
 * the whole transaction's rollback undoes it; alone, the rollback at the end does. */
static int write_together(writer *w, job *group)
{
  int rc = store_begin(w->s);
  if(rc) {
    log_msg(LOG_WARN, "writer: cannot begin a transaction (%s)", store_errmsg(w->s));
    for(job *j = group; j; j = j->next)
      j->result = rc;
    return 0;
  }
  int stored = 0;
  for(job *j = group; j; j = j->next) {
    run_job(w, j);
    /* If the transaction itself is gone, the jobs before this one lost their rows although they
     * reported 0, and the ones after it would run in autocommit: stop and let the caller redo
     * them. store_rollback all the same: what the store remembered of the transaction (the
     * await sites it inserted, store_sites.c) went with it. */
    if(j->result && !store_in_transaction(w->s)) {
      store_rollback(w->s);
      return -1;
    }
    /* A failed job among others: the whole transaction is rolled back and the caller redoes
     * every job alone. (A delete of an unknown session wrote nothing: its 404 stands.) */
    if(j->result && !(j->delete_id && j->result == LS_ENOTFOUND) && (j != group || j->next)) {
      store_rollback(w->s);
      return -1;
    }
    stored += j->result == 0;
  }
  rc = stored ? store_commit(w->s) : (store_rollback(w->s), 0);
  if(rc) {
    /* store_commit rolled back: nothing of the group is stored. */
    log_msg(LOG_WARN, "writer: commit failed (%s)", store_errmsg(w->s));
    for(job *j = group; j; j = j->next)
      if(j->result == 0)
        j->result = rc;
  }
  return 0;
}

/* Writes one group and sets each job's result so that a job answered 0 is committed and a job
 * answered with an error left nothing behind. Normally one transaction for the group (group
 * commit); when a job failed in it, every job is redone in a transaction of its own, so the
 * failing one cannot take the others with it. */
static void write_group(writer *w, job *group, int n)
{
  log_msg(LOG_DEBUG, "writer: writing a group of %d", n);
  if(write_together(w, group) != 0) {
    log_msg(LOG_WARN, "writer: a job of a group of %d failed and the group's transaction was rolled back; "
            "writing its jobs one by one", n);
    for(job *j = group; j; j = j->next) {
      job *next = j->next;
      j->next = NULL; /* a group of one */
      if(write_together(w, j) != 0 && j->result != LS_ECORRUPT)
        j->result = LS_EIO; /* rolled back: nothing of it stored (a corrupt file stays named) */
      j->next = next;
    }
  }
  for(job *j = group; j; j = j->next) {
    /* A delete refused by a full disk: it is what frees space, so it gets the reserve. */
    if(j->delete_id && j->result == LS_EBUSY && store_release_reserve(w->s)) {
      job *next = j->next;
      j->next = NULL;
      if(write_together(w, j) != 0)
        j->result = LS_EIO;
      j->next = next;
    }
  }
  for(job *j = group; j; j = j->next) {
    /* A job that failed for the storage's sake (a full disk, an I/O error, memory) is stored
     * nowhere and may succeed later: "busy, retry" (503 + Retry-After), not a broken request. */
    if(j->result == LS_EIO || j->result == LS_ENOMEM || j->result == LS_EBUSY) {
      metrics_add(&w->m->write_faults, 1);
      j->result = LS_EBUSY;
    }
    else if(j->result == LS_ECORRUPT) /* will not pass: answered 500 as it is, not "retry" */
      metrics_add(&w->m->write_faults, 1);
    if(j->result || j->delete_id)
      continue;
    metrics_add(&w->m->bodies, 1);
    for(const ingest_batch *b = j->batch; b; b = b->next) {
      if(b->duplicate) {
        metrics_add(&w->m->duplicates, 1);
        continue;
      }
      if(b->created)
        log_msg(LOG_INFO, "session %s: first batch stored", b->session);
      metrics_add(&w->m->batches, 1);
      metrics_add(&w->m->events, (int64_t)b->events);
      metrics_add(&w->m->unknown_events, b->unknown);
    }
  }
}

/* Tells the listener what the group changed (after its commit: readers see it already): once
 * per batch stored, as if each batch of a multi-batch body had come alone. */
static void tell_listener(writer *w, job *group)
{
  pthread_mutex_lock(&w->listen_lock);
  if(w->listener)
    for(job *j = group; j; j = j->next) {
      if(j->result || j->duplicate)
        continue;
      if(j->delete_id) {
        w->listener(w->listener_arg, j->delete_id, WRITER_DELETED);
        continue;
      }
      for(const ingest_batch *b = j->batch; b; b = b->next)
        if(!b->duplicate)
          w->listener(w->listener_arg, b->session,
                      (b->created ? WRITER_NEW_SESSION : 0) | (b->has_end ? WRITER_ENDED : 0));
    }
  pthread_mutex_unlock(&w->listen_lock);
}

void writer_set_listener(writer *w, writer_listener fn, void *arg)
{
  pthread_mutex_lock(&w->listen_lock);
  w->listener = fn;
  w->listener_arg = arg;
  pthread_mutex_unlock(&w->listen_lock);
}

/* Marks j answered and calls its callback; waiting callers are woken by the caller's broadcast.
 * Lock held (released around the callback). */
static void answer_job(writer *w, job *j)
{
  j->done = 1;
  if(j->on_done) {
    pthread_mutex_unlock(&w->lock);
    j->on_done(j, j->arg);
    pthread_mutex_lock(&w->lock);
  }
}

/* The group's jobs whose answer waits for the figures thread: stored end batches of large
 * sessions whose figures are not stored yet (at most FIGURES_QUEUE waiting). Called before the
 * batches are freed; returns them as a list, in the order of the group. */
static figures_job *figures_due(writer *w, job *group)
{
  figures_job *head = NULL, **tail = &head;
  pthread_mutex_lock(&w->lock);
  int room = FIGURES_QUEUE - w->fdepth;
  pthread_mutex_unlock(&w->lock);
  for(job *j = group; j && room > 0; j = j->next) {
    if(j->result || j->duplicate || j->delete_id)
      continue;
    size_t ended = 0;
    for(const ingest_batch *b = j->batch; b; b = b->next)
      ended += b->has_end && !b->duplicate;
    if(!ended)
      continue;
    figures_job *f = malloc(sizeof(*f) + ended * sizeof(f->session[0]));
    if(!f)
      break; /* answered at once: its first read computes them */
    f->next = NULL;
    f->j = j;
    f->n = 0;
    /* A session this batch created has the batch's events and no more: under the minimum, the
     * answer is known without the statement (a web app's every request is such a session; the
     * statement was 5% of the writer's samples on a burst of them) */
    for(const ingest_batch *b = j->batch; b; b = b->next)
      if(b->has_end && !b->duplicate && !(b->created && b->events < FIGURES_MIN_EVENTS) &&
         store_figures_due(w->s, b->session, FIGURES_MIN_EVENTS))
        snprintf(f->session[f->n++], sizeof(f->session[0]), "%s", b->session);
    if(!f->n) {
      free(f);
      continue;
    }
    *tail = f;
    tail = &f->next;
    room--;
  }
  return head;
}

static int deferred(const figures_job *f, const job *j)
{
  for(; f; f = f->next)
    if(f->j == j)
      return 1;
  return 0;
}

/* The figures thread: one ended session at a time, on a read connection of the pool (no lock
 * held while it computes; storing them is one short write transaction), then the end's answer.
 * When the writer stops, what waits is answered without computing (the first read will). */
static void *figures_main(void *arg)
{
  thread_name("ls-figures");
  writer *w = arg;
  pthread_mutex_lock(&w->lock);
  for(;;) {
    while(!w->fhead && !w->fquit)
      pthread_cond_wait(&w->figures_work, &w->lock);
    figures_job *f = w->fhead;
    if(!f)
      break;
    w->fhead = f->next;
    if(!w->fhead)
      w->ftail = NULL;
    w->fdepth--;
    int quit = w->fquit;
    pthread_mutex_unlock(&w->lock);
    for(size_t i = 0; i < f->n && !quit; i++) {
      int rc = store_series_prepare(w->s, f->session[i]);
      if(rc)
        log_msg(LOG_WARN, "writer: the figures of session %s were not computed (%d); its first read will",
                f->session[i], rc);
    }
    pthread_mutex_lock(&w->lock);
    answer_job(w, f->j);
    pthread_cond_broadcast(&w->answered);
    pthread_mutex_unlock(&w->lock);
    /* After the answer: the tables' sort keys and the stored tree take seconds at 1M tasks
     * (store_keys.c); until they are in, /tasks and /rows work from the rows as before. */
    for(size_t i = 0; i < f->n && !quit; i++)
      store_keys_prepare(w->s, f->session[i], &w->kstop);
    pthread_mutex_lock(&w->lock);
    free(f);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static void *writer_main(void *arg)
{
  thread_name("ls-writer");
  writer *w = arg;
  int pending = 1; /* housekeeping left to do (at start: whatever the last run left) */
  int dirty = 1;   /* wrote since the last idle checkpoint */
  pthread_mutex_lock(&w->lock);
  for(;;) {
    while(!w->head && !w->stopping) {
      store_limits l = w->limits;
      if(pending) {
        /* Nothing queued: housekeeping, one bounded step at a time, so a batch arriving
         * meanwhile waits for one step at most. */
        pthread_mutex_unlock(&w->lock);
        pending = maintain(w, &l, 0);
        pthread_mutex_lock(&w->lock);
        continue;
      }
      int timed = dirty || l.max_age_s > 0 || l.max_sessions > 0 || l.max_db_bytes > 0;
      if(!timed) {
        pthread_cond_wait(&w->work, &w->lock);
        continue;
      }
      /* A second without work: checkpoint the whole WAL back (and let the file shrink after a
       * vacuum); retention by age needs a look now and then even without traffic; the arena
       * blocks kept for the next parse (arena.c, up to 32 MiB while batches flow) go back. */
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 1;
      if(pthread_cond_timedwait(&w->work, &w->lock, &until) == ETIMEDOUT && !w->head) {
        pthread_mutex_unlock(&w->lock);
        arena_pool_drain();
        pending = maintain(w, &l, 1);
        pthread_mutex_lock(&w->lock);
        dirty = 0;
      }
    }
    if(!w->head && w->stopping)
      break;
    job *group = w->head, *last = w->head;
    int n = 1;
    while(last->next && n < w->max_group) {
      last = last->next;
      n++;
    }
    w->head = last->next;
    if(!w->head)
      w->tail = NULL;
    last->next = NULL;
    w->depth -= n;
    pthread_mutex_unlock(&w->lock);

    write_group(w, group, n);
    tell_listener(w, group);
    pthread_mutex_lock(&w->lock);
    store_limits l = w->limits;
    pthread_mutex_unlock(&w->lock);
    /* One housekeeping step per group too, so deletes and retention progress under constant
     * ingest, and the WAL is checkpointed after each group that grew it. */
    pending = maintain(w, &l, 0);
    dirty = 1;

    /* Answer: asynchronous jobs through their callback, waiting callers by the condition.
     * A job may be freed as soon as it is answered, so its next link is read first. The end
     * batches of large sessions are answered by the figures thread, handed over last (it may
     * answer them at once, and the walk of the group must be over by then). */
    figures_job *later = figures_due(w, group);
    for(job *j = group; j; j = j->next) {
      size_t i = 0;
      if(j->results && !j->result)
        for(const ingest_batch *b = j->batch; b; b = b->next, i++)
          j->results[i] = (writer_result){b->events, b->duplicate};
      ingest_free(j->batch);
      j->batch = NULL;
    }
    pthread_mutex_lock(&w->lock);
    for(job *j = group; j;) {
      job *next = j->next;
      if(!deferred(later, j))
        answer_job(w, j);
      j = next;
    }
    pthread_cond_broadcast(&w->answered);
    for(figures_job *f = later; f;) {
      figures_job *next = f->next;
      f->next = NULL;
      if(w->ftail)
        w->ftail->next = f;
      else
        w->fhead = f;
      w->ftail = f;
      w->fdepth++;
      f = next;
    }
    if(later)
      pthread_cond_signal(&w->figures_work);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int writer_start(store *s, metrics *m, int queue_depth, int max_group, writer **out)
{
  *out = NULL;
  if(queue_depth < 1 || max_group < 1)
    return LS_EINVAL;
  writer *w = calloc(1, sizeof(*w));
  if(!w)
    return LS_ENOMEM;
  w->s = s;
  w->m = m;
  w->max_depth = queue_depth;
  w->max_group = max_group;
  atomic_init(&w->kstop, 0);
  pthread_mutex_init(&w->lock, NULL);
  pthread_mutex_init(&w->listen_lock, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->answered, NULL);
  pthread_cond_init(&w->figures_work, NULL);
  int started = pthread_create(&w->figures, NULL, figures_main, w) == 0;
  if(!started || pthread_create(&w->thread, NULL, writer_main, w) != 0) {
    if(started) {
      pthread_mutex_lock(&w->lock);
      w->fquit = 1;
      pthread_cond_signal(&w->figures_work);
      pthread_mutex_unlock(&w->lock);
      pthread_join(w->figures, NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->listen_lock);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->answered);
    pthread_cond_destroy(&w->figures_work);
    free(w);
    return LS_ENOMEM;
  }
  *out = w;
  return 0;
}

/* Appends j to the queue; with `wait`, also waits for its answer. Called with the lock free. */
static int enqueue(writer *w, job *j, int wait)
{
  j->next = NULL;
  j->done = 0;
  j->result = 0;
  j->duplicate = 0;
  j->new_session = 0;
  pthread_mutex_lock(&w->lock);
  int rc = w->stopping ? LS_ESTOPPED : w->depth >= w->max_depth ? LS_EBUSY : 0;
  if(rc) {
    pthread_mutex_unlock(&w->lock);
    ingest_free(j->batch);
    j->batch = NULL;
    return rc;
  }
  if(w->tail)
    w->tail->next = j;
  else
    w->head = j;
  w->tail = j;
  w->depth++;
  pthread_cond_signal(&w->work);
  while(wait && !j->done)
    pthread_cond_wait(&w->answered, &w->lock);
  pthread_mutex_unlock(&w->lock);
  return wait ? j->result : 0;
}

void writer_set_limits(writer *w, const store_limits *l)
{
  pthread_mutex_lock(&w->lock);
  w->limits = *l;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
}

int writer_submit(writer *w, writer_job *j)
{
  return enqueue(w, j, 0);
}

int writer_put(writer *w, ingest_batch *b, int *duplicate)
{
  job j = {.batch = b};
  int rc = enqueue(w, &j, 1);
  *duplicate = j.duplicate;
  return rc;
}

int writer_delete(writer *w, const char *session_id)
{
  job j = {.delete_id = session_id};
  return enqueue(w, &j, 1);
}

int writer_queue_depth(writer *w)
{
  pthread_mutex_lock(&w->lock);
  int d = w->depth;
  pthread_mutex_unlock(&w->lock);
  return d;
}

void writer_stop(writer *w)
{
  if(!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  /* the ended sessions still waiting for their figures: answered, computed on first read */
  atomic_store(&w->kstop, 1);
  pthread_mutex_lock(&w->lock);
  w->fquit = 1;
  pthread_cond_signal(&w->figures_work);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->figures, NULL);
  pthread_mutex_destroy(&w->lock);
  pthread_mutex_destroy(&w->listen_lock);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->answered);
  pthread_cond_destroy(&w->figures_work);
  free(w);
}
