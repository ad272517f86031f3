// seed-data.mjs — ingest-v1 batches the page tests and the page benchmark post: a small
// hand-made session with known values, a hostile session whose strings try to run script,
// and a generator for large sessions. Pure data; posting is seed.mjs's.

const MS = 1_000_000;

export const SMALL_ID = 's-seed-small';
export const HOSTILE_ID = 's-seed-hostile';

const meta = (name, extra = {}) => ({
  name, service: 'shop', pid: 4711, host: 'dev1', python: '3.11.7',
  started_unix_ns: '1764089000123456789', ...extra,
});

// The small session, as the tests expect to see it.
// Tree: 1 user_page ─┬─ 2 fetch_user ── 3 run_query (error)
//                    └─ 4 refresh (cancelled) ── 5 ping
export const small = {
  id: SMALL_ID,
  name: 'GET /users/42',
  duration: 250 * MS,
  tasks: [
    { id: 1, parent: 0, name: 'Task-1', coro: 'app.views.user_page', t: 0, end: 240 * MS, state: 'ok', depth: 0 },
    { id: 2, parent: 1, name: 'fetch-user', coro: 'app.db.fetch_user', t: 1 * MS, end: 60 * MS, state: 'ok', depth: 1 },
    { id: 3, parent: 2, name: 'run-query', coro: 'app.db.run_query', t: 2 * MS, end: 50 * MS, state: 'error', exc: 'ValueError: bad row 7', depth: 2 },
    { id: 4, parent: 1, name: 'cache-refresh', coro: 'app.cache.refresh', t: 5 * MS, end: 200 * MS, state: 'cancelled', depth: 1 },
    { id: 5, parent: 4, name: 'cache-ping', coro: 'app.cache.ping', t: 6 * MS, end: 30 * MS, state: 'ok', depth: 2 },
  ],
  steps: [
    { id: 1, t: 0, d: 1 * MS }, { id: 1, t: 50 * MS, d: 150 * MS }, { id: 1, t: 238 * MS, d: 2 * MS },
    { id: 2, t: 1.1 * MS, d: 0.5 * MS }, { id: 2, t: 46.6 * MS, d: 0.2 * MS }, { id: 2, t: 59.8 * MS, d: 0.2 * MS },
    { id: 3, t: 2.1 * MS, d: 0.3 * MS }, { id: 3, t: 22.4 * MS, d: 0.1 * MS }, { id: 3, t: 49.9 * MS, d: 0.1 * MS },
    { id: 4, t: 5.1 * MS, d: 0.2 * MS }, { id: 4, t: 17.3 * MS, d: 0.2 * MS },
    { id: 5, t: 6.1 * MS, d: 0.1 * MS }, { id: 5, t: 21.2 * MS, d: 0.1 * MS },
  ],
  awaits: [
    { id: 1, t: 1 * MS, d: 49 * MS, what: 'asyncio.gather', file: 'app/views.py', line: 40, func: 'user_page' },
    { id: 1, t: 200 * MS, d: 38 * MS, what: 'asyncio.sleep', file: 'app/views.py', line: 52, func: 'user_page' },
    { id: 2, t: 1.6 * MS, d: 45 * MS, what: 'AsyncSession.execute', file: 'app/db.py', line: 23, func: 'fetch_user' },
    { id: 2, t: 46.8 * MS, d: 13 * MS, what: 'AsyncSession.execute', file: 'app/db.py', line: 23, func: 'fetch_user' },
    { id: 3, t: 2.4 * MS, d: 20 * MS, what: 'asyncpg.Connection.fetch', file: 'app/db.py', line: 57, func: 'run_query' },
    { id: 3, t: 22.5 * MS, d: 27.4 * MS, what: 'asyncpg.Connection.fetch', file: 'app/db.py', line: 57, func: 'run_query' },
    { id: 4, t: 5.3 * MS, d: 12 * MS, what: 'asyncio.sleep', file: 'app/cache.py', line: 12, func: 'refresh' },
    { id: 4, t: 17.5 * MS, d: 182.5 * MS, what: 'asyncio.Event.wait', file: 'app/cache.py', line: 14, func: 'refresh' },
    { id: 5, t: 6.2 * MS, d: 15 * MS, what: 'aiohttp.ClientSession.get', file: 'app/cache.py', line: 30, func: 'ping' },
    { id: 5, t: 21.3 * MS, d: 8.7 * MS, what: 'asyncio.sleep', file: 'app/cache.py', line: 31, func: 'ping' },
  ],
  blocks: [
    { id: 1, t: 50 * MS, d: 150 * MS, stack_t: 52 * MS, stack: [
      { file: 'app/main.py', line: 10, func: 'handle', src: 'return await user_page(request)' },
      { file: 'app/views.py', line: 45, func: 'user_page', src: 'time.sleep(0.15)' },
    ] },
  ],
  lag: [
    ...[10, 20, 30, 40].map((t) => ({ t: t * MS, d: 0.3 * MS })),
    { t: 200 * MS, d: 145 * MS },
    ...[210, 220, 230, 240].map((t) => ({ t: t * MS, d: 0.4 * MS })),
  ],
};

