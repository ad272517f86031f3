/* lssender.c — the sender thread: takes what the store (lscollector.c) published, session by
 * session, encodes each session's share as one v1 batch (lsencode.c) and POSTs the batches of
 * several sessions together as one multi-batch body (docs/api.md, "Several batches in one body"),
 * retrying with the same batch ids; one batch per POST to a server that refuses that shape. How
 * events are recorded and kept is lscollector.c's, the HTTP client lshttp.c's.
 *
 * To a server whose answers say X-Loopscope-Ingest: records, the same batches go in the binary
 * record form (docs/api.md, "Binary record bodies"): "LSR1" and the batches back to back, each its
 * header and then its events, which are written first into a buffer of their own because the
 * header counts them. A refusal of that form (an older server put in this one's place) sends the
 * batches again as JSON.
 *
 * Batching by time and size: the sender wakes every flush_interval_ms (or on a flush, or a kick
 * when the buffer fills) and takes every session that has something to send, up to
 * batches_per_post sessions, POST_EVENTS_MAX events and BATCH_JSON_MAX bytes of JSON per POST.
 * A burst of small sessions (one per web request) thus costs a POST per wake-up, not one per
 * session. While sessions keep closing, POSTs start at least flush_interval_ms / 4 apart (pace):
 * without that, the sessions that closed during one POST went out at once in the next, so the
 * faster the server answered, the more and smaller the POSTs, and every POST costs the server a
 * transaction (~0.5 ms of its CPU: with the binary form's quicker answers, 34-277 POSTs for 3,000
 * sessions instead of 4-9). A flush, a kick or stopping sends at once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsstore.h"

/* Events in one POST at most: the server takes 100000 per body, its batches together, and each
 * batch may add a drop event; a session beyond what is left waits for the next POST (one session
 * alone still goes whole, as a single batch always did). */
#define POST_EVENTS_MAX 50000
/* cfg.batches_per_post's default: sessions per POST at most (the server takes 10000). */
#define POST_BATCHES_DEFAULT 1000

/* One session's batch in a POST: what take_part snapshotted of it and where its JSON lies. */
typedef struct part {
  ls_session *s;
  chunk *first, *last;       /* chunks whose [sent, snap) goes out; last NULL: none */
  uint64_t dropped_now, drop_delta, unreadable, seq;
  size_t nev;                /* records encoded */
  size_t off, len;           /* its batch's JSON in the body; len 0: not encoded (no room left) */
  size_t cap;                /* post_max when it was encoded (too_large_alone) */
  const char *meta;          /* valid until the send ends (ls_session_set_meta keeps it) */
  const char *route;         /* the same for the route (ls_session_set_route), or NULL */
  size_t route_n;
  const char *name;          /* the same for a named session's name, or NULL (meta instead) */
  size_t name_n;
  uint64_t loop;             /* its loop's number then */
  int delivered, retryable;
  int strings;               /* its batch names its table strings by index (c->strtab) */
  ls_rstate rs0;             /* the session's record state before it was encoded (rewind_part) */
} part;

int ls_sender_busy(const ls_collector *c) { return c->nqueued > 0 || c->sending; }

/* Queues every session with published records not yet shipped: the writer publishes without the
 * mutex, so the ready queue alone does not know of them. O(sessions), once per wake-up. mu held. */
void ls_sender_scan_ready(ls_collector *c) {
  for (ls_session *s = c->sessions; s; s = s->next)
    if (!s->queued && !s->sending && ls_store_has_unsent(s)) ls_store_enqueue(c, s);
}

/* Sleeps up to ms unless stopped; returns 1 when asked to stop. Called with mu held. */
static int sender_sleep(ls_collector *c, int ms) {
  struct timespec ts;
  ls_deadline_after(&ts, ms);
  while (!c->stop) {
    if (pthread_cond_timedwait(&c->wake, &c->mu, &ts) == ETIMEDOUT) break;
  }
  return c->stop;
}

/* The records of s a batch would take now: what is published, chunk by chunk, up to batch_max
 * bytes of records. With p, they are taken: [sent, snap) of each chunk from p->first to p->last.
 * The writer may go on appending above snap meanwhile, and link new chunks after the last one.
 * Returns the number of records. mu held. */
