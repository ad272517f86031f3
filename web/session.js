// session.js — the session page's controller: loads the session through api.js, keeps the view
// (time range, selection, collapsed tasks), turns input (wheel, drag, keys, clicks) into view
// changes, asks for the lanes in view (rows.js, from /rows) and their level-of-detail timeline
// and hands the data to timeline.js and tables.js to draw. Also keeps the view in the URL and
// the embed layout. Nothing it fetches grows with the session's size, so the first render does
// not either (the tasks table of a large session is the exception below).
import * as api from './api.js';
import * as fmt from './format.js';
import * as lanes from './lanes.js';
import * as tl from './timeline.js';
import * as tables from './tables.js';
import * as V from './view.js';
import { h, clear } from './dom.js';
import * as details from './details.js';
import * as live from './live.js';
import { Rows } from './rows.js';

const $ = (id) => document.getElementById(id);
const el = {
  timeline: $('timeline'), minimap: $('minimap'), head: $('head'), scroll: $('lanes-scroll'),
  lanes: $('lanes'), space: $('lanes-space'), range: $('range'), tooltip: $('tooltip'), status: $('status'),
  title: $('title'), meta: $('meta'), summary: $('summary'), help: $('help'),
};

const params = new URLSearchParams(location.search);
const embed = params.get('embed') === '1';
const sessionId = decodeURIComponent(location.pathname.replace(/\/+$/, '').split('/').pop() || '');

// A session with at most this many tasks loads them all to name the tasks in the awaits and
// blocks tables (~240 bytes each, so under 1 MB); a larger one's name those of the rows in hand.
const TABLE_ALL_TASKS = 3000;

// Tasks whose items (for the view) are kept across scroll steps: ~100 viewports of lanes, each
// task's items a few hundred bytes at most (one level-of-detail answer's worth per lane).
const DATA_KEEP = 4000;

const st = {
  summary: null,
  rows: new Rows(sessionId), // the lanes: rows.shown (sparse, by row), rows.byId, rows.collapsed
  duration: 1,
  view: { from: 0, to: 1 },
  selected: null,
  related: new Set(),
  // Items per task for the view of tlKey (the lanes of every answer for that view, up to
  // DATA_KEEP tasks), the lanes drawn, blocks and lag in view.
  data: new Map(),
  win: { first: 0, last: 0 },
  tlBlocks: [],
  tlLag: [],
  conc: null,
  concMax: 0,
  allBlocks: null,
  minimapKey: '',
  tlKey: '', // the view (from|to|px) that tlBlocks and tlLag are for, and data's items when set
  headDrawn: null, // what the head was last drawn from (drawAll)
  seq: 0,
  drawn: 0,
  abort: null,
  pendingInput: false,
  table: null,
  live: null, // live.controls() while the session records
};

function status(text, isError = false) {
  el.status.textContent = text;
  el.status.classList.toggle('error', isError);
}

// ---- drawing -------------------------------------------------------------------------------

function plotWidth() {
  return Math.max(tl.GUTTER + 100, el.scroll.clientWidth);
}

// The label column is 240 px, but a toolbar docks its panel ~400 px wide: there a fixed column
// would leave the plot ~130 px, so a narrow embed gives the labels 30% (at least 96 px).
function fitGutter() {
  const w = el.scroll.clientWidth;
  tl.setGutter(embed && w < 700 ? Math.max(96, Math.round(w * 0.3)) : 240);
}

function geom() {
  fitGutter();
  return tl.geometry(plotWidth(), st.view);
}

