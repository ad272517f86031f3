/* lsstore.h — the collector core's own structures, shared by its two halves and by nothing
 * else: lscollector.c (sessions, chunks, the bounded store, the collector's life) and lssender.c
 * (the sender thread that encodes and POSTs what the store holds). Not an API: lscore.h is. */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "lscore.h"
#include "lshttp.h"

#define CHUNK_MIN 1024
#define LS_LABEL_INLINE 96     /* a session's name or route this long (NUL included) needs no malloc */
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
  char *meta;                  /* encoded JSON object, owned; NULL for a named session (name) */
  char *meta_sending;          /* an earlier meta the sender is still encoding (ls_session_set_meta
                                * replaced it mid-send), freed when that send ends; or NULL */
  char *route;                 /* the route template (ls_session_set_route, owned, route_n bytes)
                                * the sender adds to the meta as "route", or NULL */
  size_t route_n;
  char *route_sending;         /* an earlier route the sender is still encoding, as meta_sending */
  char *name;                  /* a named session's name (ls_session_begin, ls_session_set_name;
                                * owned, name_n bytes): the sender writes its meta from it, loop,
                                * wall_ns and cfg.meta_static; NULL when meta is set instead */
  size_t name_n;
  char *name_sending;          /* an earlier name the sender is still encoding, as meta_sending */
  uint64_t loop;               /* meta.loop, 0: not known (set under mu) */
  uint64_t wall_ns;            /* meta.started_unix_ns (fixed at open) */
  uint32_t fraction_ppm;       /* meta.fraction in millionths, 0: none (fixed at open) */
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
  /* Rooms for a name and a route up to LS_LABEL_INLINE - 1 bytes (a request's "GET /users/42"
   * and "GET /users/{id}"), so that opening and routing a request's session allocate nothing:
   * name and route point here, or to a malloc'd copy when longer or when the room is still
   * being read by a send in progress. Last in the struct: not zeroed when a session is reused. */
  char name_room[LS_LABEL_INLINE];
  char route_room[LS_LABEL_INLINE];
};

struct ls_collector {
  pthread_mutex_t mu;
  pthread_cond_t wake;         /* the sender waits on it */
  pthread_cond_t idle;         /* flushers wait on it */
  pthread_t thread;
  int thread_running, stop;
  int giving_up;               /* stopping and the server does not answer: ship nothing more */
  int kicked;                  /* the sender was woken for a filling buffer and has not run since */
  int flush_waiters;           /* callers inside ls_collector_flush: the sender does not pace */
  struct timespec next_post;   /* CLOCK_REALTIME: the earliest start of the next paced POST
                                * (lssender.c, pace) */
  ls_config cfg;
  char *url, *token;
  char *meta_static;           /* cfg.meta_static's copy, or NULL */
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
  int multi_refused;           /* the server refused a multi-batch body for its shape: one batch
                                * per POST from then on (sender thread) */
  int strings_ok;              /* the last answer said the server takes a batch's strings table
                                * (X-Loopscope-Ingest): batches are written so (sender thread) */
  ls_strtab strtab;            /* the table of the batch being written; allocated on the first
                                * such answer, freed with the collector (sender thread) */
  int records_ok;              /* ... and that it takes bodies in the binary record form: POSTs
                                * are written so (sender thread) */
  size_t post_cap;             /* 0: POSTs hold up to BATCH_JSON_MAX bytes; else the server refused
                                * a lone batch as too large (413) and they are kept to this, half
                                * that batch, for the collector's life (sender thread) */
  /* Sent chunks kept for reuse, one list per power-of-two size, while unsent and spare bytes
   * together stay within buffer_cap. The loop thread allocates chunks and the sender frees them
   * later: with plain malloc/free, memory freed in bulk went back to the kernel and the loop
   * thread page-faulted it in again (measured: ~2700 faults per 1500 requests, ~5% of its time). */
  chunk *spare[CHUNK_CLASSES];
  /* Sessions freed by the sender kept for the next ones (linked by next), for the same reason:
   * a session per web request, malloc'd by the loop thread and freed by the sender, went through
   * glibc's arena bins every time (~1 us a request on Litestar, perf). Counted in spare_bytes. */
  ls_session *spare_sessions;
  size_t spare_bytes;          /* counted like bytes_used: cap + sizeof(chunk) per chunk, and
                                * sizeof(ls_session) per spare session */
  ls_intern *strings;          /* strings records share, numbered once (lsintern.c): fixed size,
                                * kept until the collector goes, not counted in buffer_cap */
};

/* ---- lscollector.c: the store (mu held unless said otherwise) ---- */
/* ts = now (CLOCK_REALTIME, for pthread_cond_timedwait) + ms. Any thread. */
void ls_deadline_after(struct timespec *ts, int ms);
/* 1 when s has records published and not yet shipped. */
int ls_store_has_unsent(const ls_session *s);
/* Frees s's oldest chunks once shipped whole, except the writer's current one. */
void ls_store_prune(ls_collector *c, ls_session *s);
/* s at the end of the ready queue unless it is there or being sent; the oldest one out of it. */
void ls_store_enqueue(ls_collector *c, ls_session *s);
ls_session *ls_store_dequeue(ls_collector *c);
/* s out of the list of sessions, then freed (its events still counted in the stats). */
void ls_store_unlink(ls_collector *c, ls_session *s);
void ls_store_session_free(ls_collector *c, ls_session *s);
/* s neither queued nor being sent (a send just ended, or it closed): back into the ready queue
 * when it has records or a drop count to send, freed when it is closed and everything is out. */
void ls_store_settle(ls_collector *c, ls_session *s);
/* Frees p, a name or route of s, unless it is one of s's rooms. Any thread, mu held. */
void ls_store_label_free(ls_session *s, char *p);

/* ---- lssender.c: the sender thread ---- */
/* Starts it (and its HTTP client unless offline): LSC_OK, LSC_ESYS, LSC_ENOMEM, LSC_EINVAL. */
int ls_sender_start(ls_collector *c);
/* Queues every session with published records not yet shipped. mu held. */
void ls_sender_scan_ready(ls_collector *c);
/* 1 while something is queued or being sent. mu held. */
int ls_sender_busy(const ls_collector *c);

#endif
