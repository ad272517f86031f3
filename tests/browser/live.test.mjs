// live.test.mjs — a session watched while it records: batches posted while the page is open show
// up (header counts, new lanes, the view following the end) with a "live" marker, and the page
// stops cleanly when the session ends; the same inside an embed iframe; the sessions list takes
// new sessions as they arrive; the tasks table sorts and pages on the server (sort= requests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, waitDrawn, screenshot } from './harness.mjs';
import { post } from './seed.mjs';
import { SMALL_ID } from './seed-data.mjs';

const MS = 1e6;
const pages = pagesPerTest();
const META = { name: 'GET /live', service: 'shop', pid: 42, host: 'dev', python: '3.12', started_unix_ns: '1764089000000000000' };
let n = 0;
const newId = () => `s-live-${process.pid}-${Date.now()}-${n++}`;

const task = (id, t, parent = 1) => ({ k: 'task', id, parent: id === 1 ? 0 : parent, name: `live-${id}`, coro: 'app.live', t });
const batch = (session, b, events, meta) => ({ v: 1, batch: b, session, events, ...(meta ? { meta } : {}) });
const stat = (root, k) => root.locator(`.stat[data-stat="${k}"] dd`).textContent();

// Posts the growth of a session: tasks 2..4 and their awaits up to 300 ms, then the end.
async function grow(id) {
  await post(BASE, batch(id, 'b2', [task(2, 40 * MS), task(3, 60 * MS), { k: 'step', id: 2, t: 41 * MS, d: 5 * MS },
    { k: 'await', id: 3, t: 61 * MS, d: 200 * MS, what: 'sleep', file: 'app/live.py', line: 7, func: 'tick' },
    { k: 'done', id: 3, t: 261 * MS, state: 'ok' }, { k: 'lag', t: 299 * MS, d: 1 * MS }]));
}

