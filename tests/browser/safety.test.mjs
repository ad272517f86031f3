// safety.test.mjs — the hostile session and the sessions list: names, coroutines, file paths,
// exception texts and stack lines that look like markup are shown as text, no dialog opens, no
// element is created from them, and the page makes no request beyond loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pagesPerTest, waitDrawn, settle, screenshot } from './harness.mjs';
import { hostile, HOSTILE_ID, EVIL, SMALL_ID, small } from './seed-data.mjs';

const pages = pagesPerTest();

// Elements that data must never create, and attributes that could run script.
async function injected(page) {
  return page.evaluate(() => ({
    scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
    imgs: document.querySelectorAll('img, iframe, object, embed, foreignObject').length,
    svgScripts: document.querySelectorAll('svg script, svg svg').length,
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).length,
    jsLinks: [...document.querySelectorAll('a[href]')].filter((a) => /^\s*javascript:/i.test(a.getAttribute('href'))).length,
  }));
}

test('the hostile session renders its strings as text and runs nothing', async () => {
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${HOSTILE_ID}`);
  await waitDrawn(page);
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1');
  await settle(page);
  assert.equal(await page.textContent('#title'), hostile.name);
  assert.equal(await page.title(), `loopscope — ${hostile.name}`);
  const meta = await page.textContent('#meta');
  assert.ok(meta.includes(EVIL[3]) && meta.includes(EVIL[1]), `meta as text: ${meta}`);
  // Every task name and coroutine reaches the tasks table verbatim.
  const rows = await page.$$eval('table.tasks tbody tr', (rs) => rs.map((r) => [r.cells[0].textContent, r.cells[1].textContent, r.cells[7].textContent]));
  for (const t of hostile.tasks) {
    const r = rows.find((x) => x[0] === t.name);
    assert.ok(r, `row for ${t.name}`);
    assert.equal(r[1], t.coro);
    assert.equal(r[2], t.exc || '');
  }
  // Lane labels carry the (cut) names as SVG text.
  const labels = await page.$$eval('#lanes .lane-label', (ls) => ls.map((l) => l.textContent));
  assert.equal(labels.length, hostile.tasks.length);
  assert.ok(labels[0].startsWith('<script>alert(1)</script>'), labels[0]);
  // File paths, awaited objects, stack lines in the tables.
  const hot = await page.$$eval('table.hotspots tbody tr', (rs) => rs.map((r) => r.cells[0].textContent + r.cells[2].textContent));
  assert.ok(hot.some((x) => x.includes(EVIL[1])), 'file path as text');
  const frames = await page.$$eval('table.blocks .frames li', (ls) => ls.map((l) => l.textContent));
  assert.deepEqual(frames, [`${EVIL[1]}:1 in ${EVIL[0]}${EVIL[3]}`, `${EVIL[2]}:2 in ${EVIL[4]}${EVIL[0]}`]);
  // Hover a lane's await: the tooltip shows the hostile strings as text.
  const box = await page.locator('#lanes').boundingBox();
  const head = await page.locator('#head').boundingBox();
  const x = head.x + 240 + (20 / 100) * (head.width - 240);
  await page.mouse.move(x, box.y + 10);
  await page.locator('#tooltip').waitFor({ state: 'visible' });
  const tip = await page.textContent('#tooltip');
  assert.ok(tip.includes(`awaiting${hostile.awaits[0].what}`), tip);
  assert.ok(tip.includes(`at${hostile.awaits[0].file}:7`), tip);
  // Open the stack details so their text is laid out too, then look for anything injected.
  await page.$$eval('table.blocks details', (ds) => ds.forEach((d) => { d.open = true; }));
  await page.waitForTimeout(300);
  const inj = await injected(page);
  assert.deepEqual(inj.scripts, ['/static/session.js'], 'only the page\'s own script');
  assert.equal(inj.imgs, 0, 'no img/iframe/object from data');
  assert.equal(inj.svgScripts, 0);
  assert.equal(inj.handlers, 0, 'no on* attribute anywhere');
  assert.equal(inj.jsLinks, 0, 'no javascript: link');
  await screenshot(page, 'hostile.png');
});

test('the sessions list shows each session and filters by name', async () => {
  const { page } = await pages.open();
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => document.body.dataset.loaded);
  const rows = await page.$$eval('#sessions tbody tr', (rs) => rs.map((r) => ({
    id: r.dataset.session, name: r.cells[0].textContent, href: r.querySelector('a').getAttribute('href'),
    duration: r.cells[3].textContent, tasks: r.cells[4].textContent, blocks: r.cells[5].textContent, lag: r.cells[6].textContent,
  })));
  const s = rows.find((r) => r.id === SMALL_ID);
  assert.deepEqual(s, { id: SMALL_ID, name: small.name, href: `/sessions/${SMALL_ID}`, duration: '250 ms', tasks: '5', blocks: '1', lag: '145 ms' });
  const hs = rows.find((r) => r.id === HOSTILE_ID);
  assert.equal(hs.name, hostile.name, 'hostile session name as text');
  const inj = await injected(page);
  assert.equal(inj.imgs, 0);
  assert.equal(inj.handlers, 0);
  await screenshot(page, 'sessions.png');
  // Filter by name: only the matching session stays.
  const n = Number(await page.evaluate(() => document.body.dataset.loaded));
  await page.fill('#filter', 'users/42');
  await page.waitForFunction((k) => Number(document.body.dataset.loaded) > k, n);
  const ids = await page.$$eval('#sessions tbody tr', (rs) => rs.map((r) => r.dataset.session));
  assert.deepEqual(ids, [SMALL_ID]);
  assert.match(page.url(), /\?name=users%2F42$/);
  // Following the link opens the session's timeline.
  await page.click(`#sessions a[href="/sessions/${SMALL_ID}"]`);
  await waitDrawn(page);
  assert.equal(await page.textContent('#title'), small.name);
});