static size_t snapshot(ls_collector *c, ls_session *s, part *p) {
  ls_store_prune(c, s);
  chunk *last = NULL;
  size_t rec_bytes = 0, nev = 0;
  for (chunk *ch = s->head; ch; ch = ch->next) {
    uint64_t pub = atomic_load_explicit(&ch->pub, memory_order_acquire);
    size_t n = PUB_LEN(pub) - ch->sent;
    if (last && rec_bytes + n > c->cfg.batch_max) break;
    last = ch;
    rec_bytes += n;
    nev += PUB_NEV(pub) - ch->sent_nev;
    if (p) {
      ch->snap = PUB_LEN(pub);
      ch->snap_nev = PUB_NEV(pub);
    }
  }
  if (p) {
    memset(p, 0, sizeof *p);
    p->s = s;
    p->first = s->head;
    p->last = last;
    p->dropped_now = s->dropped;
    p->drop_delta = s->dropped - s->dropped_sent;
    p->meta = s->meta;
    p->route = s->route;
    p->route_n = s->route_n;
    p->name = s->name;
    p->name_n = s->name_n;
    p->loop = s->loop;
    p->seq = ++c->batch_seq;
    s->sending = 1;
  }
  return nev;
}

/* n bytes of JSON string value, cut at 1 KiB (names and routes are labels, not payloads). */
static void put_label(ls_buf *body, const char *v, size_t n) { ls_buf_jstr(body, v, n > 1024 ? 1024 : n); }

/* ,"fraction":0.D..D: ppm (1..999999) millionths as a decimal, trailing zeros dropped (100000:
 * 0.1), which the server reads back to the same millionths (docs/api.md, endpoints). */
static void put_fraction(ls_buf *body, uint32_t ppm) {
  char d[32] = ",\"fraction\":0.";
  size_t n = strlen(d);
  for (uint32_t div = 100000; div && ppm; div /= 10) {
    d[n++] = (char)('0' + ppm / div);
    ppm %= div;
  }
  d[n] = 0;
  ls_buf_puts(body, d);
}

/* The session's meta object: a named session's written from its fields, else the meta it was
 * given; with its route, when it has one, as one more field "route". Every meta is an object,
 * "{}" at least. */
static void put_meta(ls_buf *body, const ls_collector *c, const part *p, uint64_t pid) {
  const char *meta = p->meta, *sep = ",";
  size_t n = meta ? strlen(meta) : 0;
  if (p->name) {
    ls_buf_puts(body, "{\"name\":");
    put_label(body, p->name, p->name_n);
    ls_buf_puts(body, ",\"pid\":");
    ls_buf_u64(body, pid);
    if (p->loop) {
      ls_buf_puts(body, ",\"loop\":");
      ls_buf_u64(body, p->loop);
    }
    ls_buf_puts(body, ",\"started_unix_ns\":\"");
    ls_buf_u64(body, p->s->wall_ns);
    ls_buf_puts(body, "\"");
    if (p->s->fraction_ppm) put_fraction(body, p->s->fraction_ppm);
    if (c->meta_static) ls_buf_puts(body, c->meta_static);
  } else if (!p->route || n < 2 || meta[n - 1] != '}') {
    ls_buf_puts(body, meta);
    return;
  } else {
    ls_buf_append(body, meta, n - 1);
    if (meta[n - 2] == '{') sep = "";
  }
  if (p->route) {
    ls_buf_puts(body, sep);
    ls_buf_puts(body, "\"route\":");
    put_label(body, p->route, p->route_n);
  }
  ls_buf_puts(body, "}");
}

/* Scratch space for the binary record form's batches (send_group's, reused from batch to batch):
 * a batch's events and its meta's JSON text, both written before its header. */
typedef struct wire_bufs {
  ls_buf events, meta;
} wire_bufs;

/* The binary form's header of p's batch, then its events (w->events), appended to body. */
static void put_wire_batch(ls_buf *body, wire_bufs *w, const ls_wirestate *ws, const ls_strtab *st,
                           const ls_collector *c, const part *p, uint64_t pid) {
  const ls_session *s = p->s;
  char id[192];
  int n = snprintf(id, sizeof id, "b-%llu-%llu-%s", (unsigned long long)pid, (unsigned long long)p->seq, s->id);
  ls_wire_str(body, id, n < 0 ? 0 : (size_t)n < sizeof id ? (size_t)n : sizeof id - 1);
  ls_wire_str(body, s->id, strlen(s->id));
  ls_buf_reset(&w->meta);
  put_meta(&w->meta, c, p, pid);
  ls_wire_str(body, w->meta.data, w->meta.len);
  if (st) ls_strtab_write_wire(body, st, s->rs.strings);
  else ls_wire_v(body, 0);
  for (int i = 0; i < LS_WIRE_COUNTS; i++) ls_wire_v(body, ws->counts[i]);
  ls_buf_append(body, w->events.data, w->events.len);
  if (w->events.failed || w->meta.failed) body->failed = w->events.failed ? w->events.failed : w->meta.failed;
}

