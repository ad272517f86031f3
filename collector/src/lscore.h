/* lscore.h — the collector's C core, with no Python in it: a bounded per-session event store
 * filled by the extension (under the GIL), the v1 batch encoder, and the sender thread that POSTs
 * batches with libcurl. The CPython module (collector/ext/) decides *what* to record; this decides
 * how it is kept, encoded and shipped. All functions are thread-safe unless said otherwise. */
#ifndef LS_CORE_H
#define LS_CORE_H

#include <stddef.h>
#include <stdint.h>

/* The collector's result codes (its own set, LSC_*: the server's LS_* codes are another
 * program's, and the two never exchange codes, only HTTP statuses). */
#define LSC_OK 0
#define LSC_ENOMEM (-1)
#define LSC_EINVAL (-2)
#define LSC_EFULL (-3)     /* the buffer cap is reached: the event was dropped and counted */
#define LSC_ECLOSED (-4)   /* the session is closed */
#define LSC_ETIMEDOUT (-5) /* a flush did not finish in time */
#define LSC_ESYS (-6)      /* a thread or libcurl could not be started */
#define LSC_ELOST (-7)     /* a batch was refused by the server and given up on */

/* A short English description of a result code above, for error messages. */
const char *lsc_strerror(int rc);

#define LS_TOKEN_MAX 4096 /* bytes of a bearer token */
/* 1 when token can travel as a bearer token: at most LS_TOKEN_MAX visible ASCII bytes (NULL or
 * empty: no token). */
int ls_token_valid(const char *token);

/* ---- growable buffer with a ceiling: the shared one (common/dynbuf.h), under the collector's
 * names. Fields: data (owned, NUL-terminated), len, cap, max, failed (0 or a DYNBUF_E* code). */
#include "dynbuf.h"
typedef dynbuf ls_buf;

static inline void ls_buf_init(ls_buf *b, size_t max) { dynbuf_init(b, max); }
static inline void ls_buf_free(ls_buf *b) { dynbuf_free(b); }
static inline void ls_buf_reset(ls_buf *b) { dynbuf_reset(b); }
static inline void ls_buf_append(ls_buf *b, const void *p, size_t n) { dynbuf_append(b, p, n); }
static inline void ls_buf_puts(ls_buf *b, const char *s) { dynbuf_puts(b, s); }
static inline void ls_buf_u64(ls_buf *b, uint64_t v) { dynbuf_u64(b, v); }
static inline void ls_buf_i64(ls_buf *b, int64_t v) { dynbuf_i64(b, v); }
/* A JSON string literal, escaped; bytes that are not well-formed UTF-8 (common/utf8.h, the check
 * the server applies) become U+FFFD, so the server never refuses a string for its encoding. */
static inline void ls_buf_jstr(ls_buf *b, const char *s, size_t n) { dynbuf_json_str(b, s, n); }

/* ---- events --------------------------------------------------------------------------------- */
enum ls_kind { LS_K_TASK = 1, LS_K_STEP, LS_K_AWAIT, LS_K_BLOCK, LS_K_LAG, LS_K_DONE, LS_K_END };
enum ls_state { LS_S_OK = 0, LS_S_CANCELLED, LS_S_ERROR };

#define LS_MAX_STR 2048       /* longer strings are cut at a UTF-8 boundary */
#define LS_MAX_FRAMES 64      /* a block's stack keeps the innermost frames beyond this */

/* sid: the string's number in the collector's table plus one, when the caller knows it
 * (ls_collector_string: a code object's names, looked up once and kept beside them), else 0 and
 * the record looks the bytes up itself. A known number saves that lookup (and the compare of the
 * bytes it ends with) on every record: on 3.13's Litestar loop the D1 read misses the collector
 * adds fell by 12% (-101k of 832k a run, bench/overhead/README.md, 2026-12-04 evening). */
typedef struct ls_str { const char *p; size_t n; uint32_t sid; } ls_str;
typedef struct ls_frame { ls_str file, func, src; int32_t line; } ls_frame;

/* One event as the extension hands it over. Which fields count depends on kind:
 * task: id parent t name coro | step: id t d | await: id t d what file line func
 * block: id t d frames[nframes] elsewhere from_session from_task | lag: t d |
 * done: id t state exc status | end: t
 * A done's status is the HTTP response status of a request's task (100..599), 0 for none.
 * A block with elsewhere set stalled this session's loop from outside it: from_session is the
 * causing session's id (p NULL: none, a background task or a plain callback), from_task that
 * session's task id (0: none); its id is then 0, no task of this session ran. */
