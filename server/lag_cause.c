/* lag_cause.c — which block each lag sample waited behind (lag_cause.h): the samples' windows
 * matched to the session's blocks, own or from elsewhere, for /lag and /timeline. The rule is the
 * one the page used client side before (web/details.js), now the server's. */
#include "lag_cause.h"

#include <stdlib.h>

int lag_cause_match(const int64_t *st, const int64_t *sd, size_t ns, const int64_t *bt, const int64_t *bd,
                    size_t nb, int64_t *out)
{
  /* pre[i]: the latest end among blocks 0..i, non-decreasing, so the first block that can reach
   * a window is found by binary search even when blocks overlap */
  int64_t *pre = malloc((nb ? nb : 1) * sizeof(*pre));
  if(!pre)
    return LS_ENOMEM;
  for(size_t i = 0; i < nb; i++) {
    int64_t end = bt[i] + bd[i]; /* both < 2^53: no overflow */
    pre[i] = i && pre[i - 1] > end ? pre[i - 1] : end;
  }
  for(size_t i = 0; i < ns; i++) {
    int64_t lo = st[i] - sd[i], hi = st[i] + sd[i];
    size_t a = 0, b = nb;
    while(a < b) {
      size_t m = a + (b - a) / 2;
      if(pre[m] > lo)
        b = m;
      else
        a = m + 1;
    }
    int64_t best = -1, most = 0;
    for(size_t j = a, k = 0; j < nb && bt[j] < hi && k < LAG_CAUSE_SCAN; j++, k++) {
      int64_t end = bt[j] + bd[j];
      int64_t over = (end < hi ? end : hi) - (bt[j] > lo ? bt[j] : lo);
      if(over > most) {
        most = over;
        best = (int64_t)j;
      }
    }
    out[i] = best;
  }
  free(pre);
  return 0;
}

int lag_causes_load(store_reader *r, int64_t sid, arena *a, const int64_t *t, const int64_t *d, size_t n,
                    lag_causes *out)
{
  out->b = NULL;
  out->nb = 0;
  out->of = NULL;
  int rc = store_load_blocks(r, sid, a, &out->b, &out->nb);
  if(rc)
    return rc;
  int64_t *bt = malloc((out->nb ? out->nb : 1) * sizeof(*bt));
  int64_t *bd = malloc((out->nb ? out->nb : 1) * sizeof(*bd));
  out->of = malloc((n ? n : 1) * sizeof(*out->of));
  if(!bt || !bd || !out->of)
    rc = LS_ENOMEM;
  for(size_t i = 0; !rc && i < out->nb; i++) {
    bt[i] = out->b[i].t;
    bd[i] = out->b[i].d;
  }
  if(!rc) /* the store reads blocks by t */
    rc = lag_cause_match(t, d, n, bt, bd, out->nb, out->of);
  free(bt);
  free(bd);
  if(rc)
    lag_causes_free(out);
  return rc;
}

/* -1 (unknown, none) is null, as in the blocks of /timeline */
static void i64_or_null(jbuf *o, int64_t v)
{
  if(v >= 0)
    jbuf_i64(o, v);
  else
    jbuf_puts(o, "null");
}

void lag_causes_json(jbuf *o, const lag_causes *c, size_t i)
{
  jbuf_puts(o, ",\"cause\":");
  if(!c->of || c->of[i] < 0) {
    jbuf_puts(o, "null");
    return;
  }
  const store_block *b = &c->b[c->of[i]];
  jbuf_puts(o, "{\"task\":"); jbuf_i64(o, b->task);
  jbuf_puts(o, ",\"t\":"); jbuf_i64(o, b->t);
  jbuf_puts(o, ",\"d\":"); jbuf_i64(o, b->d);
  jbuf_puts(o, ",\"file\":"); jbuf_str(o, b->file);
  jbuf_puts(o, ",\"line\":"); i64_or_null(o, b->line);
  jbuf_puts(o, ",\"func\":"); jbuf_str(o, b->func);
  jbuf_puts(o, ",\"src\":"); jbuf_str(o, b->src);
  jbuf_puts(o, ",\"elsewhere\":"); jbuf_puts(o, b->elsewhere ? "true" : "false");
  jbuf_puts(o, ",\"from_session\":"); jbuf_str(o, b->from_session);
  jbuf_puts(o, ",\"from_task\":"); i64_or_null(o, b->from_task);
  jbuf_putc(o, '}');
}

void lag_causes_free(lag_causes *c)
{
  free(c->b);
  free(c->of);
  c->b = NULL;
  c->of = NULL;
  c->nb = 0;
}
