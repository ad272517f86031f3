// toolbar.test.mjs — the "Async" debug-toolbar panel end to end: starts examples/toolbar_app.py
// (FastAPI + fastapi-debug-toolbar + loopscope.toolbar.AsyncPanel, recording into the suite's server)
// with the newest venv of .venvs/list (or LOOPSCOPE_PYTHON), opens its page in Chromium from
// 127.0.0.1 and from localhost, opens the toolbar's Async panel and checks the embedded timeline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, screenshot, lanesShown } from './harness.mjs';
import { findPython, appPerFile } from './apps.mjs';

// A Python that has the collector (with its toolbar module) and the toolbar installed:
// scripts/test-collector.sh installs loopscope into every venv before scripts/test-web.sh runs.
const PYTHON = findPython('.venvs/list', 'loopscope._core, loopscope.toolbar, uvicorn',
  process.env.LOOPSCOPE_PYTHON ? [process.env.LOOPSCOPE_PYTHON] : []);
const skip = PYTHON ? false
  : 'no Python with loopscope + fastapi-debug-toolbar (run scripts/deps.sh and scripts/test-collector.sh first)';
const app = appPerFile(PYTHON, 'toolbar_app.py', '/_debug_toolbar/static/css/toolbar.css', 30000);

async function openAsyncPanel(host) {
  const { page } = await app.pages.open();
  await page.goto(`http://${host}:${app.port}/`);
  const button = page.locator('#fastDebugPanelList a.AsyncPanel');
  await button.waitFor({ state: 'visible', timeout: 15000 });
  assert.match(await button.textContent(), /Async\s+6 tasks/);
  await button.click();
  const iframe = page.locator('#AsyncPanel iframe');
  await iframe.waitFor({ state: 'visible', timeout: 15000 });
  const src = await iframe.getAttribute('src');
  const m = src.match(/^(.*)\/sessions\/s-[0-9a-f]+-[0-9a-f]+\?embed=1$/);
  assert.ok(m && m[1] === BASE, `iframe src ${src} is not ${BASE}/sessions/<id>?embed=1`);
  const frame = await (await iframe.elementHandle()).contentFrame();
  await frame.waitForFunction(() => {
    const d = document.getElementById('timeline')?.dataset;
    return d && Number(d.drawn || 0) > 0 && d.complete === '1';
  }, null, { timeout: 15000 });
  return { page, iframe, frame };
}

// The frame shows the request's task tree: the toolbar's call_next task that runs the handler
// (FastAPI runs the endpoint in it), the handler's audit task and its three gathered queries, and
// the 150 ms block. (Which line the block names is tests/collector/test_toolbar.py's to check: on
// a 2-core machine busy with Chromium the watchdog itself may be starved of CPU and miss the stack.)
async function checkTimeline({ page, iframe, frame }) {
  const box = await iframe.boundingBox();
  assert.ok(box && box.height >= 380 && box.width >= 600, `iframe too small: ${JSON.stringify(box)}`);
  const labels = await frame.$$eval('#lanes .lane .lane-label', (ls) => ls.map((l) => l.textContent));
  assert.equal(labels.length, 6, labels.join(' | '));
  assert.ok(labels.includes('audit-42 · __main__.audit'), labels.join(' | '));
  assert.equal(labels.filter((l) => l.endsWith('__main__.query')).length, 3, labels.join(' | '));
  const handler = frame.locator('#lanes .lane', { has: frame.locator('.lane-label', { hasText: /^starlette\.middleware\.base\./ }) });
  await handler.waitFor({ state: 'visible' });
  const shown = (await frame.$eval('#lanes', lanesShown)).find((l) => /^starlette\.middleware\.base\./.test(l.label));
  assert.ok(shown.steps, 'the handler lane shows its steps');
  const hb = await handler.boundingBox();
  assert.ok(hb && hb.y >= box.y && hb.y + hb.height <= box.y + box.height, 'handler lane inside the frame');
  assert.ok(await frame.locator('.blocks path.block').count() >= 1, 'the block is drawn');
  const summary = await page.locator('#AsyncPanel .loopscope-summary').textContent();
  assert.match(summary, /Tasks\s*6 \(at most 6 at once\)/);
}

test('Async panel embeds the request timeline (app on 127.0.0.1)', { skip }, async () => {
  const opened = await openAsyncPanel('127.0.0.1');
  await checkTimeline(opened);
  await screenshot(opened.page, 'toolbar-async-panel.png');
});

test('Async panel embeds the request timeline (app on localhost)', { skip }, async () => {
  await checkTimeline(await openAsyncPanel('localhost'));
});
