// responded.test.mjs — a request's task that ended with an HTTP response status (the `status` of
// its done event, sent by the collector's ASGI middleware) reads "responded 200" in its lane's
// tooltip and in the tasks table, not "running" or "ok"; one that failed after answering reads
// "responded 500, error"; a task without a done still reads "running". Seeds its own session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, waitDrawn, settle, screenshot, lanesShown, laneBox } from './harness.mjs';
import { post } from './seed.mjs';
import * as fmt from '../../web/format.js';

const MS = 1e6;
const ID = 's-seed-responded';
const pages = pagesPerTest();

const BATCH = {
  v: 1, batch: 'b-responded', session: ID,
  meta: { name: 'GET /orders/7', service: 'shop', started_unix_ns: '1764093000000000000' },
  events: [
    { k: 'task', id: 1, parent: 0, name: 'Task-9', coro: 'uvicorn.protocols.http.h11_impl.RequestResponseCycle.run_asgi', t: 0 },
    { k: 'task', id: 2, parent: 1, name: 'poller', coro: 'app.jobs.poll', t: 5 * MS },
    { k: 'task', id: 3, parent: 1, name: 'Task-10', coro: 'app.views.retry', t: 6 * MS },
    { k: 'step', id: 1, t: 0, d: 2 * MS },
    { k: 'step', id: 2, t: 5 * MS, d: 1 * MS },
    { k: 'step', id: 3, t: 6 * MS, d: 1 * MS },
    { k: 'done', id: 3, t: 20 * MS, state: 'error', exc: 'KeyError: <b>x</b>', status: 500 },
    { k: 'done', id: 1, t: 40 * MS, state: 'ok', status: 200 },
    { k: 'end', t: 40 * MS },
  ],
};

test('ending() words a task\'s end', () => {
  assert.equal(fmt.ending({ ended: 5, state: 'ok', status: 200 }), 'responded 200');
  assert.equal(fmt.ending({ ended: 5, state: 'error', status: 500 }), 'responded 500, error');
  assert.equal(fmt.ending({ ended: 5, state: 'ok', status: null }), 'ok');
  assert.equal(fmt.ending({ ended: 5, state: 'cancelled' }), 'cancelled');
  assert.equal(fmt.ending({ ended: null, state: null, status: null }), 'running');
  assert.equal(fmt.ending({ ended: 5, state: 'weird', status: '<i>' }), '?');
});

test('a request\'s task with a status reads "responded 200" in its tooltip and the tasks table', async () => {
  await post(BASE, BATCH);
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);

  // Tasks table: the state column says how each task ended.
  const rows = await page.$$eval('table.tasks tbody tr', (rs) => rs.map((r) => ({
    name: r.cells[0].textContent, state: r.cells[2].textContent, cls: r.cells[2].className,
  })));
  const row = (n) => rows.find((r) => r.name === n);
  assert.equal(row('Task-9').state, 'responded 200');
  assert.match(row('Task-9').cls, /\bstate-ok\b/);
  assert.equal(row('Task-10').state, 'responded 500, error');
  assert.match(row('Task-10').cls, /\bstate-error\b/);
  assert.equal(row('poller').state, 'running');
  assert.equal(await page.locator('table.tasks tbody b').count(), 0, 'the exception text stays text');

  // The request task's lane: an ok end bar at 40 ms, and the tooltip says it responded 200.
  const lane1 = (await page.$eval('#lanes', lanesShown)).find((l) => l.id === 1);
  assert.deepEqual(lane1.ends, ['end-ok']);
  const box = await laneBox(page, 1);
  await page.mouse.move(box.x + 100, box.y + box.height / 2);
  await page.locator('#tooltip').waitFor({ state: 'visible' });
  const tip = await page.textContent('#tooltip');
  assert.match(tip, /ended40\.0 ms \(responded 200\)/);
  assert.doesNotMatch(tip, /running/);
  await screenshot(page, 'responded.png');
});
