/* lscollector.c — sessions, the bounded event store and the collector's life (start, flush, stop,
 * fork). Emitters (the extension, under the GIL) append records to their session's chunks; the
 * sender thread (lssender.c) takes what was published, encodes it (lsencode.c) and POSTs it
 * (lshttp.c). Memory of unsent events never exceeds buffer_cap: beyond it events are dropped and
 * counted, and the count travels later as a "drop" event.
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

#include <curl/curl.h>

#include "lsstore.h"
#include "share.h"

/* pthread_atfork handlers can carry no argument, so the one live collector is kept here; only
 * the fork handlers read it. Several collectors at once are not supported by the module. */
static ls_collector *live_collector;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void) { if (live_collector) pthread_mutex_lock(&live_collector->mu); }
static void fork_parent(void) { if (live_collector) pthread_mutex_unlock(&live_collector->mu); }
static void fork_child(void) { if (live_collector) pthread_mutex_unlock(&live_collector->mu); }
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
static void atfork_register(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void ls_deadline_after(struct timespec *ts, int ms) {
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
  while (c->spare_sessions) {
    ls_session *n = c->spare_sessions->next;
    free(c->spare_sessions);
    c->spare_sessions = n;
  }
  c->spare_bytes = 0;
}

void ls_store_label_free(ls_session *s, char *p) {
  if (p != s->name_room && p != s->route_room) free(p);
}

/* s's memory is kept as a spare session while the store stays within buffer_cap, freed beyond. */
void ls_store_session_free(ls_collector *c, ls_session *s) {
  c->st.events += atomic_load_explicit(&s->events, memory_order_relaxed); /* stats keep counting it */
  chunks_free(c, s->head);
  free(s->meta);
  free(s->meta_sending);
  ls_store_label_free(s, s->route);
  ls_store_label_free(s, s->route_sending);
  ls_store_label_free(s, s->name);
  ls_store_label_free(s, s->name_sending);
  if (c->bytes_used + c->spare_bytes + sizeof *s <= c->cfg.buffer_cap) {
    s->next = c->spare_sessions;
    c->spare_sessions = s;
    c->spare_bytes += sizeof *s;
  } else {
    free(s);
  }
}

/* Puts s at the end of the ready queue unless it is there or being sent. mu held. */
void ls_store_enqueue(ls_collector *c, ls_session *s) {
  if (s->queued || s->sending) return;
  s->queued = 1;
  s->rnext = NULL;
  if (c->ready_tail) c->ready_tail->rnext = s; else c->ready_head = s;
  c->ready_tail = s;
  c->nqueued++;
}

ls_session *ls_store_dequeue(ls_collector *c) {
  ls_session *s = c->ready_head;
  if (!s) return NULL;
  c->ready_head = s->rnext;
  if (!c->ready_head) c->ready_tail = NULL;
  s->queued = 0;
  s->rnext = NULL;
  c->nqueued--;
  return s;
}

void ls_store_settle(ls_collector *c, ls_session *s) {
  if (s->closed) s->w = NULL; /* no writer any more: its last chunk can go once shipped */
  ls_store_prune(c, s);
  if (ls_store_has_unsent(s) || s->dropped != s->dropped_sent) ls_store_enqueue(c, s);
  else if (s->closed) {
    ls_store_unlink(c, s);
    ls_store_session_free(c, s);
  }
}

void ls_store_unlink(ls_collector *c, ls_session *s) {
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
int ls_store_has_unsent(const ls_session *s) {
  for (const chunk *ch = s->head; ch; ch = ch->next)
    if (PUB_LEN(atomic_load_explicit(&ch->pub, memory_order_acquire)) > ch->sent) return 1;
  return 0;
}

/* Frees the oldest chunks once all of them is shipped, except the writer's current one (it may
 * still grow; its shipped prefix is remembered in sent). mu held. */
void ls_store_prune(ls_collector *c, ls_session *s) {
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

/* The slow path of every ls_emit*: the current chunk has no room (or there is none). A new chunk
 * is linked in and becomes the writer's; the session joins the ready queue. The record is written
 * into the new chunk under the mutex, before the session is queued (the sender never finds it
 * queued with nothing to take): by ls_record_write for ev, or, when ev is NULL, by
 * ls_record_write_task for the task record in *task (a default name stays a number: formatting
 * it here for ls_record_write to parse back was ~800 instructions and snprintf's code in the
 * instruction cache on every web request, whose session's first record always lands here). */
typedef struct task_rec {
  uint64_t id, parent, t, num;
  ls_str name, coro;
} task_rec;

/* Links a new chunk of at least bound bytes (twice the writer's last, CHUNK_MIN for the first) as
 * the writer's current one, or NULL: the cap is reached (*rc LSC_EFULL) or no memory (LSC_ENOMEM).
 * mu held. */
static chunk *chunk_link_new(ls_collector *c, ls_session *s, size_t bound, int *rc) {
  chunk *t = s->w;
  size_t cap = t ? t->cap * 2 : CHUNK_MIN;
  if (cap > CHUNK_MAX) cap = CHUNK_MAX;
  if (cap < bound) cap = bound;
  if (c->bytes_used + cap + sizeof(chunk) > c->cfg.buffer_cap) { *rc = LSC_EFULL; return NULL; }
  chunk *n = chunk_take(c, cap);
  if (!n) { *rc = LSC_ENOMEM; return NULL; }
  if (s->tail) s->tail->next = n; else s->head = n;
  s->tail = s->w = n;
  c->bytes_used += cap + sizeof(chunk);
  /* a quarter full: wake the sender once (edge, not level: a wake-up per chunk would cost a
   * futex call each while the server is down and the buffer stays full) */
  if (!c->kicked && c->bytes_used > c->cfg.buffer_cap / 4) {
    c->kicked = 1;
    pthread_cond_signal(&c->wake);
  }
  return n;
}

/* emit_new_chunk_rec with mu held. */
static int emit_new_chunk_locked(ls_session *s, const ls_event *ev, const task_rec *task, size_t bound) {
  ls_collector *c = s->c;
  int rc = LSC_OK;
  chunk *n = chunk_link_new(c, s, bound, &rc);
  if (!n) {
    s->dropped++;
    c->st.dropped++;
    ls_store_enqueue(c, s);
    return rc;
  }
  size_t size = ev ? ls_record_write(n->data, ev, &s->ws)
                   : ls_record_write_task(n->data, task->id, task->parent, task->t, task->name, task->num,
                                          task->coro, &s->ws);
  atomic_store_explicit(&n->pub, PUB_ONE(size), memory_order_release);
  atomic_store_explicit(&s->events, atomic_load_explicit(&s->events, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  ls_store_enqueue(c, s);
  ls_store_prune(c, s); /* the old chunk, if it was shipped whole */
  return LSC_OK;
}

static int emit_new_chunk_rec(ls_session *s, const ls_event *ev, const task_rec *task, size_t bound) {
  pthread_mutex_lock(&s->c->mu);
  int rc = emit_new_chunk_locked(s, ev, task, bound);
  pthread_mutex_unlock(&s->c->mu);
  return rc;
}

static int emit_new_chunk(ls_session *s, const ls_event *ev, size_t bound) {
  return emit_new_chunk_rec(s, ev, NULL, bound);
}

/* Forced: at -Os (collector/setup.py) a helper called from three places would stay a call. */
#if defined(__GNUC__) || defined(__clang__)
#define STORE_INLINE inline __attribute__((always_inline))
#define STORE_COLD __attribute__((noinline, cold))
#else
#define STORE_INLINE inline
#define STORE_COLD
#endif

/* The writer's current chunk when it has room for bound more bytes (*pub: its published state),
 * else NULL: emit_new_chunk's turn. The writer's own last store: relaxed; the sender never writes
 * pub. */
static STORE_INLINE chunk *room_for(ls_session *s, size_t bound, uint64_t *pub) {
  chunk *w = s->w;
  if (!w) return NULL;
  *pub = atomic_load_explicit(&w->pub, memory_order_relaxed);
  return w->cap - PUB_LEN(*pub) >= bound ? w : NULL;
}

/* Publishes a record of size bytes written at the end of w (release: the sender reads up to it). */
static STORE_INLINE int published(ls_session *s, chunk *w, uint64_t pub, size_t size) {
  atomic_store_explicit(&w->pub, pub + PUB_ONE(size), memory_order_release);
  atomic_store_explicit(&s->events, atomic_load_explicit(&s->events, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  return LSC_OK;
}

int ls_emit(ls_session *s, const ls_event *ev) {
  if (s->closed) return LSC_ECLOSED; /* set by this same writer (ls_session_close) */
  size_t bound = ls_record_bound(ev);
  uint64_t pub;
  chunk *w = room_for(s, bound, &pub);
  if (w) return published(s, w, pub, ls_record_write(w->data + PUB_LEN(pub), ev, &s->ws));
  return emit_new_chunk(s, ev, bound);
}

int ls_emit_step(ls_session *s, uint64_t id, uint64_t t, uint64_t d) {
  if (s->closed) return LSC_ECLOSED;
  uint64_t pub;
  chunk *w = room_for(s, LS_STEP_BOUND, &pub);
  if (w) return published(s, w, pub, ls_record_write_step(w->data + PUB_LEN(pub), id, t, d, &s->ws));
  ls_event ev = {.kind = LS_K_STEP, .id = id, .t = t, .d = d};
  return emit_new_chunk(s, &ev, LS_STEP_BOUND);
}

int ls_emit_await(ls_session *s, uint64_t id, uint64_t t, uint64_t d, int32_t line, ls_str what, ls_str file,
                  ls_str func) {
  if (s->closed) return LSC_ECLOSED;
  size_t bound = ls_await_bound(what, file, func);
  uint64_t pub;
  chunk *w = room_for(s, bound, &pub);
  if (w)
    return published(s, w, pub,
                     ls_record_write_await(w->data + PUB_LEN(pub), id, t, d, line, what, file, func, &s->ws));
  ls_event ev = {.kind = LS_K_AWAIT, .id = id, .t = t, .d = d, .line = line, .what = what, .file = file, .func = func};
  return emit_new_chunk(s, &ev, bound);
}

/* ls_emit_task's slow path, out of its way (a request's session's first record: every request). */
STORE_COLD static int emit_task_new_chunk(ls_session *s, uint64_t id, uint64_t parent, uint64_t t, ls_str name,
                                          uint64_t num, ls_str coro) {
  task_rec task = {.id = id, .parent = parent, .t = t, .num = num, .name = name, .coro = coro};
  return emit_new_chunk_rec(s, NULL, &task, ls_task_bound(name, coro));
}

int ls_emit_task(ls_session *s, uint64_t id, uint64_t parent, uint64_t t, ls_str name, uint64_t num, ls_str coro) {
  if (s->closed) return LSC_ECLOSED;
  size_t bound = ls_task_bound(name, coro);
  uint64_t pub;
  chunk *w = room_for(s, bound, &pub);
  if (w) return published(s, w, pub, ls_record_write_task(w->data + PUB_LEN(pub), id, parent, t, name, num, coro, &s->ws));
  return emit_task_new_chunk(s, id, parent, t, name, num, coro);
}

int ls_emit_done(ls_session *s, uint64_t id, uint64_t t, int state, int32_t status, ls_str exc) {
  if (s->closed) return LSC_ECLOSED;
  size_t bound = ls_done_bound(exc);
  uint64_t pub;
  chunk *w = room_for(s, bound, &pub);
  if (w) return published(s, w, pub, ls_record_write_done(w->data + PUB_LEN(pub), id, t, state, status, exc, &s->ws));
  ls_event ev = {.kind = LS_K_DONE, .id = id, .t = t, .state = state, .status = status, .exc = exc};
  return emit_new_chunk(s, &ev, bound);
}

uint32_t ls_collector_string(ls_collector *c, const char *p, size_t n) {
  if (!c || !c->strings || !p || !n) return 0;
  int64_t id = ls_intern_id(c->strings, p, n);
  return id < 0 ? 0 : (uint32_t)id + 1;
}

void ls_session_add_dropped(ls_session *s, uint64_t n) {
  pthread_mutex_lock(&s->c->mu);
  s->dropped += n;
  s->c->st.dropped += n;
  ls_store_enqueue(s->c, s);
  pthread_mutex_unlock(&s->c->mu);
}

/* A NUL-terminated copy of n bytes of p, or NULL. */
static char *copy_n(const char *p, size_t n) {
  char *r = malloc(n + 1);
  if (!r) return NULL;
  if (n) memcpy(r, p, n);
  r[n] = 0;
  return r;
}

/* A session of id (checked: [A-Za-z0-9-], under 64 bytes) holding meta (malloc'd, taken over) or,
 * when name is given, n bytes of name (copied: into the session's room when it fits), linked into
 * c's sessions. A spare session is reused when there is one: a web app's steady state allocates
 * nothing here. */
static int session_new(ls_collector *c, const char *id, char *meta, const char *name, size_t name_n,
                       ls_session **out) {
  /* one table lookup per byte: this runs once per web request (range tests cost ~400
   * instructions for a 26-byte id, a third of opening the session). [A-Za-z0-9-]; bytes from
   * 128 up are 0 (the rest of the array). */
  static const unsigned char is_id[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
  };
  size_t idn = 0;
  while (idn < sizeof ((ls_session *)0)->id && is_id[(unsigned char)id[idn]]) idn++;
  int ok = idn > 0 && idn < sizeof ((ls_session *)0)->id && id[idn] == 0;
  char *long_name = NULL;
  if (!ok || (!meta && !name) || (name && name_n >= LS_LABEL_INLINE && !(long_name = copy_n(name, name_n)))) {
    free(meta);
    return ok ? LSC_ENOMEM : LSC_EINVAL;
  }
  /* a spare is taken, set up and linked under one hold of the lock (once per web request); only
   * a fresh one lets go of it for malloc */
  pthread_mutex_lock(&c->mu);
  ls_session *s = c->spare_sessions;
  int fresh = !s;
  if (s) {
    c->spare_sessions = s->next;
    c->spare_bytes -= sizeof *s;
  } else {
    pthread_mutex_unlock(&c->mu);
    if (!(s = malloc(sizeof *s))) {
      free(meta);
      free(long_name);
      return LSC_ENOMEM;
    }
    pthread_mutex_lock(&c->mu);
  }
  memset(s, 0, offsetof(ls_session, name_room)); /* the rooms are written before they are read */
  memcpy(s->id, id, idn + 1);
  s->ws.strings = c->strings;
  s->rs.strings = c->strings;
  s->meta = meta;
  if (long_name) {
    s->name = long_name;
  } else if (name) {
    memcpy(s->name_room, name, name_n);
    s->name_room[name_n] = 0;
    s->name = s->name_room;
  }
  s->name_n = name ? name_n : 0;
  s->c = c;
  /* what came from malloc: the session, a meta, a name too long for its room */
  c->st.store_allocs += (uint64_t)fresh + (meta != NULL) + (long_name != NULL);
  s->next = c->sessions;
  if (c->sessions) c->sessions->prev = s;
  c->sessions = s;
  /* its first chunk under the same hold of the lock: a request's session's first record (its root
   * task's) then takes the writer's path without the lock, where it took the lock a second time.
   * With none (the cap, no memory) the first record takes the slow path, which counts the drop. */
  int no_chunk;
  (void)chunk_link_new(c, s, CHUNK_MIN, &no_chunk);
  pthread_mutex_unlock(&c->mu);
  *out = s;
  return LSC_OK;
}

int ls_session_open(ls_collector *c, const char *id, const char *meta_json, ls_session **out) {
  char *meta = strdup(meta_json ? meta_json : "{}");
  if (!meta) return LSC_ENOMEM;
  return session_new(c, id, meta, NULL, 0, out);
}

int ls_session_begin(ls_collector *c, const char *id, const ls_session_start *st, ls_session **out) {
  int rc = session_new(c, id, NULL, st->name ? st->name : "", st->name ? st->name_n : 0, out);
  if (rc == LSC_OK) {
    (*out)->loop = st->loop;
    (*out)->wall_ns = st->wall_ns;
    (*out)->fraction_ppm = st->fraction_ppm < SHARE_PPM_ALL ? st->fraction_ppm : 0;
  }
  return rc;
}

/* Puts v (malloc'd) in *cur, a field of s the sender reads without the lock while it sends (the
 * meta). The one the send in progress found when it began is kept in *sending until that send
 * ends; one set and replaced during the same send was never read, so it goes at once. */
static void replace_sent_field(ls_session *s, char **cur, char **sending, char *v) {
  ls_collector *c = s->c;
  pthread_mutex_lock(&c->mu);
  c->st.store_allocs++;
  if (s->sending && !*sending) *sending = *cur;
  else free(*cur);
  *cur = v;
  pthread_mutex_unlock(&c->mu);
}

int ls_session_set_meta(ls_session *s, const char *meta_json) {
  char *m = strdup(meta_json ? meta_json : "{}");
  if (!m) return LSC_ENOMEM;
  replace_sent_field(s, &s->meta, &s->meta_sending, m);
  return LSC_OK;
}

/* Sets a label of s (its name or route: *cur, n bytes in *n_out) to n bytes of p, as
 * replace_sent_field does, in the label's room when p fits there and no send in progress reads
 * the room (a send reads the label it found when it began, without the lock), else in a malloc'd
 * copy. */
static int set_label_locked(ls_session *s, char **cur, char **sending, char *room, size_t *n_out, const char *p,
                            size_t n, char *v) {
  ls_collector *c = s->c;
  if (!v && s->sending && (*cur == room || *sending == room) && !(v = copy_n(p, n))) return LSC_ENOMEM;
  if (v) c->st.store_allocs++;
  if (s->sending && !*sending) *sending = *cur; /* NULL when there was none */
  else ls_store_label_free(s, *cur);
  if (!v) { /* the room: neither the current label nor the one a send holds (checked above) */
    memcpy(room, p, n);
    room[n] = 0;
    v = room;
  }
  *cur = v;
  *n_out = n;
  return LSC_OK;
}

/* A copy of a label too long for its room, made before the lock is taken: *v NULL when it fits
 * (or LSC_ENOMEM). */
static int label_copy(const char *p, size_t n, char **v) {
  *v = n >= LS_LABEL_INLINE ? copy_n(p, n) : NULL;
  return n >= LS_LABEL_INLINE && !*v ? LSC_ENOMEM : LSC_OK;
}

static int set_label(ls_session *s, char **cur, char **sending, char *room, size_t *n_out, const char *p, size_t n) {
  char *v;
  if (label_copy(p, n, &v)) return LSC_ENOMEM;
  pthread_mutex_lock(&s->c->mu);
  int rc = set_label_locked(s, cur, sending, room, n_out, p, n, v);
  pthread_mutex_unlock(&s->c->mu);
  return rc;
}

int ls_session_set_route(ls_session *s, const char *route, size_t n) {
  return set_label(s, &s->route, &s->route_sending, s->route_room, &s->route_n, route, n);
}

/* Only a named session (ls_session_begin) has a name to replace: LSC_EINVAL for one opened with a
 * whole meta (ls_session_open), whose owner sets a new meta instead. */
int ls_session_set_name(ls_session *s, const char *name, size_t n) {
  if (!s->name) return LSC_EINVAL;
  return set_label(s, &s->name, &s->name_sending, s->name_room, &s->name_n, name, n);
}

void ls_session_set_loop(ls_session *s, uint64_t loop) {
  pthread_mutex_lock(&s->c->mu);
  s->loop = loop;
  pthread_mutex_unlock(&s->c->mu);
}

int ls_session_close(ls_session *s, uint64_t t_end) { return ls_session_close_routed(s, t_end, NULL, 0); }

/* The end record, the route and closed, under one hold of the lock (a web request's end took it
 * twice or three times: the route, a new chunk for the end, closed): the sender, which reads the
 * route when it builds a batch, finds it set before the end record is published. */
int ls_session_close_routed(ls_session *s, uint64_t t_end, const char *route, size_t route_n) {
  ls_collector *c = s->c;
  char *long_route = NULL;
  int rc_route = route ? label_copy(route, route_n, &long_route) : LSC_OK;
  pthread_mutex_lock(&c->mu);
  if (s->closed) {
    pthread_mutex_unlock(&c->mu);
    free(long_route);
    return LSC_ECLOSED;
  }
  if (route && rc_route == LSC_OK)
    rc_route = set_label_locked(s, &s->route, &s->route_sending, s->route_room, &s->route_n, route, route_n,
                                long_route);
  ls_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = LS_K_END;
  ev.t = t_end;
  uint64_t pub;
  chunk *w = room_for(s, LS_STEP_BOUND, &pub);
  if (w) published(s, w, pub, ls_record_write(w->data + PUB_LEN(pub), &ev, &s->ws));
  else emit_new_chunk_locked(s, &ev, NULL, LS_STEP_BOUND);
  s->closed = 1; /* no wake-up: the sender comes by within flush_interval_ms (a futex call per
                  * request would cost more than the rest of closing) */
  /* Queued or being sent, the sender settles it when that send ends. Otherwise here, into the
   * ready queue with its end record: records published without the lock queue nothing, and a
   * send that settled s while still open would not come by for it again. */
  if (!s->sending && !s->queued) ls_store_settle(c, s);
  pthread_mutex_unlock(&c->mu);
  return rc_route;
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
  c->meta_static = cfg->meta_static ? strdup(cfg->meta_static) : NULL;
  int rc = !c->url || (cfg->token && !c->token) || (cfg->meta_static && !c->meta_static) ? LSC_ENOMEM : LSC_OK;
  c->cfg.url = c->url;
  c->cfg.token = c->token;
  c->cfg.meta_static = c->meta_static;
  c->cfg.sink_path = NULL; /* not kept: only the open file is */
  if (!rc && cfg->sink_path && !(c->sink = fopen(cfg->sink_path, "ab"))) rc = LSC_EINVAL;
  if (!rc) rc = ls_intern_new(&c->strings);
  if (!rc) rc = ls_sender_start(c);
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
  ls_deadline_after(&ts, timeout_ms);
  int rc = LSC_OK;
  pthread_mutex_lock(&c->mu);
  ls_sender_scan_ready(c);
  c->flush_waiters++; /* the sender sends at once, not paced */
  pthread_cond_signal(&c->wake);
  while (ls_sender_busy(c)) {
    if (pthread_cond_timedwait(&c->idle, &c->mu, &ts) == ETIMEDOUT) {
      rc = ls_sender_busy(c) ? LSC_ETIMEDOUT : LSC_OK;
      break;
    }
  }
  c->flush_waiters--;
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
    ls_store_session_free(c, s);
    s = n;
  }
  spares_free(c);
  ls_intern_free(c->strings);
  ls_strtab_free(&c->strtab);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle);
  free(c->url);
  free(c->token);
  free(c->meta_static);
  free(c);
}

void ls_collector_stats(ls_collector *c, ls_stats *out) {
  pthread_mutex_lock(&c->mu);
  *out = c->st;
  out->bytes_used = c->bytes_used;
  for (const ls_session *s = c->sessions; s; s = s->next) {
    out->sessions++;
    out->events += atomic_load_explicit(&s->events, memory_order_relaxed);
    if (ls_store_has_unsent(s) || s->dropped != s->dropped_sent) out->sessions_pending++;
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
    ls_store_session_free(c, s);
    s = n;
  }
  c->sessions = NULL;
  c->ready_head = c->ready_tail = NULL;
  c->nqueued = 0;
  c->sending = 0;
  c->kicked = 0;
  c->flush_waiters = 0; /* a parent's thread inside a flush is not in the child */
  memset(&c->next_post, 0, sizeof c->next_post);
  c->bytes_used = 0;
  memset(&c->st, 0, sizeof c->st);
  c->thread_running = 0;
  ls_http_free(c->http);
  c->http = NULL;
  /* the sink is the parent's file: the child writes nothing there (every batch is flushed when
   * written, so closing sends no buffered bytes of the parent's twice) */
  if (c->sink) fclose(c->sink);
  c->sink = NULL;
  int rc = ls_sender_start(c);
  return rc;
}
