-- 010-task-keys.sql — the tasks table's sort keys of an ended session, stored once they are final
-- (issue 14: a page of /tasks?sort=... read and sorted every task of the session, 300-435 ms at
-- 100k tasks). With them a page is a range of one clustered table: ORDER BY key, id LIMIT ?
-- OFFSET ?, its total a stored count. Written by server/store_keys.c (writer.c's figures thread,
-- after a large session's end was answered); read by query.c's /tasks when current.
--
-- One table per key, clustered in the order the page asks for by default (created ascending;
-- busy, waiting, duration longest first), ties by task id ascending as the documented total order
-- says: each is written in that order, appended page after page (one index per key on a single
-- table was written in random order: 129 s and gigabytes of WAL at 1M tasks on this machine).
-- pos is the row's place in that order (0-based): a page in it is a seek on the (sid, pos) index,
-- whatever its offset, and a task's place (at=) a seek on the primary key with its key and id.
-- The index is filled in order too (pos ascending).
-- The other direction of a key reads the same table backwards and sorts only each run of equal
-- keys (SQLite's "temp b-tree for right part of ORDER BY"): the same rows, slower only where many
-- tasks share a key. `id` sorts on the tasks table's own primary key. created is -1 when unknown
-- and a task without an end lasts to the session's end, as the in-memory order has them.
CREATE TABLE task_by_created (
  sid     INTEGER NOT NULL,
  created INTEGER NOT NULL,
  id      INTEGER NOT NULL,
  pos     INTEGER NOT NULL,
  PRIMARY KEY (sid, created, id)
) WITHOUT ROWID;
CREATE INDEX task_by_created_pos ON task_by_created (sid, pos);

CREATE TABLE task_by_busy (
  sid     INTEGER NOT NULL,
  busy_ns INTEGER NOT NULL,
  id      INTEGER NOT NULL,
  pos     INTEGER NOT NULL,
  PRIMARY KEY (sid, busy_ns DESC, id)
) WITHOUT ROWID;
CREATE INDEX task_by_busy_pos ON task_by_busy (sid, pos);

CREATE TABLE task_by_wait (
  sid     INTEGER NOT NULL,
  wait_ns INTEGER NOT NULL,
  id      INTEGER NOT NULL,
  pos     INTEGER NOT NULL,
  PRIMARY KEY (sid, wait_ns DESC, id)
) WITHOUT ROWID;
CREATE INDEX task_by_wait_pos ON task_by_wait (sid, pos);

CREATE TABLE task_by_duration (
  sid      INTEGER NOT NULL,
  duration INTEGER NOT NULL,
  id       INTEGER NOT NULL,
  pos      INTEGER NOT NULL,
  PRIMARY KEY (sid, duration DESC, id)
) WITHOUT ROWID;
CREATE INDEX task_by_duration_pos ON task_by_duration (sid, pos);

-- The keys of session sid are complete and current while its n_events is this one (a batch
-- arriving later makes them stale: /tasks sorts in memory again until they are stored anew);
-- tasks is their row count in each table, the page's total. Written last, after every key row.
CREATE TABLE task_keys_done (
  sid      INTEGER PRIMARY KEY,
  n_events INTEGER NOT NULL,
  tasks    INTEGER NOT NULL
);
