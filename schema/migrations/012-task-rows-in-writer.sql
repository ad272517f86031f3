-- 012-task-rows-in-writer.sql — schema version 12: the tasks table's three triggers (009) go; the
-- writer does what they did (server/store_put.c, put_tasks), with the same effect on task_rows_add
-- and sessions.rows_built:
--   a task row inserted, or updated from has_task 0 to 1, while its session's rows_built is 1 or
--   2, is added to task_rows_add (task_rows_new, task_rows_announced);
--   a task row with has_task 1 whose parent or created changes makes rows_built 0 when it is not
--   0 already (task_rows_moved).
-- Why: a trigger runs as a program of its own for every row written, whether its WHEN holds or
-- not, and nearly always it does not (a session nobody has opened the rows of has rows_built 0).
-- On a burst of small sessions the triggers were a third of the cost of writing a task row; the
-- writer reads rows_built once a batch and looks at a task's old row only when it is not 0.
DROP TRIGGER IF EXISTS task_rows_new;
DROP TRIGGER IF EXISTS task_rows_announced;
DROP TRIGGER IF EXISTS task_rows_moved;
