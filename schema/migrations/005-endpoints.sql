-- 005-endpoints.sql — schema version 5: what /api/v1/endpoints and /api/v1/compare read
-- (server/store_endpoints.c).
-- route: the session's route template (meta.route, e.g. "GET /users/{user_id}"), sent by the
-- ASGI middleware once the framework has routed the request; NULL when there is none.
ALTER TABLE sessions ADD COLUMN route TEXT;
-- A session's endpoint is its route, or its name when it has none: the newest sessions of one
-- endpoint are read from this index, never by scanning every session.
CREATE INDEX sessions_endpoint ON sessions (coalesce(route, name), sid);
-- await_points: each session's awaits summed per await point (file, line), kept by the writer as
-- batches arrive, so an endpoint's hot spots over many sessions read a few rows per session
-- instead of every await. file '' and line -1 stand for absent ones (a key cannot be NULL);
-- what and func are the first ones seen at that point.
CREATE TABLE await_points (
  sid      INTEGER NOT NULL,
  file     TEXT NOT NULL,
  line     INTEGER NOT NULL,
  what     TEXT,
  func     TEXT,
  n        INTEGER NOT NULL,
  total_ns INTEGER NOT NULL,
  max_ns   INTEGER NOT NULL,
  PRIMARY KEY (sid, file, line)
) WITHOUT ROWID;
INSERT INTO await_points(sid, file, line, what, func, n, total_ns, max_ns)
  SELECT sid, coalesce(file, ''), coalesce(line, -1), min(what), min(func), count(*), sum(d), max(d)
  FROM awaits GROUP BY sid, coalesce(file, ''), coalesce(line, -1);