test('batches posted while the page is open appear, and the page stops when the session ends', async () => {
  const id = newId();
  await post(BASE, batch(id, 'b1', [task(1, 0), { k: 'step', id: 1, t: 1 * MS, d: 2 * MS }, { k: 'lag', t: 20 * MS, d: 1 * MS }], META));
  const { page } = await pages.open();
  const streams = [];
  page.on('request', (r) => { if (r.url().includes('/events')) streams.push(r.url()); });
  await page.goto(`${BASE}/sessions/${id}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.live === '1');
  assert.equal(await page.locator('#live .live-marker').textContent(), 'live');
  assert.equal(await page.locator('#live-follow').isChecked(), true);
  assert.equal(await stat(page, 'tasks'), '1');
  assert.equal(await page.locator('#lanes .lane').count(), 1);

  await grow(id);
  await page.waitForFunction(() => document.querySelectorAll('#lanes .lane').length === 3, null, { timeout: 10000 });
  assert.equal(await stat(page, 'tasks'), '3');
  assert.equal(await stat(page, 'duration'), '300 ms');
  // following the end: the view (the whole session at first) grew with it
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.to) === 300e6);
  await page.waitForFunction(() => document.querySelectorAll('table.tasks tbody tr').length === 3);
  await screenshot(page, 'live.png');
  // zooming in away from the end stops following it
  await page.locator('#timeline').focus();
  await page.keyboard.press('w');
  await page.waitForFunction(() => Number(document.getElementById('timeline').dataset.to) < 300e6);
  assert.equal(await page.locator('#live-follow').isChecked(), false);

  await post(BASE, batch(id, 'b3', [{ k: 'done', id: 1, t: 310 * MS, state: 'ok' }, { k: 'end', t: 320 * MS }]));
  await page.waitForFunction(() => document.getElementById('timeline').dataset.live === '0', null, { timeout: 10000 });
  assert.equal(await page.locator('#live .live-marker').textContent(), 'ended');
  assert.equal(await page.locator('#live-follow').count(), 0);
  await page.waitForFunction(() => document.querySelector('.stat[data-stat="duration"] dd').textContent === '320 ms');
  // one stream, closed by the page after `end`: no reconnect follows
  await page.waitForTimeout(1500);
  assert.deepEqual(streams, [`${BASE}/api/v1/sessions/${id}/events`]);
});

test('an ended session opens without a live marker', async () => {
  const { page } = await pages.open();
  const streams = [];
  page.on('request', (r) => { if (r.url().includes('/events')) streams.push(r.url()); });
  await page.goto(`${BASE}/sessions/${SMALL_ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  assert.equal(await page.locator('#live').count(), 0);
  assert.deepEqual(streams, []);
});

test('live updates reach the timeline inside an embed iframe (the toolbar panel)', async () => {
  const id = newId();
  await post(BASE, batch(id, 'b1', [task(1, 0), { k: 'step', id: 1, t: 1 * MS, d: 2 * MS }], META));
  const { page } = await pages.open({ width: 900, height: 700 });
  await page.goto(`${BASE}/`);
  await page.evaluate((src) => {
    const f = document.createElement('iframe');
    f.id = 'panel';
    f.src = src;
    f.style.width = '600px';
    f.style.height = '500px';
    document.body.prepend(f);
  }, `${BASE}/sessions/${id}?embed=1`);
  const frame = await (await page.locator('#panel').elementHandle()).contentFrame();
  await frame.waitForFunction(() => document.getElementById('timeline')?.dataset.live === '1', null, { timeout: 15000 });
  assert.equal(await frame.locator('#live .live-marker').isVisible(), true);
  await grow(id);
  await frame.waitForFunction(() => document.querySelectorAll('#lanes .lane').length === 3, null, { timeout: 10000 });
  await post(BASE, batch(id, 'b3', [{ k: 'end', t: 330 * MS }]));
  await frame.waitForFunction(() => document.getElementById('timeline').dataset.live === '0', null, { timeout: 10000 });
  assert.equal(await stat(frame, 'duration'), '330 ms');
});

test('the sessions list shows new sessions as they arrive', async () => {
  const { page } = await pages.open();
  await page.goto(`${BASE}/`);
  // the list is asked again once the stream is connected: nothing stored before is missed
  await page.waitForFunction(() => document.body.dataset.liveReady === '1');
  const id = newId();
  await post(BASE, batch(id, 'b1', [task(1, 0)], { ...META, name: 'GET /arrived', started_unix_ns: String(BigInt(Date.now()) * 1000000n) }));
  const row = page.locator(`#sessions tbody tr[data-session="${id}"]`);
  await row.waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#sessions tbody tr').first().getAttribute('data-session'), id, 'newest first');
  assert.equal(await row.locator('td').first().textContent(), 'GET /arrived');
  assert.match(await row.getAttribute('class'), /recording/);
  await post(BASE, batch(id, 'b2', [{ k: 'end', t: 5 * MS }]));
  await page.waitForFunction((sid) => {
    const r = document.querySelector(`#sessions tbody tr[data-session="${sid}"]`);
    return r && !r.classList.contains('recording');
  }, id, { timeout: 10000 });
  assert.equal(await page.locator(`#sessions tbody tr[data-session="${id}"]`).count(), 1, 'updated in place');
  // deleted: its row goes (and the seed's newest session leads the list again for sessions.test)
  assert.equal((await fetch(`${BASE}/api/v1/sessions/${id}`, { method: 'DELETE' })).status, 200);
  await row.waitFor({ state: 'detached', timeout: 10000 });
});

test('a session the stream brings while the list is being asked stays listed when the older list answers', async () => {
  const { page } = await pages.open();
  // every list request is answered by the server at once but handed to the page only when the
  // test says: the answer is then older than the stream's events (the race of a reconnect)
  let release;
  const gate = new Promise((r) => { release = r; });
  let held = 0;
  await page.route((u) => u.pathname === '/api/v1/sessions', async (route) => {
    const resp = await route.fetch();
    held++;
    await gate;
    await route.fulfill({ response: resp });
  });
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 0);
  const id = newId();
  // the stream is open (its 'ready' asked for the list again) once two list requests are held
  for (let i = 0; i < 200 && held < 2; i++) await page.waitForTimeout(50);
  assert.equal(held, 2, 'the first list request and the one the stream asked on connect are held');
  await post(BASE, batch(id, 'b1', [task(1, 0)], { ...META, name: 'GET /during-load', started_unix_ns: String(BigInt(Date.now()) * 1000000n) }));
  const row = page.locator(`#sessions tbody tr[data-session="${id}"]`);
  await row.waitFor({ timeout: 10000 });
  release();
  await page.waitForFunction(() => document.body.dataset.liveReady === '1');
  assert.ok(await page.locator('#sessions tbody tr').count() > 1, 'the list answer is drawn');
  assert.equal(await row.count(), 1, 'the session the stream brought is still listed after the older answer');
  assert.equal((await fetch(`${BASE}/api/v1/sessions/${id}`, { method: 'DELETE' })).status, 200);
});

test('a tab in the background lets its stream go, and catches up when it comes back', async () => {
  const { page } = await pages.open();
  const streams = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/events')) streams.push(r.url()); });
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => document.body.dataset.liveReady === '1');
  const setHidden = (hidden) => page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  const id = newId();
  await post(BASE, batch(id, 'b1', [task(1, 0)], { ...META, name: 'GET /while-hidden' }));
  await page.waitForTimeout(1000);
  assert.equal(await page.locator(`#sessions tbody tr[data-session="${id}"]`).count(), 0, 'no stream while hidden');
  await setHidden(false);
  await page.locator(`#sessions tbody tr[data-session="${id}"]`).waitFor({ timeout: 10000 });
  assert.equal(streams.length, 2, 'the stream was opened again');
  assert.equal((await fetch(`${BASE}/api/v1/sessions/${id}`, { method: 'DELETE' })).status, 200);
});

