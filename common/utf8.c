/* utf8.c — well-formed UTF-8 sequences (see utf8.h). The checks follow the Unicode standard's
 * table 3-7 row by row, so each rejected form (overlong, surrogate, too large) has one line. */
#include "utf8.h"

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  /* the allowed range of the second byte depends on the lead; the others are 80..BF */
  unsigned lo = 0x80, hi = 0xBF;
  if(c < 0x80)
    return 1;
  if(c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if(c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if(c == 0xE0)
      lo = 0xA0; /* E0 80..9F would be overlong */
    else if(c == 0xED)
      hi = 0x9F; /* ED A0..BF would be a surrogate */
  }
  else if(c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if(c == 0xF0)
      lo = 0x90; /* F0 80..8F would be overlong */
    else if(c == 0xF4)
      hi = 0x8F; /* F4 90.. would be above U+10FFFF */
  }
  else
    return 0; /* 80..C1 (continuation, overlong 2-byte) and F5..FF (beyond U+10FFFF, 5/6-byte) */
  if(n < len)
    return 0;
  if(s[1] < lo || s[1] > hi)
    return 0;
  for(size_t i = 2; i < len; i++)
    if((s[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

size_t utf8_clean_len(const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, len = n;
  while(i < n) {
    if(s[i] && s[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = s[i] ? utf8_seq_len(s + i, n - i) : 0;
    if(!k) { /* one byte becomes the three of U+FFFD */
      len += 2;
      k = 1;
    }
    i += k;
  }
  return len;
}

int utf8_valid(const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while(i < n) {
    if(s[i] < 0x80) { /* ASCII runs are the common case: no call per byte */
      i++;
      continue;
    }
    size_t k = utf8_seq_len(s + i, n - i);
    if(!k)
      return 0;
    i += k;
  }
  return 1;
}
