// compare.js — the compare view: two sessions' timelines one above the other on one time axis
// (drawn by timeline.js as on the session page), and the table of what differs from
// /api/v1/compare, most explaining first. Every task has its lane: each side's lanes scroll, and
// only the lanes in view are drawn and fetched. One view [from, to) zooms both sides together
// (wheel over a plot, shift+wheel pans, W/S keys, "whole"). The pickers list the newest sessions.
import * as api from './api.js';
import * as fmt from './format.js';
import * as tl from './timeline.js';
import * as lanes from './lanes.js';
import * as V from './view.js';
import { h, s, clear } from './dom.js';

const statusEl = document.getElementById('status');
const sidesEl = document.getElementById('sides');
const diffsEl = document.getElementById('diffs');
const pickA = document.getElementById('pick-a');
const pickB = document.getElementById('pick-b');

const sessionHref = (id) => `/sessions/${encodeURIComponent(id)}`;

// The view both sides show, over 0 .. the longer duration; the geometry follows the page width.
const cv = { view: null, duration: 1, geom: null, sides: [], queued: false };

function status(text, error = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('error', error);
}

async function fillPickers(a, b) {
  let list = [];
  try {
    list = (await api.sessions({ limit: 200 })).sessions || [];
  } catch (e) {
    status(`could not list sessions: ${e.message}`, true);
  }
  for (const [sel, want] of [[pickA, a], [pickB, b]]) {
    clear(sel);
    const ids = new Set(list.map((x) => x.id));
    if (want && !ids.has(want)) sel.appendChild(h('option', { value: want }, want));
    for (const x of list) {
      sel.appendChild(h('option', { value: x.id }, `${x.name ?? x.id} · ${fmt.duration(x.duration_ns)}`));
    }
    if (want) sel.value = want;
  }
  if (!a && list.length > 1) pickB.selectedIndex = 1;
}

// One session's strip: its title, the head (axis, blocks, lag, concurrency) and a scrolling box
// of lanes, one per task in tree order. Returns its state; render() draws it.
async function makeSide(label, side) {
  const box = sidesEl.appendChild(h('section', { class: 'compare-side', 'data-side': label }));
  const title = box.appendChild(h('div', { class: 'title-row' }));
  title.appendChild(h('strong', null, `${label}:`));
  title.appendChild(h('a', { href: sessionHref(side.id), class: 'side-link' }, side.name ?? side.id));
  title.appendChild(h('span', { class: 'meta' },
    `${fmt.duration(side.duration_ns)} · ${fmt.count(side.tasks)} tasks · ${fmt.count(side.blocks)} blocks · max lag ${fmt.ms(side.lag_max_ms)}`));
  const [tasks, conc] = await Promise.all([api.tasks(side.id), api.concurrency(side.id)]);
  const wrap = box.appendChild(h('div', { class: 'timeline compare-timeline' }));
  const st = {
    side, wrap, shown: lanes.visible(tasks.tasks, new Set()), conc: conc.series || [], concMax: conc.max || 0,
    head: wrap.appendChild(s('svg', { class: 'head' })),
    scroll: wrap.appendChild(h('div', { class: 'compare-lanes' })),
    data: new Map(), blocks: [], lag: [], seq: 0, abort: null, drawn: 0,
  };
  // tall as all its lanes from the start, so the box's height (and the first window) is right
  st.lanes = st.scroll.appendChild(s('svg', { class: 'lanes', height: Math.max(lanes.LANE_H, st.shown.length * lanes.LANE_H) }));
  st.scroll.addEventListener('scroll', () => requestRender(), { passive: true });
  wrap.addEventListener('wheel', (ev) => onWheel(ev, st), { passive: false });
  return st;
}

function laneWindow(st) {
  return lanes.windowOf(st.shown.length, st.scroll.scrollTop, st.scroll.clientHeight);
}