test('the tasks table sorts and pages on the server', async () => {
  // 250 tasks: three pages of 100
  const id = newId();
  const events = [task(1, 0)];
  for (let i = 2; i <= 250; i++) {
    events.push(task(i, i * 1000), { k: 'step', id: i, t: i * 1000 + 10, d: ((i * 37) % 101) * 1000 + 1 });
  }
  events.push({ k: 'end', t: 10 * MS });
  await post(BASE, batch(id, 'b1', events, META));
  const { page } = await pages.open();
  const asked = [];
  page.on('request', (r) => { if (r.url().includes('/tasks?')) asked.push(new URL(r.url()).searchParams); });
  await page.goto(`${BASE}/sessions/${id}`);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  assert.equal(await page.locator('table.tasks tbody tr').count(), 100);
  assert.match(await page.textContent('#tasks-table h2'), /\(250\)/);
  assert.equal(await page.textContent('.pager span'), ' page 1 of 3 ');

  await page.click('button[data-sort="busy"]');
  await page.waitForFunction(() => document.getElementById('tasks-table').dataset.shown?.startsWith('busy:0:'));
  const last = asked[asked.length - 1];
  assert.equal(last.get('sort'), 'busy_ns');
  assert.equal(last.get('order'), 'desc');
  assert.equal(last.get('offset'), '0');
  assert.equal(last.get('limit'), '100');
  const top = await (await fetch(`${BASE}/api/v1/sessions/${id}/tasks?sort=busy_ns&order=desc&limit=1`)).json();
  assert.equal(await page.textContent('table.tasks tbody tr:first-child td:first-child'), top.tasks[0].name, 'the busiest task first');

  await page.click('button[data-page="next"]');
  await page.waitForFunction(() => document.getElementById('tasks-table').dataset.shown?.startsWith('busy:1:'));
  assert.equal(asked[asked.length - 1].get('offset'), '100');
  assert.equal(await page.textContent('.pager span'), ' page 2 of 3 ');
});
