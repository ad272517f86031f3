/* utf8_cases.h — reads tests/data/utf8_cases.txt (path in LS_UTF8_CASES), the one table of
 * well-formed and ill-formed UTF-8 that the common layer's, the collector's and the server's
 * tests all run. Test code only: aborts the test on a malformed table. */
#ifndef LS_UTF8_CASES_H
#define LS_UTF8_CASES_H

#include <check.h>
#include <stdio.h>
#include <string.h>

typedef struct utf8_case {
  int valid;
  unsigned char bytes[16];
  size_t n;
  char what[96];
} utf8_case;

/* Fills out[0..max) from the table; returns how many cases it holds. */
static inline size_t utf8_cases_load(utf8_case *out, size_t max)
{
  FILE *f = fopen(LS_UTF8_CASES, "r");
  ck_assert_msg(f != NULL, "cannot open %s", LS_UTF8_CASES);
  char line[256];
  size_t count = 0;
  while(fgets(line, sizeof line, f)) {
    if(line[0] == '#' || line[0] == '\n')
      continue;
    ck_assert_msg(count < max, "more than %zu cases", max);
    utf8_case *c = &out[count];
    char hex[64];
    int used = 0;
    ck_assert_msg(sscanf(line, "%d %63s %n", &c->valid, hex, &used) == 2, "bad line: %s", line);
    size_t h = strlen(hex);
    ck_assert_msg(h % 2 == 0 && h / 2 <= sizeof c->bytes, "bad hex: %s", hex);
    c->n = h / 2;
    for(size_t i = 0; i < c->n; i++) {
      unsigned v;
      ck_assert_msg(sscanf(hex + 2 * i, "%2x", &v) == 1, "bad hex: %s", hex);
      c->bytes[i] = (unsigned char)v;
    }
    snprintf(c->what, sizeof c->what, "%s", line + used);
    c->what[strcspn(c->what, "\n")] = '\0';
    count++;
  }
  fclose(f);
  ck_assert_uint_gt(count, 40);
  return count;
}

#endif
