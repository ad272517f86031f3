/* otlp_trace.h — a session as one OpenTelemetry trace, written as OTLP/JSON
 * ExportTraceServiceRequest bodies: a session span, a span per task, per await point and per
 * block, lag as events. Split into requests under a size on demand. Sending them is
 * otlp_push.c's; the semantic conventions used are listed in docs/otlp.md. */
#ifndef LS_OTLP_TRACE_H
#define LS_OTLP_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "jbuf.h"
#include "session_rows.h"
#include "store.h"

/* Lag samples that become events of the session span at most (the longest ones); the others are
 * counted in its droppedEventsCount, and the lag summary attributes cover them all. */
#define OTLP_TRACE_MAX_LAG_EVENTS 1000

typedef struct otlp_trace_options {
  /* Base URL of this server's pages ("http://host:port"): the session's timeline is
   * <public_url>/sessions/<id>, the attribute loopscope.session.url. NULL: no such attribute. */
  const char *public_url;
  /* Each request body at most this many bytes (uncompressed JSON); a single span larger than
   * that goes alone in a request of its own. 0: the whole trace in one request. */
  size_t max_request_bytes;
  /* Ceiling of any one body's buffer (LS_ETOOBIG past it). */
  size_t max_body_bytes;
} otlp_trace_options;

/* Receives each request body in order; body[len] is '\0'. A non-zero return stops the build and
 * is returned by otlp_trace_build. */
typedef int (*otlp_trace_emit)(void *ctx, const char *body, size_t len, int64_t spans);

/* Builds w's trace. 0, the first non-zero emit return, LS_ENOMEM or LS_ETOOBIG. The bytes are the
 * same for the same rows and options: ids are hashes of the session id and the row's identity. */
int otlp_trace_build(const session_rows *w, const otlp_trace_options *o, otlp_trace_emit emit, void *ctx);

/* export?format=otlp: the whole trace of session `id` as one body appended to out, read through
 * a reader from s's pool. 0, LS_ENOTFOUND, LS_ENOMEM, LS_ETOOBIG or LS_EIO. */
int otlp_trace_export(store *s, const char *id, const char *public_url, jbuf *out);

/* Spans in w's trace: the session's, and one per task, await point and block. */
int64_t otlp_trace_spans(const session_rows *w);

#endif
