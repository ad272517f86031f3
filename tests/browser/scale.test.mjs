// scale.test.mjs — lane virtualization and exports: on a generated 2,000-task session the page
// draws and asks the server for only the lanes in view, scrolling brings the right lanes in,
// a scroll back to lanes drawn before asks nothing, the tasks table pages; the JSON export
// downloads the session (the Chrome trace is exports.test.mjs's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BASE, pagesPerTest, waitDrawn, settle, drawnCount, lanesHeight, lanesShown } from './harness.mjs';
import { SMALL_ID } from './seed-data.mjs';

const MEDIUM_ID = 's-large-2000';
const pages = pagesPerTest();

test('only the lanes in view are drawn and asked for', async () => {
  const tasks = (await (await fetch(`${BASE}/api/v1/sessions/${MEDIUM_ID}/tasks`)).json()).tasks;
  assert.equal(tasks.length, 2000);
  const { page } = await pages.open({ width: 1200, height: 800 });
  const asked = [];
  // The items of lanes are asked by /timeline?tasks=, or, for a scroll to rows not fetched yet,
  // by /rows with a view (px): the rows in [lanes_offset, lanes_offset + lanes_limit) of its answer.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith('/timeline')) asked.push((u.searchParams.get('tasks') || '').split(',').filter(Boolean).map(Number));
  });
  page.on('response', async (r) => {
    const u = new URL(r.url());
    if (!u.pathname.endsWith('/rows') || !u.searchParams.has('px') || !r.ok()) return;
    const body = await r.json().catch(() => null);
    if (!body || !body.timeline) return;
    const lo = Number(u.searchParams.get('lanes_offset') ?? body.offset);
    const hi = u.searchParams.has('lanes_limit') ? lo + Number(u.searchParams.get('lanes_limit')) : Infinity;
    asked.push(body.rows.filter((x) => x.row >= lo && x.row < hi).map((x) => x.id));
  });
  await page.goto(`${BASE}/sessions/${MEDIUM_ID}`);
  await waitDrawn(page);
  await settle(page);
  const viewportLanes = Math.ceil((await page.locator('#lanes-scroll').boundingBox()).height / 20);
  let lanes = await page.$$eval('#lanes .lane', (ls) => ls.map((l) => Number(l.dataset.task)));
  assert.deepEqual(lanes, tasks.slice(0, lanes.length).map((t) => t.id), 'first lanes in tree order');
  assert.ok(lanes.length >= viewportLanes && lanes.length <= viewportLanes + 10, `lanes drawn: ${lanes.length} for ${viewportLanes} in view`);
  assert.ok(asked.length >= 1 && asked.every((ids) => ids.length <= viewportLanes + 20), `timeline asked for ${asked.map((a) => a.length)}`);
  assert.equal(await lanesHeight(page), String(2000 * 20), 'the lanes keep the whole tree\'s height');

  // Scroll to the bottom: the last tasks come into view and are asked for.
  const n = await drawnCount(page);
  await page.evaluate(() => { const s = document.getElementById('lanes-scroll'); s.scrollTop = s.scrollHeight; });
  await waitDrawn(page, n);
  await settle(page);
  lanes = await page.$$eval('#lanes .lane', (ls) => ls.map((l) => Number(l.dataset.task)));
  const lastId = tasks[tasks.length - 1].id;
  assert.equal(lanes[lanes.length - 1], lastId, 'last lane is the last task');
  assert.ok(asked[asked.length - 1].includes(lastId), 'the last task was asked for');
  assert.ok(asked[asked.length - 1].length <= viewportLanes + 20);
  const svg = await page.evaluate(() => document.querySelectorAll('svg *').length);
  assert.ok(svg < 5000, `svg elements: ${svg}`);

  // Selecting the last task turns the tasks table to its page (20 pages of 100).
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  const box = await page.locator('#lanes-scroll').boundingBox();
  await page.mouse.click(box.x + 100, box.y + box.height - 10);
  await page.waitForFunction(() => document.querySelector('table.tasks tr.selected'));
  const pager = await page.textContent('.pager');
  assert.match(pager, /page 20 of 20/);
  assert.equal(await page.getAttribute('table.tasks tr.selected', 'data-task'), String(lastId));
});