// Draws everything from the data in hand (no fetch): head, the lanes of window `win`, minimap.
function drawAll(g, win) {
  const lagMaxNs = st.summary && st.summary.lag ? Number(st.summary.lag.max_ms) * 1e6 : 0;
  // The head (axis, blocks, lag, concurrency) is drawn again only when what it shows changed: a
  // scroll step changes the lanes alone, and rebuilding the head's SVG cost each step its style,
  // layout and paint (bench/page at 1M tasks)
  const head = [g.width, g.gutter, st.view.from, st.view.to, st.tlBlocks, st.tlLag, st.conc, st.concMax, lagMaxNs,
    st.summary ? st.summary.blocks : 0];
  if (!st.headDrawn || head.some((v, i) => v !== st.headDrawn[i])) {
    st.headDrawn = head;
    clear(el.head);
    el.head.setAttribute('width', g.width);
    el.head.setAttribute('height', tl.HEAD_H);
    tl.drawHead(el.head, {
      geom: g, blocks: st.tlBlocks, lag: st.tlLag, lagMaxNs, conc: st.conc, concMax: st.concMax,
      blockCount: st.summary ? st.summary.blocks : 0,
    });
  }

  clear(el.lanes);
  setRowCount();
  const last = Math.min(win.last, st.rows.shown.length);
  placeLanes(g.width, win.first, last);
  tl.drawLanes(el.lanes, {
    shown: st.rows.shown, first: win.first, last, data: st.data, geom: g,
    duration: st.duration, selected: st.selected, related: st.related, collapsed: st.rows.collapsed, blocks: st.tlBlocks,
  });

  if (!embed) {
    // The overview changes only with the width or when its data arrives; else the brush moves.
    const key = `${g.width}|${st.conc ? st.conc.length : -1}|${st.allBlocks ? st.allBlocks.length : -1}`;
    if (key !== st.minimapKey) {
      st.minimapKey = key;
      clear(el.minimap);
      el.minimap.setAttribute('width', g.width);
      el.minimap.setAttribute('height', tl.MINIMAP_H);
      tl.drawMinimap(el.minimap, {
        width: g.width, duration: st.duration, conc: st.conc, concMax: st.concMax, blocks: st.allBlocks, view: st.view,
      });
    } else {
      tl.moveBrush(el.minimap, g.width, st.duration, st.view);
    }
  }
  el.timeline.dataset.from = String(st.view.from);
  el.timeline.dataset.to = String(st.view.to);
}

// The scroll height of the lanes: every row's (the spacer's), whichever of them are drawn.
function setRowCount() {
  const h = `${Math.max(lanes.LANE_H, st.rows.shown.length * lanes.LANE_H)}px`;
  if (el.space.style.height !== h) el.space.style.height = h;
}

// The lanes SVG covers rows [first, last) only, placed over them; its viewBox keeps a lane's y at
// row x LANE_H, the coordinates timeline.js draws in.
function placeLanes(width, first, last) {
  const top = first * lanes.LANE_H;
  const h = Math.max(lanes.LANE_H, (last - first) * lanes.LANE_H);
  el.lanes.setAttribute('width', width);
  el.lanes.setAttribute('height', h);
  el.lanes.setAttribute('viewBox', `0 ${top} ${width} ${h}`);
  el.lanes.style.top = `${top}px`;
}

// The height the lanes box can grow to (px): its max-height, or its height when it has none.
function lanesBoxMax() {
  const max = parseFloat(getComputedStyle(el.scroll).maxHeight);
  return Math.max(el.scroll.clientHeight, Number.isFinite(max) ? max : 0);
}

// The lanes the scrolled viewport needs, and 4 beyond it either side (each lane drawn is ~8 SVG
// elements whose style, layout and paint the frame after a draw pays: at 8 either side that
// frame took 17 ms of a 1M-task scroll step, bench/page/scroll.mjs --trace).
const OVERSCAN = 4;
function laneWindow() {
  return lanes.windowOf(st.rows.shown.length, el.scroll.scrollTop, el.scroll.clientHeight, OVERSCAN);
}

let queued = false;
// Schedules one render after the current event, however many view changes it made. (Not on
// the next animation frame: that would add up to 16 ms to every step; a fast wheel spin is
// kept cheap by render() aborting the query still in flight instead.)
function requestRender() {
  if (queued) return;
  queued = true;
  queueMicrotask(() => {
    queued = false;
    render();
  });
}

