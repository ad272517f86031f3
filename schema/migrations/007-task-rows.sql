-- 007-task-rows.sql — the task tree stored as rows (issue 14, "cost follows the viewport"): each
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
