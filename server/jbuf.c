/* jbuf.c — bounded growable buffer and JSON text helpers (see jbuf.h). Knows nothing of HTTP,
 * SQL or the shapes of loopscope's answers; query.c and export.c decide what to write. */
#include "jbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jbuf_init(jbuf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->failed = 0;
}

void jbuf_free(jbuf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *jbuf_take(jbuf *b, size_t *len)
{
  char *p = b->data;
  if(len)
    *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

int jbuf_status(const jbuf *b)
{
  return b->failed;
}

/* Makes room for n more bytes plus the terminating NUL. */
static int jbuf_reserve(jbuf *b, size_t n)
{
  if(b->failed)
    return b->failed;
  if(n > b->max || b->len > b->max - n) {
    b->failed = LS_ETOOBIG;
    return b->failed;
  }
  size_t need = b->len + n + 1;
  if(need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while(cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if(cap > b->max + 1)
    cap = b->max + 1;
  char *p = realloc(b->data, cap);
  if(!p) {
    b->failed = LS_ENOMEM;
    return b->failed;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void jbuf_append_slow(jbuf *b, const void *p, size_t n)
{
  if(jbuf_reserve(b, n))
    return;
  if(n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void jbuf_grow(jbuf *b, size_t n)
{
  if(n > b->max - (b->len < b->max ? b->len : b->max))
    n = b->max - (b->len < b->max ? b->len : b->max);
  jbuf_reserve(b, n);
}

void jbuf_printf(jbuf *b, const char *fmt, ...)
{
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if(n < 0) {
    b->failed = b->failed ? b->failed : LS_EINVAL;
    return;
  }
  if((size_t)n < sizeof(small)) {
    jbuf_append(b, small, (size_t)n);
    return;
  }
  if(jbuf_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void jbuf_strn(jbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  if(!s) {
    jbuf_append(b, "null", 4);
    return;
  }
  jbuf_putc(b, '"');
  size_t run = 0; /* start of the current stretch that needs no escaping */
  for(size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c >= 0x20 && c != '"' && c != '\\')
      continue;
    jbuf_append(b, s + run, i - run);
    run = i + 1;
    switch(c) {
    case '"': jbuf_append(b, "\\\"", 2); break;
    case '\\': jbuf_append(b, "\\\\", 2); break;
    case '\n': jbuf_append(b, "\\n", 2); break;
    case '\r': jbuf_append(b, "\\r", 2); break;
    case '\t': jbuf_append(b, "\\t", 2); break;
    default: {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      jbuf_append(b, e, 6);
    }
    }
  }
  jbuf_append(b, s + run, n - run);
  jbuf_putc(b, '"');
}

void jbuf_str(jbuf *b, const char *s)
{
  jbuf_strn(b, s, s ? strlen(s) : 0);
}

void jbuf_i64(jbuf *b, int64_t v)
{
  char tmp[24];
  char *p = tmp + sizeof(tmp);
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while(u);
  if(v < 0)
    *--p = '-';
  jbuf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void jbuf_f64(jbuf *b, double v, int digits)
{
  if(!isfinite(v)) {
    jbuf_putc(b, '0');
    return;
  }
  char tmp[64];
  int n = snprintf(tmp, sizeof(tmp), "%.*f", digits, v);
  if(n <= 0 || (size_t)n >= sizeof(tmp)) {
    jbuf_putc(b, '0');
    return;
  }
  if(strchr(tmp, '.')) {
    while(n > 1 && tmp[n - 1] == '0')
      n--;
    if(tmp[n - 1] == '.')
      n--;
  }
  if(n == 2 && tmp[0] == '-' && tmp[1] == '0') { /* "-0" after trimming */
    jbuf_putc(b, '0');
    return;
  }
  jbuf_append(b, tmp, (size_t)n);
}

void jbuf_key(jbuf *b, const char *key, int comma)
{
  if(comma)
    jbuf_putc(b, ',');
  jbuf_str(b, key);
  jbuf_putc(b, ':');
}