// Draws at once from the data in hand, then asks the server for the visible range and lanes
// and draws again. A query still in flight is aborted, so however fast the wheel spins there
// is one query at a time, and only the newest answer is drawn.
async function render() {
  const g = geom();
  // before the first /rows answer the row count is unknown: ask for the lanes the viewport could
  // show of an unbounded list (the lanes box grows with its rows up to its CSS max-height; in an
  // embed it has its final height already), with their items: the first render is then one
  // round trip after the summary, not two
  let win = st.rows.shown.length ? laneWindow() : lanes.windowOf(Infinity, el.scroll.scrollTop, lanesBoxMax(), OVERSCAN);
  const seq = ++st.seq;
  if (st.abort) st.abort.abort();
  const ctl = new AbortController();
  st.abort = ctl;
  // immediate feedback with the data in hand (new lanes show their labels); a scroll to rows not
  // fetched yet draws once they arrive instead (nothing to show before)
  const inHand = st.rows.shown.length && !st.rows.missing(win.first, win.last);
  // blocks and lag depend on the range and width only: a scroll step (same view, other lanes)
  // asks for the lanes alone and keeps those it has (at 1M tasks and 100 s, 139 kB of lag that
  // every scroll step fetched and parsed again)
  const tlKey = `${Math.floor(st.view.from)}|${Math.ceil(st.view.to)}|${Math.round(g.plotW)}`;
  const only = st.tlKey === tlKey ? 'lanes' : undefined;
  // a redraw for what else arrived (the charts' series, the tables, a selection), or a scroll
  // to lanes whose items came with an answer for this view, asks nothing when the view's lanes,
  // items, blocks and lag are all in hand (a live update clears tlKey). Every answer is for the
  // view of tlKey (a lanes-only one is asked only when tlKey is the view), so when tlKey is the
  // view, data holds items of this view.
  const complete = inHand && only && st.rows.ids(win.first, win.last).every((id) => st.data.has(id));
  // rows in hand without their items: the request leaves before the draw of what is in hand, not
  // after it (that draw took 3-6 ms of a scroll step back to rows fetched before, at 1M tasks)
  const asked = inHand && !complete
    ? api.timeline(sessionId, { from: st.view.from, to: st.view.to, px: g.plotW, taskIds: st.rows.ids(win.first, win.last), only }, ctl.signal)
    : null;
  if (inHand) drawAll(g, win);
  scheduleUrl();
  updateOpenFull();
  if (complete) {
    st.win = win;
    drawn();
    return;
  }
  let resp;
  try {
    if (asked) resp = await asked;
    // the lanes in view first (a window of /rows), unless they are in hand already; once the row
    // count is known the same answer brings their items (a scroll step is one round trip and
    // one draw)
    const got = resp ? false : await st.rows.ensure(win.first, win.last, ctl.signal, { from: st.view.from, to: st.view.to, px: g.plotW, only });
    if (got) {
      if (seq !== st.seq) return;
      // the first answer sets the row count, hence the scroll range; its items serve any window
      // inside the one asked (a short list's lanes are the rows that exist)
      const w2 = laneWindow();
      if (got.timeline && w2.first >= win.first && w2.last <= win.last) {
        resp = got.timeline;
        win = w2;
      } else drawAll(geom(), (win = w2));
    }
    if (!resp) {
      const ids = st.rows.ids(win.first, win.last);
      resp = await api.timeline(sessionId, { from: st.view.from, to: st.view.to, px: g.plotW, taskIds: ids, only }, ctl.signal);
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    status(`timeline: ${e.message}`, true);
    return;
  }
  if (seq !== st.seq) return;
  // a full answer is for a new view (or new data): the items held are not; a lanes-only one adds
  // to them (the same view), so a scroll back to lanes drawn before draws without asking
  const full = resp.blocks !== undefined || resp.lag !== undefined;
  if (full || st.data.size > DATA_KEEP) st.data = new Map();
  for (const lane of resp.lanes || []) st.data.set(lane.task, lane.items || []);
  st.win = win;
  if (full) {
    st.tlBlocks = resp.blocks || [];
    st.tlLag = resp.lag || [];
    st.tlKey = tlKey;
  }
  drawAll(geom(), win);
  drawn();
}

// A draw is done: the counter and marks tests and the benchmark read, and the step it ends.
function drawn() {
  st.drawn++;
  el.timeline.dataset.drawn = String(st.drawn);
  el.timeline.dataset.svgCount = String(document.querySelectorAll('svg *').length);
  performance.clearMarks('ls:drawn');
  performance.mark('ls:drawn');
  if (st.pendingInput) {
    st.pendingInput = false;
    if (performance.getEntriesByName('ls:step').length > 500) performance.clearMeasures('ls:step');
    performance.measure('ls:step', 'ls:input', 'ls:drawn');
  }
}

// The address follows the view, at most every 150 ms (browsers throttle faster history updates).
let urlTimer = 0;
function scheduleUrl() {
  if (urlTimer) return;
  urlTimer = setTimeout(() => {
    urlTimer = 0;
    const q = V.toQuery(location.search, st.view);
    if (q !== location.search) history.replaceState(null, '', q);
  }, 150);
}

function setView(v) {
  const nv = V.clamp(v, st.duration);
  if (nv.from === st.view.from && nv.to === st.view.to) return;
  // the user moved away from the end of a live session: stop following it (the toggle says so)
  if (st.live && nv.to < st.duration) st.live.setFollow(false);
  st.view = nv;
  performance.clearMarks('ls:input');
  performance.mark('ls:input');
  st.pendingInput = true;
  requestRender();
}

function updateOpenFull() {
  const a = $('open-full');
  const q = new URLSearchParams(V.toQuery(location.search, st.view));
  q.delete('embed');
  a.href = `/sessions/${encodeURIComponent(sessionId)}?${q}`;
}

// ---- selection and tree --------------------------------------------------------------------

// Selects task id; with scrollLane its lane is found (and revealed) through the server and
// scrolled into view, as the lanes in hand are only those near the viewport.
async function selectTask(id, { scrollLane = false, scrollTable = true } = {}) {
  let pos = -1;
  if (scrollLane || !st.rows.byId.has(id)) {
    try {
      pos = await st.rows.find(id);
    } catch (e) {
      status(`could not find task #${id}: ${e.message}`, true);
      return;
    }
    if (pos < 0) return;
  }
  if (!st.rows.byId.has(id)) return;
  st.selected = id;
  st.related = st.rows.relatives(id);
  if (scrollLane) {
    // the lanes' height follows the row count the answer gave (a reveal may have changed it)
    setRowCount();
    const y = pos * lanes.LANE_H;
    if (y < el.scroll.scrollTop || y + lanes.LANE_H > el.scroll.scrollTop + el.scroll.clientHeight) {
      el.scroll.scrollTop = Math.max(0, y - el.scroll.clientHeight / 2);
    }
  }
  if (st.table) st.table.select(id, scrollTable);
  el.timeline.dataset.selected = String(id);
  requestRender();
}

function toggle(id) {
  if (st.rows.collapsed.has(id)) st.rows.collapsed.delete(id);
  else st.rows.collapsed.add(id);
  st.rows.reset(); // rows below it move: fetch the window again for the new collapsed set
  requestRender();
}

// ---- tooltip -------------------------------------------------------------------------------

function showTip(lines, clientX, clientY) {
  const tip = el.tooltip;
  clear(tip);
  lines.forEach(([k, v], i) => {
    const row = tip.appendChild(h('div', i === 0 ? { class: 'tip-title' } : null));
    if (k) row.appendChild(h('span', { class: 'tip-key' }, k));
    row.appendChild(h('span', { class: 'tip-val' }, v));
  });
  tip.hidden = false;
  const box = el.timeline.getBoundingClientRect();
  let x = clientX - box.left + 14;
  const y = clientY - box.top + 14;
  if (x + tip.offsetWidth > box.width) x = Math.max(0, clientX - box.left - tip.offsetWidth - 10);
  tip.style.left = `${x}px`;
  tip.style.top = `${y}px`;
}

// The session's own duration (st.duration is at least MIN_SPAN, for the view).
function sessionDuration() {
  return st.summary ? Number(st.summary.duration_ns) : st.duration;
}

function hideTip() {
  el.tooltip.hidden = true;
}

// ---- input ---------------------------------------------------------------------------------

function laneAt(clientY) {
  const box = el.space.getBoundingClientRect(); // row 0's top, wherever the drawn lanes are
  const i = Math.floor((clientY - box.top) / lanes.LANE_H);
  return i >= 0 && i < st.rows.shown.length ? st.rows.shown[i] : null;
}

function svgX(svg, clientX) {
  return clientX - svg.getBoundingClientRect().left;
}

let drag = null; // {kind: 'pan'|'select'|'mini', x0, view0, moved}

// A left-button press on svg starts a drag, but not in the row-label gutter unless fromGutter;
// what kind of drag (and its own state) comes from fields(), asked only then.
function startDrag(ev, svg, fromGutter, fields) {
  if (ev.button !== 0) return;
  const x = svgX(svg, ev.clientX);
  if (!fromGutter && x < tl.GUTTER) return;
  drag = { x0: x, clientX0: ev.clientX, moved: false, ...fields() };
  ev.preventDefault();
  el.timeline.focus({ preventScroll: true });
}

function onLanesMouseDown(ev) {
  startDrag(ev, el.lanes, true, () => ({ kind: 'pan', view0: st.view, target: ev.target }));
}

function onHeadMouseDown(ev) {
  startDrag(ev, el.head, false, () => ({ kind: 'select', svg: el.head, g: geom() }));
}

function onMiniMouseDown(ev) {
  startDrag(ev, el.minimap, false,
    () => ({ kind: 'mini', svg: el.minimap, g: tl.geometry(plotWidth(), { from: 0, to: st.duration }) }));
}

function showRange(svg, xa, xb) {
  const tb = el.timeline.getBoundingClientRect();
  const sb = svg.getBoundingClientRect();
  el.range.hidden = false;
  el.range.style.left = `${sb.left - tb.left + Math.min(xa, xb)}px`;
  el.range.style.width = `${Math.abs(xb - xa)}px`;
  el.range.style.top = `${sb.top - tb.top}px`;
  // On the overview the selection covers the overview only: its scale is not the lanes'.
  const h = svg === el.minimap ? sb.height : el.timeline.clientHeight - (sb.top - tb.top);
  el.range.style.height = `${h}px`;
}

function onMouseMove(ev) {
  if (drag) {
    if (Math.abs(ev.clientX - drag.clientX0) > 3) drag.moved = true;
    if (!drag.moved) return;
    hideTip();
    if (drag.kind === 'pan') {
      const x = svgX(el.lanes, ev.clientX);
      const g = tl.geometry(plotWidth(), drag.view0);
      setView(V.pan(drag.view0, -(x - drag.x0) * g.nsPerPx, st.duration));
    } else {
      const x = Math.max(tl.GUTTER, Math.min(plotWidth(), svgX(drag.svg, ev.clientX)));
      showRange(drag.svg, drag.x0, x);
    }
    return;
  }
  hover(ev);
}

function onMouseUp(ev) {
  if (!drag) return;
  const d = drag;
  drag = null;
  el.range.hidden = true;
  if (d.kind === 'pan') {
    if (!d.moved) clickLane(ev, d.target);
    return;
  }
  const x = Math.max(tl.GUTTER, Math.min(plotWidth(), svgX(d.svg, ev.clientX)));
  if (d.moved && Math.abs(x - d.x0) >= 3) {
    setView(V.select(d.g.t(d.x0), d.g.t(x), st.duration));
  } else if (d.kind === 'mini') {
    // A click on the overview centres the current span there.
    const span = st.view.to - st.view.from;
    const c = d.g.t(x);
    setView({ from: c - span / 2, to: c + span / 2 });
  }
}

function clickLane(ev, target) {
  const toggleId = target && target.getAttribute && target.getAttribute('data-toggle');
  if (toggleId) {
    toggle(Number(toggleId));
    return;
  }
  const t = laneAt(ev.clientY);
  if (t) selectTask(t.id);
}

function hover(ev) {
  const inLanes = el.lanes.contains(ev.target);
  const inHead = el.head.contains(ev.target);
  if (!inLanes && !inHead) {
    hideTip();
    return;
  }
  const svg = inLanes ? el.lanes : el.head;
  const x = svgX(svg, ev.clientX);
  const g = geom();
  const t = g.t(x);
  const tol = g.nsPerPx * 2;
  if (inLanes) {
    const task = laneAt(ev.clientY);
    if (!task) return hideTip();
    if (x < tl.GUTTER) return showTip(details.task(task, sessionDuration()), ev.clientX, ev.clientY);
    const it = tl.hit(st.data.get(task.id) || [], t, tol);
    if (it) return showTip(details.item(task, it), ev.clientX, ev.clientY);
    const b = tl.hit(st.tlBlocks, t, 0);
    if (b) return showTip(details.block(b, st.rows.byId.get(b.task)), ev.clientX, ev.clientY);
    return showTip(details.task(task, sessionDuration()), ev.clientX, ev.clientY);
  }
  const y = ev.clientY - el.head.getBoundingClientRect().top;
  if (x < tl.GUTTER) return hideTip();
  if (y >= tl.AXIS_H && y < tl.AXIS_H + tl.BLOCKS_H) {
    const b = tl.hit(st.tlBlocks, t, tol);
    if (b) return showTip(details.block(b, st.rows.byId.get(b.task)), ev.clientX, ev.clientY);
  } else if (y >= tl.AXIS_H + tl.BLOCKS_H && y < tl.AXIS_H + tl.BLOCKS_H + tl.LAG_H) {
    let best = null;
    for (const p of st.tlLag) if (Math.abs(p.t - t) <= tol * 2 && (!best || p.d > best.d)) best = p;
    if (best) return showTip(details.lag(best), ev.clientX, ev.clientY);
  } else if (y >= tl.AXIS_H) {
    const n = concAt(t);
    if (n !== null) return showTip([[null, `${fmt.count(n)} tasks alive`], ['at', fmt.time(t)]], ev.clientX, ev.clientY);
  }
  return hideTip();
}

function concAt(t) {
  const s = st.conc;
  if (!s || !s.length) return null;
  let lo = 0;
  let hi = s.length - 1;
  if (s[0].t > t) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s[mid].t <= t) lo = mid;
    else hi = mid - 1;
  }
  return s[lo].n;
}

