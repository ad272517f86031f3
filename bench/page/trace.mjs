// bench/page/trace.mjs — where one cold load of the session page spends its time until the
// first draw, from a Chromium performance trace (devtools.timeline): the renderer main thread's
// top-level work by kind (script, style, layout, parse, paint) in time order, so a gap in the
// first render's critical path (bench/page/run.mjs) can be named. Needs a running server.
//
//   node bench/page/trace.mjs URL_OF_SESSION_PAGE [--out trace.json]
import fs from 'node:fs';
import { launch } from '../../tests/browser/harness.mjs';

const url = process.argv[2];
if (!url || url.startsWith('-')) {
  console.log('usage: node bench/page/trace.mjs http://127.0.0.1:PORT/sessions/ID [--out trace.json]');
  process.exit(url ? 0 : 2);
}
const outAt = process.argv.indexOf('--out');
const browser = await launch();
const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await ctx.newPage();
await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing', 'loading', 'v8.execute'] });
await page.goto(url);
await page.waitForFunction(() => Number(document.getElementById('timeline')?.dataset.drawn || 0) >= 1, null, { timeout: 120000 });
const buf = await browser.stopTracing();
await browser.close();
if (outAt > 0) fs.writeFileSync(process.argv[outAt + 1], buf);
const events = JSON.parse(buf).traceEvents;
// the renderer main thread: where the navigation's document was parsed
const main = events.find((e) => e.name === 'ParseHTML' || e.name === 'EvaluateScript');
const tid = main.tid, pid = main.pid;
const nav = events.find((e) => e.name === 'navigationStart' && e.pid === pid) || events.find((e) => e.name === 'navigationStart');
const t0 = nav ? nav.ts : Math.min(...events.filter((e) => e.pid === pid && e.ts).map((e) => e.ts));
const drawn = events.find((e) => e.name === 'ls:first' && e.pid === pid);
const tEnd = drawn ? drawn.ts : Infinity;
// top-level slices: complete events of the main thread not inside another one
const xs = events.filter((e) => e.pid === pid && e.tid === tid && e.ph === 'X' && e.dur && e.ts >= t0 && e.ts <= tEnd)
  .sort((a, b) => a.ts - b.ts || b.dur - a.dur);
const top = [];
let until = -1;
for (const e of xs) if (e.ts >= until) { top.push(e); until = e.ts + e.dur; }
const kids = (p) => xs.filter((e) => e !== p && e.ts >= p.ts && e.ts + e.dur <= p.ts + p.dur);
const byName = new Map();
for (const e of xs) byName.set(e.name, (byName.get(e.name) || 0) + e.dur / 1000);
console.log(`navigation → first draw: ${drawn ? ((tEnd - t0) / 1000).toFixed(1) : '?'} ms; main-thread top-level slices over 2 ms:`);
for (const e of top.filter((x) => x.dur >= 2000)) {
  const inner = kids(e).filter((k) => k.dur >= 1000).sort((a, b) => b.dur - a.dur).slice(0, 4)
    .map((k) => `${k.name}${k.args?.data?.url ? ' ' + k.args.data.url.split('/').pop() : ''}${k.args?.data?.functionName ? ' ' + k.args.data.functionName : ''} ${(k.dur / 1000).toFixed(1)}`);
  console.log(`  ${((e.ts - t0) / 1000).toFixed(1).padStart(7)} ms  ${(e.dur / 1000).toFixed(1).padStart(6)} ms  ${e.name}   ${inner.join(' · ')}`);
}
console.log('totals by slice name (nested slices counted in their own name too):');
for (const [n, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${ms.toFixed(1).padStart(7)} ms  ${n}`);
