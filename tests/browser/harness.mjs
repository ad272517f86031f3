// harness.mjs — what every page test shares: Debian's headless Chromium through playwright-core
// (no downloaded browser), a page that records console errors, page errors, dialogs and any
// request to a non-loopback host (aborted), and small waits on the page's draw counter.
import { chromium } from 'playwright-core';
import { before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

export const BASE = process.env.LOOPSCOPE_URL || 'http://127.0.0.1:7878';
export const SHOTS = process.env.LOOPSCOPE_SCREENSHOTS || path.resolve('artifacts/screenshots');
const CHROMIUM = process.env.LOOPSCOPE_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

// playwright's launch() runs the browser headless with a fresh temporary --user-data-dir.
export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

// A page in its own context, with `problems` collecting everything a test must not see.
// The time zone is pinned so wall-clock times on the page are known.
export async function openPage(browser, { width = 1400, height = 900, colorScheme = 'light', timezoneId = 'UTC' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme, timezoneId, locale: 'en-US' });
  const problems = { console: [], errors: [], dialogs: [], external: [] };
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || LOOPBACK.has(url.hostname)) return route.continue();
    problems.external.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.console.push(m.text()); });
  page.on('pageerror', (e) => problems.errors.push(String(e)));
  page.on('dialog', (d) => { problems.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  return { context, page, problems };
}

// Closes a page opened by openPage and fails the test on anything it must not have seen: page
// errors, console errors (but those matching `allowConsole`, a RegExp one test may expect),
// dialogs, requests beyond loopback. Every page test's afterEach calls it.
export async function closeChecked({ context, problems }, allowConsole = null) {
  await context.close();
  const consoleErrors = problems.console.filter((m) => !(allowConsole && allowConsole.test(m)));
  assert.deepEqual(problems.errors, [], 'no page errors');
  assert.deepEqual(consoleErrors, [], 'no console errors');
  assert.deepEqual(problems.dialogs, [], 'no dialogs');
  assert.deepEqual(problems.external, [], 'no request beyond loopback');
}

// One browser for a test file and at most one page per test: call at the top of the file, then
// `const { page } = await pages.open(opts)` in a test. After each test the page is closed and
// checked with closeChecked; `pages.allowConsole(re)` lets that test's expected console error by.
export function pagesPerTest() {
  let browser = null, current = null, allow = null;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });
  afterEach(async () => {
    if (!current) return;
    const page = current, expected = allow;
    current = null;
    allow = null;
    await closeChecked(page, expected);
  });
  return {
    async open(opts) {
      current = await openPage(browser, opts);
      return current;
    },
    allowConsole(re) { allow = re; },
    get current() { return current; },
  };
}

// Waits until the timeline has been drawn from fresh data more than `after` times.
export async function waitDrawn(page, after = 0) {
  await page.waitForFunction((n) => Number(document.getElementById('timeline')?.dataset.drawn || 0) > n, after,
    { timeout: 15000 });
  return drawnCount(page);
}

export async function drawnCount(page) {
  return page.evaluate(() => Number(document.getElementById('timeline')?.dataset.drawn || 0));
}

// What each lane drawn in a lanes SVG shows, read in the page (`frame.$eval('#lanes', lanesShown)`):
// timeline.js draws each kind of shape as one path for all lanes, every shape inside its lane's
// row (y from row x 20 to row x 20 + 20), so a lane's shapes are those whose subpaths start there.
// Per lane in drawing order: id, depth, row, label and its x, steps and awaits (drawn or not), and
// the end markers' classes ('end-ok', 'end-running', ...).
export function lanesShown(svg) {
  const kinds = new Map(); // row -> classes of the paths with a shape in it
  for (const p of svg.querySelectorAll('path')) {
    const cls = p.getAttribute('class') || '';
    if (cls === 'grid' || cls === 'block-band' || cls.startsWith('lane-bg')) continue;
    const kind = cls.split(' ').pop();
    for (const m of (p.getAttribute('d') || '').matchAll(/M-?[\d.]+ (-?[\d.]+)/g)) {
      const row = Math.floor(Number(m[1]) / 20);
      if (!kinds.has(row)) kinds.set(row, new Set());
      kinds.get(row).add(kind);
    }
  }
  return [...svg.querySelectorAll('.lane')].map((l) => {
    const row = Number(l.dataset.row);
    const has = kinds.get(row) || new Set();
    const label = l.querySelector('.lane-label');
    return {
      id: Number(l.dataset.task), depth: Number(l.dataset.depth), row,
      label: label ? label.textContent : null, x: label ? Number(label.getAttribute('x')) : NaN,
      steps: has.has('step'), awaits: has.has('await'), ends: [...has].filter((k) => k.startsWith('end-')),
    };
  });
}

// The box on the page of task id's lane (the whole row, 20 px tall) in the lanes SVG `svg`.
export async function laneBox(page, id, svg = '#lanes') {
  return page.$eval(`${svg} .lane[data-task="${id}"]`, (l) => {
    const s = l.ownerSVGElement;
    const r = s.getBoundingClientRect();
    const top = s.viewBox.baseVal ? s.viewBox.baseVal.y : 0;
    return { x: r.left, y: r.top + Number(l.dataset.row) * 20 - top, width: r.width, height: 20 };
  });
}

// The lanes' scroll height (px, as text): every row's, however few of them are drawn.
export async function lanesHeight(page) {
  return page.evaluate(() => String(document.getElementById('lanes-scroll').scrollHeight));
}

// Waits for the view to settle: no draw for `quiet` ms after the last one.
export async function settle(page, quiet = 300) {
  let last = await drawnCount(page);
  for (let i = 0; i < 50; i++) {
    await page.waitForTimeout(quiet);
    const now = await drawnCount(page);
    if (now === last) return now;
    last = now;
  }
  return last;
}

export async function viewOf(page) {
  return page.evaluate(() => {
    const d = document.getElementById('timeline').dataset;
    return { from: Number(d.from), to: Number(d.to) };
  });
}

// The view after the page's next fresh draw following `action`.
export async function afterDraw(page, action) {
  const n = await drawnCount(page);
  await action();
  await waitDrawn(page, n);
  await settle(page, 150);
  return viewOf(page);
}

export async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
