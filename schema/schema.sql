-- schema/schema.sql — loopscope's SQLite schema, version 1 (PRAGMA user_version = 1).
-- Applied by server/store.c to an empty database; later versions add files under
-- schema/migrations/NNN-what.sql (NNN = the version they bring the database to).
-- All times and durations are exact 64-bit integer nanoseconds on the session's clock.

-- One row per session. sid is the internal key (and the order of first arrival); the counters
-- and maxima are maintained by the writer as batches arrive, so a summary reads one row.
CREATE TABLE sessions (
  sid             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT NOT NULL UNIQUE,
  name            TEXT,
  service         TEXT,
  host            TEXT,
  python          TEXT,
  pid             INTEGER,
  started_unix_ns TEXT,              -- as sent: a decimal string
  started_ns      INTEGER,           -- the same as an integer, for ordering
  has_meta        INTEGER NOT NULL DEFAULT 0,
  ended           INTEGER NOT NULL DEFAULT 0,   -- 1 once an end event arrived
  end_t           INTEGER NOT NULL DEFAULT 0,   -- t of the end event
  max_t           INTEGER NOT NULL DEFAULT 0,   -- largest t or t + d of any event
  dropped         INTEGER NOT NULL DEFAULT 0,
  unknown_events  INTEGER NOT NULL DEFAULT 0,
  n_events        INTEGER NOT NULL DEFAULT 0,
  n_steps         INTEGER NOT NULL DEFAULT 0,
  n_awaits        INTEGER NOT NULL DEFAULT 0,
  n_blocks        INTEGER NOT NULL DEFAULT 0,
  n_lag           INTEGER NOT NULL DEFAULT 0,
  max_step_d      INTEGER NOT NULL DEFAULT 0,   -- longest item per kind: a range query for
  max_await_d     INTEGER NOT NULL DEFAULT 0,   -- [from, to) reads t >= from - max_*_d
  max_block_d     INTEGER NOT NULL DEFAULT 0,
  max_lag_d       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_newest ON sessions (started_ns, sid);

-- Idempotency: a batch id already here is answered 200 and not stored again.
CREATE TABLE batches (
  sid    INTEGER NOT NULL,
  batch  TEXT NOT NULL,
  events INTEGER NOT NULL,
  PRIMARY KEY (sid, batch)
) WITHOUT ROWID;

-- One row per task, upserted from task, done, step and await events in any order.
-- has_task = 1 once the task event itself arrived (only such rows are listed as tasks).
CREATE TABLE tasks (
  sid       INTEGER NOT NULL,
  id        INTEGER NOT NULL,
  parent    INTEGER NOT NULL DEFAULT 0,
  name      TEXT,
  coro      TEXT,
  created   INTEGER,
  first_run INTEGER,              -- t of the earliest step
  ended     INTEGER,              -- t of the done event
  state     TEXT,                 -- ok | cancelled | error
  exc       TEXT,
  busy_ns   INTEGER NOT NULL DEFAULT 0,  -- sum of step durations
  wait_ns   INTEGER NOT NULL DEFAULT 0,  -- sum of await durations
  has_task  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (sid, id)
) WITHOUT ROWID;

-- Steps and awaits are the bulk of a session: clustered by (session, task, t), one B-tree each,
-- which is also the order the timeline reads them in. A task runs or awaits one thing at a
-- time, so (task, t) identifies a step or an await; an exact repeat is stored once.
CREATE TABLE steps (
  sid  INTEGER NOT NULL,
  task INTEGER NOT NULL,
  t    INTEGER NOT NULL,
  d    INTEGER NOT NULL,
  PRIMARY KEY (sid, task, t)
) WITHOUT ROWID;

CREATE TABLE awaits (
  sid  INTEGER NOT NULL,
  task INTEGER NOT NULL,
  t    INTEGER NOT NULL,
  d    INTEGER NOT NULL,
  what TEXT,
  file TEXT,
  line INTEGER,
  func TEXT,
  PRIMARY KEY (sid, task, t)
) WITHOUT ROWID;

-- A block keeps its innermost frame in columns (for the timeline) and the whole stack as JSON.
CREATE TABLE blocks (
  sid   INTEGER NOT NULL,
  task  INTEGER NOT NULL,         -- 0: outside any task
  t     INTEGER NOT NULL,
  d     INTEGER NOT NULL,
  file  TEXT,
  line  INTEGER,
  func  TEXT,
  src   TEXT,
  stack TEXT NOT NULL
);
CREATE INDEX blocks_t ON blocks (sid, t);

CREATE TABLE lag (
  sid INTEGER NOT NULL,
  t   INTEGER NOT NULL,
  d   INTEGER NOT NULL
);
CREATE INDEX lag_t ON lag (sid, t);