typedef struct ls_event {
  int kind, state;
  uint64_t id, parent, t, d;
  int32_t line, status;
  ls_str name, coro, what, file, func, exc;
  const ls_frame *frames;
  int nframes;
  int elsewhere;
  uint64_t from_task;
  ls_str from_session;
  int has_stack_t;  /* block: 1 when stack_t says when its stack was taken */
  uint64_t stack_t; /* block: ns after t when the watchdog took the stack (at most d) */
} ls_event;

/* ---- collector and sessions ----------------------------------------------------------------- */
typedef struct ls_config {
  const char *url;            /* base URL, e.g. http://127.0.0.1:7878 (copied) */
  const char *token;          /* may be NULL (copied) */
  size_t buffer_cap;          /* bytes of unsent events kept at most (default 16 MiB) */
  int flush_interval_ms;      /* how often the sender wakes without being asked (default 200) */
  int timeout_ms;             /* per request (default 5000) */
  size_t batch_max;           /* bytes of records per batch (default 512 KiB) */
  int offline;                /* 1: no HTTP at all; batches count as delivered once encoded
                               * (and written to the sink, if any): no server answered */
  const char *sink_path;      /* NULL, or a file each encoded batch is appended to as one line
                               * (JSON Lines) before it is posted: `loopscope run --save` */
  int gzip;                   /* 0: bodies over 32 KiB go gzipped unless the server is on a
                               * loopback address (default); 1: always; -1: never */
  int batches_per_post;       /* sessions' batches one POST may carry together (default, 0:
                               * 1000); 1: one batch per POST, the plain v1 body */
  const char *meta_static;    /* NULL, or fields every named session's meta ends with, encoded
                               * with their leading comma: ,"service":..,"host":.. (copied) */
} ls_config;

typedef struct ls_collector ls_collector;
typedef struct ls_session ls_session;

typedef struct ls_stats {
  uint64_t events, dropped, bytes_used, batches_sent, batches_failed, posts_failed, retries;
  int last_status;            /* last HTTP status, 0 if the last attempt had no answer */
  uint64_t sessions, sessions_pending, sessions_sending;
  uint64_t batches_saved, sink_errors; /* batches written to the sink, writes that failed */
  uint64_t chunk_allocs;      /* chunks the store took from malloc (not from its spares): none
                               * in a steady state, whatever the number of events */
  uint64_t store_allocs;      /* every allocation of the store on the emitting side: chunks,
                               * sessions, metas (a test: the same per request whatever its steps) */
  uint64_t posts_sent;        /* POSTs answered 2xx, each carrying one batch or several */
  uint64_t split_posts;       /* multi-batch bodies refused (400, 413) and sent again one by one */
  int multi_refused;          /* 1 once the server refused the multi-batch shape (an older
                               * server): one batch per POST from then on */
  uint64_t strings_posts;     /* POSTs answered 2xx whose batches named their strings by index */
  uint64_t strings_refused;   /* POSTs so written and refused (400): sent again written plain */
  uint64_t records_posts;     /* POSTs answered 2xx in the binary record form */
  uint64_t records_refused;   /* POSTs so written and refused (400, 415): sent again as JSON */
  uint64_t shrunk_posts;      /* batches refused alone as too large (413) and sent again in
                               * smaller batches instead of dropped */
  uint64_t post_cap;          /* 0, or the bytes a POST is kept to since such a refusal */
} ls_stats;

/* Starts the sender thread. *out owns everything; free with ls_collector_free. */
int ls_collector_new(const ls_config *cfg, ls_collector **out);
/* Flushes for at most timeout_ms, stops the thread, frees every session. */
void ls_collector_free(ls_collector *c, int timeout_ms);
/* Waits until everything recorded so far is acknowledged, or timeout_ms passes. */
int ls_collector_flush(ls_collector *c, int timeout_ms);
void ls_collector_stats(ls_collector *c, ls_stats *out);
/* In a forked child: forget the parent's events and sessions, start a new sender thread. */
int ls_collector_after_fork_child(ls_collector *c);

