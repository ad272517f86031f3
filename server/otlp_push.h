/* otlp_push.h — forwarding sessions to an OpenTelemetry backend over OTLP/HTTP (JSON, gzip): a
 * thread of its own takes each session that ended (or went quiet) into a durable outbox in
 * SQLite as request bodies, then sends them with retries. What a trace holds is otlp_trace.c's;
 * the outbox's SQL is store_outbox.c's; the command line is main.c's. */
#ifndef LS_OTLP_PUSH_H
#define LS_OTLP_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

#define OTLP_PUSH_MAX_HEADERS 32

typedef struct otlp_push_config {
  const char *endpoint;      /* the traces URL, e.g. http://127.0.0.1:4318/v1/traces; NULL: no push */
  const char *headers[OTLP_PUSH_MAX_HEADERS]; /* "Name: value", sent with every request */
  int nheaders;
  size_t max_request_bytes;  /* uncompressed JSON per request (default 4 MiB) */
  int64_t quiet_s;           /* a session without `end` is taken this long after its latest batch (300) */
  int64_t timeout_ms;        /* one request, connecting included (10000) */
  int64_t max_backoff_ms;    /* longest wait between two tries when the backend says nothing (30000) */
  int gzip;                  /* Content-Encoding: gzip (1) */
  const char *public_url;    /* base of the timeline URL attribute (NULL: none) */
  char buf[8192];            /* the text the environment gave (endpoint, headers) */
  size_t used;
} otlp_push_config;

void otlp_push_defaults(otlp_push_config *c);

/* The OpenTelemetry exporter variables, read through get (getenv): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 * (the URL as it is) or else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: "/v1/traces" is appended),
 * OTEL_EXPORTER_OTLP_[TRACES_]HEADERS ("k=v,k2=v2", values percent-decoded), _TIMEOUT (ms),
 * _COMPRESSION (gzip or none), _PROTOCOL (http/json or http/protobuf: JSON is sent either way;
 * grpc is refused). The signal-specific variable wins. 0, or -1 with the reason in err. */
int otlp_push_from_env(otlp_push_config *c, char *(*get)(const char *), char *err, size_t errlen);

/* A Retry-After value (delta-seconds or an HTTP-date) as a wait in ms from now_s (unix seconds),
 * at most an hour. 0, or -1 when it is neither. */
int otlp_push_retry_after(const char *value, int64_t now_s, int64_t *wait_ms);

/* The OTLP/HTTP spec's retryable answers: 429, 502, 503, 504. */
int otlp_push_retryable(long status);

typedef struct otlp_push otlp_push;

/* Starts the push thread with a connection of its own to s's database. c must outlive it. */
int otlp_push_start(const otlp_push_config *c, store *s, metrics *m, otlp_push **out);
/* Stops it: a request in flight is abandoned (its body stays in the outbox and is sent after
 * the next start), the thread joined, its connection closed. */
void otlp_push_stop(otlp_push *p);

#endif
