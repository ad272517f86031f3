// modules.test.mjs — the page's pure modules run in node without a browser: number formatting
// (format.js), axis ticks (axis.js), view math and the URL round trip (view.js), the task tree
// as lanes (lanes.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fmt from '../../web/format.js';
import * as axis from '../../web/axis.js';
import * as V from '../../web/view.js';
import * as lanes from '../../web/lanes.js';
import * as details from '../../web/details.js';
import * as TL from '../../web/timeline.js';

test('durations keep three significant digits across units', () => {
  const cases = [[0, '0 ns'], [850, '850 ns'], [1250, '1.25 µs'], [45e6, '45.0 ms'], [150e6, '150 ms'],
    [2.5e9, '2.50 s'], [999, '999 ns'], [1000, '1.00 µs'], [182.5e6, '183 ms'], [null, '–']];
  for (const [ns, want] of cases) assert.equal(fmt.duration(ns), want, `duration(${ns})`);
  assert.equal(fmt.ms(2.3), '2.30 ms');
  // counts as en-US writes them (format.js does it by hand: no locale data on the first render)
  for (const n of [0, 7, 999, 1000, -1000, 1234567, -98765432, 1e15 + 1, 123.6, '77'])
    assert.equal(fmt.count(n), Math.round(Number(n)).toLocaleString('en-US'), `count(${n})`);
  assert.equal(fmt.count(-0.4), '0');
  assert.equal(fmt.count(null), '–');
  assert.equal(fmt.count('x'), '–');
  assert.equal(fmt.precise(100000000), '0.100000000 s');
  assert.equal(fmt.precise(1234567890123), '1234.567890123 s');
  assert.equal(fmt.place('app/db.py', 23), 'app/db.py:23');
  // a place kept short for a narrow band: directories give way first, never the name or line
  const abs = '/check/work/main/examples/shop_app.py';
  assert.equal(fmt.shortPlace(abs, 85, 99), `${abs}:85`);
  assert.equal(fmt.shortPlace(abs, 85, 33), '…/main/examples/shop_app.py:85');
  assert.equal(fmt.shortPlace(abs, 85, 20), '…/shop_app.py:85');
  assert.equal(fmt.shortPlace(abs, 85, 5), '…/shop_app.py:85', 'the name and line stay');
  assert.equal(fmt.shortPlace('shop_app.py', 85, 5), 'shop_app.py:85');
  assert.equal(fmt.shortPlace('/x.py', 0, 2), '/x.py', 'no shorter form: as it was');
  assert.equal(fmt.shortPlace('', 3, 10), '');
  // a blocking band's label (6.6 px a character): whole when it fits; the source cut at its end
  // while the whole path and the source's first 24 characters fit; then the path's directories
  const b = { file: abs, line: 85, src: 'time.sleep(0.15)  # the bug loopscope shows: a blocking call' };
  const px = (chars) => chars * 6.6 + 1;
  assert.equal(TL.blockLabel(b, px(200)), `${abs}:85 ${b.src}`);
  assert.equal(TL.blockLabel(b, px(70)), `${abs}:85 time.sleep(0.15)  # the bug …`);
  assert.equal(TL.blockLabel(b, px(50)), '…/examples/shop_app.py:85 time.sleep(0.15)  # the…');
  assert.equal(TL.blockLabel(b, px(30)), '…/shop_app.py:85 time.sleep(0…');
  assert.equal(TL.blockLabel(b, px(12)), '…/shop_app.…', 'the name comes before the line at the last');
  assert.equal(TL.blockLabel({ ...b, src: '', elsewhere: true }, px(40)), 'from elsewhere: …/shop_app.py:85');
  // Wall clock in the local zone (node's, pinned to UTC here); nanoseconds are cut, not rounded.
  const tz = process.env.TZ;
  process.env.TZ = 'UTC';
  try {
    assert.equal(fmt.wallClock('1764093600999999999'), '2025-11-25 18:00:00');
    assert.equal(fmt.wallClock('0'), '1970-01-01 00:00:00');
    assert.equal(fmt.wallClock('12ab'), '–');
    assert.equal(fmt.wallClock(1764093600000000000), '–', 'a number lost precision: not accepted');
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});

test('axis ticks are 1-2-5 steps labelled in the step\'s unit', () => {
  assert.equal(axis.niceStep(250e6, 12), 50e6);
  assert.equal(axis.niceStep(200, 12), 20);
  assert.equal(axis.niceStep(3, 12), 1);
  const t = axis.ticks(0, 250e6, 1100);
  assert.equal(t.step, 50e6);
  assert.deepEqual(t.ticks, [0, 50e6, 100e6, 150e6, 200e6]);
  assert.equal(t.base, null);
  assert.deepEqual(t.ticks.map((x) => fmt.tick(x, t.step)), ['0 ms', '50 ms', '100 ms', '150 ms', '200 ms']);
  // 500 µs steps are labelled in ms with one decimal.
  assert.equal(fmt.tick(1.5e6, 500e3), '1.5 ms');
  // Deep zoom far from 0: relative labels against a base.
  const d = axis.ticks(100000000, 100000200, 1100);
  assert.equal(d.step, 20);
  assert.equal(d.base, 100000000);
  assert.equal(fmt.tick(d.ticks[3] - d.base, d.step, true), '+60 ns');
});

test('zoom keeps the anchor in place and the view inside the session', () => {
  const D = 250e6;
  const v = V.zoomAt({ from: 0, to: D }, 100e6, 0.5, D);
  assert.deepEqual(v, { from: 50e6, to: 175e6 });
  assert.deepEqual(V.zoomAt(v, 100e6, 2, D), { from: 0, to: D });
  assert.deepEqual(V.zoomAt({ from: 0, to: D }, 0, 4, D), { from: 0, to: D }, 'no zooming out past the session');
  assert.deepEqual(V.zoomAt({ from: 1000, to: 1100 }, 1050, 0.01, D), { from: 1025, to: 1075 }, 'stops at MIN_SPAN');
  assert.deepEqual(V.pan({ from: 0, to: 100e6 }, -5e6, D), { from: 0, to: 100e6 }, 'clamped at 0');
  assert.deepEqual(V.pan({ from: 100e6, to: 200e6 }, 80e6, D), { from: 150e6, to: 250e6 }, 'clamped at the end');
  assert.deepEqual(V.select(90, 10, D), { from: 10, to: 90 });
});

test('the view round-trips through the query string', () => {
  const D = 250e6;
  const q = V.toQuery('?embed=1', { from: 62.5e6, to: 187.5e6 });
  assert.equal(q, '?embed=1&from=62500000&to=187500000');
  assert.deepEqual(V.fromQuery(q, D), { from: 62.5e6, to: 187.5e6 });
  assert.deepEqual(V.fromQuery('?from=abc&to=5', D), { from: 0, to: D }, 'unreadable means whole');
  assert.deepEqual(V.fromQuery('?from=9&to=3', D), { from: 0, to: D });
  assert.deepEqual(V.fromQuery('?from=-5&to=999999999999', D), { from: 0, to: D });
});

test('lanes hide collapsed subtrees and window the viewport', () => {
  const tasks = [
    { id: 1, depth: 0, parent: 0, children: [2, 4] }, { id: 2, depth: 1, parent: 1, children: [3] },
    { id: 3, depth: 2, parent: 2, children: [] }, { id: 4, depth: 1, parent: 1, children: [5] },
    { id: 5, depth: 2, parent: 4, children: [] }, { id: 6, depth: 0, parent: 0, children: [] },
  ];
  const ids = (c) => lanes.visible(tasks, new Set(c)).map((t) => t.id);
  assert.deepEqual(ids([]), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(ids([2]), [1, 2, 4, 5, 6]);
  assert.deepEqual(ids([1]), [1, 6]);
  assert.deepEqual(ids([3]), [1, 2, 3, 4, 5, 6], 'a leaf has nothing to hide');
  const { byId } = lanes.indexTasks(tasks);
  const collapsed = new Set([1, 4]);
  assert.equal(lanes.reveal(5, byId, collapsed), true);
  assert.deepEqual([...collapsed], []);
  assert.deepEqual([...lanes.relatives(tasks[1])].sort(), [1, 3]);
  assert.deepEqual(lanes.windowOf(2000, 0, 400, 8), { first: 0, last: 28 });
  assert.deepEqual(lanes.windowOf(2000, 39600, 400, 8), { first: 1972, last: 2000 });
  assert.deepEqual(lanes.windowOf(3, 0, 400, 8), { first: 0, last: 3 });
});

test('a lag sample names the block it waited behind (the server\'s cause): own, another session, or none', () => {
  const MS = 1e6;
  const other = { t: 50 * MS, d: 150 * MS, elsewhere: true, from_session: 's-a-1', from_task: 3, file: 'demo_app.py', line: 56, src: 'time.sleep(0.15)' };
  const own = { t: 300 * MS, d: 20 * MS, elsewhere: false, from_session: null, file: 'app/views.py', line: 9, src: null };
  const none = { t: 400 * MS, d: 110 * MS, elsewhere: true, from_session: null, file: null, line: null, src: null };
  assert.deepEqual(details.lag({ t: 200 * MS, d: 150 * MS, cause: other }), [
    [null, 'loop lag 150 ms'], ['at', '200 ms'],
    ['waited behind', 'session s-a-1 at demo_app.py:56'], ['source', 'time.sleep(0.15)']]);
  assert.deepEqual(details.lag({ t: 318 * MS, d: 18 * MS, cause: own })[2], ['waited behind', 'its own block at app/views.py:9']);
  assert.deepEqual(details.lag({ t: 505 * MS, d: 100 * MS, cause: none })[2], ['waited behind', 'no session']);
  assert.equal(details.lag({ t: 900 * MS, d: 1 * MS, cause: null }).length, 2, 'no block near: nothing named');
  assert.equal(details.lag({ t: 900 * MS, d: 1 * MS }).length, 2, 'an older server without causes: nothing named');
});