// Draws side st from the data in hand: head, and the lanes of its scrolled window.
function drawSide(st, win) {
  const g = cv.geom;
  clear(st.head);
  st.head.setAttribute('width', g.width);
  st.head.setAttribute('height', tl.HEAD_H);
  tl.drawHead(st.head, {
    geom: g, blocks: st.blocks, lag: st.lag, lagMaxNs: Number(st.side.lag_max_ms) * 1e6,
    conc: st.conc, concMax: st.concMax, blockCount: st.side.blocks,
  });
  clear(st.lanes);
  st.lanes.setAttribute('width', g.width);
  st.lanes.setAttribute('height', Math.max(lanes.LANE_H, st.shown.length * lanes.LANE_H));
  tl.drawLanes(st.lanes, {
    shown: st.shown, first: win.first, last: Math.min(win.last, st.shown.length), data: st.data, geom: g,
    duration: st.side.duration_ns, selected: null, related: null, collapsed: new Set(), blocks: st.blocks,
  });
  st.wrap.dataset.from = String(cv.view.from);
  st.wrap.dataset.to = String(cv.view.to);
  st.wrap.dataset.first = String(win.first);
  st.wrap.dataset.last = String(Math.min(win.last, st.shown.length));
}

// Draws at once with the data in hand, then fetches the view and the lanes in sight (a query
// still in flight is aborted: one at a time per side, the newest answer drawn).
async function renderSide(st) {
  const win = laneWindow(st);
  const seq = ++st.seq;
  if (st.abort) st.abort.abort();
  const ctl = new AbortController();
  st.abort = ctl;
  drawSide(st, win);
  let resp;
  try {
    resp = await api.timeline(st.side.id, {
      from: cv.view.from, to: cv.view.to, px: cv.geom.plotW,
      taskIds: st.shown.slice(win.first, win.last).map((t) => t.id),
    }, ctl.signal);
  } catch (e) {
    if (e.name !== 'AbortError') status(`timeline: ${e.message}`, true);
    return;
  }
  if (seq !== st.seq) return;
  st.data = new Map();
  for (const lane of resp.lanes || []) st.data.set(lane.task, lane.items || []);
  st.blocks = resp.blocks || [];
  st.lag = resp.lag || [];
  drawSide(st, win);
  st.wrap.dataset.drawn = String(++st.drawn);
}

function render() {
  const width = Math.max(600, sidesEl.clientWidth || document.documentElement.clientWidth - 24);
  cv.geom = tl.geometry(width, cv.view);
  return Promise.all(cv.sides.map(renderSide));
}

// One render after the current event, however many view or scroll changes it made.
function requestRender() {
  if (cv.queued) return;
  cv.queued = true;
  queueMicrotask(() => {
    cv.queued = false;
    render();
  });
}

function setView(v) {
  cv.view = V.clamp(v, cv.duration);
  requestRender();
}

// Over a plot the wheel zooms both sides around the time under the pointer (200 px of wheel
// halves or doubles the span) and shift+wheel pans; over the label column it scrolls the lanes.
function onWheel(ev, st) {
  const svg = st.head.contains(ev.target) ? st.head : st.lanes;
  const x = ev.clientX - svg.getBoundingClientRect().left;
  if (x < tl.GUTTER) return;
  ev.preventDefault();
  const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
  if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
    const dx = (Math.abs(ev.deltaX) > Math.abs(ev.deltaY) ? ev.deltaX : ev.deltaY) * unit;
    setView(V.pan(cv.view, dx * cv.geom.nsPerPx, cv.duration));
    return;
  }
  setView(V.zoomAt(cv.view, cv.geom.t(x), 2 ** ((ev.deltaY * unit) / 200), cv.duration));
}

function onKey(ev) {
  if (!cv.view || ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.closest('select, input')) return;
  const mid = (cv.view.from + cv.view.to) / 2;
  const span = cv.view.to - cv.view.from;
  switch (ev.key) {
    case 'w': case 'W': setView(V.zoomAt(cv.view, mid, 0.5, cv.duration)); break;
    case 's': case 'S': setView(V.zoomAt(cv.view, mid, 2, cv.duration)); break;
    case 'a': case 'A': setView(V.pan(cv.view, -span / 4, cv.duration)); break;
    case 'd': case 'D': setView(V.pan(cv.view, span / 4, cv.duration)); break;
    default: return;
  }
  ev.preventDefault();
}

