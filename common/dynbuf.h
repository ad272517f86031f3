/* dynbuf.h — the one growable byte buffer of loopscope (curl's dynbuf idea), shared by the server
 * (server/jbuf.h builds its JSON helpers on it) and the collector (collector/src's ls_buf is this
 * type): a hard ceiling it refuses to grow past, a sticky failure code instead of a crash, and
 * the JSON pieces both sides need (escaped strings, integers). Nothing here knows about HTTP, SQL
 * or events. */
#ifndef LS_COMMON_DYNBUF_H
#define LS_COMMON_DYNBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The buffer's own failure codes (each program maps them onto its own set). */
#define DYNBUF_OK 0
#define DYNBUF_ENOMEM (-1)  /* realloc failed */
#define DYNBUF_ETOOBIG (-2) /* the append would pass the ceiling `max` */
#define DYNBUF_EFORMAT (-3) /* vsnprintf refused the format */

typedef struct dynbuf {
  char *data;  /* owned; NUL-terminated whenever it is not NULL; free with dynbuf_free */
  size_t len;  /* bytes held, not counting the NUL */
  size_t cap;  /* bytes allocated; cap > len whenever data exists (room for the NUL) */
  size_t max;  /* the buffer refuses to hold more than this many bytes */
  int failed;  /* sticky: 0, or the DYNBUF_E* code of the first append that failed; an append
                * that fails adds nothing, and every later one is refused too */
} dynbuf;

void dynbuf_init(dynbuf *b, size_t max);
void dynbuf_free(dynbuf *b);
/* Hands the bytes to the caller (malloc'd, NUL-terminated, NULL when nothing was ever appended)
 * and leaves b empty with its ceiling and failure code. */
char *dynbuf_take(dynbuf *b, size_t *len);

/* Empties b for reuse, keeping its memory (and a failure already recorded). */
static inline void dynbuf_reset(dynbuf *b)
{
  b->len = 0;
  if(b->data)
    b->data[0] = '\0';
}

/* Appends n bytes; the slow path grows the buffer (or records the failure). */
void dynbuf_append_slow(dynbuf *b, const void *p, size_t n);
/* Makes room for n more bytes now (clamped to the ceiling), so a large answer grows once. */
void dynbuf_grow(dynbuf *b, size_t n);

static inline void dynbuf_append(dynbuf *b, const void *p, size_t n)
{
  if(!b->failed && n < b->cap - b->len) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
  }
  else
    dynbuf_append_slow(b, p, n);
}

static inline void dynbuf_puts(dynbuf *b, const char *s)
{
  dynbuf_append(b, s, strlen(s));
}

static inline void dynbuf_putc(dynbuf *b, char c)
{
  dynbuf_append(b, &c, 1);
}

void dynbuf_printf(dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dynbuf_u64(dynbuf *b, uint64_t v);
void dynbuf_i64(dynbuf *b, int64_t v);

/* A JSON string literal of the n bytes at s: quote, backslash and control characters escaped
 * (\n \r \t by name, others as \u00XX), well-formed UTF-8 copied as is, and each byte that does
 * not start a well-formed sequence (common/utf8.h) replaced by U+FFFD — so the output is always
 * valid JSON in valid UTF-8, whatever the input. NUL becomes U+FFFD too: ingest v1 refuses any
 * text holding U+0000 (docs/api.md), so a collector string with one would cost a whole batch. */
void dynbuf_json_str(dynbuf *b, const char *s, size_t n);
/* Appends n bytes of s as well-formed UTF-8 without U+0000, cleaned as dynbuf_json_str cleans
 * them (each NUL and each byte that starts no well-formed sequence becomes U+FFFD), unescaped:
 * utf8_clean_len(s, n) bytes. For text carried raw, as in the binary record form. */
void dynbuf_text(dynbuf *b, const char *s, size_t n);

#endif
