/* lsencode.c — the stored record format of one event (compact: varints, time differences, table
 * numbers for repeated strings) and its v1 JSON encoding. The store (lscollector.c) only keeps
 * records; the sender there wraps encoded events into a batch; lsintern.c numbers the strings. */
#include <stdlib.h>
#include <string.h>

#include "lscore.h"
#include "utf8.h"
#include "varint.h"

/* A record is a byte stream, read in order (records need no alignment and carry no size):
 *   kind | flags << 4                       one byte: the kind (LS_K_*) and up to 4 flags
 *   task   id parent dt name coro           name: flag F_DEFNAME: "Task-" + a varint, else a string
 *   step   id dt d
 *   await  id dt d line what file func
 *   block  id dt d [stack_t] [from_task from_session] nframes {line file func src}...
 *                                           F_STACKT, F_ELSEWHERE
 *   lag    dt d
 *   done   id dt [status] [exc]             state in flags (F_STATE), F_STATUS, F_EXC
 *   end    dt
 * Numbers are LEB128 varints; dt is the zigzag difference from the previous record's t in the same
 * session (the writer and the sender each keep it: ls_wstate, ls_rstate), line is zigzag too. A
 * string is a varint tag: (number << 1) | 1 for a string of the table (lsintern.c), (length << 1)
 * and the bytes for one inline. A step takes ~10 bytes where the fixed 48-byte header took 48, an
 * await ~16 where its header and three copied strings took ~110: the default buffer holds about
 * five times more events while the server is behind. */
#define F_DEFNAME 0x10   /* task: a default name, "Task-N", stored as N */
#define F_ELSEWHERE 0x10 /* block: from elsewhere, with from_task and from_session */
#define F_STACKT 0x20    /* block: when its stack was taken follows */
#define F_STATUS 0x40    /* done: an HTTP status follows */
#define F_EXC 0x80       /* done: the exception text follows */
#define F_STATE(st) ((unsigned)((st) & 3) << 4)
#define VMAX LS_VARINT_MAX /* bytes of a varint of 64 bits at most */
#define SMAX LS_STRTAG_MAX /* bytes of a string's tag at most (length <= LS_MAX_STR, or a number) */

/* Cut at LS_MAX_STR, backing up to a UTF-8 boundary so the cut never splits a character. */
static size_t str_len(ls_str s) {
  if (!s.p) return 0;
  size_t n = s.n;
  if (n <= LS_MAX_STR) return n;
  n = LS_MAX_STR;
  while (n > 0 && (((const unsigned char *)s.p)[n] & 0xC0) == 0x80) n--;
  return n;
}

static int block_frames(const ls_event *ev, int *skip) {
  int n = ev->nframes < 0 ? 0 : ev->nframes;
  *skip = n > LS_MAX_FRAMES ? n - LS_MAX_FRAMES : 0; /* keep the innermost: they name the culprit */
  return n - *skip;
}

size_t ls_record_bound(const ls_event *ev) {
  /* runs for every event, before its record is written: kept to a few compares and adds */
  switch (ev->kind) {
  case LS_K_STEP: case LS_K_LAG: case LS_K_END: return LS_STEP_BOUND;
  case LS_K_TASK: return ls_task_bound(ev->name, ev->coro);
  case LS_K_AWAIT: return ls_await_bound(ev->what, ev->file, ev->func);
  case LS_K_DONE: return ls_done_bound(ev->exc);
  default: break;
  }
  size_t size = 1 + 6 * VMAX + ls_str_bound(ev->from_session); /* a block */
  int skip, nf = block_frames(ev, &skip);
  for (int i = 0; i < nf; i++) {
    const ls_frame *f = &ev->frames[skip + i];
    size += VMAX + ls_str_bound(f->file) + ls_str_bound(f->func) + ls_str_bound(f->src);
  }
  return size;
}

/* Code layout: every recorded event runs ls_record_write, between stretches of the interpreter's
 * own code that evict it from the instruction cache. With put_v inlined at each of its ~20 sites
 * (and the block case inline) the function was 4.5 KB, and each record fetched the lines of its
 * case afresh: on 3.12's async tree ~38 I1 misses per task (callgrind --cache-sim=yes), the
 * collector's largest share. One shared put_v stays in cache from call to call; blocks (rare) are
 * written out of the way. */
