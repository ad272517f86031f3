// bench/page/run.mjs — the timeline page at scale: starts loopscope-server on a free loopback
// port with a temporary database, ingests a generated session (100k tasks, 500k awaits by
// default) and the small seed session as a baseline, opens both in headless Chromium and
// prints first render, zoom step and SVG element counts against the issue's targets, plus the
// server's own answer times for the queries the page makes. Prints figures; asserts nothing.
//
//   node bench/page/run.mjs [--server build/server/loopscope-server] [--tasks 100000] [--steps 20]
//   node bench/page/run.mjs --url http://127.0.0.1:PORT     (a server already running and seeded)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { launch } from '../../tests/browser/harness.mjs';
import { largeBatches, smallBatches, SMALL_ID } from '../../tests/browser/seed-data.mjs';
import { post } from '../../tests/browser/seed.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function args() {
  const a = { server: path.join(ROOT, 'build/server/loopscope-server'), tasks: 100000, steps: 20, url: null, reloads: 3 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option ${v[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(v[++i]) : v[++i];
  }
  return a;
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function startServer(bin) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ls-page-bench-'));
  const port = await freePort();
  const proc = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--db', path.join(dir, 'bench.db')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return { url, proc, dir };
    } catch { /* not up yet */ }
    if (proc.exitCode !== null) throw new Error(`server exited: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not come up: ${log}`);
}

async function timeGet(url, n = 3) {
  const times = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(url);
    const body = await r.arrayBuffer();
    times.push(performance.now() - t0);
    bytes = body.byteLength;
    if (!r.ok) return { ms: NaN, bytes, status: r.status };
  }
  return { ms: median(times), bytes, status: 200 };
}

// Opens the session page and returns first-render figures from the page's performance marks.
async function firstRender(browser, url) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForFunction(() => Number(document.getElementById('timeline')?.dataset.drawn || 0) >= 1, null, { timeout: 60000 });
  await page.waitForFunction(() => document.getElementById('timeline').dataset.complete === '1', null, { timeout: 60000 });
  const marks = await page.evaluate(() => {
    const first = (n) => (performance.getEntriesByName(n)[0] || { startTime: NaN }).startTime;
    const nav = performance.getEntriesByType('navigation')[0];
    // Where the first render's time went: the /tasks answer as the browser saw it.
    const res = performance.getEntriesByType('resource').find((r) => /\/tasks$/.test(new URL(r.name).pathname));
    return { drawn: first('ls:first'), complete: first('ls:complete'), dcl: nav ? nav.domContentLoadedEventEnd : NaN,
      tasksStart: res ? res.startTime : NaN, tasksEnd: res ? res.responseEnd : NaN,
      svg: document.querySelectorAll('svg *').length };
  });
  return { ctx, page, marks, errors };
}

// One zoom step: a key press, then the page's own measure from input to fresh draw.
async function zoomStep(page, key) {
  const before = await page.evaluate(() => Number(document.getElementById('timeline').dataset.drawn));
  await page.keyboard.press(key);
  await page.waitForFunction((n) => Number(document.getElementById('timeline').dataset.drawn) > n, before, { timeout: 30000 });
  await page.waitForTimeout(30);
  return page.evaluate(() => {
    const m = performance.getEntriesByName('ls:step');
    return { ms: m.length ? m[m.length - 1].duration : NaN, svg: document.querySelectorAll('svg *').length,
      span: Number(document.getElementById('timeline').dataset.to) - Number(document.getElementById('timeline').dataset.from) };
  });
}

function row(name, value, target, unit = 'ms') {
  const v = Number.isFinite(value) ? value : NaN;
  const ok = Number.isFinite(v) && target !== null ? (v <= target ? 'ok' : 'OVER') : '';
  const ratio = Number.isFinite(v) && target ? (v / target).toFixed(2) : '';
  console.log(`${name.padEnd(44)} ${String(Number.isFinite(v) ? (unit === 'ms' ? v.toFixed(1) : Math.round(v)) : 'n/a').padStart(10)} ${unit.padEnd(4)} ${
    target === null ? ''.padStart(10) : `< ${target}`.padStart(10)} ${ratio.padStart(8)}  ${ok}`);
}

