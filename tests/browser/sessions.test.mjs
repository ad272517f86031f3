// sessions.test.mjs — the sessions list: newest first by the sessions' wall-clock start (not by
// arrival), and each row's numbers as the API's summary of that session and as seeded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest } from './harness.mjs';
import * as fmt from '../../web/format.js';
import { RUNNING_ID, MID_ID, OLD_ID, SMALL_ID } from './seed-data.mjs';

const pages = pagesPerTest();

const getJson = async (path) => {
  const res = await fetch(`${BASE}${path}`);
  assert.equal(res.status, 200, path);
  return res.json();
};

test('the sessions list is newest first and each row matches the API summary', async () => {
  const { page } = await pages.open(); // time zone UTC
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  const rows = await page.$$eval('#sessions tbody tr', (rs) => rs.map((r) => ({
    id: r.dataset.session, cells: [...r.cells].map((c) => c.textContent),
  })));
  const ids = rows.map((r) => r.id);

  // The seeds by wall-clock start: running (18:00:00), mid (16:51:40), small (16:43:20), old
  // (13 November); mid and old were posted first, so arrival order would put them last.
  const at = (id) => ids.indexOf(id);
  for (const id of [RUNNING_ID, MID_ID, SMALL_ID, OLD_ID]) assert.ok(at(id) >= 0, `${id} listed`);
  assert.ok(at(RUNNING_ID) < at(MID_ID) && at(MID_ID) < at(SMALL_ID) && at(SMALL_ID) < at(OLD_ID), `order: ${ids}`);
  assert.equal(ids[0], RUNNING_ID, 'the newest session leads');

  // The whole list is the API's order, and that order is by started_unix_ns, newest first.
  const api = (await getJson('/api/v1/sessions?limit=1000')).sessions;
  assert.deepEqual(ids, api.map((s) => s.id));
  for (let i = 1; i < api.length; i++) {
    assert.ok(BigInt(api[i - 1].started_unix_ns) >= BigInt(api[i].started_unix_ns), `${api[i - 1].id} before ${api[i].id}`);
  }

  // Every row shows its session's own summary (GET /sessions/{id}), formatted.
  for (const r of rows) {
    const s = await getJson(`/api/v1/sessions/${encodeURIComponent(r.id)}`);
    assert.deepEqual(r.cells, [
      s.name || s.id, s.service || '', fmt.wallClock(s.started_unix_ns), fmt.duration(s.duration_ns),
      fmt.count(s.tasks), fmt.count(s.blocks), s.lag.samples ? fmt.ms(s.lag.max_ms) : '–', fmt.count(s.dropped),
    ], `row of ${r.id}`);
  }

  // And as seeded, so a summary and a row wrong the same way still fail.
  const cells = (id) => rows.find((r) => r.id === id).cells;
  assert.deepEqual(cells(RUNNING_ID), ['GET /stream/rows', 'stream', '2025-11-25 18:00:00', '120 ms', '3', '0', '5.00 ms', '7']);
  assert.deepEqual(cells(MID_ID), ['GET /healthz', 'orders', '2025-11-25 16:51:40', '3.00 ms', '1', '0', '–', '0']);
  assert.deepEqual(cells(OLD_ID), ['POST /orders', 'orders', '2025-11-13 02:13:20', '2.50 s', '2', '2', '299 ms', '12']);
  assert.deepEqual(cells(SMALL_ID), ['GET /users/42', 'shop', '2025-11-25 16:43:20', '250 ms', '5', '1', '145 ms', '0']);
});