/* Opens a session; meta_json is the pre-encoded "meta" object (copied). The session stays owned
 * by the collector: after ls_session_close the caller must not touch it again. */
int ls_session_open(ls_collector *c, const char *id, const char *meta_json, ls_session **out);
/* A named session's meta as fields: the sender writes the meta object from them when it sends
 * ({"name":..,"pid":..,"loop":..,"started_unix_ns":"..",<cfg.meta_static>,"route":..}), so that
 * opening a session (once per web request) builds no JSON on the loop thread. */
typedef struct ls_session_start {
  const char *name;           /* name_n bytes of UTF-8 (copied; the meta keeps 1 KiB of it) */
  size_t name_n;
  uint64_t loop;              /* the number of the loop it runs on, 0: not known yet */
  uint64_t wall_ns;           /* when it started, Unix ns (started_unix_ns) */
  uint32_t fraction_ppm;      /* one request of a share drawn at random, in millionths (1..999999:
                               * meta.fraction); 0: every request, or not a request */
} ls_session_start;
/* Opens a session named by st (see ls_session_start); as ls_session_open otherwise. */
int ls_session_begin(ls_collector *c, const char *id, const ls_session_start *st, ls_session **out);
/* A named session's new name (n bytes, copied) and loop number: its next batch carries them. */
int ls_session_set_name(ls_session *s, const char *name, size_t n);
void ls_session_set_loop(ls_session *s, uint64_t loop);
int ls_session_close(ls_session *s, uint64_t t_end);
/* ls_session_close that also sets the route template (route_n bytes, as ls_session_set_route;
 * route NULL: none), under the one hold of the store's lock that closing takes: a web request's
 * route is known only at its end. The session is closed in any case; LSC_ENOMEM when the route
 * could not be copied (it then goes out without it), LSC_ECLOSED when it was closed already. */
int ls_session_close_routed(ls_session *s, uint64_t t_end, const char *route, size_t route_n);
/* Replaces the session's meta (copied); it goes out with the session's next batch, and the server
 * overwrites the fields it carries (a request named once its route is known). */
int ls_session_set_meta(ls_session *s, const char *meta_json);
/* Sets the session's route template (n bytes of UTF-8): its batches from the next one on carry it
 * in their meta as "route", the sender adding it (so a route known only at the end of a request
 * costs the loop thread a copy, not a new meta). LSC_OK or LSC_ENOMEM. */
int ls_session_set_route(ls_session *s, const char *route, size_t n);
/* Appends one event. LSC_EFULL when the cap is reached (the event is counted as dropped).
 * A session has one writer at a time (the extension calls under the GIL): the common case takes
 * no lock (see lscollector.c). */
int ls_emit(ls_session *s, const ls_event *ev);
/* ls_emit of a step (id, t, d) and of an await (id, t, d, line, what, file, func), the two events
 * every step of every task records, without building an ls_event: the same records, written by
 * straight-line code with no dispatch on the kind (lsencode.c), so each step runs fewer lines of
 * the collector's code between two stretches of the interpreter's. */
int ls_emit_step(ls_session *s, uint64_t id, uint64_t t, uint64_t d);
int ls_emit_await(ls_session *s, uint64_t id, uint64_t t, uint64_t d, int32_t line, ls_str what, ls_str file,
                  ls_str func);
/* The same for the two events every task records once: its announcement (a task event; name.p
 * NULL: the default name "Task-<num>", given as its number) and its end (a done event). */
int ls_emit_task(ls_session *s, uint64_t id, uint64_t parent, uint64_t t, ls_str name, uint64_t num, ls_str coro);
int ls_emit_done(ls_session *s, uint64_t id, uint64_t t, int state, int32_t status, ls_str exc);
void ls_session_add_dropped(ls_session *s, uint64_t n);
/* The number plus one of the n bytes at p in c's string table, added if new, for an ls_str's sid;
 * 0 when they cannot be in the table (too long, or the table is full): records then carry them
 * inline, as they would have. Valid for c's life (a forked child keeps it); the bytes need not
 * stay at p. */
uint32_t ls_collector_string(ls_collector *c, const char *p, size_t n);

/* ---- source lines (read by the sender thread for block stacks, never on the loop) ------------ */
/* Copies line `line` (1-based) of file, trimmed, NUL-terminated, into out (cap bytes). Returns its
 * length, or 0 when the file or line cannot be read. Reads at most 16 MiB of the file. */
