-- 004-otlp-outbox.sql — schema version 4: what the OTLP push needs (server/otlp_push.c).
-- received_unix_ns: when the server stored the session's first batch, on the server's wall clock,
-- less the largest t of that batch (its events had happened by then): the session's start on the
-- wall clock as well as the server can tell, for sessions whose collector sent no
-- started_unix_ns. Rows from before version 4 take their latest batch's arrival less max_t.
ALTER TABLE sessions ADD COLUMN received_unix_ns INTEGER;
UPDATE sessions SET received_unix_ns = max(0, arrived_s * 1000000000 - max_t);
-- otlp_sessions: one row per session the push has taken into the outbox (so it is taken once).
-- state: 'pending' while parts of it wait in otlp_outbox, then 'sent', or 'failed' when the
-- backend refused a part for good (a non-retryable answer) or the trace could not be built.
CREATE TABLE otlp_sessions (
  sid          INTEGER PRIMARY KEY,
  taken_s      INTEGER NOT NULL,           -- unix seconds
  parts        INTEGER NOT NULL,           -- requests the trace was split into
  spans        INTEGER NOT NULL,
  sent_parts   INTEGER NOT NULL DEFAULT 0,
  failed_parts INTEGER NOT NULL DEFAULT 0,
  state        TEXT NOT NULL
);
-- otlp_outbox: the requests not yet answered by the backend, each an ExportTraceServiceRequest
-- (OTLP/JSON, gzip-compressed when the push compresses). A row is deleted, and its session's
-- counters moved, in one transaction once the backend answered it (2xx, or a non-retryable
-- refusal). The bodies are built once, so a retry sends the very same bytes.
CREATE TABLE otlp_outbox (
  sid   INTEGER NOT NULL,
  part  INTEGER NOT NULL,                  -- 0, 1, ... in sending order
  spans INTEGER NOT NULL,
  body  BLOB NOT NULL,
  PRIMARY KEY (sid, part)
) WITHOUT ROWID;