const int = (v) => Math.round(v);

function batchesOf(sess, sessionMeta, prefix) {
  const evs = [];
  for (const t of sess.tasks) {
    evs.push({ k: 'task', id: t.id, parent: t.parent, name: t.name, coro: t.coro, t: int(t.t) });
  }
  const rest = [];
  for (const s of sess.steps) rest.push({ k: 'step', id: s.id, t: int(s.t), d: int(s.d) });
  for (const a of sess.awaits) {
    rest.push({ k: 'await', id: a.id, t: int(a.t), d: int(a.d), what: a.what, file: a.file, line: a.line, func: a.func });
  }
  for (const b of sess.blocks) {
    const when = b.stack_t === undefined ? {} : { stack_t: int(b.stack_t) };
    rest.push({ k: 'block', id: b.id, t: int(b.t), d: int(b.d), ...when, stack: b.stack });
  }
  for (const l of sess.lag) rest.push({ k: 'lag', t: int(l.t), d: int(l.d) });
  for (const t of sess.tasks) {
    if (t.end === undefined) continue;
    const done = { k: 'done', id: t.id, t: int(t.end), state: t.state };
    if (t.exc) done.exc = t.exc;
    rest.push(done);
  }
  if (sess.dropped) rest.push({ k: 'drop', n: sess.dropped });
  rest.push({ k: 'end', t: int(sess.duration) });
  // Two batches, the second first, to show order does not matter.
  return [
    { v: 1, batch: `${prefix}-2`, session: sess.id, meta: sessionMeta, events: rest },
    { v: 1, batch: `${prefix}-1`, session: sess.id, meta: sessionMeta, events: evs },
  ];
}

export function smallBatches() {
  return batchesOf(small, meta(small.name), 'b-small');
}

// A session whose task 2 never finished: no `done` before the session's `end` (a streaming
// response the client left). Newest of the seeds by wall clock; 7 events were dropped.
export const RUNNING_ID = 's-seed-running';
export const running = {
  id: RUNNING_ID,
  name: 'GET /stream/rows',
  started: '1764093600000000000',
  duration: 120 * MS,
  dropped: 7,
  tasks: [
    { id: 1, parent: 0, name: 'Task-1', coro: 'app.views.stream', t: 0, end: 100 * MS, state: 'ok', depth: 0 },
    { id: 2, parent: 1, name: 'stream-rows', coro: 'app.db.stream_rows', t: 10 * MS, depth: 1 },
    { id: 3, parent: 1, name: 'keepalive', coro: 'app.http.keepalive', t: 12 * MS, end: 90 * MS, state: 'cancelled', depth: 1 },
  ],
  steps: [
    { id: 1, t: 0, d: 2 * MS }, { id: 1, t: 98 * MS, d: 2 * MS },
    { id: 2, t: 10 * MS, d: 1 * MS }, { id: 2, t: 41 * MS, d: 1 * MS },
    { id: 3, t: 12 * MS, d: 0.5 * MS },
  ],
  awaits: [
    { id: 1, t: 2 * MS, d: 96 * MS, what: 'asyncio.wait_for', file: 'app/views.py', line: 70, func: 'stream' },
    { id: 2, t: 11 * MS, d: 30 * MS, what: 'asyncpg.Cursor.fetch', file: 'app/db.py', line: 88, func: 'stream_rows' },
    { id: 2, t: 42 * MS, d: 60 * MS, what: 'asyncio.Queue.put', file: 'app/db.py', line: 91, func: 'stream_rows' },
    { id: 3, t: 12.5 * MS, d: 77.5 * MS, what: 'asyncio.sleep', file: 'app/http.py', line: 12, func: 'keepalive' },
  ],
  blocks: [],
  lag: [{ t: 20 * MS, d: 1.5 * MS }, { t: 60 * MS, d: 5 * MS }],
};

