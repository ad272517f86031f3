/* jbuf.c — the server's JSON helpers on the shared buffer (see jbuf.h; the buffer itself and
 * string escaping are common/dynbuf.c's). Knows nothing of HTTP, SQL or the shapes of
 * loopscope's answers; query.c and export.c decide what to write. */
#include "jbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jbuf_status(const jbuf *b)
{
  switch(b->failed) {
  case DYNBUF_OK: return LS_OK;
  case DYNBUF_ENOMEM: return LS_ENOMEM;
  case DYNBUF_ETOOBIG: return LS_ETOOBIG;
  default: return LS_EINVAL; /* DYNBUF_EFORMAT: a format the C library refused */
  }
}

void jbuf_strn(jbuf *b, const char *s, size_t n)
{
  if(!s)
    jbuf_append(b, "null", 4);
  else
    dynbuf_json_str(b, s, n);
}

void jbuf_str(jbuf *b, const char *s)
{
  jbuf_strn(b, s, s ? strlen(s) : 0);
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

void jbuf_real(jbuf *b, double v)
{
  if(!isfinite(v)) {
    jbuf_putc(b, '0');
    return;
  }
  char tmp[40];
  for(int digits = 15; digits <= 17; digits++) {
    snprintf(tmp, sizeof(tmp), "%.*g", digits, v);
    if(strtod(tmp, NULL) == v)
      break;
  }
  jbuf_puts(b, tmp);
}

void jbuf_key(jbuf *b, const char *key, int comma)
{
  if(comma)
    jbuf_putc(b, ',');
  jbuf_str(b, key);
  jbuf_putc(b, ':');
}
