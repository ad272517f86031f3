// ldt_toolbar.test.mjs — loopscope's Async panel in litestar-debug-toolbar end to end: starts
// examples/shop_app.py (Litestar + litestar-debug-toolbar + loopscope.litestar_toolbar.LoopscopePanel,
// recording into the suite's server) with the newest venv of .venvs-fw/list that has them, opens
// /product/42 in Chromium, clicks the toolbar's Async button and checks the timeline iframe that
// the edited toolbar.js (collector/loopscope/_ldt_embed.py) puts in the panel, then the same
// iframe on the toolbar's page of that request (/_debug_toolbar/<request id>). The harness's
// console and page-error listeners hear the iframe too (it is a frame of the same page).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BASE, screenshot, lanesShown } from './harness.mjs';
import { ROOT, findPython, appPerFile } from './apps.mjs';

const EXAMPLE = path.join(ROOT, 'examples', 'shop_app.py');
// The culprit the blocking band must name: the time.sleep in render_price.
const SLEEP_LINE = fs.readFileSync(EXAMPLE, 'utf8').split('\n').findIndex((l) => /^\s+time\.sleep\(0\.15\)/.test(l)) + 1;
const CULPRIT = `${EXAMPLE}:${SLEEP_LINE}`;
// A blocking band's label names the culprit: its file:line first, then its source. A band too
// narrow for the whole path (a session stretched by a loaded machine: the sleep's share of it
// shrinks) gives the path's leading directories up to "…/", never the file's name or the line.
const namesTheCulprit = (label) => {
  const where = label.slice(0, label.indexOf(' '));
  return label.includes(' ') && (where === CULPRIT || (where.startsWith('…/') && CULPRIT.endsWith(where.slice(1))));
};

// litestar-debug-toolbar and fastapi-debug-toolbar cannot share a venv: this one is in .venvs-fw/
// (scripts/deps.sh), where scripts/test-frameworks.sh (or scripts/run.sh) installs loopscope.
const PYTHON = findPython('.venvs-fw/list', 'loopscope._core, loopscope.litestar_toolbar, uvicorn');
const skip = PYTHON ? false
  : 'no Python with loopscope + litestar-debug-toolbar in .venvs-fw/list (run scripts/deps.sh and scripts/test-frameworks.sh first)';
const app = appPerFile(PYTHON, 'shop_app.py', '/_debug_toolbar/static/toolbar.css', 60000);

const WAIT = { timeout: 30000 };  // generous: the app, the server and Chromium share 2 cores
let opened = null;  // what the first test saw: { requestId, src }, for the detail page's test

// The iframe's src must be the session page of the suite's server in its embed layout.
function sessionOf(src) {
  const m = String(src).match(/^(.*)\/sessions\/(s-[0-9a-f]+-[0-9a-f]+)\?embed=1$/);
  assert.ok(m && m[1] === BASE, `iframe src ${src} is not ${BASE}/sessions/<id>?embed=1`);
  return m[2];
}

// The iframe's page once it has drawn the whole session; `wide`: drawn again at the width it has
// now and at least 900 px (a frame that was hidden, or narrower, draws again when resized).
async function drawnFrame(iframe, wide = false) {
  const frame = await (await iframe.elementHandle()).contentFrame();
  await frame.waitForFunction((w) => {
    const d = document.getElementById('timeline')?.dataset;
    if (!d || !(Number(d.drawn || 0) > 0 && d.complete === '1')) return false;
    const width = document.getElementById('lanes-scroll').clientWidth;
    return !w || (width >= 900 && Number(document.getElementById('head').getAttribute('width')) === width);
  }, wide, WAIT);
  return frame;
}

// The request's timeline drawn in the iframe: every task of the handler in its lanes, the shipping
// quote that wait_for cancelled, and the blocking band labelled with render_price's time.sleep.
async function checkTimeline(frame) {
  const lanes = (await frame.$eval('#lanes', lanesShown)).map((l) => ({ label: l.label, end: l.ends[0] || null }));
  const labels = lanes.map((l) => l.label).join(' | ');
  // the request's task, load_product's gather (its task and 3 queries), extras (a TaskGroup of
  // reviews and recommendations, gather on 3.10), the cancelled shipping quote
  assert.equal(lanes.length, 9, labels);
  assert.equal(lanes.filter((l) => /__main__\.FakeDB\.fe/.test(l.label)).length, 3, labels);
  const quote = lanes.find((l) => l.label.startsWith('shipping-quote · __main__.shi'));
  assert.ok(quote, labels);
  assert.equal(quote.end, 'end-cancelled', 'wait_for cancelled the shipping quote');
  assert.ok(await frame.locator('#lanes path.step').count() > 0, 'the lanes show their steps');
  assert.ok(await frame.locator('#head .blocks path.block').count() >= 1, 'the block is drawn');
  // the band's label is cut to its width: the culprit's file:line comes first, then its source
  // (the toolbar's own work may block the loop too, under load: its band has a label of its own)
  const bandLabels = await frame.locator('#head .block-label').allTextContents();
  assert.equal(bandLabels.filter(namesTheCulprit).length, 1, `one blocking band is labelled ${CULPRIT}: ${JSON.stringify(bandLabels)}`);
}

// Whether the session's blocks name the culprit: the watchdog takes a block's stack 50 ms into
// it, and a thread starved of CPU for 100 ms more (CI: two vCPUs, three suites) takes it after
// the 150 ms sleep returned, in the toolbar's work that follows in the same step (seen once, in
// fc27: the band named a file of site-packages). Such a request is asked again.
async function namesCulprit(sid) {
  const { blocks } = await (await fetch(`${BASE}/api/v1/sessions/${sid}/blocks`)).json();
  const tops = blocks.map((b) => (b.stack && b.stack.length ? `${b.stack.at(-1).file}:${b.stack.at(-1).line}` : 'no stack'));
  return { ok: tops.includes(CULPRIT), tops };
}