export function runningBatches() {
  return batchesOf(running, meta(running.name, { started_unix_ns: running.started, service: 'stream' }), 'b-running');
}

// Two more sessions for the sessions list, one started between the small seed and the running
// one, one before every other seed; posted before them, so arrival order is not the answer.
export const OLD_ID = 's-seed-old';
export const MID_ID = 's-seed-mid';
export const listed = [
  {
    id: MID_ID, name: 'GET /healthz', started: '1764089500000000000', duration: 3 * MS, dropped: 0,
    tasks: [{ id: 1, parent: 0, name: 'Task-1', coro: 'app.health', t: 0, end: 2.5 * MS, state: 'ok', depth: 0 }],
    steps: [{ id: 1, t: 0, d: 0.4 * MS }], awaits: [], blocks: [], lag: [],
  },
  {
    id: OLD_ID, name: 'POST /orders', started: '1763000000000000000', duration: 2.5e9, dropped: 12,
    tasks: [
      { id: 1, parent: 0, name: 'Task-1', coro: 'app.orders.create', t: 0, end: 2.4e9, state: 'ok', depth: 0 },
      { id: 2, parent: 1, name: 'charge', coro: 'app.pay.charge', t: 1 * MS, end: 2.3e9, state: 'error', exc: 'TimeoutError', depth: 1 },
    ],
    steps: [{ id: 1, t: 0, d: 1 * MS }, { id: 2, t: 1 * MS, d: 1 * MS }],
    awaits: [{ id: 2, t: 2 * MS, d: 2.2e9, what: 'aiohttp.ClientSession.post', file: 'app/pay.py', line: 19, func: 'charge' }],
    blocks: [
      { id: 1, t: 100 * MS, d: 300 * MS, stack: [{ file: 'app/orders.py', line: 33, func: 'create', src: 'pdf.render()' }] },
      { id: 1, t: 900 * MS, d: 120 * MS, stack: [{ file: 'app/orders.py', line: 40, func: 'create', src: 'json.dumps(big)' }] },
    ],
    lag: [{ t: 400 * MS, d: 299 * MS }, { t: 1020 * MS, d: 119 * MS }],
  },
];

export function listedBatches() {
  return listed.flatMap((x) => batchesOf(x, meta(x.name, { started_unix_ns: x.started, service: 'orders' }), `b-${x.id}`));
}

// Strings that would run script if any of them reached markup.
export const EVIL = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
  '<svg onload=alert(1)>',
  "'><iframe src=javascript:alert(1)>",
  '</text><script>alert(1)</script>',
];

export const hostile = {
  id: HOSTILE_ID,
  name: '<script>alert(1)</script> GET /"><img src=x onerror=alert(1)>',
  duration: 100 * MS,
  tasks: EVIL.map((e, i) => ({
    id: i + 1, parent: i === 0 ? 0 : 1, name: e, coro: EVIL[(i + 1) % EVIL.length], t: i * MS,
    end: (60 + i) * MS, state: i === 2 ? 'error' : 'ok', exc: i === 2 ? `ValueError: ${EVIL[1]}` : undefined,
    depth: i === 0 ? 0 : 1,
  })),
  steps: EVIL.map((e, i) => ({ id: i + 1, t: i * MS + 0.1 * MS, d: 0.5 * MS })),
  awaits: EVIL.map((e, i) => ({
    id: i + 1, t: i * MS + 0.6 * MS, d: 30 * MS, what: EVIL[(i + 2) % EVIL.length],
    file: EVIL[(i + 3) % EVIL.length], line: 7, func: EVIL[(i + 4) % EVIL.length],
  })),
  blocks: [{ id: 1, t: 70 * MS, d: 20 * MS, stack: [
    { file: EVIL[1], line: 1, func: EVIL[0], src: EVIL[3] },
    { file: EVIL[2], line: 2, func: EVIL[4], src: EVIL[0] },
  ] }],
  lag: [{ t: 90 * MS, d: 19 * MS }],
};

