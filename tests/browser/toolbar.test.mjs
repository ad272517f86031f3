// toolbar.test.mjs — the "Async" debug-toolbar panel end to end: starts examples/toolbar_app.py
// (FastAPI + fastapi-debug-toolbar + loopscope.toolbar.AsyncPanel, recording into the suite's server)
// with the newest venv of .venvs/list (or LOOPSCOPE_PYTHON), opens its page in Chromium from
// 127.0.0.1 and from localhost, opens the toolbar's Async panel and checks the embedded timeline.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE, launch, openPage, closeChecked, screenshot } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = path.join(ROOT, 'examples', 'toolbar_app.py');

// A Python that has the collector (with its toolbar module) and the toolbar installed:
// scripts/test-collector.sh installs loopscope into every venv before scripts/test-web.sh runs.
function findPython() {
  const candidates = [];
  if (process.env.LOOPSCOPE_PYTHON) candidates.push(process.env.LOOPSCOPE_PYTHON);
  const list = path.join(ROOT, '.venvs', 'list');
  if (fs.existsSync(list)) {
    const venvs = fs.readFileSync(list, 'utf8').split('\n').filter(Boolean).reverse();
    candidates.push(...venvs.map((v) => path.join(v, 'bin', 'python')));
  }
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import loopscope._core, loopscope.toolbar, uvicorn'], { timeout: 60000 });
    if (r.status === 0) return py;
  }
  return null;
}

const PYTHON = findPython();
const skip = PYTHON ? false
  : 'no Python with loopscope + fastapi-debug-toolbar (run scripts/deps.sh and scripts/test-collector.sh first)';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

let browser;
let app = null;     // { proc, port, log }
let current = null;

before(async () => {
  if (skip) return;
  const port = await freePort();
  const proc = spawn(PYTHON, [EXAMPLE, '--server', BASE, '--port', String(port)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  app = { proc, port, log: '' };
  proc.stdout.on('data', (d) => { app.log += d; });
  proc.stderr.on('data', (d) => { app.log += d; });
  const deadline = Date.now() + 30000;
  for (;;) {
    assert.equal(proc.exitCode, null, `toolbar_app.py exited:\n${app.log}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/_debug_toolbar/static/css/toolbar.css`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    assert.ok(Date.now() < deadline, `toolbar_app.py did not answer within 30 s:\n${app.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await launch();
});

after(async () => {
  await browser?.close();
  if (app && app.proc.exitCode === null) {
    const exited = new Promise((r) => app.proc.once('exit', r));
    app.proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
    if (app.proc.exitCode === null) app.proc.kill('SIGKILL');
  }
});

afterEach(async () => {
  if (!current) return;
  const page = current;
  current = null;
  await closeChecked(page);
});

async function openAsyncPanel(host) {
  current = await openPage(browser);
  const { page } = current;
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
  assert.ok(await handler.locator('path.step').count() > 0, 'the handler lane shows its steps');
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