/* The bytes a POST holds at most: BATCH_JSON_MAX, or less once the server refused a lone batch
 * as too large (c->post_cap, only ever set below this). Sender thread. */
static size_t post_max(const ls_collector *c) { return c->post_cap ? c->post_cap : BATCH_JSON_MAX; }

/* Appends p's batch to body (mu free): what p took, as v1 JSON, or in the binary record form when
 * w is given, stopping once the POST holds post_max(c) bytes (having taken one record at least,
 * so a batch can pass it by a record): the rest of the snapshot is given back, snap lowered to what
 * went in; p->cap keeps the bound it was written under. pid: this
 * process's (send_group asks once per POST, not a system call per session). */
static void encode_part(ls_buf *body, wire_bufs *w, ls_collector *c, part *p, uint64_t pid) {
  ls_session *s = p->s;
  /* a batch's strings table only to a server that said it takes one (the binary form always
   * has one, made or not: strings inline); the sink's lines (read back by anything that reads v1)
   * stay plain */
  ls_strtab *st = (c->strings_ok || w) && !c->sink && c->strtab.stamp ? &c->strtab : NULL;
  if (st) ls_strtab_begin(st);
  p->strings = st != NULL;
  p->rs0 = s->rs;
  p->off = body->len;
  ls_buf *out = body;
  ls_wirestate ws;
  size_t before = 0; /* the POST's bytes before out's */
  if (w) {
    out = &w->events;
    ls_buf_reset(out);
    ls_wire_begin(&ws);
    before = body->len;
  } else {
    ls_buf_puts(body, "{\"v\":1,\"batch\":\"b-");
    ls_buf_u64(body, pid);
    ls_buf_puts(body, "-");
    ls_buf_u64(body, p->seq);
    ls_buf_puts(body, "-");
    ls_buf_puts(body, s->id); /* session ids are [A-Za-z0-9-] (checked at open) */
    ls_buf_puts(body, "\",\"session\":");
    ls_buf_jstr(body, s->id, strlen(s->id));
    ls_buf_puts(body, ",\"meta\":");
    put_meta(body, c, p, pid);
    ls_buf_puts(body, ",\"events\":[");
  }
  p->cap = post_max(c);
  size_t max_out = p->cap > before ? p->cap - before : 1;
  /* in order: the record state s->rs runs from one record to the next */
  int first_ev = 1, full = 0;
  for (chunk *ch = p->first; p->last; ch = ch->next) { /* links up to last were set before the snapshot */
    size_t avail = ch->snap - ch->sent, used = 0, k = 0;
    if (full || (p->nev && out->len >= max_out)) {
      full = 1;
    } else {
      const unsigned char *rec = ch->data + ch->sent;
      int erc = w ? ls_encode_records_wire(out, &s->rs, st, &ws, rec, avail, max_out, &used, &k)
                  : ls_encode_records_tab(out, &s->rs, st, rec, avail, &first_ev, max_out, &used, &k);
      if (erc == LSC_EINVAL) { /* cannot happen with records lscollector.c wrote: skip the chunk's rest */
        p->unreadable += (ch->snap_nev - ch->sent_nev) - k;
        used = avail;
      } else if (used < avail) {
        full = 1;
      }
    }
    ch->snap = ch->sent + used;
    ch->snap_nev = full ? ch->sent_nev + k : ch->snap_nev;
    p->nev += k;
    if (ch == p->last) break;
  }
  if (w) {
    if (p->drop_delta) ls_wire_drop(out, &ws, p->drop_delta);
    put_wire_batch(body, w, &ws, st, c, p, pid);
  } else {
    if (p->drop_delta) {
      ls_buf_puts(body, first_ev ? "{\"k\":\"drop\",\"n\":" : ",{\"k\":\"drop\",\"n\":");
      ls_buf_u64(body, p->drop_delta);
      ls_buf_puts(body, "}");
    }
    ls_buf_puts(body, "]");
    if (st) ls_strtab_write(body, st, s->rs.strings);
    ls_buf_puts(body, "}");
  }
  p->len = body->len - p->off;
}

