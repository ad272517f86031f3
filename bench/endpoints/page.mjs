// bench/endpoints/page.mjs — the /endpoints and /compare pages in headless Chromium against a
// server bench_endpoints.py has filled (100,000 request sessions, two 10,000-task sessions):
// time from navigation to the page saying it has drawn (body[data-loaded] on /endpoints, the
// compare table's rows on /compare), median of --runs fresh pages each. Prints; asserts nothing.
//
//   node bench/endpoints/page.mjs URL [--runs 5]
import { launch } from '../../tests/browser/harness.mjs';

const url = process.argv[2];
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
if (!url || url.startsWith('--')) {
  console.error('usage: node bench/endpoints/page.mjs URL [--runs N]');
  process.exit(2);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeTo(browser, path, ready) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(url + path);
    await page.waitForFunction(ready, null, { timeout: 120000 });
    times.push(performance.now() - t0);
    await ctx.close();
  }
  return times;
}

const browser = await launch();
try {
  const cases = [
    ['/endpoints (newest 1,000 sessions: the default)', '/endpoints', () => document.body.dataset.loaded],
    ['/endpoints?limit=100000 (every session)', '/endpoints?limit=100000', () => document.body.dataset.loaded],
    ['/compare?a=cmp-fast&b=cmp-slow (10,000-task sessions)', '/compare?a=cmp-fast&b=cmp-slow',
     () => document.querySelectorAll('table tbody tr').length > 0],
  ];
  console.log(`\n${'page'.padEnd(58)} ${'median ms'.padStart(10)} ${'max ms'.padStart(8)}  (${runs} fresh pages, to drawn)`);
  for (const [label, path, ready] of cases) {
    const t = await timeTo(browser, path, ready);
    console.log(`${label.padEnd(58)} ${median(t).toFixed(1).padStart(10)} ${Math.max(...t).toFixed(1).padStart(8)}`);
  }
} finally {
  await browser.close();
}
