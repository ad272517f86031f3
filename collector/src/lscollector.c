/* lscollector.c — sessions, the bounded event store and the sender thread. Emitters (the
 * extension, under the GIL) append records to their session's chunks; the sender takes what was
 * published, encodes one v1 batch per session (lsencode.c) and POSTs it (lshttp.c), retrying with
 * the same batch id. Memory of unsent events never exceeds buffer_cap: beyond it events are
 * dropped and counted, and the count travels later as a "drop" event.
 *
 * The hot path takes no lock: each session has one writer (whoever holds the GIL) appending to its
 * current chunk, and publishes each record with a release store of the chunk's length; the sender
 * reads that length with acquire and ships the bytes below it, never touching the bytes above.
 * Only a new chunk (allocation, the cap, the ready queue) takes the mutex. The sender finds
 * sessions with published but unsent records in its ready queue (a new chunk, a close) or by
 * scanning the sessions each time it wakes (every flush_interval_ms, on a flush or a kick): events
 * of a long session travel in batches by time and size, not one wake-up per event. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "lscore.h"
#include "lshttp.h"

#define CHUNK_MIN 1024
#define CHUNK_MAX 65536
#define CHUNK_CLASSES 7        /* CHUNK_MIN << 0 .. CHUNK_MIN << 6 = CHUNK_MAX */
/* A batch's JSON stops growing past this (the rest waits for the next batch): records are ~5x
 * smaller than their JSON, more when they name table strings, and the server refuses bodies over
 * its --max-body (16 MiB by default). One record may still go past it: a block's stack (64 frames
 * of three 2 KiB strings, escaped) fits in the slack. */
#define BATCH_JSON_MAX ((size_t)4 << 20)
#define BATCH_JSON_SLACK ((size_t)8 << 20)

/* pub: the published length in bytes (low 32 bits) and record count (high 32 bits), written only
 * by the session's writer (release) while the chunk is its current one; fixed once it is not. */
#define PUB_LEN(p) ((size_t)((p) & 0xffffffffu))
#define PUB_NEV(p) ((size_t)((p) >> 32))
#define PUB_ONE(size) ((uint64_t)(size) + ((uint64_t)1 << 32))

typedef struct chunk {
  struct chunk *next;          /* set under mu */
  size_t cap;
  _Atomic uint64_t pub;
  size_t sent, sent_nev;       /* bytes and records of pub already shipped (sender, under mu) */
  size_t snap, snap_nev;       /* what the batch being sent takes: [sent, snap) (sender) */
  unsigned char data[];
} chunk;

struct ls_session {
  ls_collector *c;
  struct ls_session *next, *prev; /* in c->sessions (all sessions, doubly linked) */
  struct ls_session *rnext;    /* in the ready queue, while queued */
  int queued;                  /* in the ready queue: has records or an unreported drop count */
  char id[64];
  char *meta;                  /* encoded JSON object, owned */
  char *meta_sending;          /* an earlier meta the sender is still encoding (ls_session_set_meta
                                * replaced it mid-send), freed when that send ends; or NULL */
  chunk *head, *tail;          /* chunks not yet all shipped, oldest first, and the writer's (mu) */
  chunk *w;                    /* the writer's current chunk (the tail, or NULL): records go there
                                * without the mutex; only the writer changes it, under mu */
  _Atomic uint64_t events;     /* events recorded (written by the writer only, read by stats) */
  uint64_t dropped;            /* events dropped so far */
  uint64_t dropped_sent;       /* of those, how many a sent drop event already reported */
  int closed;                  /* no more events will come: free once everything is sent */
  int sending;                 /* the sender holds detached chunks of this session */
  int shipped_once;            /* the meta went out at least once */
  ls_wstate ws;                /* the writer's record state (lsencode.c): its own, no lock */
  ls_rstate rs;                /* the sender's: records are encoded once each, in order */
};

