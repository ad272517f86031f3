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