function what(d) {
  if (d.kind === 'task') return d.path ?? d.what ?? '';
  if (d.kind === 'lag') return 'longest lag sample';
  const where = fmt.place(d.file, d.line);
  return d.what ? `${where} ${d.what}` : where;
}

function diffTable(c) {
  clear(diffsEl);
  diffsEl.appendChild(h('h2', null, `What differs (${fmt.count(c.total)})`));
  const sign = c.delta_ns >= 0 ? 'b' : 'a';
  diffsEl.appendChild(h('p', { class: 'muted' },
    `${sign} is slower by ${fmt.duration(Math.abs(c.delta_ns))}; rows by how much they explain it`));
  const table = diffsEl.appendChild(h('table', { class: 'sessions diffs' }));
  const tr = table.appendChild(h('thead')).appendChild(h('tr'));
  for (const [t, num] of [['kind'], ['what'], ['a count', 1], ['b count', 1], ['a time', 1], ['b time', 1], ['Δ time', 1]]) {
    tr.appendChild(h('th', { class: num ? 'num' : null }, t));
  }
  const tb = table.appendChild(h('tbody'));
  for (const d of c.differences) {
    const row = tb.appendChild(h('tr', { 'data-kind': d.kind }));
    row.appendChild(h('td', null, d.kind));
    row.appendChild(h('td', { class: 'code' }, what(d)));
    row.appendChild(h('td', { class: 'num' }, fmt.count(d.a_count)));
    row.appendChild(h('td', { class: 'num' }, fmt.count(d.b_count)));
    row.appendChild(h('td', { class: 'num' }, fmt.duration(d.a_ns)));
    row.appendChild(h('td', { class: 'num' }, fmt.duration(d.b_ns)));
    row.appendChild(h('td', { class: `num ${d.delta_ns > 0 ? 'grew' : 'shrank'}` },
      `${d.delta_ns > 0 ? '+' : d.delta_ns < 0 ? '−' : ''}${fmt.duration(Math.abs(d.delta_ns))}`));
  }
}

async function load() {
  const q = new URLSearchParams(location.search);
  const a = q.get('a');
  const b = q.get('b');
  await fillPickers(a, b);
  if (!a || !b) {
    status('pick two sessions, or open "compare slowest vs median" on the endpoints page');
    document.body.dataset.loaded = '1';
    return;
  }
  let c;
  try {
    c = await api.compare(a, b, { limit: 200 });
  } catch (e) {
    status(`could not compare: ${e.message}`, true);
    document.body.dataset.loaded = '1';
    return;
  }
  document.title = `loopscope — ${c.a.name ?? c.a.id} vs ${c.b.name ?? c.b.id}`;
  status(`${c.a.name ?? c.a.id} (${fmt.duration(c.a.duration_ns)}) vs ${c.b.name ?? c.b.id} (${fmt.duration(c.b.duration_ns)})`);
  cv.duration = Math.max(1, c.a.duration_ns, c.b.duration_ns);
  cv.view = V.whole(cv.duration);
  clear(sidesEl);
  const bar = sidesEl.appendChild(h('div', { class: 'compare-zoom muted' },
    'wheel over a timeline zooms both, shift+wheel pans (keys W S A D) · '));
  bar.appendChild(h('button', { type: 'button', id: 'zoom-whole' }, 'whole'))
    .addEventListener('click', () => setView(V.whole(cv.duration)));
  try {
    cv.sides = [await makeSide('a', c.a), await makeSide('b', c.b)];
    await render();
  } catch (e) {
    status(`could not draw the timelines: ${e.message}`, true);
  }
  diffTable(c);
  document.body.dataset.loaded = '1';
}

document.addEventListener('keydown', onKey);
window.addEventListener('resize', () => { if (cv.view) requestRender(); });
document.getElementById('pick').addEventListener('submit', (ev) => {
  ev.preventDefault();
  location.assign(`/compare?${new URLSearchParams({ a: pickA.value, b: pickB.value })}`);
});
load();
