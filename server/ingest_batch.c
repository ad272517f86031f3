/* ingest_batch.c — what both readers of an ingest body (ingest.c: JSON; ingest_records.c: the binary
 * record form) build a batch with: the limits, the id check, errors that name a value's place in
 * the body, the checks every string and span passes, a batch's drops and end, a block's stack as
 * the JSON text the store keeps, rows from the batch's arena, and freeing a parsed body. Kept in
 * one place so that a batch reads the same, and is refused in the same words, in either form. */
#include "ingest.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ingest_internal.h"
#include "jbuf.h"
#include "utf8.h"

void ingest_default_limits(ingest_limits *lim)
{
  lim->max_events = 100000;
  lim->max_batches = 10000;
  lim->max_string = 4096;
  lim->max_exc = 16384;
  lim->max_frames = 256;
  lim->max_depth = 16;
  lim->max_tree = (size_t)128 << 20;
  lim->budget = NULL;
}

int ingest_id_ok(const char *s)
{
  size_t n = 0;
  for(; s[n]; n++) {
    char c = s[n];
    if(n >= 128)
      return 0;
    if((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      continue;
    if(!strchr("._:@+~=-", c))
      return 0;
  }
  return n > 0;
}

/* Starts detail with "batches[i]." inside a multi-batch body (nothing otherwise), so every error
 * names its place in the whole body. Returns the bytes written. detail is non-empty. */
static size_t put_prefix(parser *p)
{
  p->detail[0] = '\0';
  if(p->in_batch == NO_BATCH)
    return 0;
  int n = snprintf(p->detail, p->detail_len, "batches[%zu].", p->in_batch);
  return n < 0 ? 0 : (size_t)n < p->detail_len ? (size_t)n : p->detail_len - 1;
}

int ing_fail(parser *p, const char *fmt, ...)
{
  if(p->detail && p->detail_len) {
    size_t used = put_prefix(p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail + used, p->detail_len - used, fmt, ap);
    va_end(ap);
  }
  return LS_EINVAL;
}

int ing_fail_at(parser *p, const place *at, const char *fmt, ...)
{
  if(p->detail && p->detail_len) {
    size_t used = put_prefix(p), room = p->detail_len - used;
    int n;
    if(at->ev == IN_META)
      n = snprintf(p->detail + used, room, "meta.");
    else if(at->frame == NO_FRAME)
      n = snprintf(p->detail + used, room, "events[%zu].", at->ev);
    else
      n = snprintf(p->detail + used, room, "events[%zu].stack[%zu]", at->ev, at->frame);
    used += n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail + used, p->detail_len - used, fmt, ap);
    va_end(ap);
  }
  return LS_EINVAL;
}

/* An event's strings and a batch's strings table are held to it alike, in either form of body.
 * (A JSON string cannot hold U+0000 here: prescan refuses the body first.) */
int ing_text_check(const char *s, size_t n, size_t max)
{
  if(n > max)
    return TEXT_LONG;
  if(!utf8_valid(s, n))
    return TEXT_UTF8;
  return memchr(s, 0, n) ? TEXT_NUL : TEXT_OK;
}

/* Every derived time (an item's end, a session's duration) must stay a JSON-safe integer too,
 * so an item's end t + d is held to the same [0, 2^53) as t and d themselves. */
int ing_see_span(parser *p, ingest_batch *b, const place *where, int64_t t, int64_t d, int row_kind)
{
  if(t + d >= ((int64_t)1 << 53)) /* t, d < 2^53 each: the sum cannot overflow */
    return ing_fail_at(p, where, "d: t + d must stay below 2^53");
  if(t + d > b->max_t)
    b->max_t = t + d;
  if(row_kind >= 0 && d > b->max_d[row_kind])
    b->max_d[row_kind] = d;
  return 0;
}

void ing_add_drop(ingest_batch *b, int64_t n)
{
  /* saturated: every number the API derives from it stays below 2^53 (the JSON contract), and
   * 100000 terms of up to 2^53 - 1 would overflow an int64_t */
  b->dropped = n > INGEST_MAX_INT - b->dropped ? INGEST_MAX_INT : b->dropped + n;
}

int ing_add_end(parser *p, ingest_batch *b, const place *where, int64_t t)
{
  if(!b->has_end || t > b->end_t)
    b->end_t = t;
  b->has_end = 1;
  return ing_see_span(p, b, where, t, 0, -1);
}

void ing_stack_begin(jbuf *stacks, ingest_block *blk)
{
  blk->line = -1;
  blk->stack_off = stacks->len;
  jbuf_putc(stacks, '[');
}

void ing_stack_frame(jbuf *stacks, ingest_block *blk, size_t i, const char *file, int64_t line, const char *func,
                     const char *src)
{
  if(i)
    jbuf_putc(stacks, ',');
  jbuf_putc(stacks, '{');
  jbuf_key(stacks, "file", 0); jbuf_str(stacks, file);
  jbuf_key(stacks, "line", 1);
  if(line >= 0) jbuf_i64(stacks, line); else jbuf_puts(stacks, "null");
  jbuf_key(stacks, "func", 1); jbuf_str(stacks, func);
  jbuf_key(stacks, "src", 1); jbuf_str(stacks, src);
  jbuf_putc(stacks, '}');
  blk->file = file;
  blk->func = func;
  blk->src = src;
  blk->line = line;
}

int ing_stack_end(jbuf *stacks, ingest_block *blk)
{
  jbuf_putc(stacks, ']');
  blk->stack_len = stacks->len - blk->stack_off;
  return jbuf_status(stacks);
}

int ing_arena_error(parser *p, const arena *a)
{
  if(a->failed == ARENA_CAPPED) {
    ing_fail(p, "body: the parsed batch needs more than %zu bytes (each JSON value takes at least 64 bytes "
            "once parsed): send smaller batches",
         a->cap);
    return LS_ETOOBIG;
  }
  if(a->failed == ARENA_NOBUDGET) {
    ing_fail(p, "the server's memory for batches being parsed and queued (--max-memory) is in use; retry later");
    return LS_EBUSY;
  }
  return LS_ENOMEM;
}

void *ing_rows(arena *a, size_t n, size_t size)
{
  if(n > SIZE_MAX / size)
    return NULL;
  void *p = arena_alloc(a, n * size);
  if(p)
    memset(p, 0, n * size);
  return p;
}

size_t ingest_count(const ingest_batch *b)
{
  size_t n = 0;
  for(; b; b = b->next)
    n++;
  return n;
}

void ingest_free(ingest_batch *b)
{
  if(!b)
    return;
  /* the later batches of a multi-batch body live in the arena: their stack text goes first */
  for(ingest_batch *x = b->next; x; x = x->next)
    free(x->stacks);
  if(b->json_arena) {
    arena_free(b->json_arena);
    free(b->json_arena);
  }
  free(b->stacks); /* the rows were in the arena */
  free(b);
}
