/* jbuf.h — the server's JSON text builder: the shared bounded buffer (common/dynbuf.h) under the
 * server's names, plus what only the server writes (doubles, object keys, NULL as null). Every
 * producer of JSON text (query.c, export.c, http.c errors) writes through this; nothing here
 * knows about HTTP or SQL. */
#ifndef LS_JBUF_H
#define LS_JBUF_H

#include <stddef.h>
#include <stdint.h>

#include "dynbuf.h"
#include "errors.h"

/* Fields as in dynbuf: data (NUL-terminated, owned), len, cap, max (the ceiling), failed. Read
 * the failure with jbuf_status: it speaks the server's LS_* codes. */
typedef dynbuf jbuf;

static inline void jbuf_init(jbuf *b, size_t max) { dynbuf_init(b, max); }
static inline void jbuf_free(jbuf *b) { dynbuf_free(b); }
/* Hands the bytes to the caller (malloc'd, NUL-terminated, may be NULL when empty) and resets b. */
static inline char *jbuf_take(jbuf *b, size_t *len) { return dynbuf_take(b, len); }
/* 0 when every append so far succeeded, otherwise the first error as an LS_* code. */
int jbuf_status(const jbuf *b);
/* Empties b for reuse, keeping its memory (and a failure already recorded). */
static inline void jbuf_reset(jbuf *b) { dynbuf_reset(b); }
/* Makes room for n more bytes now, so a large answer grows once instead of by doublings. */
static inline void jbuf_grow(jbuf *b, size_t n) { dynbuf_grow(b, n); }
static inline void jbuf_append(jbuf *b, const void *p, size_t n) { dynbuf_append(b, p, n); }
static inline void jbuf_puts(jbuf *b, const char *s) { dynbuf_puts(b, s); }
static inline void jbuf_putc(jbuf *b, char c) { dynbuf_putc(b, c); }
#define jbuf_printf dynbuf_printf

/* JSON pieces. Strings are escaped and always valid UTF-8 (dynbuf_json_str: invalid bytes become
 * U+FFFD); NULL writes null. */
void jbuf_str(jbuf *b, const char *s);
void jbuf_strn(jbuf *b, const char *s, size_t n);
static inline void jbuf_i64(jbuf *b, int64_t v) { dynbuf_i64(b, v); }
/* A finite double with up to `digits` decimals, trailing zeros trimmed; NaN/inf write 0. */
void jbuf_f64(jbuf *b, double v, int digits);
/* A finite double as the fewest significant digits (15 to 17) that read back as the same double:
 * 0.1, 0.3333333333333333, 1e-07 (what a client sent comes back as sent); NaN/inf write 0. */
void jbuf_real(jbuf *b, double v);
/* "key": (with a comma first when `comma` is non-zero) */
void jbuf_key(jbuf *b, const char *key, int comma);

#endif
