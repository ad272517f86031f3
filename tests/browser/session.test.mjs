// session.test.mjs — the session page against the small seeded session (seed-data.mjs): header
// numbers, lanes and their nesting, hover details, tables, selection and collapse, wheel /
// keyboard / drag zoom, the URL round trip, deep-zoom axis labels and the embed layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { BASE, pagesPerTest, waitDrawn, settle, viewOf, afterDraw, screenshot, lanesShown } from './harness.mjs';
import { small, SMALL_ID } from './seed-data.mjs';

const MS = 1e6;
const pages = pagesPerTest();

async function open(query = '', opts = {}) {
  const { page } = await pages.open(opts);
  await page.goto(`${BASE}/sessions/${SMALL_ID}${query}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);
  return page;
}

// Client x of time t on the plot, from the head SVG's geometry (gutter 240 px).
async function xOf(page, t) {
  return page.evaluate((tt) => {
    const svg = document.getElementById('head').getBoundingClientRect();
    const d = document.getElementById('timeline').dataset;
    const from = Number(d.from);
    const to = Number(d.to);
    return svg.left + 240 + ((tt - from) * (svg.width - 240)) / (to - from);
  }, t);
}

async function laneY(page, index) {
  const box = await page.locator('#lanes').boundingBox();
  return box.y + index * 20 + 10;
}

const near = (a, b, tol, msg) => assert.ok(Math.abs(a - b) <= tol, `${msg}: ${a} not within ${tol} of ${b}`);

test('header shows the session summary', async () => {
  const page = await open();
  assert.equal(await page.textContent('#title'), small.name);
  const stat = (k) => page.locator(`.stat[data-stat="${k}"] dd`).textContent();
  assert.equal(await stat('duration'), '250 ms');
  assert.equal(await stat('tasks'), '5');
  assert.equal(await stat('max concurrency'), '5');
  // lag samples: 4 x 0.3 ms, 145 ms, 4 x 0.4 ms -> avg 16.4 ms, p95 (nearest rank 9 of 9) 145 ms
  assert.equal(await stat('lag avg / p95 / max'), '16.4 ms / 145 ms / 145 ms');
  assert.equal(await stat('blocks'), '1');
  assert.equal(await stat('awaits'), '10');
  assert.equal(await stat('dropped'), '0');
  await screenshot(page, 'session.png');
});

test('lanes follow the task tree, with end states', async () => {
  const page = await open();
  const lanes = (await page.$eval('#lanes', lanesShown)).map((l) => ({ ...l, end: l.ends.length ? l.ends.join(' ') : null }));
  assert.deepEqual(lanes.map((l) => l.id), [1, 2, 3, 4, 5], 'parent above children, siblings by created');
  assert.deepEqual(lanes.map((l) => l.depth), [0, 1, 2, 1, 2]);
  assert.ok(lanes[1].x > lanes[0].x && lanes[2].x > lanes[1].x, 'children indented under their parent');
  assert.equal(lanes[0].label, 'Task-1 · app.views.user_page');
  assert.ok(lanes.every((l) => l.steps && l.awaits), 'every lane shows busy and waiting');
  assert.deepEqual(lanes.map((l) => l.end), ['end-ok', 'end-ok', 'end-error', 'end-cancelled', 'end-ok']);
  // The block appears as a labelled band with its culprit line.
  const blockLabel = await page.textContent('#head .block-label');
  assert.equal(blockLabel, 'app/views.py:45 time.sleep(0.15)');
  const svgCount = await page.evaluate(() => document.querySelectorAll('svg *').length);
  assert.ok(svgCount < 5000, `svg elements ${svgCount}`);
});

test('hover shows await details with file:line', async () => {
  const page = await open();
  // fetch-user (lane 1) awaits AsyncSession.execute from 1.6 ms for 45 ms.
  await page.mouse.move(await xOf(page, 20 * MS), await laneY(page, 1));
  const tip = page.locator('#tooltip');
  await tip.waitFor({ state: 'visible' });
  const text = await tip.textContent();
  assert.match(text, /fetch-user · app\.db\.fetch_user/);
  assert.match(text, /await45\.0 ms at 1\.60 ms/);
  assert.match(text, /awaitingAsyncSession\.execute/);
  assert.match(text, /atapp\/db\.py:23/);
  // The blocking row names the culprit line.
  const headBox = await page.locator('#head').boundingBox();
  await page.mouse.move(await xOf(page, 120 * MS), headBox.y + 26 + 9);
  await page.waitForFunction(() => /loop blocked/.test(document.getElementById('tooltip').textContent));
  const btext = await tip.textContent();
  assert.match(btext, /loop blocked 150 ms/);
  assert.match(btext, /culpritapp\/views\.py:45/);
  assert.match(btext, /sourcetime\.sleep\(0\.15\)/);
  assert.match(btext, /stack taken52\.0 ms into the block/); // when the watchdog took it
});

test('tables list hot spots, awaits, blocks with stacks and tasks', async () => {
  const page = await open();
  const hot = await page.$$eval('table.hotspots tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  // awaits >= 10 ms: 9 of 10; app/cache.py:14 (182.5 ms) leads, app/db.py:23 twice (45 + 13 ms).
  assert.deepEqual(hot[0], ['app/cache.py:14', 'refresh', 'asyncio.Event.wait', '1', '183 ms', '183 ms']);
  const db = hot.find((r) => r[0] === 'app/db.py:23');
  assert.deepEqual(db, ['app/db.py:23', 'fetch_user', 'AsyncSession.execute', '2', '58.0 ms', '45.0 ms']);
  assert.equal(await page.locator('table.awaits tbody tr').count(), 9);
  assert.match(await page.textContent('#awaits-table h2'), /\(9\)/);
  const blocks = await page.$$eval('table.blocks tbody tr', (rs) => rs.map((r) => r.querySelector('.culprit').textContent));
  assert.deepEqual(blocks, ['app/views.py:45 time.sleep(0.15)']);
  const frames = await page.$$eval('table.blocks .frames li', (ls) => ls.map((l) => l.textContent));
  assert.deepEqual(frames, ['app/main.py:10 in handlereturn await user_page(request)', 'app/views.py:45 in user_pagetime.sleep(0.15)']);
  assert.equal(await page.textContent('table.blocks .stack summary'), '2 frames, taken 52.0 ms in');
  const rows = await page.$$eval('table.tasks tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.equal(rows.length, 5);
  const q = rows.find((r) => r[0] === 'run-query');
  assert.deepEqual(q, ['run-query', 'app.db.run_query', 'error', '2.00 ms', '500 µs', '47.4 ms', '48.0 ms', 'ValueError: bad row 7']);
  // Sorting by waiting puts cache-refresh (194.5 ms) first.
  await page.click('button[data-sort="waiting"]');
  await page.waitForFunction(() => document.getElementById('tasks-table').dataset.shown?.startsWith('waiting:'));
  assert.equal(await page.textContent('table.tasks tbody tr:first-child td:first-child'), 'cache-refresh');
});

test('clicking a lane selects the task, its parent and children', async () => {
  const page = await open();
  await page.mouse.click(await xOf(page, 240 * MS), await laneY(page, 1));
  await page.waitForFunction(() => document.querySelector('#lanes .lane.selected'));
  await settle(page);
  const sel = await page.$$eval('#lanes .lane', (ls) => ls.map((l) => (l.classList.contains('selected') ? 'S' : l.classList.contains('related') ? 'R' : '-')));
  assert.deepEqual(sel, ['R', 'S', 'R', '-', '-']);
  assert.equal(await page.textContent('table.tasks tr.selected td:first-child'), 'fetch-user');
  // A task link in a table selects its lane too.
  await page.click('table.blocks .task-link');
  await page.waitForFunction(() => document.querySelector('#lanes .lane.selected')?.dataset.task === '1');
  // Collapsing Task-1 hides its four descendants.
  const toggle = page.locator('#lanes .lane[data-task="1"] .toggle');
  assert.equal(await toggle.textContent(), '▾');
  await toggle.click();
  await page.waitForFunction(() => document.querySelectorAll('#lanes .lane').length === 1);
  assert.equal(await page.locator('#lanes .lane[data-task="1"] .toggle').textContent(), '▸');
});

test('wheel zooms around the pointer', async () => {
  const page = await open();
  const v0 = await viewOf(page);
  assert.deepEqual(v0, { from: 0, to: small.duration });
  const x = Math.round(await xOf(page, 100 * MS));
  const y = await laneY(page, 0);
  const tAt = await page.evaluate((cx) => {
    const svg = document.getElementById('head').getBoundingClientRect();
    return ((cx - svg.left - 240) / (svg.width - 240)) * 250e6;
  }, x);
  await page.mouse.move(x, y);
  const v1 = await afterDraw(page, () => page.mouse.wheel(0, -200));
  near(v1.to - v1.from, 125 * MS, 1000, 'span halves for 200 px of wheel');
  // The time under the pointer stays under it: it sits at the same fraction of the view.
  near((tAt - v1.from) / (v1.to - v1.from), tAt / small.duration, 1e-4, 'pointer fraction');
  const labels = await page.$$eval('#head .axis-label', (ls) => ls.map((l) => l.textContent));
  assert.ok(labels.length >= 3, 'axis has ticks');
  assert.ok(labels.every((l) => / ms$/.test(l)), `ms labels: ${labels}`);
  await screenshot(page, 'zoomed.png');
  const v2 = await afterDraw(page, () => page.mouse.wheel(0, 200));
  near(v2.to - v2.from, 250 * MS, 2000, 'wheel back out restores the span');
});

test('keys W/S zoom, A/D pan, 0 resets', async () => {
  const page = await open();
  await page.focus('#timeline');
  const w = await afterDraw(page, () => page.keyboard.press('w'));
  assert.deepEqual(w, { from: 62.5 * MS, to: 187.5 * MS }, 'W halves the span around the centre');
  const d = await afterDraw(page, () => page.keyboard.press('d'));
  assert.deepEqual(d, { from: 93.75 * MS, to: 218.75 * MS }, 'D pans a quarter span right');
  const a = await afterDraw(page, () => page.keyboard.press('a'));
  assert.deepEqual(a, w, 'A pans back');
  const s = await afterDraw(page, () => page.keyboard.press('s'));
  assert.deepEqual(s, { from: 0, to: 250 * MS }, 'S doubles the span');
  await afterDraw(page, () => page.keyboard.press('w'));
  await afterDraw(page, () => page.keyboard.press('w'));
  const z = await afterDraw(page, () => page.keyboard.press('0'));
  assert.deepEqual(z, { from: 0, to: 250 * MS }, '0 shows the whole session');
  await page.keyboard.press('?');
  assert.equal(await page.isVisible('#help'), true);
  await page.keyboard.press('Escape');
  assert.equal(await page.isVisible('#help'), false);
});

test('dragging a range on the axis zooms to it; dragging lanes pans', async () => {
  const page = await open();
  const head = await page.locator('#head').boundingBox();
  const x1 = Math.round(await xOf(page, 50 * MS));
  const x2 = Math.round(await xOf(page, 100 * MS));
  const nsPerPx = 250 * MS / (head.width - 240);
  const v = await afterDraw(page, async () => {
    await page.mouse.move(x1, head.y + 12);
    await page.mouse.down();
    await page.mouse.move((x1 + x2) / 2, head.y + 12, { steps: 3 });
    await page.mouse.move(x2, head.y + 12, { steps: 3 });
    await page.mouse.up();
  });
  near(v.from, 50 * MS, nsPerPx, 'selection start');
  near(v.to, 100 * MS, nsPerPx, 'selection end');
  // Drag the lanes 100 px to the left: the view moves 100 px worth of time later.
  const span = v.to - v.from;
  const per = span / (head.width - 240);
  const y = await laneY(page, 2);
  const p = await afterDraw(page, async () => {
    await page.mouse.move(x2, y);
    await page.mouse.down();
    await page.mouse.move(x2 - 50, y, { steps: 3 });
    await page.mouse.move(x2 - 100, y, { steps: 3 });
    await page.mouse.up();
  });
  near(p.from - v.from, 100 * per, 2 * per, 'pan distance');
  near(p.to - p.from, span, 2, 'pan keeps the span');
  // The overview (minimap) selects a range too.
  const mm = await page.locator('#minimap').boundingBox();
  const mx = (t) => mm.x + 240 + (t / small.duration) * (mm.width - 240);
  const m = await afterDraw(page, async () => {
    await page.mouse.move(mx(150 * MS), mm.y + 15);
    await page.mouse.down();
    await page.mouse.move(mx(200 * MS), mm.y + 15, { steps: 4 });
    await page.mouse.up();
  });
  near(m.from, 150 * MS, 2 * nsPerPx, 'minimap selection start');
  near(m.to, 200 * MS, 2 * nsPerPx, 'minimap selection end');
});

test('the URL carries the visible range and a reload restores it', async () => {
  const page = await open();
  await page.focus('#timeline');
  await afterDraw(page, () => page.keyboard.press('w'));
  const v = await afterDraw(page, () => page.keyboard.press('d'));
  const url = new URL(page.url());
  assert.equal(Number(url.searchParams.get('from')), v.from);
  assert.equal(Number(url.searchParams.get('to')), v.to);
  await page.reload();
  await waitDrawn(page);
  assert.deepEqual(await viewOf(page), v);
  // A link opened fresh shows the same view.
  const page2 = await pages.current.context.newPage();
  await page2.goto(url.href);
  await waitDrawn(page2);
  assert.deepEqual(await viewOf(page2), v);
});

test('the axis stays readable at nanosecond scale', async () => {
  const page = await open('?from=100000000&to=100000200');
  assert.deepEqual(await viewOf(page), { from: 100000000, to: 100000200 });
  const labels = await page.$$eval('#head .axis-label', (ls) => ls.map((l) => l.textContent));
  assert.ok(labels.length >= 3, `ticks: ${labels}`);
  assert.ok(labels.every((l) => /^\+\d+ ns$/.test(l)), `relative ns labels: ${labels}`);
  assert.equal(await page.textContent('#head .axis-offset'), '0.100000000 s +');
  // A 2 s wide view would be labelled in ms or s; the 250 ms session at full view in ms.
  await page.focus('#timeline');
  await afterDraw(page, () => page.keyboard.press('0'));
  const full = await page.$$eval('#head .axis-label', (ls) => ls.map((l) => l.textContent));
  assert.ok(full.includes('100 ms') && full.includes('0 ms'), `full view labels: ${full}`);
});

test('embed mode fits a 400 px iframe and links to the full view', async () => {
  const page = await open('?embed=1', { width: 900, height: 400 });
  assert.equal(await page.isVisible('#tables'), false, 'tables hidden');
  assert.equal(await page.isVisible('#minimap'), false, 'minimap hidden');
  const full = await page.getAttribute('#open-full', 'href');
  assert.match(full, /^\/sessions\/s-seed-small\?from=0&to=250000000$/);
  const scrollH = await page.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(scrollH <= 400, `page fits: ${scrollH}`);
  const lanesBox = await page.locator('#lanes-scroll').boundingBox();
  assert.ok(lanesBox.height >= 100, `lanes get room: ${lanesBox.height}`);
  assert.ok(lanesBox.y + lanesBox.height <= 401);
  const lanes = await page.locator('#lanes .lane').count();
  assert.equal(lanes, 5);
  await screenshot(page, 'embed.png');
});

test('a narrow embed (the toolbar docked at the side) gives the plot most of the width', async () => {
  // litestar-debug-toolbar docks its panel 400 px wide: the frame is ~366 px. A 240 px label
  // column would leave the plot ~126 px; the embed narrows the labels to 30% there.
  const page = await open('?embed=1', { width: 366, height: 400 });
  const xs = await page.$$eval('#head .axis-label', (ls) => ls.map((l) => Number(l.getAttribute('x'))));
  const zero = Math.min(...xs);
  assert.ok(zero >= 96 && zero <= 0.35 * 366, `plot starts at ${zero} px of 366`);
  assert.equal(await page.locator('#lanes .lane').count(), 5);
  const labels = await page.$$eval('#lanes .lane-label', (ls) => ls.map((l) => l.textContent));
  assert.ok(labels.every((t) => t.length > 0), `every lane keeps a label: ${labels}`);
  // the full page keeps its 240 px column however narrow
  const full = await open('', { width: 366, height: 400 });
  const fxs = await full.$$eval('#head .axis-label', (ls) => ls.map((l) => Number(l.getAttribute('x'))));
  assert.ok(Math.min(...fxs) >= 240, `full page plot starts at ${Math.min(...fxs)}`);
  await screenshot(page, 'embed-narrow.png');
});

test('dark theme follows prefers-color-scheme', async () => {
  const page = await open('', { colorScheme: 'dark' });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(15, 18, 22)');
  await screenshot(page, 'session-dark.png');
});

test('the embed view loads in a 400 px iframe of a toolbar on another loopback origin', async () => {
  // The toolbar's page, served by the test on its own port and opened as http://localhost:N: a
  // different origin from the server's, which its default frame-ancestors (loopback) allows.
  const hostPage = `<!doctype html><title>toolbar</title><iframe id="panel" src="${BASE}/sessions/${SMALL_ID}?embed=1" width="900" height="400"></iframe>`;
  const host = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(hostPage);
  });
  await new Promise((resolve) => host.listen(0, '127.0.0.1', resolve));
  try {
    const { page } = await pages.open({ width: 1000, height: 600 });
    await page.goto(`http://localhost:${host.address().port}/`);
    const frame = await (await page.waitForSelector('#panel')).contentFrame();
    await frame.waitForFunction(() => Number(document.getElementById('timeline')?.dataset.drawn || 0) > 0, null, { timeout: 15000 });
    assert.equal(await frame.locator('#lanes .lane').count(), 5);
    assert.equal(await frame.textContent('#title'), small.name);
    assert.equal(await frame.evaluate(() => document.body.classList.contains('embed')), true);
    await screenshot(page, 'toolbar-iframe.png');
  } finally {
    host.close();
  }
});
