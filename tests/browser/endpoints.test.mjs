// endpoints.test.mjs — the endpoints page (/endpoints) and the compare view (/compare) against the
// real server: rows and details show what /api/v1/endpoints answers, the links lead to the
// sessions and to "slowest vs median", the compare view draws both timelines on one axis and lists
// /api/v1/compare's differences in its order; a route and a session name made of HTML/SVG
// metacharacters stay text. Each run posts sessions of a service of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, screenshot, lanesShown } from './harness.mjs';
import { post } from './seed.mjs';
import * as fmt from '../../web/format.js';

const pages = pagesPerTest();
const MS = 1_000_000;
const RUN = Math.random().toString(16).slice(2, 10);
const SERVICE = `shop-${RUN}`;
const ROUTE = 'GET /users/{user_id}';
const EVIL_ROUTE = 'GET /<img src=x onerror="window.__pwned=1">/{id}';
const EVIL_NAME = '<svg onload="window.__pwned=2"><script>window.__pwned=3</script>';

// One ended request: a view task with a loader child (and `retries` retry tasks under it), awaits
// at db.py:23 and cache.py:7, one block when `block`, lag samples.
function request(id, name, route, durMs, { db, retries = 0, block = false, lag = [1] }) {
  const ev = [
    { k: 'task', id: 1, parent: 0, name: 'Task-1', coro: 'app.views.user_page', t: 0 },
    { k: 'task', id: 2, parent: 1, name: 'Task-2', coro: 'app.db.load_user', t: 100_000 },
    { k: 'step', id: 1, t: 0, d: 90_000 },
    { k: 'await', id: 2, t: 200_000, d: db * MS, what: 'AsyncSession.execute', file: 'app/db.py', line: 23, func: 'load_user' },
    { k: 'await', id: 1, t: 300_000, d: 2 * MS, what: 'Redis.get', file: 'app/cache.py', line: 7, func: 'user_page' },
    { k: 'done', id: 2, t: (db + 1) * MS, state: 'ok' },
  ];
  for (let i = 0; i < retries; i++) {
    ev.push({ k: 'task', id: 10 + i, parent: 2, name: `Task-${10 + i}`, coro: 'app.db.retry', t: (2 + i) * MS });
    ev.push({ k: 'done', id: 10 + i, t: (4 + i) * MS, state: 'ok' });
  }
  if (block) {
    ev.push({ k: 'block', id: 1, t: (db + 2) * MS, d: 12 * MS,
      stack: [{ file: 'app/views.py', line: 45, func: 'user_page', src: 'time.sleep(0.012)' }] });
  }
  lag.forEach((d, i) => ev.push({ k: 'lag', t: (i + 1) * MS, d: d * MS }));
  ev.push({ k: 'done', id: 1, t: durMs * MS, state: 'ok', status: 200 });
  ev.push({ k: 'end', t: durMs * MS });
  const meta = { name, service: SERVICE, started_unix_ns: String(1764089000000000000n + BigInt(id.length) * 1000n) };
  if (route) meta.route = route;
  return { v: 1, batch: `b-${id}`, session: id, meta, events: ev };
}

// A request with `n` tasks under its root, each awaiting 1 ms at its own time: more lanes than
// the compare view shows at once.
function wide(id, n) {
  const ev = [{ k: 'task', id: 1, parent: 0, name: 'Task-1', coro: 'app.views.fan_out', t: 0 }];
  for (let i = 2; i <= n; i++) {
    ev.push({ k: 'task', id: i, parent: 1, name: `Task-${i}`, coro: 'app.db.part', t: i * 10_000 });
    ev.push({ k: 'await', id: i, t: i * 100_000, d: MS, what: 'part', file: 'app/db.py', line: 50, func: 'part' });
    ev.push({ k: 'done', id: i, t: i * 100_000 + 2 * MS, state: 'ok' });
  }
  ev.push({ k: 'end', t: 20 * MS });
  return { v: 1, batch: `b-${id}`, session: id, meta: {
    name: `GET /wide/${n}`, service: `${SERVICE}-wide`, started_unix_ns: '1764089000000000000',
  }, events: ev };
}

const IDS = {
  w: `s-ep-${RUN}-w`,
  u1: `s-ep-${RUN}-u1`, u2: `s-ep-${RUN}-u2`, u3: `s-ep-${RUN}-u3`, u4: `s-ep-${RUN}-u4`, u5: `s-ep-${RUN}-u5`,
  e1: `s-ep-${RUN}-e1`, e2: `s-ep-${RUN}-e2`,
};