size_t ls_src_line(const char *file, size_t nfile, int line, char *out, size_t cap);

/* ---- string table (lsintern.c): strings records repeat, numbered once per collector ---------- */
typedef struct ls_intern ls_intern;
#define LS_INTERN_MAX_STR 512 /* longer strings always travel inline */
#define LS_INTERN_ENTRIES 8192 /* strings a table numbers at most (numbers 0 .. this - 1) */
int ls_intern_new(ls_intern **out);
void ls_intern_free(ls_intern *t);
void ls_intern_after_fork_child(ls_intern *t);
/* The number of the n bytes at p in t, added if new; -1 when the table is full or the string too
 * long (the record then carries it inline). Any thread; lookups take no lock. */
int64_t ls_intern_id(ls_intern *t, const char *p, size_t n);
/* The string numbered id into *out (valid until ls_intern_free); 0 when t has no such number.
 * For a reader that found id in a record published (release) after the string was added. */
int ls_intern_get(const ls_intern *t, uint64_t id, ls_str *out);
/* Strings in t (for tests and stats). */
size_t ls_intern_count(ls_intern *t);

/* ---- records (lsencode.c): the stored form of an event, and its v1 JSON --------------------- */
/* The writer's and the reader's running state of one session's record stream: times are stored
 * as the difference from the previous record's, so both sides keep the last one; strings may be
 * numbers in the table (NULL: always inline). Both start zeroed except strings. */
typedef struct ls_wstate { uint64_t t; ls_intern *strings; } ls_wstate;
typedef struct ls_rstate { uint64_t t; const ls_intern *strings; } ls_rstate;
/* At least the bytes the record for ev takes (exact size is known only once written: numbers are
 * varints, strings may be table numbers). Cheap: no table lookup. */
size_t ls_record_bound(const ls_event *ev);
/* Writes the record for ev into dst (room for ls_record_bound(ev) bytes), advancing *ws; returns
 * the bytes written. */
size_t ls_record_write(unsigned char *dst, const ls_event *ev, ls_wstate *ws);
/* The same bytes as ls_record_write for a step and for an await with these fields (the writers
 * behind ls_emit_step and ls_emit_await). A step takes at most LS_STEP_BOUND bytes; an await
 * at most ls_await_bound(what, file, func). */
#define LS_VARINT_MAX 10 /* bytes of a varint of 64 bits at most */
#define LS_STRTAG_MAX 3  /* bytes of a string's tag at most (a length <= LS_MAX_STR, or a number) */
#define LS_STEP_BOUND (1 + 3 * LS_VARINT_MAX)
/* The bounds are inline: the emitters (lscollector.c) run them for every event, and a call into
 * another file cost each one an instruction-cache line of its own on the per-task path. */
/* At least a string's record bytes (its tag and its bytes, cut at LS_MAX_STR), without looking for
 * the UTF-8 boundary of the cut. */
static inline size_t ls_str_bound(ls_str s) {
  return LS_STRTAG_MAX + (!s.p ? 0 : s.n < LS_MAX_STR ? s.n : LS_MAX_STR);
}
static inline size_t ls_await_bound(ls_str what, ls_str file, ls_str func) {
  return 1 + 4 * LS_VARINT_MAX + ls_str_bound(what) + ls_str_bound(file) + ls_str_bound(func);
}
size_t ls_record_write_step(unsigned char *dst, uint64_t id, uint64_t t, uint64_t d, ls_wstate *ws);
size_t ls_record_write_await(unsigned char *dst, uint64_t id, uint64_t t, uint64_t d, int32_t line, ls_str what,
                             ls_str file, ls_str func, ls_wstate *ws);
/* The same bytes as ls_record_write for a task event (name.p NULL: the default name "Task-<num>",
 * which ls_record_write finds in a name of that form) and for a done event; their bounds. */
static inline size_t ls_task_bound(ls_str name, ls_str coro) {
  return 1 + 3 * LS_VARINT_MAX + ls_str_bound(name) + ls_str_bound(coro);
}
static inline size_t ls_done_bound(ls_str exc) { return 1 + 3 * LS_VARINT_MAX + ls_str_bound(exc); }
size_t ls_record_write_task(unsigned char *dst, uint64_t id, uint64_t parent, uint64_t t, ls_str name, uint64_t num,
                            ls_str coro, ls_wstate *ws);
