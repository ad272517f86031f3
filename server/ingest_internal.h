/* ingest_internal.h — what the two readers of an ingest body share: ingest.c (JSON) and
 * ingest_records.c (the binary record form), most of it defined in ingest_batch.c. The parse
 * state, errors that name a value's place in the body, and the checks every batch's values pass
 * whichever form they came in, so that one batch reads the same, and is refused with the same
 * words, in both. Nothing outside ingest*.c includes it. */
#ifndef LS_INGEST_INTERNAL_H
#define LS_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "ingest.h"
#include "jbuf.h"

#define NO_BATCH ((size_t)-1)

/* The parse state: where errors go and which limits apply. */
typedef struct parser {
  const ingest_limits *lim;
  char *detail;
  size_t detail_len;
  size_t cap[9];      /* rows allocated per kind (index: enum kind) */
  size_t in_batch;    /* index in a multi-batch body's "batches", NO_BATCH outside one */
  size_t events_seen; /* events of the body's batches before this one (max_events is per body) */
  /* The batch's "strings" (additive to v1; docs/api.md, "A batch's strings table"): an event's
   * string field may be an index into it. Checked once each (UTF-8, at most max_exc bytes), so a
   * string an event names again costs a bounds check; NULL when the batch has none. */
  const char **strs;
  uint32_t *strs_len;
  size_t nstrs;
} parser;

/* Where a value sits in the batch. It becomes text (meta., "events[3].", "events[3].stack[1]")
 * only when an error names it: formatting it for every event up front cost ~3% of ingest's
 * instructions. */
#define NO_FRAME ((size_t)-1)
#define IN_META ((size_t)-1)
typedef struct place {
  size_t ev;    /* index in events[], IN_META for the meta object */
  size_t frame; /* index in the event's stack[], NO_FRAME outside a stack */
} place;

/* detail = ("batches[i]." inside a multi-batch body) + the message; LS_EINVAL. */
int ing_fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ing_fail with the place's path before the message. */
int ing_fail_at(parser *p, const place *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What is wrong with n bytes of s as a string of at most max bytes of UTF-8 without U+0000
 * (TEXT_OK: nothing). */
enum { TEXT_OK, TEXT_LONG, TEXT_UTF8, TEXT_NUL };
int ing_text_check(const char *s, size_t n, size_t max);

/* An item's span t..t+d seen: refused when t + d reaches 2^53 (every derived time stays a
 * JSON-safe integer), else the batch's max_t grows to it and, for kind (INGEST_STEP..INGEST_LAG;
 * -1: none), its max_d to d. */
int ing_see_span(parser *p, ingest_batch *b, const place *where, int64_t t, int64_t d, int row_kind);
/* A drop event's n added to the batch's dropped, saturating at INGEST_MAX_INT. */
void ing_add_drop(ingest_batch *b, int64_t n);
/* An end event at t. */
int ing_add_end(parser *p, ingest_batch *b, const place *where, int64_t t);

/* The error for an arena that refused memory: its cap (LS_ETOOBIG), the shared budget (LS_EBUSY)
 * or malloc (LS_ENOMEM). */
int ing_arena_error(parser *p, const arena *a);
/* n zeroed rows of size bytes from the arena, or NULL. */
void *ing_rows(arena *a, size_t n, size_t size);

/* The batch's meta from n bytes of JSON text (an object, or null), parsed into a: the same
 * fields and checks as a JSON batch's "meta". */
int ing_meta_text(parser *p, const char *text, size_t n, arena *a, ingest_meta *meta);

/* A block's stack re-encoded as the JSON text the store keeps, in stacks: begun (its line -1 until
 * a frame comes), its frames in order (outermost first: each becomes the block's innermost one, so
 * the last, where the loop was stuck, stays), ended (its offset and length set; the buffer's
 * status returned). Both readers write stacks through these. */
void ing_stack_begin(jbuf *stacks, ingest_block *blk);
void ing_stack_frame(jbuf *stacks, ingest_block *blk, size_t i, const char *file, int64_t line, const char *func,
                     const char *src);
int ing_stack_end(jbuf *stacks, ingest_block *blk);

#endif
