// running.test.mjs — a task with no `done` (still running when the session ended) reads as
// "running" everywhere: an arrowhead end marker at the session's end in its lane (the finished
// tasks keep their state bars), the tooltip, and the tasks table's state and duration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, waitDrawn, settle, screenshot, lanesShown, laneBox } from './harness.mjs';
import { running, RUNNING_ID } from './seed-data.mjs';

const MS = 1e6;
const pages = pagesPerTest();

async function open() {
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${RUNNING_ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);
  return page;
}

// Client x of session time t on the plot (gutter 240 px).
async function xOf(page, t) {
  return page.evaluate((tt) => {
    const svg = document.getElementById('head').getBoundingClientRect();
    const d = document.getElementById('timeline').dataset;
    return svg.left + 240 + ((tt - Number(d.from)) * (svg.width - 240)) / (Number(d.to) - Number(d.from));
  }, t);
}

async function tipAt(page, x, y) {
  await page.mouse.move(x, y);
  await page.locator('#tooltip').waitFor({ state: 'visible' });
  return page.textContent('#tooltip');
}

test('a task with no done reads as running in its lane, tooltip and the tasks table', async () => {
  const page = await open();
  const stat = (k) => page.locator(`.stat[data-stat="${k}"] dd`).textContent();
  assert.equal(await stat('duration'), '120 ms');
  assert.equal(await stat('tasks'), '3');
  assert.equal(await stat('max concurrency'), '3');
  assert.equal(await stat('dropped'), '7');

  // Lane end markers: the finished tasks keep their state bars, the running one an arrowhead.
  const lanes = (await page.$eval('#lanes', lanesShown)).map((l) => ({ id: l.id, ends: l.ends }));
  assert.deepEqual(lanes, [
    { id: 1, ends: ['end-ok'] }, { id: 2, ends: ['end-running'] }, { id: 3, ends: ['end-cancelled'] },
  ]);
  // The arrowhead ends at the session's end (the plot's right edge), inside the running lane.
  // (the only running lane: the arrowheads' path is its one)
  const mark = await page.locator('#lanes path.end-running').boundingBox();
  const lane2 = await laneBox(page, 2);
  const xEnd = await xOf(page, running.duration);
  assert.ok(Math.abs(mark.x + mark.width - xEnd) <= 1.5, `marker right edge ${mark.x + mark.width} at the end ${xEnd}`);
  assert.ok(mark.width >= 5 && mark.y >= lane2.y && mark.y + mark.height <= lane2.y + lane2.height, 'marker in its lane');
  const fill = await page.$eval('#lanes .end-running', (e) => getComputedStyle(e).fill);
  const okFill = await page.$eval('#lanes .end-ok', (e) => getComputedStyle(e).fill);
  assert.notEqual(fill, okFill, 'running is not coloured as ok');

  // Tooltip over the lane's name and over the lane after its last await: running, alive ≥ 110 ms.
  const y = lane2.y + lane2.height / 2;
  for (const x of [lane2.x + 100, await xOf(page, 110 * MS)]) {
    const tip = await tipAt(page, x, y);
    assert.match(tip, /stream-rows · app\.db\.stream_rows/);
    assert.match(tip, /staterunning: not done when the session ended/);
    assert.match(tip, /alive≥ 110 ms/);
    assert.doesNotMatch(tip, /ended\d/, 'no end time for a running task');
    await page.mouse.move(5, 5);
  }
  // A finished task's tooltip says when it ended and how.
  const doneBox = await laneBox(page, 3);
  const tip3 = await tipAt(page, doneBox.x + 100, doneBox.y + doneBox.height / 2);
  assert.match(tip3, /ended90\.0 ms \(cancelled\)/);
  assert.doesNotMatch(tip3, /running/);

  // Tasks table: state "running" (styled as such), duration a lower bound up to the session end.
  const rows = await page.$$eval('table.tasks tbody tr', (rs) => rs.map((r) => ({
    cells: [...r.cells].map((c) => c.textContent), state: r.cells[2].className,
  })));
  const r2 = rows.find((r) => r.cells[0] === 'stream-rows');
  assert.deepEqual(r2.cells.slice(2, 7), ['running', '10.0 ms', '2.00 ms', '90.0 ms', '≥ 110 ms']);
  assert.match(r2.state, /\bstate-running\b/);
  const r3 = rows.find((r) => r.cells[0] === 'keepalive');
  assert.deepEqual(r3.cells.slice(2, 7), ['cancelled', '12.0 ms', '500 µs', '77.5 ms', '78.0 ms']);
  // Sorting by duration puts the running task (≥ 110 ms) ahead of its parent (100 ms).
  await page.click('button[data-sort="duration"]');
  await page.waitForFunction(() => document.getElementById('tasks-table').dataset.shown?.startsWith('duration:'));
  const order = await page.$$eval('table.tasks tbody tr', (rs) => rs.map((r) => r.cells[0].textContent));
  assert.deepEqual(order, ['stream-rows', 'Task-1', 'keepalive']);
  await screenshot(page, 'running.png');
});
