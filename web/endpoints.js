// endpoints.js — the endpoints page: asks api.js for the endpoints of the newest sessions (of a
// service, when one is given) and lists them; a row opens its detail: await hot spots, blocking
// culprits, its slowest sessions and a link comparing the slowest with the median. State lives in
// the query string (?limit=&service=&endpoint=), so every view has a URL.
import * as api from './api.js';
import * as fmt from './format.js';
import { h, clear } from './dom.js';

const body = document.querySelector('#endpoints tbody');
const statusEl = document.getElementById('status');
const detail = document.getElementById('detail');
const limitEl = document.getElementById('limit');
const serviceEl = document.getElementById('service');

const sessionHref = (id) => `/sessions/${encodeURIComponent(id)}`;
export const compareHref = (a, b) => `/compare?${new URLSearchParams({ a, b })}`;
const key = (e) => JSON.stringify([e.service, e.endpoint]);

function params() {
  return new URLSearchParams(location.search);
}

function setParams(changes) {
  const q = params();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  history.replaceState(null, '', q.toString() ? `?${q}` : location.pathname);
}

function row(e, selected) {
  const tr = h('tr', { 'data-endpoint': e.endpoint, 'data-service': e.service ?? '', class: selected ? 'selected' : null });
  const name = tr.appendChild(h('td'));
  const q = params();
  q.set('endpoint', e.endpoint);
  if (e.service !== null) q.set('eservice', e.service);
  else q.delete('eservice');
  const open = name.appendChild(h('a', { href: `?${q}`, class: 'endpoint-link' }, e.endpoint));
  open.addEventListener('click', (ev) => {
    ev.preventDefault();
    setParams({ endpoint: e.endpoint, eservice: e.service });
    showDetail(e);
    for (const r of body.querySelectorAll('tr.selected')) r.classList.remove('selected');
    tr.classList.add('selected');
  });
  if (!e.templated) name.appendChild(h('span', { class: 'tag', title: 'no route template: grouped by session name' }, 'name'));
  tr.appendChild(h('td', null, e.service ?? ''));
  const count = tr.appendChild(h('td', { class: 'num' }, fmt.count(e.count)));
  if (e.sampled) count.appendChild(stands(e));
  tr.appendChild(h('td', { class: 'num' }, fmt.duration(e.duration.p50_ns)));
  tr.appendChild(h('td', { class: 'num' }, fmt.duration(e.duration.p95_ns)));
  tr.appendChild(h('td', { class: 'num' }, fmt.duration(e.duration.max_ns)));
  tr.appendChild(h('td', { class: 'num' }, e.lag.sessions ? fmt.ms(e.lag.p95_ms) : '–'));
  tr.appendChild(h('td', { class: 'num' }, fmt.count(e.blocks.count)));
  const slow = tr.appendChild(h('td', { class: 'slowest' }));
  e.slowest.slice(0, 3).forEach((s, i) => {
    if (i) slow.appendChild(document.createTextNode(' '));
    slow.appendChild(h('a', { href: sessionHref(s.id), title: s.name ?? s.id, class: 'slow-link' }, fmt.duration(s.duration_ns)));
  });
  return tr;
}

// " of ~1,200": an endpoint whose sessions were recorded as a share of its requests (the
// middleware's `fraction`) stands for more requests than it has sessions (docs/api.md).
function stands(e) {
  const some = e.sampled < e.count ? `${fmt.count(e.sampled)} of these ${fmt.count(e.count)} were` : 'these were';
  return h('span', {
    class: 'requests',
    title: `${some} recorded as a share of requests, drawn at random: together they stand for about ${fmt.count(e.requests)} requests`,
  }, ` of ~${fmt.count(e.requests)}`);
}

function pointsTable(title, points, cols) {
  const sec = h('section', { class: 'points' });
  sec.appendChild(h('h3', null, title));
  if (!points.length) {
    sec.appendChild(h('p', { class: 'muted' }, 'none'));
    return sec;
  }
  const table = sec.appendChild(h('table', { class: 'sessions' }));
  const head = table.appendChild(h('thead')).appendChild(h('tr'));
  for (const [label, , num] of cols) head.appendChild(h('th', { class: num ? 'num' : null }, label));
  const tb = table.appendChild(h('tbody'));
  for (const p of points) {
    const tr = tb.appendChild(h('tr'));
    for (const [, get, num] of cols) tr.appendChild(h('td', { class: num ? 'num' : 'code' }, get(p)));
  }
  return sec;
}