/* p stays out of this POST (no room left): nothing of it is taken, its drop count not reported. */
static void skip_part(part *p) {
  for (chunk *ch = p->first; p->last; ch = ch->next) {
    ch->snap = ch->sent;
    ch->snap_nev = ch->sent_nev;
    if (ch == p->last) break;
  }
  p->drop_delta = 0;
  p->dropped_now = p->s->dropped_sent;
  p->len = 0;
}

/* p's batch was written and not stored: everything it took goes back, as if it had stayed out of
 * the POST (skip_part), the session's record state as before it was encoded. */
static void rewind_part(part *p) {
  p->s->rs = p->rs0;
  skip_part(p);
}

/* What the server's last 2xx answer said it takes beyond plain v1: later batches are written with
 * a strings table, and POSTs in the binary record form, while it says so (an older server put in
 * its place says nothing). The table is made on the first such answer; without the memory,
 * batches name every string inline. Sender thread. */
static void takes_forms(ls_collector *c, const ls_http_result *res) {
  int strings = res->takes_strings || res->takes_records;
  if (strings && !c->strtab.stamp && ls_strtab_init(&c->strtab) != LSC_OK) strings = 0;
  c->strings_ok = strings && res->takes_strings;
  c->records_ok = res->takes_records;
}

/* POSTs body (mu free on entry and exit; wire: in the binary record form), retrying what may pass later (no answer, 5xx, 408,
 * 429) with backoff, and a few quick tries only once stopping. 1 when answered 2xx; otherwise 0,
 * *retryable saying whether the refusal was of that kind and *res holding the last answer. */
static int post(ls_collector *c, const char *body, size_t len, int wire, int *retryable, ls_http_result *res) {
  int backoff_ms = 100, stopping_tries = 0;
  *res = (ls_http_result){0, -1, "", 0, 0};
  *retryable = 1;
  if (c->giving_up) return 0; /* the sender thread alone sets it: an exit gave up on the server */
  for (;;) {
    *res = (ls_http_result){0, -1, "", 0, 0};
    int rc = c->http ? ls_http_post(c->http, body, len, wire, res) : LSC_ESYS;
    pthread_mutex_lock(&c->mu);
    c->st.last_status = rc == LSC_OK ? res->status : 0;
    if (rc == LSC_OK && res->status >= 200 && res->status < 300) {
      c->st.posts_sent++;
      pthread_mutex_unlock(&c->mu);
      takes_forms(c, res);
      return 1;
    }
    c->st.posts_failed++;
    /* 4xx other than 408/429 will not get better by retrying */
    *retryable = rc != LSC_OK || res->status >= 500 || res->status == 408 || res->status == 429;
    if (!*retryable || c->giving_up) { pthread_mutex_unlock(&c->mu); return 0; }
    int wait_ms = backoff_ms;
    if (res->retry_after_s >= 0) wait_ms = (res->retry_after_s > 30 ? 30 : res->retry_after_s) * 1000;
    if (wait_ms < 50) wait_ms = 50;
    backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
    c->st.retries++;
    if (c->stop) {
      /* Shutting down: a few more quick tries, then give up rather than hang the exit. */
      if (++stopping_tries > 3) {
        c->giving_up = 1;
        pthread_mutex_unlock(&c->mu);
        return 0;
      }
      struct timespec ts;
      ls_deadline_after(&ts, 50);
      pthread_cond_timedwait(&c->wake, &c->mu, &ts);
    } else {
      sender_sleep(c, wait_ms);
    }
    pthread_mutex_unlock(&c->mu);
  }
}

/* 1 when a 400 answer is an older server's to a multi-batch body: it reads the body as one batch
 * and finds no "batch" (server/ingest.c checks v, then batch). A newer server names
 * "batches[i]...." for a bad batch inside, or "batches..." for the list itself. */
static int refuses_the_shape(const ls_http_result *res) {
  return res->status == 400 && strstr(res->answer, "\"detail\":\"batch: missing\"") != NULL;
}

/* 1 when a batch of the parts in the body names its strings by index. */
static int any_named(const part *parts, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (parts[i].len && parts[i].strings) return 1;
  return 0;
}

/* One more POST stored: its batches named their strings by index (named), it was in the binary
 * record form (wire). mu free. */
