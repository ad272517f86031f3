/* ingest_records.c — the binary record form of an ingest body (docs/api.md, "Binary record
 * bodies"): the collector's own compact records, varints and a strings table per batch, read
 * into the same rows as ingest.c reads from JSON, with the same checks and the same words for
 * what is wrong. It exists because reading JSON was about half of the server's work on a burst
 * of small sessions (bench/overhead/ingest_cg.sh): here no number goes through strtod and no
 * string through an escape scanner.
 *
 *   body   = "LSR1" batch+                       (batches back to back to the body's end)
 *   batch  = str batch, str session, str meta     (meta: a JSON object's text, or empty: none)
 *            varint nstrings, str * nstrings      (the batch's strings table)
 *            varint ntask nstep nawait nblock nlag ndone nother   (nother: end and drop events)
 *            event * (their sum)
 *   str    = varint n, n bytes of UTF-8 (no U+0000)
 *   ref    = varint tag: odd, strings[tag >> 1]; even, tag >> 1 bytes inline
 *   event  = one byte, kind | flags << 4, then by kind:
 *     1 task   id parent dt (name ref | N when flag 1: the name "Task-N") coro ref
 *     2 step   id dt d
 *     3 await  id dt d line what file func          (refs)
 *     4 block  id dt d [stack_t: flag 2] [from_task from_session ref: flag 1; "" = null]
 *              nframes {line file func src}...
 *     5 lag    dt d
 *     6 done   id dt [status: flag 4] [exc ref: flag 8]; flags & 3: ok, cancelled, error
 *     7 end    dt
 *     8 drop   n
 * Numbers are LEB128 varints of at most 64 bits; dt is the zigzag difference from the t of the
 * batch's previous event that has one (0 before the first). Undefined kinds and flags are refused:
 * unlike JSON's unknown fields, an unknown record's length is not known, so a later kind comes
 * with a new magic, which the server names in X-Loopscope-Ingest before any collector sends it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "varint.h"

#define TWO_POW_53 ((uint64_t)1 << 53)

enum { R_TASK = 1, R_STEP, R_AWAIT, R_BLOCK, R_LAG, R_DONE, R_END, R_DROP };
static const char *const kind_name[] = {"", "task", "step", "await", "block", "lag", "done", "end", "drop"};
/* The flags (the kind byte's high four bits) each kind may carry. */
static const unsigned char kind_flags[] = {0, 0x1, 0, 0, 0x3, 0, 0xf, 0, 0};
/* The count in the batch's header that each kind is held to (index into counts[]). */
static const unsigned char kind_count[] = {0, 0, 1, 2, 3, 4, 5, 6, 6};

/* A reader over [p, end) of the body; start: the body's first byte, for offsets in errors. */
typedef struct rdr {
  const unsigned char *p, *end, *start;
} rdr;

/* A varint into *v (common/varint.h): 0, or -1 when the body ends inside it, -2 when it passes 64
 * bits. */
static int get_v(rdr *r, uint64_t *v) { return varint_get(&r->p, r->end, v); }

/* The words for a number that could not be read at `where`.`field`. */
static int bad_number(parser *p, const rdr *r, const place *where, const char *field, int why)
{
  size_t at = (size_t)(r->p - r->start);
  if(why == -1)
    return ing_fail_at(p, where, "%s: the body ends inside this value (byte %zu)", field, at);
  return ing_fail_at(p, where, "%s: a number of more than 64 bits (byte %zu)", field, at);
}

/* A number in [lo, 2^53), as ingest.c's get_int says it. */
static int get_int(parser *p, rdr *r, const place *where, const char *field, uint64_t lo, int64_t *out)
{
  uint64_t v;
  int why = get_v(r, &v);
  if(why)
    return bad_number(p, r, where, field, why);
  if(v < lo || v >= TWO_POW_53) {
    if(lo > 0)
      return ing_fail_at(p, where, "%s: expected a positive integer below 2^53", field);
    return ing_fail_at(p, where, "%s: expected an integer in [0, 2^53)", field);
  }
  *out = (int64_t)v;
  return 0;
}

