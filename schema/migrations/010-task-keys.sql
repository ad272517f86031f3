-- 010-task-keys.sql — the tasks table's sort keys of an ended session, stored once they are final
-- (issue 14: a page of /tasks?sort=... read and sorted every task of the session, 300-435 ms at
-- 100k tasks). With them a page is an index range: ORDER BY key, id LIMIT ? OFFSET ? over one of
-- the indexes below, its total a stored count. Written by server/store_keys.c (writer.c's figures
-- thread, after a large session's end committed); read by query.c's /tasks when current.
--
-- task_keys: one row per listed task (has_task = 1) with the keys of docs/api.md "Tables":
-- created (-1 when unknown, as the in-memory order has it), busy_ns, wait_ns and duration (its
-- end, or the session's end when it has none, less created). id sorts on the primary key.
CREATE TABLE task_keys (
  sid      INTEGER NOT NULL,
  id       INTEGER NOT NULL,
  created  INTEGER NOT NULL,
  busy_ns  INTEGER NOT NULL,
  wait_ns  INTEGER NOT NULL,
  duration INTEGER NOT NULL,
  PRIMARY KEY (sid, id)
) WITHOUT ROWID;

-- One index per key, in the order the page asks for by default (created ascending; busy, waiting,
-- duration longest first), ties by task id ascending as the documented total order says. The
-- other direction of a key reads the same index and sorts only each run of equal keys
-- (SQLite's "temp b-tree for right part of ORDER BY"): the same rows, slower only where many
-- tasks share a key.
CREATE INDEX task_keys_created ON task_keys (sid, created, id);
CREATE INDEX task_keys_busy ON task_keys (sid, busy_ns DESC, id);
CREATE INDEX task_keys_wait ON task_keys (sid, wait_ns DESC, id);
CREATE INDEX task_keys_duration ON task_keys (sid, duration DESC, id);

-- The keys of session sid are complete and current while its n_events is this one (a batch
-- arriving later makes them stale: /tasks sorts in memory again until they are stored anew);
-- tasks is their row count, the page's total. Written last, after every task_keys row.
CREATE TABLE task_keys_done (
  sid      INTEGER PRIMARY KEY,
  n_events INTEGER NOT NULL,
  tasks    INTEGER NOT NULL
);
