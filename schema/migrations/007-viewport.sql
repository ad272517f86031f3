-- 007-viewport.sql — what the session page needs at a cost that does not grow with the session
-- (issue 14, "cost follows the viewport"): the task tree stored as rows, and the summary's
-- figures and the concurrency series pre-aggregated.
--
-- The task tree stored as rows: each
-- task's place in depth-first tree order (the order /tasks lists them in: parent before
-- children, siblings by created then id), its depth, effective parent, number of children and
-- size of its subtree. A window of lanes is then a range scan of (sid, pos), and the rows a
-- collapsed task hides are the next size - 1 positions.
-- Built by the first /rows query of a session (server/store_rows.c), in one write transaction;
-- rebuilt by the next query after the triggers below mark it stale.
CREATE TABLE task_rows (
  sid      INTEGER NOT NULL,
  pos      INTEGER NOT NULL,   -- 0-based place in tree order
  id       INTEGER NOT NULL,
  parent   INTEGER NOT NULL,   -- effective parent: 0 for a root, or when the named parent is absent
  depth    INTEGER NOT NULL,
  children INTEGER NOT NULL,   -- direct children
  size     INTEGER NOT NULL,   -- rows of the subtree, the task itself included
  PRIMARY KEY (sid, pos)
) WITHOUT ROWID;
CREATE INDEX task_rows_id ON task_rows (sid, id);

-- 1 while task_rows holds the session's current tree. A task that arrives (or changes parent or
-- creation time, which decide its place) makes it 0; a batch of steps, awaits or done events
-- does not. Kept by triggers so that the writer's code does not need to know the tree exists.
ALTER TABLE sessions ADD COLUMN rows_built INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER task_rows_new AFTER INSERT ON tasks WHEN NEW.has_task = 1
BEGIN
  UPDATE sessions SET rows_built = 0 WHERE sid = NEW.sid AND rows_built <> 0;
END;

-- An upsert that takes its DO UPDATE path fires UPDATE triggers only: the task event of a task
-- whose steps came first arrives here.
CREATE TRIGGER task_rows_moved AFTER UPDATE OF parent, created, has_task ON tasks
WHEN NEW.has_task = 1 AND (OLD.has_task = 0 OR OLD.parent IS NOT NEW.parent OR OLD.created IS NOT NEW.created)
BEGIN
  UPDATE sessions SET rows_built = 0 WHERE sid = NEW.sid AND rows_built <> 0;
END;

-- The summary's computed figures of an ended session, as of n_events (the session's event count
-- when they were computed: a batch arriving later makes them stale, and the next read computes
-- and stores them again). Written by server/store_series.c on the first read after the end.
CREATE TABLE session_stats (
  sid             INTEGER PRIMARY KEY,
  n_events        INTEGER NOT NULL,
  tasks           INTEGER NOT NULL,
  max_concurrency INTEGER NOT NULL,
  lag_samples     INTEGER NOT NULL,
  lag_avg_ms      REAL NOT NULL,
  lag_p50_ms      REAL NOT NULL,
  lag_p95_ms      REAL NOT NULL,
  lag_p99_ms      REAL NOT NULL,
  lag_max_ms      REAL NOT NULL,
  conc_levels     INTEGER NOT NULL   -- levels stored in conc_mip (0: the series is small, none)
);

-- The concurrency series of a large ended session as a mipmap (Perfetto style): at level L the
-- session's [0, duration) is cut into 65536 / 16^L buckets (L = 0..3); a bucket holds the least
-- and the most tasks alive in it and the count at its end. Only buckets where the count changes
-- are stored; between them the count holds. A chart of px columns reads one level, O(px) rows.
CREATE TABLE conc_mip (
  sid    INTEGER NOT NULL,
  level  INTEGER NOT NULL,
  bucket INTEGER NOT NULL,
  lo     INTEGER NOT NULL,
  hi     INTEGER NOT NULL,
  last   INTEGER NOT NULL,
  PRIMARY KEY (sid, level, bucket)
) WITHOUT ROWID;
