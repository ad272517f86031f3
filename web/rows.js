// rows.js — the session's lanes as the server serves them (/rows): a sparse cache of the rows
// of the current collapsed set, filled a window at a time around the viewport, so the page
// holds and draws what is near the viewport whatever the session's size. Tree order, depth,
// child counts and where a task's row is come from the server; drawing is timeline.js's.
import * as api from './api.js';

const PAD = 100; // rows fetched beyond the viewport either side, so a short scroll needs no fetch
const MAX = 2000; // the server's limit per answer

export class Rows {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.collapsed = new Set();
    this.shown = []; // row index -> task (holes where not fetched yet); length = rows in total
    this.byId = new Map(); // every task fetched so far (kept across collapse changes)
    this.tasks = 0; // tasks in the whole tree
    this.gen = 0; // bumped by reset(): answers for an older collapsed set are dropped
  }

  // The collapsed set changed: rows from here on are counted differently; forget them.
  reset() {
    this.gen++;
    const n = this.shown.length;
    this.shown = [];
    this.shown.length = n; // keep the height until the new total arrives
  }

  collapsedParam() {
    return [...this.collapsed].slice(0, 2000);
  }

  // Stores an answer's rows; false when it belongs to an older collapsed set.
  take(resp, gen) {
    if (gen !== this.gen) return false;
    if (resp.total !== this.shown.length) {
      const keep = this.shown;
      this.shown = [];
      this.shown.length = resp.total;
      keep.forEach((t, i) => { if (i < resp.total) this.shown[i] = t; });
    }
    this.tasks = resp.tasks;
    for (const r of resp.rows || []) {
      this.shown[r.row] = r;
      this.byId.set(r.id, r);
    }
    return true;
  }

  missing(first, last) {
    for (let i = first; i < Math.min(last, this.shown.length); i++) if (!this.shown[i]) return true;
    return false;
  }

  // Fetches rows around [first, last) unless all are in hand. The first answer also tells the
  // total (before it, shown.length is 0 and any window is "missing").
  async ensure(first, last, signal) {
    if (this.shown.length && !this.missing(first, last)) return false;
    const gen = this.gen;
    const offset = Math.max(0, first - PAD);
    const limit = Math.min(MAX, last - first + 2 * PAD);
    const resp = await api.rows(this.sessionId, { offset, limit, collapsed: this.collapsedParam() }, signal);
    return this.take(resp, gen);
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
    for (const x of this.shown) if (x && x.parent === id) ids.add(x.id);
    return ids;
  }
}