struct ls_collector {
  pthread_mutex_t mu;
  pthread_cond_t wake;         /* the sender waits on it */
  pthread_cond_t idle;         /* flushers wait on it */
  pthread_t thread;
  int thread_running, stop;
  int giving_up;               /* stopping and the server does not answer: ship nothing more */
  int kicked;                  /* the sender was woken for a filling buffer and has not run since */
  int flush_waiters;
  ls_config cfg;
  char *url, *token;
  ls_session *sessions;
  ls_session *ready_head, *ready_tail; /* sessions with something to send, oldest first */
  size_t nqueued;              /* sessions in the ready queue */
  int sending;                 /* the sender holds detached chunks of some session */
  size_t bytes_used;           /* bytes of all unsent chunks, including detached ones */
  uint64_t batch_seq;
  ls_stats st;
  ls_http *http;
  FILE *sink;                  /* cfg.sink_path opened for appending, or NULL (sender thread only) */
  uint64_t failed_seen;        /* batches_failed when the last flush returned */
  /* Sent chunks kept for reuse, one list per power-of-two size, while unsent and spare bytes
   * together stay within buffer_cap. The loop thread allocates chunks and the sender frees them
   * later: with plain malloc/free, memory freed in bulk went back to the kernel and the loop
   * thread page-faulted it in again (measured: ~2700 faults per 1500 requests, ~5% of its time). */
  chunk *spare[CHUNK_CLASSES];
  size_t spare_bytes;          /* counted like bytes_used: cap + sizeof(chunk) per chunk */
  ls_intern *strings;          /* strings records share, numbered once (lsintern.c): fixed size,
                                * kept until the collector goes, not counted in buffer_cap */
};

/* pthread_atfork handlers can carry no argument, so the one live collector is kept here; only
 * the fork handlers read it. Several collectors at once are not supported by the module. */
