/* lag_cause.h — which block each lag sample of a session waited behind, as /lag and /timeline
 * name it (docs/api.md): the matching rule as a pure function, and the glue that loads the
 * session's blocks (store.h) and writes a sample's "cause" (jbuf.h). */
#ifndef LS_LAG_CAUSE_H
#define LS_LAG_CAUSE_H
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "jbuf.h"
#include "store.h"

/* At most this many blocks are weighed per sample: a loop's stalls do not overlap, so a sample's
 * window meets one or two; the bound keeps a hostile session's overlapping blocks linear. */
#define LAG_CAUSE_SCAN 64

/* For each sample (t, d): the block overlapping its window [t - d, t + d) most (the tick ran d
 * late, so the stall lies within d of t), out[i] its index, or -1 when none overlaps. Blocks
 * bt[i], bd[i] sorted by bt; ties: the earlier block. 0 or LS_ENOMEM. */
int lag_cause_match(const int64_t *st, const int64_t *sd, size_t ns, const int64_t *bt, const int64_t *bd,
                    size_t nb, int64_t *out);

typedef struct lag_causes {
  store_block *b;     /* the session's blocks, by t (strings in the caller's arena) */
  size_t nb;
  int64_t *of;        /* per sample: an index into b, or -1 */
} lag_causes;

/* Loads session sid's blocks and matches the samples (t[i], d[i]) to them. 0 or a store code. */
int lag_causes_load(store_reader *r, int64_t sid, arena *a, const int64_t *t, const int64_t *d, size_t n,
                    lag_causes *out);
/* Writes `,"cause":` and sample i's block (or null) to o. */
void lag_causes_json(jbuf *o, const lag_causes *c, size_t i);
void lag_causes_free(lag_causes *c);
#endif
