// rows.js — the session's lanes as the server serves them (/rows): a sparse cache of the rows
// of the current collapsed set, filled a window at a time around the viewport, so the page
// holds and draws what is near the viewport whatever the session's size. Tree order, depth,
// child counts and where a task's row is come from the server; drawing is timeline.js's.
import * as api from './api.js';

// rows fetched beyond the viewport either side, so a short scroll needs no /rows fetch: at 150 a
// scroll step's answer was ~100 kB at 1M tasks (for ~35 lanes drawn), at 40 ~39 kB, and the step
// ~5-10 ms shorter to the painted frame (bench/page/scroll.mjs --gap 0)
const PAD = 40;
const MAX = 2000; // the server's limit per answer
const KEEP = 20000; // rows held at most: beyond it those farthest from the viewport are dropped

// An empty row table of n rows: a plain object indexed by row with a length, so that timeline.js
// reads it as an array (shown[i]) while it holds only the rows fetched (a sparse array of a
// million rows would cost the page its backing store, and iterating it the holes).
function table(n) {
  return { length: n };
}

export class Rows {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.collapsed = new Set();
    this.shown = table(0); // row index -> task (absent where not fetched); length = rows in total
    this.held = 0; // rows in shown
    this.byId = new Map(); // the tasks of the rows held (and a small session's whole list)
    this.tasks = 0; // tasks in the whole tree
    this.gen = 0; // bumped by reset(): answers for an older collapsed set are dropped
  }

  // The collapsed set changed: rows from here on are counted differently; forget them.
  reset() {
    this.gen++;
    this.shown = table(this.shown.length); // keep the height until the new total arrives
    this.held = 0;
  }

  collapsedParam() {
    return [...this.collapsed].slice(0, 2000);
  }

  // Stores an answer's rows; false when it belongs to an older collapsed set.
  take(resp, gen) {
    if (gen !== this.gen) return false;
    if (resp.total !== this.shown.length) {
      const keep = this.shown;
      this.shown = table(resp.total);
      this.held = 0;
      for (const k of Object.keys(keep)) {
        const i = Number(k);
        if (k !== 'length' && i < resp.total) this.put(i, keep[k]);
      }
    }
    this.tasks = resp.tasks;
    const rows = resp.rows || [];
    for (const r of rows) this.put(r.row, r);
    if (this.held > KEEP && rows.length) this.evict(rows[0].row);
    return true;
  }

  put(i, t) {
    if (!this.shown[i]) this.held++;
    this.shown[i] = t;
    this.byId.set(t.id, t);
  }

  // Drops the rows held farthest from row `near` until KEEP / 2 are left.
  evict(near) {
    const rows = Object.keys(this.shown).filter((k) => k !== 'length').map(Number);
    rows.sort((a, b) => Math.abs(b - near) - Math.abs(a - near));
    for (const i of rows.slice(0, rows.length - KEEP / 2)) {
      this.byId.delete(this.shown[i].id);
      delete this.shown[i];
      this.held--;
    }
  }

  // Ids of the rows held in [first, last).
  ids(first, last) {
    const out = [];
    for (let i = first; i < Math.min(last, this.shown.length); i++) if (this.shown[i]) out.push(this.shown[i].id);
    return out;
  }

  missing(first, last) {
    for (let i = first; i < Math.min(last, this.shown.length); i++) if (!this.shown[i]) return true;
    return false;
  }

  // Fetches rows around [first, last) unless all are in hand. The first answer also tells the
  // total (before it, shown.length is 0 and any window is "missing"; the caller then passes the
  // window the viewport would show of an unbounded list, and the server answers the rows that
  // exist of it). With view ({from, to, px}) the same answer brings the items of the lanes
  // [first, last): the answer is then { timeline }, else true; false when nothing was fetched
  // or the answer is for an older collapsed set.
  async ensure(first, last, signal, view) {
    if (this.shown.length && !this.missing(first, last)) return false;
    const gen = this.gen;
    const offset = Math.max(0, first - PAD);
    const limit = Math.min(MAX, last - first + 2 * PAD);
    const v = view ? { ...view, lanesOffset: first, lanesLimit: last - first } : undefined;
    const resp = await api.rows(this.sessionId, { offset, limit, collapsed: this.collapsedParam(), view: v }, signal);
    if (!this.take(resp, gen)) return false;
    return view ? { timeline: resp.timeline || null } : true;
  }

  // Where task id's row is, fetching the rows around it; a task hidden under collapsed
  // ancestors is revealed first (they are expanded). The row, or -1 when there is no such task.
  async find(id) {
    for (let guard = 0; guard < 3; guard++) {
      const gen = this.gen;
      const resp = await api.rows(this.sessionId, { find: id, limit: 200, collapsed: this.collapsedParam() });
      if (!resp.found) return -1;
      if (resp.found.row === null) {
        for (const c of resp.found.hidden_by) this.collapsed.delete(c);
        this.reset();
        continue;
      }
      this.take(resp, gen);
      return resp.found.row;
    }
    return -1;
  }

  // Ids related to task id among the rows in hand: its parent and its children.
  relatives(id) {
    const ids = new Set();
    const t = this.byId.get(id);
    if (t && t.parent) ids.add(t.parent);
    for (const x of this.byId.values()) if (x.parent === id) ids.add(x.id);
    return ids;
  }
}
