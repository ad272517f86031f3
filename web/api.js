// api.js — the only module that talks to the server: one function per REST query of
// docs/api.md, each returning the parsed JSON or throwing an ApiError. Drawing is elsewhere.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

const BASE = '/api/v1';

// `next` when it is a path on this server ('/...', not '//host' nor '/\\host'), else '/'.
export function safeNext(next) {
  return typeof next === 'string' && /^\/(?![/\\])/.test(next) ? next : '/';
}

// A server started with --token answers 401 until this browser has logged in (GET /login sets
// an HttpOnly cookie the API accepts): go there, and come back to this page afterwards.
function toLogin() {
  const here = location.pathname + location.search + location.hash;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

async function getJson(path, signal) {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, signal });
  let body = null;
  try {
    body = await res.json();
  } catch (err) {
    // an aborted fetch (a newer view replaced this one) is not a bad response: let it propagate
    if (err && err.name === 'AbortError') throw err;
    body = null;
  }
  if (res.status === 401) toLogin();
  if (!res.ok) {
    const code = body && typeof body.error === 'string' ? body.error : 'http';
    const detail = body && typeof body.detail === 'string' ? body.detail : res.statusText;
    throw new ApiError(res.status, code, detail);
  }
  if (body === null) throw new ApiError(res.status, 'invalid', 'response is not JSON');
  return body;
}

const sid = (id) => encodeURIComponent(id);

export function sessions({ name = '', limit = 100 } = {}) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (name) q.set('name', name);
  return getJson(`${BASE}/sessions?${q}`);
}

export function summary(id) {
  return getJson(`${BASE}/sessions/${sid(id)}`);
}

export function tasks(id) {
  return getJson(`${BASE}/sessions/${sid(id)}/tasks`);
}

// One sorted page of the tasks table, sorted on the server: { sort, order, offset, limit }.
// With `at` (a task id) the server answers the page holding that task (its `offset` says which).
export function tasksPage(id, { sort = 'created', order = 'asc', offset = 0, limit = 100, at = null } = {}) {
  const q = new URLSearchParams({ sort, order, offset: String(offset), limit: String(limit) });
  if (at != null) q.set('at', String(Number(at)));
  return getJson(`${BASE}/sessions/${sid(id)}/tasks?${q}`);
}

// A live event stream (Server-Sent Events, docs/api.md): of session `id`, or of the sessions
// list when id is null. The caller listens for its events and closes it.
export function events(id) {
  return new EventSource(id == null ? `${BASE}/events` : `${BASE}/sessions/${sid(id)}/events`);
}

// A window of the task tree: rows offset.. (at most limit) with the subtrees of `collapsed`
// left out; `find` also locates a task (and centres the window on it without an offset).
// With `view` ({from, to, px, only, lanesOffset, lanesLimit}) the answer also carries, as `timeline`,
// what timeline() would answer for the lanes of rows lanesOffset.. (one round trip, not two).
export function rows(id, { offset, limit = 200, collapsed = [], find, view } = {}, signal) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (offset !== undefined) q.set('offset', String(offset));
  if (collapsed.length) q.set('collapsed', collapsed.join(','));
  if (find !== undefined) q.set('find', String(find));
  if (view) {
    viewParams(q, view);
    q.set('lanes_offset', String(view.lanesOffset));
    q.set('lanes_limit', String(Math.min(2000, view.lanesLimit)));
  }
  return getJson(`${BASE}/sessions/${sid(id)}/rows?${q}`, signal);
}

// only: 'lanes' leaves the session-wide blocks and lag out of the answer (the page has them for
// this view already: a scroll step changes the lanes, not the range).
function viewParams(q, { from, to, px, only }) {
  q.set('from', String(Math.floor(from)));
  q.set('to', String(Math.ceil(to)));
  q.set('px', String(Math.max(1, Math.min(10000, Math.round(px)))));
  if (only) q.set('only', only);
}

export function awaits(id, { minMs = 10, limit = 200 } = {}) {
  return getJson(`${BASE}/sessions/${sid(id)}/awaits?min_ms=${Number(minMs)}&limit=${Number(limit)}`);
}

export function blocks(id) {
  return getJson(`${BASE}/sessions/${sid(id)}/blocks`);
}

// The concurrency series; with px, its envelope for a chart px columns wide (O(px) points).
export function concurrency(id, px) {
  const q = px ? `?px=${Math.max(1, Math.min(10000, Math.round(px)))}` : '';
  return getJson(`${BASE}/sessions/${sid(id)}/concurrency${q}`);
}

// What a viewport of px columns shows of [from, to) for the given lanes (at most 2000 ids).
export function timeline(id, { from, to, px, taskIds, only }, signal) {
  const q = new URLSearchParams();
  viewParams(q, { from, to, px, only });
  if (taskIds) q.set('tasks', taskIds.slice(0, 2000).join(','));
  return getJson(`${BASE}/sessions/${sid(id)}/timeline?${q}`, signal);
}

export function exportUrl(id, format) {
  return `${BASE}/sessions/${sid(id)}/export?format=${encodeURIComponent(format)}`;
}

// The export as a Blob, or an ApiError when the server does not offer that format.
export async function exportBlob(id, format) {
  const res = await fetch(exportUrl(id, format));
  if (res.status === 401) toLogin();
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const b = await res.json();
      if (b && typeof b.detail === 'string') detail = b.detail;
    } catch {
      /* keep statusText */
    }
    throw new ApiError(res.status, 'export', detail);
  }
  return res.blob();
}

// Endpoints over a window: { limit, service, endpoint, top, since, until } (each optional).
export function endpoints({ limit, service, endpoint, top, since, until } = {}) {
  const q = new URLSearchParams();
  if (limit) q.set('limit', String(limit));
  if (service) q.set('service', service);
  if (endpoint) q.set('endpoint', endpoint);
  if (top) q.set('top', String(top));
  if (since) q.set('since_unix_ns', String(since));
  if (until) q.set('until_unix_ns', String(until));
  return getJson(`${BASE}/endpoints?${q}`);
}

// What differs between sessions a and b.
export function compare(a, b, { limit = 100 } = {}) {
  const q = new URLSearchParams({ a, b, limit: String(limit) });
  return getJson(`${BASE}/compare?${q}`);
}