size_t ls_record_write_done(unsigned char *dst, uint64_t id, uint64_t t, int state, int32_t status, ls_str exc,
                            ls_wstate *ws);
/* Appends the JSON of the records in [p, p+n) as a comma-separated event list, advancing *rs. Stops
 * before a record once out holds max_out bytes or more (0: no limit), having taken at least one:
 * *used and *nev (either may be NULL) say the bytes and records taken. LSC_EINVAL for a malformed
 * record (what came before it is in out and counted), LSC_ENOMEM when out refused to grow. */
int ls_encode_records(ls_buf *out, ls_rstate *rs, const unsigned char *p, size_t n, int *first,
                      size_t max_out, size_t *used, size_t *nev);

/* A batch's strings table (additive to ingest v1; docs/api.md, "A batch's strings table"), for a
 * server that takes it: an event's table string (a coroutine, an await's file, function and what,
 * a frame's file and function) is written as its index in the batch's "strings", so a batch
 * carries each such string's bytes once, and the server parses and checks each once. Indices are
 * per batch: every batch stays a body of its own (a refused multi-batch body is sent again one
 * batch per POST). Sender thread only. */
typedef struct ls_strtab {
  uint32_t gen;      /* the batch being written; a number's stamp equal to it: named in it */
  uint32_t n;        /* strings in the batch's table */
  size_t bytes;      /* the table's JSON bytes, about (its strings' lengths and punctuation) */
  uint32_t *stamp;   /* per string number: the last batch that named it (0: none) */
  uint32_t *idx;     /* per string number: its index in that batch */
  uint32_t *ids;     /* per index: the string number */
} ls_strtab;
/* The arrays (LS_INTERN_ENTRIES entries each); LSC_ENOMEM. ls_strtab_free: a zeroed one too. */
int ls_strtab_init(ls_strtab *st);
void ls_strtab_free(ls_strtab *st);
/* A new batch: its table empty. */
void ls_strtab_begin(ls_strtab *st);
/* As ls_encode_records, the table strings named by index in st (NULL: ls_encode_records), the
 * table's bytes counted against max_out. */
int ls_encode_records_tab(ls_buf *out, ls_rstate *rs, ls_strtab *st, const unsigned char *p, size_t n, int *first,
                          size_t max_out, size_t *used, size_t *nev);
/* Appends ,"strings":[...] for the batch (nothing when its table is empty). */
void ls_strtab_write(ls_buf *out, const ls_strtab *st, const ls_intern *strings);

/* The binary record form of a batch (docs/api.md, "Binary record bodies"), for a server whose
 * answers say X-Loopscope-Ingest: records. A batch is its header (ids, meta's JSON text, the strings
 * table, the count of each kind) before its events, so the sender writes the events first, into
 * a buffer of their own, keeping this state. Sender thread only. */
#define LS_WIRE_MAGIC "LSR1"
#define LS_WIRE_MEDIA "application/vnd.loopscope.records"
enum { LS_WIRE_OTHER = 6, LS_WIRE_COUNTS = 7, LS_WIRE_DROP = 8 };
typedef struct ls_wirestate {
  uint64_t t;                      /* the batch's last t: the next is written as a difference */
  uint64_t counts[LS_WIRE_COUNTS]; /* events written: task, step, await, block, lag, done, other */
} ls_wirestate;
/* A new batch: no events, times from 0. */
void ls_wire_begin(ls_wirestate *ws);
/* As ls_encode_records_tab, in the binary form (st may be NULL: every string inline). */
int ls_encode_records_wire(ls_buf *out, ls_rstate *rs, ls_strtab *st, ls_wirestate *ws, const unsigned char *p,
                           size_t n, size_t max_out, size_t *used, size_t *nev);
/* A drop event of n. */
void ls_wire_drop(ls_buf *out, ls_wirestate *ws, uint64_t n);
/* The batch's strings table: its count, then each string. */
void ls_strtab_write_wire(ls_buf *out, const ls_strtab *st, const ls_intern *strings);
/* A number (LEB128), and a string of the header (its length, then its bytes, cleaned to UTF-8
 * without U+0000 as the JSON form cleans text). */
void ls_wire_v(ls_buf *b, uint64_t v);
void ls_wire_str(ls_buf *b, const char *p, size_t n);

#endif
