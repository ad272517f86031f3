/* lssrc.c — one line of a source file, for block stacks: the watchdog records only file and line
 * under the GIL, and the sender thread (which holds no GIL) reads the text here while encoding. */
#include <stdio.h>
#include <string.h>

#include "lscore.h"

#define SRC_MAX_BYTES (16u << 20)

/* The file is read in blocks and its newlines found with memchr: a block's stack names several
 * stdlib files (asyncio's base_events.py is 80 kB) and reading them a byte at a time with getc
 * took ~4 ms of the sender's time per block stack. */
size_t ls_src_line(const char *file, size_t nfile, int line, char *out, size_t cap) {
  char path[4096];
  char buf[16384];
  if (!cap) return 0;
  out[0] = 0;
  if (line <= 0 || nfile == 0 || nfile >= sizeof path || file[0] == '<' || memchr(file, 0, nfile)) return 0;
  memcpy(path, file, nfile);
  path[nfile] = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  int cur = 1;
  size_t n = 0, total = 0, len = 0;
  const char *p = NULL, *end = NULL;
  /* Invariant: [p, end) is the unread part of buf; cur is the line p is on. */
  while (cur < line) {
    if (p == end) {
      if (total >= SRC_MAX_BYTES || (len = fread(buf, 1, sizeof buf, f)) == 0) break;
      total += len;
      p = buf;
      end = buf + len;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) { p = end; continue; }
    p = nl + 1;
    cur++;
  }
  if (cur == line) {
    /* skip leading blanks, keep the rest of the line up to cap-1 bytes */
    int c;
#define NEXT() (p < end ? (unsigned char)*p++ : ((len = fread(buf, 1, sizeof buf, f)) ? (p = buf, end = buf + len, (unsigned char)*p++) : EOF))
    while ((c = NEXT()) == ' ' || c == '\t') {}
    while (c != EOF && c != '\n' && c != '\r' && n + 1 < cap) {
      out[n++] = (char)c;
      c = NEXT();
    }
#undef NEXT
    /* do not cut a UTF-8 character in two when the line was longer than cap */
    if (c != EOF && c != '\n' && c != '\r')
      while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80) n--, out[n] = 0;
    if (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0xC0) n--;
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
    out[n] = 0;
  }
  fclose(f);
  return n;
}