async function seed() {
  await post(BASE, request(IDS.u1, 'GET /users/1', ROUTE, 24, { db: 12 }));
  await post(BASE, request(IDS.u2, 'GET /users/2', ROUTE, 31, { db: 18, lag: [1, 3] }));
  await post(BASE, request(IDS.u3, 'GET /users/3', ROUTE, 28, { db: 15 }));
  await post(BASE, request(IDS.u4, 'GET /users/4', ROUTE, 96, { db: 61, retries: 3, block: true, lag: [2, 14] }));
  await post(BASE, request(IDS.u5, 'GET /users/5', ROUTE, 35, { db: 20 }));
  await post(BASE, request(IDS.e1, EVIL_NAME, EVIL_ROUTE, 9, { db: 3 }));
  await post(BASE, request(IDS.e2, EVIL_NAME, EVIL_ROUTE, 14, { db: 5, block: true }));
  await post(BASE, wide(IDS.w, 120));
}
const seeded = seed();

const getJson = async (path) => {
  const res = await fetch(`${BASE}${path}`);
  assert.equal(res.status, 200, path);
  return res.json();
};

async function inert(page) {
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected script ran');
  assert.equal(await page.locator('main img, main script, main foreignObject').count(), 0, 'no injected element');
}

test('the endpoints page lists what /api/v1/endpoints answers, and its details and links', async () => {
  await seeded;
  const { page } = await pages.open();
  await page.goto(`${BASE}/endpoints?service=${encodeURIComponent(SERVICE)}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  const api = (await getJson(`/api/v1/endpoints?service=${encodeURIComponent(SERVICE)}&top=10`)).endpoints;
  assert.deepEqual(api.map((e) => [e.endpoint, e.count]), [[ROUTE, 5], [EVIL_ROUTE, 2]]);
  const rows = await page.$$eval('#endpoints tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(rows, api.map((e) => [
    e.endpoint + (e.templated ? '' : 'name'), e.service, fmt.count(e.count), fmt.duration(e.duration.p50_ns),
    fmt.duration(e.duration.p95_ns), fmt.duration(e.duration.max_ns), e.lag.sessions ? fmt.ms(e.lag.p95_ms) : '–',
    fmt.count(e.blocks.count), e.slowest.slice(0, 3).map((s) => fmt.duration(s.duration_ns)).join(' '),
  ]));
  // as hand-computed: 24, 28, 31, 35, 96 ms -> p50 31 ms, p95 and max 96 ms; max lag 1, 3, 1, 14, 1 -> p95 14 ms
  assert.deepEqual(rows[0].slice(0, 8), [ROUTE, SERVICE, '5', '31.0 ms', '96.0 ms', '96.0 ms', '14.0 ms', '1']);
  await inert(page);

  // the detail of the route: hot spots and culprits as the API ranks them, the compare link
  await page.click(`#endpoints tbody tr:first-child a.endpoint-link`);
  await page.waitForSelector('#detail:not([hidden]) .compare-link');
  const u = api[0];
  const hot = await page.$$eval('#detail section.points:nth-of-type(1) tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(hot, u.hotspots.map((p) => [fmt.place(p.file, p.line), p.what, fmt.count(p.count),
    fmt.duration(p.total_ns), fmt.duration(p.max_ns), fmt.count(p.sessions)]));
  assert.deepEqual(hot[0], ['app/db.py:23', 'AsyncSession.execute', '5', '126 ms', '61.0 ms', '5']);
  const culprits = await page.$$eval('#detail section.points:nth-of-type(2) tbody tr', (rs) => rs.map((r) => r.cells[1].textContent));
  assert.deepEqual(culprits, ['time.sleep(0.012)']);
  const href = await page.getAttribute('#detail .compare-link', 'href');
  assert.equal(href, `/compare?${new URLSearchParams({ a: u.median.id, b: u.slowest[0].id })}`);
  assert.equal(u.slowest[0].id, IDS.u4);
  assert.equal(u.median.id, IDS.u2);
  assert.ok(new URL(page.url()).searchParams.get('endpoint') === ROUTE, 'the open endpoint is in the URL');
  await screenshot(page, 'endpoints.png');

  // the slowest session's link opens its timeline
  await Promise.all([page.waitForURL(/\/sessions\//), page.click('#detail .slow-list li:first-child a')]);
  assert.equal(decodeURIComponent(new URL(page.url()).pathname), `/sessions/${IDS.u4}`);
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.drawn) > 0);

  // the hostile endpoint's detail stays text
  await page.goto(`${BASE}/endpoints?${new URLSearchParams({ service: SERVICE, endpoint: EVIL_ROUTE, eservice: SERVICE })}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.equal(await page.textContent('#detail h2'), EVIL_ROUTE);
  assert.equal(await page.textContent('#detail .slow-list li:first-child a'), EVIL_NAME);
  await inert(page);
});

test('an endpoint recorded as a share of its requests says how many requests it stands for', async () => {
  // three requests of a service of their own, each recorded as 1 in 10 (meta.fraction) but one,
  // recorded as every request: 10 + 10 + 1 = 21 requests
  const svc = `${SERVICE}-share`;
  for (const [i, fraction] of [[1, 0.1], [2, 0.1], [3, null]]) {
    const b = request(`s-ep-${RUN}-f${i}`, `GET /orders/${i}`, 'GET /orders/{id}', 10 + i, { db: 2 });
    b.meta.service = svc;
    if (fraction) b.meta.fraction = fraction;
    await post(BASE, b);
  }
  const api = (await getJson(`/api/v1/endpoints?service=${encodeURIComponent(svc)}`));
  assert.deepEqual(api.endpoints.map((e) => [e.count, e.requests, e.sampled]), [[3, 21, 2]]);
  assert.equal(api.window.requests, 21);
  const { page } = await pages.open();
  await page.goto(`${BASE}/endpoints?service=${encodeURIComponent(svc)}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.equal(await page.textContent('#endpoints tbody tr:first-child td:nth-child(3)'), '3 of ~21');
  assert.match(await page.getAttribute('#endpoints tbody tr:first-child .requests', 'title'),
    /2 of these 3 were recorded as a share of requests, drawn at random: together they stand for about 21 requests/);
  assert.match(await page.textContent('#status'), /over the newest 3 ended sessions \(~21 requests: some recorded as a share\)/);
  await page.click('#endpoints tbody tr:first-child a.endpoint-link');
  await page.waitForSelector('#detail:not([hidden])');
  assert.match(await page.textContent('#detail .title-row'), /3 sessions of ~21 requests · p50/);
  await screenshot(page, 'endpoints-sampled.png');
  // a sampled session's page says its share
  await page.goto(`${BASE}/sessions/${encodeURIComponent(`s-ep-${RUN}-f1`)}`);
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.drawn) > 0);
  assert.match(await page.textContent('#meta'), /1 in 10 requests recorded/);
  await page.goto(`${BASE}/sessions/${encodeURIComponent(`s-ep-${RUN}-f3`)}`);
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.drawn) > 0);
  assert.doesNotMatch(await page.textContent('#meta'), /recorded/);
});

