-- 002-task-status.sql — schema version 2: the HTTP response status a request's root task ended
-- with (the `status` of its done event, 100..599), NULL for every other task and for rows
-- stored before version 2.
ALTER TABLE tasks ADD COLUMN status INTEGER;
