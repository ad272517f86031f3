/* gen.h — the benchmark workload: realistic ingest-v1 batches (task/step/await/done/lag/block
 * mix like DESIGN.md's example) as event structs, and their JSON encoding. Deterministic from a
 * seed so the HTTP run and the raw-SQLite baseline store the same rows. No I/O. */
#ifndef BENCH_GEN_H
#define BENCH_GEN_H

#include <stddef.h>
#include <stdint.h>

enum { GEN_TASK, GEN_STEP, GEN_AWAIT, GEN_BLOCK, GEN_LAG, GEN_DONE, GEN_NKINDS };

typedef struct gen_event {
  int kind;
  int64_t id, parent, t, d, line;
  const char *coro, *what, *file, *func, *state, *exc, *stack_json; /* static strings */
  char name[24];                                                     /* "Task-<id>" */
} gen_event;

/* One session's generator state: its clock, next task id and open tasks. */
typedef struct gen_session {
  char id[48];
  uint64_t rng;
  int64_t clock, next_id, root_id;
  int64_t batches;
} gen_session;

typedef struct gen_batch {
  char batch_id[64];
  const gen_session *session;
  gen_event *ev;
  size_t n, cap;
  int with_meta;
} gen_batch;

void gen_session_init(gen_session *s, const char *id, uint64_t seed);
/* Fills b (ev must hold at least n_events) with the session's next batch of exactly n_events. */
void gen_next_batch(gen_session *s, gen_batch *b, size_t n_events, const char *batch_prefix);

/* Encodes b as ingest-v1 JSON into out[0..cap); returns the length, or 0 if it did not fit. */
size_t gen_encode_json(const gen_batch *b, char *out, size_t cap);

/* Counts of each kind in a batch, for reports. */
void gen_count_kinds(const gen_batch *b, size_t counts[GEN_NKINDS]);

#endif