static void count_post(ls_collector *c, int delivered, int named, int wire) {
  if (!delivered || (!named && !wire)) return;
  pthread_mutex_lock(&c->mu);
  c->st.strings_posts += named != 0;
  c->st.records_posts += wire != 0;
  pthread_mutex_unlock(&c->mu);
}

/* A body in a form beyond plain v1, refused: in the binary record form (wire) with 400 or 415, or
 * whose batches named their strings by index with 400. A server that no longer takes the form (an
 * older one started in its place) refuses every such body. The batches go back (rewind_part:
 * nothing of a refused body is stored) and the next POST carries them in the plainer form: JSON
 * first, then without the table; a batch bad for another reason is then refused plain, as before.
 * Answers whether that was so (the parts are then rewound, none delivered). mu free. */
static int form_refused(ls_collector *c, const ls_http_result *res, part *parts, size_t n, int wire) {
  int records = wire && (res->status == 400 || res->status == 415);
  if (!records && (res->status != 400 || !any_named(parts, n))) return 0;
  if (records) c->records_ok = 0;
  else c->strings_ok = 0;
  for (size_t i = 0; i < n; i++)
    if (parts[i].len) {
      rewind_part(&parts[i]);
      parts[i].delivered = 0;
    }
  pthread_mutex_lock(&c->mu);
  if (records) c->st.records_refused++;
  else c->st.strings_refused++;
  pthread_mutex_unlock(&c->mu);
  return 1;
}

/* A server with a --max-body below a batch's size refuses it alone with 413. A batch of one
 * event is lost then, as before (counted in dropped and batches_failed); a larger one goes back
 * (rewind_part: nothing of it was stored) and POSTs are kept from then on to half its size, so it
 * goes out again in two batches or more, down to POST_CAP_MIN. Answers whether p went back.
 * It ends: p goes back only when the cap comes down or p was written under a higher one than now,
 * and the cap comes down at most log2(BATCH_JSON_MAX / POST_CAP_MIN) times (a batch can pass the
 * cap by a record, so one written under today's cap and refused is lost, not written again the
 * same). mu free. */
#define POST_CAP_MIN ((size_t)1024)
static int too_large_alone(ls_collector *c, const ls_http_result *res, part *p) {
  if (res->status != 413 || p->nev < 2) return 0;
  size_t want = p->len / 2 > POST_CAP_MIN ? p->len / 2 : POST_CAP_MIN;
  if (want < post_max(c)) c->post_cap = want;
  else if (p->cap <= post_max(c)) return 0;
  rewind_part(p);
  p->delivered = 0;
  pthread_mutex_lock(&c->mu);
  c->st.shrunk_posts++;
  c->st.post_cap = c->post_cap;
  pthread_mutex_unlock(&c->mu);
  return 1;
}

/* POSTs p's batch alone: as it lies in body; in the binary form behind the magic, which is the
 * body itself when p is all it holds (a POST of one batch), else a copy. */
static int post_part(ls_collector *c, const ls_buf *body, part *p, int wire, ls_http_result *res) {
  if (!wire) return post(c, body->data + p->off, p->len, 0, &p->retryable, res);
  if (p->off == sizeof LS_WIRE_MAGIC - 1 && p->off + p->len == body->len)
    return post(c, body->data, body->len, 1, &p->retryable, res);
  ls_buf one;
  ls_buf_init(&one, p->len + sizeof LS_WIRE_MAGIC);
  ls_buf_puts(&one, LS_WIRE_MAGIC);
  ls_buf_append(&one, body->data + p->off, p->len);
  int ok = 0;
  if (one.failed) {
    *res = (ls_http_result){0, -1, "", 0, 0};
    p->retryable = 1;
  } else {
    ok = post(c, one.data, one.len, 1, &p->retryable, res);
  }
  ls_buf_free(&one);
  return ok;
}

/* Delivers the encoded parts: one POST of their multi-batch body (one part: its plain v1 batch);
 * when that body is refused for its shape or size (400, 413), each batch in a POST of its own,
 * so a bad or large batch loses only itself. Sets each part's delivered and retryable. mu free. */