// Hovering the culprit's blocking band tells all of it: the culprit, its source line, how long.
async function hoverBlock(page, frame) {
  const labels = frame.locator('#head .block-label');
  const i = (await labels.allTextContents()).findIndex(namesTheCulprit);
  const at = await labels.nth(i).boundingBox();
  const band = await frame.locator('#head .blocks path.block').first().boundingBox();
  await page.mouse.move(at.x + 2, band.y + band.height / 2);
  await frame.waitForFunction(() => /loop blocked/.test(document.getElementById('tooltip').textContent), null, WAIT);
  const tip = await frame.locator('#tooltip').textContent();
  assert.ok(tip.includes(`culprit${CULPRIT}`), tip);
  assert.match(tip, /sourcetime\.sleep\(0\.15\)\s+# the bug loopscope shows/);
  const m = tip.match(/^loop blocked ([\d.]+) (ms|s)/);
  assert.ok(m && Number(m[1]) * (m[2] === 's' ? 1000 : 1) >= 149.5, `a block of at least the 150 ms slept: ${tip}`);
}

test('Async panel of litestar-debug-toolbar embeds the request timeline', { skip }, async () => {
  assert.ok(SLEEP_LINE > 0, 'shop_app.py has its time.sleep(0.15)');
  let page;
  let requestId;
  let iframe;
  for (let attempt = 1; ; attempt++) {
    ({ page } = await app.pages.open({ width: 1280, height: 800 }));
    await page.goto(`http://127.0.0.1:${app.port}/product/42`);
    const bar = page.locator('#debug-toolbar');
    await bar.waitFor({ state: 'visible', ...WAIT });
    requestId = await bar.getAttribute('data-request-id');
    assert.match(requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    if (await bar.evaluate((e) => e.classList.contains('collapsed'))) await page.click('#debug-toolbar .toolbar-brand');
    const button = page.locator('#debug-toolbar .toolbar-panel-btn[data-panel-id="LoopscopePanel"]');
    assert.match(await button.textContent(), /Async\s+9 tasks · [1-9]\d* blocks?/);
    await button.click();
    iframe = page.locator('#debug-toolbar .toolbar-details.expanded iframe.loopscope-timeline');
    await iframe.waitFor({ state: 'visible', ...WAIT });
    await drawnFrame(iframe);
    const named = await namesCulprit(sessionOf(await iframe.getAttribute('src')));
    if (named.ok) break;
    assert.ok(attempt < 3, `three requests, and no block's stack named ${CULPRIT}: ${named.tops.join(', ')}`);
    console.log(`# request ${attempt}: its blocks' stacks name ${named.tops.join(', ')}, not ${CULPRIT}: asking again`);
    await page.close();
  }
  // The toolbar opens docked right, 400 px wide: too narrow a frame for the culprit's label.
  // Dock it at the bottom with its own button and drag its edge up as far as it goes (60 %); the
  // frame's page draws again at its new width.
  await page.click('#debug-toolbar .toolbar-position-btn[data-position="bottom"]');
  await page.waitForFunction(() => document.getElementById('debug-toolbar').dataset.position === 'bottom', null, WAIT);
  const handle = await page.locator('#debug-toolbar .toolbar-resize-handle').boundingBox();
  await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
  await page.mouse.down();
  await page.mouse.move(handle.x + handle.width / 2, 100, { steps: 5 });
  await page.mouse.up();
  const frame = await drawnFrame(iframe, true);
  const src = await iframe.getAttribute('src');
  const session = await (await fetch(`${BASE}/api/v1/sessions/${sessionOf(src)}`)).json();
  opened = { requestId, src };
  assert.equal(session.name, 'GET /product/42', 'the session of this request');
  const box = await iframe.boundingBox();
  assert.ok(box && box.width >= 1000 && box.height >= 380, `iframe too small: ${JSON.stringify(box)}`);
  await checkTimeline(frame);
  // the toolbar's own table of the panel's stats is still there, under the timeline
  assert.match(await page.locator('#debug-toolbar .toolbar-details').textContent(), /timeline_url/);
  await screenshot(page, 'ldt-toolbar-async-panel.png');
  await hoverBlock(page, frame);
  await screenshot(page, 'ldt-toolbar-async-panel-block.png');
});

test('the toolbar\'s page of the request embeds the same timeline', { skip }, async (t) => {
  if (!opened) { t.skip('the panel test did not get as far as the iframe'); return; }
  const { page } = await app.pages.open({ width: 1280, height: 800 });
  await page.goto(`http://127.0.0.1:${app.port}/_debug_toolbar/${opened.requestId}`);
  const panel = page.locator('#panel-LoopscopePanel');
  await panel.waitFor({ state: 'visible', ...WAIT });
  // inserted by script into the (collapsed) panel's content, before the toolbar's own table
  const iframe = panel.locator('.panel-content > iframe.loopscope-timeline:first-child');
  await iframe.waitFor({ state: 'attached', ...WAIT });
  assert.equal(await iframe.getAttribute('src'), opened.src);
  await panel.locator('.panel-header').click();
  await iframe.waitFor({ state: 'visible', ...WAIT });
  await iframe.scrollIntoViewIfNeeded();
  const frame = await drawnFrame(iframe, true);
  await checkTimeline(frame);
  await hoverBlock(page, frame);
  await screenshot(page, 'ldt-toolbar-request-page.png');
});