/* A time: the zigzag difference from *prev, giving a t in [0, 2^53) that becomes *prev. */
static int get_t(parser *p, rdr *r, const place *where, int64_t *prev, int64_t *out)
{
  uint64_t v;
  int why = get_v(r, &v);
  if(why)
    return bad_number(p, r, where, "t", why);
  uint64_t t = (uint64_t)*prev + varint_unzz(v); /* unsigned: wraps, never overflows */
  if(t >= TWO_POW_53)
    return ing_fail_at(p, where, "t: expected an integer in [0, 2^53)");
  *out = *prev = (int64_t)t;
  return 0;
}

/* n bytes at r as a NUL-terminated string in a, checked as a string of at most max bytes. */
static int take_text(parser *p, rdr *r, arena *a, const place *where, const char *field, uint64_t n, size_t max,
                     const char **out)
{
  if(n > (uint64_t)(r->end - r->p))
    return ing_fail_at(p, where, "%s: the body ends inside this string (byte %zu)", field,
                       (size_t)(r->p - r->start));
  const char *s = (const char *)r->p;
  switch(ing_text_check(s, (size_t)n, max)) {
  case TEXT_LONG: return ing_fail_at(p, where, "%s: longer than %zu bytes", field, max);
  case TEXT_UTF8: return ing_fail_at(p, where, "%s: not valid UTF-8", field);
  case TEXT_NUL: return ing_fail_at(p, where, "%s: holds U+0000: no text may contain it", field);
  default: break;
  }
  const char *copy = arena_strndup(a, s, (size_t)n);
  if(!copy)
    return ing_arena_error(p, a);
  r->p += n;
  *out = copy;
  return 0;
}

/* A string field (ref): an index into the batch's strings, or inline. */
static int get_ref(parser *p, rdr *r, arena *a, const place *where, const char *field, size_t max,
                   const char **out)
{
  uint64_t tag;
  int why = get_v(r, &tag);
  if(why)
    return bad_number(p, r, where, field, why);
  if(!(tag & 1))
    return take_text(p, r, a, where, field, tag >> 1, max, out);
  uint64_t i = tag >> 1;
  if(i >= p->nstrs) {
    if(!p->nstrs)
      return ing_fail_at(p, where, "%s: names strings[%llu], but the batch has no strings", field,
                         (unsigned long long)i);
    return ing_fail_at(p, where, "%s: names strings[%llu], outside the batch's strings (0 to %zu)", field,
                       (unsigned long long)i, p->nstrs - 1);
  }
  if(p->strs_len[i] > max)
    return ing_fail_at(p, where, "%s: strings[%zu] is longer than %zu bytes", field, (size_t)i, max);
  *out = p->strs[i];
  return 0;
}

/* "Task-N", the default name the collector sends as its number (digits by hand: snprintf was
 * ~1% of the server's instructions on a burst of small sessions). */
static int default_name(parser *p, arena *a, const place *where, uint64_t num, const char **out)
{
  char name[25] = "Task-", *end = name + sizeof name, *d = end; /* 20 digits at most */
  do
    *--d = (char)('0' + num % 10);
  while((num /= 10) != 0);
  size_t n = (size_t)(end - d);
  memmove(name + 5, d, n);
  if(5 + n > p->lim->max_string)
    return ing_fail_at(p, where, "name: longer than %zu bytes", p->lim->max_string);
  if(!(*out = arena_strndup(a, name, 5 + n)))
    return ing_arena_error(p, a);
  return 0;
}

/* A block's stack: its frames re-encoded as the JSON text the store keeps, the innermost's
 * fields in the row. */
static int read_stack(parser *p, rdr *r, arena *a, const place *where, ingest_block *x, jbuf *stacks)
{
  int64_t n;
  int rc = get_int(p, r, where, "stack", 0, &n);
  if(rc)
    return rc;
  if((uint64_t)n > p->lim->max_frames)
    return ing_fail_at(p, where, "stack: more than %zu frames", p->lim->max_frames);
  size_t smax = p->lim->max_string;
  ing_stack_begin(stacks, x);
  for(size_t i = 0; i < (size_t)n; i++) {
    const place fw = {where->ev, i};
    int64_t line;
    const char *file, *func, *src;
    if((rc = get_int(p, r, &fw, ".line", 0, &line)) || (rc = get_ref(p, r, a, &fw, ".file", smax, &file)) ||
       (rc = get_ref(p, r, a, &fw, ".func", smax, &func)) ||
       (rc = get_ref(p, r, a, &fw, ".src", p->lim->max_exc, &src)))
      return rc;
    ing_stack_frame(stacks, x, i, file, line, func, src);
  }
  return ing_stack_end(stacks, x);
}