function onWheel(ev) {
  const svg = el.lanes.contains(ev.target) ? el.lanes : el.head.contains(ev.target) ? el.head : el.minimap;
  // Over the lanes' label column the wheel scrolls the lanes as usual; over the plot it zooms.
  if (svg === el.lanes && svgX(svg, ev.clientX) < tl.GUTTER) return;
  ev.preventDefault();
  const g = geom();
  const horizontal = ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY);
  const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
  if (horizontal) {
    const dx = (Math.abs(ev.deltaX) > Math.abs(ev.deltaY) ? ev.deltaX : ev.deltaY) * unit;
    setView(V.pan(st.view, dx * g.nsPerPx, st.duration));
    return;
  }
  const x = Math.max(tl.GUTTER, svgX(svg, ev.clientX));
  // 200 px of wheel halves or doubles the span; the time under the pointer stays put (on the
  // overview, the time under the pointer there is the anchor).
  const factor = 2 ** ((ev.deltaY * unit) / 200);
  const at = svg === el.minimap ? tl.geometry(plotWidth(), V.whole(st.duration)).t(x) : g.t(x);
  setView(V.zoomAt(st.view, at, factor, st.duration));
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tag = ev.target && ev.target.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
  const span = st.view.to - st.view.from;
  const mid = (st.view.from + st.view.to) / 2;
  switch (ev.key) {
    case 'w': case 'W': setView(V.zoomAt(st.view, mid, 0.5, st.duration)); break;
    case 's': case 'S': setView(V.zoomAt(st.view, mid, 2, st.duration)); break;
    case 'a': case 'A': setView(V.pan(st.view, -span / 4, st.duration)); break;
    case 'd': case 'D': setView(V.pan(st.view, span / 4, st.duration)); break;
    case '0': setView(V.whole(st.duration)); break;
    case 'p': case 'P': {
      const t = st.selected !== null ? st.rows.byId.get(st.selected) : null;
      if (!t || !t.parent) return;
      selectTask(t.parent, { scrollLane: true, scrollTable: true });
      break;
    }
    case '?': el.help.hidden = !el.help.hidden; break;
    case 'Escape': el.help.hidden = true; break;
    default: return;
  }
  ev.preventDefault();
}