test('a scroll back to lanes drawn before draws them, items and all, without asking the server', async () => {
  const { page } = await pages.open({ width: 1200, height: 800 });
  await page.goto(`${BASE}/sessions/${MEDIUM_ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);
  const top = await page.$eval('#lanes', lanesShown);
  assert.ok(top.length > 10 && top.some((l) => l.steps), 'the first lanes show their steps');
  const scrollTo = async (where) => {
    const n = await drawnCount(page);
    await page.evaluate((y) => { const s = document.getElementById('lanes-scroll'); s.scrollTop = y === 'end' ? s.scrollHeight : y; }, where);
    await waitDrawn(page, n);
    await settle(page);
  };
  await scrollTo('end');
  const asked = [];
  page.on('request', (r) => { if (/\/(rows|timeline)$/.test(new URL(r.url()).pathname)) asked.push(r.url()); });
  await scrollTo(0);
  assert.deepEqual(asked, [], 'nothing asked');
  assert.deepEqual(await page.$eval('#lanes', lanesShown), top, 'the same lanes, items and end states as before');
});

test('redraws for what arrives after the first draw (charts, tables, a selection) ask the server nothing', async () => {
  const { page } = await pages.open({ width: 1200, height: 800 });
  const asked = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (/\/(rows|timeline)$/.test(u.pathname)) asked.push(`${u.pathname.split('/').pop()}?${u.searchParams}`);
  });
  await page.goto(`${BASE}/sessions/${MEDIUM_ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  const n = await settle(page);
  assert.ok(n >= 2, `the charts' and tables' answers redrew the view (${n} draws)`);
  assert.equal(asked.length, 1, `one request for the lanes and their items: ${asked.join(' | ')}`);
  const box = await page.locator('#lanes-scroll').boundingBox();
  await page.mouse.click(box.x + 100, box.y + 30);
  await waitDrawn(page, n);
  await settle(page);
  assert.equal(asked.length, 1, `selecting a lane in view asks nothing: ${asked.join(' | ')}`);
  // a scroll changes the lanes, not the head: its drawing is kept (not rebuilt), the lanes are new
  await page.evaluate(() => { document.getElementById('head').firstChild.dataset.mark = 'kept'; });
  const m = await drawnCount(page);
  await page.evaluate(() => { document.getElementById('lanes-scroll').scrollTop = 20 * 500; });
  await waitDrawn(page, m);
  await settle(page);
  assert.equal(await page.evaluate(() => document.getElementById('head').firstChild.dataset.mark), 'kept',
    'the head was not drawn again for a scroll');
  const first = await page.$eval('#lanes .lane', (l) => Number(l.dataset.task));
  assert.notEqual(first, 1, 'the lanes moved with the scroll');
  // a zoom draws the head again
  const k = await drawnCount(page);
  await page.focus('#timeline');
  await page.keyboard.press('w');
  await waitDrawn(page, k);
  assert.equal(await page.evaluate(() => document.getElementById('head').firstChild.dataset.mark), undefined,
    'the head was drawn again for a zoom');
});

test('the wheel over the task names scrolls the lanes, over the plot it zooms', async () => {
  const { page } = await pages.open({ width: 1200, height: 800 });
  await page.goto(`${BASE}/sessions/${MEDIUM_ID}`);
  await waitDrawn(page);
  await settle(page);
  const box = await page.locator('#lanes-scroll').boundingBox();
  const view0 = await page.evaluate(() => ({ ...document.getElementById('timeline').dataset }));
  await page.mouse.move(box.x + 100, box.y + 100);
  const n = await drawnCount(page);
  await page.mouse.wheel(0, 600);
  await page.waitForFunction(() => document.getElementById('lanes-scroll').scrollTop >= 500);
  await waitDrawn(page, n); // lanes beyond the overscan were fetched
  await settle(page);
  const view1 = await page.evaluate(() => ({ ...document.getElementById('timeline').dataset }));
  assert.equal(view1.from, view0.from, 'no zoom from the label column');
  assert.equal(view1.to, view0.to);
  const first = await page.$eval('#lanes .lane', (l) => Number(l.getAttribute('data-task')));
  assert.notEqual(first, 1, 'the lanes drawn moved with the scroll');
  await page.mouse.move(box.x + 600, box.y + 100);
  const m = await drawnCount(page);
  await page.mouse.wheel(0, -200);
  await waitDrawn(page, m);
  const view2 = await page.evaluate(() => document.getElementById('timeline').dataset);
  assert.ok(Number(view2.to) - Number(view2.from) < Number(view0.to) - Number(view0.from), 'zoomed in over the plot');
});

test('the JSON export downloads the whole session', async () => {
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${SMALL_ID}`);
  await waitDrawn(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const file = await download.path();
  const batch = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(batch.v, 1);
  assert.equal(batch.session, SMALL_ID);
  assert.equal(batch.events.filter((e) => e.k === 'task').length, 5);
  assert.equal(batch.events.filter((e) => e.k === 'await').length, 10);
});