static void deliver(ls_collector *c, ls_buf *body, part *parts, size_t n, size_t nenc, int wire) {
  ls_http_result res;
  int retryable = 1, ok;
  if (nenc == 1) {
    for (size_t i = 0; i < n; i++)
      if (parts[i].len) {
        parts[i].delivered = post_part(c, body, &parts[i], wire, &res);
        if (!parts[i].delivered && form_refused(c, &res, &parts[i], 1, wire)) return;
        if (!parts[i].delivered && too_large_alone(c, &res, &parts[i])) continue;
        count_post(c, parts[i].delivered, parts[i].strings, wire);
      }
    return;
  }
  ok = post(c, body->data, body->len, wire, &retryable, &res);
  if (!ok && form_refused(c, &res, parts, n, wire)) return;
  count_post(c, ok, any_named(parts, n), wire);
  int one_by_one = !ok && (res.status == 400 || res.status == 413);
  if (one_by_one) {
    pthread_mutex_lock(&c->mu);
    c->st.split_posts++;
    if (refuses_the_shape(&res) && !c->multi_refused) {
      c->multi_refused = 1; /* from now on one batch per POST: the server is older than the shape */
      c->st.multi_refused = 1;
    }
    pthread_mutex_unlock(&c->mu);
  }
  int refused = 0; /* one alone was refused for its form: the rest go next time, in the plainer one */
  for (size_t i = 0; i < n; i++) {
    part *p = &parts[i];
    if (!p->len) continue;
    if (!one_by_one) {
      p->delivered = ok;
      p->retryable = retryable;
    } else if (refused) {
      rewind_part(p);
      p->delivered = 0;
    } else {
      p->delivered = post_part(c, body, p, wire, &res);
      if (!p->delivered && form_refused(c, &res, p, 1, wire)) {
        refused = 1;
        continue;
      }
      if (!p->delivered && too_large_alone(c, &res, p)) continue;
      count_post(c, p->delivered, p->strings, wire);
    }
  }
}

/* After the POST(s): each part's chunks advance past what it took, delivered or given up on
 * (then its events count as dropped), and its session goes back to the queue or away. mu held. */
static void finish_part(ls_collector *c, part *p) {
  ls_session *s = p->s;
  s->dropped += p->unreadable;
  c->st.dropped += p->unreadable;
  if (p->delivered) {
    c->st.batches_sent++;
    s->dropped_sent = p->dropped_now;
    s->shipped_once = 1;
  } else if (p->len) {
    /* The batch is lost (refused, too large to encode, or given up on at exit): its events count
     * as dropped, and ls_store_settle queues the session again so that a drop event carrying them
     * (and the drop count this batch failed to report) goes out with the next batch. A batch
     * with no events that was refused for good would be refused again: its count stays in the
     * stats but is not sent again, or the session would be retried forever. */
    c->st.batches_failed++;
    s->dropped += p->nev;
    c->st.dropped += p->nev;
    if (!p->nev && !p->retryable) s->dropped_sent = s->dropped;
  }
  for (chunk *ch = p->first; p->last; ch = ch->next) { /* shipped or given up on: either way done */
    ch->sent = ch->snap;
    ch->sent_nev = ch->snap_nev;
    if (ch == p->last) break;
  }
  free(s->meta_sending);
  s->meta_sending = NULL;
  ls_store_label_free(s, s->route_sending);
  s->route_sending = NULL;
  ls_store_label_free(s, s->name_sending);
  s->name_sending = NULL;
  s->sending = 0;
  ls_store_settle(c, s);
}

/* Takes the ready sessions (up to max of them and POST_EVENTS_MAX events), encodes and delivers
 * them. mu held on entry and exit, released while encoding and posting. */
