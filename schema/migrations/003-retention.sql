-- 003-retention.sql — schema version 3: what retention and deletes need.
-- arrived_s: unix seconds when the session's latest batch was stored (--max-age counts from it).
-- Rows from before version 3 take their start time, or the time of this migration.
ALTER TABLE sessions ADD COLUMN arrived_s INTEGER;
UPDATE sessions SET arrived_s = coalesce(started_ns / 1000000000, CAST(strftime('%s', 'now') AS INTEGER));
-- purge: sessions deleted (their sessions row is gone, so no query finds them) whose rows the
-- writer still removes in small transactions. A delete is then a few pages however large the
-- session, which is what lets it succeed on a full disk; no sid is reused (AUTOINCREMENT), so a
-- session posted again under the same id never meets the old rows.
CREATE TABLE purge (sid INTEGER PRIMARY KEY);
-- The database switches to auto_vacuum = INCREMENTAL too (server/store.c runs VACUUM once for a
-- database created before; a PRAGMA cannot do it inside this migration's transaction).
