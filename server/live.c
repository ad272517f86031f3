/* live.c — live event streams (live.h): one text/event-stream response per watching page, fed by
 * a content-reader callback that suspends its connection while there is nothing to say, so no
 * pool thread waits on a stream. The writer's commits (live_notify) and a ticker thread (pacing
 * and heartbeats) resume it. Status codes and routing are http.c's; event JSON is query.c's. */
#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "jbuf.h"
#include "query.h"
#include "writer.h"
#include "thread_name.h"

#define LIVE_MIN_GAP_MS 200  /* one event per stream per this at most: bursts coalesce */
#define LIVE_TICK_MS 100     /* the ticker's period */
#define LIVE_LIST_MAX 32     /* changed sessions a list stream remembers; beyond: a reset event */
#define LIVE_EVENT_MAX ((size_t)4 << 20) /* bytes of events produced at once */
#define ID_MAX 130           /* a session id and its NUL (ingest_id_ok's ceiling) */
#define LIVE_CACHE 64        /* summaries of recently changed sessions kept for every stream */

/* The summary of a session that changed lately, made once for every stream that tells of it:
 * the cost of a burst of batches is one summary per session per LIVE_MIN_GAP_MS (or per ten
 * times the summary's own cost, when that is longer: a big session's summary reads all its
 * tasks), whatever the number of streams. Entries are made by live_notify only (so `changed`
 * is always known). */
typedef struct live_cached {
  char id[ID_MAX];      /* "" : free */
  int64_t changed;      /* hub->seq of the session's last change */
  int64_t made;         /* the `changed` the summary reflects; -1: none */
  int ended;
  char *json;           /* malloc'd, len bytes */
  size_t len;
  int64_t ready_ms;     /* not made again before (its cost paces it: see summary_of) */
  int64_t used;         /* hub->seq when last touched, for eviction */
} live_cached;

typedef struct live_stream {
  struct live_stream *prev, *next;
  live_hub *hub;
  struct MHD_Connection *conn;
  char session[ID_MAX];  /* "" : the sessions list */
  /* guarded by hub->lock */
  int suspended;         /* suspended by live_read; whoever resumes it clears this */
  int dirty;             /* the watched session changed since the last event */
  char changed[LIVE_LIST_MAX][ID_MAX]; /* list streams: sessions changed since the last event */
  int nchanged, overflow;
  int64_t last_ms;       /* when something was last produced */
  /* worker side only (one worker runs a connection's reader at a time) */
  int closing;           /* the last event is out: end the stream once `out` is sent */
  jbuf out;              /* produced, not yet handed to libmicrohttpd from `off` on */
  size_t off;
} live_stream;

struct live_hub {
  store *s;
  metrics *m;            /* NULL: not counted */
  int max_streams, heartbeat_ms;
  pthread_mutex_t lock;
  pthread_cond_t cv;     /* the ticker's sleep; live_stop's wait for streams to close */
  live_stream head;      /* list head */
  int nstreams, stopping;
  int64_t seq;           /* commits heard: the id of the events they cause */
  pthread_t ticker;
  live_cached cache[LIVE_CACHE];
};

/* The cache entry of session id, or NULL. Hub lock held. */
static live_cached *cache_find(live_hub *hub, const char *id)
{
  for(int i = 0; i < LIVE_CACHE; i++)
    if(hub->cache[i].id[0] && !strcmp(hub->cache[i].id, id))
      return &hub->cache[i];
  return NULL;
}

/* Marks session id changed at hub->seq, taking the least recently used entry if it has none.
 * Hub lock held. */
static void cache_changed(live_hub *hub, const char *id)
{
  live_cached *e = cache_find(hub, id);
  if(!e) {
    e = &hub->cache[0];
    for(int i = 1; i < LIVE_CACHE && e->id[0]; i++)
      if(!hub->cache[i].id[0] || hub->cache[i].used < e->used)
        e = &hub->cache[i];
    free(e->json);
    *e = (live_cached){.made = -1};
    snprintf(e->id, sizeof(e->id), "%s", id);
  }
  e->changed = hub->seq;
  e->used = hub->seq;
}

static int64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Resumes a stream suspended in live_read. Hub lock held: the stream cannot be freed meanwhile,
 * and a resume never reaches a connection that is not suspended. */
static void wake(live_stream *st)
{
  if(st->suspended) {
    st->suspended = 0;
    MHD_resume_connection(st->conn);
  }
}

/* A session whose summary was made so lately that making it again now would take more than a
 * tenth of the time (a big session's summary reads all its tasks): its streams wait. Lock held. */
static int cooling(live_hub *hub, const char *id, int64_t now)
{
  live_cached *e = cache_find(hub, id);
  return e && now < e->ready_ms;
}

