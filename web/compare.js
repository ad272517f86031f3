// compare.js — the compare view: two sessions' timelines one above the other on one time axis
// (0 to the longer duration; drawn by timeline.js as on the session page) and the table of what
// differs from /api/v1/compare, most explaining first. The pickers list the newest sessions.
import * as api from './api.js';
import * as fmt from './format.js';
import * as tl from './timeline.js';
import * as lanes from './lanes.js';
import { h, s, clear } from './dom.js';

const MAX_LANES = 40; // lanes drawn per session: the first in tree order (the table has the rest)

const statusEl = document.getElementById('status');
const sidesEl = document.getElementById('sides');
const diffsEl = document.getElementById('diffs');
const pickA = document.getElementById('pick-a');
const pickB = document.getElementById('pick-b');

const sessionHref = (id) => `/sessions/${encodeURIComponent(id)}`;

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

// One session's strip: its title, the head (axis, blocks, lag, concurrency) and its first lanes,
// drawn on geometry g shared by both sides.
async function drawSide(label, side, g, maxDur) {
  const box = sidesEl.appendChild(h('section', { class: 'compare-side', 'data-side': label }));
  const title = box.appendChild(h('div', { class: 'title-row' }));
  title.appendChild(h('strong', null, `${label}:`));
  title.appendChild(h('a', { href: sessionHref(side.id), class: 'side-link' }, side.name ?? side.id));
  title.appendChild(h('span', { class: 'meta' },
    `${fmt.duration(side.duration_ns)} · ${fmt.count(side.tasks)} tasks · ${fmt.count(side.blocks)} blocks · max lag ${fmt.ms(side.lag_max_ms)}`));
  const [tasks, conc] = await Promise.all([api.tasks(side.id), api.concurrency(side.id)]);
  const shown = lanes.visible(tasks.tasks, new Set()).slice(0, MAX_LANES);
  const tline = await api.timeline(side.id, { from: 0, to: maxDur, px: g.plotW, taskIds: shown.map((t) => t.id) });
  const data = new Map();
  for (const lane of tline.lanes || []) data.set(lane.task, lane.items || []);
  const wrap = box.appendChild(h('div', { class: 'timeline compare-timeline' }));
  const head = wrap.appendChild(s('svg', { class: 'head', width: g.width, height: tl.HEAD_H }));
  tl.drawHead(head, {
    geom: g, blocks: tline.blocks || [], lag: tline.lag || [], lagMaxNs: Number(side.lag_max_ms) * 1e6,
    conc: conc.series || [], concMax: conc.max || 0, blockCount: side.blocks,
  });
  const lanesSvg = wrap.appendChild(s('svg', { class: 'lanes', width: g.width, height: shown.length * lanes.LANE_H }));
  tl.drawLanes(lanesSvg, {
    shown, first: 0, last: shown.length, data, geom: g, duration: side.duration_ns, selected: null,
    related: null, collapsed: new Set(), blocks: tline.blocks || [],
  });
  if (tasks.tasks.length > shown.length) {
    box.appendChild(h('p', { class: 'muted' }, `the first ${shown.length} of ${fmt.count(tasks.tasks.length)} tasks`));
  }
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
  const maxDur = Math.max(1, c.a.duration_ns, c.b.duration_ns);
  const width = Math.max(600, sidesEl.clientWidth || document.documentElement.clientWidth - 24);
  const g = tl.geometry(width, { from: 0, to: maxDur });
  clear(sidesEl);
  try {
    await drawSide('a', c.a, g, maxDur);
    await drawSide('b', c.b, g, maxDur);
  } catch (e) {
    status(`could not draw the timelines: ${e.message}`, true);
  }
  diffTable(c);
  document.body.dataset.loaded = '1';
}

document.getElementById('pick').addEventListener('submit', (ev) => {
  ev.preventDefault();
  location.assign(`/compare?${new URLSearchParams({ a: pickA.value, b: pickB.value })}`);
});
load();
