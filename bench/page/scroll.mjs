// bench/page/scroll.mjs — the scroll step alone, on a session already in a running server: opens
// the session page in a fresh headless Chromium, waits until its charts and tables are in, then
// scrolls the lanes to the fractions run.mjs uses (twice: the second round finds the rows in
// hand) and prints each step (scroll → drawn, as the page measures it) with when its request
// left and was answered, and the median. A check of run.mjs's scroll figure without the loads
// of other sizes before it.
//
//   node bench/page/scroll.mjs http://127.0.0.1:PORT/sessions/ID
import { launch } from '../../tests/browser/harness.mjs';
import { scrollStep } from './steps.mjs';

const url = process.argv[2];
if (!url || url.startsWith('-')) {
  console.log('usage: node bench/page/scroll.mjs http://127.0.0.1:PORT/sessions/ID');
  process.exit(url ? 0 : 2);
}
const browser = await launch();
try {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('timeline')?.dataset.complete === '1', null, { timeout: 120000 });
  await page.waitForTimeout(500);
  const steps = [];
  for (const f of [0.5, 0.9, 0.1, 1, 0.3, 0.7, 0.5, 0.9, 0.1, 1, 0.3, 0.7]) {
    steps.push(await scrollStep(page, f));
    await page.waitForTimeout(100);
  }
  console.log('fraction  step ms  request sent  answered  bytes');
  for (const x of steps) {
    console.log(`${String(x.frac).padStart(8)} ${x.ms.toFixed(1).padStart(8)} ${x.sent.toFixed(1).padStart(13)} ${x.answered.toFixed(1).padStart(9)} ${String(x.bytes).padStart(7)}`);
  }
  const ms = steps.map((x) => x.ms).sort((a, b) => a - b);
  console.log(`median ${((ms[5] + ms[6]) / 2).toFixed(1)} ms over ${ms.length} steps`);
} finally {
  await browser.close();
}