/* One event of kind k (flags: its high four bits) into its row. */
static int read_event(parser *p, rdr *r, ingest_batch *b, const place *where, int k, unsigned flags,
                      int64_t *prev_t, jbuf *stacks)
{
  arena *a = b->json_arena;
  size_t smax = p->lim->max_string;
  int rc = 0;
  switch(k) {
  case R_TASK: {
    ingest_task *x = &b->tasks[b->ntasks];
    if((rc = get_int(p, r, where, "id", 1, &x->id)) || (rc = get_int(p, r, where, "parent", 0, &x->parent)) ||
       (rc = get_t(p, r, where, prev_t, &x->t)))
      return rc;
    if(flags & 1) {
      uint64_t num;
      int why = get_v(r, &num);
      if(why)
        return bad_number(p, r, where, "name", why);
      rc = default_name(p, a, where, num, &x->name);
    }
    else {
      rc = get_ref(p, r, a, where, "name", smax, &x->name);
    }
    if(rc || (rc = get_ref(p, r, a, where, "coro", smax, &x->coro)) ||
       (rc = ing_see_span(p, b, where, x->t, 0, -1)))
      return rc;
    b->ntasks++;
    return 0;
  }
  case R_STEP: {
    ingest_step *x = &b->steps[b->nsteps];
    if((rc = get_int(p, r, where, "id", 1, &x->id)) || (rc = get_t(p, r, where, prev_t, &x->t)) ||
       (rc = get_int(p, r, where, "d", 0, &x->d)) || (rc = ing_see_span(p, b, where, x->t, x->d, INGEST_STEP)))
      return rc;
    b->nsteps++;
    return 0;
  }
  case R_AWAIT: {
    ingest_await *x = &b->awaits[b->nawaits];
    if((rc = get_int(p, r, where, "id", 1, &x->id)) || (rc = get_t(p, r, where, prev_t, &x->t)) ||
       (rc = get_int(p, r, where, "d", 0, &x->d)) || (rc = get_int(p, r, where, "line", 0, &x->line)) ||
       (rc = get_ref(p, r, a, where, "what", smax, &x->what)) ||
       (rc = get_ref(p, r, a, where, "file", smax, &x->file)) ||
       (rc = get_ref(p, r, a, where, "func", smax, &x->func)) ||
       (rc = ing_see_span(p, b, where, x->t, x->d, INGEST_AWAIT)))
      return rc;
    b->nawaits++;
    return 0;
  }
  case R_BLOCK: {
    ingest_block *x = &b->blocks[b->nblocks];
    x->stack_t = -1;
    if((rc = get_int(p, r, where, "id", 0, &x->id)) || (rc = get_t(p, r, where, prev_t, &x->t)) ||
       (rc = get_int(p, r, where, "d", 0, &x->d)))
      return rc;
    if(flags & 2) {
      if((rc = get_int(p, r, where, "stack_t", 0, &x->stack_t)))
        return rc;
      if(x->stack_t > x->d)
        return ing_fail_at(p, where, "stack_t: expected an integer in [0, d]: the stack is taken within the block");
    }
    if(flags & 1) {
      const char *from;
      x->elsewhere = 1;
      if((rc = get_int(p, r, where, "from_task", 0, &x->from_task)) ||
         (rc = get_ref(p, r, a, where, "from_session", p->lim->max_string, &from)))
        return rc;
      if(*from && !ingest_id_ok(from))
        return ing_fail_at(p, where, "from_session: expected null or 1 to 128 characters of [A-Za-z0-9._:@+~=-]");
      x->from_session = *from ? from : NULL;
    }
    if((rc = read_stack(p, r, a, where, x, stacks)) || (rc = ing_see_span(p, b, where, x->t, x->d, INGEST_BLOCK)))
      return rc;
    b->nblocks++;
    return 0;
  }
  case R_LAG: {
    ingest_lag *x = &b->lags[b->nlags];
    if((rc = get_t(p, r, where, prev_t, &x->t)) || (rc = get_int(p, r, where, "d", 0, &x->d)) ||
       (rc = ing_see_span(p, b, where, x->t, x->d, INGEST_LAG)))
      return rc;
    b->nlags++;
    return 0;
  }
  case R_DONE: {
    static const char *const states[] = {"ok", "cancelled", "error"};
    ingest_done *x = &b->dones[b->ndones];
    if((flags & 3) == 3)
      return ing_fail_at(p, where, "state: expected one of ok, cancelled, error");
    x->state = states[flags & 3];
    x->status = -1;
    if((rc = get_int(p, r, where, "id", 1, &x->id)) || (rc = get_t(p, r, where, prev_t, &x->t)))
      return rc;
    if(flags & 4) {
      uint64_t v;
      int why = get_v(r, &v);
      if(why)
        return bad_number(p, r, where, "status", why);
      if(v < 100 || v > 599)
        return ing_fail_at(p, where, "status: expected an integer in [100, 599]");
      x->status = (int64_t)v;
    }
    if((flags & 8) && (rc = get_ref(p, r, a, where, "exc", p->lim->max_exc, &x->exc)))
      return rc;
    if((rc = ing_see_span(p, b, where, x->t, 0, -1)))
      return rc;
    b->ndones++;
    return 0;
  }
  case R_END: {
    int64_t t;
    if((rc = get_t(p, r, where, prev_t, &t)))
      return rc;
    return ing_add_end(p, b, where, t);
  }
  default: { /* R_DROP */
    int64_t n;
    if((rc = get_int(p, r, where, "n", 0, &n)))
      return rc;
    ing_add_drop(b, n);
    return 0;
  }
  }
}

