/* jbuf.h — a growable byte buffer with a hard ceiling (curl's dynbuf idea) and the JSON
 * writing helpers built on it: escaped strings, integers, doubles. Every producer of JSON text
 * (query.c, export.c, http.c errors) writes through this; nothing here knows about HTTP or SQL. */
#ifndef LS_JBUF_H
#define LS_JBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"

typedef struct jbuf {
  char *data;      /* NUL-terminated while len < cap; owned, free with jbuf_free */
  size_t len;
  size_t cap;
  size_t max;      /* the buffer refuses to grow past this many bytes */
  int failed;      /* sticky: set once an append failed (LS_ENOMEM or LS_ETOOBIG) */
} jbuf;

void jbuf_init(jbuf *b, size_t max);
void jbuf_free(jbuf *b);
/* Hands the bytes to the caller (malloc'd, NUL-terminated, may be NULL when empty) and resets b. */
char *jbuf_take(jbuf *b, size_t *len);
/* 0 when every append so far succeeded, otherwise the first error code. */
int jbuf_status(const jbuf *b);

/* Empties b for reuse, keeping its memory (and a failure already recorded). */
static inline void jbuf_reset(jbuf *b)
{
  b->len = 0;
  if(b->data)
    b->data[0] = '\0';
}

/* Appends n bytes; the slow path grows the buffer (or records the failure). */
void jbuf_append_slow(jbuf *b, const void *p, size_t n);
/* Makes room for n more bytes now, so a large answer grows once instead of by doublings. */
void jbuf_grow(jbuf *b, size_t n);

static inline void jbuf_append(jbuf *b, const void *p, size_t n)
{
  if(!b->failed && n < b->cap - b->len) { /* cap > len whenever data exists: room for the NUL */
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
  }
  else
    jbuf_append_slow(b, p, n);
}

static inline void jbuf_puts(jbuf *b, const char *s)
{
  jbuf_append(b, s, strlen(s));
}

static inline void jbuf_putc(jbuf *b, char c)
{
  jbuf_append(b, &c, 1);
}
void jbuf_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* JSON pieces. Strings are escaped (quotes, backslash, control characters); NULL writes null. */
void jbuf_str(jbuf *b, const char *s);
void jbuf_strn(jbuf *b, const char *s, size_t n);
void jbuf_i64(jbuf *b, int64_t v);
/* A finite double with up to `digits` decimals, trailing zeros trimmed; NaN/inf write 0. */
void jbuf_f64(jbuf *b, double v, int digits);
/* "key": (with a comma first when `comma` is non-zero) */
void jbuf_key(jbuf *b, const char *key, int comma);

#endif