test('the compare view draws both timelines on one axis and lists what differs in the API order', async () => {
  await seeded;
  const { page } = await pages.open();
  await page.goto(`${BASE}/compare?${new URLSearchParams({ a: IDS.u2, b: IDS.u4 })}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  const c = await getJson(`/api/v1/compare?${new URLSearchParams({ a: IDS.u2, b: IDS.u4, limit: 200 })}`);
  // both sides drawn: a head and lanes each, one width (one axis); the same last tick label
  const sides = await page.$$eval('.compare-side', (ss) => ss.map((s) => ({
    side: s.dataset.side, head: s.querySelector('svg.head').getAttribute('width'),
    lanes: s.querySelectorAll('svg.lanes g.lane').length,
    ticks: [...s.querySelectorAll('svg.head .axis text')].map((t) => t.textContent).join('|'),
  })));
  assert.deepEqual(sides.map((s) => [s.side, s.lanes]), [['a', 2], ['b', 5]]);
  assert.equal(sides[0].head, sides[1].head);
  assert.equal(sides[0].ticks, sides[1].ticks, 'one time axis');
  const rows = await page.$$eval('#diffs tbody tr', (rs) => rs.map((r) => [...r.cells].map((x) => x.textContent)));
  assert.equal(rows.length, c.differences.length);
  assert.deepEqual(rows.map((r) => [r[0], r[2], r[3], r[4], r[5]]), c.differences.map((d) => [
    d.kind, fmt.count(d.a_count), fmt.count(d.b_count), fmt.duration(d.a_ns), fmt.duration(d.b_ns)]));
  // db.py:23 grew 43 ms and explains most; then the retry tasks only in b, the block, the lag
  assert.deepEqual(rows.map((r) => [r[0], r[1], r[6]]), [
    ['await', 'app/db.py:23 AsyncSession.execute', '+43.0 ms'],
    ['block', 'app/views.py:45 time.sleep(0.012)', '+12.0 ms'],
    ['lag', 'longest lag sample', '+11.0 ms'],
    ['task', 'app.views.user_page > app.db.load_user > app.db.retry', '+6.00 ms'],
  ]);
  // the sides link to their sessions
  assert.equal(await page.getAttribute('.compare-side[data-side="b"] a.side-link', 'href'), `/sessions/${encodeURIComponent(IDS.u4)}`);
  await screenshot(page, 'compare.png');

  // hostile names compared: text only
  await page.goto(`${BASE}/compare?${new URLSearchParams({ a: IDS.e1, b: IDS.e2 })}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.equal(await page.textContent('.compare-side[data-side="a"] a.side-link'), EVIL_NAME);
  assert.ok((await page.textContent('#status')).includes(EVIL_NAME));
  await inert(page);

  // the picker without a and b, then an unknown session: a message, no error thrown
  await page.goto(`${BASE}/compare`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.ok((await page.locator('#pick-a option').count()) > 1);
  pages.allowConsole(/404/);
  await page.goto(`${BASE}/compare?a=${IDS.u1}&b=s-unknown-${RUN}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  assert.match(await page.textContent('#status'), /could not compare: 404/);
});

test('the compare view gives every task a lane (scrolling) and zooms both sides together', async () => {
  await seeded;
  const { page } = await pages.open();
  await page.goto(`${BASE}/compare?${new URLSearchParams({ a: IDS.u1, b: IDS.w })}`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  const b = '.compare-side[data-side="b"]';
  // 120 lanes tall, but only those in sight (and a few more) are drawn
  assert.equal(await page.getAttribute(`${b} svg.lanes`, 'height'), String(120 * 20));
  const drawn = await page.locator(`${b} svg.lanes g.lane`).count();
  assert.ok(drawn >= 40 && drawn < 120, `drawn ${drawn}`);
  // scrolled to the end: the last task's lane is drawn with its await
  await page.$eval(`${b} .compare-lanes`, (el) => { el.scrollTop = el.scrollHeight; });
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.last === '120', `${b} .compare-timeline`);
  await page.waitForSelector(`${b} svg.lanes g.lane[data-task="120"]`);
  for (let i = 0; !(await page.$eval(`${b} svg.lanes`, lanesShown)).some((l) => l.id === 120 && l.awaits); i++) {
    assert.ok(i < 100, 'the last lane shows its await');
    await page.waitForTimeout(100);
  }
  // the wheel over b's plot zooms in; a and b keep one view (and one axis)
  const whole = await page.$eval(`${b} .compare-timeline`, (el) => [el.dataset.from, el.dataset.to]);
  const box = await page.locator(`${b} svg.head`).boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + 10);
  await page.mouse.wheel(0, -400);
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.to !== '24000000', `${b} .compare-timeline`);
  const views = await page.$$eval('.compare-timeline', (ts) => ts.map((t) => [t.dataset.from, t.dataset.to]));
  assert.deepEqual(whole, ['0', '24000000']);
  assert.deepEqual(views[0], views[1], 'both sides show the same view');
  assert.ok(Number(views[1][1]) - Number(views[1][0]) < 24000000 / 3, `zoomed in: ${views[1]}`);
  const ticks = await page.$$eval('.compare-side svg.head', (hs) => hs.map((x) => [...x.querySelectorAll('.axis text')].map((t) => t.textContent).join('|')));
  assert.equal(ticks[0], ticks[1], 'one time axis');
  // "whole" goes back; the keys zoom too
  await page.click('#zoom-whole');
  await page.waitForFunction(() => [...document.querySelectorAll('.compare-timeline')].every((t) => t.dataset.from === '0' && t.dataset.to === '24000000'));
  await page.keyboard.press('w');
  await page.waitForFunction(() => [...document.querySelectorAll('.compare-timeline')].every((t) => t.dataset.from === '6000000' && t.dataset.to === '18000000'));
  await screenshot(page, 'compare-zoomed.png');
});