/* A field's name for an error message: field, or field[idx] (a strings table's entry) when idx
 * is not NO_IDX. Formatted only when an error is reported: naming every table entry up front with
 * snprintf cost ~750 instructions an entry, ~5k of a small session's ~427k
 * (bench/overhead/ingest_cg.sh). */
#define NO_IDX SIZE_MAX
#define FIELD_NAME_MAX 48
static const char *field_name(char buf[FIELD_NAME_MAX], const char *field, size_t idx)
{
  if(idx == NO_IDX)
    return field;
  snprintf(buf, FIELD_NAME_MAX, "%s[%zu]", field, idx);
  return buf;
}

/* A str of the batch's header (its ids, meta, table entries), varint n then n bytes of at most
 * max, where they lie: *at, *n. */
static int get_bytes(parser *p, rdr *r, const char *field, size_t idx, size_t max, const char **at, size_t *n)
{
  uint64_t v;
  int why = get_v(r, &v);
  size_t off = (size_t)(r->p - r->start);
  char buf[FIELD_NAME_MAX];
  if(why == -1 || (!why && v > (uint64_t)(r->end - r->p)))
    return ing_fail(p, "%s: the body ends inside this value (byte %zu)", field_name(buf, field, idx), off);
  if(why)
    return ing_fail(p, "%s: a number of more than 64 bits (byte %zu)", field_name(buf, field, idx), off);
  if(v > max)
    return ing_fail(p, "%s: longer than %zu bytes", field_name(buf, field, idx), max);
  *at = (const char *)r->p;
  *n = (size_t)v;
  r->p += v;
  return 0;
}

/* A str of the batch's header as text (a strings table entry), copied NUL-terminated into a; its
 * length in *len. */
static int get_str(parser *p, rdr *r, arena *a, const char *field, size_t idx, size_t max, const char **out,
                   size_t *len)
{
  const char *at;
  size_t n;
  int rc = get_bytes(p, r, field, idx, max, &at, &n);
  if(rc)
    return rc;
  char buf[FIELD_NAME_MAX];
  switch(ing_text_check(at, n, max)) {
  case TEXT_UTF8: return ing_fail(p, "%s: not valid UTF-8", field_name(buf, field, idx));
  case TEXT_NUL: return ing_fail(p, "%s: holds U+0000: no text may contain it", field_name(buf, field, idx));
  default: break;
  }
  const char *copy = arena_strndup(a, at, n);
  if(!copy)
    return ing_arena_error(p, a);
  *out = copy;
  *len = n;
  return 0;
}