function onScroll() {
  hideTip();
  // Only a scroll past the lanes already drawn (overscan) needs new data.
  const w = laneWindow();
  if (w.first >= st.win.first && w.last <= st.win.last) return;
  requestRender();
}

function wire() {
  el.lanes.addEventListener('mousedown', onLanesMouseDown);
  el.head.addEventListener('mousedown', onHeadMouseDown);
  el.minimap.addEventListener('mousedown', onMiniMouseDown);
  window.addEventListener('mousemove', onMouseMove);
  window.addEventListener('mouseup', onMouseUp);
  el.timeline.addEventListener('mouseleave', hideTip);
  el.timeline.addEventListener('wheel', onWheel, { passive: false });
  document.addEventListener('keydown', onKey);
  el.scroll.addEventListener('scroll', onScroll, { passive: true });
  window.addEventListener('resize', requestRender);
  $('help-button').addEventListener('click', () => { el.help.hidden = !el.help.hidden; });
  el.help.addEventListener('click', () => { el.help.hidden = true; });
  const json = $('export-json');
  json.href = api.exportUrl(sessionId, 'json');
  json.download = `loopscope-${sessionId}.json`;
  $('export-chrome').addEventListener('click', async (ev) => {
    ev.preventDefault();
    status('preparing the Chrome trace…');
    try {
      const blob = await api.exportBlob(sessionId, 'chrome');
      status('');
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `loopscope-${sessionId}.trace.json` });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      status(`Chrome trace: could not export (${e.detail || e.message})`, true);
    }
  });
}

