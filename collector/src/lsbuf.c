/* lsbuf.c — the growable byte buffer with a hard ceiling and its JSON writers (strings escaped,
 * integers). Used by the encoder and the sender; knows nothing about events or HTTP. */
#include <stdlib.h>
#include <string.h>

#include "lscore.h"

void ls_buf_init(ls_buf *b, size_t max) {
  memset(b, 0, sizeof *b);
  b->max = max;
}

void ls_buf_free(ls_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static int ls_buf_reserve(ls_buf *b, size_t n) {
  if (b->failed) return -1;
  if (n > b->max || b->len > b->max - n) { b->failed = 1; return -1; }
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  if (cap > b->max + 1) cap = b->max + 1;
  char *p = realloc(b->p, cap);
  if (!p) { b->failed = 1; return -1; }
  b->p = p;
  b->cap = cap;
  return 0;
}

void ls_buf_append(ls_buf *b, const void *p, size_t n) {
  if (ls_buf_reserve(b, n)) return;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
}

void ls_buf_puts(ls_buf *b, const char *s) { ls_buf_append(b, s, strlen(s)); }

void ls_buf_u64(ls_buf *b, uint64_t v) {
  char tmp[24];
  int i = (int)sizeof tmp;
  do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  ls_buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

void ls_buf_i64(ls_buf *b, int64_t v) {
  if (v < 0) { ls_buf_append(b, "-", 1); ls_buf_u64(b, (uint64_t)0 - (uint64_t)v); }
  else ls_buf_u64(b, (uint64_t)v);
}

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  size_t len;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3;
  else if (c >= 0xF0 && c <= 0xF4) len = 4;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && s[1] < 0xA0) return 0;            /* overlong */
  if (c == 0xED && s[1] >= 0xA0) return 0;           /* surrogate */
  if (c == 0xF0 && s[1] < 0x90) return 0;            /* overlong */
  if (c == 0xF4 && s[1] >= 0x90) return 0;           /* > U+10FFFF */
  return len;
}

void ls_buf_jstr(ls_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  ls_buf_append(b, "\"", 1);
  size_t run = 0; /* start of the pending run of bytes that need no escaping */
  size_t i = 0;
  while (i < n) {
    unsigned c = u[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { i++; continue; }
    if (c >= 0x80) {
      size_t k = utf8_seq(u + i, n - i);
      if (k) { i += k; continue; }
    }
    ls_buf_append(b, u + run, i - run);
    if (c == '"') ls_buf_append(b, "\\\"", 2);
    else if (c == '\\') ls_buf_append(b, "\\\\", 2);
    else if (c == '\n') ls_buf_append(b, "\\n", 2);
    else if (c == '\t') ls_buf_append(b, "\\t", 2);
    else if (c == '\r') ls_buf_append(b, "\\r", 2);
    else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      ls_buf_append(b, esc, 6);
    } else {
      ls_buf_append(b, "\xEF\xBF\xBD", 3); /* an invalid byte */
    }
    i++;
    run = i;
  }
  ls_buf_append(b, u + run, n - run);
  ls_buf_append(b, "\"", 1);
}
