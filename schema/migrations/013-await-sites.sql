-- 013-await-sites.sql — schema version 13: where an await waited (file, line, func) and what it
-- awaited are stored once, in `sites`; each awaits row names its site by id.
-- Why: a program awaits at a few hundred places, a web app's every request at the same dozen, yet
-- each awaits row carried its four columns again. On a burst of small sessions those strings were
-- a sixth of the writer's work (bench/overhead/README.md, stop 42: ~20 of ~130 µs of the server's
-- CPU a session) and most of an awaits row's bytes. The writer keeps the sites it has committed in
-- memory (server/store_sites.c), so a batch's awaits find their ids without a statement.
-- The index is not UNIQUE: SQLite holds NULLs distinct in one, and the single writer looks a site
-- up (`IS` on every column) before it inserts one. Sites no awaits row names any more (their
-- sessions deleted) are removed by the writer's housekeeping once they are many (store_sites.c).
CREATE TABLE sites (
  id   INTEGER PRIMARY KEY,
  file TEXT,
  line INTEGER,
  func TEXT,
  what TEXT
);
CREATE INDEX sites_key ON sites (file, line, func, what);
INSERT INTO sites(file, line, func, what) SELECT DISTINCT file, line, func, what FROM awaits;
CREATE TABLE awaits13 (
  sid  INTEGER NOT NULL,
  task INTEGER NOT NULL,
  t    INTEGER NOT NULL,
  d    INTEGER NOT NULL,
  site INTEGER NOT NULL,          -- sites.id
  PRIMARY KEY (sid, task, t)
) WITHOUT ROWID;
INSERT INTO awaits13(sid, task, t, d, site)
  SELECT a.sid, a.task, a.t, a.d, s.id FROM awaits a JOIN sites s
    ON s.file IS a.file AND s.line IS a.line AND s.func IS a.func AND s.what IS a.what;
DROP TABLE awaits;
ALTER TABLE awaits13 RENAME TO awaits;