/* The stream has something to tell now. Hub lock held. */
static int has_news(live_hub *hub, const live_stream *st, int64_t now)
{
  if(st->overflow)
    return 1;
  if(st->dirty)
    return !cooling(hub, st->session, now);
  for(int k = 0; k < st->nchanged; k++)
    if(!cooling(hub, st->changed[k], now))
      return 1;
  return 0;
}

static void *ticker_main(void *arg)
{
  thread_name("ls-live");
  live_hub *hub = arg;
  pthread_mutex_lock(&hub->lock);
  while(!hub->stopping) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += LIVE_TICK_MS * 1000000L;
    if(until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&hub->cv, &hub->lock, &until);
    int64_t now = now_ms();
    for(live_stream *st = hub->head.next; st != &hub->head; st = st->next)
      if(hub->stopping || (now - st->last_ms >= LIVE_MIN_GAP_MS && has_news(hub, st, now)) ||
         now - st->last_ms >= hub->heartbeat_ms)
        wake(st);
  }
  pthread_mutex_unlock(&hub->lock);
  return NULL;
}

/* The open streams' gauge follows nstreams. Hub lock held. */
static void count_streams(live_hub *hub)
{
  if(hub->m)
    metrics_set(&hub->m->live_streams, hub->nstreams);
}

static void count_events(live_hub *hub, int64_t n)
{
  if(hub->m && n)
    metrics_add(&hub->m->live_events, n);
}

int live_start(store *s, metrics *m, int max_streams, int heartbeat_ms, live_hub **out)
{
  *out = NULL;
  live_hub *hub = calloc(1, sizeof(*hub));
  if(!hub)
    return LS_ENOMEM;
  hub->s = s;
  hub->m = m;
  hub->max_streams = max_streams > 0 ? max_streams : 0;
  hub->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 15000;
  hub->head.next = hub->head.prev = &hub->head;
  if(pthread_mutex_init(&hub->lock, NULL)) {
    free(hub);
    return LS_ENOMEM;
  }
  if(pthread_cond_init(&hub->cv, NULL)) {
    pthread_mutex_destroy(&hub->lock);
    free(hub);
    return LS_ENOMEM;
  }
  if(pthread_create(&hub->ticker, NULL, ticker_main, hub)) {
    pthread_cond_destroy(&hub->cv);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
    return LS_ENOMEM;
  }
  *out = hub;
  return 0;
}

void live_notify(void *arg, const char *session, int flags)
{
  (void)flags; /* the events say what changed from the stored summary, not from the batch */
  live_hub *hub = arg;
  int64_t now = now_ms();
  pthread_mutex_lock(&hub->lock);
  hub->seq++;
  cache_changed(hub, session);
  for(live_stream *st = hub->head.next; st != &hub->head; st = st->next) {
    if(st->session[0]) {
      if(strcmp(st->session, session))
        continue;
      st->dirty = 1;
    }
    else {
      int k = 0;
      while(k < st->nchanged && strcmp(st->changed[k], session))
        k++;
      if(k == st->nchanged) {
        if(st->nchanged == LIVE_LIST_MAX)
          st->overflow = 1;
        else
          snprintf(st->changed[st->nchanged++], ID_MAX, "%s", session);
      }
    }
    if(now - st->last_ms >= LIVE_MIN_GAP_MS && has_news(hub, st, now))
      wake(st);
  }
  pthread_mutex_unlock(&hub->lock);
}

/* Whether the session is stored and has ended: 0, or LS_ENOTFOUND / another error. */
static int session_state(store *s, const char *id, int *ended)
{
  store_reader *r = store_reader_acquire(s);
  arena ar;
  arena_init(&ar);
  store_session x;
  int rc = store_find_session(r, id, &ar, &x);
  *ended = rc ? 0 : x.ended;
  arena_free(&ar);
  store_reader_release(s, r);
  return rc;
}

/* Appends one event: `id:` (when seq >= 0), `event:` and the JSON in `data` (query.c writes JSON
 * on one line: strings escape their newlines); *n counts them (loopscope_live_events_total). */
static void put_event(jbuf *o, int *n, int64_t seq, const char *event, const char *data, size_t len)
{
  (*n)++;
  if(seq >= 0)
    jbuf_printf(o, "id: %lld\n", (long long)seq);
  jbuf_printf(o, "event: %s\ndata: ", event);
  jbuf_append(o, data, len);
  jbuf_puts(o, "\n\n");
}

/* The session's summary into sum (and whether it ended): from the cache when it is as new as
 * the session's last change, else made here (and kept when no change came meanwhile). */
