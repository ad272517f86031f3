-- 009-rows-append.sql — the stored task tree (007) extended by the tasks that arrive after it
-- was built, instead of rebuilt for every batch of a live session (issue 14: at 1M tasks a
-- rebuild takes seconds). server/store_rows.c and store_rows_add.c.
--
-- task_rows_add: tasks that arrived while the session's tree was current (rows_built 1) or being
-- built (2), not in task_rows yet. /rows places them in the stored order at query time (a task
-- under an existing parent, created after that parent's other children, goes at the end of the
-- parent's subtree; ancestors' sizes grow), so rows_built stays 1. A build removes those it
-- ordered; too many of them, or one that does not fit at a subtree's end, and /rows rebuilds.
CREATE TABLE task_rows_add (
  sid INTEGER NOT NULL,
  id  INTEGER NOT NULL,
  PRIMARY KEY (sid, id)
) WITHOUT ROWID;

-- task_rows_orphans: the stored tree's tasks whose named parent was not in it (or looped), by
-- that parent: such a parent arriving later moves them, which an appended task cannot express,
-- so /rows rebuilds then. Written by each build; at most 4096 per session, beyond that one row
-- (parent -1, id -1) that sends every appended task to a rebuild.
CREATE TABLE task_rows_orphans (
  sid    INTEGER NOT NULL,
  parent INTEGER NOT NULL,
  id     INTEGER NOT NULL,
  PRIMARY KEY (sid, parent, id)
) WITHOUT ROWID;

-- A new task no longer makes the tree stale: it is recorded (unless no tree is stored, 0, when
-- the next /rows builds anyway). A task whose parent or creation time changes still does.
DROP TRIGGER task_rows_new;
DROP TRIGGER task_rows_moved;

CREATE TRIGGER task_rows_new AFTER INSERT ON tasks WHEN NEW.has_task = 1
BEGIN
  INSERT OR IGNORE INTO task_rows_add(sid, id)
    SELECT NEW.sid, NEW.id FROM sessions WHERE sid = NEW.sid AND rows_built IN (1, 2);
END;

-- An upsert that takes its DO UPDATE path fires UPDATE triggers only: the task event of a task
-- whose steps came first arrives here, as a new task.
CREATE TRIGGER task_rows_announced AFTER UPDATE OF has_task ON tasks
WHEN NEW.has_task = 1 AND OLD.has_task = 0
BEGIN
  INSERT OR IGNORE INTO task_rows_add(sid, id)
    SELECT NEW.sid, NEW.id FROM sessions WHERE sid = NEW.sid AND rows_built IN (1, 2);
END;

CREATE TRIGGER task_rows_moved AFTER UPDATE OF parent, created ON tasks
WHEN NEW.has_task = 1 AND OLD.has_task = 1 AND (OLD.parent IS NOT NEW.parent OR OLD.created IS NOT NEW.created)
BEGIN
  UPDATE sessions SET rows_built = 0 WHERE sid = NEW.sid AND rows_built <> 0;
END;

-- Trees stored before this version have no orphans recorded: each is built again on its next
-- /rows.
UPDATE sessions SET rows_built = 0;
