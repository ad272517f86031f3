/* lssrc.c — one line of a source file, for block stacks: the watchdog records only file and line
 * under the GIL, and the sender thread (which holds no GIL) reads the text here while encoding. */
#include <stdio.h>
#include <string.h>

#include "lscore.h"

#define SRC_MAX_BYTES (16u << 20)

size_t ls_src_line(const char *file, size_t nfile, int line, char *out, size_t cap) {
  char path[4096];
  if (!cap) return 0;
  out[0] = 0;
  if (line <= 0 || nfile == 0 || nfile >= sizeof path || file[0] == '<' || memchr(file, 0, nfile)) return 0;
  memcpy(path, file, nfile);
  path[nfile] = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  int cur = 1, c;
  size_t n = 0, read = 0;
  while (cur < line && (c = getc(f)) != EOF && ++read < SRC_MAX_BYTES)
    if (c == '\n') cur++;
  if (cur == line) {
    /* skip leading blanks, keep the rest of the line up to cap-1 bytes */
    while ((c = getc(f)) == ' ' || c == '\t') {}
    while (c != EOF && c != '\n' && c != '\r' && n + 1 < cap) {
      out[n++] = (char)c;
      c = getc(f);
    }
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
