-- 006-elsewhere.sql — schema version 6: who blocked my request (issue 12, part 1).
-- loop_no: the event loop a session ran on (meta.loop, a per-process counter of the loops the
-- collector hooked); with host and pid it tells which sessions shared a loop. NULL: unknown.
ALTER TABLE sessions ADD COLUMN loop_no INTEGER;
-- A stall of a loop is stored in every session open on it: as its own in the session whose task
-- (or callback) blocked, and as from elsewhere in the others, naming the causing session
-- (from_session, NULL: none, a background task or a plain callback) and its task (from_task,
-- NULL: none). Each copy keeps its stack text: sessions are kept, listed and deleted on their
-- own (retention, DELETE), so a block row never points into another session's rows; the cost is
-- one stack per session the stall delayed (docs/api.md).
ALTER TABLE blocks ADD COLUMN elsewhere INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blocks ADD COLUMN from_session TEXT;
ALTER TABLE blocks ADD COLUMN from_task INTEGER;
-- The summary's split of lost time, kept by the writer as batches arrive (n_blocks stays the
-- count of every block; own blocks are n_blocks - n_blocks_elsewhere). Blocks stored before
-- this version are all the session's own.
ALTER TABLE sessions ADD COLUMN n_blocks_elsewhere INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN blocked_ns_own INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN blocked_ns_elsewhere INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET blocked_ns_own =
  min(coalesce((SELECT sum(d) FROM blocks WHERE blocks.sid = sessions.sid), 0), 9007199254740991);
