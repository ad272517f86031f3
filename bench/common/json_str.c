/* json_str.c — what the shared JSON string writer (common/dynbuf.c's dynbuf_json_str) costs
 * against the server's escaper before common/ (a copy of that loop, below, which passed bytes
 * >= 0x80 through unchecked). The new one checks each non-ASCII sequence with common/utf8.c (to
 * replace what is not UTF-8); for ASCII it does the same work. Prints MB/s and the ratio per kind
 * of text; asserts nothing. Run: build/bench/common/bench_json_str [MiB per kind, default 64]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynbuf.h"

/* The server's jbuf_strn before common/ (server/jbuf.c at 3ba7c9f), on the shared buffer. */
static void before_strn(dynbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  dynbuf_putc(b, '"');
  size_t run = 0;
  for(size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c >= 0x20 && c != '"' && c != '\\')
      continue;
    dynbuf_append(b, s + run, i - run);
    run = i + 1;
    switch(c) {
    case '"': dynbuf_append(b, "\\\"", 2); break;
    case '\\': dynbuf_append(b, "\\\\", 2); break;
    case '\n': dynbuf_append(b, "\\n", 2); break;
    case '\r': dynbuf_append(b, "\\r", 2); break;
    case '\t': dynbuf_append(b, "\\t", 2); break;
    default: {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      dynbuf_append(b, e, 6);
    }
    }
  }
  dynbuf_append(b, s + run, n - run);
  dynbuf_putc(b, '"');
}

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* MB/s of writing `total` bytes as strings of the sample's pieces (each `piece` bytes long). */
static double run(void (*w)(dynbuf *, const char *, size_t), const char *piece, size_t plen, size_t total)
{
  dynbuf b;
  dynbuf_init(&b, (size_t)1 << 30);
  dynbuf_grow(&b, 4 * plen + 64);
  double t0 = now_s();
  for(size_t done = 0; done < total; done += plen) {
    dynbuf_reset(&b);
    w(&b, piece, plen);
  }
  double dt = now_s() - t0;
  if(b.failed)
    fprintf(stderr, "buffer failed\n");
  dynbuf_free(&b);
  return (double)total / 1e6 / dt;
}

int main(int argc, char **argv)
{
  size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 64;
  size_t total = (mib ? mib : 64) << 20;
  static const struct { const char *what, *text; } kinds[] = {
    {"ascii path", "app/handlers/users.py:fetch_user AsyncSession.execute GET /users/{user_id} "},
    {"ascii + escapes", "ValueError: bad \"id\"\n  File \"app.py\", line 3\n\tin main\\x "},
    {"latin + cjk", "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac" "5 "},
    {"emoji", "\xf0\x9f\x98\x80\xf0\x9f\x9a\x80 task \xf0\x9f\x8e\x89\xf0\x9f\x94\xa5 "},
  };
  char piece[4096];
  printf("%-16s %12s %12s %8s\n", "text", "before MB/s", "now MB/s", "now/before");
  for(size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    size_t one = strlen(kinds[k].text), n = 0;
    while(n + one < 200) { /* strings of ~200 bytes, as names, files and exceptions are */
      memcpy(piece + n, kinds[k].text, one);
      n += one;
    }
    double before = 0, now = 0;
    for(int rep = 0; rep < 3; rep++) { /* best of three each: the machine is shared */
      double x = run(before_strn, piece, n, total), y = run(dynbuf_json_str, piece, n, total);
      before = x > before ? x : before;
      now = y > now ? y : now;
    }
    printf("%-16s %12.0f %12.0f %8.2f\n", kinds[k].what, before, now, now / before);
  }
  return 0;
}