export function hostileBatches() {
  return batchesOf(hostile, meta(hostile.name, { service: EVIL[3], host: EVIL[1] }), 'b-hostile');
}

// A deterministic PRNG (mulberry32) so generated sessions are the same every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A large session: `tasks` tasks in request-shaped trees of 100 (a root, 9 children, 90
// grandchildren), each task alternating `awaitsPerTask` awaits with steps; some blocks and a
// lag sample every 10 ms. Yields batches of about `batchEvents` events.
export function* largeBatches({ id = 's-large', tasks = 100000, awaitsPerTask = 5, batchEvents = 20000 } = {}) {
  const rand = rng(42);
  const roots = Math.ceil(tasks / 100);
  const spacing = 10 * MS; // a new request tree every 10 ms
  const duration = roots * spacing + 200 * MS;
  const m = meta(`generated ${tasks} tasks`, { service: 'bench' });
  let events = [];
  let n = 0;
  function* flush(force) {
    if (events.length >= batchEvents || (force && events.length)) {
      yield { v: 1, batch: `${id}-${n++}`, session: id, meta: m, events };
      events = [];
    }
  }
  let next = 1;
  const files = ['app/db.py', 'app/views.py', 'app/cache.py', 'app/http.py', 'app/auth.py'];
  const whats = ['AsyncSession.execute', 'asyncio.sleep', 'aiohttp.ClientSession.get', 'asyncpg.Connection.fetch', 'asyncio.Event.wait'];
  for (let r = 0; r < roots && next <= tasks; r++) {
    const t0 = r * spacing;
    const rootId = next;
    const kids = [];
    for (let k = 0; k < 100 && next <= tasks; k++) {
      const tid = next++;
      let parent = 0;
      let depth = 0;
      if (k >= 1 && k <= 9) { parent = rootId; depth = 1; }
      else if (k >= 10) { parent = kids[1 + ((k - 10) % 9)] || rootId; depth = 2; }
      kids.push(tid);
      let t = t0 + depth * 0.5 * MS + k * 20_000 + Math.floor(rand() * 100_000);
      events.push({ k: 'task', id: tid, parent, name: `Task-${tid}`, coro: `app.worker_${k % 7}`, t });
      for (let a = 0; a < awaitsPerTask; a++) {
        const sd = 20_000 + Math.floor(rand() * 200_000);
        events.push({ k: 'step', id: tid, t, d: sd });
        t += sd;
        const ad = 100_000 + Math.floor(rand() * (depth === 0 ? 30 : 8) * MS);
        const fi = Math.floor(rand() * files.length);
        events.push({ k: 'await', id: tid, t, d: ad, what: whats[fi], file: files[fi], line: 10 + fi * 7, func: `f${fi}` });
        t += ad;
      }
      const sd = 20_000 + Math.floor(rand() * 100_000);
      events.push({ k: 'step', id: tid, t, d: sd });
      t += sd;
      const state = rand() < 0.02 ? 'error' : rand() < 0.03 ? 'cancelled' : 'ok';
      const done = { k: 'done', id: tid, t, state };
      if (state === 'error') done.exc = 'TimeoutError: upstream';
      events.push(done);
      yield* flush(false);
    }
    if (r % 50 === 7) {
      events.push({ k: 'block', id: rootId, t: t0 + 2 * MS, d: 120 * MS, stack: [
        { file: 'app/views.py', line: 45, func: 'page', src: 'time.sleep(0.12)' }] });
    }
  }
  for (let t = 10 * MS; t < duration; t += 10 * MS) {
    events.push({ k: 'lag', t, d: 50_000 + Math.floor(rand() * 2 * MS) });
  }
  events.push({ k: 'end', t: duration });
  yield* flush(true);
}
