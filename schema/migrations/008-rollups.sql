-- 008-rollups.sql — endpoint rollups (issue 12): what /api/v1/endpoints reads instead of every
-- session's await points and blocks when its window covers whole blocks of sessions
-- (server/store_rollup.c). A block is the 1024 consecutive sids blk * 1024 .. blk * 1024 + 1023
-- (sids are the order of arrival, so a window of the newest sessions covers whole blocks).
-- Rollup rows are rebuilt from the sessions' own rows by the writer's housekeeping, never updated
-- in place, so they are exact (sums, maxima, session counts) whenever the block is not dirty.
-- ep_dirty: blocks whose sessions changed (a batch, a delete, retention) since their rollup was
-- built; their sessions are read one by one until the writer rebuilds them.
CREATE TABLE ep_dirty (blk INTEGER PRIMARY KEY);
-- ep_groups: per block and (service, endpoint), the ended sessions with an endpoint it holds: n,
-- and members, what a window needs of each (so a query reads one row per block and endpoint, not
-- a row per session): 5 little-endian 64-bit integers per session, by sid ascending — sid,
-- duration (end_t), its longest lag sample (-1: no samples), started_ns (-1: unknown), flags
-- (1: it has a route; else the endpoint is its name).
CREATE TABLE ep_groups (
  blk      INTEGER NOT NULL,
  service  TEXT,
  endpoint TEXT NOT NULL,
  n        INTEGER NOT NULL,
  members  BLOB NOT NULL
);
CREATE INDEX ep_groups_blk ON ep_groups (blk);
-- ep_points: per block and (service, endpoint), the await points (kind 0: what = the awaited
-- object) and the own blocks' culprits by innermost frame (kind 1: what = the source line)
-- summed over those sessions; file NULL / line -1 when unknown; sessions: how many have it.
CREATE TABLE ep_points (
  blk      INTEGER NOT NULL,
  kind     INTEGER NOT NULL,
  service  TEXT,
  endpoint TEXT NOT NULL,
  file     TEXT,
  line     INTEGER NOT NULL,
  func     TEXT,
  what     TEXT,
  n        INTEGER NOT NULL,
  total_ns INTEGER NOT NULL,
  max_ns   INTEGER NOT NULL,
  sessions INTEGER NOT NULL
);
CREATE INDEX ep_points_blk ON ep_points (blk);
-- A database from before this version: every block is built by the housekeeping, in the
-- background, one block per step; until then its sessions are read one by one, as before.
INSERT OR IGNORE INTO ep_dirty(blk) SELECT DISTINCT sid >> 10 FROM sessions;
