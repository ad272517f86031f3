// exports.test.mjs — the "Chrome trace" button: it downloads Trace Event JSON holding one
// complete event per seeded run step and await (names, tasks, times and durations as seeded), the
// page says nothing about the format not being offered, and a failed export (the session deleted
// meanwhile) is reported on the page as an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BASE, pagesPerTest, waitDrawn } from './harness.mjs';
import { small, SMALL_ID, smallBatches } from './seed-data.mjs';
import { postAll } from './seed.mjs';

const pages = pagesPerTest();

const statusOf = (page) => page.evaluate(() => {
  const s = document.getElementById('status');
  return { text: s.textContent, error: s.classList.contains('error') };
});

// Trace Event timestamps are microseconds; the seed's are nanoseconds (rounded as seed-data does).
const us = (ns) => Math.round(ns) / 1000;
const close = (a, b) => Math.abs(a - b) < 1e-6;

test('the Chrome trace button downloads Trace Event JSON with every step and await', async () => {
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${SMALL_ID}`);
  await waitDrawn(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-chrome')]);
  assert.equal(download.suggestedFilename(), `loopscope-${SMALL_ID}.trace.json`);
  const trace = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.ok(Array.isArray(trace.traceEvents), 'a traceEvents array');
  const evs = trace.traceEvents;
  for (const e of evs) {
    assert.equal(typeof e.name, 'string', `name of ${JSON.stringify(e)}`);
    // complete slices, instants, metadata, the lag counter, and parent -> child flow arrows
    assert.ok(['X', 'i', 'M', 'C', 's', 'f'].includes(e.ph), `phase ${e.ph}`);
    assert.ok(Number.isFinite(e.ts) && Number.isInteger(e.pid) && Number.isInteger(e.tid), JSON.stringify(e));
    if (e.ph === 'X') assert.ok(Number.isFinite(e.dur) && e.dur >= 0, `dur of ${JSON.stringify(e)}`);
  }

  // One complete event per seeded step, on its task's thread, with its time and duration.
  const steps = evs.filter((e) => e.ph === 'X' && e.cat === 'step');
  assert.equal(steps.length, small.steps.length);
  for (const s of small.steps) {
    const m = steps.filter((e) => e.tid === s.id && close(e.ts, us(s.t)));
    assert.equal(m.length, 1, `step of task ${s.id} at ${s.t}`);
    assert.equal(m[0].name, 'step');
    assert.ok(close(m[0].dur, us(s.d)), `step dur ${m[0].dur} vs ${us(s.d)}`);
  }
  // One per seeded await, named after what it awaited, with its file:line.
  const awaits = evs.filter((e) => e.ph === 'X' && e.cat === 'await');
  assert.equal(awaits.length, small.awaits.length);
  for (const a of small.awaits) {
    const m = awaits.filter((e) => e.tid === a.id && close(e.ts, us(a.t)));
    assert.equal(m.length, 1, `await of task ${a.id} at ${a.t}`);
    assert.equal(m[0].name, `await ${a.what}`);
    assert.ok(close(m[0].dur, us(a.d)), `await dur ${m[0].dur} vs ${us(a.d)}`);
    assert.equal(m[0].args.file, a.file);
    assert.equal(m[0].args.line, a.line);
  }
  // Each task has its named thread; the block sits on the loop's thread with its duration.
  const threads = new Map(evs.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args.name]));
  for (const t of small.tasks) assert.ok(threads.get(t.id)?.startsWith(t.name), `thread of task ${t.id}: ${threads.get(t.id)}`);
  const blocks = evs.filter((e) => e.ph === 'X' && e.cat === 'block');
  assert.equal(blocks.length, 1);
  assert.ok(close(blocks[0].ts, us(small.blocks[0].t)) && close(blocks[0].dur, us(small.blocks[0].d)));

  // Every flow arrow starts (s) and finishes (f) once, on the parent's and the child's threads.
  const starts = evs.filter((e) => e.ph === 's');
  const ends = new Map(evs.filter((e) => e.ph === 'f').map((e) => [e.id, e]));
  assert.equal(ends.size, starts.length);
  for (const s of starts) {
    const f = ends.get(s.id);
    assert.ok(f && f.name === 'spawn' && f.bp === 'e', `flow ${s.id} finishes`);
    const child = small.tasks.find((t) => t.id === f.tid);
    assert.ok(child && child.parent === s.tid, `flow ${s.id}: task ${s.tid} -> ${f.tid}`);
  }

  // It worked, so the page says nothing about the format not being offered, nor any error.
  await page.waitForFunction(() => !/preparing/.test(document.getElementById('status').textContent));
  const st = await statusOf(page);
  assert.doesNotMatch(st.text, /not offered|could not/);
  assert.equal(st.error, false);
});

test('a failed Chrome trace export is reported on the page', async () => {
  // A copy of the small session, deleted after the page loaded: the export then fails for real.
  const id = 's-seed-doomed';
  await postAll(BASE, smallBatches().map((b) => ({ ...b, session: id, batch: `${b.batch}-doomed` })));
  const { page } = await pages.open();
  await page.goto(`${BASE}/sessions/${id}`);
  await waitDrawn(page);
  const del = await fetch(`${BASE}/api/v1/sessions/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  pages.allowConsole(/status of 404/); // the browser logs the failed request itself
  let downloads = 0;
  page.on('download', () => { downloads++; });
  await page.click('#export-chrome');
  await page.waitForFunction(() => /Chrome trace: could not export/.test(document.getElementById('status').textContent));
  const st = await statusOf(page);
  assert.equal(st.error, true);
  assert.doesNotMatch(st.text, /not offered/);
  assert.equal(downloads, 0, 'no file for a failed export');
});