// ---- loading -------------------------------------------------------------------------------

function showSummary(sum) {
  document.title = `loopscope — ${sum.name || sum.id}`;
  el.title.textContent = sum.name || sum.id;
  const bits = [sum.service, sum.host, sum.pid ? `pid ${sum.pid}` : null, sum.python ? `Python ${sum.python}` : null,
    sum.fraction ? `${fmt.share(sum.fraction)} recorded` : null];
  el.meta.textContent = bits.filter(Boolean).join(' · ');
  tables.fillSummary(el.summary, sum);
}

// The names that label the awaits and blocks tables: a small session's whole task list (a large
// session's tables name the tasks of the rows in hand, else `#id`). The tasks table itself pages
// and sorts on the server (tables.TasksTable).
async function labelTasks() {
  const n = st.summary ? Number(st.summary.tasks) : 0;
  if (n > TABLE_ALL_TASKS) return;
  const tk = await api.tasks(sessionId);
  for (const t of tk.tasks || []) if (!st.rows.byId.has(t.id)) st.rows.byId.set(t.id, t);
}

async function loadSecondary() {
  // Everything not needed for the first picture: charts' full series and the tables.
  const onTask = (id) => selectTask(id, { scrollLane: true, scrollTable: true });
  const labels = embed ? Promise.resolve() : labelTasks();
  const jobs = [
    api.concurrency(sessionId, 2 * plotWidth()).then((c) => {
      st.conc = c.series || [];
      st.concMax = c.max || 0;
      requestRender();
    }),
    api.blocks(sessionId).then(async (b) => {
      st.allBlocks = (b.blocks || []).map((x) => ({ t: x.t, d: x.d }));
      if (!embed) {
        await labels.catch(() => {});
        tables.fillBlocks($('blocks-table'), b, st.rows.byId, onTask);
      }
      requestRender();
    }),
  ];
  if (!embed) {
    jobs.push(Promise.all([labels, api.awaits(sessionId, { minMs: 10, limit: 200 })])
      .then(([, a]) => tables.fillAwaits($('awaits-table'), a, st.rows.byId, onTask)));
    st.table = new tables.TasksTable($('tasks-table'), (p) => api.tasksPage(sessionId, p), st.duration, onTask);
    jobs.push(st.table.ready.then(() => { if (st.selected !== null) st.table.select(st.selected, false); }));
  }
  const res = await Promise.allSettled(jobs);
  const bad = res.find((r) => r.status === 'rejected');
  if (bad) status(`some data could not be loaded: ${bad.reason.message}`, true);
  performance.mark('ls:complete');
  el.timeline.dataset.complete = '1';
}

