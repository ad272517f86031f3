/* metrics.c — counters and their Prometheus text format (metrics.h). */
#include "metrics.h"

static const char *const retention_names[RETENTION_COUNT] = {"max_sessions", "max_age", "max_db_size"};

static const char *const drop_names[CONN_DROP_COUNT] = {"request_timeout", "table_full", "refused"};

static const char *const otlp_names[OTLP_RESULT_COUNT] = {"sent", "retried", "failed"};

static const char *const reject_names[REJECT_COUNT] = {
  "invalid", "too_large", "unsupported_media_type", "unauthorized", "unavailable", "internal",
};

void metrics_init(metrics *m)
{
  atomic_init(&m->batches, 0);
  atomic_init(&m->duplicates, 0);
  atomic_init(&m->bodies, 0);
  atomic_init(&m->events, 0);
  atomic_init(&m->unknown_events, 0);
  atomic_init(&m->http_requests, 0);
  for(int i = 0; i < REJECT_COUNT; i++)
    atomic_init(&m->rejects[i], 0);
  atomic_init(&m->write_faults, 0);
  atomic_init(&m->wal_bytes, 0);
  for(int i = 0; i < RETENTION_COUNT; i++)
    atomic_init(&m->retention_deleted[i], 0);
  atomic_init(&m->reclaimed_bytes, 0);
  atomic_init(&m->memory_bytes, 0);
  for(int i = 0; i < CONN_DROP_COUNT; i++)
    atomic_init(&m->conn_dropped[i], 0);
  for(int i = 0; i < OTLP_RESULT_COUNT; i++) {
    atomic_init(&m->otlp_requests[i], 0);
    atomic_init(&m->otlp_spans[i], 0);
  }
  atomic_init(&m->otlp_sessions, 0);
  atomic_init(&m->otlp_outbox_requests, 0);
  atomic_init(&m->otlp_outbox_sessions, 0);
  atomic_init(&m->live_streams, 0);
  atomic_init(&m->live_events, 0);
  atomic_init(&m->live_refused, 0);
}

void metrics_set(atomic_llong *gauge, int64_t v)
{
  atomic_store_explicit(gauge, v, memory_order_relaxed);
}

void metrics_add(atomic_llong *counter, int64_t n)
{
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static void counter(jbuf *out, const char *name, const char *help, long long v)
{
  jbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name, v);
}

/* A counter with one label: one line per value of it. */
static void labelled(jbuf *out, const char *name, const char *help, const char *label,
                     const char *const *values, atomic_llong *counters, int n)
{
  jbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for(int i = 0; i < n; i++)
    jbuf_printf(out, "%s{%s=\"%s\"} %lld\n", name, label, values[i], (long long)atomic_load(&counters[i]));
}

