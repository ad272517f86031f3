// bench/page/scroll.mjs — the scroll step alone, on a session already in a running server: opens
// the session page in a fresh headless Chromium, waits until its charts and tables are in, then
// scrolls the lanes to the fractions run.mjs uses (twice: the second round finds the rows in
// hand) and prints each step (scroll → drawn, as the page measures it) with when its request
// left and was answered, and the median. A check of run.mjs's scroll figure without the loads
// of other sizes before it. With --trace, the steps run under a Chromium performance trace and
// the renderer main thread's work from each scroll to its draw is printed by kind (script,
// style, layout, paint, the network answer's parse), step by step and in all.
//
//   node bench/page/scroll.mjs http://127.0.0.1:PORT/sessions/ID [--trace] [--gap MS (default 100)]
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
  const trace = process.argv.includes('--trace');
  // the pause between steps (ms): run.mjs takes its steps back to back (--gap 0)
  const gapAt = process.argv.indexOf('--gap');
  const gap = gapAt > 0 ? Number(process.argv[gapAt + 1]) : 100;
  if (trace) {
    await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing', 'v8.execute'] });
  }
  const steps = [];
  for (const f of [0.5, 0.9, 0.1, 1, 0.3, 0.7, 0.5, 0.9, 0.1, 1, 0.3, 0.7]) {
    steps.push(await scrollStep(page, f));
    if (gap) await page.waitForTimeout(gap);
  }
  if (trace) printTrace(JSON.parse(await browser.stopTracing()).traceEvents);
  console.log('fraction  drawn ms  painted ms  request sent  answered  bytes');
  for (const x of steps) {
    console.log(`${String(x.frac).padStart(8)} ${x.ms.toFixed(1).padStart(9)} ${x.painted.toFixed(1).padStart(11)} ${x.sent.toFixed(1).padStart(13)} ${x.answered.toFixed(1).padStart(9)} ${String(x.bytes).padStart(7)}`);
  }
  const med = (k) => { const v = steps.map((x) => x[k]).sort((a, b) => a - b); return ((v[5] + v[6]) / 2).toFixed(1); };
  console.log(`median over ${steps.length} steps: drawn ${med('ms')} ms, painted ${med('painted')} ms`);
} finally {
  await browser.close();
}

// Each step's main-thread work, from its 'bench:scroll' mark to the next 'ls:drawn' mark: the
// top-level slices of the renderer main thread (nested ones counted in their parent) by name.
function printTrace(events) {
  const starts = events.filter((e) => e.name === 'bench:scroll').sort((a, b) => a.ts - b.ts);
  if (!starts.length) { console.log('trace: no scroll marks'); return; }
  const { pid, tid } = starts[0];
  const ends = events.filter((e) => e.name === 'ls:drawn' && e.pid === pid).map((e) => e.ts).sort((a, b) => a - b);
  // the scheduler's RunTask wraps everything: its children say what the work was
  const xs = events.filter((e) => e.pid === pid && e.tid === tid && e.ph === 'X' && e.dur && e.name !== 'RunTask'
    && e.name !== 'ThreadControllerImpl::RunTask').sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const top = [];
  let until = -1;
  for (const e of xs) if (e.ts >= until) { top.push(e); until = e.ts + e.dur; }
  const all = new Map();
  console.log('step  scroll→drawn  main thread busy  by slice (ms)');
  starts.forEach((m, i) => {
    const end = ends.find((t) => t > m.ts);
    if (end === undefined) return;
    const by = new Map();
    let busy = 0;
    for (const e of top) {
      const a = Math.max(e.ts, m.ts), b = Math.min(e.ts + e.dur, end);
      if (b <= a) continue;
      const name = e.name === 'FunctionCall' || e.name === 'EvaluateScript' || e.name === 'TimerFire' || e.name === 'EventDispatch' ? 'script' : e.name;
      by.set(name, (by.get(name) || 0) + (b - a) / 1000);
      all.set(name, (all.get(name) || 0) + (b - a) / 1000);
      busy += (b - a) / 1000;
    }
    const parts = [...by].sort((x, y) => y[1] - x[1]).filter(([, ms]) => ms >= 0.3).map(([n, ms]) => `${n} ${ms.toFixed(1)}`);
    console.log(`${String(i + 1).padStart(4)} ${((end - m.ts) / 1000).toFixed(1).padStart(13)} ${busy.toFixed(1).padStart(17)}  ${parts.join(' · ')}`);
  });
  const parts = [...all].sort((x, y) => y[1] - x[1]).slice(0, 10).map(([n, ms]) => `${n} ${(ms / starts.length).toFixed(1)}`);
  console.log(`per step on average: ${parts.join(' · ')}`);
}