static void send_group(ls_collector *c, part *parts, size_t max) {
  size_t n = 0, events = 0;
  if (c->multi_refused) max = 1;
  while (n < max && c->ready_head) {
    size_t pending = snapshot(c, c->ready_head, NULL);
    if (n && events + pending > POST_EVENTS_MAX) break;
    ls_session *s = ls_store_dequeue(c);
    snapshot(c, s, &parts[n++]);
    events += pending;
  }
  c->sending = 1;
  pthread_mutex_unlock(&c->mu);

  /* the sink's lines are JSON, and so is every POST beside one */
  int wire = c->records_ok && !c->sink && !c->cfg.offline;
  wire_bufs w;
  ls_buf body;
  ls_buf_init(&body, BATCH_JSON_MAX + BATCH_JSON_SLACK);
  if (wire) {
    ls_buf_init(&w.events, BATCH_JSON_MAX + BATCH_JSON_SLACK);
    ls_buf_init(&w.meta, BATCH_JSON_MAX);
    ls_buf_puts(&body, LS_WIRE_MAGIC);
  } else {
    ls_buf_puts(&body, "{\"v\":1,\"batches\":[");
  }
  uint64_t pid = (uint64_t)getpid();
  size_t nenc = 0;
  for (size_t i = 0; i < n; i++) {
    if (nenc && body.len >= post_max(c)) {
      skip_part(&parts[i]); /* goes in the next POST */
      continue;
    }
    if (nenc && !wire) ls_buf_puts(&body, ",");
    encode_part(&body, wire ? &w : NULL, c, &parts[i], pid);
    nenc++;
  }
  if (wire) {
    ls_buf_free(&w.events);
    ls_buf_free(&w.meta);
  } else {
    ls_buf_puts(&body, "]}");
  }
  for (size_t i = 0; i < n; i++) parts[i].retryable = 1;
  if (!body.failed && c->sink) { /* one v1 batch per line, flushed: a crash later keeps what was written */
    int ok = 1;
    for (size_t i = 0; i < n; i++)
      if (parts[i].len)
        ok &= fwrite(body.data + parts[i].off, 1, parts[i].len, c->sink) == parts[i].len && fputc('\n', c->sink) != EOF;
    ok &= fflush(c->sink) == 0;
    pthread_mutex_lock(&c->mu);
    if (ok) c->st.batches_saved += nenc;
    else c->st.sink_errors++;
    pthread_mutex_unlock(&c->mu);
  }
  if (!body.failed && c->cfg.offline) {
    for (size_t i = 0; i < n; i++) parts[i].delivered = parts[i].len > 0;
  } else if (!body.failed) {
    deliver(c, &body, parts, n, nenc, wire);
  }
  ls_buf_free(&body);

  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < n; i++) finish_part(c, &parts[i]);
  c->sending = 0;
}

/* Waits, before a POST, until flush_interval_ms / 4 has passed since the last one started, unless
 * a flush waits, the buffer is filling (kicked), or the collector stops: 1 when it waited (the
 * caller looks again at what is ready), 0 to send now. mu held. */
static int pace(ls_collector *c) {
  struct timespec now, latest;
  clock_gettime(CLOCK_REALTIME, &now);
  ls_deadline_after(&latest, c->cfg.flush_interval_ms / 4);
  struct timespec *next = &c->next_post;
  if (next->tv_sec > latest.tv_sec || (next->tv_sec == latest.tv_sec && next->tv_nsec > latest.tv_nsec))
    *next = latest; /* the clock was set back (the condition variable keeps CLOCK_REALTIME) */
  int early = now.tv_sec < next->tv_sec || (now.tv_sec == next->tv_sec && now.tv_nsec < next->tv_nsec);
  if (early && !c->flush_waiters && !c->kicked && !c->stop) {
    pthread_cond_timedwait(&c->wake, &c->mu, next);
    ls_sender_scan_ready(c);
    return 1;
  }
  ls_deadline_after(&c->next_post, c->cfg.flush_interval_ms / 4);
  return 0;
}

static void *sender_main(void *arg) {
  ls_collector *c = arg;
  size_t max = c->cfg.batches_per_post > 0 ? (size_t)c->cfg.batches_per_post : POST_BATCHES_DEFAULT;
  part one, *parts = max > 1 ? malloc(max * sizeof *parts) : NULL;
  if (!parts) { /* one batch per POST still delivers everything */
    parts = &one;
    max = 1;
  }
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->stop && c->giving_up) break;
    if (c->ready_head) {
      if (pace(c)) continue;
      c->kicked = 0; /* taken now: a kick during the POST (the buffer still filling) sends the next at once */
      send_group(c, parts, max);
      if (!ls_sender_busy(c)) pthread_cond_broadcast(&c->idle);
      continue;
    }
    pthread_cond_broadcast(&c->idle);
    if (c->stop) break;
    struct timespec ts;
    ls_deadline_after(&ts, c->cfg.flush_interval_ms);
    pthread_cond_timedwait(&c->wake, &c->mu, &ts);
    ls_sender_scan_ready(c); /* woken by time, a flush or a kick: what the writers published meanwhile */
  }
  pthread_mutex_unlock(&c->mu);
  if (parts != &one) free(parts);
  return NULL;
}

int ls_sender_start(ls_collector *c) {
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
