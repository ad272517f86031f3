// sessions.js — the sessions list page: asks api.js for the sessions (newest first, optionally
// filtered by a name substring) and lists them with links to each session's timeline; live.js
// brings new and changed sessions in as they are stored.
import * as api from './api.js';
import * as fmt from './format.js';
import { h, clear } from './dom.js';
import * as live from './live.js';

const body = document.querySelector('#sessions tbody');
const statusEl = document.getElementById('status');
const filter = document.getElementById('filter');

function row(s) {
  const tr = h('tr', { 'data-session': s.id, class: s.ended ? '' : 'recording' });
  const name = tr.appendChild(h('td'));
  name.appendChild(h('a', { href: `/sessions/${encodeURIComponent(s.id)}` }, s.name || s.id));
  tr.appendChild(h('td', null, s.service || ''));
  tr.appendChild(h('td', { class: 'num' }, fmt.wallClock(s.started_unix_ns)));
  tr.appendChild(h('td', { class: 'num' }, fmt.duration(s.duration_ns)));
  tr.appendChild(h('td', { class: 'num' }, fmt.count(s.tasks)));
  tr.appendChild(h('td', { class: 'num' }, fmt.count(s.blocks)));
  tr.appendChild(h('td', { class: 'num' }, s.lag && s.lag.samples ? fmt.ms(s.lag.max_ms) : '–'));
  tr.appendChild(h('td', { class: 'num' }, fmt.count(s.dropped)));
  return tr;
}

// Stream events that came while a list request was under way: its answer may be older than
// they are (the server listed before it stored them), so they are applied again on top of it.
// Kept only while a request is under way; `loads` counts those.
const during = [];
let loads = 0;

let seq = 0;
async function load() {
  const mine = ++seq;
  const name = filter.value.trim();
  const from = during.length;
  let resp, newer;
  loads++;
  try {
    resp = await api.sessions({ name, limit: 1000 });
  } catch (e) {
    statusEl.textContent = `could not list sessions: ${e.message}`;
    statusEl.classList.add('error');
    return;
  } finally {
    loads--;
    newer = during.slice(from);
    if (!loads) during.length = 0;
  }
  if (mine !== seq) return;
  statusEl.classList.remove('error');
  clear(body);
  for (const s of resp.sessions || []) body.appendChild(row(s));
  for (const apply of newer) apply();
  const n = (resp.sessions || []).length;
  statusEl.textContent = n ? `${fmt.count(n)} session${n === 1 ? '' : 's'}${name ? ' matching the filter' : ''}` :
    name ? 'no session matches the filter' : 'no sessions yet: run an app with the loopscope collector';
  document.body.dataset.loaded = String(mine);
}

let timer = 0;
filter.value = new URLSearchParams(location.search).get('name') || '';
filter.addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(() => {
    const q = new URLSearchParams(location.search);
    if (filter.value.trim()) q.set('name', filter.value.trim());
    else q.delete('name');
    history.replaceState(null, '', q.toString() ? `?${q}` : location.pathname);
    load();
  }, 150);
});
load();

// New sessions as they arrive and running ones as they grow (live.js): a row replaced in place,
// a new one put first (the list is newest first) when it matches the filter.
const rowOf = (id) => [...body.rows].find((r) => r.dataset.session === id);
// Applies a stream event now, and again after the list answers under way are drawn.
const applyLive = (apply) => {
  apply();
  if (loads) during.push(apply);
};
live.watchSessions({
  onSession: (s) => {
    applyLive(() => {
      const old = rowOf(s.id);
      if (old) old.replaceWith(row(s));
      else if ((s.name || '').includes(filter.value.trim())) body.insertBefore(row(s), body.firstChild);
    });
    document.body.dataset.liveEvents = String(Number(document.body.dataset.liveEvents || 0) + 1);
  },
  onDeleted: (id) => applyLive(() => rowOf(id)?.remove()),
  // liveReady once the list asked on (re)connect has been drawn: before, a session stored after
  // the stream's start could still come in with that answer (a test hid the tab, posted, and saw
  // the row appear from a list request already under way, not from the stream)
  onReset: async () => {
    await load();
    document.body.dataset.liveReady = '1';
  },
});
