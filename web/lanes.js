// lanes.js — the task tree as lanes: which tasks are visible given the collapsed ones, which
// slice of them the scrolled viewport shows (lane virtualization), and a task's relatives.
// Works on the /tasks list (already depth-first, parent before children); draws nothing.

export const LANE_H = 20;

// Indexes the /tasks list: byId (id -> task), index (id -> position in tree order).
export function indexTasks(tasks) {
  const byId = new Map();
  const index = new Map();
  for (let i = 0; i < tasks.length; i++) {
    byId.set(tasks[i].id, tasks[i]);
    index.set(tasks[i].id, i);
  }
  return { byId, index };
}

// The tasks shown as lanes, in tree order, skipping the descendants of collapsed tasks.
// Relies on the depth-first order: a task's descendants follow it with a greater depth.
export function visible(tasks, collapsed) {
  if (collapsed.size === 0) return tasks;
  const out = [];
  let hideDeeperThan = Infinity;
  for (const t of tasks) {
    if (t.depth > hideDeeperThan) continue;
    hideDeeperThan = Infinity;
    out.push(t);
    if (collapsed.has(t.id) && t.children && t.children.length) hideDeeperThan = t.depth;
  }
  return out;
}

// The lanes [first, last) a viewport scrolled to scrollTop, viewportH tall, shows, plus
// `overscan` lanes either side so a short scroll needs no new data.
export function windowOf(count, scrollTop, viewportH, overscan = 8) {
  const first = Math.max(0, Math.floor(scrollTop / LANE_H) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewportH) / LANE_H) + overscan);
  return { first, last: Math.max(first, last) };
}

// Ids related to a task: its parent (if shown as one) and its children.
export function relatives(task) {
  const ids = new Set(task.children || []);
  if (task.parent) ids.add(task.parent);
  return ids;
}

// Expands every collapsed ancestor of task id so its lane can be shown. Returns true if the
// collapsed set changed.
export function reveal(id, byId, collapsed) {
  let changed = false;
  let t = byId.get(id);
  for (let guard = 0; t && t.parent && guard < 100000; guard++) {
    if (collapsed.delete(t.parent)) changed = true;
    t = byId.get(t.parent);
  }
  return changed;
}