/* The batch's or the session's id, refused in the JSON form's words. */
static int get_id(parser *p, rdr *r, arena *a, const char *field, const char **out)
{
  const char *at;
  size_t n;
  int rc = get_bytes(p, r, field, NO_IDX, SIZE_MAX, &at, &n);
  if(rc)
    return rc;
  const char *id = NULL;
  if(n <= 128 && !memchr(at, 0, n) && !(id = arena_strndup(a, at, n)))
    return ing_arena_error(p, a);
  if(!id || !ingest_id_ok(id))
    return ing_fail(p, "%s: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]", field);
  *out = id;
  return 0;
}

/* The batch's strings table into p (in the batch's arena). */
static int read_table(parser *p, rdr *r, arena *a)
{
  p->strs = NULL;
  p->strs_len = NULL;
  p->nstrs = 0;
  uint64_t n;
  int why = get_v(r, &n);
  if(why)
    return ing_fail(p, "strings: %s (byte %zu)", why == -1 ? "the body ends inside the count" : "a count of more than 64 bits",
                    (size_t)(r->p - r->start));
  if(n > (uint64_t)(r->end - r->p)) /* each takes a byte at least */
    return ing_fail(p, "strings: %llu strings, more than the body's bytes left", (unsigned long long)n);
  if(!n)
    return 0;
  const char **strs = ing_rows(a, (size_t)n, sizeof(*strs));
  uint32_t *lens = strs ? ing_rows(a, (size_t)n, sizeof(*lens)) : NULL;
  if(!lens)
    return ing_arena_error(p, a);
  for(size_t i = 0; i < (size_t)n; i++) {
    size_t len = 0;
    int rc = get_str(p, r, a, "strings", i, p->lim->max_exc, &strs[i], &len);
    if(rc)
      return rc;
    lens[i] = (uint32_t)len;
  }
  p->strs = strs;
  p->strs_len = lens;
  p->nstrs = (size_t)n;
  return 0;
}

static const char *const count_name[] = {"task", "step", "await", "block", "lag", "done", "end or drop"};

/* The batch's counts: the rows allocated once, exactly; every event then checked against them. */
static int read_counts(parser *p, rdr *r, ingest_batch *b, size_t counts[7])
{
  uint64_t total = 0;
  for(int i = 0; i < 7; i++) {
    uint64_t v;
    int why = get_v(r, &v);
    if(why)
      return ing_fail(p, "counts: %s (byte %zu)", why == -1 ? "the body ends inside them" : "a count of more than 64 bits",
                      (size_t)(r->p - r->start));
    if(v > p->lim->max_events)
      return ing_fail(p, "counts: %llu %s events, more than %zu", (unsigned long long)v, count_name[i],
                      p->lim->max_events);
    counts[i] = (size_t)v;
    total += v;
  }
  if(p->events_seen + total > p->lim->max_events)
    return ing_fail(p, "events: more than %zu events in one body (its batches together)", p->lim->max_events);
  /* each event takes two bytes at least: a batch cannot make the server allocate rows for
   * events its body does not hold */
  if(total > (uint64_t)(r->end - r->p) / 2)
    return ing_fail(p, "counts: %llu events, more than the body's %zu bytes left can hold", (unsigned long long)total,
                    (size_t)(r->end - r->p));
  b->events = (size_t)total;
  arena *a = b->json_arena;
  if((counts[0] && !(b->tasks = ing_rows(a, counts[0], sizeof(*b->tasks)))) ||
     (counts[1] && !(b->steps = ing_rows(a, counts[1], sizeof(*b->steps)))) ||
     (counts[2] && !(b->awaits = ing_rows(a, counts[2], sizeof(*b->awaits)))) ||
     (counts[3] && !(b->blocks = ing_rows(a, counts[3], sizeof(*b->blocks)))) ||
     (counts[4] && !(b->lags = ing_rows(a, counts[4], sizeof(*b->lags)))) ||
     (counts[5] && !(b->dones = ing_rows(a, counts[5], sizeof(*b->dones)))))
    return ing_arena_error(p, a);
  return 0;
}

