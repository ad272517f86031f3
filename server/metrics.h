/* metrics.h — the service's counters (atomics, shared by the HTTP workers and the writer) and
 * their Prometheus text rendering. Who increments what is the callers' business. */
#ifndef LS_METRICS_H
#define LS_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "jbuf.h"

enum {
  REJECT_INVALID, REJECT_TOO_LARGE, REJECT_UNSUPPORTED_MEDIA_TYPE, REJECT_UNAUTHORIZED,
  REJECT_UNAVAILABLE, REJECT_INTERNAL, REJECT_COUNT
};

/* Why the HTTP layer closed a connection without an answer (http.c). */
enum { CONN_DROP_DEADLINE, CONN_DROP_FULL, CONN_DROP_REFUSED, CONN_DROP_COUNT };

/* Why retention deleted a session (--max-sessions, --max-age, --max-db-size). */
enum { RETENTION_SESSIONS, RETENTION_AGE, RETENTION_SIZE, RETENTION_COUNT };

/* What became of the OTLP push's requests and their spans (otlp_push.c): sent (2xx), retried
 * (a retryable answer or no answer: sent again later), failed (refused for good, not resent). */
enum { OTLP_SENT, OTLP_RETRIED, OTLP_FAILED, OTLP_RESULT_COUNT };

typedef struct metrics {
  atomic_llong batches;        /* batches stored (duplicates not counted) */
  atomic_llong duplicates;     /* batches answered 200 because already stored */
  atomic_llong bodies;         /* ingest bodies stored (2xx), one per POST however many batches */
  atomic_llong events;         /* events in stored batches */
  atomic_llong unknown_events; /* events of unknown kind in stored batches */
  atomic_llong http_requests;
  atomic_llong rejects[REJECT_COUNT];
  atomic_llong write_faults;   /* jobs the storage could not take (full disk, I/O error, locked) */
  atomic_llong wal_bytes;      /* gauge: size of the WAL file, set by the writer thread */
  atomic_llong retention_deleted[RETENTION_COUNT]; /* sessions deleted by each retention limit */
  atomic_llong reclaimed_bytes; /* bytes the database file shrank by (incremental vacuum) */
  atomic_llong memory_bytes;   /* gauge: bytes held in the --max-memory budget */
  atomic_llong parse_depth;    /* gauge: ingest bodies queued for the parse pool or being parsed */
  atomic_llong conn_dropped[CONN_DROP_COUNT]; /* connections closed unanswered, by reason */
  atomic_llong otlp_requests[OTLP_RESULT_COUNT];
  atomic_llong otlp_spans[OTLP_RESULT_COUNT];
  atomic_llong otlp_sessions;        /* sessions taken into the outbox */
  atomic_llong otlp_outbox_requests; /* gauge: request bodies waiting in the outbox */
  atomic_llong otlp_outbox_sessions; /* gauge: sessions they belong to */
  atomic_llong live_streams;         /* gauge: live event streams open (live.c) */
  atomic_llong live_events;          /* events written to them (heartbeat comments not counted) */
  atomic_llong live_refused;         /* streams refused: --max-streams reached, or stopping */
} metrics;

void metrics_init(metrics *m);
void metrics_add(atomic_llong *counter, int64_t n);
void metrics_set(atomic_llong *gauge, int64_t v);
/* Appends the Prometheus text exposition of m plus the two gauges. */
void metrics_render(metrics *m, int64_t queue_depth, int64_t db_bytes, jbuf *out);

#endif