static int summary_of(live_hub *hub, const char *id, jbuf *sum, int *ended)
{
  pthread_mutex_lock(&hub->lock);
  live_cached *e = cache_find(hub, id);
  int64_t want = e ? e->changed : -1;
  if(e && e->json && e->made == e->changed) {
    jbuf_append(sum, e->json, e->len);
    *ended = e->ended;
    e->used = hub->seq;
    pthread_mutex_unlock(&hub->lock);
    return jbuf_status(sum);
  }
  pthread_mutex_unlock(&hub->lock);
  char detail[64];
  int64_t t0 = now_ms();
  int rc = session_state(hub->s, id, ended);
  if(!rc)
    rc = query_session(hub->s, id, NULL, sum, detail, sizeof(detail));
  if(rc || want < 0)
    return rc;
  int64_t t1 = now_ms();
  char *copy = malloc(sum->len ? sum->len : 1);
  if(!copy)
    return 0; /* not kept: made again next time */
  memcpy(copy, sum->data, sum->len);
  pthread_mutex_lock(&hub->lock);
  e = cache_find(hub, id);
  if(e && e->changed == want && e->made < want) {
    free(e->json);
    e->json = copy;
    e->len = sum->len;
    e->made = want;
    e->ended = *ended;
    e->ready_ms = t1 + 9 * (t1 - t0);
    copy = NULL;
  }
  pthread_mutex_unlock(&hub->lock);
  free(copy);
  return 0;
}

/* The session's summary as a `kind` event, then `end` if it has ended, or `deleted` if it is
 * gone; *last set when the stream should end after these. */
static int put_session(live_hub *hub, jbuf *o, int *n, int64_t seq, const char *kind, const char *id, int for_list,
                       int *last)
{
  jbuf sum;
  jbuf_init(&sum, LIVE_EVENT_MAX);
  int ended = 0;
  int rc = summary_of(hub, id, &sum, &ended);
  if(rc == LS_ENOTFOUND) {
    jbuf_reset(&sum);
    jbuf_puts(&sum, "{\"id\":");
    jbuf_str(&sum, id);
    jbuf_putc(&sum, '}');
    put_event(o, n, seq, "deleted", sum.data, sum.len);
    *last = !for_list;
    rc = 0;
  }
  else if(!rc) {
    put_event(o, n, seq, kind, sum.data, sum.len);
    if(ended && !for_list) {
      put_event(o, n, -1, "end", "{}", 2);
      *last = 1;
    }
  }
  if(!rc)
    rc = jbuf_status(&sum);
  jbuf_free(&sum);
  return rc ? rc : jbuf_status(o);
}