static int read_batch(parser *p, rdr *r, ingest_batch *b)
{
  arena *a = b->json_arena;
  const char *meta_at;
  size_t meta_len;
  int rc;
  if((rc = get_id(p, r, a, "batch", &b->batch)) || (rc = get_id(p, r, a, "session", &b->session)))
    return rc;
  if((rc = get_bytes(p, r, "meta", NO_IDX, SIZE_MAX, &meta_at, &meta_len)))
    return rc;
  b->meta.pid = b->meta.loop = b->meta.started_ns = -1;
  if(meta_len && (rc = ing_meta_text(p, meta_at, meta_len, a, &b->meta)))
    return rc;
  size_t counts[7] = {0}, used[7] = {0};
  if((rc = read_table(p, r, a)) || (rc = read_counts(p, r, b, counts)))
    return rc;
  memcpy(p->cap, counts, sizeof(counts));
  jbuf stacks;
  jbuf_init(&stacks, 64u << 20);
  int64_t prev_t = 0;
  for(size_t i = 0; i < b->events && !rc; i++) {
    const place here = {i, NO_FRAME};
    if(r->p >= r->end) {
      rc = ing_fail(p, "events[%zu]: the body ends before it (the counts say %zu events)", i, b->events);
      break;
    }
    unsigned char kb = *r->p++;
    int k = kb & 0x0f;
    unsigned flags = kb >> 4;
    if(k < R_TASK || k > R_DROP)
      rc = ing_fail_at(p, &here, "k: %d is not a kind this server reads (1 to %d)", k, R_DROP);
    else if(flags & ~(unsigned)kind_flags[k])
      rc = ing_fail_at(p, &here, "k: flags 0x%x are not defined for a %s", flags << 4, kind_name[k]);
    else if(used[kind_count[k]]++ >= counts[kind_count[k]])
      rc = ing_fail_at(p, &here, "k: more %s events than the batch's counts say (%zu)", kind_name[k],
                       counts[kind_count[k]]);
    else
      rc = read_event(p, r, b, &here, k, flags, &prev_t, &stacks);
  }
  if(!rc && jbuf_status(&stacks))
    rc = jbuf_status(&stacks) == LS_ENOMEM ? LS_ENOMEM : ing_fail(p, "events: block stacks too large");
  for(int i = 0; i < 7 && !rc; i++)
    if(used[i] != counts[i])
      rc = ing_fail(p, "counts: %zu %s events declared, %zu found", counts[i], count_name[i], used[i]);
  size_t held = stacks.cap;
  b->stacks = jbuf_take(&stacks, NULL);
  if(!rc && held && arena_charge(a, held))
    rc = ing_arena_error(p, a); /* the stack text counts too (freed with the batch) */
  return rc;
}

int ingest_parse_records(const char *body, size_t len, const ingest_limits *lim, ingest_batch **out,
                         char *detail, size_t detail_len)
{
  parser p = {lim, detail, detail_len, {0}, NO_BATCH, 0, NULL, NULL, 0};
  *out = NULL;
  if(detail && detail_len)
    detail[0] = '\0';
  size_t magic = sizeof(INGEST_RECORDS_MAGIC) - 1;
  if(len < magic || memcmp(body, INGEST_RECORDS_MAGIC, magic) != 0)
    return ing_fail(&p, "body: expected the binary record form, which begins with \"" INGEST_RECORDS_MAGIC "\"");
  if(len == magic)
    return ing_fail(&p, "batches: expected at least one batch");
  ingest_batch *first = calloc(1, sizeof(*first));
  arena *mem = first ? malloc(sizeof(*mem)) : NULL;
  if(!mem) {
    free(first);
    return LS_ENOMEM;
  }
  arena_init(mem);
  arena_limit(mem, lim->max_tree, lim->budget);
  first->json_arena = mem;
  rdr r = {(const unsigned char *)body + magic, (const unsigned char *)body + len, (const unsigned char *)body};
  ingest_batch *b = first;
  int rc = 0;
  for(size_t i = 0; r.p < r.end; i++) {
    if(i >= lim->max_batches) {
      p.in_batch = NO_BATCH;
      rc = ing_fail(&p, "batches: more than %zu batches in one body", lim->max_batches);
      break;
    }
    p.in_batch = i;
    if(i) {
      /* linked before it is read, so ingest_free finds its stack text even on a failure */
      ingest_batch *nb = ing_rows(mem, 1, sizeof(*nb));
      if(!nb) {
        rc = ing_arena_error(&p, mem);
        break;
      }
      nb->json_arena = mem;
      b->next = nb;
      b = nb;
    }
    if((rc = read_batch(&p, &r, b)))
      break;
    p.events_seen += b->events;
  }
  if(rc) {
    ingest_free(first);
    return rc;
  }
  *out = first;
  return 0;
}
