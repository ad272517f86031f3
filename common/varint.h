/* varint.h — the numbers of the collector's records and of the binary ingest form that carries
 * them (docs/api.md, "Binary record bodies"): unsigned LEB128 of at most 64 bits, and zigzag for
 * differences of either sign. One reader for both sides, the collector re-reading its own records
 * (collector/src/lsencode.c) and the server reading untrusted bodies (server/ingest_records.c),
 * so both refuse the same bytes. Header only: no allocation, no I/O. */
#ifndef LS_COMMON_VARINT_H
#define LS_COMMON_VARINT_H

#include <stdint.h>

/* Reads one number at *p, before end, into *v and moves *p past it: 0; or -1 when end comes
 * inside it, -2 when it passes 64 bits (then *p and *v are as they were). */
static inline int varint_get(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
  const unsigned char *s = *p;
  if(s < end && *s < 0x80) { /* ids, lines, table numbers, short times: one byte */
    *v = *s;
    *p = s + 1;
    return 0;
  }
  uint64_t x = 0;
  for(unsigned sh = 0;; sh += 7) {
    if(s >= end)
      return -1;
    unsigned char b = *s++;
    if(sh == 63 && b > 1)
      return -2;
    x |= (uint64_t)(b & 0x7f) << sh;
    if(!(b & 0x80)) /* at bit 63 always: b is 0 or 1 there */
      break;
  }
  *v = x;
  *p = s;
  return 0;
}

/* A zigzag number back to the difference it holds (in unsigned arithmetic: it wraps). */
static inline uint64_t varint_unzz(uint64_t v) { return (v >> 1) ^ (0 - (v & 1)); }

#endif