/* Hands what is produced to libmicrohttpd. */
static ssize_t copy_out(live_stream *st, char *buf, size_t max)
{
  size_t n = st->out.len - st->off;
  if(n > max)
    n = max;
  memcpy(buf, st->out.data + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

/* libmicrohttpd's content reader: the next bytes of the stream. With nothing to say it suspends
 * the connection and returns 0 (libmicrohttpd then leaves it until resumed). */
static ssize_t live_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  live_stream *st = cls;
  live_hub *hub = st->hub;
  if(st->off < st->out.len)
    return copy_out(st, buf, max);
  jbuf_reset(&st->out);
  st->off = 0;
  if(st->closing)
    return MHD_CONTENT_READER_END_OF_STREAM;
  char changed[LIVE_LIST_MAX][ID_MAX];
  int nchanged = 0, overflow = 0, dirty = 0, beat = 0;
  pthread_mutex_lock(&hub->lock);
  if(hub->stopping) {
    pthread_mutex_unlock(&hub->lock);
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  int64_t now = now_ms(), seq = hub->seq;
  if(now - st->last_ms >= LIVE_MIN_GAP_MS && has_news(hub, st, now)) {
    dirty = st->dirty;
    overflow = st->overflow;
    st->dirty = st->overflow = 0;
    /* the sessions not cooling now; the others stay for a later event */
    int keep = 0;
    for(int k = 0; k < st->nchanged; k++) {
      if(cooling(hub, st->changed[k], now))
        memmove(st->changed[keep++], st->changed[k], ID_MAX);
      else
        memcpy(changed[nchanged++], st->changed[k], ID_MAX);
    }
    st->nchanged = keep;
  }
  else if(now - st->last_ms >= hub->heartbeat_ms)
    beat = 1;
  else {
    st->suspended = 1;
    MHD_suspend_connection(st->conn);
    pthread_mutex_unlock(&hub->lock);
    return 0;
  }
  st->last_ms = now;
  pthread_mutex_unlock(&hub->lock);

  int rc = 0, last = 0, events = 0;
  if(beat)
    jbuf_puts(&st->out, ": heartbeat\n\n");
  if(dirty)
    rc = put_session(hub, &st->out, &events, seq, "update", st->session, 0, &last);
  if(overflow)
    put_event(&st->out, &events, seq, "reset", "{}", 2);
  for(int k = 0; k < nchanged && !rc; k++)
    rc = put_session(hub, &st->out, &events, seq, "session", changed[k], 1, &last);
  if(rc || jbuf_status(&st->out))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  count_events(hub, events);
  st->closing = last;
  return copy_out(st, buf, max);
}

static void live_free_stream(void *cls)
{
  live_stream *st = cls;
  live_hub *hub = st->hub;
  pthread_mutex_lock(&hub->lock);
  st->prev->next = st->next;
  st->next->prev = st->prev;
  hub->nstreams--;
  count_streams(hub);
  pthread_cond_broadcast(&hub->cv);
  pthread_mutex_unlock(&hub->lock);
  jbuf_free(&st->out);
  free(st);
}

int live_open(live_hub *hub, struct MHD_Connection *c, const char *session, struct MHD_Response **out)
{
  *out = NULL;
  pthread_mutex_lock(&hub->lock);
  int full = hub->stopping || hub->nstreams >= hub->max_streams;
  if(!full)
    hub->nstreams++; /* the place is held while the first event is made */
  else if(hub->m)
    metrics_add(&hub->m->live_refused, 1);
  count_streams(hub);
  int64_t seq = hub->seq;
  pthread_mutex_unlock(&hub->lock);
  if(full)
    return LS_EBUSY;
  int events = 0;
  live_stream *st = calloc(1, sizeof(*st));
  int rc = st ? 0 : LS_ENOMEM;
  if(st) {
    st->hub = hub;
    st->conn = c;
    jbuf_init(&st->out, LIVE_EVENT_MAX);
    snprintf(st->session, sizeof(st->session), "%s", session ? session : "");
    /* The first event is the whole state, so a page that (re)connects needs no Last-Event-ID:
     * the session's summary, or for the list the sequence number the page starts from. */
    if(session)
      rc = put_session(hub, &st->out, &events, seq, "state", session, 0, &st->closing);
    else {
      char ready[48];
      int n = snprintf(ready, sizeof(ready), "{\"seq\":%lld}", (long long)seq);
      put_event(&st->out, &events, seq, "ready", ready, (size_t)n);
      rc = jbuf_status(&st->out);
    }
    /* a session deleted between the route's check and here: as if it had never been */
    if(!rc && session && strstr(st->out.data, "event: deleted"))
      rc = LS_ENOTFOUND;
  }
  struct MHD_Response *r = NULL;
  if(!rc) {
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, live_read, st, live_free_stream);
    if(!r)
      rc = LS_ENOMEM;
  }
  pthread_mutex_lock(&hub->lock);
  if(rc) {
    hub->nstreams--;
    count_streams(hub);
    pthread_cond_broadcast(&hub->cv);
  }
  else {
    count_events(hub, events);
    st->last_ms = now_ms();
    st->next = &hub->head;
    st->prev = hub->head.prev;
    hub->head.prev->next = st;
    hub->head.prev = st;
  }
  pthread_mutex_unlock(&hub->lock);
  if(rc) {
    if(st)
      jbuf_free(&st->out);
    free(st);
    return rc;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass events on at once */
  *out = r;
  return 0;
}

int live_count(live_hub *hub)
{
  pthread_mutex_lock(&hub->lock);
  int n = hub->nstreams;
  pthread_mutex_unlock(&hub->lock);
  return n;
}

void live_stop(live_hub *hub, int wait_ms)
{
  if(!hub)
    return;
  pthread_mutex_lock(&hub->lock);
  int was = hub->stopping;
  hub->stopping = 1;
  for(live_stream *st = hub->head.next; st != &hub->head; st = st->next)
    wake(st);
  pthread_cond_broadcast(&hub->cv);
  pthread_mutex_unlock(&hub->lock);
  if(!was)
    pthread_join(hub->ticker, NULL);
  /* Each resumed stream ends at its next read; a client that stopped reading keeps its
   * connection until libmicrohttpd closes it (MHD_stop_daemon), so the wait is bounded. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += wait_ms / 1000;
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if(until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&hub->lock);
  while(hub->nstreams > 0)
    if(pthread_cond_timedwait(&hub->cv, &hub->lock, &until))
      break;
  pthread_mutex_unlock(&hub->lock);
}

void live_free(live_hub *hub)
{
  if(!hub)
    return;
  live_stop(hub, 0);
  for(int i = 0; i < LIVE_CACHE; i++)
    free(hub->cache[i].json);
  pthread_cond_destroy(&hub->cv);
  pthread_mutex_destroy(&hub->lock);
  free(hub);
}