void metrics_render(metrics *m, int64_t queue_depth, int64_t db_bytes, jbuf *out)
{
  counter(out, "loopscope_batches_total", "Batches stored.", atomic_load(&m->batches));
  counter(out, "loopscope_duplicate_batches_total", "Batches already stored, answered 200.",
          atomic_load(&m->duplicates));
  counter(out, "loopscope_ingest_bodies_total",
          "Ingest bodies stored (answered 2xx): one per POST, however many batches it carried.",
          atomic_load(&m->bodies));
  counter(out, "loopscope_events_total", "Events in stored batches.", atomic_load(&m->events));
  counter(out, "loopscope_unknown_events_total", "Events of an unknown kind (counted, not stored).",
          atomic_load(&m->unknown_events));
  counter(out, "loopscope_http_requests_total", "HTTP requests answered.", atomic_load(&m->http_requests));
  labelled(out, "loopscope_rejects_total", "Ingest requests refused, by reason.", "reason", reject_names,
           m->rejects, REJECT_COUNT);
  jbuf_printf(out, "# HELP loopscope_queue_depth Batches waiting for the writer.\n"
                   "# TYPE loopscope_queue_depth gauge\nloopscope_queue_depth %lld\n",
              (long long)queue_depth);
  counter(out, "loopscope_write_faults_total",
          "Batches and deletes the storage could not take (full disk, I/O error, locked), answered 503.",
          atomic_load(&m->write_faults));
  labelled(out, "loopscope_retention_deleted_sessions_total", "Sessions deleted by a retention limit.", "limit",
           retention_names, m->retention_deleted, RETENTION_COUNT);
  counter(out, "loopscope_reclaimed_bytes_total", "Bytes the database file gave back (incremental vacuum).",
          atomic_load(&m->reclaimed_bytes));
  labelled(out, "loopscope_connections_dropped_total", "Connections closed without an answer: "
           "request_timeout (--request-timeout passed), table_full (the oldest request still arriving, "
           "to make room under --max-connections), refused (at accept: --max-per-ip, or the "
           "connection ceiling).", "reason", drop_names, m->conn_dropped, CONN_DROP_COUNT);
  jbuf_printf(out, "# HELP loopscope_memory_bytes Bytes held by ingest requests in flight and batches queued "
                   "for the writer (bounded by --max-memory).\n"
                   "# TYPE loopscope_memory_bytes gauge\nloopscope_memory_bytes %lld\n",
              (long long)atomic_load(&m->memory_bytes));
  jbuf_printf(out, "# HELP loopscope_parse_queue_depth Ingest bodies received and waiting for a parse thread "
                   "or being decoded and parsed (the parse pool).\n"
                   "# TYPE loopscope_parse_queue_depth gauge\nloopscope_parse_queue_depth %lld\n",
              (long long)atomic_load(&m->parse_depth));
  jbuf_printf(out, "# HELP loopscope_wal_bytes Bytes of the write-ahead log file.\n"
                   "# TYPE loopscope_wal_bytes gauge\nloopscope_wal_bytes %lld\n",
              (long long)atomic_load(&m->wal_bytes));
  labelled(out, "loopscope_otlp_requests_total", "OTLP push requests: sent (2xx), retried (a retryable answer "
           "or none; sent again later), failed (refused for good).", "result", otlp_names, m->otlp_requests,
           OTLP_RESULT_COUNT);
  labelled(out, "loopscope_otlp_spans_total", "Spans in those requests, by what became of the request.", "result",
           otlp_names, m->otlp_spans, OTLP_RESULT_COUNT);
  counter(out, "loopscope_otlp_sessions_total", "Sessions taken into the OTLP outbox.",
          atomic_load(&m->otlp_sessions));
  jbuf_printf(out, "# HELP loopscope_otlp_outbox_requests OTLP request bodies waiting in the outbox.\n"
                   "# TYPE loopscope_otlp_outbox_requests gauge\nloopscope_otlp_outbox_requests %lld\n"
                   "# HELP loopscope_otlp_outbox_sessions Sessions with request bodies in the outbox.\n"
                   "# TYPE loopscope_otlp_outbox_sessions gauge\nloopscope_otlp_outbox_sessions %lld\n",
              (long long)atomic_load(&m->otlp_outbox_requests), (long long)atomic_load(&m->otlp_outbox_sessions));
  jbuf_printf(out, "# HELP loopscope_live_streams Live event streams (Server-Sent Events) open.\n"
                   "# TYPE loopscope_live_streams gauge\nloopscope_live_streams %lld\n",
              (long long)atomic_load(&m->live_streams));
  counter(out, "loopscope_live_events_total", "Events written to live event streams (heartbeats not counted).",
          atomic_load(&m->live_events));
  counter(out, "loopscope_live_streams_refused_total",
          "Live event streams refused (503): --max-streams open already, or the server stopping.",
          atomic_load(&m->live_refused));
  jbuf_printf(out, "# HELP loopscope_db_bytes Bytes of the database file and its WAL.\n"
                   "# TYPE loopscope_db_bytes gauge\nloopscope_db_bytes %lld\n",
              (long long)db_bytes);
}