function showDetail(e) {
  clear(detail);
  detail.hidden = false;
  const head = detail.appendChild(h('div', { class: 'title-row' }));
  head.appendChild(h('h2', { class: 'detail-title' }, e.endpoint));
  if (e.service) head.appendChild(h('span', { class: 'meta' }, e.service));
  const recorded = e.sampled ? `${fmt.count(e.count)} sessions of ~${fmt.count(e.requests)} requests` : `${fmt.count(e.count)} sessions`;
  head.appendChild(h('span', { class: 'meta' },
    `${recorded} · p50 ${fmt.duration(e.duration.p50_ns)} · p95 ${fmt.duration(e.duration.p95_ns)}`));
  if (e.count > 1 && e.slowest.length) {
    head.appendChild(h('a', { href: compareHref(e.median.id, e.slowest[0].id), class: 'compare-link' },
      'compare slowest vs median'));
  }
  detail.appendChild(pointsTable('await hot spots (by total time)', e.hotspots, [
    ['where', (p) => fmt.place(p.file, p.line)], ['awaits', (p) => p.what ?? ''],
    ['count', (p) => fmt.count(p.count), true], ['total', (p) => fmt.duration(p.total_ns), true],
    ['max', (p) => fmt.duration(p.max_ns), true], ['sessions', (p) => fmt.count(p.sessions), true]]));
  detail.appendChild(pointsTable('blocking culprits (by count)', e.culprits, [
    ['where', (p) => fmt.place(p.file, p.line)], ['source', (p) => p.src ?? ''],
    ['count', (p) => fmt.count(p.count), true], ['total', (p) => fmt.duration(p.total_ns), true],
    ['max', (p) => fmt.duration(p.max_ns), true]]));
  const slow = detail.appendChild(h('section', { class: 'points' }));
  slow.appendChild(h('h3', null, 'slowest sessions'));
  const ul = slow.appendChild(h('ul', { class: 'slow-list' }));
  for (const s of e.slowest) {
    const li = ul.appendChild(h('li'));
    li.appendChild(h('a', { href: sessionHref(s.id) }, s.name ?? s.id));
    li.appendChild(document.createTextNode(` ${fmt.duration(s.duration_ns)} `));
    if (s.id !== e.median.id) li.appendChild(h('a', { href: compareHref(e.median.id, s.id), class: 'vs-median' }, 'vs median'));
  }
}

let seq = 0;
async function load() {
  const mine = ++seq;
  const q = params();
  const limit = Number(q.get('limit')) || 1000;
  const service = q.get('service') || '';
  let resp;
  try {
    resp = await api.endpoints({ limit, service, top: 10 });
  } catch (e) {
    statusEl.textContent = `could not list endpoints: ${e.message}`;
    statusEl.classList.add('error');
    return;
  }
  if (mine !== seq) return;
  statusEl.classList.remove('error');
  clear(body);
  const want = q.has('endpoint') ? JSON.stringify([q.get('eservice') || null, q.get('endpoint')]) : null;
  let chosen = null;
  for (const e of resp.endpoints) {
    const sel = want !== null && (key(e) === want || (!q.get('eservice') && e.endpoint === q.get('endpoint') && !chosen));
    if (sel) chosen = e;
    body.appendChild(row(e, sel));
  }
  if (chosen) showDetail(chosen);
  else detail.hidden = true;
  const n = resp.endpoints.length;
  const w = resp.window;
  // a server from before schema 14 says no requests: as many as sessions
  const more = w.requests > w.sessions ? ` (~${fmt.count(w.requests)} requests: some recorded as a share)` : '';
  statusEl.textContent = n ?
    `${fmt.count(n)} endpoint${n === 1 ? '' : 's'} over the newest ${fmt.count(w.sessions)} ended session${w.sessions === 1 ? '' : 's'}${more}` :
    'no ended sessions yet: run an app with the loopscope middleware';
  document.body.dataset.loaded = String(mine);
}

limitEl.value = params().get('limit') || '1000';
serviceEl.value = params().get('service') || '';
limitEl.addEventListener('change', () => { setParams({ limit: limitEl.value }); load(); });
let timer = 0;
serviceEl.addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(() => { setParams({ service: serviceEl.value.trim() }); load(); }, 150);
});
load();