#if defined(__GNUC__) || defined(__clang__)
#define ENC_SHARED __attribute__((noinline, hot))
#define ENC_COLD __attribute__((noinline, cold))
#else
#define ENC_SHARED
#define ENC_COLD
#endif

ENC_SHARED static unsigned char *put_v(unsigned char *p, uint64_t v) {
  if (v < 0x80) { /* ids, parents, lines, table numbers: mostly one byte */
    *p = (unsigned char)v;
    return p + 1;
  }
  if (v < 0x4000) { /* time differences and durations of microseconds: two or three */
    p[0] = (unsigned char)(v | 0x80);
    p[1] = (unsigned char)(v >> 7);
    return p + 2;
  }
  if (v < 0x200000) {
    p[0] = (unsigned char)(v | 0x80);
    p[1] = (unsigned char)((v >> 7) | 0x80);
    p[2] = (unsigned char)(v >> 14);
    return p + 3;
  }
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

/* zigzag: small differences of either sign take few bytes (all in unsigned arithmetic) */
static uint64_t zz(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }

static unsigned char *put_t(unsigned char *p, uint64_t t, ls_wstate *ws) {
  p = put_v(p, zz(t - ws->t));
  ws->t = t;
  return p;
}

/* A string: its number in the table, or inline. Strings that are unique per event (a task's own
 * name, an exception, a source line) go inline without a lookup (interned == 0): they would only
 * fill the table. A number the caller knows (s.sid, from ls_collector_string on the same table:
 * only interned strings, at most LS_INTERN_MAX_STR bytes, never cut) is used as it is. */
static unsigned char *put_str(unsigned char *p, ls_str s, ls_wstate *ws, int interned) {
  if (interned && s.sid && ws->strings) return put_v(p, ((uint64_t)(s.sid - 1) << 1) | 1);
  size_t n = str_len(s);
  if (interned && n && ws->strings) {
    int64_t id = ls_intern_id(ws->strings, s.p, n);
    if (id >= 0) return put_v(p, ((uint64_t)id << 1) | 1);
  }
  p = put_v(p, (uint64_t)n << 1);
  if (n) memcpy(p, s.p, n);
  return p + n;
}

/* 1 with *num when name is a default task name, "Task-" and digits (no leading zero, at most 19:
 * they fit a uint64), which the decoder writes back byte for byte. */
static int default_name(ls_str s, uint64_t *num) {
  if (s.n < 6 || s.n > 5 + 19 || memcmp(s.p, "Task-", 5) != 0 || (s.p[5] == '0' && s.n > 6)) return 0;
  uint64_t v = 0;
  for (size_t i = 5; i < s.n; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return 0;
    v = v * 10 + (uint64_t)(s.p[i] - '0');
  }
  *num = v;
  return 1;
}

/* A block's fields (after the kind byte), its flags added to *flags. */
ENC_COLD static unsigned char *put_block(unsigned char *p, const ls_event *ev, ls_wstate *ws, unsigned *flags) {
  p = put_v(p, ev->id);
  p = put_t(p, ev->t, ws);
  p = put_v(p, ev->d);
  if (ev->has_stack_t) {
    *flags |= F_STACKT;
    p = put_v(p, ev->stack_t);
  }
  if (ev->elsewhere) {
    *flags |= F_ELSEWHERE;
    p = put_v(p, ev->from_task);
    p = put_str(p, ev->from_session, ws, 0);
  }
  int skip, nf = block_frames(ev, &skip);
  p = put_v(p, (uint64_t)nf);
  for (int i = 0; i < nf; i++) {
    const ls_frame *f = &ev->frames[skip + i];
    p = put_v(p, zz((uint64_t)(int64_t)f->line));
    p = put_str(p, f->file, ws, 1);
    p = put_str(p, f->func, ws, 1);
    p = put_str(p, f->src, ws, 0);
  }
  return p;
}

/* The two records every step writes (ls_emit_step, ls_emit_await), also what ls_record_write
 * writes for them: one place says their layout. */
ENC_SHARED size_t ls_record_write_step(unsigned char *dst, uint64_t id, uint64_t t, uint64_t d, ls_wstate *ws) {
  unsigned char *p = dst + 1;
  dst[0] = LS_K_STEP;
  p = put_v(p, id);
  p = put_t(p, t, ws);
  p = put_v(p, d);
  return (size_t)(p - dst);
}

ENC_SHARED size_t ls_record_write_await(unsigned char *dst, uint64_t id, uint64_t t, uint64_t d, int32_t line,
                                        ls_str what, ls_str file, ls_str func, ls_wstate *ws) {
  unsigned char *p = dst + 1;
  dst[0] = LS_K_AWAIT;
  p = put_v(p, id);
  p = put_t(p, t, ws);
  p = put_v(p, d);
  p = put_v(p, zz((uint64_t)(int64_t)line));
  p = put_str(p, what, ws, 1);
  p = put_str(p, file, ws, 1);
  p = put_str(p, func, ws, 1);
  return (size_t)(p - dst);
}

/* A task's record: its announcement, once per task. name.p NULL: the default name "Task-<num>",
 * given as its number (the extension reads it off the task: no digits formatted, none parsed
 * back); ls_record_write gives it that way when an event's name has the default form. */
ENC_SHARED size_t ls_record_write_task(unsigned char *dst, uint64_t id, uint64_t parent, uint64_t t, ls_str name,
                                       uint64_t num, ls_str coro, ls_wstate *ws) {
  unsigned char *p = dst + 1;
  unsigned flags = 0;
  p = put_v(p, id);
  p = put_v(p, parent);
  p = put_t(p, t, ws);
  if (!name.p) {
    flags |= F_DEFNAME;
    p = put_v(p, num);
  } else {
    p = put_str(p, name, ws, 0);
  }
  p = put_str(p, coro, ws, 1);
  dst[0] = (unsigned char)(LS_K_TASK | flags);
  return (size_t)(p - dst);
}

/* A task's end: state (LS_S_*) in the kind byte's flags, then the status and the exception text
 * when there are any. */
ENC_SHARED size_t ls_record_write_done(unsigned char *dst, uint64_t id, uint64_t t, int state, int32_t status,
                                       ls_str exc, ls_wstate *ws) {
  unsigned char *p = dst + 1;
  unsigned flags = F_STATE(state);
  p = put_v(p, id);
  p = put_t(p, t, ws);
  if (status) { flags |= F_STATUS; p = put_v(p, (uint64_t)(uint32_t)status); }
  if (str_len(exc)) { flags |= F_EXC; p = put_str(p, exc, ws, 0); }
  dst[0] = (unsigned char)(LS_K_DONE | flags);
  return (size_t)(p - dst);
}

size_t ls_record_write(unsigned char *dst, const ls_event *ev, ls_wstate *ws) {
  unsigned char *p = dst + 1;
  unsigned flags = 0;
  uint64_t num;
  switch (ev->kind) {
  case LS_K_STEP:
    return ls_record_write_step(dst, ev->id, ev->t, ev->d, ws);
  case LS_K_LAG:
    p = put_t(p, ev->t, ws);
    p = put_v(p, ev->d);
    break;
  case LS_K_END:
    p = put_t(p, ev->t, ws);
    break;
  case LS_K_TASK: {
    ls_str name = ev->name;
    num = 0;
    if (!name.p) name = (ls_str){"", 0, 0}; /* no name: an empty one, never the default form */
    else if (default_name((ls_str){name.p, str_len(name), 0}, &num)) name.p = NULL;
    return ls_record_write_task(dst, ev->id, ev->parent, ev->t, name, num, ev->coro, ws);
  }
  case LS_K_AWAIT:
    return ls_record_write_await(dst, ev->id, ev->t, ev->d, ev->line, ev->what, ev->file, ev->func, ws);
  case LS_K_DONE:
    return ls_record_write_done(dst, ev->id, ev->t, ev->state, ev->status, ev->exc, ws);
  case LS_K_BLOCK:
    p = put_block(p, ev, ws, &flags);
    break;
  default: /* not a kind the store knows: written as an end-less marker the decoder refuses */
    break;
  }
  dst[0] = (unsigned char)((unsigned)ev->kind | flags);
  return (size_t)(p - dst);
}

/* A reader of one record stream: every read checks it stays inside [p, end); bad is set instead. */
typedef struct rd {
  const unsigned char *p, *end;
  const ls_rstate *rs;
  int bad;
} rd;

/* A number (common/varint.h, the reader the server's binary form shares), or bad set. */
static uint64_t get_v(rd *r) {
  uint64_t v;
  if (varint_get(&r->p, r->end, &v)) {
    r->bad = 1;
    return 0;
  }
  return v;
}

static ls_str get_str(rd *r) {
  ls_str s = {"", 0, 0};
  uint64_t tag = get_v(r);
  if (r->bad) return s;
  if (tag & 1) {
    if (!ls_intern_get(r->rs->strings, tag >> 1, &s)) r->bad = 1;
    return s;
  }
  uint64_t n = tag >> 1;
  if (n > (uint64_t)(r->end - r->p)) { r->bad = 1; return s; }
  s.p = (const char *)r->p;
  s.n = (size_t)n;
  r->p += n;
  return s;
}

static void key_u64(ls_buf *b, const char *key, uint64_t v) {
  ls_buf_puts(b, key);
  ls_buf_u64(b, v);
}

static void key_str(ls_buf *b, const char *key, ls_str s) {
  ls_buf_puts(b, key);
  ls_buf_jstr(b, s.p ? s.p : "", s.n);
}

/* A table string's (s.sid: its number + 1, from the record) index in the batch's strings st, added
 * there on first use; -1 without st or for a string of no table (written inline). */
static int64_t tab_index(ls_strtab *st, ls_str s) {
  if (!st || !s.sid || s.sid > LS_INTERN_ENTRIES) return -1;
  uint32_t id = s.sid - 1;
  if (st->stamp[id] != st->gen) {
    st->stamp[id] = st->gen;
    st->idx[id] = st->n;
    st->ids[st->n++] = id;
    st->bytes += s.n + 3;
  }
  return st->idx[id];
}

/* A table string as its index in the batch's strings when st is given; inline otherwise. */
static void key_tstr(ls_buf *b, const char *key, ls_str s, ls_strtab *st) {
  int64_t i = tab_index(st, s);
  if (i < 0) { key_str(b, key, s); return; }
  ls_buf_puts(b, key);
  ls_buf_u64(b, (uint64_t)i);
}

int ls_strtab_init(ls_strtab *st) {
  memset(st, 0, sizeof *st);
  st->stamp = calloc(LS_INTERN_ENTRIES, sizeof *st->stamp);
  st->idx = malloc(LS_INTERN_ENTRIES * sizeof *st->idx);
  st->ids = malloc(LS_INTERN_ENTRIES * sizeof *st->ids);
  if (!st->stamp || !st->idx || !st->ids) {
    ls_strtab_free(st);
    return LSC_ENOMEM;
  }
  return LSC_OK;
}

void ls_strtab_free(ls_strtab *st) {
  free(st->stamp);
  free(st->idx);
  free(st->ids);
  memset(st, 0, sizeof *st);
}

void ls_strtab_begin(ls_strtab *st) {
  st->n = 0;
  st->bytes = 0;
  if (++st->gen == 0) { /* wrapped: every stamp could match again */
    memset(st->stamp, 0, LS_INTERN_ENTRIES * sizeof *st->stamp);
    st->gen = 1;
  }
}

/* The table's string at index i. */
static ls_str tab_string(const ls_strtab *st, const ls_intern *strings, uint32_t i) {
  ls_str s = {"", 0, 0};
  if (!ls_intern_get(strings, st->ids[i], &s)) s = (ls_str){"", 0, 0}; /* cannot happen: named by a record */
  return s;
}

void ls_strtab_write(ls_buf *out, const ls_strtab *st, const ls_intern *strings) {
  if (!st->n) return;
  ls_buf_puts(out, ",\"strings\":[");
  for (uint32_t i = 0; i < st->n; i++) {
    ls_str s = tab_string(st, strings, i);
    if (i) ls_buf_append(out, ",", 1);
    ls_buf_jstr(out, s.p, s.n);
  }
  ls_buf_puts(out, "]");
}

static const char *kind_name(int kind) {
  switch (kind) {
  case LS_K_TASK: return "task";
  case LS_K_STEP: return "step";
  case LS_K_AWAIT: return "await";
  case LS_K_BLOCK: return "block";
  case LS_K_LAG: return "lag";
  case LS_K_DONE: return "done";
  case LS_K_END: return "end";
  default: return NULL;
  }
}

static const char *state_name(int state) {
  return state == LS_S_CANCELLED ? "cancelled" : state == LS_S_ERROR ? "error" : "ok";
}

/* Values must fit in [0, 2^53) for JSON readers that use doubles (contract v1). */
#define CLAMP53(v) ((v) >= (UINT64_C(1) << 53) ? (UINT64_C(1) << 53) - 1 : (v))

/* "id" (when with_id), "t" and "d" (when with_d): the fields most events begin with. */
static void id_t_d(ls_buf *out, int with_id, uint64_t id, uint64_t t, int with_d, uint64_t d) {
  if (with_id) key_u64(out, ",\"id\":", id);
  key_u64(out, ",\"t\":", t);
  if (with_d) key_u64(out, ",\"d\":", d);
}

/* A line number as JSON has it: a stored one outside [0, 2^31) reads 0. */
static uint64_t line_of(int64_t line) { return line < 0 || line > INT32_MAX ? 0 : (uint64_t)line; }

/* One record's fields, as read_rec found them. */
typedef struct rec {
  int kind;
  unsigned flags;
  uint64_t id, parent, t, d, num, status, from_task, nframes, stack_t;
  int64_t line;
  ls_str name, coro, what, file, func, exc, from;
  const unsigned char *frames_at, *frames_end; /* a block's frames, checked by read_rec */
} rec;

/* The next record of r into x, every field checked before anything is written (a malformed record
 * sets r->bad and adds nothing to any output); rs->t advances to its t. Only the fields of its
 * kind, and of its flags, are set (json_rec and wire_rec read no other): zeroing the whole of x
 * for every event was a fifth of reading it. */
static void read_rec(rd *r, ls_rstate *rs, rec *x) {
  unsigned char kb = *r->p++;
  int kind = x->kind = kb & 0x0f;
  unsigned flags = x->flags = kb & 0xf0;
  if (!kind_name(kind)) { r->bad = 1; return; }
  x->id = kind != LS_K_LAG && kind != LS_K_END ? get_v(r) : 0;
  x->parent = kind == LS_K_TASK ? get_v(r) : 0;
  x->t = rs->t + varint_unzz(get_v(r));
  x->d = kind == LS_K_STEP || kind == LS_K_AWAIT || kind == LS_K_BLOCK || kind == LS_K_LAG ? get_v(r) : 0;
  switch (kind) {
  case LS_K_TASK:
    if (flags & F_DEFNAME) x->num = get_v(r);
    else x->name = get_str(r);
    x->coro = get_str(r);
    break;
  case LS_K_AWAIT:
    x->line = (int64_t)varint_unzz(get_v(r));
    x->what = get_str(r);
    x->file = get_str(r);
    x->func = get_str(r);
    break;
  case LS_K_DONE:
    x->status = flags & F_STATUS ? get_v(r) : 0;
    x->exc = flags & F_EXC ? get_str(r) : (ls_str){0};
    break;
  case LS_K_BLOCK:
    x->stack_t = flags & F_STACKT ? get_v(r) : 0;
    if (flags & F_ELSEWHERE) { x->from_task = get_v(r); x->from = get_str(r); }
    x->nframes = get_v(r);
    if (x->nframes > LS_MAX_FRAMES) r->bad = 1;
    x->frames_at = r->p;
    x->frames_end = r->end;
    for (uint64_t i = 0; i < x->nframes && !r->bad; i++) { /* checked now, written later */
      get_v(r);
      get_str(r);
      get_str(r);
      get_str(r);
    }
    break;
  }
  if (r->bad) return;
  rs->t = x->t;
  x->t = CLAMP53(x->t);
  x->d = CLAMP53(x->d);
}

/* A block's frame, as read_rec checked it. */
typedef struct frame_rec {
  int64_t line;
  ls_str file, func, src;
  char srcbuf[512];
} frame_rec;

/* The next frame of fr into f, with its source line read here when the watchdog left it to the
 * sender. */
static void next_frame(rd *fr, frame_rec *f) {
  f->line = (int64_t)varint_unzz(get_v(fr));
  f->file = get_str(fr);
  f->func = get_str(fr);
  f->src = get_str(fr);
  if (!f->src.n && f->file.n && f->line > 0 && f->line <= INT32_MAX) {
    f->src.n = ls_src_line(f->file.p, f->file.n, (int)f->line, f->srcbuf, sizeof f->srcbuf);
    f->src.p = f->srcbuf;
  }
}

/* The JSON of one record x, appended to out (after a comma unless *first); table strings by index
 * in st when given. */
static void json_rec(ls_buf *out, const rec *x, const ls_rstate *rs, ls_strtab *st, int *first) {
  unsigned flags = x->flags;
  if (!*first) ls_buf_append(out, ",", 1);
  *first = 0;
  ls_buf_puts(out, "{\"k\":\"");
  ls_buf_puts(out, kind_name(x->kind));
  ls_buf_puts(out, "\"");
  switch (x->kind) {
  case LS_K_TASK:
    key_u64(out, ",\"id\":", x->id);
    key_u64(out, ",\"parent\":", x->parent);
    if (flags & F_DEFNAME) {
      ls_buf_puts(out, ",\"name\":\"Task-");
      ls_buf_u64(out, x->num);
      ls_buf_puts(out, "\"");
    } else {
      key_str(out, ",\"name\":", x->name);
    }
    key_tstr(out, ",\"coro\":", x->coro, st);
    key_u64(out, ",\"t\":", x->t);
    break;
  case LS_K_STEP:
    id_t_d(out, 1, x->id, x->t, 1, x->d);
    break;
  case LS_K_AWAIT:
    id_t_d(out, 1, x->id, x->t, 1, x->d);
    key_tstr(out, ",\"what\":", x->what, st);
    key_tstr(out, ",\"file\":", x->file, st);
    key_u64(out, ",\"line\":", line_of(x->line));
    key_tstr(out, ",\"func\":", x->func, st);
    break;
  case LS_K_BLOCK: {
    id_t_d(out, x->id != 0, x->id, x->t, 1, x->d);
    /* within the block, as the server requires: the watchdog takes it while the step runs */
    if (flags & F_STACKT) key_u64(out, ",\"stack_t\":", x->stack_t < x->d ? x->stack_t : x->d);
    if (flags & F_ELSEWHERE) { /* from elsewhere: the causing session (null: none) and its task */
      if (x->from.n) key_str(out, ",\"from_session\":", x->from);
      else ls_buf_puts(out, ",\"from_session\":null");
      if (x->from_task) key_u64(out, ",\"from_task\":", x->from_task);
    }
    ls_buf_puts(out, ",\"stack\":[");
    rd fr = {x->frames_at, x->frames_end, rs, 0};
    for (uint64_t i = 0; i < x->nframes; i++) {
      frame_rec f;
      next_frame(&fr, &f);
      ls_buf_puts(out, i ? ",{" : "{");
      key_tstr(out, "\"file\":", f.file, st);
      key_u64(out, ",\"line\":", line_of(f.line));
      key_tstr(out, ",\"func\":", f.func, st);
      key_str(out, ",\"src\":", f.src);
      ls_buf_puts(out, "}");
    }
    ls_buf_puts(out, "]");
    break;
  }
  case LS_K_LAG:
    id_t_d(out, 0, 0, x->t, 1, x->d);
    break;
  case LS_K_DONE:
    id_t_d(out, 1, x->id, x->t, 0, 0);
    ls_buf_puts(out, ",\"state\":\"");
    ls_buf_puts(out, state_name((int)((flags >> 4) & 3)));
    ls_buf_puts(out, "\"");
    if ((flags >> 4 & 3) == LS_S_ERROR && x->exc.n) key_str(out, ",\"exc\":", x->exc);
    if (x->status >= 100 && x->status <= 599) key_u64(out, ",\"status\":", x->status);
    break;
  case LS_K_END:
    id_t_d(out, 0, 0, x->t, 0, 0);
    break;
  }
  ls_buf_puts(out, "}");
}

/* The binary record form (docs/api.md, "Binary record bodies"; the server's reader is
 * server/ingest_records.c). Its event layout is the stored record's, so the kind byte goes over as
 * it is, but each batch stands alone: times are differences within the batch, table strings are
 * numbered in the batch's own table, lines are plain, and what JSON would leave out is left out
 * (a status outside [100, 599], an exception of a task that did not fail). */

/* A number written in place while the buffer has room (most of them: one byte, no call), through
 * a copy otherwise: a call to append each number was a quarter of the form's encoding. */
static inline void wire_v(ls_buf *b, uint64_t v) {
  if (!b->failed && b->cap - b->len > VMAX) {
    unsigned char *p = (unsigned char *)b->data + b->len;
    if (v < 0x80) {
      *p = (unsigned char)v;
      b->len++;
    } else {
      b->len += (size_t)(put_v(p, v) - p);
    }
    b->data[b->len] = '\0';
    return;
  }
  unsigned char tmp[VMAX];
  ls_buf_append(b, tmp, (size_t)(put_v(tmp, v) - tmp));
}

void ls_wire_v(ls_buf *b, uint64_t v) { wire_v(b, v); }

/* n bytes of text after their length (shifted left by shift: 1 for a string field's tag), cleaned
 * as the JSON form cleans them (dynbuf_json_str): a task's name or a source line may hold a NUL
 * or bytes that are not UTF-8, which the server refuses in either form. */
static void wire_text(ls_buf *b, const char *p, size_t n, int shift) {
  size_t m = n ? utf8_clean_len(p, n) : 0;
  wire_v(b, (uint64_t)m << shift);
  if (m == n) {
    if (n) ls_buf_append(b, p, n);
  } else {
    dynbuf_text(b, p, n);
  }
}

void ls_wire_str(ls_buf *b, const char *p, size_t n) { wire_text(b, p, n, 0); }

/* A string field: its index in st (tag odd), or inline (tag even: its length, then its bytes). */
static void wire_ref(ls_buf *b, ls_str s, ls_strtab *st) {
  int64_t i = tab_index(st, s);
  if (i >= 0) {
    wire_v(b, ((uint64_t)i << 1) | 1);
    return;
  }
  wire_text(b, s.p, s.n, 1);
}

static void wire_t(ls_buf *b, uint64_t t, ls_wirestate *ws) {
  wire_v(b, zz(t - ws->t));
  ws->t = t;
}

/* id (with_id), t and d (with_d), as most events begin. */
static void wire_id_t_d(ls_buf *out, int with_id, const rec *x, int with_d, ls_wirestate *ws) {
  if (with_id) wire_v(out, x->id);
  wire_t(out, x->t, ws);
  if (with_d) wire_v(out, x->d);
}

static void wire_rec(ls_buf *out, const rec *x, const ls_rstate *rs, ls_strtab *st, ls_wirestate *ws) {
  unsigned flags = x->flags;
  if (x->kind == LS_K_DONE) {
    int state = (int)((flags >> 4) & 3);
    flags = F_STATE(state == 3 ? LS_S_OK : state); /* as state_name reads it */
    if (x->status >= 100 && x->status <= 599) flags |= F_STATUS;
    if (state == LS_S_ERROR && x->exc.n) flags |= F_EXC;
  }
  unsigned char kb = (unsigned char)((unsigned)x->kind | flags);
  ls_buf_append(out, &kb, 1);
  ws->counts[x->kind == LS_K_END ? LS_WIRE_OTHER : x->kind - 1]++;
  switch (x->kind) {
  case LS_K_TASK:
    wire_v(out, x->id);
    wire_v(out, x->parent);
    wire_t(out, x->t, ws);
    if (flags & F_DEFNAME) wire_v(out, x->num);
    else wire_ref(out, x->name, NULL);
    wire_ref(out, x->coro, st);
    break;
  case LS_K_STEP:
    wire_id_t_d(out, 1, x, 1, ws);
    break;
  case LS_K_AWAIT:
    wire_id_t_d(out, 1, x, 1, ws);
    wire_v(out, line_of(x->line));
    wire_ref(out, x->what, st);
    wire_ref(out, x->file, st);
    wire_ref(out, x->func, st);
    break;
  case LS_K_BLOCK: {
    wire_id_t_d(out, 1, x, 1, ws);
    if (flags & F_STACKT) wire_v(out, x->stack_t < x->d ? x->stack_t : x->d);
    if (flags & F_ELSEWHERE) {
      wire_v(out, x->from_task);
      wire_ref(out, x->from, NULL);
    }
    wire_v(out, x->nframes);
    rd fr = {x->frames_at, x->frames_end, rs, 0};
    for (uint64_t i = 0; i < x->nframes; i++) {
      frame_rec f;
      next_frame(&fr, &f);
      wire_v(out, line_of(f.line));
      wire_ref(out, f.file, st);
      wire_ref(out, f.func, st);
      wire_ref(out, f.src, NULL);
    }
    break;
  }
  case LS_K_LAG:
    wire_id_t_d(out, 0, x, 1, ws);
    break;
  case LS_K_DONE:
    wire_id_t_d(out, 1, x, 0, ws);
    if (flags & F_STATUS) wire_v(out, x->status);
    if (flags & F_EXC) wire_ref(out, x->exc, NULL);
    break;
  case LS_K_END:
    wire_t(out, x->t, ws);
    break;
  }
}

void ls_wire_begin(ls_wirestate *ws) { memset(ws, 0, sizeof *ws); }

void ls_wire_drop(ls_buf *out, ls_wirestate *ws, uint64_t n) {
  unsigned char kb = LS_WIRE_DROP;
  ls_buf_append(out, &kb, 1);
  wire_v(out, n);
  ws->counts[LS_WIRE_OTHER]++;
}

void ls_strtab_write_wire(ls_buf *out, const ls_strtab *st, const ls_intern *strings) {
  ls_wire_v(out, st->n);
  for (uint32_t i = 0; i < st->n; i++) {
    ls_str s = tab_string(st, strings, i);
    ls_wire_str(out, s.p, s.n);
  }
}

int ls_encode_records(ls_buf *out, ls_rstate *rs, const unsigned char *p, size_t n, int *first,
                      size_t max_out, size_t *used, size_t *nev) {
  return ls_encode_records_tab(out, rs, NULL, p, n, first, max_out, used, nev);
}

/* The records in [p, p+n) as JSON (ws NULL) or in the binary form (ws given). */
static int encode_records(ls_buf *out, ls_rstate *rs, ls_strtab *st, ls_wirestate *ws, const unsigned char *p,
                          size_t n, int *first, size_t max_out, size_t *used, size_t *nev) {
  rd r = {p, p + n, rs, 0};
  size_t count = 0;
  int rc = LSC_OK;
  rec x = {0}; /* zeroed once: each record sets the fields its kind and flags name */
  while (r.p < r.end) {
    if (count && max_out && out->len + (st ? st->bytes : 0) >= max_out) break;
    const unsigned char *at = r.p;
    read_rec(&r, rs, &x);
    if (r.bad) { r.p = at; rc = LSC_EINVAL; break; }
    if (ws) wire_rec(out, &x, rs, st, ws);
    else json_rec(out, &x, rs, st, first);
    count++;
  }
  if (used) *used = (size_t)(r.p - p);
  if (nev) *nev = count;
  if (rc == LSC_OK && out->failed) rc = LSC_ENOMEM;
  return rc;
}

int ls_encode_records_tab(ls_buf *out, ls_rstate *rs, ls_strtab *st, const unsigned char *p, size_t n, int *first,
                          size_t max_out, size_t *used, size_t *nev) {
  return encode_records(out, rs, st, NULL, p, n, first, max_out, used, nev);
}

int ls_encode_records_wire(ls_buf *out, ls_rstate *rs, ls_strtab *st, ls_wirestate *ws, const unsigned char *p,
                           size_t n, size_t max_out, size_t *used, size_t *nev) {
  int first = 1;
  return encode_records(out, rs, st, ws, p, n, &first, max_out, used, nev);
}