async function main() {
  if (embed) document.body.classList.add('embed');
  wire();
  if (!sessionId) {
    status('no session id in the address', true);
    return;
  }
  status('loading…');
  let sum;
  try {
    // the first window of lanes comes with the first render (rows.ensure); only the summary here
    sum = await api.summary(sessionId);
  } catch (e) {
    status(e.status === 404 ? `session ${sessionId} not found` : `could not load the session: ${e.message}`, true);
    return;
  }
  st.summary = sum;
  st.duration = Math.max(V.MIN_SPAN, Number(sum.duration_ns) || 0);
  st.view = V.fromQuery(location.search, st.duration);
  showSummary(sum);
  status('');
  await render();
  performance.mark('ls:first');
  loadSecondary();
  if (!sum.ended) startLive();
}

// ---- live: a session still being recorded (live.js) ----------------------------------------

// Each summary the stream sends: header counts, the session's new end, new lanes (the window of
// rows in view asked again only when the task count changed, and no more often than ten times
// what the last one took, at least a second apart: the server rebuilds a stale tree order), the view kept on the end
// while "follow the end" is on. Summaries arriving during an update are folded into one more.
function startLive() {
  const ctl = live.controls(el.meta);
  st.live = ctl;
  el.timeline.dataset.live = '1';
  let busy = false, next = null, treeAt = -Infinity, treeCost = 0, later = 0;
  const treeDue = () => performance.now() - treeAt >= Math.max(1000, 10 * treeCost);
  const apply = async (sum) => {
    const end = Math.max(V.MIN_SPAN, Number(sum.duration_ns) || 0);
    const whole = st.view.from <= 0 && st.view.to >= st.duration;
    const span = st.view.to - st.view.from;
    st.summary = sum;
    showSummary(sum);
    if (sum.tasks !== st.rows.tasks && treeDue()) {
      // new tasks: the windows held are counted against the old tree; ask for the one in view
      // again (the server recomputes a stale tree order on that query: O(tasks), hence the pace)
      const t0 = performance.now();
      st.rows.reset();
      await st.rows.ensure(laneWindow().first, laneWindow().last);
      treeAt = performance.now();
      treeCost = treeAt - t0;
    } else if (sum.tasks !== st.rows.tasks && !later) {
      // the tree is asked again once it is due, even if no other update comes
      later = setTimeout(() => { later = 0; onUpdate(st.summary); }, Math.max(1000, 10 * treeCost));
    }
    st.duration = end;
    st.minimapKey = '';
    st.tlKey = ''; // new blocks and lag may have arrived in the view
    if (ctl.follow()) st.view = V.clamp(whole ? V.whole(end) : { from: end - span, to: end }, end);
    requestRender();
    if (st.table) await st.table.refresh(end);
    el.timeline.dataset.liveTasks = String(st.rows.tasks);
  };
  const onUpdate = async (sum) => {
    if (busy) {
      next = sum;
      return;
    }
    busy = true;
    try {
      for (let s = sum; s; s = next, next = null) await apply(s);
    } catch (e) {
      status(`live update: ${e.message}`, true);
    }
    busy = false;
  };
  live.watchSession(sessionId, {
    onUpdate,
    onEnd: (reason) => {
      st.live = null;
      ctl.ended();
      el.timeline.dataset.live = '0';
      if (reason === 'deleted') status('the session was deleted', true);
      else loadSecondary(); // the charts and tables of the whole session, once
    },
  });
}

main();