static ls_collector *live_collector;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void) { if (live_collector) pthread_mutex_lock(&live_collector->mu); }
static void fork_parent(void) { if (live_collector) pthread_mutex_unlock(&live_collector->mu); }
static void fork_child(void) { if (live_collector) pthread_mutex_unlock(&live_collector->mu); }
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static void atfork_register(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static void deadline_after(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

/* The size class of a chunk of cap bytes, or -1 when it has none (a chunk for one large event). */
static int chunk_class(size_t cap) {
  for (int k = 0; k < CHUNK_CLASSES; k++)
    if (cap == (size_t)CHUNK_MIN << k) return k;
  return -1;
}

/* A chunk of cap bytes, from the spares if one is there. mu held. */
static chunk *chunk_take(ls_collector *c, size_t cap) {
  int k = chunk_class(cap);
  chunk *ch = k >= 0 ? c->spare[k] : NULL;
  if (ch) {
    c->spare[k] = ch->next;
    c->spare_bytes -= cap + sizeof(chunk);
  } else if (!(ch = malloc(sizeof(chunk) + cap))) {
    return NULL;
  } else {
    c->st.chunk_allocs++; /* a test asserts none happen in a steady state */
    c->st.store_allocs++;
  }
  ch->next = NULL;
  atomic_store_explicit(&ch->pub, 0, memory_order_relaxed);
  ch->sent = ch->sent_nev = ch->snap = ch->snap_nev = 0;
  ch->cap = cap;
  return ch;
}

/* Gives back a list of chunks no longer counted in bytes_used: kept as spares while the store
 * stays within buffer_cap, freed beyond. mu held (or only one thread left). */
static void chunks_free(ls_collector *c, chunk *ch) {
  while (ch) {
    chunk *n = ch->next;
    int k = chunk_class(ch->cap);
    size_t size = ch->cap + sizeof(chunk);
    if (k >= 0 && c->bytes_used + c->spare_bytes + size <= c->cfg.buffer_cap) {
      ch->next = c->spare[k];
      c->spare[k] = ch;
      c->spare_bytes += size;
    } else {
      free(ch);
    }
    ch = n;
  }
}

static void spares_free(ls_collector *c) {
  for (int k = 0; k < CHUNK_CLASSES; k++) {
    while (c->spare[k]) {
      chunk *n = c->spare[k]->next;
      free(c->spare[k]);
      c->spare[k] = n;
    }
  }
  c->spare_bytes = 0;
}

static void session_free(ls_collector *c, ls_session *s) {
  c->st.events += atomic_load_explicit(&s->events, memory_order_relaxed); /* stats keep counting it */
  chunks_free(c, s->head);
  free(s->meta);
  free(s->meta_sending);
  free(s);
}

/* Puts s at the end of the ready queue unless it is there or being sent. mu held. */
static void enqueue(ls_collector *c, ls_session *s) {
  if (s->queued || s->sending) return;
  s->queued = 1;
  s->rnext = NULL;
  if (c->ready_tail) c->ready_tail->rnext = s; else c->ready_head = s;
  c->ready_tail = s;
  c->nqueued++;
}

static ls_session *dequeue(ls_collector *c) {
  ls_session *s = c->ready_head;
  if (!s) return NULL;
  c->ready_head = s->rnext;
  if (!c->ready_head) c->ready_tail = NULL;
  s->queued = 0;
  s->rnext = NULL;
  c->nqueued--;
  return s;
}

static void unlink_session(ls_collector *c, ls_session *s) {
  if (s->prev) s->prev->next = s->next; else c->sessions = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

const char *lsc_strerror(int rc) {
  switch (rc) {
  case LSC_OK: return "ok";
  case LSC_ENOMEM: return "out of memory";
  case LSC_EINVAL: return "invalid argument";
  case LSC_EFULL: return "the event buffer is full";
  case LSC_ECLOSED: return "the session is closed";
  case LSC_ETIMEDOUT: return "timed out";
  case LSC_ESYS: return "a thread or libcurl could not be started";
  case LSC_ELOST: return "a batch was refused by the server";
  default: return "unknown error";
  }
}

/* ---- emitting --------------------------------------------------------------------------- */

/* 1 when s has records published and not yet shipped. mu held. */
static int has_unsent(const ls_session *s) {
  for (const chunk *ch = s->head; ch; ch = ch->next)
    if (PUB_LEN(atomic_load_explicit(&ch->pub, memory_order_acquire)) > ch->sent) return 1;
  return 0;
}

/* Frees the oldest chunks once all of them is shipped, except the writer's current one (it may
 * still grow; its shipped prefix is remembered in sent). mu held. */
static void prune(ls_collector *c, ls_session *s) {
  while (s->head && s->head != s->w &&
         s->head->sent == PUB_LEN(atomic_load_explicit(&s->head->pub, memory_order_acquire))) {
    chunk *ch = s->head;
    s->head = ch->next;
    if (!s->head) s->tail = NULL;
    ch->next = NULL;
    c->bytes_used -= ch->cap + sizeof(chunk);
    chunks_free(c, ch);
  }
}

/* The slow path of ls_emit: the current chunk has no room (or there is none). A new chunk is
 * linked in and becomes the writer's; the session joins the ready queue. */
static int emit_new_chunk(ls_session *s, const ls_event *ev, size_t bound) {
  ls_collector *c = s->c;
  int rc = LSC_OK;
  pthread_mutex_lock(&c->mu);
  chunk *t = s->w;
  size_t cap = t ? t->cap * 2 : CHUNK_MIN;
  if (cap > CHUNK_MAX) cap = CHUNK_MAX;
  if (cap < bound) cap = bound;
  if (c->bytes_used + cap + sizeof(chunk) > c->cfg.buffer_cap) { rc = LSC_EFULL; goto drop; }
  chunk *n = chunk_take(c, cap);
  if (!n) { rc = LSC_ENOMEM; goto drop; }
  size_t size = ls_record_write(n->data, ev, &s->ws);
  atomic_store_explicit(&n->pub, PUB_ONE(size), memory_order_release);
  if (s->tail) s->tail->next = n; else s->head = n;
  s->tail = s->w = n;
  c->bytes_used += cap + sizeof(chunk);
  atomic_store_explicit(&s->events, atomic_load_explicit(&s->events, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  enqueue(c, s);
  prune(c, s); /* the old chunk, if it was shipped whole */
  /* a quarter full: wake the sender once (edge, not level: a wake-up per chunk would cost a
   * futex call each while the server is down and the buffer stays full) */
  if (!c->kicked && c->bytes_used > c->cfg.buffer_cap / 4) {
    c->kicked = 1;
    pthread_cond_signal(&c->wake);
  }
  goto out;
drop:
  s->dropped++;
  c->st.dropped++;
  enqueue(c, s);
out:
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int ls_emit(ls_session *s, const ls_event *ev) {
  if (s->closed) return LSC_ECLOSED; /* set by this same writer (ls_session_close) */
  size_t bound = ls_record_bound(ev);
  chunk *w = s->w;
  if (w) {
    /* the writer's own last store: relaxed; the sender never writes pub */
    uint64_t p = atomic_load_explicit(&w->pub, memory_order_relaxed);
    size_t len = PUB_LEN(p);
    if (w->cap - len >= bound) {
      size_t size = ls_record_write(w->data + len, ev, &s->ws);
      atomic_store_explicit(&w->pub, p + PUB_ONE(size), memory_order_release);
      atomic_store_explicit(&s->events, atomic_load_explicit(&s->events, memory_order_relaxed) + 1,
                            memory_order_relaxed);
      return LSC_OK;
    }
  }
  return emit_new_chunk(s, ev, bound);
}

void ls_session_add_dropped(ls_session *s, uint64_t n) {
  pthread_mutex_lock(&s->c->mu);
  s->dropped += n;
  s->c->st.dropped += n;
  enqueue(s->c, s);
  pthread_mutex_unlock(&s->c->mu);
}

int ls_session_open(ls_collector *c, const char *id, const char *meta_json, ls_session **out) {
  ls_session *s = calloc(1, sizeof *s);
  if (!s) return LSC_ENOMEM;
  size_t idn = strlen(id);
  if (idn == 0 || idn >= sizeof s->id) { free(s); return LSC_EINVAL; }
  for (size_t i = 0; i < idn; i++) {
    char ch = id[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-')) {
      free(s);
      return LSC_EINVAL;
    }
  }
  memcpy(s->id, id, idn + 1);
  s->ws.strings = c->strings;
  s->rs.strings = c->strings;
  s->meta = strdup(meta_json ? meta_json : "{}");
  if (!s->meta) { free(s); return LSC_ENOMEM; }
  s->c = c;
  pthread_mutex_lock(&c->mu);
  c->st.store_allocs += 2; /* the session and its meta */
  s->next = c->sessions;
  if (c->sessions) c->sessions->prev = s;
  c->sessions = s;
  pthread_mutex_unlock(&c->mu);
  *out = s;
  return LSC_OK;
}

int ls_session_set_meta(ls_session *s, const char *meta_json) {
  char *m = strdup(meta_json ? meta_json : "{}");
  if (!m) return LSC_ENOMEM;
  ls_collector *c = s->c;
  pthread_mutex_lock(&c->mu);
  c->st.store_allocs++;
  /* The sender reads the meta it found when the send began without the lock: while it sends, that
   * one is kept (meta_sending) until the send ends; a meta set and replaced during the same send
   * was never read, so it goes at once. */
  if (s->sending && !s->meta_sending) s->meta_sending = s->meta;
  else free(s->meta);
  s->meta = m;
  pthread_mutex_unlock(&c->mu);
  return LSC_OK;
}

int ls_session_close(ls_session *s, uint64_t t_end) {
  ls_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = LS_K_END;
  ev.t = t_end;
  int rc = ls_emit(s, &ev);
  ls_collector *c = s->c;
  pthread_mutex_lock(&c->mu);
  s->closed = 1; /* no wake-up: the sender comes by within flush_interval_ms (a futex call per
                  * request would cost more than the rest of closing) */
  if (has_unsent(s)) enqueue(c, s);
  pthread_mutex_unlock(&c->mu);
  return rc == LSC_ECLOSED ? LSC_ECLOSED : LSC_OK;
}

/* ---- the sender thread -------------------------------------------------------------------- */

static int anything_pending(const ls_collector *c) { return c->nqueued > 0 || c->sending; }

/* Queues every session with published records not yet shipped: the writer publishes without the
 * mutex, so the ready queue alone does not know of them. O(sessions), once per wake-up. mu held. */
static void scan_ready(ls_collector *c) {
  for (ls_session *s = c->sessions; s; s = s->next)
    if (!s->queued && !s->sending && has_unsent(s)) enqueue(c, s);
}

/* After a send: back into the queue if more came meanwhile, freed if closed and done. mu held. */
static void after_send(ls_collector *c, ls_session *s) {
  if (s->closed) s->w = NULL; /* no writer any more: its last chunk can go once shipped */
  prune(c, s);
  if (has_unsent(s) || s->dropped != s->dropped_sent) enqueue(c, s);
  else if (s->closed) {
    unlink_session(c, s);
    session_free(c, s);
  }
}

/* Sleeps up to ms unless stopped; returns 1 when asked to stop. Called with mu held. */
static int sender_sleep(ls_collector *c, int ms) {
  struct timespec ts;
  deadline_after(&ts, ms);
  while (!c->stop) {
    if (pthread_cond_timedwait(&c->wake, &c->mu, &ts) == ETIMEDOUT) break;
  }
  return c->stop;
}

/* Encodes and posts one batch of s (mu held on entry and exit, released while posting). */
static void send_one(ls_collector *c, ls_session *s) {
  /* Take what is published, chunk by chunk, up to batch_max: [sent, snap) of each. The writer
   * may go on appending above snap meanwhile, and link new chunks after the last one taken. */
  prune(c, s);
  chunk *first = s->head, *last = NULL;
  size_t rec_bytes = 0, nev = 0;
  for (chunk *ch = first; ch; ch = ch->next) {
    uint64_t p = atomic_load_explicit(&ch->pub, memory_order_acquire);
    size_t n = PUB_LEN(p) - ch->sent;
    if (last && rec_bytes + n > c->cfg.batch_max) break;
    last = ch;
    ch->snap = PUB_LEN(p);
    ch->snap_nev = PUB_NEV(p);
    rec_bytes += n;
    nev += ch->snap_nev - ch->sent_nev;
  }
  uint64_t dropped_now = s->dropped;
  uint64_t drop_delta = dropped_now - s->dropped_sent;
  s->sending = 1;
  c->sending = 1;
  const char *meta = s->meta; /* stays valid until the send ends (ls_session_set_meta) */
  uint64_t seq = ++c->batch_seq;
  int stopping_deadline_ms = 0;
  pthread_mutex_unlock(&c->mu);

  ls_buf body;
  ls_buf_init(&body, BATCH_JSON_MAX + BATCH_JSON_SLACK);
  ls_buf_puts(&body, "{\"v\":1,\"batch\":\"b-");
  ls_buf_u64(&body, (uint64_t)getpid());
  ls_buf_puts(&body, "-");
  ls_buf_u64(&body, seq);
  ls_buf_puts(&body, "-");
  ls_buf_puts(&body, s->id);  /* session ids are [A-Za-z0-9-] (checked at open) */
  ls_buf_puts(&body, "\",\"session\":");
  ls_buf_jstr(&body, s->id, strlen(s->id));
  ls_buf_puts(&body, ",\"meta\":");
  ls_buf_puts(&body, meta);
  ls_buf_puts(&body, ",\"events\":[");
  /* Encode what was taken, in order (the record state s->rs runs from one record to the next);
   * past BATCH_JSON_MAX the rest of the snapshot is given back: snap lowered to what went in. */
  int first_ev = 1, full = 0;
  uint64_t unreadable = 0;
  nev = 0;
  for (chunk *ch = first; last; ch = ch->next) { /* the links up to last were set before the snapshot */
    size_t avail = ch->snap - ch->sent, used = 0, k = 0;
    if (full || (!first_ev && body.len >= BATCH_JSON_MAX)) {
      full = 1;
    } else {
      int erc = ls_encode_records(&body, &s->rs, ch->data + ch->sent, avail, &first_ev, BATCH_JSON_MAX,
                                  &used, &k);
      if (erc == LSC_EINVAL) { /* cannot happen with records this file wrote: skip the chunk's rest */
        unreadable += (ch->snap_nev - ch->sent_nev) - k;
        used = avail;
      } else if (used < avail) {
        full = 1;
      }
    }
    ch->snap = ch->sent + used;
    ch->snap_nev = full ? ch->sent_nev + k : ch->snap_nev;
    nev += k;
    if (ch == last) break;
  }
  if (drop_delta) {
    ls_buf_puts(&body, first_ev ? "{\"k\":\"drop\",\"n\":" : ",{\"k\":\"drop\",\"n\":");
    ls_buf_u64(&body, drop_delta);
    ls_buf_puts(&body, "}");
  }
  ls_buf_puts(&body, "]}");

  int delivered = 0, retryable = 1, backoff_ms = 100;
  if (!body.failed && c->sink) { /* one line per batch, flushed: a crash later keeps what was written */
    int ok = fwrite(body.data, 1, body.len, c->sink) == body.len && fputc('\n', c->sink) != EOF && fflush(c->sink) == 0;
    pthread_mutex_lock(&c->mu);
    if (ok) c->st.batches_saved++;
    else c->st.sink_errors++;
    pthread_mutex_unlock(&c->mu);
  }
  if (!body.failed && c->cfg.offline) delivered = 1;
  else if (!body.failed) {
    for (;;) {
      ls_http_result res = {0, -1};
      int rc = c->http ? ls_http_post(c->http, body.data, body.len, &res) : LSC_ESYS;
      pthread_mutex_lock(&c->mu);
      c->st.last_status = rc == LSC_OK ? res.status : 0;
      if (rc == LSC_OK && res.status >= 200 && res.status < 300) {
        c->st.batches_sent++;
        delivered = 1;
        pthread_mutex_unlock(&c->mu);
        break;
      }
      c->st.posts_failed++;
      /* 4xx other than 408/429 will not get better by retrying: the batch is dropped. */
      retryable = rc != LSC_OK || res.status >= 500 || res.status == 408 || res.status == 429;
      if (!retryable) { pthread_mutex_unlock(&c->mu); break; }
      int wait_ms = backoff_ms;
      if (res.retry_after_s >= 0) wait_ms = (res.retry_after_s > 30 ? 30 : res.retry_after_s) * 1000;
      if (wait_ms < 50) wait_ms = 50;
      backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
      c->st.retries++;
      if (c->stop) {
        /* Shutting down: a few more quick tries, then give up rather than hang the exit. */
        if (++stopping_deadline_ms > 3) {
          c->giving_up = 1;
          pthread_mutex_unlock(&c->mu);
          break;
        }
        wait_ms = 50;
        struct timespec ts;
        deadline_after(&ts, wait_ms);
        pthread_cond_timedwait(&c->wake, &c->mu, &ts);
      } else {
        sender_sleep(c, wait_ms);
      }
      pthread_mutex_unlock(&c->mu);
    }
  }
  ls_buf_free(&body);

  pthread_mutex_lock(&c->mu);
  s->dropped += unreadable;
  c->st.dropped += unreadable;
  if (delivered) {
    s->dropped_sent = dropped_now;
    s->shipped_once = 1;
  } else {
    /* The batch is lost (refused, too large to encode, or given up on at exit): its events count
     * as dropped, and after_send queues the session again so that a drop event carrying them
     * (and the drop count this batch failed to report) goes out with the next batch. A batch
     * with no events that was refused for good would be refused again: its count stays in the
     * stats but is not sent again, or the session would be retried forever. */
    c->st.batches_failed++;
    s->dropped += nev;
    c->st.dropped += nev;
    if (!nev && !retryable) s->dropped_sent = s->dropped;
  }
  for (chunk *ch = first; last; ch = ch->next) { /* shipped or given up on: either way done */
    ch->sent = ch->snap;
    ch->sent_nev = ch->snap_nev;
    if (ch == last) break;
  }
  free(s->meta_sending);
  s->meta_sending = NULL;
  s->sending = 0;
  c->sending = 0;
}

static void *sender_main(void *arg) {
  ls_collector *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->stop && c->giving_up) break;
    ls_session *pick = dequeue(c);
    if (pick) {
      send_one(c, pick);
      c->kicked = 0;
      after_send(c, pick);
      if (!anything_pending(c)) pthread_cond_broadcast(&c->idle);
      continue;
    }
    pthread_cond_broadcast(&c->idle);
    if (c->stop) break;
    struct timespec ts;
    deadline_after(&ts, c->cfg.flush_interval_ms);
    pthread_cond_timedwait(&c->wake, &c->mu, &ts);
    scan_ready(c); /* woken by time, a flush or a kick: what the writers published meanwhile */
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static int sender_start(ls_collector *c) {
  int rc = c->cfg.offline ? LSC_OK : ls_http_new(c->url, c->token, c->cfg.timeout_ms, c->cfg.gzip, &c->http);
  if (rc) return rc;
  c->stop = 0;
  c->giving_up = 0;
  if (pthread_create(&c->thread, NULL, sender_main, c)) {
    ls_http_free(c->http);
    c->http = NULL;
    return LSC_ESYS;
  }
  c->thread_running = 1;
  return LSC_OK;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int ls_collector_new(const ls_config *cfg, ls_collector **out) {
  static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
  pthread_once(&curl_once, curl_init_once);
  pthread_once(&atfork_once, atfork_register);
  ls_collector *c = calloc(1, sizeof *c);
  if (!c) return LSC_ENOMEM;
  c->cfg = *cfg;
  if (!c->cfg.buffer_cap) c->cfg.buffer_cap = 16u << 20;
  if (c->cfg.flush_interval_ms <= 0) c->cfg.flush_interval_ms = 200;
  if (c->cfg.timeout_ms <= 0) c->cfg.timeout_ms = 5000;
  if (!c->cfg.batch_max) c->cfg.batch_max = 512u << 10;
  /* initialised first, so that ls_collector_free can undo a half-made collector */
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->wake, NULL);
  pthread_cond_init(&c->idle, NULL);
  c->url = strdup(cfg->url ? cfg->url : "http://127.0.0.1:7878");
  c->token = cfg->token ? strdup(cfg->token) : NULL;
  int rc = !c->url || (cfg->token && !c->token) ? LSC_ENOMEM : LSC_OK;
  c->cfg.url = c->url;
  c->cfg.token = c->token;
  c->cfg.sink_path = NULL; /* not kept: only the open file is */
  if (!rc && cfg->sink_path && !(c->sink = fopen(cfg->sink_path, "ab"))) rc = LSC_EINVAL;
  if (!rc) rc = ls_intern_new(&c->strings);
  if (!rc) rc = sender_start(c);
  if (rc) {
    ls_collector_free(c, 0); /* no thread, no sessions: only what was allocated above */
    return rc;
  }
  live_collector = c;
  *out = c;
  return LSC_OK;
}

int ls_collector_flush(ls_collector *c, int timeout_ms) {
  struct timespec ts;
  deadline_after(&ts, timeout_ms);
  int rc = LSC_OK;
  pthread_mutex_lock(&c->mu);
  scan_ready(c);
  pthread_cond_signal(&c->wake);
  while (anything_pending(c)) {
    if (pthread_cond_timedwait(&c->idle, &c->mu, &ts) == ETIMEDOUT) {
      rc = anything_pending(c) ? LSC_ETIMEDOUT : LSC_OK;
      break;
    }
  }
  /* a batch given up on (refused by the server) since the last flush: not everything arrived */
  if (rc == LSC_OK && c->st.batches_failed != c->failed_seen) rc = LSC_ELOST;
  c->failed_seen = c->st.batches_failed;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void ls_collector_free(ls_collector *c, int timeout_ms) {
  if (!c) return;
  if (c->thread_running) {
    ls_collector_flush(c, timeout_ms);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
  }
  if (live_collector == c) live_collector = NULL;
  ls_http_free(c->http);
  if (c->sink) fclose(c->sink);
  ls_session *s = c->sessions;
  while (s) {
    ls_session *n = s->next;
    session_free(c, s);
    s = n;
  }
  spares_free(c);
  ls_intern_free(c->strings);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle);
  free(c->url);
  free(c->token);
  free(c);
}

void ls_collector_stats(ls_collector *c, ls_stats *out) {
  pthread_mutex_lock(&c->mu);
  *out = c->st;
  out->bytes_used = c->bytes_used;
  for (const ls_session *s = c->sessions; s; s = s->next) {
    out->sessions++;
    out->events += atomic_load_explicit(&s->events, memory_order_relaxed);
    if (has_unsent(s) || s->dropped != s->dropped_sent) out->sessions_pending++;
    if (s->sending) out->sessions_sending++;
  }
  pthread_mutex_unlock(&c->mu);
}

int ls_collector_after_fork_child(ls_collector *c) {
  /* Only this thread survived the fork: the sender is gone and its handle belongs to the
   * parent's connection. Everything recorded belongs to the parent, so it is dropped here. */
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->wake, NULL);
  pthread_cond_init(&c->idle, NULL);
  ls_intern_after_fork_child(c->strings);
  ls_session *s = c->sessions;
  while (s) {
    ls_session *n = s->next;
    session_free(c, s);
    s = n;
  }
  c->sessions = NULL;
  c->ready_head = c->ready_tail = NULL;
  c->nqueued = 0;
  c->sending = 0;
  c->kicked = 0;
  c->bytes_used = 0;
  memset(&c->st, 0, sizeof c->st);
  c->thread_running = 0;
  ls_http_free(c->http);
  c->http = NULL;
  /* the sink is the parent's file: the child writes nothing there (every batch is flushed when
   * written, so closing sends no buffered bytes of the parent's twice) */
  if (c->sink) fclose(c->sink);
  c->sink = NULL;
  int rc = sender_start(c);
  return rc;
}