async function main() {
  const a = args();
  let server = null;
  let url = a.url;
  const sid = `s-large-${a.tasks}`;
  if (!url) {
    server = await startServer(a.server);
    url = server.url;
    for (const b of smallBatches()) await post(url, b);
    const t0 = performance.now();
    let events = 0;
    for (const b of largeBatches({ id: sid, tasks: a.tasks })) {
      await post(url, b);
      events += b.events.length;
    }
    const s = (performance.now() - t0) / 1000;
    console.log(`ingest: ${events} events of ${a.tasks} tasks in ${s.toFixed(1)} s (${Math.round(events / s)} events/s)`);
  }
  const browser = await launch();
  try {
    // Server answer times for the queries the first render makes.
    const sum = await (await fetch(`${url}/api/v1/sessions/${sid}`)).json();
    const tasks = await timeGet(`${url}/api/v1/sessions/${sid}/tasks`);
    const tlFull = await timeGet(`${url}/api/v1/sessions/${sid}/timeline?from=0&to=${sum.duration_ns}&px=1143&tasks=${Array.from({ length: 60 }, (_, i) => i + 1).join(',')}`);
    const tlAll = await timeGet(`${url}/api/v1/sessions/${sid}/timeline?from=0&to=${sum.duration_ns}&px=1000`, 1);
    const conc = await timeGet(`${url}/api/v1/sessions/${sid}/concurrency`);
    const summ = await timeGet(`${url}/api/v1/sessions/${sid}`);

    // Baseline: the 5-task seed session, same browser, same run.
    const base = await firstRender(browser, `${url}/sessions/${SMALL_ID}`);
    await base.ctx.close();

    const firsts = [];
    let last = null;
    for (let i = 0; i < a.reloads; i++) {
      if (last) await last.ctx.close();
      last = await firstRender(browser, `${url}/sessions/${sid}`);
      firsts.push(last.marks);
    }
    const { page, errors } = last;
    await page.focus('#timeline');
    const steps = [];
    const svgAt = [{ span: sum.duration_ns, svg: last.marks.svg }];
    for (let i = 0; i < a.steps; i++) {
      const key = i < a.steps / 2 ? 'w' : 's';
      const r = await zoomStep(page, key);
      steps.push(r.ms);
      svgAt.push({ span: r.span, svg: r.svg });
    }
    // Deep in the tree: scroll the lanes to the middle and count again.
    await page.evaluate(() => { const s = document.getElementById('lanes-scroll'); s.scrollTop = s.scrollHeight / 2; });
    await page.waitForTimeout(800);
    const midSvg = await page.evaluate(() => document.querySelectorAll('svg *').length);
    const maxSvg = Math.max(midSvg, ...svgAt.map((x) => x.svg));
    await last.ctx.close();

    console.log();
    console.log(`page benchmark: session of ${a.tasks} tasks (${sum.awaits} awaits, ${sum.blocks} blocks), viewport 1400x900, Chromium headless`);
    console.log(`${'figure'.padEnd(44)} ${'measured'.padStart(10)}      ${'target'.padStart(10)} ${'ratio'.padStart(8)}`);
    row('first render, median of reloads (nav → drawn)', median(firsts.map((m) => m.drawn)), 1500);
    row('  of which: page scripts loaded (nav → /tasks asked)', median(firsts.map((m) => m.tasksStart)), null);
    row('  of which: /tasks transfer (asked → received)', median(firsts.map((m) => m.tasksEnd - m.tasksStart)), null);
    row('  baseline: 5-task session first render', base.marks.drawn, null);
    row('  tables and charts complete (nav → complete)', median(firsts.map((m) => m.complete)), null);
    row(`zoom step re-render, median of ${steps.length}`, median(steps), 50);
    row('zoom step re-render, max', Math.max(...steps), null);
    row('SVG elements, most at any zoom level', maxSvg, 5000, 'elts');
    for (const x of svgAt.filter((_, i) => i % 5 === 0)) row(`  SVG elements at span ${(x.span / 1e6).toPrecision(3)} ms`, x.svg, 5000, 'elts');
    row('  SVG elements, lanes scrolled to the middle', midSvg, 5000, 'elts');
    console.log();
    console.log('server answer times (median of 3, loopback, measured from node):');
    row(`  GET /tasks (${(tasks.bytes / 1e6).toFixed(1)} MB)`, tasks.ms, null);
    row(`  GET /timeline, 60 lanes, whole range (${(tlFull.bytes / 1e3).toFixed(0)} kB)`, tlFull.ms, null);
    row(`  GET /timeline, all lanes, whole range (${(tlAll.bytes / 1e6).toFixed(1)} MB)`, tlAll.ms, null);
    row(`  GET /concurrency (${(conc.bytes / 1e6).toFixed(1)} MB)`, conc.ms, null);
    row('  GET /sessions/{id} (summary)', summ.ms, null);
    if (errors.length) console.log(`page errors: ${errors.slice(0, 5).join(' | ')}`);
  } finally {
    await browser.close();
    if (server) {
      server.proc.kill('SIGTERM');
      await new Promise((r) => { server.proc.once('exit', r); setTimeout(r, 5000); });
      fs.rmSync(server.dir, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
