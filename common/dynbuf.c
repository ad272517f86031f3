/* dynbuf.c — bounded growable buffer and its JSON string/integer writers (see dynbuf.h). Which
 * JSON to write is the callers' business (server/jbuf.c, collector/src/lsencode.c). */
#include "dynbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void dynbuf_init(dynbuf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->failed = 0;
}

void dynbuf_free(dynbuf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *dynbuf_take(dynbuf *b, size_t *len)
{
  char *p = b->data;
  if(len)
    *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

/* Makes room for n more bytes plus the terminating NUL, or records why it cannot. */
static int dynbuf_reserve(dynbuf *b, size_t n)
{
  if(b->failed)
    return b->failed;
  /* len + n must stay <= max, and < SIZE_MAX so that the NUL's byte can be counted */
  if(n > b->max || b->len > b->max - n || b->len + n == SIZE_MAX) {
    b->failed = DYNBUF_ETOOBIG;
    return b->failed;
  }
  size_t need = b->len + n + 1;
  if(need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while(cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if(b->max < SIZE_MAX && cap > b->max + 1)
    cap = b->max + 1; /* never allocate past what the ceiling can use */
  char *p = realloc(b->data, cap);
  if(!p) {
    b->failed = DYNBUF_ENOMEM;
    return b->failed;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void dynbuf_append_slow(dynbuf *b, const void *p, size_t n)
{
  if(dynbuf_reserve(b, n))
    return;
  if(n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void dynbuf_grow(dynbuf *b, size_t n)
{
  size_t room = b->max - (b->len < b->max ? b->len : b->max);
  dynbuf_reserve(b, n < room ? n : room);
}

void dynbuf_printf(dynbuf *b, const char *fmt, ...)
{
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if(n < 0) {
    b->failed = b->failed ? b->failed : DYNBUF_EFORMAT;
    return;
  }
  if((size_t)n < sizeof(small)) {
    dynbuf_append(b, small, (size_t)n);
    return;
  }
  if(dynbuf_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Two digits a step, from a table: the collector's sender writes ~300 numbers a web request's
 * session (times of 6 to 9 digits mostly), and a digit a step was its largest function: 42.8M
 * instructions for 2,000 sessions, 32.8M so (callgrind, bench/overhead/README.md, stop 44;
 * writing the digits in place in the buffer instead of copying them counted 39.9M). */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

void dynbuf_u64(dynbuf *b, uint64_t v)
{
  char tmp[24];
  char *p = tmp + sizeof(tmp);
  while(v >= 100) {
    size_t r = (size_t)(v % 100);
    v /= 100;
    p -= 2;
    memcpy(p, digit_pairs + 2 * r, 2);
  }
  if(v >= 10) {
    p -= 2;
    memcpy(p, digit_pairs + 2 * v, 2);
  }
  else
    *--p = (char)('0' + v);
  dynbuf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void dynbuf_i64(dynbuf *b, int64_t v)
{
  if(v < 0) {
    dynbuf_putc(b, '-');
    dynbuf_u64(b, (uint64_t)0 - (uint64_t)v);
  }
  else
    dynbuf_u64(b, (uint64_t)v);
}

void dynbuf_text(dynbuf *b, const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t run = 0, i = 0;
  while(i < n) {
    size_t k = u[i] && u[i] < 0x80 ? 1 : u[i] ? utf8_seq_len(u + i, n - i) : 0;
    if(k) {
      i += k;
      continue;
    }
    dynbuf_append(b, u + run, i - run);
    dynbuf_append(b, "\xEF\xBF\xBD", 3);
    run = ++i;
  }
  dynbuf_append(b, u + run, n - run);
}

void dynbuf_json_str(dynbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  dynbuf_putc(b, '"');
  size_t run = 0; /* start of the pending stretch of bytes that need no escaping */
  size_t i = 0;
  while(i < n) {
    unsigned c = u[i];
    if(c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if(c >= 0x80) {
      size_t k = utf8_seq_len(u + i, n - i);
      if(k) {
        i += k;
        continue;
      }
    }
    dynbuf_append(b, u + run, i - run);
    switch(c) {
    case '"': dynbuf_append(b, "\\\"", 2); break;
    case '\\': dynbuf_append(b, "\\\\", 2); break;
    case '\n': dynbuf_append(b, "\\n", 2); break;
    case '\r': dynbuf_append(b, "\\r", 2); break;
    case '\t': dynbuf_append(b, "\\t", 2); break;
    case '\0': /* the ingest contract allows no U+0000 in text (it cut ids short): */
      dynbuf_append(b, "\xEF\xBF\xBD", 3); /* a collector string holding one must not cost a batch */
      break;
    default:
      if(c < 0x20) {
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        dynbuf_append(b, e, 6);
      }
      else
        dynbuf_append(b, "\xEF\xBF\xBD", 3); /* a byte that starts no well-formed sequence */
    }
    i++;
    run = i;
  }
  dynbuf_append(b, u + run, n - run);
  dynbuf_putc(b, '"');
}
